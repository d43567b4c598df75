//! Sloth plugins, implemented natively: SLI plugins (`sli.plugin: {id, options}`, which turn
//! options into an SLI) and SLO plugin chains (`slo_plugins`/`sloPlugins` per file, `plugins`
//! per SLO: `{overridePrevious, chain: [{id, priority, config}]}`) that shape the generated
//! rule groups.
//!
//! Chain order (as Sloth): the default chain (`sloth.dev/core/validate/v1`, `sli_rules`,
//! `metadata_rules`, `alert_rules`, all priority 0), then the file's chain, then the SLO's;
//! `overridePrevious: true` drops everything gathered before it. The result is stably sorted
//! by `priority` (lower runs first). Core rule plugins (re)generate their group wholesale, so
//! a plugin that edits a group before its core plugin runs has no effect on it. An unknown
//! plugin id is a load error.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::spec::{parse_duration, Sli};

type Labels = BTreeMap<String, String>;

/// One SLO plugin of a resolved chain.
#[derive(Clone, Debug, PartialEq)]
pub enum SloPlugin {
    /// `sloth.dev/core/validate/v1`: every SLI query must parse as PromQL (checked at load).
    Validate,
    /// `sloth.dev/core/sli_rules/v1`: the `sloth-slo-sli-recordings-<id>` group.
    SliRules,
    /// `sloth.dev/core/metadata_rules/v1`: the `sloth-slo-meta-recordings-<id>` group.
    MetadataRules,
    /// `sloth.dev/core/alert_rules/v1`: the `sloth-slo-alerts-<id>` group.
    AlertRules,
    /// `sloth.dev/core/debug/v1` (logs `msg`) and `sloth.dev/core/noop/v1`: no rule changes.
    Debug { msg: String },
    /// `sloth.dev/contrib/info_labels/v1`: `labels` set on the info metric (`metricName`,
    /// default `sloth_slo_info`) of the metadata group; later values win.
    InfoLabels { metric: String, labels: Labels },
    /// `sloth.dev/contrib/rule_intervals/v1`: evaluation interval per group kind.
    RuleIntervals {
        default: Duration,
        sli: Option<Duration>,
        metadata: Option<Duration>,
        alert: Option<Duration>,
    },
    /// `sloth.dev/contrib/denominator_corrected_rules/v1`: SLI ratios of windows shorter than
    /// the period are scaled by `slo:numerator_correction:ratio<w>` = total events over `w` /
    /// total events over the period (recorded in the metadata group). Needs an `events` SLI.
    DenominatorCorrected,
    /// `sloth.dev/contrib/validate_victoria_metrics/v1`: queries are MetricsQL, which Sextant
    /// cannot parse; only bracket balance and the `{{.window}}` template are checked.
    ValidateVictoriaMetrics,
}

/// A resolved SLO plugin chain, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginChain(pub Vec<SloPlugin>);

impl Default for PluginChain {
    /// Sloth's default chain.
    fn default() -> Self {
        PluginChain(default_chain())
    }
}

impl PluginChain {
    /// Whether the PromQL validation of the SLI queries applies.
    pub fn validates_promql(&self) -> bool {
        self.0.contains(&SloPlugin::Validate)
    }

    /// Whether the MetricsQL (VictoriaMetrics) light validation applies.
    pub fn validates_metricsql(&self) -> bool {
        self.0.contains(&SloPlugin::ValidateVictoriaMetrics)
    }
}

fn default_chain() -> Vec<SloPlugin> {
    vec![
        SloPlugin::Validate,
        SloPlugin::SliRules,
        SloPlugin::MetadataRules,
        SloPlugin::AlertRules,
    ]
}

/// A `slo_plugins` / `sloPlugins` / `plugins` block as written.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PluginsDoc {
    #[serde(default, rename = "overridePrevious")]
    pub override_previous: bool,
    #[serde(default)]
    pub chain: Vec<PluginRef>,
}

/// One chain entry as written.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub id: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub config: Option<Value>,
}

/// Builds the chain of one SLO from its file's block and its own block.
pub fn build_chain(
    file_level: Option<&PluginsDoc>,
    slo_level: Option<&PluginsDoc>,
) -> Result<PluginChain, String> {
    let mut entries: Vec<(i64, SloPlugin)> = default_chain().into_iter().map(|p| (0, p)).collect();
    for doc in [file_level, slo_level].into_iter().flatten() {
        if doc.override_previous {
            entries.clear();
        }
        for r in &doc.chain {
            entries.push((r.priority, slo_plugin(&r.id, r.config.as_ref())?));
        }
    }
    // `sort_by_key` is stable: equal priorities keep their declaration order.
    entries.sort_by_key(|(p, _)| *p);
    Ok(PluginChain(entries.into_iter().map(|(_, p)| p).collect()))
}

fn config_map<'a>(id: &str, config: Option<&'a Value>) -> Result<Option<&'a Value>, String> {
    match config {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Mapping(_)) => Ok(Some(v)),
        Some(_) => Err(format!("SLO plugin {id:?}: config must be a mapping")),
    }
}

fn string_map(id: &str, what: &str, v: Option<&Value>) -> Result<Labels, String> {
    let mut out = Labels::new();
    let Some(v) = v else { return Ok(out) };
    let Value::Mapping(m) = v else {
        return Err(format!("SLO plugin {id:?}: {what} must be a mapping"));
    };
    for (k, v) in m {
        let (Some(k), Some(v)) = (k.as_str(), scalar(v)) else {
            return Err(format!(
                "SLO plugin {id:?}: {what} must map strings to strings"
            ));
        };
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn duration_field(id: &str, v: Option<&Value>, what: &str) -> Result<Option<Duration>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_duration(s)
            .map(Some)
            .map_err(|e| format!("SLO plugin {id:?}: {what}: {e}")),
        Some(_) => Err(format!(
            "SLO plugin {id:?}: {what} must be a duration string"
        )),
    }
}

/// Resolves one SLO plugin id with its config.
fn slo_plugin(id: &str, config: Option<&Value>) -> Result<SloPlugin, String> {
    let cfg = config_map(id, config)?;
    let field = |k: &str| cfg.and_then(|c| c.get(k));
    Ok(match id {
        "sloth.dev/core/validate/v1" => SloPlugin::Validate,
        "sloth.dev/core/sli_rules/v1" => SloPlugin::SliRules,
        "sloth.dev/core/metadata_rules/v1" => SloPlugin::MetadataRules,
        "sloth.dev/core/alert_rules/v1" => SloPlugin::AlertRules,
        "sloth.dev/core/noop/v1" => SloPlugin::Debug { msg: String::new() },
        "sloth.dev/core/debug/v1" => SloPlugin::Debug {
            msg: field("msg").and_then(scalar).unwrap_or_default(),
        },
        "sloth.dev/contrib/info_labels/v1" => {
            let labels = string_map(id, "labels", field("labels"))?;
            if labels.is_empty() {
                return Err(format!("SLO plugin {id:?}: config.labels is required"));
            }
            let metric = match field("metricName").and_then(scalar) {
                Some(m) if !m.is_empty() => m,
                _ => "sloth_slo_info".to_string(),
            };
            SloPlugin::InfoLabels { metric, labels }
        }
        "sloth.dev/contrib/rule_intervals/v1" => {
            let iv = field("interval");
            let get = |k: &str| duration_field(id, iv.and_then(|i| i.get(k)), k);
            let Some(default) = get("default")? else {
                return Err(format!(
                    "SLO plugin {id:?}: config.interval.default is required"
                ));
            };
            SloPlugin::RuleIntervals {
                default,
                sli: get("sliError")?,
                metadata: get("metadata")?,
                alert: get("alert")?,
            }
        }
        "sloth.dev/contrib/denominator_corrected_rules/v1" => SloPlugin::DenominatorCorrected,
        "sloth.dev/contrib/validate_victoria_metrics/v1" => SloPlugin::ValidateVictoriaMetrics,
        #[cfg(test)]
        // Sloth's integration-test SLO plugin: sets `config.labels` on the info metric.
        "integration-tests/plugin1" => SloPlugin::InfoLabels {
            metric: "sloth_slo_info".into(),
            labels: string_map(id, "labels", field("labels"))?,
        },
        _ => return Err(format!("unknown SLO plugin {id:?}")),
    })
}

/// An `sli.plugin` block as written.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct SliPluginRef {
    pub id: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Resolves an SLI plugin into an SLI. `labels` are the SLO's merged labels.
pub fn sli_plugin(p: &SliPluginRef, labels: &Labels) -> Result<Sli, String> {
    match p.id.as_str() {
        // Sloth's example plugin (`examples/plugins/getting-started/availability`).
        "getting_started_availability" => {
            for k in ["owner", "tier"] {
                if labels.get(k).is_none_or(String::is_empty) {
                    return Err(format!(
                        "SLI plugin {:?}: invalid labels: {k:?} label is required",
                        p.id
                    ));
                }
            }
            availability_sli(&p.id, "http_request_duration_seconds_count", &p.options)
        }
        #[cfg(test)]
        // Sloth's integration-test SLI plugin: the same query on `integration_test`.
        "integration_test" => availability_sli(&p.id, "integration_test", &p.options),
        other => Err(format!("unknown SLI plugin {other:?}")),
    }
}

/// A raw error ratio: 5xx and 429 responses over all responses of `metric` for `job`, with
/// an optional extra `filter` of `k="v"` matchers.
fn availability_sli(
    id: &str,
    metric: &str,
    opts: &BTreeMap<String, String>,
) -> Result<Sli, String> {
    let Some(job) = opts.get("job") else {
        return Err(format!("SLI plugin {id:?}: job options is required"));
    };
    let mut filter = String::new();
    if let Some(f) = opts.get("filter").filter(|f| !f.is_empty()) {
        let f = f.trim_matches(|c| c == '{' || c == '}').trim_matches(',');
        let valid = !f.is_empty()
            && f.split(',').all(|m| {
                m.split_once('=').is_some_and(|(k, v)| {
                    !k.is_empty()
                        && v.len() >= 2
                        && v.starts_with('"')
                        && v.ends_with('"')
                        && !v[1..v.len() - 1].contains(['"', '='])
                })
            });
        if !valid {
            return Err(format!(
                "SLI plugin {id:?}: invalid prometheus filter: {f},"
            ));
        }
        filter = format!("{f},");
    }
    let job = job.replace('\\', "\\\\").replace('"', "\\\"");
    Ok(Sli::Raw {
        error_ratio_query: format!(
            "\nsum(rate({metric}{{ {filter}job=\"{job}\",code=~\"(5..|429)\" }}[{{{{.window}}}}]))\n/\nsum(rate({metric}{{ {filter}job=\"{job}\" }}[{{{{.window}}}}]))"
        ),
    })
}

/// The light MetricsQL check of `validate_victoria_metrics`: brackets balance outside strings.
pub fn check_metricsql(q: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut in_str: Option<char> = None;
    let mut escaped = false;
    for c in q.chars() {
        if let Some(quote) = in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == quote {
                in_str = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_str = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return Err(format!("invalid MetricsQL query {q:?}: unbalanced {c:?}"));
                }
            }
            _ => {}
        }
    }
    if in_str.is_some() || !stack.is_empty() {
        return Err(format!("invalid MetricsQL query {q:?}: unterminated"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> PluginsDoc {
        match serde_yaml::from_str(yaml) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn chain_orders_by_priority_and_override_drops_previous() {
        let file = doc(
            "chain:\n- {id: sloth.dev/core/debug/v1, priority: 5, config: {msg: b}}\n- {id: sloth.dev/core/debug/v1, priority: -5, config: {msg: a}}",
        );
        let slo = doc("chain:\n- {id: sloth.dev/core/debug/v1, config: {msg: c}}");
        let c = build_chain(Some(&file), Some(&slo)).unwrap_or_else(|e| panic!("{e}"));
        let dbg = |m: &str| SloPlugin::Debug { msg: m.into() };
        assert_eq!(
            c.0,
            vec![
                dbg("a"),
                SloPlugin::Validate,
                SloPlugin::SliRules,
                SloPlugin::MetadataRules,
                SloPlugin::AlertRules,
                dbg("c"),
                dbg("b"),
            ]
        );
        let over = doc("overridePrevious: true\nchain:\n- {id: sloth.dev/contrib/validate_victoria_metrics/v1}\n- {id: sloth.dev/core/sli_rules/v1}");
        let c = build_chain(Some(&file), Some(&over)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.0,
            vec![SloPlugin::ValidateVictoriaMetrics, SloPlugin::SliRules]
        );
        assert!(!c.validates_promql() && c.validates_metricsql());
    }

    #[test]
    fn unknown_and_misconfigured_plugins_are_refused() {
        let e = build_chain(Some(&doc("chain: [{id: acme/nope/v1}]")), None).err();
        assert_eq!(e.as_deref(), Some("unknown SLO plugin \"acme/nope/v1\""));
        let e = build_chain(
            Some(&doc("chain: [{id: sloth.dev/contrib/rule_intervals/v1, config: {interval: {alert: 1m}}}]")),
            None,
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("interval.default is required"), "{e}");
        let e = build_chain(
            Some(&doc("chain: [{id: sloth.dev/contrib/info_labels/v1}]")),
            None,
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("labels is required"), "{e}");
        let p = SliPluginRef {
            id: "nope".into(),
            options: BTreeMap::new(),
        };
        assert_eq!(
            sli_plugin(&p, &Labels::new()).err().as_deref(),
            Some("unknown SLI plugin \"nope\"")
        );
    }

    #[test]
    fn getting_started_availability_checks_options_and_labels() {
        let labels = Labels::from([
            ("owner".to_string(), "t".to_string()),
            ("tier".to_string(), "2".to_string()),
        ]);
        let mk = |opts: &[(&str, &str)]| SliPluginRef {
            id: "getting_started_availability".into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let e = sli_plugin(&mk(&[]), &labels).err().unwrap_or_default();
        assert!(e.contains("job options is required"), "{e}");
        let e = sli_plugin(&mk(&[("job", "j")]), &Labels::new())
            .err()
            .unwrap_or_default();
        assert!(e.contains("\"owner\" label is required"), "{e}");
        let e = sli_plugin(&mk(&[("job", "j"), ("filter", "a=b")]), &labels)
            .err()
            .unwrap_or_default();
        assert!(e.contains("invalid prometheus filter"), "{e}");
        let sli = sli_plugin(&mk(&[("job", "j"), ("filter", "{a=\"b\"}")]), &labels);
        let Ok(Sli::Raw { error_ratio_query }) = sli else {
            panic!("{sli:?}")
        };
        assert!(error_ratio_query.contains("{ a=\"b\",job=\"j\" }[{{.window}}]"));
    }

    fn load(yaml: &str) -> Result<Vec<crate::slo::SloSpec>, Vec<String>> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("slo.yml");
        std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("{e}"));
        crate::slo::load_slo_files(&[path])
    }

    const SPEC: &str = r#"version: "prometheus/v1"
service: api
labels: {owner: t}
slo_plugins:
  chain:
    - id: sloth.dev/contrib/info_labels/v1
      priority: -1
      config: {labels: {lost: "yes"}}
    - id: sloth.dev/contrib/rule_intervals/v1
      priority: 10
      config: {interval: {default: 2m, sliError: 30s, alert: 1m}}
slos:
  - name: avail
    objective: 99
    plugins:
      chain:
        - id: sloth.dev/contrib/info_labels/v1
          config: {metricName: slo:objective:ratio, labels: {team: core}}
    sli:
      events:
        error_query: sum(rate(e[{{.window}}]))
        total_query: sum(rate(t[{{.window}}]))
    alerting: {name: A}
"#;

    #[test]
    fn chain_shapes_generated_groups() {
        let slos = load(SPEC).unwrap_or_else(|e| panic!("{e:?}"));
        let groups = crate::slo::rule_groups(&slos);
        let iv: Vec<_> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.interval.map(|d| d.as_secs())))
            .collect();
        assert_eq!(
            iv,
            vec![
                ("sloth-slo-sli-recordings-api-avail", Some(30)),
                ("sloth-slo-meta-recordings-api-avail", Some(120)),
                ("sloth-slo-alerts-api-avail", Some(60)),
            ]
        );
        let meta = &groups[1].rules;
        let labels_of = |n: &str| {
            meta.iter()
                .find(|r| matches!(&r.kind, crate::rules::RuleKind::Record(x) if x == n))
                .map(|r| r.labels.clone())
                .unwrap_or_default()
        };
        // The SLO-level plugin edits the metric it names; the priority -1 one ran before the
        // metadata rules were generated, so its label is gone.
        assert_eq!(
            labels_of("slo:objective:ratio")
                .get("team")
                .map(String::as_str),
            Some("core")
        );
        assert!(!labels_of("sloth_slo_info").contains_key("team"));
        assert!(!labels_of("sloth_slo_info").contains_key("lost"));

        // overridePrevious without the alert plugin: no alert group.
        let over = SPEC.replace(
            "  chain:\n    - id: sloth.dev/contrib/info_labels/v1\n      priority: -1",
            "  overridePrevious: true\n  chain:\n    - id: sloth.dev/core/sli_rules/v1\n    - id: sloth.dev/contrib/info_labels/v1\n      priority: -1",
        );
        let slos = load(&over).unwrap_or_else(|e| panic!("{e:?}"));
        let names: Vec<_> = crate::slo::rule_groups(&slos)
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, vec!["sloth-slo-sli-recordings-api-avail"]);
    }

    #[test]
    fn loader_reports_plugin_errors_with_file_and_slo() {
        let bad = SPEC.replace(
            "sloth.dev/contrib/rule_intervals/v1",
            "acme/rule_intervals/v1",
        );
        let err = load(&bad).err().unwrap_or_default().join("\n");
        assert!(
            err.contains("slo.yml") && err.contains("SLO \"avail\""),
            "{err}"
        );
        assert!(
            err.contains("unknown SLO plugin \"acme/rule_intervals/v1\""),
            "{err}"
        );
        let raw = SPEC
            .replace(
                "      events:\n        error_query: sum(rate(e[{{.window}}]))\n        total_query: sum(rate(t[{{.window}}]))",
                "      raw:\n        error_ratio_query: sum(rate(e[{{.window}}]))",
            )
            .replace(
                "        - id: sloth.dev/contrib/info_labels/v1\n          config: {metricName: slo:objective:ratio, labels: {team: core}}",
                "        - id: sloth.dev/contrib/denominator_corrected_rules/v1",
            );
        let err = load(&raw).err().unwrap_or_default().join("\n");
        assert!(err.contains("requires SLI event type"), "{err}");
        // Without the PromQL validator (VictoriaMetrics), a PromQL syntax error is accepted
        // but unbalanced brackets are not.
        let vm = SPEC.replace(
            "  chain:\n    - id: sloth.dev/contrib/info_labels/v1\n      priority: -1",
            "  overridePrevious: true\n  chain:\n    - id: sloth.dev/contrib/validate_victoria_metrics/v1\n    - id: sloth.dev/contrib/info_labels/v1\n      priority: -1",
        );
        let metricsql = vm.replace("sum(rate(e[", "histogram_share(0.2, rate(e[");
        assert!(load(&metricsql).is_ok(), "{:?}", load(&metricsql));
        assert!(load(&SPEC.replace("sum(rate(e[", "histogram_share(0.2, rate(e[")).is_err());
        assert!(load(&vm.replace("sum(rate(e[", "sum(rate(e[[")).is_err());
    }

    #[test]
    fn metricsql_check_finds_unbalanced_brackets() {
        assert!(check_metricsql(
            "1 - histogram_share(0.2, sum by (vmrange) (rate(x{a=\"(\"}[5m])))"
        )
        .is_ok());
        assert!(check_metricsql("vector(1)[5m]").is_ok());
        assert!(check_metricsql("sum(rate(x[5m])").is_err());
        assert!(check_metricsql("x{a=\"b}").is_err());
    }
}
