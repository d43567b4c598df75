//! `anchored` / `smoothed` range selectors over series with native histograms: `rate`,
//! `increase` and `delta` of histograms (boundary values picked or interpolated as for floats,
//! counter resets corrected between the boundaries), and anchored `resets` / `changes` over
//! series that mix floats and histograms.
//!
//! The window `(start, end]` of [`RangeArg`] is extended: the series also holds the samples
//! within the lookback delta before it (and, smoothed, after it).

use sextant_storage::histogram::HistogramError;
use sextant_storage::{CounterResetHint, FloatHistogram};

use super::eval::RangeArg;
use super::model::Series;
use super::range_hist::{self, Notes, Out};

/// `rate`/`increase`/`delta`/`resets`/`changes` of an anchored or smoothed selection of a
/// series that has histogram points.
pub(super) fn apply(name: &str, s: &Series, arg: &RangeArg, notes: &mut Notes) -> Option<Out> {
    let metric = s.labels.metric_name().unwrap_or("");
    match name {
        "rate" | "increase" | "delta" => {
            if !s.points.is_empty() {
                notes
                    .warns
                    .push(range_hist::mixed_floats_histograms(metric));
                return None;
            }
            extended_histogram_rate(
                &s.hpoints,
                arg,
                name != "delta",
                name == "rate",
                metric,
                notes,
            )
            .map(Out::Hist)
        }
        "resets" | "changes" => transitions(s, arg, name == "resets").map(Out::Float),
        _ => None,
    }
}

/// Linear interpolation at `t` between two histogram points. For counters, a reset between
/// them restarts the counter from zero; the flag tells whether that happened.
fn interpolate(
    (t1, h1): &(i64, FloatHistogram),
    (t2, h2): &(i64, FloatHistogram),
    t: i64,
    is_counter: bool,
) -> Result<(FloatHistogram, bool), HistogramError> {
    if t2 == t1 {
        return Ok((h2.clone(), false));
    }
    let fraction = (t - t1) as f64 / (t2 - t1) as f64;
    if is_counter && range_hist::is_reset(h2, h1) {
        let mut r = h2.clone();
        r.mul(fraction);
        return Ok((r, true));
    }
    let mut diff = h2.clone();
    diff.sub(h1)?;
    diff.mul(fraction);
    let mut r = h1.clone();
    r.add(&diff)?;
    r.compact(0);
    Ok((r, false))
}

/// `rate`, `increase` and `delta` of histograms over an anchored or smoothed window.
fn extended_histogram_rate(
    points: &[(i64, FloatHistogram)],
    arg: &RangeArg,
    is_counter: bool,
    is_rate: bool,
    metric: &str,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let (start, end, smoothed) = (arg.start, arg.end, arg.smoothed);
    let last_idx = points.len().checked_sub(1)?;
    let head = points.get(..last_idx).unwrap_or(&[]);
    let first = head.partition_point(|p| p.0 <= start).saturating_sub(1);
    let last = if smoothed {
        head.partition_point(|p| p.0 < end)
    } else {
        last_idx
    };
    let f = points.get(first)?;
    let l = points.get(last)?;
    if l.0 <= start || (smoothed && f.0 > end) {
        return None;
    }
    let used = points.get(first..=last).unwrap_or(&[]);
    let custom = f.1.uses_custom_buckets();
    if used.iter().any(|p| p.1.uses_custom_buckets() != custom) {
        notes.warns.push(range_hist::mixed_exp_custom(metric));
        return None;
    }
    let is_gauge = |h: &FloatHistogram| h.counter_reset_hint == CounterResetHint::Gauge;
    if is_counter && used.iter().any(|p| is_gauge(&p.1)) {
        notes.warns.push(range_hist::not_counter(metric));
    }
    if !is_counter && (!is_gauge(&f.1) || !is_gauge(&l.1)) {
        notes.warns.push(range_hist::not_gauge(metric));
    }
    let mixed = |notes: &mut Notes| notes.warns.push(range_hist::mixed_exp_custom(metric));

    // Boundary values.
    let left_interp = smoothed && f.0 < start && first < last;
    let left = if left_interp {
        match points.get(first + 1) {
            Some(next) => match interpolate(f, next, start, is_counter) {
                Ok((h, _)) => h,
                Err(_) => {
                    mixed(notes);
                    return None;
                }
            },
            None => f.1.clone(),
        }
    } else {
        f.1.clone()
    };
    let right_interp = smoothed && l.0 > end && last > 0;
    let (right, right_crossed) = if right_interp {
        match last.checked_sub(1).and_then(|i| points.get(i)) {
            Some(prev) => match interpolate(prev, l, end, is_counter) {
                Ok(r) => r,
                Err(_) => {
                    mixed(notes);
                    return None;
                }
            },
            None => (l.1.clone(), false),
        }
    } else {
        (l.1.clone(), false)
    };

    let mut result = right.clone();
    match result.sub(&left) {
        Err(_) => {
            mixed(notes);
            return None;
        }
        Ok(info) if info.custom_buckets_reconciled => {
            notes.infos.push(range_hist::reconciled("subtraction"));
        }
        Ok(_) => {}
    }
    if is_counter {
        // Samples strictly inside the range; resets at interpolated boundaries are already
        // part of the boundary values.
        let a = if f.0 <= start { first + 1 } else { first };
        let b = if l.0 >= end {
            last.checked_sub(1)
        } else {
            Some(last)
        };
        let inner: &[(i64, FloatHistogram)] = match b {
            Some(b) if a <= b => points.get(a..=b).unwrap_or(&[]),
            _ => &[],
        };
        let mut corrections: Vec<&FloatHistogram> = Vec::new();
        let mut prev_val: &FloatHistogram = &left;
        // The raw sample the previous value is (None for an interpolated left boundary, which
        // lies on the segment leading to the first inner sample and so never precedes a reset).
        let mut prev_raw: Option<&FloatHistogram> = (!left_interp).then_some(&f.1);
        for (_, p) in inner {
            if prev_raw.is_some_and(|r| range_hist::is_reset(p, r)) {
                corrections.push(prev_val);
            }
            prev_val = p;
            prev_raw = Some(p);
        }
        let right_reset = if right_interp {
            // Both boundaries interpolated on the same segment: the left one already holds
            // the post-reset part.
            right_crossed && !(inner.is_empty() && left_interp)
        } else if b == Some(last) {
            // The right boundary is the last inner sample itself.
            false
        } else {
            prev_raw.is_some_and(|r| range_hist::is_reset(&l.1, r))
        };
        if right_reset {
            corrections.push(prev_val);
        }
        for c in corrections {
            match result.add(c) {
                Err(_) => {
                    mixed(notes);
                    return None;
                }
                Ok(info) if info.custom_buckets_reconciled => {
                    notes.infos.push(range_hist::reconciled("addition"));
                }
                Ok(_) => {}
            }
        }
    }
    result.counter_reset_hint = CounterResetHint::Gauge;
    result.compact(0);
    if is_rate {
        result.div(arg.range_ms as f64 / 1000.0);
    }
    Some(result)
}

/// Anchored `resets` / `changes` over floats and histograms merged by time: from the last
/// sample at or before the range start (either kind) to the range end. A switch between
/// kinds counts once.
fn transitions(s: &Series, arg: &RangeArg, resets: bool) -> Option<f64> {
    let mut merged = Series::new(s.labels.clone());
    let in_window = |t: i64| t <= arg.end;
    let all_times: Vec<i64> = {
        let mut v: Vec<i64> = s
            .points
            .iter()
            .map(|p| p.0)
            .chain(s.hpoints.iter().map(|p| p.0))
            .filter(|t| in_window(*t))
            .collect();
        v.sort_unstable();
        v
    };
    let last_t = *all_times.last()?;
    if last_t <= arg.start {
        return None;
    }
    // The anchor: the newest sample at or before the start (or the oldest one).
    let anchor_idx = all_times
        .partition_point(|t| *t <= arg.start)
        .saturating_sub(1);
    let anchor_t = *all_times.get(anchor_idx)?;
    merged.points = s
        .points
        .iter()
        .filter(|p| p.0 >= anchor_t && in_window(p.0))
        .copied()
        .collect();
    merged.hpoints = s
        .hpoints
        .iter()
        .filter(|p| p.0 >= anchor_t && in_window(p.0))
        .cloned()
        .collect();
    Some(range_hist::count_transitions(&merged, resets))
}

#[cfg(test)]
mod tests {
    use sextant_storage::{Labels, Span};

    use super::*;

    fn h(count: f64, hint: CounterResetHint) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: hint,
            count,
            sum: count,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![count],
            ..FloatHistogram::default()
        }
    }

    fn arg(start: i64, end: i64, smoothed: bool) -> RangeArg {
        RangeArg {
            series: Vec::new(),
            start,
            end,
            range_ms: end - start,
            anchored: !smoothed,
            smoothed,
        }
    }

    fn increase(points: Vec<(i64, FloatHistogram)>, a: &RangeArg) -> f64 {
        let mut s = Series::new(Labels::empty());
        s.hpoints = points;
        let mut notes = Notes::default();
        match apply("increase", &s, a, &mut notes) {
            Some(Out::Hist(h)) => h.count,
            _ => f64::NAN,
        }
    }

    #[test]
    fn anchored_increase_with_a_reset_at_the_end() {
        use CounterResetHint::*;
        let p = vec![
            (0, h(5.0, Unknown)),
            (30_000, h(10.0, Unknown)),
            (60_000, h(3.0, CounterReset)),
        ];
        // 3 - 5 + 10: the last sample does not count its own reset twice.
        assert_eq!(increase(p, &arg(0, 70_000, false)), 8.0);
        let two = vec![(0, h(5.0, Unknown)), (30_000, h(3.0, CounterReset))];
        assert_eq!(increase(two, &arg(0, 30_000, false)), 3.0);
    }

    #[test]
    fn smoothed_increase_interpolates_across_resets() {
        use CounterResetHint::*;
        // Both boundaries on the same reset segment: no correction.
        let p = vec![(0, h(10.0, Unknown)), (20_000, h(5.0, CounterReset))];
        assert!((increase(p, &arg(5_000, 15_000, true)) - 2.5).abs() < 1e-12);
        // Right boundary across a reset: corrected by the sample before it.
        let q = vec![
            (0, h(5.0, Unknown)),
            (10_000, h(10.0, Unknown)),
            (20_000, h(3.0, CounterReset)),
        ];
        assert!((increase(q, &arg(5_000, 15_000, true)) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn anchored_transitions_start_at_the_anchor() {
        let mut s = Series::new(Labels::empty());
        s.hpoints = vec![
            (0, h(1.0, CounterResetHint::Unknown)),
            (60_000, h(2.0, CounterResetHint::Unknown)),
        ];
        s.points = vec![(120_000, 5.0), (180_000, 2.0)];
        // Window (120s, 180s]: anchor 5 at 120s, then 2 → one reset; the histograms before
        // the anchor are skipped.
        assert_eq!(
            transitions(&s, &arg(120_000, 180_000, false), true),
            Some(1.0)
        );
        // Nothing after the start: no result.
        assert_eq!(transitions(&s, &arg(180_000, 240_000, false), true), None);
    }
}
