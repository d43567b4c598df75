//! The columnar fast path for range queries.
//!
//! The step-by-step evaluator ([`super::eval`]) re-selects every window, clones labels and
//! regroups series at each step. For the common dashboard shapes (selectors, float range
//! functions, aggregations, arithmetic between them, `histogram_quantile` over classic
//! buckets) this module instead evaluates all steps of a node at once: each series becomes a
//! *column* (a value and a presence flag per step), range functions slide two pointers over
//! each series' samples once, aggregations compute a series' group once and then accumulate
//! column by column, and per-series work runs in parallel.
//!
//! It produces exactly what the reference evaluator produces — same arithmetic (the window
//! math of [`super::range_fns`] and the bucket math of [`super::histogram`] are reused), same
//! annotations — or gives up ([`Stop::Fallback`]) and lets the reference evaluator run:
//! whenever a node is not supported, the data holds native histograms, an annotation could
//! be raised that this path does not reproduce, a duplicate series could make an operation
//! fail, or a limit is exceeded (the reference then reports the error itself).

mod agg;
mod window;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Instant;

use sextant_storage::Labels;

use super::eval::remove_name;
use super::model::Annotations;
use super::prefetch::{Data, LazyData};
use super::range_fns;
use super::EngineOptions;
use crate::promql::ast::{
    AggregateOp, BinaryExpr, BinaryOp, Expr, UnaryOp, VectorMatchCardinality,
};
use crate::promql::value::{QueryError, QueryResult, RangeSeries, Value, VectorSample};

/// Environment variable that disables the fast path (any non-empty value but `0`).
pub const DISABLE_ENV: &str = "SEXTANT_DISABLE_COLUMNAR";

/// Whether the fast path is disabled by [`DISABLE_ENV`].
pub(super) fn disabled_by_env() -> bool {
    std::env::var(DISABLE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Values of one series at every step, with presence flags.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Col {
    pub v: Vec<f64>,
    pub p: Vec<bool>,
}

impl Col {
    fn empty(n: usize) -> Col {
        Col {
            v: vec![0.0; n],
            p: vec![false; n],
        }
    }

    fn any(&self) -> bool {
        self.p.iter().any(|&x| x)
    }

    /// Stores `v` at `step`; false when the column has no such step.
    fn set(&mut self, step: usize, v: f64) -> bool {
        match (self.v.get_mut(step), self.p.get_mut(step)) {
            (Some(slot), Some(p)) => {
                *slot = v;
                *p = true;
                true
            }
            _ => false,
        }
    }
}

/// A series of an instant-vector node at every step.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SCol {
    pub labels: Labels,
    /// Delayed name removal flag (static: the same at every step for one series).
    pub drop: bool,
    pub col: Col,
}

/// Why evaluation stopped.
pub(super) enum Stop {
    /// Not supported here, or might differ from the reference: run the reference evaluator.
    Fallback,
    /// A real error (the deadline).
    Err(QueryError),
}

pub(super) type R<T> = Result<T, Stop>;

/// The value of a node at every step.
enum CVal {
    Scalar(Vec<f64>),
    Vector(Vec<SCol>),
}

/// Read-only evaluation settings shared with worker threads.
pub(super) struct Env<'a> {
    pub data: &'a Data,
    /// Selections decoded series by series while they are evaluated (preferred over `data`).
    pub lazy: Option<&'a LazyData>,
    pub opts: &'a EngineOptions,
    /// The evaluation times.
    pub ts: Vec<i64>,
    /// The selector being streamed feeds an aggregation that reads none of its labels (set
    /// by [`agg::aggregate`]): its series come out with an empty label set.
    pub labels_unread: bool,
}

impl Env<'_> {
    /// Marks a name for removal or removes it, as [`super::eval::Evaluator::drop_name`].
    pub fn drop_name(&self, labels: &mut Labels, flag: &mut bool) {
        if self.opts.delayed_name_removal {
            *flag = true;
        } else {
            remove_name(labels);
        }
    }
}

pub(super) struct Ctx<'a> {
    pub env: Env<'a>,
    pub query: &'a str,
    pub annos: Annotations,
    /// Samples held per step, as the reference evaluator counts them.
    pub samples: Vec<usize>,
    deadline: Instant,
}

impl Ctx<'_> {
    pub fn n(&self) -> usize {
        self.env.ts.len()
    }

    pub fn check_deadline(&self) -> R<()> {
        if Instant::now() > self.deadline {
            return Err(Stop::Err(QueryError::Timeout("query execution")));
        }
        Ok(())
    }

    pub fn add_counts(&mut self, counts: &[usize]) {
        for (a, b) in self.samples.iter_mut().zip(counts) {
            *a = a.saturating_add(*b);
        }
    }
}

/// Evaluates a range query on the fast path. `None` means "use the reference evaluator".
#[allow(clippy::too_many_arguments)]
pub(super) fn try_range(
    data: &Data,
    lazy: Option<&LazyData>,
    opts: &EngineOptions,
    query: &str,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    deadline: Instant,
) -> Option<Result<QueryResult, QueryError>> {
    if !supported(expr) {
        return None;
    }
    // Native histograms take other code paths everywhere: leave them to the reference.
    if data
        .values()
        .any(|v| v.iter().any(|s| !s.histograms.is_empty()))
    {
        return None;
    }
    let mut ts = Vec::new();
    let mut t = start_ms;
    while t <= end_ms {
        ts.push(t);
        t = match t.checked_add(step_ms) {
            Some(n) => n,
            None => break,
        };
    }
    let n = ts.len();
    let mut cx = Ctx {
        env: Env {
            data,
            lazy,
            opts,
            ts,
            labels_unread: false,
        },
        query,
        annos: Annotations::default(),
        samples: vec![0; n],
        deadline,
    };
    match run(&mut cx, expr) {
        Ok(value) => Some(Ok(QueryResult {
            value,
            warnings: cx.annos.warnings,
            infos: cx.annos.infos,
            stats: Default::default(),
        })),
        Err(Stop::Fallback) => None,
        Err(Stop::Err(e)) => Some(Err(e)),
    }
}

/// Evaluates an instant query on the fast path, as a range query of one step. `None` means
/// "use the reference evaluator". Expressions with `topk`/`bottomk` stay with the reference:
/// their instant results are ordered, and this path returns series sorted by labels.
pub(super) fn try_instant(
    data: &Data,
    lazy: Option<&LazyData>,
    opts: &EngineOptions,
    query: &str,
    expr: &Expr,
    time_ms: i64,
    deadline: Instant,
) -> Option<Result<QueryResult, QueryError>> {
    if !supported(expr) || (order_sensitive(expr) && top_level_k(expr).is_none()) {
        return None;
    }
    if data
        .values()
        .any(|v| v.iter().any(|s| !s.histograms.is_empty()))
    {
        return None;
    }
    let mut cx = Ctx {
        env: Env {
            data,
            lazy,
            opts,
            ts: vec![time_ms],
            labels_unread: false,
        },
        query,
        annos: Annotations::default(),
        samples: vec![0; 1],
        deadline,
    };
    match run_instant(&mut cx, expr, time_ms) {
        Ok(value) => Some(Ok(QueryResult {
            value,
            warnings: cx.annos.warnings,
            infos: cx.annos.infos,
            stats: Default::default(),
        })),
        Err(Stop::Fallback) => None,
        Err(Stop::Err(e)) => Some(Err(e)),
    }
}

/// Whether `e` contains an aggregation whose instant result is ordered.
fn order_sensitive(e: &Expr) -> bool {
    match e {
        Expr::Paren(inner) => order_sensitive(inner),
        Expr::Unary(u) => order_sensitive(&u.expr),
        Expr::Binary(b) => order_sensitive(&b.lhs) || order_sensitive(&b.rhs),
        Expr::Aggregate(a) => {
            matches!(a.op, AggregateOp::Topk | AggregateOp::Bottomk)
                || order_sensitive(&a.expr)
                || a.param.as_deref().is_some_and(order_sensitive)
        }
        Expr::Call(c) => c.args.iter().any(order_sensitive),
        _ => false,
    }
}

/// A `topk`/`bottomk` without grouping at the top of an instant query (inside parentheses at
/// most): its result is the selected samples ordered by value, which this path can produce.
fn top_level_k(e: &Expr) -> Option<AggregateOp> {
    match e {
        Expr::Paren(inner) => top_level_k(inner),
        Expr::Aggregate(a)
            if matches!(a.op, AggregateOp::Topk | AggregateOp::Bottomk)
                && a.grouping.is_empty()
                && !a.without
                && !order_sensitive(&a.expr)
                && !a.param.as_deref().is_some_and(order_sensitive) =>
        {
            Some(a.op)
        }
        _ => None,
    }
}

fn run_instant(cx: &mut Ctx<'_>, expr: &Expr, time_ms: i64) -> R<Value> {
    let k_op = top_level_k(expr);
    let val = eval(cx, expr)?;
    if cx.samples.iter().any(|&s| s > cx.env.opts.max_samples) {
        return Err(Stop::Fallback);
    }
    Ok(match val {
        CVal::Scalar(vs) => Value::Scalar(time_ms, vs.first().copied().unwrap_or(f64::NAN)),
        CVal::Vector(series) => {
            let mut out: Vec<VectorSample> = Vec::with_capacity(series.len());
            // Under a top-level `topk`/`bottomk` every series here was an input sample (the
            // ones not selected are masked, their value kept): all input values.
            let mut inputs: Vec<f64> = Vec::new();
            for mut s in series {
                if k_op.is_some() {
                    inputs.extend(s.col.v.first().copied());
                }
                let (Some(&v), Some(true)) = (s.col.v.first(), s.col.p.first().copied()) else {
                    continue;
                };
                if s.drop {
                    remove_name(&mut s.labels);
                }
                out.push(VectorSample {
                    labels: s.labels,
                    t: time_ms,
                    v,
                    h: None,
                });
            }
            out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
            // Two series with one label set: an error in the reference.
            if out.windows(2).any(|w| w[0].labels == w[1].labels) {
                return Err(Stop::Fallback);
            }
            if out.len() > cx.env.opts.max_samples {
                return Err(Stop::Fallback);
            }
            if let Some(op) = k_op {
                order_by_value(&mut out, op, inputs)?;
            }
            Value::Vector(out)
        }
    })
}

/// Orders the samples `topk` (`bottomk`) selected as Prometheus returns them: by value,
/// descending (ascending). Which of two equal values is selected, and in which order they come,
/// follows Prometheus' heap; NaN has its own rules: both are left to the reference evaluator.
fn order_by_value(out: &mut [VectorSample], op: AggregateOp, mut inputs: Vec<f64>) -> R<()> {
    if inputs.iter().any(|v| v.is_nan()) {
        return Err(Stop::Fallback);
    }
    inputs.sort_unstable_by(f64::total_cmp);
    // `==`, not the total order: 0 and -0 tie too.
    if inputs.windows(2).any(|w| w[0] == w[1]) {
        return Err(Stop::Fallback);
    }
    if op == AggregateOp::Topk {
        out.sort_unstable_by(|a, b| b.v.total_cmp(&a.v));
    } else {
        out.sort_unstable_by(|a, b| a.v.total_cmp(&b.v));
    }
    Ok(())
}

fn run(cx: &mut Ctx<'_>, expr: &Expr) -> R<Value> {
    let val = eval(cx, expr)?;
    if cx.samples.iter().any(|&s| s > cx.env.opts.max_samples) {
        return Err(Stop::Fallback);
    }
    let ts = &cx.env.ts;
    let out = match val {
        CVal::Scalar(vs) => vec![RangeSeries {
            labels: Labels::empty(),
            points: ts.iter().copied().zip(vs).collect(),
            histograms: Vec::new(),
        }],
        CVal::Vector(series) => {
            let mut map: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
            for mut s in series {
                if !s.col.any() {
                    continue;
                }
                if s.drop {
                    remove_name(&mut s.labels);
                }
                let points: Vec<(i64, f64)> = ts
                    .iter()
                    .zip(s.col.v.iter().zip(&s.col.p))
                    .filter(|(_, (_, &p))| p)
                    .map(|(&t, (&v, _))| (t, v))
                    .collect();
                // Two series with one label set: merged or an error in the reference.
                if map.insert(s.labels, points).is_some() {
                    return Err(Stop::Fallback);
                }
            }
            map.into_iter()
                .map(|(labels, points)| RangeSeries {
                    labels,
                    points,
                    histograms: Vec::new(),
                })
                .collect()
        }
    };
    let total: usize = out.iter().map(|s| s.points.len()).sum();
    if total > cx.env.opts.max_samples {
        return Err(Stop::Fallback);
    }
    Ok(Value::Matrix(out))
}

/// The range functions evaluated here: those whose result depends only on the window's
/// float points (no parameters, no annotations besides the counter check).
fn fast_range_fn(name: &str) -> bool {
    range_fns::is_range_fn(name)
        && !matches!(
            name,
            "quantile_over_time"
                | "predict_linear"
                | "double_exponential_smoothing"
                | "holt_winters"
        )
}

/// Static check: every node of `e` is one the fast path evaluates.
/// Whether this path can evaluate `e` at all (before looking at the data).
pub(super) fn supports(e: &Expr) -> bool {
    supported(e)
}

fn supported(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(inner) => supported(inner),
        Expr::VectorSelector(vs) => {
            vs.at.is_none() && !vs.anchored && !vs.smoothed && vs.offset_expr.is_none()
        }
        Expr::Unary(u) => supported(&u.expr),
        Expr::Binary(b) => supported_binary(b),
        Expr::Aggregate(a) => {
            let param_ok = match a.op {
                AggregateOp::Sum
                | AggregateOp::Avg
                | AggregateOp::Min
                | AggregateOp::Max
                | AggregateOp::Count
                | AggregateOp::Group => a.param.is_none(),
                AggregateOp::Topk | AggregateOp::Bottomk => {
                    a.param.as_deref().is_some_and(is_scalar_expr)
                }
                _ => false,
            };
            param_ok && is_vector_expr(&a.expr) && supported(&a.expr)
        }
        Expr::Call(c) => {
            let name = c.func.name;
            if super::extended::check_call(c).is_some() {
                return false;
            }
            if fast_range_fn(name) {
                return match c.args.as_slice() {
                    [Expr::MatrixSelector(ms)] => {
                        let vs = &ms.selector;
                        vs.at.is_none()
                            && !vs.anchored
                            && !vs.smoothed
                            && vs.offset_expr.is_none()
                            && ms.range_expr.is_none()
                    }
                    _ => false,
                };
            }
            match (name, c.args.as_slice()) {
                ("histogram_quantile", [q, v]) => {
                    is_scalar_expr(q) && is_vector_expr(v) && supported(q) && supported(v)
                }
                _ => false,
            }
        }
        Expr::StringLiteral(_) | Expr::MatrixSelector(_) | Expr::Subquery(_) => false,
    }
}

fn supported_binary(b: &BinaryExpr) -> bool {
    if matches!(
        b.op,
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless | BinaryOp::TrimUpper | BinaryOp::TrimLower
    ) {
        return false;
    }
    if !(supported(&b.lhs) && supported(&b.rhs)) {
        return false;
    }
    if is_vector_expr(&b.lhs) && is_vector_expr(&b.rhs) {
        return match &b.matching {
            None => true,
            Some(m) => {
                m.card == VectorMatchCardinality::OneToOne
                    && m.include.is_empty()
                    && m.fill.is_empty()
            }
        };
    }
    true
}

/// Whether a (supported) expression yields a scalar.
fn is_scalar_expr(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(inner) => is_scalar_expr(inner),
        Expr::Unary(u) => is_scalar_expr(&u.expr),
        Expr::Binary(b) => is_scalar_expr(&b.lhs) && is_scalar_expr(&b.rhs),
        _ => false,
    }
}

/// Whether a (supported) expression yields an instant vector.
fn is_vector_expr(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(_) | Expr::Aggregate(_) | Expr::Call(_) => true,
        Expr::Paren(inner) => is_vector_expr(inner),
        Expr::Unary(u) => is_vector_expr(&u.expr),
        Expr::Binary(b) => is_vector_expr(&b.lhs) || is_vector_expr(&b.rhs),
        _ => false,
    }
}

fn eval(cx: &mut Ctx<'_>, e: &Expr) -> R<CVal> {
    if is_scalar_expr(e) {
        return Ok(CVal::Scalar(eval_scalar(cx, e)?));
    }
    let mut out = Vec::new();
    stream(cx, e, &mut |_, s| {
        if s.col.any() {
            out.push(s);
        }
        Ok(())
    })?;
    Ok(CVal::Vector(out))
}

fn eval_vector(cx: &mut Ctx<'_>, e: &Expr) -> R<Vec<SCol>> {
    match eval(cx, e)? {
        CVal::Vector(v) => Ok(v),
        CVal::Scalar(_) => Err(Stop::Fallback),
    }
}

pub(super) fn eval_scalar(cx: &mut Ctx<'_>, e: &Expr) -> R<Vec<f64>> {
    let n = cx.n();
    match e {
        Expr::NumberLiteral(v) => Ok(vec![*v; n]),
        Expr::Paren(inner) => eval_scalar(cx, inner),
        Expr::Unary(u) => {
            let mut v = eval_scalar(cx, &u.expr)?;
            if u.op == UnaryOp::Neg {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            Ok(v)
        }
        Expr::Binary(b) => {
            let l = eval_scalar(cx, &b.lhs)?;
            let r = eval_scalar(cx, &b.rhs)?;
            Ok(l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = super::binary::apply(b.op, l, r);
                    if b.op.is_comparison() {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                })
                .collect())
        }
        _ => Err(Stop::Fallback),
    }
}

/// A consumer of a vector node's series, in the reference evaluator's order. The first
/// argument is the context (for annotations and deadlines).
pub(super) type Sink<'s> = dyn FnMut(&mut Ctx<'_>, SCol) -> R<()> + 's;

/// Feeds the series of vector node `e` to `sink` in order. Selectors and range functions are
/// computed in parallel batches and never materialized as a whole; unary minus and
/// operations with a scalar are applied on the way.
fn stream(cx: &mut Ctx<'_>, e: &Expr, sink: &mut Sink<'_>) -> R<()> {
    match e {
        Expr::Paren(inner) => stream(cx, inner, sink),
        Expr::VectorSelector(vs) => window::stream_selector(cx, vs, sink),
        Expr::Call(c) if fast_range_fn(c.func.name) => match c.args.as_slice() {
            [Expr::MatrixSelector(ms)] => window::stream_range_fn(cx, c, ms, sink),
            _ => Err(Stop::Fallback),
        },
        Expr::Call(c) if c.func.name == "histogram_quantile" => {
            for s in agg::histogram_quantile(cx, c)? {
                sink(cx, s)?;
            }
            Ok(())
        }
        Expr::Unary(u) => {
            if u.op == UnaryOp::Pos {
                return stream(cx, &u.expr, sink);
            }
            stream(cx, &u.expr, &mut |cx, mut s| {
                for (v, &p) in s.col.v.iter_mut().zip(&s.col.p) {
                    if p {
                        *v = -*v;
                    }
                }
                cx.env.drop_name(&mut s.labels, &mut s.drop);
                sink(cx, s)
            })
        }
        Expr::Binary(b) => {
            let (lv, rv) = (is_vector_expr(&b.lhs), is_vector_expr(&b.rhs));
            match (lv, rv) {
                (true, true) => {
                    for s in vector_vector(cx, b)? {
                        sink(cx, s)?;
                    }
                    Ok(())
                }
                (true, false) | (false, true) => {
                    let swap = !lv;
                    let (vexpr, sexpr) = if swap {
                        (&b.rhs, &b.lhs)
                    } else {
                        (&b.lhs, &b.rhs)
                    };
                    // The reference evaluates the left operand first; only selectors count
                    // samples, and the scalar side has none, so the order is immaterial.
                    let scalar = eval_scalar(cx, sexpr)?;
                    stream(cx, vexpr, &mut |cx, mut s| {
                        vector_scalar(&cx.env, b, &mut s, &scalar, swap);
                        sink(cx, s)
                    })
                }
                (false, false) => Err(Stop::Fallback),
            }
        }
        Expr::Aggregate(a) => {
            for s in agg::aggregate(cx, a)? {
                sink(cx, s)?;
            }
            Ok(())
        }
        _ => Err(Stop::Fallback),
    }
}

/// Whether an operator drops the metric name (as `binary::drops_name`).
fn drops_name(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Mod
            | BinaryOp::Pow
            | BinaryOp::Atan2
    )
}

/// A vector/scalar operation applied to one series at every step (floats only).
fn vector_scalar(env: &Env<'_>, b: &BinaryExpr, s: &mut SCol, scalar: &[f64], swap: bool) {
    let cmp = b.op.is_comparison();
    for ((v, p), &k) in s.col.v.iter_mut().zip(s.col.p.iter_mut()).zip(scalar) {
        if !*p {
            continue;
        }
        let (r, keep) = if swap {
            super::binary::apply(b.op, k, *v)
        } else {
            super::binary::apply(b.op, *v, k)
        };
        if b.return_bool {
            *v = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            *p = false;
        } else if !cmp {
            *v = r;
        }
    }
    if drops_name(b.op) || b.return_bool {
        env.drop_name(&mut s.labels, &mut s.drop);
    }
}

/// One-to-one vector/vector arithmetic and comparisons (`on`/`ignoring`, no grouping
/// modifiers, no fill values).
fn vector_vector(cx: &mut Ctx<'_>, b: &BinaryExpr) -> R<Vec<SCol>> {
    let lhs = eval_vector(cx, &b.lhs)?;
    let rhs = eval_vector(cx, &b.rhs)?;
    let default = crate::promql::ast::VectorMatching {
        card: VectorMatchCardinality::OneToOne,
        labels: Vec::new(),
        on: false,
        include: Vec::new(),
        fill: Default::default(),
    };
    let m = b.matching.as_ref().unwrap_or(&default);
    let sig = |l: &Labels| {
        if m.on {
            l.keep_only(&m.labels)
        } else {
            l.drop_names(&m.labels)
        }
    };
    // Duplicate signatures can make the reference fail at some step: leave it to it.
    let mut right: std::collections::HashMap<Labels, usize> =
        std::collections::HashMap::with_capacity(rhs.len());
    for (i, s) in rhs.iter().enumerate() {
        if right.insert(sig(&s.labels), i).is_some() {
            return Err(Stop::Fallback);
        }
    }
    let mut matched: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut out = Vec::new();
    for l in &lhs {
        cx.check_deadline()?;
        let Some(&ri) = right.get(&sig(&l.labels)) else {
            continue;
        };
        if !matched.insert(ri) {
            return Err(Stop::Fallback);
        }
        let Some(r) = rhs.get(ri) else {
            continue;
        };
        let mut labels = l.labels.clone();
        if m.on {
            labels = labels.keep_only(&m.labels);
        } else {
            for name in &m.labels {
                labels.remove(name);
            }
        }
        let mut drop = l.drop;
        if drops_name(b.op) || b.return_bool {
            cx.env.drop_name(&mut labels, &mut drop);
        }
        let mut col = Col::empty(cx.n());
        for i in 0..col.v.len() {
            if !(l.col.p[i] && r.col.p[i]) {
                continue;
            }
            let (v, keep) = super::binary::apply(b.op, l.col.v[i], r.col.v[i]);
            if b.return_bool {
                col.v[i] = if keep { 1.0 } else { 0.0 };
                col.p[i] = true;
            } else if keep {
                col.v[i] = v;
                col.p[i] = true;
            }
        }
        out.push(SCol { labels, drop, col });
    }
    Ok(out)
}
