//! Selectors and range functions over all steps: one pass over each series' samples with
//! pointers that only move forward, series processed in parallel batches.

use rayon::prelude::*;
use sextant_storage::{is_stale_nan, Labels, LoadScratch, Sample, Series};

use super::{Col, Ctx, Env, SCol, Sink, Stop, R};
use crate::promql::ast::{Call, MatrixSelector, VectorSelector};
use crate::promql::engine::eval::RangeArg;
use crate::promql::engine::prefetch::{key, LazySelection};
use crate::promql::engine::range_fns::{self, Params, Point, RateWindow};

/// Series per sequential batch: bounds the columns held at once.
const BATCH: usize = 4096;
/// Most series per parallel task.
const CHUNK_MAX: usize = 64;
/// Fewest series per parallel task.
const CHUNK_MIN: usize = 16;
/// Below this many series everything runs on the calling thread.
const PARALLEL_MIN: usize = 64;
/// Below this many series, queries with fewer steps than [`PARALLEL_MIN_STEPS`] (instant
/// queries) run on the calling thread: their work per series is too small to wake others.
const PARALLEL_MIN_FEW_STEPS: usize = 512;
/// See [`PARALLEL_MIN_FEW_STEPS`].
const PARALLEL_MIN_STEPS: usize = 8;

/// A selector's series: decoded already, or decoded here one at a time.
#[derive(Clone, Copy)]
enum Selected<'a> {
    Loaded(&'a [Series]),
    Lazy(&'a LazySelection),
}

impl<'a> Selected<'a> {
    fn of(env: &Env<'a>, vs: &VectorSelector) -> Selected<'a> {
        if let Some(sel) = env.lazy.and_then(|l| l.get(&key(vs))) {
            return Selected::Lazy(sel);
        }
        Selected::Loaded(env.data.get(&key(vs)).map(Vec::as_slice).unwrap_or(&[]))
    }

    fn len(self) -> usize {
        match self {
            Selected::Loaded(s) => s.len(),
            Selected::Lazy(l) => l.series.len(),
        }
    }

    fn any_labels(self, mut f: impl FnMut(&Labels) -> bool) -> bool {
        match self {
            Selected::Loaded(s) => s.iter().any(|s| f(&s.labels)),
            Selected::Lazy(l) => l.series.iter().any(|s| f(s.labels())),
        }
    }

    /// Applies `f` to the labels and float samples of the series `range` in order, decoding
    /// deferred ones into one reused buffer (series without samples in the range are
    /// skipped). A series with native histograms, or one that cannot be read, sends the query
    /// to the reference evaluator (which reads eagerly and reports storage errors).
    fn each(
        self,
        range: std::ops::Range<usize>,
        mut f: impl FnMut(&Labels, &[Sample]) -> R<()>,
    ) -> R<()> {
        match self {
            Selected::Loaded(series) => {
                for s in series.get(range).unwrap_or(&[]) {
                    f(&s.labels, &s.samples)?;
                }
            }
            Selected::Lazy(sel) => {
                let mut scratch = LoadScratch::default();
                let (mut floats, mut hists) = (Vec::new(), Vec::new());
                for s in sel.series.get(range).unwrap_or(&[]) {
                    s.load(sel.mint, sel.maxt, &mut scratch, &mut floats, &mut hists)
                        .map_err(|_| Stop::Fallback)?;
                    if !hists.is_empty() {
                        return Err(Stop::Fallback);
                    }
                    if !floats.is_empty() {
                        f(s.labels(), &floats)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Applies `f` to every series, in parallel for many series, and feeds the results to
/// `sink` in input order. `f` adds the samples it reads per step to its counts argument.
fn for_series<F>(cx: &mut Ctx<'_>, series: Selected<'_>, f: F, sink: &mut Sink<'_>) -> R<()>
where
    F: Fn(&Env<'_>, &Labels, &[Sample], &mut [usize]) -> R<Option<SCol>> + Sync,
{
    let n = cx.n();
    let total = series.len();
    for lo in (0..total).step_by(BATCH) {
        let hi = (lo + BATCH).min(total);
        cx.check_deadline()?;
        let env = &cx.env;
        let run_chunk = |range: std::ops::Range<usize>| -> R<(Vec<SCol>, Vec<usize>)> {
            let mut counts = vec![0usize; n];
            let mut out = Vec::with_capacity(range.len());
            series.each(range, |labels, samples| {
                if let Some(c) = f(env, labels, samples, &mut counts)? {
                    out.push(c);
                }
                Ok(())
            })?;
            Ok((out, counts))
        };
        let parallel = if n >= PARALLEL_MIN_STEPS {
            total >= PARALLEL_MIN
        } else {
            total >= PARALLEL_MIN_FEW_STEPS
        };
        let results: Vec<R<(Vec<SCol>, Vec<usize>)>> = if parallel {
            // A few tasks per thread, so that uneven series still spread over every core.
            let chunk =
                ((hi - lo) / (4 * rayon::current_num_threads()).max(1)).clamp(CHUNK_MIN, CHUNK_MAX);
            (lo..hi)
                .step_by(chunk)
                .collect::<Vec<usize>>()
                .into_par_iter()
                .map(|a| run_chunk(a..(a + chunk).min(hi)))
                .collect()
        } else {
            vec![run_chunk(lo..hi)]
        };
        for r in results {
            let (cols, counts) = r?;
            cx.add_counts(&counts);
            for c in cols {
                sink(cx, c)?;
            }
        }
    }
    Ok(())
}

/// An instant selector: the newest sample within the lookback delta at each step, unless it
/// is a staleness marker.
pub(super) fn stream_selector(cx: &mut Ctx<'_>, vs: &VectorSelector, sink: &mut Sink<'_>) -> R<()> {
    let series = Selected::of(&cx.env, vs);
    let offset = vs.offset;
    for_series(
        cx,
        series,
        |env, labels, samples, counts| Ok(select_instant(env, labels, samples, offset, counts)),
        sink,
    )
}

fn select_instant(
    env: &Env<'_>,
    labels: &Labels,
    samples: &[Sample],
    offset: i64,
    counts: &mut [usize],
) -> Option<SCol> {
    let n = env.ts.len();
    let lookback = env.opts.lookback_delta_ms;
    let mut col = Col::empty(n);
    let mut any = false;
    // `i`: number of samples at or before the current evaluation time.
    let mut i = 0usize;
    for (step, &t) in env.ts.iter().enumerate() {
        let et = t.saturating_sub(offset);
        let lo = et.saturating_sub(lookback);
        while samples.get(i).is_some_and(|p| p.t <= et) {
            i += 1;
        }
        let Some(p) = i.checked_sub(1).and_then(|j| samples.get(j)) else {
            continue;
        };
        if p.t <= lo || is_stale_nan(p.v) {
            continue;
        }
        col.v[step] = p.v;
        col.p[step] = true;
        counts[step] += 1;
        any = true;
    }
    any.then(|| SCol {
        labels: if env.labels_unread {
            Labels::empty()
        } else {
            labels.clone()
        },
        drop: false,
        col,
    })
}

/// A float range function over a matrix selector.
pub(super) fn stream_range_fn(
    cx: &mut Ctx<'_>,
    c: &Call,
    ms: &MatrixSelector,
    sink: &mut Sink<'_>,
) -> R<()> {
    let name = c.func.name;
    let vs = &ms.selector;
    let series = Selected::of(&cx.env, vs);
    // `rate`/`increase` of a metric whose name does not look like a counter raise an info:
    // leave those to the reference evaluator.
    if matches!(name, "rate" | "increase")
        && series.any_labels(|l| {
            l.metric_name().is_some_and(|n| {
                !(n.ends_with("_total")
                    || n.ends_with("_sum")
                    || n.ends_with("_count")
                    || n.ends_with("_bucket"))
            })
        })
    {
        return Err(Stop::Fallback);
    }
    let keep = range_fns::keeps_name(name);
    let (offset, range) = (vs.offset, ms.range);
    for_series(
        cx,
        series,
        |env, labels, samples, counts| {
            let Some(mut out) = range_series(env, name, labels, samples, offset, range, counts)?
            else {
                return Ok(None);
            };
            if !keep {
                env.drop_name(&mut out.labels, &mut out.drop);
            }
            Ok(Some(out))
        },
        sink,
    )
}

fn range_series(
    env: &Env<'_>,
    name: &str,
    labels: &Labels,
    samples: &[Sample],
    offset: i64,
    range: i64,
    counts: &mut [usize],
) -> R<Option<SCol>> {
    // rate/increase read the samples in place unless staleness markers must be skipped
    // first, and look for counter resets in a window only when the series has some.
    let (has_stale, may_reset) = if matches!(name, "rate" | "increase") {
        stale_and_reset(samples)
    } else {
        (false, false)
    };
    let col = match name {
        "rate" | "increase" if !has_stale => {
            let is_rate = name == "rate";
            let mut col = Col::empty(env.ts.len());
            let mut any = false;
            slide(
                env,
                samples,
                offset,
                range,
                counts,
                |step, window, lo, et| {
                    let Some(w) = RateWindow::of(window, lo, et, true, may_reset) else {
                        return;
                    };
                    any |= col.set(step, w.extrapolate(range, true, is_rate));
                },
            );
            any.then_some(col)
        }
        _ if range_fns::is_values_over_time(name) && !has_stale_marker(samples) => {
            // No staleness markers to drop: the windows are slices of the samples themselves.
            window_steps(env, samples, offset, range, counts, |window, _, _| {
                Ok(range_fns::values_over_time(name, window))
            })?
        }
        _ => {
            // The non-stale points, once per series; each window is a slice of them.
            let points: Vec<(i64, f64)> = samples
                .iter()
                .filter(|p| !is_stale_nan(p.v))
                .map(|p| (p.t, p.v))
                .collect();
            window_steps(env, &points, offset, range, counts, |window, arg, t| {
                let params = Params {
                    t,
                    ..Params::default()
                };
                range_fns::apply(name, window, arg, params).map_err(|_| Stop::Fallback)
            })?
        }
    };
    Ok(col.map(|col| SCol {
        labels: labels.clone(),
        drop: false,
        col,
    }))
}

/// Whether `samples` hold a staleness marker (a pass without early exit, which vectorizes).
fn has_stale_marker(samples: &[Sample]) -> bool {
    samples.iter().fold(false, |any, p| any | is_stale_nan(p.v))
}

/// Whether `samples` hold a staleness marker, and whether a value drops below the one before
/// (a counter reset), in one pass.
fn stale_and_reset(samples: &[Sample]) -> (bool, bool) {
    let (mut stale, mut reset) = (false, false);
    let mut prev = samples.first().map_or(f64::NAN, |p| p.v);
    for p in samples {
        stale |= is_stale_nan(p.v);
        reset |= p.v < prev;
        prev = p.v;
    }
    (stale, reset)
}

/// The index of the first point at or after `from` whose time is past `bound` (`points` sorted
/// by time). Over many steps a window moves by a few points per step, which a scan finds
/// fastest; a single step (an instant query) bisects, so a window reaching thousands of points
/// back (`[1d]`) costs a few dozen comparisons instead of a scan.
#[inline]
fn past<P: Point>(points: &[P], from: usize, bound: i64, single: bool) -> usize {
    if single {
        let rest = points.get(from..).unwrap_or(&[]);
        return from + rest.partition_point(|p| p.t() <= bound);
    }
    let mut i = from;
    while points.get(i).is_some_and(|p| p.t() <= bound) {
        i += 1;
    }
    i
}

/// Slides the window `(t - offset - range, t - offset]` over `points` (sorted, no staleness
/// markers) for every step, adds each window's size to the step's count and calls
/// `f(step, window, window start, window end)` for every non-empty one.
fn slide<P: Point>(
    env: &Env<'_>,
    points: &[P],
    offset: i64,
    range: i64,
    counts: &mut [usize],
    mut f: impl FnMut(usize, &[P], i64, i64),
) {
    let (mut a, mut b) = (0usize, 0usize);
    let single = env.ts.len() == 1;
    for (step, &t) in env.ts.iter().enumerate() {
        let et = t.saturating_sub(offset);
        let lo = et.saturating_sub(range);
        a = past(points, a, lo, single);
        b = past(points, b.max(a), et, single);
        let window = points.get(a..b).unwrap_or(&[]);
        if window.is_empty() {
            continue;
        }
        if let Some(c) = counts.get_mut(step) {
            *c += window.len();
        }
        f(step, window, lo, et);
    }
}

/// Slides the window over `points` for every step ([`slide`]) and stores `f(window, arg, t)`
/// of each non-empty window. `None` when no step has a value.
fn window_steps<P: Point>(
    env: &Env<'_>,
    points: &[P],
    offset: i64,
    range: i64,
    counts: &mut [usize],
    mut f: impl FnMut(&[P], &RangeArg, i64) -> R<Option<f64>>,
) -> R<Option<Col>> {
    if points.is_empty() {
        return Ok(None);
    }
    let mut col = Col::empty(env.ts.len());
    let mut any = false;
    let mut arg = RangeArg {
        series: Vec::new(),
        start: 0,
        end: 0,
        range_ms: range,
        anchored: false,
        smoothed: false,
    };
    let mut result = Ok(());
    slide(
        env,
        points,
        offset,
        range,
        counts,
        |step, window, lo, et| {
            if result.is_err() {
                return;
            }
            arg.start = lo;
            arg.end = et;
            let t = env.ts.get(step).copied().unwrap_or(et);
            match f(window, &arg, t) {
                Ok(Some(v)) => any |= col.set(step, v),
                Ok(None) => {}
                Err(e) => result = Err(e),
            }
        },
    );
    result?;
    Ok(any.then_some(col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_finds_what_a_scan_finds() {
        let mut times = vec![
            1i64, 3, 3, 4, 8, 9, 9, 9, 12, 20, 21, 40, 41, 42, 43, 44, 45, 100,
        ];
        times.extend((0..60).map(|i| 100 + i / 3));
        let points: Vec<(i64, f64)> = times.iter().map(|&t| (t, 0.0)).collect();
        for from in 0..=points.len() {
            for bound in -1..=121 {
                let mut scan = from;
                while points.get(scan).is_some_and(|p| p.0 <= bound) {
                    scan += 1;
                }
                for single in [false, true] {
                    assert_eq!(past(&points, from, bound, single), scan, "{from} {bound}");
                }
            }
        }
        assert_eq!(past::<(i64, f64)>(&[], 0, 5, true), 0);
    }
}
