//! Functions over range vectors: `rate`, `increase`, `delta`, `irate`, `idelta`, the
//! `*_over_time` family, `deriv`, `predict_linear`, `resets`, `changes` and
//! `double_exponential_smoothing`.

use super::eval::RangeArg;
use crate::promql::value::QueryError;

/// One step of Kahan-Babuška-Neumaier summation: returns the new sum and compensation.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The φ-quantile of `values` with linear interpolation; NaN sorts first.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let lv = values.get(lower as usize).copied().unwrap_or(f64::NAN);
    let uv = values.get(upper as usize).copied().unwrap_or(f64::NAN);
    lv * (1.0 - weight) + uv * weight
}

/// rate/increase/delta with Prometheus' extrapolation to the range boundaries.
pub(super) fn extrapolated_rate(
    points: &[(i64, f64)],
    arg: &RangeArg,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    counter_rate(points, arg, is_counter, is_rate, is_counter)
}

/// A timestamped float: the `(t, v)` pairs of the evaluators and storage's samples, so the
/// window math can run on either without copying.
pub(super) trait Point: Copy {
    fn t(&self) -> i64;
    fn v(&self) -> f64;
}

impl Point for (i64, f64) {
    fn t(&self) -> i64 {
        self.0
    }
    fn v(&self) -> f64 {
        self.1
    }
}

impl Point for sextant_storage::Sample {
    fn t(&self) -> i64 {
        self.t
    }
    fn v(&self) -> f64 {
        self.v
    }
}

/// [`extrapolated_rate`], told whether the window may contain a counter reset: a caller that
/// knows the whole series has none skips the per-window scan (the result is the same).
pub(super) fn counter_rate<P: Point>(
    points: &[P],
    arg: &RangeArg,
    is_counter: bool,
    is_rate: bool,
    may_reset: bool,
) -> Option<f64> {
    RateWindow::of(points, arg.start, arg.end, is_counter, may_reset)
        .map(|w| w.extrapolate(arg.range_ms, is_counter, is_rate))
}

/// What the extrapolation of `rate`/`increase`/`delta` needs from one window, as floats: the
/// distances of its first and last samples from the window's bounds and from each other (in
/// ms), the number of sample intervals, the first value and the (reset-corrected) change.
#[derive(Clone, Copy, Debug)]
pub(super) struct RateWindow {
    pub to_start_ms: f64,
    pub to_end_ms: f64,
    pub sampled_ms: f64,
    pub intervals: f64,
    pub first_v: f64,
    pub result: f64,
}

impl RateWindow {
    /// The window `(start, end]` holding `points`; `None` below two points.
    pub(super) fn of<P: Point>(
        points: &[P],
        start: i64,
        end: i64,
        is_counter: bool,
        may_reset: bool,
    ) -> Option<RateWindow> {
        if points.len() < 2 {
            return None;
        }
        let first = points.first()?;
        let last = points.last()?;
        let mut result = last.v() - first.v();
        if is_counter && may_reset {
            for w in points.windows(2) {
                let (a, b) = (w[0].v(), w[1].v());
                if b < a {
                    result += a;
                }
            }
        }
        Some(RateWindow {
            to_start_ms: (first.t() - start) as f64,
            to_end_ms: (end - last.t()) as f64,
            sampled_ms: (last.t() - first.t()) as f64,
            intervals: (points.len() - 1) as f64,
            first_v: first.v(),
            result,
        })
    }

    /// Prometheus' extrapolation of the change to the window's bounds (and per second for
    /// `rate`).
    #[inline]
    pub(super) fn extrapolate(&self, range_ms: i64, is_counter: bool, is_rate: bool) -> f64 {
        self.result * self.factor(range_ms, is_counter, is_rate)
    }

    /// The factor [`RateWindow::extrapolate`] multiplies the change by.
    #[inline]
    pub(super) fn factor(&self, range_ms: i64, is_counter: bool, is_rate: bool) -> f64 {
        let result = self.result;
        let mut to_start = self.to_start_ms / 1000.0;
        let mut to_end = self.to_end_ms / 1000.0;
        let sampled = self.sampled_ms / 1000.0;
        let avg = sampled / self.intervals;
        let threshold = avg * 1.1;
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        if is_counter {
            let to_zero = if result > 0.0 && self.first_v >= 0.0 {
                sampled * (self.first_v / result)
            } else {
                to_start
            };
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if is_rate {
            factor /= range_ms as f64 / 1000.0;
        }
        factor
    }
}

/// irate/idelta from the last two samples.
fn instant_value(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let (pt, pv) = *points.get(n - 2)?;
    let (lt, lv) = *points.get(n - 1)?;
    let mut v = if is_rate && lv < pv { lv } else { lv - pv };
    let interval = lt - pt;
    if interval == 0 {
        return None;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept with x measured in seconds from `intercept_t`.
pub(super) fn linear_regression(points: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = points.first().map(|p| p.1).unwrap_or(f64::NAN);
    let mut const_y = true;
    for (i, &(t, v)) in points.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// The mean of `vals`, read in order (no intermediate copy).
fn avg_over_time(vals: impl IntoIterator<Item = f64>) -> f64 {
    let mut vals = vals.into_iter();
    let Some(first) = vals.next() else {
        return f64::NAN;
    };
    let (mut sum, mut count, mut mean, mut c, mut incremental) = (first, 1.0, 0.0, 0.0, false);
    for (i, v) in vals.enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn sum_over_time(vals: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in vals {
        (s, c) = kahan_inc(v, s, c);
    }
    if s.is_infinite() {
        s
    } else {
        s + c
    }
}

fn variance(vals: &[f64]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &v in vals {
        count += 1.0;
        let delta = v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

fn double_exponential_smoothing(vals: &[f64], sf: f64, tf: f64) -> Option<f64> {
    if vals.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = *vals.first()?;
    let mut b = vals.get(1)? - s1;
    for (i, &v) in vals.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// Scalar arguments of range functions (quantile, predict_linear, smoothing factors).
#[derive(Clone, Copy, Default)]
pub(super) struct Params {
    pub p0: f64,
    pub p1: f64,
    /// Evaluation time (ms) for `predict_linear`.
    pub t: i64,
}

/// Whether [`values_over_time`] computes `name`.
pub(super) fn is_values_over_time(name: &str) -> bool {
    matches!(
        name,
        "avg_over_time"
            | "sum_over_time"
            | "count_over_time"
            | "min_over_time"
            | "max_over_time"
            | "last_over_time"
            | "first_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
    )
}

/// The `*_over_time` functions that need nothing but the window's points (sorted, without
/// staleness markers), on any kind of point; `None` for an empty window or another name.
pub(super) fn values_over_time<P: Point>(name: &str, points: &[P]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    Some(match name {
        "avg_over_time" => avg_over_time(points.iter().map(P::v)),
        "sum_over_time" => sum_over_time(points.iter().map(P::v)),
        "count_over_time" => points.len() as f64,
        "min_over_time" => extreme::<P, false>(points),
        "max_over_time" => extreme::<P, true>(points),
        "last_over_time" => last.v(),
        "first_over_time" => first.v(),
        "ts_of_last_over_time" => last.t() as f64 / 1000.0,
        "ts_of_first_over_time" => first.t() as f64 / 1000.0,
        _ => return None,
    })
}

/// `max_over_time` (`MAX`) or `min_over_time` of a non-empty window, as Prometheus folds it:
/// the first value, replaced by each later one that is greater (smaller), or whenever the kept
/// one is NaN. That is the earliest of the extreme non-NaN values (NaN when all are NaN).
/// Lanes kept apart break the dependency from one comparison to the next; the only values
/// that compare equal but differ are ±0, so a zero result is looked up in order.
fn extreme<P: Point, const MAX: bool>(points: &[P]) -> f64 {
    const LANES: usize = 4;
    let better = |x: f64, m: f64| if MAX { x > m } else { x < m };
    let start = if MAX {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    let mut lanes = [start; LANES];
    let mut groups = points.chunks_exact(LANES);
    for g in &mut groups {
        for (m, p) in lanes.iter_mut().zip(g) {
            let x = p.v();
            // NaN never compares better, so it is skipped.
            *m = if better(x, *m) { x } else { *m };
        }
    }
    for p in groups.remainder() {
        let x = p.v();
        lanes[0] = if better(x, lanes[0]) { x } else { lanes[0] };
    }
    let best = lanes
        .into_iter()
        .fold(start, |m, x| if better(x, m) { x } else { m });
    if best == start || best == 0.0 {
        // No value beyond the starting infinity (all NaN, or the extreme is that infinity), or
        // a zero whose sign the first occurrence decides: the sequential fold.
        let first = points.first().map_or(f64::NAN, P::v);
        return points.iter().skip(1).fold(first, |m, p| {
            let x = p.v();
            if better(x, m) || m.is_nan() {
                x
            } else {
                m
            }
        });
    }
    best
}

/// Computes `name` over one series' points. `None` means no output for the series.
pub(super) fn apply(
    name: &str,
    points: &[(i64, f64)],
    arg: &RangeArg,
    p: Params,
) -> Result<Option<f64>, QueryError> {
    let vals = || points.iter().map(|x| x.1).collect::<Vec<f64>>();
    let nonempty = !points.is_empty();
    let r = match name {
        "rate" => extrapolated_rate(points, arg, true, true),
        "increase" => extrapolated_rate(points, arg, true, false),
        "delta" => extrapolated_rate(points, arg, false, false),
        "irate" => instant_value(points, true),
        "idelta" => instant_value(points, false),
        _ if is_values_over_time(name) => values_over_time(name, points),
        "ts_of_max_over_time" => points.split_first().map(|(f, rest)| {
            let best = rest
                .iter()
                .fold(*f, |m, x| if x.1 >= m.1 || m.1.is_nan() { *x } else { m });
            best.0 as f64 / 1000.0
        }),
        "ts_of_min_over_time" => points.split_first().map(|(f, rest)| {
            let best = rest
                .iter()
                .fold(*f, |m, x| if x.1 <= m.1 || m.1.is_nan() { *x } else { m });
            best.0 as f64 / 1000.0
        }),
        "present_over_time" => nonempty.then_some(1.0),
        "quantile_over_time" => nonempty.then(|| quantile(p.p0, vals())),
        "stdvar_over_time" => nonempty.then(|| variance(&vals())),
        "stddev_over_time" => nonempty.then(|| variance(&vals()).sqrt()),
        "mad_over_time" => nonempty.then(|| {
            let v = vals();
            if v.iter().any(|x| x.is_nan()) {
                f64::NAN
            } else {
                let median = quantile(0.5, v.clone());
                quantile(0.5, v.iter().map(|x| (x - median).abs()).collect())
            }
        }),
        "deriv" => {
            if points.len() < 2 {
                None
            } else {
                let t0 = points.first().map(|x| x.0).unwrap_or(0);
                Some(linear_regression(points, t0).0)
            }
        }
        "predict_linear" => {
            if points.len() < 2 {
                None
            } else {
                let (slope, intercept) = linear_regression(points, p.t);
                Some(slope * p.p0 + intercept)
            }
        }
        "resets" => nonempty.then(|| {
            points
                .windows(2)
                .filter(|w| matches!(w, [a, b] if b.1 < a.1))
                .count() as f64
        }),
        "changes" => nonempty.then(|| {
            points
                .windows(2)
                .filter(|w| matches!(w, [a, b] if b.1 != a.1 && !(a.1.is_nan() && b.1.is_nan())))
                .count() as f64
        }),
        "double_exponential_smoothing" | "holt_winters" => {
            if !(p.p0 > 0.0 && p.p0 < 1.0) {
                return Err(QueryError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {:.6}",
                    p.p0
                )));
            }
            if !(p.p1 > 0.0 && p.p1 < 1.0) {
                return Err(QueryError::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {:.6}",
                    p.p1
                )));
            }
            double_exponential_smoothing(&vals(), p.p0, p.p1)
        }
        _ => {
            return Err(QueryError::Execution(format!(
                "function {name} is not supported over range vectors"
            )))
        }
    };
    Ok(r)
}

/// Whether a range function keeps the metric name of its input.
pub(super) fn keeps_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

/// Whether `name` is evaluated by [`apply`].
pub(super) fn is_range_fn(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "ts_of_max_over_time"
            | "ts_of_min_over_time"
            | "present_over_time"
            | "quantile_over_time"
            | "stdvar_over_time"
            | "stddev_over_time"
            | "mad_over_time"
            | "deriv"
            | "predict_linear"
            | "resets"
            | "changes"
            | "double_exponential_smoothing"
            | "holt_winters"
    ) || is_values_over_time(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus' sequential `max_over_time`/`min_over_time` fold.
    fn fold(vals: &[f64], max: bool) -> f64 {
        vals[1..].iter().fold(vals[0], |m, &x| {
            if (max && x > m) || (!max && x < m) || m.is_nan() {
                x
            } else {
                m
            }
        })
    }

    #[test]
    fn extreme_matches_the_sequential_fold_bit_for_bit() {
        let pool = [
            1.5,
            -2.0,
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            7.25,
            -7.25,
            1e300,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..4000 {
            let len = 1 + (next() % 13) as usize;
            // Small pools make ties, all-NaN and all-infinite windows common.
            let kinds = 1 + (case % pool.len());
            let vals: Vec<f64> = (0..len)
                .map(|_| pool[(next() % kinds as u64) as usize])
                .collect();
            let points: Vec<(i64, f64)> = vals.iter().map(|&v| (0, v)).collect();
            for (max, name) in [(true, "max_over_time"), (false, "min_over_time")] {
                let got = values_over_time(name, &points).map(f64::to_bits);
                assert_eq!(got, Some(fold(&vals, max).to_bits()), "{name} {vals:?}");
            }
        }
        assert_eq!(values_over_time::<(i64, f64)>("max_over_time", &[]), None);
    }
}
