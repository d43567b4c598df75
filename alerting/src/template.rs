//! Go text/template-compatible templating for alert labels and annotations, with Prometheus'
//! template functions (`humanize`, `query`, `first`, …) and data (`$labels`, `$value`, …).
//!
//! A template is parsed once ([`Template::parse`]) — which also checks, as Go does, that every
//! variable is declared and every function exists — and expanded per alert
//! ([`Template::expand`]). As in Prometheus, `$labels`, `$externalLabels`, `$externalURL` and
//! `$value` are predeclared, and `.` is the data with fields `Labels`, `ExternalLabels`,
//! `ExternalURL` and `Value`.
//!
//! Deliberate difference from Go: comparison functions (`eq`, `lt`, …) compare an integer
//! constant with a float numerically instead of failing with "incompatible types", so
//! `{{ if gt $value 100 }}` works.

mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;
mod printf;
pub(crate) mod value;

use std::collections::BTreeMap;
use std::fmt;

pub use gofmt_pub::{format_float_go, humanize};

/// Variables every Prometheus alert template may use without declaring them.
const PREDECLARED: [&str; 4] = ["$labels", "$externalLabels", "$externalURL", "$value"];

/// The data an alert template is expanded with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateData {
    /// The alert's labels (`$labels`, `.Labels`).
    pub labels: BTreeMap<String, String>,
    /// The server's external labels (`$externalLabels`).
    pub external_labels: BTreeMap<String, String>,
    /// The server's external URL (`$externalURL`, `externalURL`, `pathPrefix`).
    pub external_url: String,
    /// The alert's value (`$value`, `.Value`).
    pub value: f64,
}

/// One sample returned by the template `query` function.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuerySample {
    /// The series' labels; a string result is reported as label `__value__`.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Runs the PromQL of the template `query` function at the evaluation time of the alert.
/// Scalars are returned as one sample without labels.
pub trait TemplateQuery {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String>;
}

/// A [`TemplateQuery`] for contexts without a query engine (e.g. `check rules`): every query
/// fails with an explanation.
pub struct NoQuery;

impl TemplateQuery for NoQuery {
    fn query(&self, _expr: &str) -> Result<Vec<QuerySample>, String> {
        Err("queries are not available in this context".into())
    }
}

/// A parse or execution error, formatted as Go's text/template formats them
/// (`template: NAME:LINE: message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Whether parsing (true) or expansion (false) failed.
    pub parse: bool,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// A parsed template, ready to be expanded many times.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    tree: parse::Tree,
}

impl Template {
    /// Parses `text` under the name `__alert` (used in error messages).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_named("__alert", text)
    }

    /// Parses `text`; `name` appears in error messages, as Prometheus' `__alert_<alertname>`.
    pub fn parse_named(name: &str, text: &str) -> Result<Template, TemplateError> {
        let err = |(line, msg): (usize, String)| TemplateError {
            parse: true,
            message: format!("template: {name}:{line}: {msg}"),
        };
        let toks = lex::lex(text).map_err(err)?;
        let tree = parse::parse(toks, &funcs::is_func, &PREDECLARED).map_err(err)?;
        Ok(Template {
            name: name.to_string(),
            tree,
        })
    }

    /// Expands the template for one alert. `query` serves the `query` function.
    pub fn expand(
        &self,
        data: &TemplateData,
        query: &dyn TemplateQuery,
    ) -> Result<String, TemplateError> {
        exec::execute(&self.name, &self.tree, data, query).map_err(|(line, msg)| TemplateError {
            parse: false,
            message: format!("template: {}:{line}: {msg}", self.name),
        })
    }
}

/// Number formatting helpers shared with other alerting code (e.g. notification texts).
mod gofmt_pub {
    /// Formats a float as Go's `%v` does (`0.1`, `1e+06`, `+Inf`).
    pub fn format_float_go(v: f64) -> String {
        super::gofmt::float_v(v)
    }

    /// Prometheus' `humanize`: 4 significant digits with an SI prefix (`1.235M`, `12.3m`).
    pub fn humanize(v: f64) -> String {
        super::funcs::humanize_f(v)
    }
}

#[cfg(test)]
mod tests;
