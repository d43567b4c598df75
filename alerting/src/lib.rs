//! Alerting for Sextant: Prometheus-compatible recording and alerting rules, SLOs with error
//! budgets and multi-window burn-rate alerts, and the notifications that reach on-call.
//!
//! Depends on `query` (rules are PromQL evaluated by its engine) and `storage` (rule results and
//! alert state are written back as series). Knows nothing of `src/`.
//!
//! - [`rules`]: rule files (parse, validate), evaluation, the per-group scheduler, alert state,
//!   `/api/v1/rules` and `/api/v1/alerts`, and promtool-style rule unit tests.
//! - [`slo`]: SLO specs (Sloth, OpenSLO) turned into rule groups, and error-budget state.
//! - [`notify`]: an Alertmanager-compatible routing tree, inhibition, silences, receivers and
//!   forwarding to external Alertmanagers.
//! - [`template`]: Go text/template-compatible alert templating with Prometheus' functions.
//! - [`alert`]: the alert value passed from rules to notifications.

pub mod alert;
pub mod notify;
pub mod rules;
pub mod slo;
pub mod template;

pub use alert::{Alert, AlertSink};
