//! The tree-walking evaluator: one expression at one evaluation time, reading selector data
//! from the prefetched in-memory cache with binary search.

use std::collections::BTreeMap;
use std::time::Instant;

use sextant_storage::{is_stale_nan, CounterResetHint, Labels, METRIC_NAME};

use super::model::{Annotations, Sample, Series, Val};
use super::prefetch::{at_time, key, Data};
use super::{aggregate, binary, extended, functions, too_many_samples, EngineOptions};
use crate::promql::ast::{
    AtModifier, Expr, MatrixSelector, PosRange, SubqueryExpr, UnaryOp, VectorSelector,
};
use crate::promql::value::{histogram_size, QueryError, QueryResult, QueryStats, Value};

/// A range-vector argument of a function, with the bounds of its window.
pub(super) struct RangeArg {
    pub series: Vec<Series>,
    /// Exclusive start and inclusive end of the selection window (ms).
    pub start: i64,
    pub end: i64,
    /// The range in milliseconds.
    pub range_ms: i64,
    /// The selector's `anchored`/`smoothed` modifiers: `series` then also holds the samples
    /// around the window that these modifiers need (see [`super::extended`]).
    pub anchored: bool,
    pub smoothed: bool,
}

pub(super) struct Evaluator<'a> {
    pub opts: &'a EngineOptions,
    pub query: &'a str,
    data: Data,
    /// Start and end of the whole query (for `@ start()`/`@ end()` and `start()`/`end()`).
    pub qstart: i64,
    pub qend: i64,
    pub is_range: bool,
    /// Step of the range query (0 for instant queries), for `step()`.
    pub step_ms: i64,
    pub annos: Annotations,
    deadline: Instant,
    step_samples: usize,
    ticks: u32,
    /// Sample statistics (see [`QueryStats`]).
    counts: Counts,
}

/// Sample accounting of one query, following Prometheus' rules.
#[derive(Default)]
struct Counts {
    /// Queryable samples loaded, in total and per step of the outer query.
    total: i64,
    per_step: Vec<i64>,
    first_step: i64,
    interval: i64,
    step_idx: usize,
    /// Depth of subqueries being evaluated as range-function arguments: what they load is
    /// not counted (their output is, as the function's window).
    uncounted: u32,
    /// `timestamp(selector)` counts each histogram sample as one sample.
    hist_as_one: bool,
    /// Samples of the result assembled so far (range queries), held next to each step's.
    result_held: usize,
    peak: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        opts: &'a EngineOptions,
        query: &'a str,
        data: Data,
        qstart: i64,
        qend: i64,
        is_range: bool,
        deadline: Instant,
    ) -> Evaluator<'a> {
        Evaluator {
            opts,
            query,
            data,
            qstart,
            qend,
            is_range,
            step_ms: 0,
            annos: Annotations::default(),
            deadline,
            step_samples: 0,
            ticks: 0,
            counts: Counts::default(),
        }
    }

    /// Prepares per-step statistics for `steps` steps starting at `first` (ms) every
    /// `interval` ms (an instant query is one step).
    pub fn init_steps(&mut self, first: i64, interval: i64, steps: usize) {
        self.counts.first_step = first;
        self.counts.interval = interval;
        self.counts.per_step = vec![0; steps];
    }

    /// Starts evaluating step `idx` of the outer query: its working set starts empty.
    pub fn begin_step(&mut self, idx: usize) {
        self.counts.step_idx = idx;
        self.step_samples = 0;
    }

    /// The query's value with its annotations and statistics (timings are the caller's).
    pub fn into_result(self, value: Value) -> QueryResult {
        let c = self.counts;
        let per_step = c
            .per_step
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let t = c
                    .first_step
                    .saturating_add(c.interval.saturating_mul(i as i64));
                (t, *n)
            })
            .collect();
        QueryResult {
            value,
            warnings: self.annos.warnings,
            infos: self.annos.infos,
            stats: QueryStats {
                total_samples: c.total,
                per_step,
                peak_samples: c.peak,
                ..QueryStats::default()
            },
        }
    }

    pub fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout("query execution"));
        }
        Ok(())
    }

    /// Cheap periodic deadline check.
    pub fn tick(&mut self) -> Result<(), QueryError> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(256) {
            self.check_deadline()?;
        }
        Ok(())
    }

    /// Accounts for `n` samples held in memory at this step, next to the result assembled so
    /// far; the `max_samples` limit applies to that sum, as Prometheus' does to its current
    /// sample count.
    pub fn count_samples(&mut self, n: usize) -> Result<(), QueryError> {
        self.step_samples = self.step_samples.saturating_add(n);
        self.check_held()
    }

    /// Accounts for `n` samples loaded from storage (or from a subquery's output) at this step:
    /// queryable samples for the statistics, and held in memory.
    fn count_loaded(&mut self, n: usize) -> Result<(), QueryError> {
        self.count_queryable(n);
        self.count_samples(n)
    }

    /// Adds `n` to the queryable samples of this step (unless inside a subquery argument).
    fn count_queryable(&mut self, n: usize) {
        if self.counts.uncounted == 0 {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.counts.total = self.counts.total.saturating_add(n);
            if let Some(s) = self.counts.per_step.get_mut(self.counts.step_idx) {
                *s = s.saturating_add(n);
            }
        }
    }

    /// Adds `n` samples of a finished step to the result being assembled.
    pub fn add_result_samples(&mut self, n: usize) -> Result<(), QueryError> {
        self.counts.result_held = self.counts.result_held.saturating_add(n);
        self.step_samples = 0;
        self.check_held()
    }

    fn check_held(&mut self) -> Result<(), QueryError> {
        let held = self.counts.result_held.saturating_add(self.step_samples);
        self.counts.peak = self.counts.peak.max(held);
        if held > self.opts.max_samples {
            return Err(too_many_samples());
        }
        Ok(())
    }

    /// The weight of a histogram sample in the sample counts.
    fn hist_weight(&self, h: &sextant_storage::FloatHistogram) -> usize {
        if self.counts.hist_as_one {
            1
        } else {
            histogram_size(h)
        }
    }

    pub fn warn(&mut self, msg: &str, pos: PosRange) {
        self.annos.warn(self.query, msg, pos);
    }

    pub fn info(&mut self, msg: &str, pos: PosRange) {
        self.annos.info(self.query, msg, pos);
    }

    /// Marks a sample's metric name for removal (or removes it right away).
    pub fn drop_name(&self, labels: &mut Labels, flag: &mut bool) {
        if self.opts.delayed_name_removal {
            *flag = true;
        } else {
            remove_name(labels);
        }
    }

    /// The time a selector or subquery with `at`/`offset` reads at when evaluated at `t`.
    pub fn effective_time(&self, at: Option<AtModifier>, offset: i64, t: i64) -> i64 {
        at_time(at, self.qstart, self.qend)
            .unwrap_or(t)
            .saturating_sub(offset)
    }

    pub fn eval(&mut self, e: &Expr, t: i64) -> Result<Val, QueryError> {
        let v = self.eval_node(e, t)?;
        // Like Prometheus, the values computed by operators and functions are held in memory
        // next to their inputs.
        if matches!(
            e,
            Expr::NumberLiteral(_)
                | Expr::Unary(_)
                | Expr::Binary(_)
                | Expr::Aggregate(_)
                | Expr::Call(_)
        ) {
            let n = match &v {
                Val::Scalar(_) => 1,
                Val::Vector(vec) => vec
                    .iter()
                    .map(|s| s.h.as_deref().map_or(1, histogram_size))
                    .sum(),
                Val::Str(_) | Val::Matrix(_) => 0,
            };
            self.count_samples(n)?;
        }
        Ok(v)
    }

    fn eval_node(&mut self, e: &Expr, t: i64) -> Result<Val, QueryError> {
        self.tick()?;
        match e {
            Expr::NumberLiteral(v) => Ok(Val::Scalar(*v)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.clone())),
            Expr::Paren(inner) => self.eval(inner, t),
            Expr::VectorSelector(vs) => {
                let v = self
                    .select_instant(vs, t)?
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect();
                Ok(Val::Vector(v))
            }
            Expr::MatrixSelector(ms) => {
                let arg = self.select_range(ms, t)?;
                if !(arg.anchored || arg.smoothed) {
                    return Ok(Val::Matrix(arg.series));
                }
                let mut out = Vec::with_capacity(arg.series.len());
                for mut s in arg.series {
                    s.points = extended::extend_points(&s.points, arg.start, arg.end, arg.smoothed);
                    if !s.is_empty() {
                        out.push(s);
                    }
                }
                Ok(Val::Matrix(out))
            }
            Expr::Subquery(sq) => Ok(Val::Matrix(self.eval_subquery(sq, t, false)?.series)),
            Expr::Unary(u) => {
                let v = self.eval(&u.expr, t)?;
                if u.op == UnaryOp::Pos {
                    return Ok(v);
                }
                match v {
                    Val::Scalar(x) => Ok(Val::Scalar(-x)),
                    Val::Vector(mut vec) => {
                        for s in &mut vec {
                            match s.h.as_mut() {
                                Some(h) => h.mul(-1.0),
                                None => s.v = -s.v,
                            }
                            self.drop_name(&mut s.labels, &mut s.drop_name);
                        }
                        Ok(Val::Vector(vec))
                    }
                    _ => Err(QueryError::Execution("unary expression only allowed on expressions of type scalar or instant vector".into())),
                }
            }
            Expr::Binary(b) => binary::eval_binary(self, b, t),
            Expr::Aggregate(a) => aggregate::eval_aggregate(self, a, t),
            Expr::Call(c) => {
                // Prometheus evaluates `timestamp(selector)` on the raw samples and counts a
                // histogram sample there as one sample.
                let mut arg = c.args.first();
                while let Some(Expr::Paren(inner)) = arg {
                    arg = Some(inner);
                }
                let raw_ts =
                    c.func.name == "timestamp" && matches!(arg, Some(Expr::VectorSelector(_)));
                if c.func.name == "info" {
                    self.check_info_floats(c, t)?;
                }
                let saved = std::mem::replace(&mut self.counts.hist_as_one, raw_ts);
                let r = functions::eval_call(self, c, t);
                self.counts.hist_as_one = saved;
                r
            }
        }
    }

    /// `info()` fails when its info series selector picks a native histogram sample, as
    /// Prometheus does (info metrics are floats).
    fn check_info_floats(&self, c: &crate::promql::ast::Call, t: i64) -> Result<(), QueryError> {
        let et = match c.args.first() {
            Some(Expr::VectorSelector(vs)) => self.effective_time(vs.at, vs.offset, t),
            _ => t,
        };
        let lo = et.saturating_sub(self.opts.lookback_delta_ms);
        let names = super::prefetch::info_name_matchers(c);
        let data: &[sextant_storage::Matcher] = match c.args.get(1) {
            Some(Expr::VectorSelector(vs)) => &vs.matchers,
            _ => &[],
        };
        let series = self.data.get(&super::prefetch::info_key(c));
        for s in series.map(Vec::as_slice).unwrap_or(&[]) {
            let selected = names.iter().all(|m| m.matches_labels(&s.labels))
                && data
                    .iter()
                    .filter(|m| m.name != METRIC_NAME)
                    .all(|m| m.matches_labels(&s.labels));
            if selected && matches!(latest_sample(s, et, lo), Some((_, Latest::Hist(_)))) {
                return Err(QueryError::Execution(format!(
                    "this should be an info metric, with float samples: {}",
                    s.labels
                )));
            }
        }
        Ok(())
    }

    pub fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Sample>, QueryError> {
        match self.eval(e, t)? {
            Val::Vector(v) => Ok(v),
            other => Err(type_error("instant vector", &other)),
        }
    }

    pub fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64, QueryError> {
        match self.eval(e, t)? {
            Val::Scalar(v) => Ok(v),
            other => Err(type_error("scalar", &other)),
        }
    }

    pub fn eval_string(&mut self, e: &Expr, t: i64) -> Result<String, QueryError> {
        match self.eval(e, t)? {
            Val::Str(s) => Ok(s),
            other => Err(type_error("string", &other)),
        }
    }

    /// Evaluates a range-vector function argument (a matrix selector or a subquery).
    pub fn eval_range_arg(&mut self, e: &Expr, t: i64) -> Result<RangeArg, QueryError> {
        match e {
            Expr::Paren(inner) => self.eval_range_arg(inner, t),
            Expr::MatrixSelector(ms) => self.select_range(ms, t),
            Expr::Subquery(sq) => self.eval_subquery(sq, t, true),
            _ => Err(QueryError::Execution(
                "expected a range vector argument".into(),
            )),
        }
    }

    /// Latest non-stale sample of each series in the lookback window, with its timestamp.
    pub fn select_instant(
        &mut self,
        vs: &VectorSelector,
        t: i64,
    ) -> Result<Vec<(Sample, i64)>, QueryError> {
        let et = self.effective_time(vs.at, vs.offset, t);
        let lo = et.saturating_sub(self.opts.lookback_delta_ms);
        let mut out = Vec::new();
        if vs.smoothed {
            let hi = et.saturating_add(self.opts.lookback_delta_ms);
            let mut warnings = Vec::new();
            for s in self.data.get(&key(vs)).map(Vec::as_slice).unwrap_or(&[]) {
                let points = window_points(&s.samples, lo, hi);
                let hpoints = window_histograms(&s.histograms, lo, hi);
                let name = s.labels.metric_name().unwrap_or("");
                if !points.is_empty() && !hpoints.is_empty() {
                    warnings.push(format!(
                        "encountered a mix of histograms and floats for metric name {name:?}"
                    ));
                    continue;
                }
                if !hpoints.is_empty() {
                    match extended::smoothed_histogram(&hpoints, et) {
                        Ok(Some(h)) => out.push((Sample::hist(s.labels.clone(), h), et)),
                        Ok(None) => {}
                        Err(_) => warnings.push(format!(
                            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"
                        )),
                    }
                    continue;
                }
                if let Some(v) = extended::smoothed_value(&points, et) {
                    let sample = Sample::float(s.labels.clone(), v);
                    out.push((sample, et));
                }
            }
            for w in warnings {
                self.warn(&w, vs.pos);
            }
            let n = self.instant_weight(&out);
            self.count_loaded(n)?;
            return Ok(out);
        }
        if let Some(series) = self.data.get(&key(vs)) {
            for s in series {
                let Some((pt, latest)) = latest_sample(s, et, lo) else {
                    continue;
                };
                let sample = match latest {
                    Latest::Float(v) => Sample::float(s.labels.clone(), v),
                    Latest::Hist(h) => Sample::hist(s.labels.clone(), h.clone()),
                };
                out.push((sample, pt));
            }
        }
        let n = self.instant_weight(&out);
        self.count_loaded(n)?;
        Ok(out)
    }

    /// The sample count of selected instant samples.
    fn instant_weight(&self, v: &[(Sample, i64)]) -> usize {
        v.iter()
            .map(|(s, _)| s.h.as_deref().map_or(1, |h| self.hist_weight(h)))
            .sum()
    }

    /// Latest non-stale sample at `et` of each cached series under `k`: labels and timestamp.
    pub fn latest_at(&self, k: usize, et: i64) -> Vec<(Labels, i64)> {
        let lo = et.saturating_sub(self.opts.lookback_delta_ms);
        let mut out = Vec::new();
        for s in self.data.get(&k).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some((pt, _)) = latest_sample(s, et, lo) {
                out.push((s.labels.clone(), pt));
            }
        }
        out
    }

    /// Labels of the cached series under `k` whose latest sample at `et` is a histogram.
    pub fn latest_histograms_at(&self, k: usize, et: i64) -> Vec<Labels> {
        let lo = et.saturating_sub(self.opts.lookback_delta_ms);
        self.data
            .get(&k)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter(|s| matches!(latest_sample(s, et, lo), Some((_, Latest::Hist(_)))))
            .map(|s| s.labels.clone())
            .collect()
    }

    /// Samples of each series in `(t - range, t]` after offset/`@`, stale markers dropped.
    pub fn select_range(&mut self, ms: &MatrixSelector, t: i64) -> Result<RangeArg, QueryError> {
        let vs = &ms.selector;
        let et = self.effective_time(vs.at, vs.offset, t);
        let lo = et.saturating_sub(ms.range);
        // Anchored and smoothed selectors also read the samples within the lookback delta
        // before the range (and, smoothed, after it).
        let lookback = self.opts.lookback_delta_ms;
        let (sel_lo, sel_hi) = match (vs.anchored, vs.smoothed) {
            (_, true) => (lo.saturating_sub(lookback), et.saturating_add(lookback)),
            (true, false) => (lo.saturating_sub(lookback), et),
            _ => (lo, et),
        };
        let mut out = Vec::new();
        let mut n = 0usize;
        if let Some(series) = self.data.get(&key(vs)) {
            for s in series {
                let points = window_points(&s.samples, sel_lo, sel_hi);
                let hpoints = window_histograms(&s.histograms, sel_lo, sel_hi);
                if points.is_empty() && hpoints.is_empty() {
                    continue;
                }
                n += points.len()
                    + hpoints
                        .iter()
                        .map(|(_, h)| self.hist_weight(h))
                        .sum::<usize>();
                out.push(Series {
                    labels: s.labels.clone(),
                    points,
                    hpoints,
                    drop_name: false,
                });
            }
        }
        self.count_loaded(n)?;
        Ok(RangeArg {
            series: out,
            start: lo,
            end: et,
            range_ms: ms.range,
            anchored: vs.anchored,
            smoothed: vs.smoothed,
        })
    }

    /// Evaluates the inner expression at every multiple of the step in `(t - range, t]`.
    ///
    /// As a range-function argument (`as_arg`), the samples the inner expression loads are not
    /// counted as queryable samples; its output is, as the function's window (Prometheus'
    /// rule). A subquery that is the whole query counts what its inner expression loads.
    pub fn eval_subquery(
        &mut self,
        sq: &SubqueryExpr,
        t: i64,
        as_arg: bool,
    ) -> Result<RangeArg, QueryError> {
        let et = self.effective_time(sq.at, sq.offset, t);
        let step = match sq.step {
            Some(s) if s > 0 => s,
            _ => self.opts.default_subquery_step_ms.max(1),
        };
        let lo = et.saturating_sub(sq.range);
        let mut ts = step.saturating_mul(lo / step);
        if ts <= lo {
            ts = ts.saturating_add(step);
        }
        let mut map: BTreeMap<Labels, Series> = BTreeMap::new();
        let mut n = 0usize;
        if as_arg {
            self.counts.uncounted += 1;
        }
        let r = self.subquery_steps(sq, ts, et, step, &mut map, &mut n);
        if as_arg {
            self.counts.uncounted -= 1;
        }
        r?;
        if as_arg {
            self.count_queryable(n);
        }
        let series = map.into_values().collect();
        Ok(RangeArg {
            series,
            start: lo,
            end: et,
            range_ms: sq.range,
            anchored: false,
            smoothed: false,
        })
    }

    /// The inner evaluations of a subquery from `ts` to `et`, collected per series in `map`;
    /// `n` counts the samples collected.
    fn subquery_steps(
        &mut self,
        sq: &SubqueryExpr,
        mut ts: i64,
        et: i64,
        step: i64,
        map: &mut BTreeMap<Labels, Series>,
        n: &mut usize,
    ) -> Result<(), QueryError> {
        while ts <= et {
            self.check_deadline()?;
            // Each inner step's working set is released once its output joins the result.
            let held = self.step_samples;
            let before = *n;
            match self.eval(&sq.expr, ts)? {
                Val::Scalar(v) => {
                    map.entry(Labels::empty())
                        .or_insert_with(|| Series::new(Labels::empty()))
                        .points
                        .push((ts, v));
                    *n += 1;
                }
                Val::Vector(vec) => {
                    for s in vec {
                        *n += s.h.as_deref().map_or(1, histogram_size);
                        let e = map
                            .entry(s.labels)
                            .or_insert_with_key(|l| Series::new(l.clone()));
                        match s.h {
                            Some(mut h) => {
                                // The steps need not be consecutive samples: counter reset
                                // hints no longer hold (Prometheus #15987).
                                if matches!(
                                    h.counter_reset_hint,
                                    CounterResetHint::NotCounterReset
                                        | CounterResetHint::CounterReset
                                ) {
                                    h.counter_reset_hint = CounterResetHint::Unknown;
                                }
                                e.hpoints.push((ts, *h));
                            }
                            None => e.points.push((ts, s.v)),
                        }
                        e.drop_name |= s.drop_name;
                    }
                }
                other => return Err(type_error("instant vector or scalar", &other)),
            }
            self.step_samples = held.saturating_add(*n - before);
            ts = match ts.checked_add(step) {
                Some(x) => x,
                None => break,
            };
        }
        Ok(())
    }
}

fn type_error(want: &str, got: &Val) -> QueryError {
    let got = match got {
        Val::Scalar(_) => "scalar",
        Val::Str(_) => "string",
        Val::Vector(_) => "instant vector",
        Val::Matrix(_) => "range vector",
    };
    QueryError::Execution(format!("expected {want}, got {got}"))
}

/// The position of an expression node (its first byte), for annotations.
pub(super) fn expr_pos(e: &Expr) -> PosRange {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => PosRange::default(),
        Expr::VectorSelector(vs) => vs.pos,
        Expr::MatrixSelector(ms) => ms.pos,
        Expr::Subquery(sq) => sq.pos,
        Expr::Paren(inner) => {
            let p = expr_pos(inner);
            PosRange {
                start: p.start.saturating_sub(1),
                end: p.end + 1,
            }
        }
        Expr::Unary(u) => u.pos,
        Expr::Binary(b) => b.pos,
        Expr::Aggregate(a) => a.pos,
        Expr::Call(c) => c.pos,
    }
}

/// Removes `__name__` and, with it, the `__type__` and `__unit__` metadata labels.
pub(super) fn remove_name(labels: &mut Labels) {
    labels.remove(METRIC_NAME);
    labels.remove("__type__");
    labels.remove("__unit__");
}

/// The non-stale points of time-sorted `samples` in the left-open window `(lo, hi]`.
fn window_points(samples: &[sextant_storage::Sample], lo: i64, hi: i64) -> Vec<(i64, f64)> {
    let a = samples.partition_point(|p| p.t <= lo);
    let b = samples.partition_point(|p| p.t <= hi);
    samples
        .get(a..b.max(a))
        .unwrap_or(&[])
        .iter()
        .filter(|p| !is_stale_nan(p.v))
        .map(|p| (p.t, p.v))
        .collect()
}

/// The non-stale histograms of time-sorted `samples` in the left-open window `(lo, hi]`.
fn window_histograms(
    samples: &[sextant_storage::HistogramSample],
    lo: i64,
    hi: i64,
) -> Vec<(i64, sextant_storage::FloatHistogram)> {
    let a = samples.partition_point(|p| p.t <= lo);
    let b = samples.partition_point(|p| p.t <= hi);
    samples
        .get(a..b.max(a))
        .unwrap_or(&[])
        .iter()
        .filter(|p| !is_stale_nan(p.h.sum))
        .map(|p| (p.t, p.h.clone()))
        .collect()
}

/// The newest sample of a series at or before `et`, of either kind.
pub(super) enum Latest<'s> {
    Float(f64),
    Hist(&'s sextant_storage::FloatHistogram),
}

/// The newest sample of `s` at or before `et` and after `lo` (floats and histograms compete by
/// timestamp), or `None` when there is none or it is a staleness marker.
pub(super) fn latest_sample(
    s: &sextant_storage::Series,
    et: i64,
    lo: i64,
) -> Option<(i64, Latest<'_>)> {
    let fi = s.samples.partition_point(|p| p.t <= et);
    let f = fi.checked_sub(1).and_then(|i| s.samples.get(i));
    let hi = s.histograms.partition_point(|p| p.t <= et);
    let h = hi.checked_sub(1).and_then(|i| s.histograms.get(i));
    let (t, latest) = match (f, h) {
        (Some(f), Some(h)) if h.t > f.t => (h.t, Latest::Hist(&h.h)),
        (Some(f), _) => (f.t, Latest::Float(f.v)),
        (None, Some(h)) => (h.t, Latest::Hist(&h.h)),
        (None, None) => return None,
    };
    if t <= lo {
        return None;
    }
    match latest {
        Latest::Float(v) if is_stale_nan(v) => None,
        Latest::Hist(h) if is_stale_nan(h.sum) => None,
        l => Some((t, l)),
    }
}
