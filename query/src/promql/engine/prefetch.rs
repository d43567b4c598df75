//! Fetches every selector's samples once for the whole query span.
//!
//! The tree is walked with the interval of evaluation times each node will be evaluated at
//! (widened by subquery ranges, shifted by offsets, pinned by `@`), and each selector's data
//! for `[mint, maxt]` is read from storage and kept in memory, keyed by the selector's address
//! in the (immutably borrowed) AST.

use std::collections::HashMap;

use sextant_storage::{
    is_stale_nan, CounterResetHint, FloatHistogram, HistogramSample, LazySeries, MatchOp, Matcher,
    Series, SeriesSource, METRIC_NAME,
};

use super::EngineOptions;
use crate::promql::ast::{AtModifier, Call, Expr, VectorSelector};
use crate::promql::value::QueryError;

/// Cached samples per selector.
pub(super) type Data = HashMap<usize, Vec<Series>>;

/// A selector's series with their samples not decoded yet, and the time range to decode.
pub(super) struct LazySelection {
    pub series: Vec<LazySeries>,
    pub mint: i64,
    pub maxt: i64,
}

/// Deferred selections per selector, keyed as [`Data`].
pub(super) type LazyData = HashMap<usize, LazySelection>;

/// The cache key of a selector node.
pub(super) fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// The cache key of the info series of an `info()` call.
pub(super) fn info_key(c: &Call) -> usize {
    c as *const Call as usize
}

/// The `__name__` matchers selecting an `info()` call's info series: those written in its
/// selector, `target_info` when there are none, and `.+_info` when all of them are negative.
pub(super) fn info_name_matchers(c: &Call) -> Vec<Matcher> {
    let mut names: Vec<Matcher> = match c.args.get(1) {
        Some(Expr::VectorSelector(vs)) => vs
            .matchers
            .iter()
            .filter(|m| m.name == METRIC_NAME)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.push(Matcher::equal(METRIC_NAME, "target_info"));
    } else if !names
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex))
    {
        if let Ok(m) = Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info") {
            names.insert(0, m);
        }
    }
    names
}

/// The sub-expression whose samples an expression's result is based on, for `info()`.
pub(super) fn first_child(e: &Expr) -> Option<&Expr> {
    match e {
        Expr::Paren(inner) => Some(inner),
        Expr::Unary(u) => Some(&u.expr),
        Expr::Binary(b) => Some(&b.lhs),
        Expr::Aggregate(a) => Some(&a.expr),
        Expr::Call(c) => c
            .args
            .iter()
            .find(|a| !matches!(a, Expr::NumberLiteral(_) | Expr::StringLiteral(_))),
        _ => None,
    }
}

/// Resolves `@` to a timestamp given the query's start and end.
pub(super) fn at_time(at: Option<AtModifier>, qstart: i64, qend: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::At(t)) => Some(t),
        Some(AtModifier::Start) => Some(qstart),
        Some(AtModifier::End) => Some(qend),
    }
}

struct Walk<'a> {
    qstart: i64,
    qend: i64,
    lookback: i64,
    /// Selectors with their time bounds, and whether only histogram statistics (count and
    /// sum) are used from them (see [`stats_hints`]).
    out: Vec<(&'a VectorSelector, i64, i64, bool)>,
    /// `info()` calls: cache key, matchers selecting the info series, time bounds.
    info: Vec<(usize, Vec<Matcher>, i64, i64)>,
}

impl<'a> Walk<'a> {
    /// The selectors of `expr` evaluated at times in `[start, end]`, with their time bounds.
    fn of(expr: &'a Expr, start: i64, end: i64, opts: &EngineOptions) -> Walk<'a> {
        let mut w = Walk {
            qstart: start,
            qend: end,
            lookback: opts.lookback_delta_ms,
            out: Vec::new(),
            info: Vec::new(),
        };
        w.walk(expr, start, end, false);
        w
    }

    fn shifted(&self, at: Option<AtModifier>, offset: i64, lo: i64, hi: i64) -> (i64, i64) {
        match at_time(at, self.qstart, self.qend) {
            Some(t) => (t.saturating_sub(offset), t.saturating_sub(offset)),
            None => (lo.saturating_sub(offset), hi.saturating_sub(offset)),
        }
    }

    /// The window of reference times `info()` looks up info series at (see [`ref_time`]).
    fn ref_window(&self, e: Option<&Expr>, lo: i64, hi: i64) -> (i64, i64) {
        match e {
            Some(Expr::VectorSelector(vs)) => self.shifted(vs.at, vs.offset, lo, hi),
            Some(Expr::MatrixSelector(ms)) => {
                self.shifted(ms.selector.at, ms.selector.offset, lo, hi)
            }
            Some(Expr::Subquery(sq)) => {
                let (a, b) = self.shifted(sq.at, sq.offset, lo, hi);
                self.ref_window(Some(&sq.expr), a.saturating_sub(sq.range), b)
            }
            Some(other) => match first_child(other) {
                Some(c) => self.ref_window(Some(c), lo, hi),
                None => (lo, hi),
            },
            None => (lo, hi),
        }
    }

    fn walk(&mut self, e: &'a Expr, lo: i64, hi: i64, stats: bool) {
        match e {
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
            Expr::VectorSelector(vs) => {
                let (a, b) = self.shifted(vs.at, vs.offset, lo, hi);
                // A smoothed selector also reads samples after the evaluation time.
                let b = if vs.smoothed {
                    b.saturating_add(self.lookback)
                } else {
                    b
                };
                self.out
                    .push((vs, a.saturating_sub(self.lookback), b, stats));
            }
            Expr::MatrixSelector(ms) => {
                let vs = &ms.selector;
                let (mut a, mut b) = self.shifted(vs.at, vs.offset, lo, hi);
                a = a.saturating_sub(ms.range);
                // Anchored and smoothed selectors read around the range by the lookback.
                if vs.anchored || vs.smoothed {
                    a = a.saturating_sub(self.lookback);
                }
                if vs.smoothed {
                    b = b.saturating_add(self.lookback);
                }
                self.out.push((vs, a, b, stats));
            }
            Expr::Subquery(sq) => {
                let (a, b) = self.shifted(sq.at, sq.offset, lo, hi);
                self.walk(&sq.expr, a.saturating_sub(sq.range), b, stats);
            }
            Expr::Paren(inner) => self.walk(inner, lo, hi, stats),
            Expr::Unary(u) => self.walk(&u.expr, lo, hi, stats),
            Expr::Binary(b) => {
                // Prometheus decides on statistics-only decoding afresh on each side.
                self.walk(&b.lhs, lo, hi, false);
                self.walk(&b.rhs, lo, hi, false);
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.walk(p, lo, hi, stats);
                }
                self.walk(&a.expr, lo, hi, stats);
            }
            Expr::Call(c) if c.func.name == "info" => {
                if let Some(a) = c.args.first() {
                    self.walk(a, lo, hi, stats);
                }
                let names = info_name_matchers(c);
                let (rlo, rhi) = self.ref_window(c.args.first(), lo, hi);
                self.info
                    .push((info_key(c), names, rlo.saturating_sub(self.lookback), rhi));
            }
            Expr::Call(c) => {
                let stats = match c.func.name {
                    "histogram_count" | "histogram_sum" | "histogram_avg" => true,
                    "histogram_quantile" | "histogram_fraction" => false,
                    _ => stats,
                };
                for arg in &c.args {
                    self.walk(arg, lo, hi, stats);
                }
            }
        }
    }
}

/// Loads the data of every selector in `expr` for evaluation times in `[start, end]`.
pub(super) fn load(
    source: &dyn SeriesSource,
    expr: &Expr,
    start: i64,
    end: i64,
    opts: &EngineOptions,
) -> Result<Data, QueryError> {
    let w = Walk::of(expr, start, end, opts);
    let mut data = Data::new();
    for (vs, mint, maxt, stats) in w.out {
        // Earlier samples only serve to place the first ones of the window in their chunk.
        let history = mint.saturating_sub(opts.lookback_delta_ms);
        let mut series = source.select(&vs.matchers, history, maxt)?;
        for s in &mut series {
            if !s.histograms.is_empty() {
                chunk_hints(s);
            }
            // Samples are sorted by time: drop the leading ones before `mint` (usually none,
            // and then this does not touch the samples at all).
            let k = s.samples.partition_point(|p| p.t < mint);
            s.samples.drain(..k);
            let k = s.histograms.partition_point(|p| p.t < mint);
            s.histograms.drain(..k);
            if stats {
                stats_hints(&mut s.histograms);
            }
        }
        series.retain(|s| !s.samples.is_empty() || !s.histograms.is_empty());
        data.insert(key(vs), series);
    }
    for (k, matchers, mint, maxt) in w.info {
        let series = source.select(&matchers, mint, maxt)?;
        data.insert(k, series);
    }
    Ok(data)
}

/// Lists every selector's series for evaluation times in `[start, end]` as [`load`] does,
/// leaving their samples to be decoded one series at a time by the consumer. `None` when the
/// source only reads eagerly or the expression calls `info()`.
pub(super) fn load_lazy(
    source: &dyn SeriesSource,
    expr: &Expr,
    start: i64,
    end: i64,
    opts: &EngineOptions,
) -> Result<Option<LazyData>, QueryError> {
    let w = Walk::of(expr, start, end, opts);
    if !w.info.is_empty() {
        return Ok(None);
    }
    let mut data = LazyData::new();
    for (vs, mint, maxt, _) in w.out {
        let Some(series) = source.select_lazy(&vs.matchers, mint, maxt)? else {
            return Ok(None);
        };
        data.insert(key(vs), LazySelection { series, mint, maxt });
    }
    Ok(Some(data))
}

/// Most samples one Prometheus histogram chunk holds before a new one is cut (approximation).
const CHUNK_SAMPLES: usize = 120;

/// Sets the counter reset hints of a series' histograms to what Prometheus' TSDB returns on
/// reading them back: histograms are stored in chunks, a new chunk being cut at a counter
/// reset, a switch between gauge and counter histograms, a change of schema, zero bucket
/// width or custom bounds, after an interleaved float sample, and when a chunk is full. A
/// gauge chunk reads back as gauges; in a counter chunk the first histogram reads back with
/// an unknown hint and every later one as "not a counter reset".
fn chunk_hints(s: &mut Series) {
    let floats: Vec<i64> = s.samples.iter().map(|p| p.t).collect();
    let mut prev: Option<(i64, FloatHistogram)> = None;
    let mut gauge_chunk = false;
    let mut in_chunk = 0usize;
    for p in &mut s.histograms {
        if is_stale_nan(p.h.sum) {
            continue;
        }
        let gauge = p.h.counter_reset_hint == CounterResetHint::Gauge;
        let new_chunk = match &prev {
            None => true,
            Some((pt, ph)) => {
                let float_between = {
                    let i = floats.partition_point(|&t| t <= *pt);
                    floats.get(i).is_some_and(|&t| t < p.t)
                };
                float_between
                    || in_chunk >= CHUNK_SAMPLES
                    || gauge != gauge_chunk
                    || ph.schema != p.h.schema
                    || ph.zero_threshold != p.h.zero_threshold
                    || ph.custom_values != p.h.custom_values
                    || (!gauge && p.h.detect_reset(ph))
            }
        };
        let original = p.h.clone();
        if new_chunk {
            gauge_chunk = gauge;
            in_chunk = 0;
        }
        in_chunk += 1;
        p.h.counter_reset_hint = if gauge_chunk {
            CounterResetHint::Gauge
        } else if in_chunk == 1 {
            CounterResetHint::Unknown
        } else {
            CounterResetHint::NotCounterReset
        };
        prev = Some((p.t, original));
    }
}

/// Prometheus reads the histograms of a selector whose only consumer is `histogram_count`,
/// `histogram_sum` or `histogram_avg` through an iterator that detects counter resets on the
/// fly: an unknown hint becomes "reset" or "not reset" by comparison with the previous
/// histogram read, when there is one.
fn stats_hints(hs: &mut [HistogramSample]) {
    let mut prev: Option<FloatHistogram> = None;
    for p in hs.iter_mut() {
        if is_stale_nan(p.h.sum) {
            prev = None;
            continue;
        }
        let current = p.h.clone();
        if p.h.counter_reset_hint == CounterResetHint::Unknown {
            if let Some(prev) = &prev {
                p.h.counter_reset_hint = if current.detect_reset(prev) {
                    CounterResetHint::CounterReset
                } else {
                    CounterResetHint::NotCounterReset
                };
            }
        }
        prev = Some(current);
    }
}
