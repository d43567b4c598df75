//! Prometheus-compatible recording and alerting rules.

pub mod api;
pub mod eval;
pub mod manager;
pub mod model;

pub use model::{RuleDef, RuleGroup, RuleKind};
pub mod file;

pub use file::{
    duplicate_rules, load_rule_files, load_rule_files_with, parse_duration, parse_rule_file,
    parse_rule_file_with, DuplicateRule, RuleFileError, RuleFileOptions,
};
pub mod unittest;
