//! Runs parsed test scripts against the engine: loads data into storage, evaluates each eval
//! with its extra checks (step invariance with `@`, range-mode consistency), and isolates every
//! eval in its own thread so a panic or a hang fails that case only.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use sextant_query::promql::ast::{AtModifier, Expr, VectorSelector};
use sextant_query::promql::{parse, Engine, EngineOptions, QueryError, QueryResult, Value};
use sextant_storage::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_storage::{
    is_stale_nan, Db, FloatHistogram, HistogramSample, Labels, Sample, Span, METRIC_NAME,
};

use super::compare::{
    check_annotations, check_matrix_sorted, compare_scalar, compare_value, compare_vector, Got,
    Mismatch, PointTimes,
};
use super::script::{
    parse_script, Command, EvalCmd, Expectations, ExpectedResult, LoadCmd, SeqValue, TextMatch,
    Timing,
};

/// Eval threads are named with this prefix (the panic hook recognises them by it).
pub const EVAL_THREAD_PREFIX: &str = "eval-line-";
/// A case that takes longer than this is failed and abandoned (its thread is left running).
const EVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Stack for eval threads; deep expressions recurse in the parser and evaluator.
const EVAL_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Functions whose result depends on the evaluation time even when their arguments do not;
/// the step-invariance check is skipped for expressions that call them.
const AT_MODIFIER_UNSAFE_FUNCTIONS: &[&str] = &[
    "time",
    "timestamp",
    "start",
    "end",
    "range",
    "step",
    "predict_linear",
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
];
/// Query-context functions: their value differs between instant and range mode.
const QUERY_CONTEXT_FUNCTIONS: &[&str] = &["start", "end", "range", "step"];

/// The outcome of one eval case.
#[derive(Debug)]
pub struct CaseResult {
    /// `<file>:<line>`.
    pub name: String,
    pub query: String,
    pub outcome: Result<(), Failure>,
}

/// Why a case failed: `reason` is short (for the expected-failures list), `details` complete.
#[derive(Clone, Debug)]
pub struct Failure {
    pub reason: String,
    pub details: String,
}

impl Failure {
    fn new(reason: impl Into<String>, details: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            details: details.into(),
        }
    }
}

/// Everything one script produced.
#[derive(Debug)]
pub struct FileReport {
    pub file: String,
    pub cases: Vec<CaseResult>,
    /// Malformed commands other than evals (a runner or script bug, never expected).
    pub script_errors: Vec<String>,
}

/// Engine settings of the reference test engine (README section 1.7).
#[allow(clippy::needless_update)] // keeps compiling, with defaults, when fields are added
pub fn engine_options() -> EngineOptions {
    EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 10_000,
        timeout: Duration::from_secs(100),
        default_subquery_step_ms: 60 * 1000,
        delayed_name_removal: true,
        ..EngineOptions::default()
    }
}

/// Runs every eval of `text` whose case name contains `filter`.
pub fn run_file(file: &str, text: &str, filter: Option<&str>) -> FileReport {
    let mut report = FileReport {
        file: file.to_string(),
        cases: Vec::new(),
        script_errors: Vec::new(),
    };
    let mut store = Store::default();
    for command in parse_script(text) {
        match command {
            Command::Clear => store = Store::default(),
            Command::Load(load) => store.load(&load),
            Command::Invalid { line, message } => {
                report
                    .script_errors
                    .push(format!("{file}:{line}: {message}"));
            }
            Command::Eval(eval) => {
                let name = format!("{file}:{}", eval.line);
                if filter.is_some_and(|f| !name.contains(f)) {
                    continue;
                }
                let outcome = run_isolated(store.snapshot(), Arc::clone(&eval));
                report.cases.push(CaseResult {
                    name,
                    query: eval.query.clone(),
                    outcome,
                });
            }
        }
    }
    report
}

/// One loaded sample value.
#[derive(Clone, Debug)]
enum Stored {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

/// Samples loaded so far, kept outside the database so later loads can fill in earlier
/// timestamps; a fresh [`Db`] is built from them when an eval needs it.
#[derive(Default)]
struct Store {
    samples: BTreeMap<Labels, BTreeMap<i64, Stored>>,
    start_timestamp_series: BTreeSet<Labels>,
    snapshot: Option<Arc<Snapshot>>,
}

/// What an eval sees: the database and the series it cannot load.
struct Snapshot {
    db: Db,
    /// Series with start timestamps from `@st` lines (their floats are loaded).
    start_timestamp_series: Vec<Labels>,
}

impl Store {
    fn load(&mut self, load: &LoadCmd) {
        self.snapshot = None;
        for series in &load.series {
            let samples = self.samples.entry(series.labels.clone()).or_default();
            for (i, value) in series.values.iter().enumerate() {
                let t = i as i64 * load.step_ms;
                match value {
                    SeqValue::Float(v) => {
                        samples.insert(t, Stored::Float(*v));
                    }
                    SeqValue::Histogram(h) => {
                        samples.insert(t, Stored::Histogram(h.clone()));
                    }
                    SeqValue::Omitted => {}
                }
            }
            if series.has_start_timestamps {
                self.start_timestamp_series.insert(series.labels.clone());
            }
        }
        self.samples.retain(|_, samples| !samples.is_empty());
        if load.with_nhcb {
            for (labels, histograms) in nhcb_histograms(load) {
                let samples = self.samples.entry(labels).or_default();
                for (t, h) in histograms {
                    samples.insert(t, Stored::Histogram(Box::new(h)));
                }
            }
        }
    }

    fn snapshot(&mut self) -> Arc<Snapshot> {
        if let Some(snapshot) = &self.snapshot {
            return Arc::clone(snapshot);
        }
        let db = Db::in_memory();
        // Float-only series go in one batch; series with histograms are appended in runs of
        // one kind, in time order (both kinds share one timeline per series).
        let mut floats: Vec<(Labels, Vec<Sample>)> = Vec::new();
        for (labels, samples) in &self.samples {
            if samples.values().all(|v| matches!(v, Stored::Float(_))) {
                let samples = samples
                    .iter()
                    .filter_map(|(&t, v)| match v {
                        Stored::Float(v) => Some(Sample { t, v: *v }),
                        Stored::Histogram(_) => None,
                    })
                    .collect();
                floats.push((labels.clone(), samples));
                continue;
            }
            let mut run_f: Vec<Sample> = Vec::new();
            let mut run_h: Vec<HistogramSample> = Vec::new();
            for (&t, v) in samples {
                match v {
                    Stored::Float(v) => {
                        if !run_h.is_empty() {
                            let _ = db
                                .append_histograms(&[(labels.clone(), std::mem::take(&mut run_h))]);
                        }
                        run_f.push(Sample { t, v: *v });
                    }
                    Stored::Histogram(h) => {
                        if !run_f.is_empty() {
                            let _ = db.append(&[(labels.clone(), std::mem::take(&mut run_f))]);
                        }
                        run_h.push(HistogramSample {
                            t,
                            h: (**h).clone(),
                        });
                    }
                }
            }
            if !run_f.is_empty() {
                let _ = db.append(&[(labels.clone(), run_f)]);
            }
            if !run_h.is_empty() {
                let _ = db.append_histograms(&[(labels.clone(), run_h)]);
            }
        }
        // An in-memory append of sorted, de-duplicated samples cannot fail; if it ever does,
        // every eval of this block will show the missing data.
        let _ = db.append(&floats);
        let snapshot = Arc::new(Snapshot {
            db,
            start_timestamp_series: self.start_timestamp_series.iter().cloned().collect(),
        });
        self.snapshot = Some(Arc::clone(&snapshot));
        snapshot
    }
}

/// Classic-histogram data of one timestamp, collected for the custom-bucket conversion.
#[derive(Default)]
struct ClassicAt {
    /// `(le, cumulative count)`.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
}

/// `load_with_nhcb`: the custom-bucket histograms built from the block's `<base>_bucket`,
/// `<base>_count` and `<base>_sum` float lines, per `<base>` series (without `le`).
fn nhcb_histograms(load: &LoadCmd) -> BTreeMap<Labels, Vec<(i64, FloatHistogram)>> {
    let mut groups: BTreeMap<Labels, BTreeMap<i64, ClassicAt>> = BTreeMap::new();
    for series in &load.series {
        let Some(name) = series.labels.metric_name() else {
            continue;
        };
        let (base, kind) = if let Some(b) = name.strip_suffix("_bucket") {
            (b, 0)
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, 1)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, 2)
        } else {
            continue;
        };
        let le = if kind == 0 {
            match series.labels.get("le").and_then(parse_le) {
                Some(le) if !le.is_nan() => le,
                _ => continue,
            }
        } else {
            0.0
        };
        let mut labels = series.labels.clone();
        labels.remove("le");
        labels.set(METRIC_NAME, base);
        let group = groups.entry(labels).or_default();
        for (i, value) in series.values.iter().enumerate() {
            let SeqValue::Float(v) = value else {
                continue;
            };
            if is_stale_nan(*v) {
                continue;
            }
            let at = group.entry(i as i64 * load.step_ms).or_default();
            match kind {
                0 => at.buckets.push((le, *v)),
                1 => at.count = Some(*v),
                _ => at.sum = *v,
            }
        }
    }
    groups
        .into_iter()
        .filter_map(|(labels, by_t)| {
            let hs: Vec<(i64, FloatHistogram)> = by_t
                .into_iter()
                .filter_map(|(t, at)| classic_to_nhcb(at).map(|h| (t, h)))
                .collect();
            (!hs.is_empty()).then_some((labels, hs))
        })
        .collect()
}

/// A `le` label value as a float (`+Inf`, `Inf`, decimal).
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Converts one timestamp's classic buckets into a custom-bucket histogram, as Prometheus'
/// test loader does (`None` where it would reject the data).
fn classic_to_nhcb(mut at: ClassicAt) -> Option<FloatHistogram> {
    at.buckets
        .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    at.buckets.dedup_by(|b, a| a.0 == b.0);
    if at.buckets.iter().any(|b| b.1 < 0.0)
        || at.buckets.windows(2).any(|w| w[1].1 < w[0].1)
        || at.count.is_some_and(|c| c < 0.0)
    {
        return None;
    }
    let count = match at.count {
        Some(c) => c,
        None => at.buckets.last()?.1,
    };
    if at.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        at.buckets.push((f64::INFINITY, count));
    }
    if at.buckets.last().is_some_and(|b| b.1 != count) {
        return None;
    }
    let integral = count.fract() == 0.0 && at.buckets.iter().all(|b| b.1.fract() == 0.0);
    let mut prev = 0.0;
    let mut buckets = Vec::with_capacity(at.buckets.len());
    let mut custom_values = Vec::with_capacity(at.buckets.len());
    for (le, c) in &at.buckets {
        buckets.push(c - prev);
        prev = *c;
        if le.is_finite() || *le == f64::NEG_INFINITY {
            custom_values.push(*le);
        }
    }
    let mut h = FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count,
        sum: at.sum,
        positive_spans: vec![Span {
            offset: 0,
            length: buckets.len() as u32,
        }],
        positive_buckets: buckets,
        custom_values,
        ..FloatHistogram::default()
    };
    h.compact(if integral { 2 } else { 0 });
    Some(h)
}

/// Runs one eval on its own thread, turning panics and timeouts into failures.
fn run_isolated(snapshot: Arc<Snapshot>, eval: Arc<EvalCmd>) -> Result<(), Failure> {
    let (sender, receiver) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("{EVAL_THREAD_PREFIX}{}", eval.line))
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_eval(&snapshot, &eval)));
            let outcome = outcome.unwrap_or_else(|payload| {
                let message = super::panic_message(payload.as_ref());
                Err(Failure::new(
                    "panic",
                    format!("the eval panicked: {message}"),
                ))
            });
            let _ = sender.send(outcome);
        });
    if let Err(e) = spawned {
        return Err(Failure::new(
            "runner error",
            format!("cannot start eval thread: {e}"),
        ));
    }
    match receiver.recv_timeout(EVAL_TIMEOUT) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Failure::new(
            "timeout",
            format!("the eval did not finish within {EVAL_TIMEOUT:?}"),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Failure::new(
            "panic",
            "the eval thread ended without a result",
        )),
    }
}

fn run_eval(snapshot: &Snapshot, eval: &EvalCmd) -> Result<(), Failure> {
    let exp = eval
        .expect
        .as_ref()
        .map_err(|e| Failure::new("script error", e.clone()))?;
    let expr = match parse(&eval.query) {
        Ok(expr) => expr,
        Err(e) => {
            let message = e.to_string();
            if let Some(want) = &exp.fail {
                return check_failure_message(want, &message)
                    .map_err(|m| Failure::new(m.kind, format!("{} (parse error)", m.detail)));
            }
            return Err(Failure::new(
                format!("parse error: {}", first_line(&e.message)),
                format!("parse error: {message}"),
            ));
        }
    };
    let context = EvalContext {
        engine: Engine::new(engine_options()),
        snapshot,
        eval,
        exp,
    };
    let outcome = match eval.timing {
        Timing::Range {
            start_ms,
            end_ms,
            step_ms,
        } => context.check_range(&expr, start_ms, end_ms, step_ms),
        Timing::Instant { at_ms } => context.check_instant_with_variants(&expr, at_ms),
    };
    outcome.map_err(
        |failure| match selected_series(&expr, &snapshot.start_timestamp_series) {
            Some(series) => Failure::new(
                format!("start timestamps: {}", failure.reason),
                format!(
                    "{} (query reads {series}, which has start timestamps)",
                    failure.details
                ),
            ),
            None => failure,
        },
    )
}

struct EvalContext<'a> {
    engine: Engine,
    snapshot: &'a Snapshot,
    eval: &'a EvalCmd,
    exp: &'a Expectations,
}

impl EvalContext<'_> {
    fn check_range(
        &self,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<(), Failure> {
        let result = self.engine.range_query(
            &self.snapshot.db,
            &self.eval.query,
            expr,
            start_ms,
            end_ms,
            step_ms,
        );
        let times = PointTimes {
            start_ms,
            end_ms,
            step_ms,
        };
        self.check_outcome(result, times)
            .map(|_| ())
            .map_err(|m| m.into_failure(""))
    }

    /// The instant query itself, then (README 1.5) the same expectations for the `@`-pinned
    /// expression at other times, each followed by its range-mode check.
    fn check_instant_with_variants(&self, expr: &Expr, at_ms: i64) -> Result<(), Failure> {
        self.check_instant(expr, at_ms, "")?;
        let mut pinned = expr.clone();
        if pin_at(&mut pinned, at_ms) {
            return Ok(());
        }
        let times: &[i64] = if at_ms == 0 {
            &[-1000, 0, 1000]
        } else {
            &[-10 * at_ms, 0, at_ms / 5, at_ms, 10 * at_ms]
        };
        for &t in times {
            self.check_instant(
                &pinned,
                t,
                &format!("step invariance (@ {at_ms}ms, evaluated at {t}ms): "),
            )?;
        }
        Ok(())
    }

    fn check_instant(&self, expr: &Expr, t: i64, context: &str) -> Result<(), Failure> {
        let result = self
            .engine
            .instant_query(&self.snapshot.db, &self.eval.query, expr, t);
        let times = match self.exp.range_vector {
            Some(spec) => PointTimes {
                start_ms: spec.start_ms,
                end_ms: spec.end_ms,
                step_ms: spec.step_ms,
            },
            None => PointTimes {
                start_ms: t,
                end_ms: t,
                step_ms: 0,
            },
        };
        let instant = match self.check_outcome(result, times) {
            Ok(Some(value)) => value,
            Ok(None) => return Ok(()),
            Err(m) => return Err(m.into_failure(context)),
        };
        let skip_range_mode = self.exp.ordered
            || self.exp.range_vector.is_some()
            || matches!(self.exp.result, ExpectedResult::String(_))
            || calls_any(expr, QUERY_CONTEXT_FUNCTIONS)
            || has_query_dependent_duration(expr);
        if skip_range_mode {
            return Ok(());
        }
        let range_context = format!("{context}range mode: ");
        self.check_range_mode(expr, t, &instant)
            .map_err(|m| m.into_failure(&range_context))
    }

    /// Runs the expression as a range query around `t` and checks the point at `t`.
    fn check_range_mode(&self, expr: &Expr, t: i64, instant: &Value) -> Result<(), Mismatch> {
        let result = self
            .engine
            .range_query(
                &self.snapshot.db,
                &self.eval.query,
                expr,
                t - 60_000,
                t + 60_000,
                60_000,
            )
            .map_err(|e| Mismatch::new("evaluation error", format!("range query failed: {e}")))?;
        let Value::Matrix(series) = &result.value else {
            return Err(Mismatch::new(
                "wrong result type",
                format!(
                    "range query returned {} instead of a matrix",
                    value_kind(&result.value)
                ),
            ));
        };
        check_matrix_sorted(series)?;
        let at_t: Vec<(&Labels, Got<'_>)> = series
            .iter()
            .filter_map(|s| {
                let float = s.points.iter().find(|p| p.0 == t).map(|p| Got::Float(p.1));
                let hist = || {
                    s.histograms
                        .iter()
                        .find(|p| p.0 == t)
                        .map(|p| Got::Histogram(&p.1))
                };
                float.or_else(hist).map(|g| (&s.labels, g))
            })
            .collect();
        if matches!(instant, Value::Scalar(..)) {
            let Some(&(_, Got::Float(v))) = at_t.first() else {
                return Err(Mismatch::new(
                    "missing series",
                    format!("range query has no point at t={t}"),
                ));
            };
            return compare_scalar(self.exp, v);
        }
        compare_vector(self.exp, &at_t)
    }

    /// Checks failure, annotations and value. `Ok(None)` means the query failed as expected.
    fn check_outcome(
        &self,
        result: Result<QueryResult, QueryError>,
        times: PointTimes,
    ) -> Result<Option<Value>, Mismatch> {
        let result = match (result, &self.exp.fail) {
            (Err(e), Some(want)) => {
                return check_failure_message(want, &e.to_string()).map(|()| None)
            }
            (Err(e), None) => {
                let message = e.to_string();
                return Err(Mismatch::new("evaluation error", message));
            }
            (Ok(_), Some(_)) => {
                return Err(Mismatch::new(
                    "expected failure",
                    "expected the query to fail, but it succeeded",
                ))
            }
            (Ok(result), None) => result,
        };
        check_annotations(&self.exp.warn, &result.warnings, "warn")?;
        check_annotations(&self.exp.info, &result.infos, "info")?;
        compare_value(self.exp, &result.value, times)?;
        Ok(Some(result.value))
    }
}

impl Mismatch {
    fn into_failure(self, context: &str) -> Failure {
        let reason = match self.kind {
            "evaluation error" => {
                format!("{context}evaluation error: {}", first_line(&self.detail))
            }
            kind => format!("{context}{kind}"),
        };
        Failure::new(reason, format!("{context}{}", self.detail))
    }
}

fn check_failure_message(want: &TextMatch, got: &str) -> Result<(), Mismatch> {
    if want.matches(got) {
        Ok(())
    } else {
        Err(Mismatch::new(
            "wrong error message",
            format!("expected error {want} but got {got:?}"),
        ))
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Scalar(..) => "a scalar",
        Value::String(..) => "a string",
        Value::Vector(_) => "a vector",
        Value::Matrix(_) => "a matrix",
    }
}

/// The first line of `s`, cut to a length that fits a list entry.
pub fn first_line(s: &str) -> String {
    const MAX: usize = 80;
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// Adds `@ t` to every selector and subquery outside subqueries, as the reference runner's
/// step-invariance check does (an existing `@ start()`/`@ end()` becomes `@ t` too, which is
/// the same at the original time; selectors inside subqueries are left alone because the
/// subquery itself is pinned). Returns true when the expression calls a function whose
/// result depends on the evaluation time, in which case the check is skipped.
pub fn pin_at(expr: &mut Expr, t: i64) -> bool {
    fn pin_selector(selector: &mut VectorSelector, t: i64) {
        if !matches!(selector.at, Some(AtModifier::At(_))) {
            selector.at = Some(AtModifier::At(t));
        }
    }
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => false,
        Expr::VectorSelector(selector) => {
            pin_selector(selector, t);
            false
        }
        Expr::MatrixSelector(matrix) => {
            pin_selector(&mut matrix.selector, t);
            false
        }
        Expr::Subquery(subquery) => {
            if !matches!(subquery.at, Some(AtModifier::At(_))) {
                subquery.at = Some(AtModifier::At(t));
            }
            false
        }
        Expr::Paren(inner) => pin_at(inner, t),
        Expr::Unary(unary) => pin_at(&mut unary.expr, t),
        Expr::Binary(binary) => {
            let lhs = pin_at(&mut binary.lhs, t);
            let rhs = pin_at(&mut binary.rhs, t);
            lhs || rhs
        }
        Expr::Aggregate(aggregate) => {
            let param = aggregate.param.as_mut().is_some_and(|p| pin_at(p, t));
            let inner = pin_at(&mut aggregate.expr, t);
            param || inner
        }
        Expr::Call(call) => {
            let mut unsafe_call = AT_MODIFIER_UNSAFE_FUNCTIONS.contains(&call.func.name);
            for arg in &mut call.args {
                unsafe_call |= pin_at(arg, t);
            }
            unsafe_call
        }
    }
}

/// Visits every node of the expression, subqueries included.
fn walk<'e>(expr: &'e Expr, visit: &mut dyn FnMut(&'e Expr)) {
    visit(expr);
    match expr {
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_) => {}
        Expr::Subquery(subquery) => walk(&subquery.expr, visit),
        Expr::Paren(inner) => walk(inner, visit),
        Expr::Unary(unary) => walk(&unary.expr, visit),
        Expr::Binary(binary) => {
            walk(&binary.lhs, visit);
            walk(&binary.rhs, visit);
        }
        Expr::Aggregate(aggregate) => {
            if let Some(param) = &aggregate.param {
                walk(param, visit);
            }
            walk(&aggregate.expr, visit);
        }
        Expr::Call(call) => call.args.iter().for_each(|arg| walk(arg, visit)),
    }
}

/// True when the expression calls any of the named functions anywhere.
pub fn calls_any(expr: &Expr, names: &[&str]) -> bool {
    let mut found = false;
    walk(expr, &mut |node| {
        if let Expr::Call(call) = node {
            found |= names.contains(&call.func.name);
        }
    });
    found
}

/// True when a range, step or offset is a duration expression kept for evaluation time, i.e.
/// one that uses `step()` or `range()`, whose value differs between instant and range queries.
fn has_query_dependent_duration(expr: &Expr) -> bool {
    let mut found = false;
    walk(expr, &mut |node| {
        found |= match node {
            Expr::VectorSelector(v) => v.offset_expr.is_some(),
            Expr::MatrixSelector(m) => m.range_expr.is_some() || m.selector.offset_expr.is_some(),
            Expr::Subquery(s) => {
                s.range_expr.is_some() || s.step_expr.is_some() || s.offset_expr.is_some()
            }
            _ => false,
        };
    });
    found
}

/// The first of `candidates` that some selector of the expression matches.
fn selected_series<'s>(expr: &Expr, candidates: &'s [Labels]) -> Option<&'s Labels> {
    if candidates.is_empty() {
        return None;
    }
    let mut found = None;
    walk(expr, &mut |node| {
        let selector = match node {
            Expr::VectorSelector(selector) => selector,
            Expr::MatrixSelector(matrix) => &matrix.selector,
            _ => return,
        };
        if found.is_none() {
            found = candidates
                .iter()
                .find(|labels| selector.matchers.iter().all(|m| m.matches_labels(labels)));
        }
    });
    found
}
