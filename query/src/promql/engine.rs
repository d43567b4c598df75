//! The PromQL evaluator: instant and range queries over a [`SeriesSource`].
//!
//! Evaluation happens in three phases: every selector's data is fetched from storage once for
//! the whole query span ([`prefetch`]), the expression tree is evaluated at each step against
//! that in-memory data ([`eval`]), and the per-step results are cleaned up (delayed
//! `__name__` removal, duplicate checks) and assembled into the public result types.

mod aggregate;
mod binary;
mod columnar;
mod eval;
mod extended;
mod extended_hist;
mod functions;
mod histogram;
mod model;
mod prefetch;
mod range_fns;
mod range_hist;
mod resolve;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_histograms;
#[cfg(test)]
mod tests_modifiers;
#[cfg(test)]
mod tests_stats;
mod trim;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sextant_storage::{FloatHistogram, Labels, SeriesSource};

use super::ast::Expr;
use super::value::{histogram_size, QueryError, QueryResult, RangeSeries, Value, VectorSample};
pub use columnar::DISABLE_ENV as DISABLE_COLUMNAR_ENV;
use eval::Evaluator;
pub(crate) use model::fmt_g;
use model::{Sample, Val};

/// Evaluation settings. Defaults match Prometheus's server defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (default 5m).
    pub lookback_delta_ms: i64,
    /// Maximum samples held in memory by one query at any time (default 50,000,000).
    pub max_samples: usize,
    /// Deadline for one query (default 2m).
    pub timeout: Duration,
    /// Step of subqueries written without one, `[5m:]` (default 1m).
    pub default_subquery_step_ms: i64,
    /// Prometheus' `enableDelayedNameRemoval`: functions and operators only mark `__name__`
    /// for removal, and the label is dropped at the end of evaluation (default false, like the
    /// Prometheus server; the conformance suite runs with true).
    pub delayed_name_removal: bool,
    /// Evaluate supported range queries on the columnar fast path (default true); false
    /// forces the step-by-step evaluator. The `SEXTANT_DISABLE_COLUMNAR` environment
    /// variable also forces it.
    pub columnar: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
            delayed_name_removal: false,
            columnar: true,
        }
    }
}

pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at `time_ms`. `query` is the original text, used to place annotations.
    pub fn instant_query(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.instant_query_impl(source, query, expr, time_ms, true)
    }

    /// [`Engine::instant_query`] with exact sample statistics (`stats` of the HTTP API):
    /// always the step-by-step evaluator, as [`Engine::range_query_with_stats`].
    pub fn instant_query_with_stats(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.instant_query_impl(source, query, expr, time_ms, false)
    }

    /// Tries the columnar path reading through [`prefetch::load_lazy`] (series decoded one at
    /// a time while evaluated). `None` when it does not apply or declines: the caller then
    /// reads eagerly.
    fn columnar_first(
        &self,
        source: &dyn SeriesSource,
        expr: &Expr,
        (start_ms, end_ms): (i64, i64),
        columnar_ok: bool,
        started: Instant,
        fast: impl Fn(
            &prefetch::Data,
            Option<&prefetch::LazyData>,
        ) -> Option<Result<QueryResult, QueryError>>,
    ) -> Result<Option<Result<QueryResult, QueryError>>, QueryError> {
        if !columnar_ok || !columnar::supports(expr) {
            return Ok(None);
        }
        let Some(lazy) = prefetch::load_lazy(source, expr, start_ms, end_ms, &self.opts)? else {
            return Ok(None);
        };
        let prepared = Instant::now();
        Ok(fast(&prefetch::Data::new(), Some(&lazy)).map(|r| with_times(r, started, prepared)))
    }

    fn instant_query_impl(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        time_ms: i64,
        allow_columnar: bool,
    ) -> Result<QueryResult, QueryError> {
        let deadline = Instant::now() + self.opts.timeout;
        // `step()` and `range()` are 0 for instant queries.
        let resolved = resolve_durations(expr, 0, 0)?;
        let expr = resolved.as_ref().unwrap_or(expr);
        let started = Instant::now();
        let columnar_ok = allow_columnar && self.opts.columnar && !columnar::disabled_by_env();
        let fast = |data: &prefetch::Data, lazy: Option<&prefetch::LazyData>| {
            columnar::try_instant(data, lazy, &self.opts, query, expr, time_ms, deadline)
        };
        if let Some(r) =
            self.columnar_first(source, expr, (time_ms, time_ms), columnar_ok, started, fast)?
        {
            return r;
        }
        let data = prefetch::load(source, expr, time_ms, time_ms, &self.opts)?;
        let prepared = Instant::now();
        if columnar_ok {
            if let Some(r) = fast(&data, None) {
                return with_times(r, started, prepared);
            }
        }
        let mut ev = Evaluator::new(&self.opts, query, data, time_ms, time_ms, false, deadline);
        ev.init_steps(time_ms, 1, 1);
        ev.begin_step(0);
        let val = ev.eval(expr, time_ms)?;
        let evaluated = Instant::now();
        let value = match val {
            Val::Scalar(v) => Value::Scalar(time_ms, v),
            Val::Str(s) => Value::String(time_ms, s),
            Val::Vector(v) => {
                let v = finish_vector(v)?;
                Value::Vector(
                    v.into_iter()
                        .map(|s| VectorSample {
                            labels: s.labels,
                            t: time_ms,
                            v: if s.h.is_some() { 0.0 } else { s.v },
                            h: s.h.map(|h| *h),
                        })
                        .collect(),
                )
            }
            Val::Matrix(m) => {
                let mut out: Vec<RangeSeries> = Vec::with_capacity(m.len());
                for s in m {
                    let mut labels = s.labels;
                    if s.drop_name {
                        eval::remove_name(&mut labels);
                    }
                    out.push(RangeSeries {
                        labels,
                        points: s.points,
                        histograms: s.hpoints,
                    });
                }
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                if out.windows(2).any(|w| w[0].labels == w[1].labels) {
                    return Err(dup_labelset());
                }
                Value::Matrix(out)
            }
        };
        let mut res = ev.into_result(value);
        res.stats.prepare_time = prepared - started;
        res.stats.inner_eval_time = evaluated - prepared;
        res.stats.result_sort_time = evaluated.elapsed();
        Ok(res)
    }

    /// Evaluates `expr` at every step from `start_ms` to `end_ms` inclusive; the result is a
    /// matrix (or, for scalar/string expressions, a matrix of one unlabelled series).
    pub fn range_query(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.range_query_impl(source, query, expr, start_ms, end_ms, step_ms, true)
    }

    /// [`Engine::range_query`] with exact sample statistics (`stats` of the HTTP API): always
    /// the step-by-step evaluator, whose sample accounting follows Prometheus'. The columnar
    /// fast path only reports timings.
    pub fn range_query_with_stats(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.range_query_impl(source, query, expr, start_ms, end_ms, step_ms, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn range_query_impl(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        allow_columnar: bool,
    ) -> Result<QueryResult, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        let deadline = Instant::now() + self.opts.timeout;
        let resolved = resolve_durations(expr, step_ms, end_ms.saturating_sub(start_ms))?;
        let expr = resolved.as_ref().unwrap_or(expr);
        let started = Instant::now();
        let columnar_ok = allow_columnar && self.opts.columnar && !columnar::disabled_by_env();
        let fast = |data: &prefetch::Data, lazy: Option<&prefetch::LazyData>| {
            columnar::try_range(
                data, lazy, &self.opts, query, expr, start_ms, end_ms, step_ms, deadline,
            )
        };
        if let Some(r) =
            self.columnar_first(source, expr, (start_ms, end_ms), columnar_ok, started, fast)?
        {
            return r;
        }
        let data = prefetch::load(source, expr, start_ms, end_ms, &self.opts)?;
        let prepared = Instant::now();
        if columnar_ok {
            if let Some(r) = fast(&data, None) {
                return with_times(r, started, prepared);
            }
        }
        let mut ev = Evaluator::new(&self.opts, query, data, start_ms, end_ms, true, deadline);
        ev.step_ms = step_ms;
        let steps = (end_ms.saturating_sub(start_ms) / step_ms).saturating_add(1);
        ev.init_steps(start_ms, step_ms, usize::try_from(steps).unwrap_or(0));
        type Points = (Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>);
        let mut series: BTreeMap<Labels, Points> = BTreeMap::new();
        let mut t = start_ms;
        let mut idx = 0usize;
        while t <= end_ms {
            ev.check_deadline()?;
            ev.begin_step(idx);
            let mut step_points = 0usize;
            match ev.eval(expr, t)? {
                Val::Scalar(v) => {
                    series.entry(Labels::empty()).or_default().0.push((t, v));
                    step_points += 1;
                }
                Val::Vector(v) => {
                    for s in finish_vector(v)? {
                        let e = series.entry(s.labels).or_default();
                        match s.h {
                            Some(h) => {
                                step_points += histogram_size(&h);
                                e.1.push((t, *h));
                            }
                            None => {
                                e.0.push((t, s.v));
                                step_points += 1;
                            }
                        }
                    }
                }
                Val::Str(_) | Val::Matrix(_) => {
                    return Err(QueryError::Execution(
                        "invalid expression type for range query, must be Scalar or instant Vector"
                            .into(),
                    ))
                }
            }
            // The step's result joins the matrix held for the whole query.
            ev.add_result_samples(step_points)?;
            idx += 1;
            t = match t.checked_add(step_ms) {
                Some(n) => n,
                None => break,
            };
        }
        let evaluated = Instant::now();
        let out = series
            .into_iter()
            .filter(|(_, (p, h))| !p.is_empty() || !h.is_empty())
            .map(|(labels, (points, histograms))| RangeSeries {
                labels,
                points,
                histograms,
            })
            .collect();
        let mut res = ev.into_result(Value::Matrix(out));
        res.stats.prepare_time = prepared - started;
        res.stats.inner_eval_time = evaluated - prepared;
        res.stats.result_sort_time = evaluated.elapsed();
        Ok(res)
    }
}

/// A copy of `expr` with its `step()`/`range()` duration expressions resolved, or `None`
/// when it has none.
fn resolve_durations(expr: &Expr, step_ms: i64, range_ms: i64) -> Result<Option<Expr>, QueryError> {
    if !resolve::has_duration_exprs(expr) {
        return Ok(None);
    }
    let mut copy = expr.clone();
    let cx = resolve::DurationContext {
        step: step_ms as f64 / 1000.0,
        range: range_ms as f64 / 1000.0,
    };
    resolve::resolve(&mut copy, cx)?;
    Ok(Some(copy))
}

/// Drops `__name__` from samples marked for it and rejects duplicate label sets.
fn finish_vector(v: Vec<Sample>) -> Result<Vec<Sample>, QueryError> {
    let mut out: Vec<Sample> = v
        .into_iter()
        .map(|mut s| {
            if s.drop_name {
                eval::remove_name(&mut s.labels);
                s.drop_name = false;
            }
            s
        })
        .collect();
    if out.len() > 1 {
        let mut seen = std::collections::HashSet::with_capacity(out.len());
        for s in &out {
            if !seen.insert(&s.labels) {
                return Err(dup_labelset());
            }
        }
    }
    out.shrink_to_fit();
    Ok(out)
}

pub(crate) fn dup_labelset() -> QueryError {
    QueryError::Execution("vector cannot contain metrics with the same labelset".into())
}

pub(crate) fn too_many_samples() -> QueryError {
    QueryError::Limit(
        "query processing would load too many samples into memory in query execution".into(),
    )
}

/// Records the preparation (selection) and evaluation times of a fast-path result.
fn with_times(
    mut r: Result<QueryResult, QueryError>,
    started: Instant,
    prepared: Instant,
) -> Result<QueryResult, QueryError> {
    if let Ok(res) = &mut r {
        res.stats.prepare_time = prepared - started;
        res.stats.inner_eval_time = prepared.elapsed();
    }
    r
}
