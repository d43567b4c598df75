//! Range functions over series that contain native histogram samples (Prometheus 3.x
//! semantics): `rate`/`increase`/`delta` with histogram counter-reset handling and
//! extrapolation, `irate`/`idelta`, `sum_over_time`/`avg_over_time` of histograms, the
//! float-only `*_over_time` functions that ignore histograms in mixed ranges, and the functions
//! that look at both kinds (`count_over_time`, `last_over_time`, `resets`, `changes`, …).
//!
//! Only series with at least one histogram point come here; float-only series keep the float
//! path of [`super::range_fns`].

use sextant_storage::histogram::HistogramError;
use sextant_storage::{CounterResetHint, FloatHistogram};

use super::eval::RangeArg;
use super::model::Series;
use super::range_fns::{self, Params};
use crate::promql::value::QueryError;

/// The result of a range function for one series.
pub(super) enum Out {
    Float(f64),
    Hist(FloatHistogram),
}

/// Annotations raised while computing one series, all placed at the function's first argument
/// (Prometheus uses `args[0]` for every one of them).
#[derive(Default)]
pub(super) struct Notes {
    pub warns: Vec<String>,
    pub infos: Vec<String>,
}

impl Notes {
    fn warn(&mut self, msg: String) {
        self.warns.push(msg);
    }

    fn info(&mut self, msg: String) {
        self.infos.push(msg);
    }
}

pub(super) fn mixed_floats_histograms(name: &str) -> String {
    format!("encountered a mix of histograms and floats for metric name {name:?}")
}

pub(super) fn mixed_exp_custom(name: &str) -> String {
    format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"
    )
}

pub(super) fn not_counter(name: &str) -> String {
    format!("this native histogram metric is not a counter: {name:?}")
}

pub(super) fn not_gauge(name: &str) -> String {
    format!("this native histogram metric is not a gauge: {name:?}")
}

fn ignored_in_mixed_range(name: &str) -> String {
    format!(
        "ignored histograms in a range containing both floats and histograms for metric name {name:?}"
    )
}

pub(super) fn reconciled(op: &str) -> String {
    format!("mismatched custom buckets were reconciled during {op}")
}

/// Computes range function `name` over series `s`, which has histogram points.
pub(super) fn apply(
    name: &str,
    s: &Series,
    arg: &RangeArg,
    p: Params,
    notes: &mut Notes,
) -> Result<Option<Out>, QueryError> {
    let metric = s.labels.metric_name().unwrap_or("");
    let floats = &s.points;
    let hists = &s.hpoints;
    let r = match name {
        "rate" | "increase" | "delta" => {
            if !floats.is_empty() {
                notes.warn(mixed_floats_histograms(metric));
                return Ok(None);
            }
            let is_counter = name != "delta";
            extrapolated_histogram_rate(hists, arg, is_counter, name == "rate", metric, notes)
                .map(Out::Hist)
        }
        "irate" | "idelta" => instant_value(s, name == "irate", metric, notes),
        "sum_over_time" | "avg_over_time" => {
            if !floats.is_empty() {
                notes.warn(mixed_floats_histograms(metric));
                return Ok(None);
            }
            sum_or_avg(hists, name == "avg_over_time", metric, notes).map(Out::Hist)
        }
        "count_over_time" => Some(Out::Float((floats.len() + hists.len()) as f64)),
        "present_over_time" => Some(Out::Float(1.0)),
        "last_over_time" => {
            let f = floats.last();
            let h = hists.last();
            match (f, h) {
                (Some(f), Some(h)) if h.0 < f.0 => Some(Out::Float(f.1)),
                (_, Some(h)) => Some(Out::Hist(h.1.clone())),
                (Some(f), None) => Some(Out::Float(f.1)),
                (None, None) => None,
            }
        }
        "first_over_time" => {
            let f = floats.first();
            let h = hists.first();
            match (f, h) {
                (Some(f), Some(h)) if f.0 < h.0 => Some(Out::Float(f.1)),
                (_, Some(h)) => Some(Out::Hist(h.1.clone())),
                (Some(f), None) => Some(Out::Float(f.1)),
                (None, None) => None,
            }
        }
        "ts_of_last_over_time" => {
            let tf = floats.last().map(|x| x.0).unwrap_or(0);
            let th = hists.last().map(|x| x.0).unwrap_or(0);
            Some(Out::Float(tf.max(th) as f64 / 1000.0))
        }
        "ts_of_first_over_time" => {
            let tf = floats.first().map(|x| x.0).unwrap_or(i64::MAX);
            let th = hists.first().map(|x| x.0).unwrap_or(i64::MAX);
            Some(Out::Float(tf.min(th) as f64 / 1000.0))
        }
        "min_over_time"
        | "max_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "quantile_over_time" => {
            // Float-only functions: histograms are ignored (with an info when floats remain).
            if floats.is_empty() {
                return Ok(None);
            }
            notes.info(ignored_in_mixed_range(metric));
            range_fns::apply(name, floats, arg, p)?.map(Out::Float)
        }
        "deriv" | "predict_linear" | "double_exponential_smoothing" | "holt_winters" => {
            if floats.len() < 2 {
                if floats.len() == 1 {
                    notes.info(ignored_in_mixed_range(metric));
                }
                // Argument validation still applies to double_exponential_smoothing.
                if floats.is_empty() || !matches!(name, "deriv" | "predict_linear") {
                    range_fns::apply(name, &[], arg, p)?;
                }
                return Ok(None);
            }
            notes.info(ignored_in_mixed_range(metric));
            range_fns::apply(name, floats, arg, p)?.map(Out::Float)
        }
        "resets" | "changes" => Some(Out::Float(count_transitions(s, name == "resets"))),
        _ => range_fns::apply(name, floats, arg, p)?.map(Out::Float),
    };
    Ok(r)
}

/// `resets`/`changes` over the merged float and histogram samples: a switch between kinds
/// counts as one; histograms compare with `detect_reset` / `equals`.
pub(super) fn count_transitions(s: &Series, resets: bool) -> f64 {
    enum Pt<'a> {
        F(f64),
        H(&'a FloatHistogram),
    }
    let mut merged: Vec<(i64, Pt<'_>)> = s
        .points
        .iter()
        .map(|(t, v)| (*t, Pt::F(*v)))
        .chain(s.hpoints.iter().map(|(t, h)| (*t, Pt::H(h))))
        .collect();
    merged.sort_by_key(|x| x.0);
    let mut n = 0usize;
    for w in merged.windows(2) {
        let [(_, prev), (_, cur)] = w else {
            continue;
        };
        let counted = match (prev, cur) {
            (Pt::F(a), Pt::F(b)) => {
                if resets {
                    b < a
                } else {
                    b != a && !(a.is_nan() && b.is_nan())
                }
            }
            (Pt::H(a), Pt::H(b)) => {
                if resets {
                    is_reset(b, a)
                } else {
                    !b.equals(a)
                }
            }
            _ => true,
        };
        if counted {
            n += 1;
        }
    }
    n as f64
}

/// `irate`/`idelta` from the last two samples of either kind.
fn instant_value(s: &Series, is_rate: bool, metric: &str, notes: &mut Notes) -> Option<Out> {
    enum Pt<'a> {
        F(f64),
        H(&'a FloatHistogram),
    }
    if s.points.len() + s.hpoints.len() < 2 {
        return None;
    }
    let mut last: Vec<(i64, Pt<'_>)> = s
        .points
        .iter()
        .rev()
        .take(2)
        .map(|(t, v)| (*t, Pt::F(*v)))
        .chain(s.hpoints.iter().rev().take(2).map(|(t, h)| (*t, Pt::H(h))))
        .collect();
    // Newest two by time.
    last.sort_by_key(|x| std::cmp::Reverse(x.0));
    last.truncate(2);
    let (t1, p1) = last.remove(0);
    let (t0, p0) = last.remove(0);
    let interval = t1 - t0;
    if interval == 0 {
        return None;
    }
    let secs = interval as f64 / 1000.0;
    match (p0, p1) {
        (Pt::F(a), Pt::F(b)) => {
            let mut v = if is_rate && b < a { b } else { b - a };
            if is_rate {
                v /= secs;
            }
            Some(Out::Float(v))
        }
        (Pt::H(a), Pt::H(b)) => {
            let mut h = b.clone();
            if is_rate
                && (b.counter_reset_hint == CounterResetHint::Gauge
                    || a.counter_reset_hint == CounterResetHint::Gauge)
            {
                notes.warn(not_counter(metric));
            }
            if !is_rate
                && (b.counter_reset_hint != CounterResetHint::Gauge
                    || a.counter_reset_hint != CounterResetHint::Gauge)
            {
                notes.warn(not_gauge(metric));
            }
            if !is_rate || !b.detect_reset(a) {
                match h.sub(a) {
                    Err(HistogramError::MixedSchemas) => {
                        notes.warn(mixed_exp_custom(metric));
                        return None;
                    }
                    Ok(info) if info.custom_buckets_reconciled => {
                        notes.info(reconciled("subtraction"));
                    }
                    _ => {}
                }
            }
            h.counter_reset_hint = CounterResetHint::Gauge;
            h.compact(0);
            if is_rate {
                h.div(secs);
            }
            Some(Out::Hist(h))
        }
        _ => {
            notes.warn(mixed_floats_histograms(metric));
            None
        }
    }
}

/// Counter reset between consecutive histogram points. A histogram repeated unchanged (a
/// subquery returns the same sample at several steps) is not a reset even when it carries the
/// `CounterReset` hint, so the reset is counted once.
pub(super) fn is_reset(curr: &FloatHistogram, prev: &FloatHistogram) -> bool {
    curr.detect_reset(prev)
        && !(curr.counter_reset_hint == CounterResetHint::CounterReset && curr.equals(prev))
}

/// The increase of histogram counter (or gauge) points over the range, before extrapolation
/// (Prometheus `histogramRate`). `None` when the histograms cannot be combined.
fn histogram_increase(
    points: &[(i64, FloatHistogram)],
    is_counter: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let (first, last) = match (points.first(), points.last()) {
        (Some(f), Some(l)) => (&f.1, &l.1),
        _ => return None,
    };
    // Warnings raised here are dropped when the histograms turn out to be incompatible.
    let mut warns: Vec<String> = Vec::new();
    let mut infos: Vec<String> = Vec::new();
    let is_gauge = |h: &FloatHistogram| h.counter_reset_hint == CounterResetHint::Gauge;
    if is_counter && (is_gauge(first) || is_gauge(last)) {
        warns.push(not_counter(metric));
    }
    let zeroed;
    let mut prev: &FloatHistogram = first;
    if is_counter {
        if let Some((_, second)) = points.get(1) {
            if is_reset(second, first) {
                zeroed = FloatHistogram {
                    schema: second.schema,
                    custom_values: second.custom_values.clone(),
                    ..FloatHistogram::default()
                };
                prev = &zeroed;
            }
        }
    }
    let using_custom = prev.uses_custom_buckets();
    if last.uses_custom_buckets() != using_custom {
        notes.warns.append(&mut warns);
        notes.warn(mixed_exp_custom(metric));
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for (_, curr) in points.iter().skip(1).take(points.len().saturating_sub(2)) {
        if !is_counter {
            continue;
        }
        if is_gauge(curr) {
            warns.push(not_counter(metric));
        }
        min_schema = min_schema.min(curr.schema);
        if curr.uses_custom_buckets() != using_custom {
            notes.warn(mixed_exp_custom(metric));
            return None;
        }
    }
    let mut h = last.clone();
    h.reduce_resolution(min_schema);
    match h.sub(prev) {
        Err(HistogramError::MixedSchemas) => {
            notes.warn(mixed_exp_custom(metric));
            return None;
        }
        Ok(info) if info.custom_buckets_reconciled => infos.push(reconciled("subtraction")),
        _ => {}
    }
    if is_counter {
        for (_, curr) in points.iter().skip(1) {
            if is_reset(curr, prev) {
                match h.add(prev) {
                    Err(HistogramError::MixedSchemas) => {
                        notes.warn(mixed_exp_custom(metric));
                        return None;
                    }
                    Ok(info) if info.custom_buckets_reconciled => {
                        infos.push(reconciled("addition"))
                    }
                    _ => {}
                }
            }
            prev = curr;
        }
    } else if !is_gauge(first) || !is_gauge(last) {
        warns.push(not_gauge(metric));
    }
    notes.warns.append(&mut warns);
    notes.infos.append(&mut infos);
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact(0);
    Some(h)
}

/// `rate`/`increase`/`delta` of histogram points with Prometheus' extrapolation.
fn extrapolated_histogram_rate(
    points: &[(i64, FloatHistogram)],
    arg: &RangeArg,
    is_counter: bool,
    is_rate: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    if points.len() < 2 {
        return None;
    }
    let (first_t, first) = points.first()?;
    let (last_t, _) = points.last()?;
    let mut result = histogram_increase(points, is_counter, metric, notes)?;
    // The float extrapolation, driven by the count.
    let window = range_fns::RateWindow {
        to_start_ms: (first_t - arg.start) as f64,
        to_end_ms: (arg.end - last_t) as f64,
        sampled_ms: (last_t - first_t) as f64,
        intervals: (points.len() - 1) as f64,
        first_v: first.count,
        result: result.count,
    };
    let factor = window.factor(arg.range_ms, is_counter, is_rate);
    result.mul(factor);
    Some(result)
}

/// True when any count of `h` is infinite (Prometheus `HasOverflow`).
fn has_overflow(h: &FloatHistogram) -> bool {
    h.count.is_infinite()
        || h.sum.is_infinite()
        || h.zero_count.is_infinite()
        || h.positive_buckets.iter().any(|b| b.is_infinite())
        || h.negative_buckets.iter().any(|b| b.is_infinite())
}

/// `sum_over_time` / `avg_over_time` of histogram points (Kahan summation; the mean switches
/// to incremental calculation when the sum would overflow, as Prometheus).
fn sum_or_avg(
    points: &[(i64, FloatHistogram)],
    avg: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let ((_, first), rest) = points.split_first()?;
    let hint_seen = |hint: CounterResetHint| points.iter().any(|p| p.1.counter_reset_hint == hint);
    let reset_seen = hint_seen(CounterResetHint::CounterReset);
    let not_reset_seen = hint_seen(CounterResetHint::NotCounterReset);
    let mut reconciled_seen = false;
    let result = (|| -> Result<FloatHistogram, HistogramError> {
        let mut sum = first.clone();
        let mut comp: Option<FloatHistogram> = None;
        if !avg {
            for (_, h) in rest {
                let (c, info) = sum.kahan_add(h, comp.take())?;
                reconciled_seen |= info.custom_buckets_reconciled;
                comp = Some(c);
            }
            if let Some(c) = comp {
                let info = sum.add(&c)?;
                reconciled_seen |= info.custom_buckets_reconciled;
            }
            return Ok(sum);
        }
        let mut mean: Option<FloatHistogram> = None;
        let mut count = 1.0;
        for (i, (_, h)) in rest.iter().enumerate() {
            count = (i + 2) as f64;
            let m = match mean.as_mut() {
                Some(m) => m,
                None => {
                    let mut sum_copy = sum.clone();
                    let (c, info) = sum_copy.kahan_add(h, comp.clone())?;
                    reconciled_seen |= info.custom_buckets_reconciled;
                    if !has_overflow(&sum_copy) {
                        sum = sum_copy;
                        comp = Some(c);
                        continue;
                    }
                    let mut m = sum.clone();
                    m.div(count - 1.0);
                    if let Some(c) = comp.as_mut() {
                        c.div(count - 1.0);
                    }
                    mean.insert(m)
                }
            };
            let q = (count - 1.0) / count;
            if let Some(c) = comp.as_mut() {
                c.mul(q);
            }
            let mut to_add = h.clone();
            to_add.div(count);
            m.mul(q);
            let (c, info) = m.kahan_add(&to_add, comp.take())?;
            reconciled_seen |= info.custom_buckets_reconciled;
            comp = Some(c);
        }
        match mean {
            Some(mut m) => {
                if let Some(c) = comp {
                    m.add(&c)?;
                }
                Ok(m)
            }
            None => {
                sum.div(count);
                if let Some(mut c) = comp {
                    c.div(count);
                    sum.add(&c)?;
                }
                Ok(sum)
            }
        }
    })();
    match result {
        Ok(mut h) => {
            if reset_seen && not_reset_seen {
                notes.warn("conflicting counter resets during histogram aggregation".into());
            }
            if reconciled_seen {
                notes.info(reconciled("aggregation"));
            }
            h.compact(0);
            Some(h)
        }
        Err(HistogramError::MixedSchemas) => {
            notes.warn(mixed_exp_custom(metric));
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use sextant_storage::{Labels, Span};

    use super::*;

    /// A schema-0 histogram with all observations in bucket 1 (`(1, 2]`).
    fn h(count: f64) -> FloatHistogram {
        FloatHistogram {
            count,
            sum: count,
            positive_spans: vec![Span {
                offset: 1,
                length: 1,
            }],
            positive_buckets: vec![count],
            ..FloatHistogram::default()
        }
    }

    fn arg(start: i64, end: i64) -> RangeArg {
        RangeArg {
            series: Vec::new(),
            start,
            end,
            range_ms: end - start,
            anchored: false,
            smoothed: false,
        }
    }

    fn series(points: Vec<(i64, f64)>, hpoints: Vec<(i64, FloatHistogram)>) -> Series {
        let mut s = Series::new(Labels::from_pairs([("__name__", "m")]));
        s.points = points;
        s.hpoints = hpoints;
        s
    }

    fn hist_of(out: Option<Out>) -> FloatHistogram {
        match out {
            Some(Out::Hist(h)) => h,
            _ => FloatHistogram {
                count: f64::NAN,
                ..FloatHistogram::default()
            },
        }
    }

    #[test]
    fn increase_corrects_counter_resets_and_extrapolates() {
        // 10 → 20 → 5 (reset) → 15 at 0s..45s, range (−15s, 45s]: raw increase 10 + 15 = 25.
        let s = series(
            Vec::new(),
            vec![
                (0, h(10.0)),
                (15_000, h(20.0)),
                (30_000, h(5.0)),
                (45_000, h(15.0)),
            ],
        );
        let mut notes = Notes::default();
        let got = hist_of(
            apply(
                "increase",
                &s,
                &arg(-15_000, 45_000),
                Params::default(),
                &mut notes,
            )
            .ok()
            .flatten(),
        );
        // The first sample is 15s after the range start, within 1.1 sample intervals, and the
        // zero point (45s * 10/25 = 18s back) is further away: extrapolate all 15s.
        let want = 25.0 * (60.0 / 45.0);
        assert!((got.count - want).abs() < 1e-9, "{}", got.count);
        assert_eq!(got.counter_reset_hint, CounterResetHint::Gauge);
        assert!(notes.warns.is_empty() && notes.infos.is_empty());
    }

    #[test]
    fn rate_warns_on_gauges_and_mixed_samples() {
        let mut g = h(5.0);
        g.counter_reset_hint = CounterResetHint::Gauge;
        let s = series(Vec::new(), vec![(0, h(1.0)), (15_000, g)]);
        let mut notes = Notes::default();
        let got = apply(
            "rate",
            &s,
            &arg(-15_000, 15_000),
            Params::default(),
            &mut notes,
        );
        assert!(matches!(got, Ok(Some(Out::Hist(_)))));
        assert_eq!(notes.warns, vec![not_counter("m")]);

        let mixed = series(vec![(0, 1.0)], vec![(15_000, h(1.0)), (30_000, h(2.0))]);
        let mut notes = Notes::default();
        let got = apply(
            "rate",
            &mixed,
            &arg(0, 30_000),
            Params::default(),
            &mut notes,
        );
        assert!(matches!(got, Ok(None)));
        assert_eq!(notes.warns, vec![mixed_floats_histograms("m")]);
    }

    #[test]
    fn delta_warns_when_not_gauge() {
        let s = series(Vec::new(), vec![(0, h(1.0)), (15_000, h(3.0))]);
        let mut notes = Notes::default();
        let got = hist_of(
            apply("delta", &s, &arg(0, 15_000), Params::default(), &mut notes)
                .ok()
                .flatten(),
        );
        assert!((got.count - 2.0).abs() < 1e-9);
        assert_eq!(notes.warns, vec![not_gauge("m")]);
    }

    #[test]
    fn irate_and_idelta_use_the_last_two_samples() {
        let s = series(
            Vec::new(),
            vec![(0, h(1.0)), (10_000, h(4.0)), (20_000, h(2.0))],
        );
        let mut notes = Notes::default();
        // A reset: irate takes the last histogram as the increase.
        let got = hist_of(
            apply("irate", &s, &arg(0, 20_000), Params::default(), &mut notes)
                .ok()
                .flatten(),
        );
        assert!((got.count - 0.2).abs() < 1e-12);
        let got = hist_of(
            apply("idelta", &s, &arg(0, 20_000), Params::default(), &mut notes)
                .ok()
                .flatten(),
        );
        assert!((got.count + 2.0).abs() < 1e-12);
        // Float then histogram: mixed.
        let m = series(vec![(0, 1.0)], vec![(10_000, h(1.0))]);
        let mut notes = Notes::default();
        assert!(
            apply("irate", &m, &arg(0, 10_000), Params::default(), &mut notes)
                .ok()
                .flatten()
                .is_none()
        );
        assert_eq!(notes.warns, vec![mixed_floats_histograms("m")]);
    }

    #[test]
    fn sum_and_avg_over_time_of_histograms() {
        let s = series(
            Vec::new(),
            vec![(0, h(1.0)), (10_000, h(2.0)), (20_000, h(6.0))],
        );
        let mut notes = Notes::default();
        let sum = hist_of(
            apply(
                "sum_over_time",
                &s,
                &arg(-1, 20_000),
                Params::default(),
                &mut notes,
            )
            .ok()
            .flatten(),
        );
        assert_eq!(sum.count, 9.0);
        assert_eq!(sum.positive_buckets, vec![9.0]);
        let avg = hist_of(
            apply(
                "avg_over_time",
                &s,
                &arg(-1, 20_000),
                Params::default(),
                &mut notes,
            )
            .ok()
            .flatten(),
        );
        assert!((avg.count - 3.0).abs() < 1e-12);
        // Conflicting hints warn.
        let mut a = h(1.0);
        a.counter_reset_hint = CounterResetHint::CounterReset;
        let mut b = h(1.0);
        b.counter_reset_hint = CounterResetHint::NotCounterReset;
        let s = series(Vec::new(), vec![(0, a), (10_000, b)]);
        let mut notes = Notes::default();
        assert!(apply(
            "sum_over_time",
            &s,
            &arg(-1, 10_000),
            Params::default(),
            &mut notes
        )
        .is_ok());
        assert_eq!(notes.warns.len(), 1);
    }

    #[test]
    fn float_functions_ignore_histograms_with_an_info() {
        let s = series(vec![(0, 3.0), (20_000, 1.0)], vec![(10_000, h(1.0))]);
        let mut notes = Notes::default();
        let got = apply(
            "max_over_time",
            &s,
            &arg(-1, 20_000),
            Params::default(),
            &mut notes,
        );
        assert!(matches!(got, Ok(Some(Out::Float(v))) if v == 3.0));
        assert_eq!(notes.infos, vec![ignored_in_mixed_range("m")]);
        // Only histograms: no result, no annotation.
        let only = series(Vec::new(), vec![(10_000, h(1.0))]);
        let mut notes = Notes::default();
        let got = apply(
            "max_over_time",
            &only,
            &arg(-1, 20_000),
            Params::default(),
            &mut notes,
        );
        assert!(matches!(got, Ok(None)));
        assert!(notes.infos.is_empty());
        // count and last see both kinds.
        let got = apply(
            "count_over_time",
            &s,
            &arg(-1, 20_000),
            Params::default(),
            &mut notes,
        );
        assert!(matches!(got, Ok(Some(Out::Float(v))) if v == 3.0));
        let got = apply(
            "last_over_time",
            &s,
            &arg(-1, 20_000),
            Params::default(),
            &mut notes,
        );
        assert!(matches!(got, Ok(Some(Out::Float(v))) if v == 1.0));
    }

    #[test]
    fn resets_and_changes_across_kinds() {
        let s = series(
            vec![(30_000, 7.0)],
            vec![(0, h(2.0)), (10_000, h(1.0)), (20_000, h(1.0))],
        );
        // h2 → h1 is a reset, h1 → h1 neither, h1 → float counts for both.
        assert_eq!(count_transitions(&s, true), 2.0);
        assert_eq!(count_transitions(&s, false), 2.0);
        // A repeated sample with the reset hint is one reset, not two.
        let mut r = h(1.0);
        r.counter_reset_hint = CounterResetHint::CounterReset;
        let rep = series(
            Vec::new(),
            vec![(0, h(5.0)), (10_000, r.clone()), (20_000, r)],
        );
        assert_eq!(count_transitions(&rep, true), 1.0);
    }
}
