//! The histogram trim operators `h </ x` (keep the observations below `x`) and `h >/ x` (keep
//! those above `x`), as Prometheus defines them.
//!
//! A bucket that contains `x` is split: linearly for custom buckets and the zero bucket,
//! linearly in log2 space for exponential buckets. When anything is removed, count and sum
//! are recomputed from what is kept, each kept (part of a) bucket contributing its count
//! times a representative value: the arithmetic midpoint of linear ranges, the geometric
//! midpoint of exponential ones. A histogram that loses nothing is returned unchanged.
//!
//! Special ranges: the zero bucket of an exponential histogram covers `[0, w]` when only
//! positive buckets are populated, `[-w, 0]` when only negative ones are, else `[-w, w]`.
//! The first custom bucket `(-Inf, u]` counts as `[0, u]` for positive `u`; for `u <= 0` it
//! is kept whole by `</` (its observations taken at `min(x, u)`) and removed by `>/`. The
//! last custom bucket `(l, +Inf]` is removed by `</` and kept whole by `>/`, its
//! observations taken at `max(x, l)`.

use sextant_storage::histogram::Bucket;
use sextant_storage::FloatHistogram;

/// Trims `h` in place at `x`: `keep_below` for `</`, otherwise `>/`.
pub(super) fn trim(h: &mut FloatHistogram, x: f64, keep_below: bool) {
    let custom = h.uses_custom_buckets();
    let positive: Vec<Bucket> = h.positive_bucket_iter().collect();
    let negative: Vec<Bucket> = h.negative_bucket_iter().collect();
    let has_positive = positive.iter().any(|b| b.count > 0.0);
    let has_negative = negative.iter().any(|b| b.count > 0.0);

    let mut changed = false;
    let mut kept_count = 0.0;
    let mut kept_sum = 0.0;
    let mut apply = |b: &Bucket, (keep, rep): (f64, f64), slot: Option<&mut f64>| {
        if keep != b.count {
            changed = true;
            if let Some(slot) = slot {
                *slot = keep;
            }
        }
        if keep != 0.0 {
            kept_count += keep;
            kept_sum += keep * rep;
        }
    };
    for (i, b) in positive.iter().enumerate() {
        if b.count == 0.0 {
            continue;
        }
        let kept = if custom {
            custom_keep(b, x, keep_below)
        } else {
            exponential_keep(b, x, keep_below, true)
        };
        apply(b, kept, h.positive_buckets.get_mut(i));
    }
    for (i, b) in negative.iter().enumerate() {
        if b.count == 0.0 {
            continue;
        }
        apply(
            b,
            exponential_keep(b, x, keep_below, false),
            h.negative_buckets.get_mut(i),
        );
    }
    if h.zero_count > 0.0 {
        let w = h.zero_threshold;
        let (lo, hi) = match (has_positive, has_negative) {
            (true, false) => (0.0, w),
            (false, true) => (-w, 0.0),
            _ => (-w, w),
        };
        let zero = Bucket {
            lower: lo,
            upper: hi,
            count: h.zero_count,
            ..h.zero_bucket()
        };
        let mut zc = h.zero_count;
        apply(&zero, linear_keep(&zero, x, keep_below), Some(&mut zc));
        h.zero_count = zc;
    }
    if !changed {
        return;
    }
    h.count = kept_count;
    h.sum = if kept_count == 0.0 { 0.0 } else { kept_sum };
    h.compact(0);
}

/// Kept count and representative value of an exponential bucket (`positive` or negative).
fn exponential_keep(b: &Bucket, x: f64, keep_below: bool, positive: bool) -> (f64, f64) {
    let geo = |a: f64, c: f64| {
        let m = (a.abs() * c.abs()).sqrt();
        if positive {
            m
        } else {
            -m
        }
    };
    let all = (b.count, geo(b.lower, b.upper));
    let none = (0.0, 0.0);
    // The share of the bucket below `x`, in log2 space.
    let below = || {
        let lo = b.lower.abs().log2();
        let hi = b.upper.abs().log2();
        let v = x.abs().log2();
        let f = if positive {
            (v - lo) / (hi - lo)
        } else {
            1.0 - (v - hi) / (lo - hi)
        };
        b.count * f
    };
    if keep_below {
        if b.upper <= x {
            all
        } else if x <= b.lower {
            none
        } else {
            (below(), geo(b.lower, x))
        }
    } else if b.lower >= x {
        all
    } else if x >= b.upper {
        none
    } else {
        (b.count - below(), geo(x, b.upper))
    }
}

/// Kept count and representative value of a finite range split linearly.
fn linear_keep(b: &Bucket, x: f64, keep_below: bool) -> (f64, f64) {
    let (l, u) = (b.lower, b.upper);
    if keep_below {
        if u <= x {
            (b.count, (l + u) / 2.0)
        } else if x <= l {
            (0.0, 0.0)
        } else {
            (b.count * (x - l) / (u - l), (l + x) / 2.0)
        }
    } else if l >= x {
        (b.count, (l + u) / 2.0)
    } else if x >= u {
        (0.0, 0.0)
    } else {
        (b.count * (u - x) / (u - l), (x + u) / 2.0)
    }
}

/// Kept count and representative value of a custom bucket.
fn custom_keep(b: &Bucket, x: f64, keep_below: bool) -> (f64, f64) {
    let (l, u) = (b.lower, b.upper);
    if l == f64::NEG_INFINITY {
        let rep_all = if u > 0.0 { u / 2.0 } else { u };
        if keep_below {
            if x >= u {
                (b.count, rep_all)
            } else if u <= 0.0 {
                (b.count, x)
            } else if x >= 0.0 && u.is_finite() {
                (b.count * x / u, x / 2.0)
            } else {
                (0.0, 0.0)
            }
        } else if x <= l {
            (b.count, rep_all)
        } else if x >= 0.0 && u.is_finite() && u > x {
            (b.count * (1.0 - x / u), (x + u) / 2.0)
        } else {
            (0.0, 0.0)
        }
    } else if u == f64::INFINITY {
        if keep_below {
            if x >= u {
                (b.count, l)
            } else {
                (0.0, 0.0)
            }
        } else if x == f64::INFINITY {
            (0.0, 0.0)
        } else {
            (b.count, x.max(l))
        }
    } else {
        linear_keep(b, x, keep_below)
    }
}
