//! Notifications: an Alertmanager-compatible routing tree, grouping, inhibition, silences and
//! receivers, and forwarding to external Alertmanagers.

use serde::{Deserialize, Serialize};

/// The built-in notifier's configuration, in Alertmanager's configuration format (`global`,
/// `route`, `receivers`, `inhibit_rules`, `time_intervals`, …), under `notifications:` in
/// Sextant's configuration file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {}

/// Prometheus' `alerting:` section: external Alertmanagers that receive every alert.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {}
