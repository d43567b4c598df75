//! Alert state of one alerting rule, as Prometheus' `rules/alerting.go` keeps it: alerts keyed
//! by their label set, pending until `for` has passed since they became active, firing on while
//! `keep_firing_for` lasts after the condition clears, and kept 15m after resolving so the
//! resolution is re-sent.

use std::collections::{BTreeMap, HashMap};

use sextant_query::promql::VectorSample;
use sextant_storage::{is_stale_nan, Labels, METRIC_NAME};

use super::expand::{expand, TemplateInput};
use super::{duration_ms, query_escape, EvalCtx, OutSample, RESOLVED_RETENTION};
use crate::Alert;

/// State of one alert (and, for a rule, the highest state of its alerts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertState {
    /// Resolved (kept for the resolved retention), or a rule with no alerts.
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    /// `inactive`, `pending` or `firing`, as `ALERTS{alertstate}` and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlert {
    /// The series' labels without `__name__`, the rule's (templated) labels and `alertname`.
    pub labels: BTreeMap<String, String>,
    /// Annotations, expanded at the last evaluation that produced the alert.
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// The expression's value at the last evaluation that produced the alert.
    pub value: f64,
    /// When the alert became active (pending); `for` is measured from here.
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    /// Until when the last send declared it valid (`ends_at` of a firing alert).
    pub valid_until_ms: Option<i64>,
    /// Set while the alert fires only because of `keep_firing_for`.
    pub keep_firing_since_ms: Option<i64>,
}

/// The rule-level inputs of one evaluation.
pub(super) struct RuleInput<'a> {
    pub name: &'a str,
    pub query: &'a str,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Per-rule alert state.
pub(super) struct AlertingState {
    active: HashMap<Labels, ActiveAlert>,
    /// False between a start and `restore_for_state`: no `ALERTS*` series are written.
    pub restored: bool,
}

impl Default for AlertingState {
    fn default() -> Self {
        AlertingState {
            active: HashMap::new(),
            restored: true,
        }
    }
}

fn to_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

impl AlertingState {
    /// Updates the alerts from the query result at `ctx.ts_ms` and returns the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples to write.
    pub fn eval(
        &mut self,
        rule: &RuleInput<'_>,
        ctx: &EvalCtx<'_>,
        vector: Vec<VectorSample>,
    ) -> Result<Vec<OutSample>, String> {
        let ts = ctx.ts_ms;
        let template_name = format!("__alert_{}", rule.name);
        let mut fresh: HashMap<Labels, (BTreeMap<String, String>, f64)> =
            HashMap::with_capacity(vector.len());
        for s in vector {
            let metric = to_map(&s.labels);
            let input = TemplateInput {
                labels: &metric,
                external_labels: &ctx.opts.external_labels,
                external_url: &ctx.opts.external_url,
                value: s.v,
            };
            let run = |text: &str| {
                expand(&template_name, text, &input).unwrap_or_else(|e| {
                    tracing::warn!(rule = rule.name, error = %e, "expanding alert template failed");
                    format!("<error expanding template: {e}>")
                })
            };
            let mut labels = s.labels.without_metric_name();
            for (k, v) in rule.labels {
                labels.set(k, &run(v));
            }
            labels.set("alertname", rule.name);
            let annotations: BTreeMap<String, String> = rule
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), run(v)))
                .collect();
            if fresh.insert(labels, (annotations, s.v)).is_some() {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
        }

        for (labels, (annotations, value)) in &fresh {
            if let Some(a) = self.active.get_mut(labels) {
                if a.state != AlertState::Inactive {
                    a.value = *value;
                    a.annotations = annotations.clone();
                    continue;
                }
            }
            self.active.insert(
                labels.clone(),
                ActiveAlert {
                    labels: to_map(labels),
                    annotations: annotations.clone(),
                    state: AlertState::Pending,
                    value: *value,
                    active_at_ms: ts,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_at_ms: None,
                    valid_until_ms: None,
                    keep_firing_since_ms: None,
                },
            );
        }

        let retention = duration_ms(RESOLVED_RETENTION);
        let mut active_pending = 0usize;
        let mut samples = Vec::new();
        let restored = self.restored;
        self.active.retain(|labels, a| {
            if fresh.contains_key(labels) {
                a.keep_firing_since_ms = None;
            } else {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && rule.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts);
                    keep_firing = ts - since < rule.keep_firing_for_ms;
                }
                if !keep_firing {
                    let remove = a.state == AlertState::Pending
                        || a.resolved_at_ms.is_some_and(|r| ts - r > retention);
                    if a.state != AlertState::Inactive {
                        a.state = AlertState::Inactive;
                        a.resolved_at_ms = Some(ts);
                    }
                    return !remove;
                }
            }
            active_pending += 1;
            if a.state == AlertState::Pending && ts - a.active_at_ms >= rule.for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts);
            }
            if restored {
                let mut alerts = labels.clone();
                alerts.set(METRIC_NAME, "ALERTS");
                alerts.set("alertname", rule.name);
                alerts.set("alertstate", a.state.as_str());
                samples.push(OutSample {
                    labels: alerts,
                    value: 1.0,
                    histogram: None,
                });
                let mut for_state = labels.clone();
                for_state.set(METRIC_NAME, "ALERTS_FOR_STATE");
                for_state.set("alertname", rule.name);
                samples.push(OutSample {
                    labels: for_state,
                    value: a.active_at_ms.div_euclid(1000) as f64,
                    histogram: None,
                });
            }
            true
        });
        if ctx.limit > 0 && active_pending > ctx.limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {} with {} alerts",
                ctx.limit, active_pending
            ));
        }
        samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(samples)
    }

    /// Appends the alerts due to be sent at `ctx.ts_ms` (Prometheus' `sendAlerts`): firing ones
    /// not sent within the resend delay, and resolved ones not sent since they resolved (then
    /// again every resend delay while retained).
    pub fn collect_sends(&mut self, rule: &RuleInput<'_>, ctx: &EvalCtx<'_>, out: &mut Vec<Alert>) {
        let ts = ctx.ts_ms;
        let resend = duration_ms(ctx.opts.resend_delay);
        let delta = resend.max(duration_ms(ctx.interval));
        let generator_url = format!(
            "{}/graph?g0.expr={}&g0.tab=1",
            ctx.opts.external_url.trim_end_matches('/'),
            query_escape(rule.query)
        );
        let mut due: Vec<&mut ActiveAlert> = self
            .active
            .values_mut()
            .filter(|a| needs_sending(a, ts, resend))
            .collect();
        due.sort_by(|a, b| a.labels.cmp(&b.labels));
        for a in due {
            a.last_sent_at_ms = Some(ts);
            let valid_until = ts.saturating_add(delta.saturating_mul(4));
            a.valid_until_ms = Some(valid_until);
            let mut labels = a.labels.clone();
            for (k, v) in &ctx.opts.external_labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            out.push(Alert {
                labels,
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                ends_at_ms: a.resolved_at_ms.unwrap_or(valid_until),
                generator_url: generator_url.clone(),
            });
        }
    }

    /// Pending and firing alerts, sorted by labels.
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        let mut v: Vec<ActiveAlert> = self
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The highest state of the rule's alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Shifts `active_at` of current alerts from their `ALERTS_FOR_STATE` series' last sample
    /// `(t ms, active-at seconds)` as Prometheus' `RestoreForState` does.
    pub fn restore(
        &mut self,
        last: &HashMap<Labels, (i64, f64)>,
        now_ms: i64,
        for_ms: i64,
        grace_ms: i64,
    ) {
        for (labels, a) in self.active.iter_mut() {
            let Some(&(t, v)) = last.get(labels) else {
                continue;
            };
            if is_stale_nan(v) || !v.is_finite() {
                continue;
            }
            // Prometheus works in whole seconds here.
            let down_at = (t / 1000) * 1000;
            let restored_active_at = (v as i64).saturating_mul(1000);
            let remaining = for_ms - (down_at - restored_active_at);
            a.active_at_ms = if remaining <= 0 {
                restored_active_at
            } else if remaining < grace_ms {
                now_ms + grace_ms - for_ms
            } else {
                restored_active_at + (now_ms - down_at)
            };
            tracing::debug!(alert = ?a.labels, active_at_ms = a.active_at_ms, "restored 'for' state");
        }
    }
}

fn needs_sending(a: &ActiveAlert, ts: i64, resend_ms: i64) -> bool {
    if a.state == AlertState::Pending {
        return false;
    }
    let last_sent = a.last_sent_at_ms.unwrap_or(i64::MIN);
    if a.resolved_at_ms.is_some_and(|r| r > last_sent) {
        return true;
    }
    match a.last_sent_at_ms {
        None => true,
        Some(l) => l.saturating_add(resend_ms) < ts,
    }
}
