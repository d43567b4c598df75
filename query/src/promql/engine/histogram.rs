//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over classic
//! (`le`-labelled) bucket series and native histograms, and the simple native-histogram
//! accessors (`histogram_count`, `histogram_sum`, `histogram_avg`, `histogram_stddev`,
//! `histogram_stdvar`).

use std::collections::HashMap;

use sextant_storage::histogram::{
    histogram_fraction_with_info, histogram_quantile_with_info, histogram_stddev, histogram_stdvar,
    QuantileNanInfo,
};
use sextant_storage::{FloatHistogram, Labels};

use super::eval::{expr_pos, Evaluator};
use super::model::{fmt_g, Sample};
use crate::promql::ast::{Call, PosRange};
use crate::promql::value::QueryError;

const BUCKET_LABEL: &str = "le";
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Go's `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Sorts, coalesces equal bounds and forces monotonic counts. `None` without a `+Inf` bucket.
fn prepare(mut buckets: Vec<(f64, f64)>) -> Option<(Vec<(f64, f64)>, bool)> {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return None,
    }
    // Coalesce buckets with the same upper bound.
    let mut co: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match co.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => co.push(b),
        }
    }
    let mut buckets = co;
    // Ensure monotonicity, silently fixing tiny deltas.
    let mut forced = false;
    if let Some(first) = buckets.first() {
        let mut prev = first.1;
        for b in buckets.iter_mut().skip(1) {
            let curr = b.1;
            if curr == prev {
                continue;
            }
            if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
                b.1 = prev;
                continue;
            }
            if curr < prev {
                b.1 = prev;
                forced = true;
                continue;
            }
            prev = curr;
        }
    }
    Some((buckets, forced))
}

/// Result of [`bucket_quantile`]: the value and whether monotonicity had to be forced.
pub(super) fn bucket_quantile(q: f64, buckets: Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some((buckets, forced)) = prepare(buckets) else {
        return (f64::NAN, false);
    };
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let n = buckets.len();
    let observations = buckets.get(n - 1).map(|b| b.1).unwrap_or(0.0);
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let idx = buckets
        .get(..n - 1)
        .map(|s| s.partition_point(|b| b.1 < rank))
        .unwrap_or(0);
    if idx == n - 1 {
        return (buckets.get(n - 2).map(|b| b.0).unwrap_or(f64::NAN), forced);
    }
    let Some(&(end, mut count)) = buckets.get(idx) else {
        return (f64::NAN, forced);
    };
    if idx == 0 && end <= 0.0 {
        return (end, forced);
    }
    let mut start = 0.0;
    if idx > 0 {
        if let Some(&(pb, pc)) = buckets.get(idx - 1) {
            start = pb;
            count -= pc;
            rank -= pc;
        }
    }
    (start + (end - start) * (rank / count), forced)
}

/// Bucket series grouped by their labels without `le`.
struct Group {
    labels: Labels,
    name: String,
    drop_name: bool,
    buckets: Vec<(f64, f64)>,
}

/// The input of the histogram functions split by kind: native histogram samples and classic
/// bucket groups. A native histogram and a classic group with the same labels (ignoring `le`)
/// conflict: both are dropped with a warning, as Prometheus does.
struct Split {
    natives: Vec<Sample>,
    groups: Vec<Group>,
}

/// Groups classic bucket samples, keeps native histograms aside; warns about malformed `le`
/// labels and about classic/native conflicts.
fn group_buckets(ev: &mut Evaluator<'_>, input: Vec<Sample>, vec_pos: PosRange) -> Split {
    let mut groups: Vec<Group> = Vec::new();
    let mut natives: Vec<Sample> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        if s.h.is_some() {
            natives.push(s);
            continue;
        }
        let le = s.labels.get(BUCKET_LABEL).unwrap_or("");
        let Some(upper) = parse_go_float(le) else {
            let name = s.labels.metric_name().unwrap_or("").to_string();
            let msg = format!(
                "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {name:?}"
            );
            ev.warn(&msg, vec_pos);
            continue;
        };
        let mut key = s.labels.clone();
        key.remove(BUCKET_LABEL);
        let gi = match index.get(&key) {
            Some(&i) => i,
            None => {
                let name = key.metric_name().unwrap_or("").to_string();
                let mut labels = key.clone();
                let mut drop = s.drop_name;
                ev.drop_name(&mut labels, &mut drop);
                index.insert(key, groups.len());
                groups.push(Group {
                    labels,
                    name,
                    drop_name: drop,
                    buckets: Vec::new(),
                });
                groups.len() - 1
            }
        };
        if let Some(g) = groups.get_mut(gi) {
            g.buckets.push((upper, s.v));
        }
    }
    let mut conflicting: Vec<usize> = Vec::new();
    natives.retain(|s| match index.get(&s.labels) {
        Some(&gi) => {
            let name = s.labels.metric_name().unwrap_or("");
            ev.warn(
                &format!(
                    "vector contains a mix of classic and native histograms for metric name {name:?}"
                ),
                vec_pos,
            );
            conflicting.push(gi);
            false
        }
        None => true,
    });
    let groups = groups
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !conflicting.contains(i))
        .map(|(_, g)| g)
        .collect();
    Split { natives, groups }
}

/// The output labels of a function result computed from native histogram sample `s`.
fn native_out(ev: &Evaluator<'_>, s: &Sample, v: f64) -> Sample {
    let mut labels = s.labels.clone();
    let mut drop = s.drop_name;
    ev.drop_name(&mut labels, &mut drop);
    Sample {
        labels,
        v,
        h: None,
        drop_name: drop,
    }
}

/// Prometheus' suffix for annotations that name the metric (omitted for an empty name).
fn for_metric(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" for metric name {name:?}")
    }
}

/// `histogram_quantile` of one native histogram, raising the NaN-observation info.
fn native_quantile(ev: &mut Evaluator<'_>, q: f64, s: &Sample, pos: PosRange) -> f64 {
    let Some(h) = s.h.as_deref() else {
        return f64::NAN;
    };
    let (v, info) = histogram_quantile_with_info(q, h);
    let name = s.labels.metric_name().unwrap_or("");
    match info {
        Some(QuantileNanInfo::ResultIsNan) => ev.info(
            &format!(
                "input to histogram_quantile has NaN observations, result is NaN{}",
                for_metric(name)
            ),
            pos,
        ),
        Some(QuantileNanInfo::SkewedHigher) => ev.info(
            &format!(
                "input to histogram_quantile has NaN observations, result is skewed higher{}",
                for_metric(name)
            ),
            pos,
        ),
        None => {}
    }
    v
}

/// `histogram_count`, `histogram_sum`, `histogram_avg`, `histogram_stddev` and
/// `histogram_stdvar`: one float per native histogram sample; float samples are dropped.
pub(super) fn simple_histogram_fn(
    ev: &Evaluator<'_>,
    name: &str,
    input: Vec<Sample>,
) -> Vec<Sample> {
    let f: fn(&FloatHistogram) -> f64 = match name {
        "histogram_count" => |h| h.count,
        "histogram_sum" => |h| h.sum,
        "histogram_avg" => |h| h.sum / h.count,
        "histogram_stddev" => histogram_stddev,
        _ => histogram_stdvar,
    };
    input
        .iter()
        .filter_map(|s| s.h.as_deref().map(|h| native_out(ev, s, f(h))))
        .collect()
}

fn warn_quantile(ev: &mut Evaluator<'_>, q: f64, pos: PosRange) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ev.warn(
            &format!("quantile value should be between 0 and 1, got {}", fmt_g(q)),
            pos,
        );
    }
}

fn monotonicity_info(ev: &mut Evaluator<'_>, name: &str, pos: PosRange) {
    ev.info(
        &format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
        ),
        pos,
    );
}

/// `histogram_quantile(q, buckets)`.
pub(super) fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    c: &Call,
    q: f64,
    input: Vec<Sample>,
) -> Vec<Sample> {
    let vec_pos = c.args.get(1).map(expr_pos).unwrap_or(c.pos);
    let q_pos = c.args.first().map(expr_pos).unwrap_or(c.pos);
    warn_quantile(ev, q, q_pos);
    let Split { natives, groups } = group_buckets(ev, input, vec_pos);
    let mut out = Vec::with_capacity(groups.len() + natives.len());
    for s in &natives {
        let v = native_quantile(ev, q, s, vec_pos);
        out.push(native_out(ev, s, v));
    }
    for g in groups {
        let (v, forced) = bucket_quantile(q, g.buckets);
        if forced {
            monotonicity_info(ev, &g.name, vec_pos);
        }
        out.push(Sample {
            labels: g.labels,
            v,
            h: None,
            drop_name: g.drop_name,
        });
    }
    out
}

/// `histogram_quantiles(buckets, "label", q1, q2, …)`: one output series per quantile.
pub(super) fn histogram_quantiles(
    ev: &mut Evaluator<'_>,
    c: &Call,
    input: Vec<Sample>,
    label: &str,
    qs: &[f64],
) -> Result<Vec<Sample>, QueryError> {
    let vec_pos = c.args.first().map(expr_pos).unwrap_or(c.pos);
    for (i, q) in qs.iter().enumerate() {
        let pos = c.args.get(i + 2).map(expr_pos).unwrap_or(c.pos);
        warn_quantile(ev, *q, pos);
    }
    let Split { natives, groups } = group_buckets(ev, input, vec_pos);
    let mut out = Vec::with_capacity((groups.len() + natives.len()) * qs.len());
    for s in &natives {
        if s.labels.get(label).is_some() {
            return Err(QueryError::Execution(format!(
                "label {label:?} already exists on the input series {}",
                s.labels
            )));
        }
        for &q in qs {
            let v = native_quantile(ev, q, s, vec_pos);
            let mut o = native_out(ev, s, v);
            o.labels.set(label, &format_openmetrics(q));
            out.push(o);
        }
    }
    for g in groups {
        if g.labels.get(label).is_some() {
            return Err(QueryError::Execution(format!(
                "label {label:?} already exists on the input series {}",
                g.labels
            )));
        }
        for &q in qs {
            let (v, forced) = bucket_quantile(q, g.buckets.clone());
            if forced {
                monotonicity_info(ev, &g.name, vec_pos);
            }
            let mut labels = g.labels.clone();
            labels.set(label, &format_openmetrics(q));
            out.push(Sample {
                labels,
                v,
                h: None,
                drop_name: g.drop_name,
            });
        }
    }
    Ok(out)
}

/// `histogram_fraction(lower, upper, buckets)` over classic buckets.
pub(super) fn histogram_fraction(
    ev: &mut Evaluator<'_>,
    c: &Call,
    lower: f64,
    upper: f64,
    input: Vec<Sample>,
) -> Vec<Sample> {
    let vec_pos = c.args.get(2).map(expr_pos).unwrap_or(c.pos);
    let Split { natives, groups } = group_buckets(ev, input, vec_pos);
    let mut out = Vec::with_capacity(groups.len() + natives.len());
    for s in &natives {
        let Some(h) = s.h.as_deref() else {
            continue;
        };
        let (v, nan_excluded) = histogram_fraction_with_info(lower, upper, h);
        if nan_excluded {
            let name = s.labels.metric_name().unwrap_or("");
            ev.info(
                &format!(
                    "input to histogram_fraction has NaN observations, which are excluded from all fractions{}",
                    for_metric(name)
                ),
                vec_pos,
            );
        }
        out.push(native_out(ev, s, v));
    }
    out.extend(groups.into_iter().map(|g| Sample {
        labels: g.labels,
        v: bucket_fraction(lower, upper, g.buckets),
        h: None,
        drop_name: g.drop_name,
    }));
    out
}

/// The fraction of observations between `lower` and `upper`, interpolating linearly.
pub(super) fn bucket_fraction(lower: f64, upper: f64, buckets: Vec<(f64, f64)>) -> f64 {
    let Some((buckets, _)) = prepare(buckets) else {
        return f64::NAN;
    };
    let count = buckets.last().map(|b| b.1).unwrap_or(0.0);
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lb = match buckets.first() {
        Some(b) if b.0 <= 0.0 => f64::NEG_INFINITY,
        _ => 0.0,
    };
    for (i, &(ub, cnt)) in buckets.iter().enumerate() {
        if i > 0 {
            lb = buckets.get(i - 1).map(|b| b.0).unwrap_or(lb);
        }
        let interp = |v: f64| {
            if lb == f64::NEG_INFINITY {
                cnt
            } else {
                rank + (cnt - rank) * (v - lb) / (ub - lb)
            }
        };
        if !lower_set && lb >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lb >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lb < lower && ub > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lb < upper && ub > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = cnt;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Prometheus' `FormatOpenMetricsFloat`: shortest form, with `.0` added to integers.
pub(super) fn format_openmetrics(v: f64) -> String {
    let s = fmt_g(v);
    if v.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// Parses a float the way Go's `strconv.ParseFloat` accepts label values (`+Inf`, `NaN`,
/// `1e3`, hex floats are rare and not supported).
pub(super) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t != s || t.is_empty() {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    let neg = lower.starts_with('-');
    match body {
        "inf" | "infinity" => {
            return Some(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if !body
        .chars()
        .all(|ch| ch.is_ascii_digit() || matches!(ch, '.' | 'e' | '+' | '-' | '_'))
    {
        return None;
    }
    t.replace('_', "").parse::<f64>().ok()
}
