//! The alert handed from rule evaluation to notifications: the shape of Alertmanager's
//! `postableAlert` (API v2), with times in milliseconds since the Unix epoch.

use std::collections::BTreeMap;

/// One alert instance as sent to notifiers (and, unchanged, to external Alertmanagers).
///
/// Rule evaluation re-sends a firing alert periodically with `ends_at_ms` set in the future
/// (Prometheus: the evaluation time plus 4 × max(resend delay, group interval)); a resolved
/// alert is sent with `ends_at_ms` at the time it resolved. A receiver treats an alert whose
/// `ends_at_ms` has passed as resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Identifying labels: the rule's output labels, `alertname`, the rule's `labels:`, and
    /// external labels.
    pub labels: BTreeMap<String, String>,
    /// Expanded annotation templates.
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing.
    pub starts_at_ms: i64,
    /// When the alert resolved, or for a firing alert the time until which it is valid.
    pub ends_at_ms: i64,
    /// Link back to the expression that produced it (`<external url>/graph?g0.expr=…`).
    pub generator_url: String,
}

impl Alert {
    /// Whether the alert counts as resolved at `now_ms`.
    pub fn is_resolved_at(&self, now_ms: i64) -> bool {
        self.ends_at_ms <= now_ms
    }
}

/// Where rule evaluation delivers alerts (the built-in notifier, external Alertmanagers, or a
/// test's collector). Must not block: implementations queue and return.
pub trait AlertSink: Send + Sync {
    fn send(&self, alerts: Vec<Alert>);
}
