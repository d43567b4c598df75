//! The `anchored` and `smoothed` selector modifiers.
//!
//! An anchored range selector also reads the last sample at or before the start of its range
//! (within the lookback delta), so `increase(x[1m] anchored)` is the plain difference between
//! the value at the range start and the last value, without extrapolation. A smoothed range
//! selector additionally reads the first sample after the range end and interpolates linearly
//! at both boundaries. A smoothed instant selector interpolates between the samples around
//! the evaluation time instead of taking the latest one.

use sextant_storage::histogram::HistogramError;
use sextant_storage::{CounterResetHint, FloatHistogram};

use super::eval::RangeArg;
use crate::promql::ast::{Call, Expr};

/// Functions that accept an anchored range selector (sorted, as listed in errors).
const ANCHORED_SAFE: [&str; 5] = ["changes", "delta", "increase", "rate", "resets"];
/// Functions that accept a smoothed range selector (sorted).
const SMOOTHED_SAFE: [&str; 3] = ["delta", "increase", "rate"];

/// The error for a call whose range argument uses a modifier the function cannot handle.
pub(super) fn check_call(c: &Call) -> Option<String> {
    let ms = c.args.iter().find_map(|a| {
        let mut a = a;
        while let Expr::Paren(inner) = a {
            a = inner;
        }
        match a {
            Expr::MatrixSelector(ms) => Some(ms),
            _ => None,
        }
    })?;
    let name = c.func.name;
    let (modifier, safe): (&str, &[&str]) = if ms.selector.anchored {
        ("anchored", &ANCHORED_SAFE)
    } else if ms.selector.smoothed {
        ("smoothed", &SMOOTHED_SAFE)
    } else {
        return None;
    };
    if safe.contains(&name) {
        return None;
    }
    Some(format!(
        "{modifier} modifier can only be used with: {} - not with {name}",
        safe.join(", ")
    ))
}

/// Linear interpolation at `t` between two points; for counters a decrease is taken as a
/// reset, with the counter restarting from zero.
fn interpolate(p1: (i64, f64), p2: (i64, f64), t: i64, is_counter: bool) -> f64 {
    let (t1, mut y1) = p1;
    let (t2, y2) = p2;
    if is_counter && y2 < y1 {
        y1 = 0.0;
    }
    if t2 == t1 {
        return y2;
    }
    y1 + (y2 - y1) * (t - t1) as f64 / (t2 - t1) as f64
}

/// Index bounds of an extended window: the first sample to use (the last one at or before
/// `start`, if any) and the last one (for smoothed windows, the first at or after `end`).
/// `None` when no sample falls after `start` (or, smoothed, all samples follow `end`).
fn bounds(points: &[(i64, f64)], start: i64, end: i64, smoothed: bool) -> Option<(usize, usize)> {
    let n = points.len();
    let last_idx = n.checked_sub(1)?;
    let head = points.get(..last_idx).unwrap_or(&[]);
    let first = head.partition_point(|p| p.0 <= start).saturating_sub(1);
    let last = if smoothed {
        head.partition_point(|p| p.0 < end)
    } else {
        last_idx
    };
    let (ft, lt) = (points.get(first)?.0, points.get(last)?.0);
    if lt <= start || (smoothed && ft > end) {
        return None;
    }
    Some((first, last))
}

/// The values at the range boundaries: the boundary samples, or interpolations at `start`
/// and `end` for smoothed windows.
fn boundary_values(
    points: &[(i64, f64)],
    (first, last): (usize, usize),
    start: i64,
    end: i64,
    smoothed: bool,
    is_counter: bool,
) -> Option<(f64, f64)> {
    let f = *points.get(first)?;
    let l = *points.get(last)?;
    let left = match points.get(first + 1) {
        Some(&next) if smoothed && f.0 < start => interpolate(f, next, start, is_counter),
        _ => f.1,
    };
    let right = match last.checked_sub(1).and_then(|i| points.get(i)) {
        Some(&prev) if smoothed && l.0 > end => interpolate(prev, l, end, is_counter),
        _ => l.1,
    };
    Some((left, right))
}

/// `rate`, `increase` and `delta` over an anchored or smoothed window `(start, end]`.
pub(super) fn extended_rate(
    points: &[(i64, f64)],
    arg: &RangeArg,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let (start, end, smoothed) = (arg.start, arg.end, arg.smoothed);
    let (mut first, mut last) = bounds(points, start, end, smoothed)?;
    let (left, right) = boundary_values(points, (first, last), start, end, smoothed, is_counter)?;
    let mut result = right - left;
    if is_counter {
        // Resets at the boundaries are handled by the interpolation; only samples strictly
        // inside the range are checked here.
        if points.get(first)?.0 <= start {
            first += 1;
        }
        if points.get(last)?.0 >= end {
            last = last.checked_sub(1)?;
        }
        let inner = if first <= last {
            points.get(first..=last).unwrap_or(&[])
        } else {
            &[]
        };
        let mut prev = left;
        for p in inner {
            if p.1 < prev {
                result += prev;
            }
            prev = p.1;
        }
        if right < prev {
            result += prev;
        }
    }
    if is_rate {
        result /= arg.range_ms as f64 / 1000.0;
    }
    Some(result)
}

/// An extended window reduced to `(start, end]`: a point at `start` holding the boundary
/// value, the samples strictly inside, and a point at `end` holding the other boundary value.
/// Empty when no sample falls inside the range.
pub(super) fn extend_points(
    points: &[(i64, f64)],
    start: i64,
    end: i64,
    smoothed: bool,
) -> Vec<(i64, f64)> {
    let Some((mut first, mut last)) = bounds(points, start, end, smoothed) else {
        return Vec::new();
    };
    let Some((left, right)) = boundary_values(points, (first, last), start, end, smoothed, false)
    else {
        return Vec::new();
    };
    if points.get(first).is_some_and(|p| p.0 <= start) {
        first += 1;
    }
    let drop_last = points.get(last).is_some_and(|p| p.0 >= end);
    let mut out = Vec::with_capacity(last.saturating_sub(first) + 3);
    out.push((start, left));
    if drop_last {
        match last.checked_sub(1) {
            Some(l) => last = l,
            None => first = usize::MAX,
        }
    }
    if first <= last {
        out.extend_from_slice(points.get(first..=last).unwrap_or(&[]));
    }
    out.push((end, right));
    out
}

/// The value of a smoothed instant selector at `t` from the samples within the lookback
/// delta on either side: the sample at `t`, an interpolation between its neighbours, or the
/// latest earlier value when nothing follows.
pub(super) fn smoothed_value(points: &[(i64, f64)], t: i64) -> Option<f64> {
    let i = points.partition_point(|p| p.0 < t);
    match (i.checked_sub(1).and_then(|j| points.get(j)), points.get(i)) {
        (_, Some(&(pt, v))) if pt == t => Some(v),
        (Some(&prev), Some(&next)) => Some(interpolate(prev, next, t, false)),
        (Some(&(_, v)), None) => Some(v),
        _ => None,
    }
}

/// The value of a smoothed instant selector over histograms (see [`smoothed_value`]). The
/// interpolation treats the pair as a counter unless the later histogram is a gauge: after a
/// counter reset the counter restarts from zero. Fails when exponential and custom-bucket
/// histograms would be combined.
pub(super) fn smoothed_histogram(
    points: &[(i64, FloatHistogram)],
    t: i64,
) -> Result<Option<FloatHistogram>, HistogramError> {
    let i = points.partition_point(|p| p.0 < t);
    match (i.checked_sub(1).and_then(|j| points.get(j)), points.get(i)) {
        (_, Some((pt, h))) if *pt == t => Ok(Some(h.clone())),
        (Some(prev), Some(next)) => interpolate_histogram(prev, next, t).map(Some),
        (Some((_, h)), None) => Ok(Some(h.clone())),
        _ => Ok(None),
    }
}

/// Linear interpolation at `t` between two histogram points.
pub(super) fn interpolate_histogram(
    (t1, h1): &(i64, FloatHistogram),
    (t2, h2): &(i64, FloatHistogram),
    t: i64,
) -> Result<FloatHistogram, HistogramError> {
    if h1.uses_custom_buckets() != h2.uses_custom_buckets() {
        return Err(HistogramError::MixedSchemas);
    }
    if t2 == t1 {
        return Ok(h2.clone());
    }
    let fraction = (t - t1) as f64 / (t2 - t1) as f64;
    let is_counter = h2.counter_reset_hint != CounterResetHint::Gauge;
    if is_counter && h2.detect_reset(h1) {
        let mut r = h2.clone();
        r.mul(fraction);
        return Ok(r);
    }
    let mut diff = h2.clone();
    diff.sub(h1)?;
    diff.mul(fraction);
    let mut r = h1.clone();
    r.add(&diff)?;
    r.counter_reset_hint = h2.counter_reset_hint;
    r.compact(0);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `metric 1+1x4 9+1x4` scraped every 15s.
    fn counter() -> Vec<(i64, f64)> {
        [1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 10.0, 11.0, 12.0, 13.0]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 15_000, *v))
            .collect()
    }

    #[test]
    fn anchored_increase_uses_the_sample_before_the_range() {
        // Anchored selections end at the range end.
        let p = counter();
        let upto = |t: i64| p.iter().copied().filter(|x| x.0 <= t).collect::<Vec<_>>();
        // At 80s over 1m: anchor 2 (t=15s), last 9 (t=75s).
        let at80 = upto(80_000);
        assert_eq!(
            extended_rate(&at80, &arg(20_000, 80_000, false), true, false),
            Some(7.0)
        );
        // At 5s only t=0 is in (−55s, 5s]: the increase from itself is 0.
        let at5 = upto(5_000);
        assert_eq!(
            extended_rate(&at5, &arg(-55_000, 5_000, false), true, false),
            Some(0.0)
        );
        // Rate divides by the range.
        let r = extended_rate(&at80, &arg(20_000, 80_000, false), true, true);
        assert_eq!(r, Some(7.0 / 60.0));
    }

    #[test]
    fn smoothed_increase_interpolates_at_both_ends() {
        let p = counter();
        // At 65s: left interpolates 1→2 at 5s (1.333), right 5→9 at 65s (6.333).
        let v = extended_rate(&p, &arg(5_000, 65_000, true), true, false).unwrap_or(f64::NAN);
        assert!((v - 5.0).abs() < 1e-9, "{v}");
        // Only data after the range: nothing.
        let late = [(10_000, 5.0), (20_000, 6.0)];
        assert_eq!(
            extended_rate(&late, &arg(0, 5_000, true), true, false),
            None
        );
        // Only data before the range: nothing.
        assert_eq!(
            extended_rate(&late, &arg(25_000, 30_000, true), true, false),
            None
        );
    }

    #[test]
    fn counter_resets_are_corrected() {
        // 100 → 10 at 15s; smoothed rate at 12s over 10s interpolates across the reset.
        let p = [(0, 100.0), (15_000, 10.0)];
        let v = extended_rate(&p, &arg(2_000, 12_000, true), true, true).unwrap_or(f64::NAN);
        assert!((v - 0.666_666_666_666_667).abs() < 1e-9, "{v}");
        // Anchored delta does not correct resets.
        let q = [(0, 3.0), (60_000, 2.0)];
        assert_eq!(
            extended_rate(&q, &arg(30_000, 90_000, false), false, false),
            Some(-1.0)
        );
    }

    #[test]
    fn extended_points_for_changes_and_resets() {
        // The selection holds nothing after the range end for anchored windows.
        let p = [(0, 2.0), (120_000, 1.0)];
        // (60s, 120s] anchored at t=0: [2 at 60s, 1 at 120s].
        assert_eq!(
            extend_points(&p, 60_000, 120_000, false),
            vec![(60_000, 2.0), (120_000, 1.0)]
        );
        // Nothing inside (120s, 180s]: empty.
        assert!(extend_points(&p, 120_000, 180_000, false).is_empty());
        // The last sample before the end is repeated at the end.
        assert_eq!(
            extend_points(&p, 100_000, 200_000, false),
            vec![(100_000, 2.0), (120_000, 1.0), (200_000, 1.0)]
        );
    }

    #[test]
    fn smoothed_instant_values() {
        let p = [(0, 1.0), (10_000, 2.0), (20_000, 4.0)];
        assert_eq!(smoothed_value(&p, 10_000), Some(2.0));
        assert_eq!(smoothed_value(&p, 15_000), Some(3.0));
        assert_eq!(smoothed_value(&p, 25_000), Some(4.0));
        assert_eq!(smoothed_value(&p, -1), None);
        assert_eq!(smoothed_value(&[], 0), None);
        // Not a counter: a decrease interpolates downwards.
        assert_eq!(smoothed_value(&[(0, 5.0), (10_000, 1.0)], 5_000), Some(3.0));
    }
}
