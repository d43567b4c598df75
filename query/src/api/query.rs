//! Query endpoints: `query`, `query_range`, `query_exemplars`, `format_query`, `parse_query`,
//! and the JSON encoding of query results.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use rayon::prelude::*;
use sextant_storage::{Db, FloatHistogram, Labels};

use super::params::{parse_duration, parse_limit, parse_time, parse_time_param, Params};
use super::response::{
    format_value, write_json_str, write_point, write_timestamp, ApiError, PointOpenings, Success,
};
use super::ApiState;
use crate::promql::{
    ast_json, parse, printer, Engine, QueryError, QueryResult, QueryStats, RangeSeries, Value,
};

/// Prometheus caps each kind of annotation in a response at this many.
const MAX_ANNOTATIONS: usize = 10;

const TRUNCATED: &str = "results truncated due to limit";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `GET|POST /api/v1/query`: an instant query.
pub async fn query(State(st): State<Arc<ApiState>>, p: Params) -> Result<Success, ApiError> {
    let t =
        parse_time_param(&p, "time", now_ms()).map_err(|e| ApiError::invalid_param("time", e))?;
    let timeout = query_timeout(&p, &st)?;
    let limit = parse_limit(p.get("limit")).map_err(|e| ApiError::invalid_param("limit", e))?;
    let text = p.get("query").to_string();
    let expr = parse(&text).map_err(|e| ApiError::invalid_param("query", e))?;
    let stats = StatsRequest::from_param(p.get("stats"));
    let started = Instant::now();
    run_blocking(
        &st,
        timeout,
        move |db, engine| {
            if stats == StatsRequest::None {
                engine.instant_query(db, &text, &expr, t)
            } else {
                engine.instant_query_with_stats(db, &text, &expr, t)
            }
        },
        move |res| encode_query_result(res, limit, stats, started.elapsed()),
    )
    .await
}

/// `GET|POST /api/v1/query_range`: a range query.
pub async fn query_range(State(st): State<Arc<ApiState>>, p: Params) -> Result<Success, ApiError> {
    let start = parse_time(p.get("start")).map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time(p.get("end")).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_ns = parse_duration(p.get("step")).map_err(|e| ApiError::invalid_param("step", e))?;
    if step_ns <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let max_points = st.info.max_points_per_series;
    let points = (i128::from(end) - i128::from(start)) * 1_000_000 / i128::from(step_ns);
    if points > i128::from(max_points) {
        return Err(ApiError::bad_data(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
            with_thousands(max_points)
        )));
    }
    let timeout = query_timeout(&p, &st)?;
    let limit = parse_limit(p.get("limit")).map_err(|e| ApiError::invalid_param("limit", e))?;
    let text = p.get("query").to_string();
    let expr = parse(&text).map_err(|e| ApiError::invalid_param("query", e))?;
    // The engine steps in whole milliseconds.
    let step_ms = (step_ns / 1_000_000).max(1);
    let stats = StatsRequest::from_param(p.get("stats"));
    let started = Instant::now();
    run_blocking(
        &st,
        timeout,
        move |db, engine| {
            if stats == StatsRequest::None {
                engine.range_query(db, &text, &expr, start, end, step_ms)
            } else {
                engine.range_query_with_stats(db, &text, &expr, start, end, step_ms)
            }
        },
        move |res| encode_query_result(res, limit, stats, started.elapsed()),
    )
    .await
}

/// What the `stats` parameter asks for: nothing (empty), Prometheus' statistics (any other
/// value), and with `all` also the samples per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsRequest {
    None,
    Summary,
    All,
}

impl StatsRequest {
    pub fn from_param(s: &str) -> StatsRequest {
        match s {
            "" => StatsRequest::None,
            "all" => StatsRequest::All,
            _ => StatsRequest::Summary,
        }
    }
}

/// `GET|POST /api/v1/format_query`: the query, pretty-printed as Prometheus' `Pretty(0)`.
pub async fn format_query(p: Params) -> Result<Success, ApiError> {
    let expr = parse(p.get("query")).map_err(|e| ApiError::invalid_param("query", e))?;
    Success::of(&printer::pretty(&expr))
}

/// `GET|POST /api/v1/parse_query`: the query's syntax tree as JSON.
pub async fn parse_query(p: Params) -> Result<Success, ApiError> {
    let expr = parse(p.get("query")).map_err(|e| ApiError::invalid_param("query", e))?;
    Success::of(&ast_json::to_json(&expr))
}

/// The query deadline: the engine's timeout, or the `timeout` parameter when lower.
pub(super) fn query_timeout(p: &Params, st: &ApiState) -> Result<Duration, ApiError> {
    let default = st.engine.options().timeout;
    let s = p.get("timeout");
    if s.is_empty() {
        return Ok(default);
    }
    let ns = parse_duration(s).map_err(|e| ApiError::invalid_param("timeout", e))?;
    let requested = u64::try_from(ns).map_or(Duration::ZERO, Duration::from_nanos);
    Ok(requested.min(default))
}

/// Runs an evaluation, and the encoding of its answer, off the async scheduler, and answers
/// with a timeout error when it takes longer than `timeout`.
///
/// On the multi-threaded runtime the query runs in place ([`super::runs_in_place`]; a third of
/// a small query's latency was the hand-off). The engine checks its deadline as it goes; an
/// answer that still comes late is replaced by the timeout error. On a current-thread runtime
/// the blocking pool runs it and the wait for it is cut at `timeout` (the thread finishes on
/// its own).
pub(super) async fn run_blocking<F, G>(
    st: &Arc<ApiState>,
    timeout: Duration,
    eval: F,
    encode: G,
) -> Result<Success, ApiError>
where
    F: FnOnce(&Db, &Engine) -> Result<QueryResult, QueryError> + Send + 'static,
    G: FnOnce(QueryResult) -> Success + Send + 'static,
{
    let db = Arc::clone(&st.db);
    let engine = Arc::clone(&st.engine);
    let queued = Instant::now();
    let run = move || {
        let waited = queued.elapsed();
        eval(&db, &engine).map(|mut res| {
            res.stats.exec_queue_time = waited;
            encode(res)
        })
    };
    let timed_out = || ApiError::from(QueryError::Timeout("expression evaluation"));
    let failed =
        |e: &dyn std::fmt::Display| ApiError::internal(format!("query evaluation failed: {e}"));
    if super::runs_in_place() {
        let res = super::in_place(run).map_err(|e| failed(&e))?;
        if queued.elapsed() > timeout {
            return Err(timed_out());
        }
        return res.map_err(ApiError::from);
    }
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(run)).await {
        Err(_) => Err(timed_out()),
        Ok(Err(join)) => Err(failed(&join)),
        Ok(Ok(res)) => res.map_err(ApiError::from),
    }
}

/// `11000` → `11,000`.
fn with_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    // Digits are ASCII, so byte offsets are character offsets.
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    out.push_str(&digits[..head]);
    let mut at = head;
    while at < digits.len() {
        out.push(',');
        out.push_str(&digits[at..at + 3]);
        at += 3;
    }
    out
}

/// Caps a list of annotations as Prometheus does, noting how many were left out.
fn cap_annotations(mut list: Vec<String>, kind: &str) -> Vec<String> {
    if list.len() > MAX_ANNOTATIONS {
        let omitted = list.len() - MAX_ANNOTATIONS;
        list.truncate(MAX_ANNOTATIONS);
        list.push(format!("{omitted} more {kind} annotations omitted"));
    }
    list
}

/// Matrices with at least this many points are encoded in parallel.
const PARALLEL_ENCODE_MIN: usize = 4096;

/// Appends the series of a matrix, comma-separated.
fn write_matrix(out: &mut String, series: &[RangeSeries]) {
    let mut openings = PointOpenings::default();
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        write_labels(out, &s.labels);
        if !s.points.is_empty() || s.histograms.is_empty() {
            out.push_str(",\"values\":[");
            for (j, (t, v)) in s.points.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                openings.write_point(out, j, *t, *v);
            }
            out.push(']');
        }
        if !s.histograms.is_empty() {
            out.push_str(",\"histograms\":[");
            for (j, (t, h)) in s.histograms.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                write_histogram_point(out, *t, h);
            }
            out.push(']');
        }
        out.push('}');
    }
}

/// `{"resultType":…,"result":…}` with the annotations as warnings and infos. A non-zero
/// `limit` keeps at most that many series.
#[cfg(test)]
pub fn encode_result(res: QueryResult, limit: usize) -> Success {
    encode_query_result(res, limit, StatsRequest::None, Duration::ZERO)
}

/// [`encode_result`], plus Prometheus' `stats` object when requested; `exec_total` is the
/// time from receiving the query to its result.
pub fn encode_query_result(
    res: QueryResult,
    limit: usize,
    stats_req: StatsRequest,
    exec_total: Duration,
) -> Success {
    let QueryResult {
        value,
        mut warnings,
        infos,
        stats,
    } = res;
    let mut out = Success::buffer(256);
    match value {
        Value::Scalar(t, v) => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            write_point(&mut out, t, v);
        }
        Value::String(t, s) => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            write_timestamp(&mut out, t);
            out.push(',');
            write_json_str(&mut out, &s);
            out.push(']');
        }
        Value::Vector(mut samples) => {
            if limit > 0 && samples.len() > limit {
                samples.truncate(limit);
                warnings.push(TRUNCATED.into());
            }
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                match &s.h {
                    Some(h) => {
                        out.push_str(",\"histogram\":");
                        write_histogram_point(&mut out, s.t, h);
                    }
                    None => {
                        out.push_str(",\"value\":");
                        write_point(&mut out, s.t, s.v);
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(mut series) => {
            if limit > 0 && series.len() > limit {
                series.truncate(limit);
                warnings.push(TRUNCATED.into());
            }
            // About 28 bytes per point (`[1795408980,"0.123456789"]`) and 200 per label set:
            // one allocation instead of doubling copies of a large body.
            let points: usize = series.iter().map(|s| s.points.len()).sum();
            out.reserve(points.saturating_mul(28) + series.len() * 200);
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            if points < PARALLEL_ENCODE_MIN || series.len() < 2 {
                write_matrix(&mut out, &series);
            } else {
                // Large answers are written in pieces on every core and joined in order.
                let per_piece = series.len().div_ceil(4 * rayon::current_num_threads());
                let pieces: Vec<String> = series
                    .par_chunks(per_piece.max(1))
                    .map(|chunk| {
                        let points: usize = chunk.iter().map(|s| s.points.len()).sum();
                        let mut piece =
                            String::with_capacity(points.saturating_mul(28) + chunk.len() * 200);
                        write_matrix(&mut piece, chunk);
                        piece
                    })
                    .collect();
                for (i, piece) in pieces.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(piece);
                }
            }
            out.push(']');
        }
    }
    if stats_req != StatsRequest::None {
        out.push_str(",\"stats\":");
        write_stats(&mut out, &stats, stats_req == StatsRequest::All, exec_total);
    }
    out.push('}');
    let mut success = Success::from_buffer(out);
    success.warnings = cap_annotations(warnings, "warning");
    success.infos = cap_annotations(infos, "info");
    success
}

/// Appends Prometheus' `stats` object: `timings` in seconds and `samples` (with the samples
/// per step when `per_step`), in Prometheus' field order.
pub fn write_stats(out: &mut String, s: &QueryStats, per_step: bool, exec_total: Duration) {
    let eval_total = s.prepare_time + s.inner_eval_time + s.result_sort_time;
    let exec_total = exec_total.max(eval_total + s.exec_queue_time);
    out.push_str("{\"timings\":{");
    for (i, (name, d)) in [
        ("evalTotalTime", eval_total),
        ("resultSortTime", s.result_sort_time),
        ("queryPreparationTime", s.prepare_time),
        ("innerEvalTime", s.inner_eval_time),
        ("execQueueTime", s.exec_queue_time),
        ("execTotalTime", exec_total),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{name}\":{}", go_float(d.as_secs_f64()));
    }
    out.push_str("},\"samples\":{");
    if per_step && !s.per_step.is_empty() {
        out.push_str("\"totalQueryableSamplesPerStep\":[");
        for (i, (t, n)) in s.per_step.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{},{n}]", go_float(*t as f64 / 1000.0));
        }
        out.push_str("],");
    }
    let _ = write!(
        out,
        "\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
        s.total_samples, s.peak_samples
    );
}

/// A finite float as Go's `encoding/json` writes it: shortest decimal, exponent form only
/// below 1e-6 or from 1e21.
fn go_float(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Appends `[<timestamp>,{"count":…,"sum":…,"buckets":[…]}]` as Prometheus renders a native
/// histogram sample.
pub fn write_histogram_point(out: &mut String, t_ms: i64, h: &FloatHistogram) {
    out.push('[');
    write_timestamp(out, t_ms);
    out.push(',');
    write_histogram(out, h);
    out.push(']');
}

/// A native histogram as Prometheus' JSON: count and sum as strings, then the populated
/// buckets as `[boundary_rule, "lower", "upper", "count"]` in ascending order. The boundary
/// rule is 0 for `(lower, upper]`, 1 for `[lower, upper)`, 2 for `(lower, upper)` and 3 for
/// `[lower, upper]`; `buckets` is left out when every bucket is empty.
pub fn write_histogram(out: &mut String, h: &FloatHistogram) {
    out.push_str("{\"count\":\"");
    out.push_str(&format_value(h.count));
    out.push_str("\",\"sum\":\"");
    out.push_str(&format_value(h.sum));
    out.push('"');
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        if first {
            out.push_str(",\"buckets\":[");
            first = false;
        } else {
            out.push(',');
        }
        let rule = match (b.lower_inclusive, b.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        };
        let _ = write!(
            out,
            "[{rule},\"{}\",\"{}\",\"{}\"]",
            format_value(b.lower),
            format_value(b.upper),
            format_value(b.count)
        );
    }
    if !first {
        out.push(']');
    }
    out.push('}');
}

/// Appends a label set as a JSON object (`{"__name__":"up","job":"x"}`), in name order.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, &l.name);
        out.push(':');
        write_json_str(out, &l.value);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{RangeSeries, VectorSample};

    fn result(value: Value) -> QueryResult {
        QueryResult {
            value,
            warnings: vec![],
            infos: vec![],
            stats: QueryStats::default(),
        }
    }

    #[test]
    fn thousands() {
        assert_eq!(with_thousands(11_000), "11,000");
        assert_eq!(with_thousands(999), "999");
        assert_eq!(with_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn encodes_each_result_type() {
        let s = encode_result(result(Value::Scalar(4000, 2.0)), 0).body();
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
        );
        let s = encode_result(result(Value::String(1500, "a\"b".into())), 0).body();
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"string","result":[1.500,"a\"b"]}}"#
        );
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        let v = Value::Vector(vec![
            VectorSample {
                labels: labels.clone(),
                t: 1_435_781_451_781,
                v: 1.0,
                h: None,
            },
            VectorSample {
                labels: Labels::empty(),
                t: 1_435_781_451_781,
                v: f64::NAN,
                h: None,
            },
        ]);
        let s = encode_result(result(v.clone()), 0).body();
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"x"},"value":[1435781451.781,"1"]},{"metric":{},"value":[1435781451.781,"NaN"]}]}}"#
        );
        let s = encode_result(result(v), 1).body();
        assert!(
            s.ends_with(r#"}]},"warnings":["results truncated due to limit"]}"#),
            "{s}"
        );
        let m = Value::Matrix(vec![RangeSeries {
            labels,
            points: vec![(0, 1.0), (15_000, f64::INFINITY)],
            histograms: vec![],
        }]);
        let s = encode_result(result(m), 0).body();
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"x"},"values":[[0,"1"],[15,"+Inf"]]}]}}"#
        );
    }

    #[test]
    fn encodes_histograms() {
        let h = FloatHistogram {
            count: 3.0,
            sum: 4.5,
            ..FloatHistogram::default()
        };
        let v = Value::Vector(vec![VectorSample {
            labels: Labels::empty(),
            t: 1000,
            v: 0.0,
            h: Some(h.clone()),
        }]);
        let s = encode_result(result(v), 0).body();
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"3","sum":"4.5"}]}]}}"#
        );
        let m = Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            points: vec![],
            histograms: vec![(1000, h.clone()), (2000, h)],
        }]);
        let s = encode_result(result(m), 0).body();
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[[1,{"count":"3","sum":"4.5"}],[2,{"count":"3","sum":"4.5"}]]}]}}"#
        );
    }

    /// Large matrices are written in pieces in parallel; the series of differing grids share
    /// the cached point openings. The text must be the one written point by point, in order.
    #[test]
    fn large_matrices_encode_as_written_point_by_point() {
        let mut series = Vec::new();
        for i in 0..300_i64 {
            // Most series on one grid, some shifted or with gaps, one with a warning's worth
            // of annotations on top.
            let points: Vec<(i64, f64)> = (0..40_i64)
                .filter(|j| i % 7 != 3 || j % 5 != 0)
                .map(|j| {
                    let t = -60_000 + j * 15_000 + if i % 11 == 5 { 1 } else { 0 };
                    (t, (i * 40 + j) as f64 / 7.0)
                })
                .collect();
            series.push(RangeSeries {
                labels: Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
                points,
                histograms: vec![],
            });
        }
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        assert!(points >= PARALLEL_ENCODE_MIN);
        let mut want =
            String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
        for (i, s) in series.iter().enumerate() {
            if i > 0 {
                want.push(',');
            }
            want.push_str("{\"metric\":");
            write_labels(&mut want, &s.labels);
            want.push_str(",\"values\":[");
            for (j, &(t, v)) in s.points.iter().enumerate() {
                if j > 0 {
                    want.push(',');
                }
                write_point(&mut want, t, v);
            }
            want.push_str("]}");
        }
        want.push_str(r#"]},"warnings":["w"]}"#);
        let mut r = result(Value::Matrix(series));
        r.warnings = vec!["w".into()];
        let got = encode_result(r, 0).body();
        assert!(
            got.contains(r#"[-59.999,"#),
            "shifted grid keeps its timestamps"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn caps_annotations() {
        let mut r = result(Value::Vector(vec![]));
        r.warnings = (0..12).map(|i| format!("w{i}")).collect();
        r.infos = vec!["i".into()];
        let s = encode_result(r, 0);
        assert_eq!(s.warnings.len(), 11);
        assert_eq!(s.warnings[10], "2 more warning annotations omitted");
        assert_eq!(s.infos, vec!["i".to_string()]);
    }
}
