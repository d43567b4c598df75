//! Prometheus-compatible recording and alerting rules.

pub mod model;

pub use model::{RuleDef, RuleGroup, RuleKind};
