//! Result comparison with the reference runner's rules: float tolerance, series matching by
//! label set, point timestamps, ordering, and annotation expectations.

use std::collections::HashMap;

use sextant_query::promql::{RangeSeries, Value};
use sextant_storage::{is_stale_nan, FloatHistogram, Labels};

use super::histogram_notation::histograms_match;

use super::script::{
    AnnotationExpectation, Expectations, ExpectedResult, ExpectedSeries, SeqValue,
};

/// Relative tolerance of the reference runner (`defaultEpsilon`).
const EPSILON: f64 = 1e-6;
/// Smallest positive normal f64, as Go's `almost.Equal` uses it.
const MIN_NORMAL: f64 = 2.2250738585072014e-308;

/// Why a result does not meet its expectations. `kind` is a short class used to derive the
/// reason recorded in the expected-failures list; `detail` is the full explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub kind: &'static str,
    pub detail: String,
}

impl Mismatch {
    pub fn new(kind: &'static str, detail: impl Into<String>) -> Mismatch {
        Mismatch {
            kind,
            detail: detail.into(),
        }
    }
}

/// Float equality of the reference runner: identical, both NaN, or a relative difference below
/// 1e-6; a staleness NaN equals only another staleness NaN; next to 0 only exact matches count.
pub fn almost_equal(a: f64, b: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// The times expected values belong to: value `i` is at `start + i × step`, up to `end`.
#[derive(Clone, Copy, Debug)]
pub struct PointTimes {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

/// Checks one kind of annotations (`kind` is "warn" or "info") against its expectation.
pub fn check_annotations(
    expectation: &AnnotationExpectation,
    got: &[String],
    kind: &str,
) -> Result<(), Mismatch> {
    match expectation {
        AnnotationExpectation::Unchecked => Ok(()),
        AnnotationExpectation::Forbidden => match got.first() {
            Some(first) => Err(Mismatch::new(
                "unexpected annotation",
                format!(
                    "expected no {kind} annotations, got {} (first: {first})",
                    got.len()
                ),
            )),
            None => Ok(()),
        },
        AnnotationExpectation::Required(lines) => {
            if got.is_empty() {
                return Err(Mismatch::new(
                    "missing annotation",
                    format!("expected {kind} annotations but none were returned"),
                ));
            }
            if let Some(line) = lines.iter().find(|l| !got.iter().any(|a| l.matches(a))) {
                return Err(Mismatch::new(
                    "missing annotation",
                    format!("no {kind} annotation matches expect {kind} {line}; got {got:?}"),
                ));
            }
            if let Some(a) = got.iter().find(|a| !lines.iter().any(|l| l.matches(a))) {
                return Err(Mismatch::new(
                    "unexpected annotation",
                    format!("{kind} annotation {a:?} is matched by no expect {kind} line"),
                ));
            }
            Ok(())
        }
    }
}

/// Compares a query's value with the expected result. `times` places the values of expected
/// series lines when the value is a matrix.
pub fn compare_value(exp: &Expectations, value: &Value, times: PointTimes) -> Result<(), Mismatch> {
    match value {
        Value::Matrix(series) => compare_matrix(exp, series, times),
        Value::Vector(samples) => {
            let samples: Vec<(&Labels, Got<'_>)> = samples
                .iter()
                .map(|s| (&s.labels, Got::of(s.v, s.h.as_ref())))
                .collect();
            compare_vector(exp, &samples)
        }
        Value::Scalar(_, v) => compare_scalar(exp, *v),
        Value::String(_, s) => match &exp.result {
            ExpectedResult::String(want) if want == s => Ok(()),
            ExpectedResult::String(want) => Err(Mismatch::new(
                "wrong value",
                format!("expected string {want:?} but got {s:?}"),
            )),
            _ => Err(Mismatch::new(
                "wrong result type",
                format!("expected {} but got string {s:?}", describe_expected(exp)),
            )),
        },
    }
}

/// Compares a scalar with a scalar expectation.
pub fn compare_scalar(exp: &Expectations, got: f64) -> Result<(), Mismatch> {
    let want = match &exp.result {
        ExpectedResult::Scalar(v) => v,
        _ => {
            return Err(Mismatch::new(
                "wrong result type",
                format!("expected {} but got scalar {got}", describe_expected(exp)),
            ))
        }
    };
    match want {
        SeqValue::Float(w) if almost_equal(*w, got) => Ok(()),
        SeqValue::Float(w) => Err(Mismatch::new(
            "wrong value",
            format!("expected scalar {w} but got {got}"),
        )),
        SeqValue::Histogram(h) => Err(Mismatch::new(
            "wrong value type",
            format!("expected histogram {h:?} but got scalar {got}"),
        )),
        SeqValue::Omitted => Err(Mismatch::new("wrong value", "expected scalar is \"_\"")),
    }
}

/// One sample value of a result: a float or a native histogram.
#[derive(Clone, Copy, Debug)]
pub enum Got<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

impl<'a> Got<'a> {
    pub fn of(v: f64, h: Option<&'a FloatHistogram>) -> Got<'a> {
        match h {
            Some(h) => Got::Histogram(h),
            None => Got::Float(v),
        }
    }
}

impl std::fmt::Display for Got<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Got::Float(v) => write!(f, "{v}"),
            Got::Histogram(h) => write!(f, "{h:?}"),
        }
    }
}

/// Compares an instant vector (in result order) with the expected series lines.
pub fn compare_vector(exp: &Expectations, samples: &[(&Labels, Got<'_>)]) -> Result<(), Mismatch> {
    let expected = match &exp.result {
        ExpectedResult::Series(series) => series,
        _ => {
            return Err(Mismatch::new(
                "wrong result type",
                format!(
                    "expected {} but got a vector of {} series",
                    describe_expected(exp),
                    samples.len()
                ),
            ))
        }
    };
    let by_labels = index_expected(expected);
    let mut seen = vec![false; expected.len()];
    for (pos, (labels, got)) in samples.iter().enumerate() {
        let Some(&idx) = by_labels.get(*labels) else {
            return Err(Mismatch::new(
                "unexpected series",
                format!("unexpected series {labels} in result, has value {got}"),
            ));
        };
        let want = &expected[idx];
        if exp.ordered && want.position != pos + 1 {
            return Err(Mismatch::new(
                "wrong order",
                format!(
                    "expected series {labels} at position {} but it was at {}",
                    want.position,
                    pos + 1
                ),
            ));
        }
        match (want.values.first(), got) {
            (Some(SeqValue::Histogram(w)), Got::Histogram(g)) if histograms_match(w, g) => {}
            (Some(SeqValue::Histogram(w)), Got::Histogram(g)) => {
                return Err(Mismatch::new(
                    "wrong histogram",
                    format!("expected {w:?} for {labels} but got {g:?}"),
                ))
            }
            (Some(SeqValue::Histogram(w)), Got::Float(g)) => {
                return Err(Mismatch::new(
                    "wrong value type",
                    format!("expected histogram {w:?} for {labels} but got float {g}"),
                ))
            }
            (Some(SeqValue::Float(w)), Got::Histogram(g)) => {
                return Err(Mismatch::new(
                    "wrong value type",
                    format!("expected float {w} for {labels} but got histogram {g:?}"),
                ))
            }
            (Some(SeqValue::Omitted), Got::Histogram(g)) => {
                return Err(Mismatch::new(
                    "wrong value type",
                    format!("expected no value for {labels} but got histogram {g:?}"),
                ))
            }
            // The reference runner compares an omitted expected value as 0.
            (Some(SeqValue::Omitted), Got::Float(g)) if almost_equal(0.0, *g) => {}
            (Some(SeqValue::Float(w)), Got::Float(g)) if almost_equal(*w, *g) => {}
            (Some(SeqValue::Float(w)), Got::Float(g)) => {
                return Err(Mismatch::new(
                    "wrong value",
                    format!("expected {w} for {labels} but got {g}"),
                ))
            }
            (Some(SeqValue::Omitted) | None, _) => {
                return Err(Mismatch::new(
                    "wrong value",
                    format!("expected no value for {labels} but got {got}"),
                ))
            }
        }
        seen[idx] = true;
    }
    missing_series(expected, &seen)
}

fn compare_matrix(
    exp: &Expectations,
    series: &[RangeSeries],
    times: PointTimes,
) -> Result<(), Mismatch> {
    if exp.ordered {
        return Err(Mismatch::new(
            "wrong result type",
            "expected ordered result, but query returned a matrix",
        ));
    }
    let expected = match &exp.result {
        ExpectedResult::Series(expected) => expected,
        _ => {
            return Err(Mismatch::new(
                "wrong result type",
                format!(
                    "expected {} but got a matrix of {} series",
                    describe_expected(exp),
                    series.len()
                ),
            ))
        }
    };
    check_matrix_sorted(series)?;
    let by_labels = index_expected(expected);
    let mut seen = vec![false; expected.len()];
    for s in series {
        let Some(&idx) = by_labels.get(&s.labels) else {
            return Err(Mismatch::new(
                "unexpected series",
                format!(
                    "unexpected series {} in result, has {}",
                    s.labels,
                    format_points(&s.points)
                ),
            ));
        };
        seen[idx] = true;
        let want = &expected[idx];
        let mut want_points: Vec<(i64, f64)> = Vec::new();
        let mut want_histograms: Vec<(i64, &FloatHistogram)> = Vec::new();
        for (i, v) in want.values.iter().enumerate() {
            let t = times.start_ms + i as i64 * times.step_ms;
            if t > times.end_ms {
                return Err(Mismatch::new(
                    "wrong point count",
                    format!(
                        "expected {} points for {}, but the query range cannot return this many",
                        want.values.len(),
                        s.labels
                    ),
                ));
            }
            match v {
                SeqValue::Float(f) => want_points.push((t, *f)),
                SeqValue::Histogram(h) => want_histograms.push((t, h)),
                SeqValue::Omitted => {}
            }
        }
        if want_points.len() != s.points.len() || want_histograms.len() != s.histograms.len() {
            return Err(Mismatch::new(
                "wrong point count",
                format!(
                    "expected {} float points and {} histogram points for {} but got {} and {} histograms",
                    want_points.len(),
                    want_histograms.len(),
                    s.labels,
                    format_points(&s.points),
                    s.histograms.len()
                ),
            ));
        }
        for (i, (&(want_t, want_h), (got_t, got_h))) in
            want_histograms.iter().zip(&s.histograms).enumerate()
        {
            if want_t != *got_t {
                return Err(Mismatch::new(
                    "wrong timestamp",
                    format!(
                        "expected histogram point {i} of {} at t={want_t} but it is at t={got_t}",
                        s.labels
                    ),
                ));
            }
            if !histograms_match(want_h, got_h) {
                return Err(Mismatch::new(
                    "wrong histogram",
                    format!(
                        "expected histogram point {i} (t={want_t}) of {} to be {want_h:?} but got {got_h:?}",
                        s.labels
                    ),
                ));
            }
        }
        for (i, (&(want_t, want_v), &(got_t, got_v))) in
            want_points.iter().zip(&s.points).enumerate()
        {
            if want_t != got_t {
                return Err(Mismatch::new(
                    "wrong timestamp",
                    format!(
                        "expected point {i} of {} at t={want_t} but it is at t={got_t} (result has {})",
                        s.labels,
                        format_points(&s.points)
                    ),
                ));
            }
            if !almost_equal(want_v, got_v) {
                return Err(Mismatch::new(
                    "wrong value",
                    format!(
                        "expected point {i} (t={want_t}) of {} to be {want_v} but got {got_v} (result has {})",
                        s.labels,
                        format_points(&s.points)
                    ),
                ));
            }
        }
    }
    missing_series(expected, &seen)
}

/// Matrices come back sorted by label set in Prometheus order.
pub fn check_matrix_sorted(series: &[RangeSeries]) -> Result<(), Mismatch> {
    for pair in series.windows(2) {
        if pair[0].labels >= pair[1].labels {
            return Err(Mismatch::new(
                "unsorted matrix",
                format!(
                    "matrix not sorted by labels: {} comes before {}",
                    pair[0].labels, pair[1].labels
                ),
            ));
        }
    }
    Ok(())
}

fn index_expected(expected: &[ExpectedSeries]) -> HashMap<&Labels, usize> {
    expected
        .iter()
        .enumerate()
        .map(|(i, s)| (&s.labels, i))
        .collect()
}

fn missing_series(expected: &[ExpectedSeries], seen: &[bool]) -> Result<(), Mismatch> {
    match expected.iter().zip(seen).find(|(_, &seen)| !seen) {
        Some((s, _)) => Err(Mismatch::new(
            "missing series",
            format!("expected series {} not found in result", s.labels),
        )),
        None => Ok(()),
    }
}

fn describe_expected(exp: &Expectations) -> String {
    match &exp.result {
        ExpectedResult::Scalar(_) => "a scalar".into(),
        ExpectedResult::String(s) => format!("string {s:?}"),
        ExpectedResult::Series(s) if exp.range_vector.is_some() => {
            format!("a range vector of {} series", s.len())
        }
        ExpectedResult::Series(s) => format!("{} series", s.len()),
    }
}

fn format_points(points: &[(i64, f64)]) -> String {
    const SHOWN: usize = 12;
    let mut out: Vec<String> = points
        .iter()
        .take(SHOWN)
        .map(|(t, v)| format!("{v} @{t}"))
        .collect();
    if points.len() > SHOWN {
        out.push(format!("… {} more", points.len() - SHOWN));
    }
    format!("[{}]", out.join(", "))
}
