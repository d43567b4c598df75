//! Evaluation of one rule group, as Prometheus' `rules/group.go`, `recording.go` and
//! `alerting.go` do it: rules run in order at one timestamp, their results are appended to the
//! TSDB at once (so later rules see earlier ones), series that stop being produced get
//! staleness markers, and alerting rules keep per-alert state (pending → firing after `for`,
//! `keep_firing_for`, resolved alerts retained 15m) and say which alerts to send.
//!
//! [`GroupEvaluator`] is pure of scheduling: the manager (and the promtool unit-test runner)
//! decide when to call [`GroupEvaluator::evaluate`].

mod alerting;
mod expand;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use sextant_query::promql::{Engine, Expr, QueryError, Value, VectorSample};
use sextant_storage::{
    Db, HistogramSample, Labels, Sample, SeriesSource, METRIC_NAME, STALE_NAN_BITS,
};

use super::model::{RuleDef, RuleGroup, RuleKind};
use crate::Alert;
use alerting::AlertingState;
pub use alerting::{ActiveAlert, AlertState};

/// How long a resolved alert is kept (and re-sent as resolved), Prometheus' `resolvedRetention`.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// Settings shared by every group, from the global configuration.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Added to alerts sent (alert labels win) and available to templates as
    /// `$externalLabels`.
    pub external_labels: BTreeMap<String, String>,
    /// Base of alerts' generator URLs and `$externalURL`.
    pub external_url: String,
    /// Interval of groups that set none (`global.evaluation_interval`, default 1m).
    pub default_interval: Duration,
    /// Query offset of groups that set none (`global.rule_query_offset`, default 0).
    pub default_query_offset: Duration,
    /// Minimum time between two sends of the same alert (Prometheus' `--rules.alert.resend-delay`,
    /// default 1m).
    pub resend_delay: Duration,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            default_interval: Duration::from_secs(60),
            default_query_offset: Duration::ZERO,
            resend_delay: Duration::from_secs(60),
        }
    }
}

/// Health of a rule after its last evaluation, as `/api/v1/rules` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleHealth {
    /// Not evaluated yet.
    Unknown,
    Ok,
    Err,
}

impl RuleHealth {
    /// `unknown`, `ok` or `err`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Ok => "ok",
            RuleHealth::Err => "err",
        }
    }
}

/// One rule's definition and evaluation status, for the API.
#[derive(Clone, Debug)]
pub struct RuleStatus {
    pub kind: RuleKind,
    /// The expression in canonical PromQL form.
    pub query: String,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    /// The rule's labels (group labels merged in, rule labels winning).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub health: RuleHealth,
    pub last_error: Option<String>,
    /// Timestamp (ms) of the last evaluation; `None` before the first.
    pub last_evaluation_ms: Option<i64>,
    /// Wall time the last evaluation took.
    pub evaluation_time: Duration,
    /// Alerting rules: the highest state of their alerts (`Inactive` for recording rules).
    pub state: AlertState,
    /// Alerting rules: pending and firing alerts, sorted by labels.
    pub alerts: Vec<ActiveAlert>,
}

/// A group's identity and evaluation status, for the API.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub limit: usize,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_time: Duration,
}

/// What one evaluation of a group produced.
#[derive(Clone, Debug, Default)]
pub struct EvalOutcome {
    /// Alerts due to be sent (firing ones not sent within the resend delay, and resolved ones).
    pub alerts: Vec<Alert>,
    /// Samples appended (rule results, `ALERTS`, `ALERTS_FOR_STATE` and staleness markers).
    pub samples_written: usize,
    /// Rules whose evaluation (or whose write) failed this time.
    pub failed_rules: usize,
    /// Wall time of the whole evaluation.
    pub duration: Duration,
}

/// One rule, parsed, with its evaluation state.
struct Rule {
    def: RuleDef,
    expr: Expr,
    /// Canonical text of `expr`, used for queries, the API and generator URLs.
    query: String,
    health: RuleHealth,
    last_error: Option<String>,
    last_evaluation_ms: Option<i64>,
    evaluation_time: Duration,
    /// Series written by the last successful evaluation (Prometheus' `seriesInPreviousEval`).
    prev_series: HashSet<Labels>,
    /// Alerting rules only.
    alerting: Option<AlertingState>,
}

impl Rule {
    /// The identity used to carry state across reloads: kind and name, expression and labels.
    fn same_definition(&self, other: &Rule) -> bool {
        self.def.kind == other.def.kind
            && self.query == other.query
            && self.def.labels == other.def.labels
    }
}

/// Evaluates one rule group; holds its rules' state between evaluations.
pub struct GroupEvaluator {
    group: RuleGroup,
    opts: EvalOptions,
    rules: Vec<Rule>,
    interval: Duration,
    query_offset: Duration,
    last_evaluation_ms: Option<i64>,
    evaluation_time: Duration,
    /// Series of rules removed by a reload, marked stale at the next evaluation.
    stale_series: Vec<Labels>,
}

impl GroupEvaluator {
    /// Parses every rule's expression and merges the group's labels into each rule's (rule
    /// labels win). Errors name the rule: `group "g", rule 2 ("name"): <parse error>`.
    pub fn new(group: RuleGroup, opts: EvalOptions) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(group.rules.len());
        for (i, def) in group.rules.iter().enumerate() {
            let name = match &def.kind {
                RuleKind::Record(n) | RuleKind::Alert(n) => n,
            };
            let expr = sextant_query::promql::parse(&def.expr)
                .map_err(|e| format!("group {:?}, rule {} ({:?}): {e}", group.name, i + 1, name))?;
            let mut def = def.clone();
            for (k, v) in &group.labels {
                def.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let alerting = match &def.kind {
                RuleKind::Alert(_) => Some(AlertingState::default()),
                RuleKind::Record(_) => None,
            };
            rules.push(Rule {
                query: expr.to_string(),
                expr,
                def,
                health: RuleHealth::Unknown,
                last_error: None,
                last_evaluation_ms: None,
                evaluation_time: Duration::ZERO,
                prev_series: HashSet::new(),
                alerting,
            });
        }
        let interval = group
            .interval
            .filter(|d| !d.is_zero())
            .unwrap_or(opts.default_interval);
        let query_offset = group.query_offset.unwrap_or(opts.default_query_offset);
        Ok(GroupEvaluator {
            group,
            opts,
            rules,
            interval,
            query_offset,
            last_evaluation_ms: None,
            evaluation_time: Duration::ZERO,
            stale_series: Vec::new(),
        })
    }

    /// The group's evaluation interval (its own, or the default).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The group's query offset (its own, or the default).
    pub fn query_offset(&self) -> Duration {
        self.query_offset
    }

    /// The group definition this evaluator was built from.
    pub fn group(&self) -> &RuleGroup {
        &self.group
    }

    /// Evaluates every rule in order at `ts_ms` (queries at `ts_ms - query_offset`), appending
    /// recording-rule results, `ALERTS` and `ALERTS_FOR_STATE` to `db` (so later rules see
    /// earlier ones), and returns the alerts to send.
    pub fn evaluate(&mut self, engine: &Engine, db: &Db, ts_ms: i64) -> EvalOutcome {
        let started = Instant::now();
        let offset_ms = duration_ms(self.query_offset);
        let query_ts = ts_ms - offset_ms;
        let mut out = EvalOutcome::default();
        let ctx = EvalCtx {
            engine,
            db,
            ts_ms,
            query_ts,
            limit: self.group.limit,
            opts: &self.opts,
            interval: self.interval,
        };
        for rule in &mut self.rules {
            let rule_started = Instant::now();
            rule.last_evaluation_ms = Some(ts_ms);
            match eval_rule(&ctx, rule, &mut out.alerts) {
                Ok(samples) => {
                    rule.health = RuleHealth::Ok;
                    rule.last_error = None;
                    let (written, error) = write_results(db, rule, samples, query_ts);
                    out.samples_written += written;
                    if let Some(e) = error {
                        rule.health = RuleHealth::Err;
                        rule.last_error = Some(e);
                        out.failed_rules += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %self.group.name, rule = %rule_name(&rule.def), error = %e, "evaluating rule failed");
                    rule.health = RuleHealth::Err;
                    rule.last_error = Some(e);
                    out.failed_rules += 1;
                }
            }
            rule.evaluation_time = rule_started.elapsed();
        }
        if !self.stale_series.is_empty() {
            let stale = std::mem::take(&mut self.stale_series);
            out.samples_written += append_stale(db, stale, query_ts);
        }
        self.last_evaluation_ms = Some(ts_ms);
        self.evaluation_time = started.elapsed();
        out.duration = self.evaluation_time;
        out
    }

    /// Alerts of every alerting rule that are pending or firing, sorted by labels.
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        let mut all: Vec<ActiveAlert> = self
            .rules
            .iter()
            .filter_map(|r| r.alerting.as_ref())
            .flat_map(|a| a.active_alerts())
            .collect();
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all
    }

    /// Each rule's definition and status, in group order.
    pub fn rule_states(&self) -> Vec<RuleStatus> {
        self.rules
            .iter()
            .map(|r| {
                let (state, alerts) = match &r.alerting {
                    Some(a) => (a.state(), a.active_alerts()),
                    None => (AlertState::Inactive, Vec::new()),
                };
                RuleStatus {
                    kind: r.def.kind.clone(),
                    query: r.query.clone(),
                    for_: r.def.for_,
                    keep_firing_for: r.def.keep_firing_for,
                    labels: r.def.labels.clone(),
                    annotations: r.def.annotations.clone(),
                    health: r.health,
                    last_error: r.last_error.clone(),
                    last_evaluation_ms: r.last_evaluation_ms,
                    evaluation_time: r.evaluation_time,
                    state,
                    alerts,
                }
            })
            .collect()
    }

    /// The group's identity and last evaluation, for the API.
    pub fn group_status(&self) -> GroupStatus {
        GroupStatus {
            name: self.group.name.clone(),
            file: self.group.file.clone(),
            interval: self.interval,
            limit: self.group.limit,
            last_evaluation_ms: self.last_evaluation_ms,
            evaluation_time: self.evaluation_time,
        }
    }

    /// Marks the alerting rules as waiting for [`GroupEvaluator::restore_for_state`]: until
    /// then they keep state and send alerts but write no `ALERTS`/`ALERTS_FOR_STATE` (as
    /// Prometheus does after a start, so the stored `for` state is not overwritten before it is
    /// read back).
    pub fn require_restore(&mut self) {
        for a in self.rules.iter_mut().filter_map(|r| r.alerting.as_mut()) {
            a.restored = false;
        }
    }

    /// Restores `for` progress of current alerts from `ALERTS_FOR_STATE` (Prometheus'
    /// `RestoreForState`), at wall time `now_ms`: series older than `outage_tolerance` are
    /// ignored; an alert that was pending when the server went down keeps the pending time it
    /// had accrued, and gets at least `for_grace_period` before firing; one that was firing
    /// keeps its original active time. Rules whose `for` is shorter than the grace period are
    /// not restored.
    pub fn restore_for_state(
        &mut self,
        source: &dyn SeriesSource,
        now_ms: i64,
        outage_tolerance: Duration,
        for_grace_period: Duration,
    ) {
        let mint = now_ms - duration_ms(outage_tolerance);
        for rule in &mut self.rules {
            let Some(state) = rule.alerting.as_mut() else {
                continue;
            };
            if rule.def.for_ < for_grace_period {
                state.restored = true;
                continue;
            }
            let name = rule_name(&rule.def);
            let matchers = [
                sextant_storage::Matcher::equal(METRIC_NAME, "ALERTS_FOR_STATE"),
                sextant_storage::Matcher::equal("alertname", name),
            ];
            match source.select(&matchers, mint, now_ms) {
                Ok(series) => {
                    let last: HashMap<Labels, (i64, f64)> = series
                        .into_iter()
                        .filter_map(|s| {
                            let last = s.samples.last().map(|x| (x.t, x.v))?;
                            Some((s.labels.without_metric_name(), last))
                        })
                        .collect();
                    state.restore(
                        &last,
                        now_ms,
                        duration_ms(rule.def.for_),
                        duration_ms(for_grace_period),
                    );
                }
                Err(e) => {
                    tracing::error!(group = %self.group.name, rule = %name, error = %e, "failed to restore alert state");
                }
            }
            state.restored = true;
        }
    }

    /// Takes over the state of `old` (a previous version of this group, before a reload):
    /// rules with the same kind, name, expression and labels keep their alerts, health and
    /// written series; series of rules that no longer exist are marked stale at the next
    /// evaluation.
    pub fn copy_state_from(&mut self, old: GroupEvaluator) {
        self.last_evaluation_ms = old.last_evaluation_ms;
        self.evaluation_time = old.evaluation_time;
        self.stale_series = old.stale_series;
        let mut taken = vec![false; old.rules.len()];
        let mut old_rules: Vec<Option<Rule>> = old.rules.into_iter().map(Some).collect();
        for rule in &mut self.rules {
            let found = old_rules
                .iter()
                .position(|o| o.as_ref().is_some_and(|o| o.same_definition(rule)));
            let Some(i) = found else { continue };
            taken[i] = true;
            let Some(o) = old_rules[i].take() else {
                continue;
            };
            rule.prev_series = o.prev_series;
            rule.health = o.health;
            rule.last_error = o.last_error;
            rule.last_evaluation_ms = o.last_evaluation_ms;
            rule.evaluation_time = o.evaluation_time;
            if let (Some(new), Some(mut prev)) = (rule.alerting.as_mut(), o.alerting) {
                prev.restored = new.restored;
                *new = prev;
            }
        }
        for o in old_rules.into_iter().flatten() {
            self.stale_series.extend(o.prev_series);
        }
    }

    /// Writes staleness markers at `ts_ms` for every series this group wrote last time (used
    /// when the group is removed by a reload or the server stops evaluating it).
    pub fn mark_all_stale(&mut self, db: &Db, ts_ms: i64) -> usize {
        let mut all: Vec<Labels> = std::mem::take(&mut self.stale_series);
        for r in &mut self.rules {
            all.extend(r.prev_series.drain());
        }
        append_stale(db, all, ts_ms - duration_ms(self.query_offset))
    }
}

/// Everything a rule evaluation needs besides the rule.
struct EvalCtx<'a> {
    engine: &'a Engine,
    db: &'a Db,
    ts_ms: i64,
    query_ts: i64,
    limit: usize,
    opts: &'a EvalOptions,
    interval: Duration,
}

/// One output sample of a rule.
pub(crate) struct OutSample {
    pub labels: Labels,
    pub value: f64,
    pub histogram: Option<sextant_storage::FloatHistogram>,
}

fn rule_name(def: &RuleDef) -> &str {
    match &def.kind {
        RuleKind::Record(n) | RuleKind::Alert(n) => n,
    }
}

/// Runs the rule's query at `ctx.query_ts` as a vector (a scalar becomes one unlabelled sample).
fn query_vector(ctx: &EvalCtx<'_>, rule: &Rule) -> Result<Vec<VectorSample>, String> {
    let res = ctx
        .engine
        .instant_query(ctx.db, &rule.query, &rule.expr, ctx.query_ts)
        .map_err(|e: QueryError| e.to_string())?;
    match res.value {
        Value::Vector(v) => Ok(v),
        Value::Scalar(t, v) => Ok(vec![VectorSample {
            labels: Labels::empty(),
            t,
            v,
            h: None,
        }]),
        Value::String(..) | Value::Matrix(_) => {
            Err("rule result is not a vector or scalar".to_string())
        }
    }
}

/// Evaluates one rule; on success returns the samples to write (alerting rules also push the
/// alerts due to `alerts`).
fn eval_rule(
    ctx: &EvalCtx<'_>,
    rule: &mut Rule,
    alerts: &mut Vec<Alert>,
) -> Result<Vec<OutSample>, String> {
    let vector = query_vector(ctx, rule)?;
    match &rule.def.kind {
        RuleKind::Record(name) => {
            let mut out: Vec<OutSample> = vector
                .into_iter()
                .map(|s| {
                    let mut labels = s.labels;
                    labels.set(METRIC_NAME, name);
                    for (k, v) in &rule.def.labels {
                        labels.set(k, v);
                    }
                    OutSample {
                        labels,
                        value: s.v,
                        histogram: s.h,
                    }
                })
                .collect();
            let mut seen = HashSet::with_capacity(out.len());
            if !out.iter().all(|s| seen.insert(&s.labels)) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .to_string(),
                );
            }
            if ctx.limit > 0 && out.len() > ctx.limit {
                return Err(format!(
                    "exceeded limit of {} with {} series",
                    ctx.limit,
                    out.len()
                ));
            }
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(out)
        }
        RuleKind::Alert(name) => {
            let Some(state) = rule.alerting.as_mut() else {
                return Ok(Vec::new());
            };
            let input = alerting::RuleInput {
                name,
                query: &rule.query,
                for_ms: duration_ms(rule.def.for_),
                keep_firing_for_ms: duration_ms(rule.def.keep_firing_for),
                labels: &rule.def.labels,
                annotations: &rule.def.annotations,
            };
            let samples = state.eval(&input, ctx, vector)?;
            state.collect_sends(&input, ctx, alerts);
            Ok(samples)
        }
    }
}

/// Appends a rule's samples and the staleness markers of series it no longer produces.
/// Returns the number of samples written and, when storage refused some, the error to report.
fn write_results(
    db: &Db,
    rule: &mut Rule,
    samples: Vec<OutSample>,
    query_ts: i64,
) -> (usize, Option<String>) {
    let mut floats: Vec<(Labels, Vec<Sample>)> = Vec::with_capacity(samples.len());
    let mut hists: Vec<(Labels, Vec<HistogramSample>)> = Vec::new();
    let mut returned: HashSet<Labels> = HashSet::with_capacity(samples.len());
    for s in samples {
        returned.insert(s.labels.clone());
        match s.histogram {
            Some(h) => hists.push((s.labels, vec![HistogramSample { t: query_ts, h }])),
            None => floats.push((
                s.labels,
                vec![Sample {
                    t: query_ts,
                    v: s.value,
                }],
            )),
        }
    }
    for gone in rule.prev_series.difference(&returned) {
        floats.push((
            gone.clone(),
            vec![Sample {
                t: query_ts,
                v: f64::from_bits(STALE_NAN_BITS),
            }],
        ));
    }
    let mut written = 0;
    let mut error = None;
    let mut record =
        |res: Result<sextant_storage::AppendOutcome, sextant_storage::StorageError>| match res {
            Ok(o) => {
                written += o.appended;
                if let Some((reason, n)) = o.rejected.iter().next() {
                    error = Some(format!(
                        "storage refused {n} sample(s) of the rule's output: {}",
                        reason.as_str()
                    ));
                }
            }
            Err(e) => error = Some(e.to_string()),
        };
    if !floats.is_empty() {
        record(db.append(&floats));
    }
    if !hists.is_empty() {
        record(db.append_histograms(&hists));
    }
    rule.prev_series = returned;
    (written, error)
}

/// Appends staleness markers for `series` at `ts_ms`; returns how many were stored.
fn append_stale(db: &Db, series: Vec<Labels>, ts_ms: i64) -> usize {
    if series.is_empty() {
        return 0;
    }
    let batch: Vec<(Labels, Vec<Sample>)> = series
        .into_iter()
        .map(|l| {
            (
                l,
                vec![Sample {
                    t: ts_ms,
                    v: f64::from_bits(STALE_NAN_BITS),
                }],
            )
        })
        .collect();
    match db.append(&batch) {
        Ok(o) => o.appended,
        Err(e) => {
            tracing::warn!(error = %e, "writing staleness markers failed");
            0
        }
    }
}

/// Milliseconds of a duration, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Go's `url.QueryEscape`: everything but `[A-Za-z0-9-_.~]` percent-encoded, space as `+`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
