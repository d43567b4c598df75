//! Rule groups as loaded from Prometheus rule files or generated from SLO specs: the input of
//! evaluation. Expressions are kept as text (and parsed when a group is loaded).

use std::collections::BTreeMap;
use std::time::Duration;

/// One `groups:` entry of a Prometheus rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    /// The file it was loaded from; generated groups name their source (e.g. `slo:<file>`).
    pub file: String,
    /// `interval:`; `None` means the global evaluation interval.
    pub interval: Option<Duration>,
    /// `limit:`: most series an alerting rule may produce (alerts) or a recording rule may
    /// write per evaluation; 0 means no limit.
    pub limit: usize,
    /// `query_offset:`; `None` means the global rule query offset.
    pub query_offset: Option<Duration>,
    /// `labels:` added to every rule of the group (rule labels win).
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<RuleDef>,
}

/// Whether a rule records a series or raises alerts, with its output name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// `record: <metric name>`
    Record(String),
    /// `alert: <alert name>`
    Alert(String),
}

/// One rule of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleDef {
    pub kind: RuleKind,
    /// The PromQL expression, as written.
    pub expr: String,
    /// `for:` (alerting rules only; zero otherwise).
    pub for_: Duration,
    /// `keep_firing_for:` (alerting rules only; zero otherwise).
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    /// `annotations:` (alerting rules only), as unexpanded templates.
    pub annotations: BTreeMap<String, String>,
    /// 1-based line of the rule in its file; 0 for generated rules.
    pub line: usize,
}
