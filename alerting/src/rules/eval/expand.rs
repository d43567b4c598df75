//! Alert label and annotation templates for the evaluator: parsed once per rule with the
//! Go-compatible engine ([`crate::template`]) and expanded per alert, with the template `query`
//! function served by the rule engine at the evaluation time.

use std::collections::BTreeMap;

use sextant_query::promql::{Engine, Value};
use sextant_storage::Db;

use crate::template::{QuerySample, Template, TemplateData, TemplateQuery};

/// A rule's templates, parsed once. Parse errors are kept and reported at expansion, as
/// Prometheus does (`<error expanding template: …>`).
pub(crate) struct RuleTemplates {
    pub labels: Vec<(String, Result<Template, String>)>,
    pub annotations: Vec<(String, Result<Template, String>)>,
}

impl RuleTemplates {
    /// Parses the rule's label values and annotations under the name `__alert_<alertname>`.
    pub fn parse(
        alert_name: &str,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> RuleTemplates {
        let name = format!("__alert_{alert_name}");
        let parse = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| {
                    let t = Template::parse_named(&name, v).map_err(|e| e.to_string());
                    (k.clone(), t)
                })
                .collect()
        };
        RuleTemplates {
            labels: parse(labels),
            annotations: parse(annotations),
        }
    }
}

/// Expands one template; failures become Prometheus' `<error expanding template: …>` text.
pub(crate) fn expand(
    template: &Result<Template, String>,
    data: &TemplateData,
    query: &dyn TemplateQuery,
) -> String {
    let result = match template {
        Ok(t) => t.expand(data, query).map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "expanding alert template failed");
        format!("<error expanding template: {e}>")
    })
}

/// The template `query` function: an instant query at the rule's evaluation time.
pub(crate) struct RuleTemplateQuery<'a> {
    pub engine: &'a Engine,
    pub db: &'a Db,
    pub ts_ms: i64,
}

impl TemplateQuery for RuleTemplateQuery<'_> {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
        let parsed = sextant_query::promql::parse(expr).map_err(|e| e.to_string())?;
        let res = self
            .engine
            .instant_query(self.db, expr, &parsed, self.ts_ms)
            .map_err(|e| e.to_string())?;
        match res.value {
            Value::Vector(v) => Ok(v
                .into_iter()
                .map(|s| QuerySample {
                    labels: s
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    value: s.v,
                })
                .collect()),
            Value::Scalar(_, v) => Ok(vec![QuerySample {
                labels: BTreeMap::new(),
                value: v,
            }]),
            Value::String(..) | Value::Matrix(_) => {
                Err("rule result is not a vector or scalar".to_string())
            }
        }
    }
}
