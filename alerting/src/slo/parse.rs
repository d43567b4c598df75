//! Reading SLO files: each YAML document (or each item of a YAML list of objects) is
//! dispatched on `version` / `apiVersion` + `kind` to the Sloth, Sloth-Kubernetes or OpenSLO
//! reader, normalised into [`SloSpec`] and validated. Errors name the file, the document and
//! the SLO.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::spec::{
    format_duration, parse_duration, render_window, AlertMeta, AlertWindows, Alerting, BurnWindow,
    CalendarUnit, Period, Sli, SloSpec, SpecKind,
};

/// Loader settings.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Period of SLOs that do not name one (Sloth's `--default-slo-period`; default 30d).
    pub default_period: Duration,
    /// Accept the same `<service>-<name>` in several places (Sloth's `--ignore-slo-duplicates`).
    pub allow_duplicates: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_period: Duration::from_secs(30 * 86_400),
            allow_duplicates: false,
        }
    }
}

type Labels = BTreeMap<String, String>;

// ---- Sloth `prometheus/v1` (snake_case, strict) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromDoc {
    #[allow(dead_code)] // checked before deserialising
    version: String,
    service: String,
    #[serde(default)]
    labels: Labels,
    slos: Vec<PromSlo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromSlo {
    name: String,
    objective: f64,
    #[serde(default)]
    description: String,
    #[serde(default)]
    labels: Labels,
    sli: PromSli,
    #[serde(default)]
    alerting: PromAlerting,
    #[serde(flatten)]
    ext: Extensions,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromSli {
    events: Option<PromEvents>,
    raw: Option<PromRaw>,
    plugin: Option<Value>,
    latency: Option<LatencySli>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromEvents {
    error_query: String,
    total_query: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromRaw {
    error_ratio_query: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromAlerting {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default, alias = "pageAlert")]
    page_alert: PromAlertMeta,
    #[serde(default, alias = "ticketAlert")]
    ticket_alert: PromAlertMeta,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromAlertMeta {
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
}

// ---- Sextant extensions (accepted on Sloth and Sloth-Kubernetes SLOs) ----

/// Sextant's latency SLI: good events are the histogram's `le="<threshold>"` bucket.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct LatencySli {
    /// Base name of a classic histogram (`_bucket` and `_count` are read).
    histogram: String,
    /// Series selector in braces (`{job="api"}`); empty selects all.
    #[serde(default)]
    selector: String,
    /// Threshold in the histogram's unit; must be one of its `le` bounds.
    threshold: f64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Extensions {
    /// Rolling period (`28d`).
    #[serde(default)]
    period: Option<String>,
    /// Calendar period.
    #[serde(default)]
    calendar: Option<CalendarDef>,
    /// Low-traffic guard.
    #[serde(default)]
    min_events: Option<f64>,
    /// Per-SLO alert window overrides.
    #[serde(default)]
    alert_windows: Option<WindowOverrides>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarDef {
    unit: String,
    #[serde(default = "utc")]
    time_zone: String,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WindowOverrides {
    page_quick: Option<WindowOverride>,
    page_slow: Option<WindowOverride>,
    ticket_quick: Option<WindowOverride>,
    ticket_slow: Option<WindowOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowOverride {
    short_window: Option<String>,
    long_window: Option<String>,
    burn_rate: Option<f64>,
    error_budget_percent: Option<f64>,
}

// ---- Sloth Kubernetes `PrometheusServiceLevel` (camelCase) ----

#[derive(Deserialize)]
struct K8sDoc {
    spec: K8sSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sSpec {
    service: String,
    #[serde(default)]
    labels: Labels,
    slos: Vec<K8sSlo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sSlo {
    name: String,
    objective: f64,
    #[serde(default)]
    description: String,
    #[serde(default)]
    labels: Labels,
    sli: K8sSli,
    #[serde(default)]
    alerting: K8sAlerting,
    #[serde(flatten)]
    ext: Extensions,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct K8sSli {
    events: Option<K8sEvents>,
    raw: Option<K8sRaw>,
    plugin: Option<Value>,
    latency: Option<LatencySli>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sEvents {
    error_query: String,
    total_query: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sRaw {
    error_ratio_query: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct K8sAlerting {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default)]
    page_alert: PromAlertMeta,
    #[serde(default)]
    ticket_alert: PromAlertMeta,
}

// ---- OpenSLO ----

#[derive(Deserialize)]
struct OsMetadata {
    name: String,
}

#[derive(Deserialize)]
struct OsV1AlphaDoc {
    metadata: OsMetadata,
    spec: OsV1AlphaSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsV1AlphaSpec {
    service: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    budgeting_method: String,
    objectives: Vec<OsV1AlphaObjective>,
    #[serde(default)]
    time_windows: Vec<OsV1AlphaWindow>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsV1AlphaObjective {
    ratio_metrics: Option<OsV1AlphaRatio>,
    target: f64,
}

#[derive(Deserialize)]
struct OsV1AlphaRatio {
    good: Option<OsV1AlphaQuery>,
    bad: Option<OsV1AlphaQuery>,
    total: OsV1AlphaQuery,
}

#[derive(Deserialize)]
struct OsV1AlphaQuery {
    #[serde(default)]
    source: String,
    query: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsV1AlphaWindow {
    count: u64,
    unit: String,
    #[serde(default = "yes")]
    is_rolling: bool,
    #[serde(default)]
    calendar: Option<OsCalendar>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsCalendar {
    #[serde(default = "utc")]
    time_zone: String,
}

#[derive(Deserialize)]
struct OsV1Doc {
    metadata: OsMetadata,
    spec: OsV1Spec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsV1Spec {
    service: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    budgeting_method: String,
    indicator: Option<OsV1Sli>,
    indicator_ref: Option<String>,
    objectives: Vec<OsV1Objective>,
    #[serde(default)]
    time_window: Vec<OsV1Window>,
}

#[derive(Deserialize, Clone)]
struct OsV1Sli {
    spec: OsV1SliSpec,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct OsV1SliSpec {
    ratio_metric: Option<OsV1Ratio>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct OsV1Ratio {
    good: Option<OsV1Metric>,
    bad: Option<OsV1Metric>,
    raw: Option<OsV1Metric>,
    total: Option<OsV1Metric>,
    #[serde(default)]
    raw_type: String,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct OsV1Metric {
    metric_source: OsV1Source,
}

#[derive(Deserialize, Clone)]
struct OsV1Source {
    #[serde(rename = "type", default)]
    kind: String,
    spec: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsV1Objective {
    target: Option<f64>,
    target_percent: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsV1Window {
    duration: String,
    #[serde(default = "yes")]
    is_rolling: bool,
    calendar: Option<OsCalendar>,
}

/// Sloth's `AlertWindows` document: custom windows for one SLO period.
#[derive(Deserialize)]
struct AlertWindowsDoc {
    spec: AlertWindowsSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertWindowsSpec {
    slo_period: String,
    page: AwPair,
    ticket: AwPair,
}

#[derive(Deserialize)]
struct AwPair {
    quick: AwWindow,
    slow: AwWindow,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AwWindow {
    error_budget_percent: f64,
    short_window: String,
    long_window: String,
}

/// One parsed document, before validation.
enum Doc {
    Slos(Vec<SloSpec>),
    Windows(Duration, AlertWindows),
    /// An OpenSLO `SLI` (referenced by `indicatorRef`).
    Sli(String, OsV1Sli),
    /// An SLO whose indicator is an `indicatorRef`, resolved once all files are read.
    PendingV1(String, OsV1Doc),
}

/// Reads SLO specs from files or directories (searched recursively for `.yml`/`.yaml`).
/// Every error is collected (prefixed with the file) so one run reports them all.
pub fn load_slo_files_with(
    paths: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Vec<SloSpec>, Vec<String>> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files, &mut errors);
    }
    let mut docs: Vec<(String, Doc)> = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{name}: {e}"));
                continue;
            }
        };
        match parse_documents(&name, &text, opts) {
            Ok(d) => docs.extend(d.into_iter().map(|d| (name.clone(), d))),
            Err(e) => errors.extend(e),
        }
    }
    // Custom windows and SLIs apply to every file of the load.
    let mut windows: HashMap<Duration, AlertWindows> = HashMap::new();
    let mut slis: HashMap<String, OsV1Sli> = HashMap::new();
    for (file, d) in &docs {
        if let Doc::Windows(p, w) = d {
            if windows.insert(*p, w.clone()).is_some() {
                errors.push(format!(
                    "{file}: alert windows for SLO period {} are defined twice",
                    format_duration(*p)
                ));
            }
        }
        if let Doc::Sli(n, s) = d {
            slis.insert(n.clone(), s.clone());
        }
    }
    let mut out = Vec::new();
    for (file, d) in docs {
        match d {
            Doc::Slos(s) => out.extend(s),
            Doc::PendingV1(name, doc) => {
                let sli = doc
                    .spec
                    .indicator_ref
                    .as_ref()
                    .and_then(|r| slis.get(r).cloned());
                match sli {
                    Some(sli) => match openslo_v1(&file, doc, &sli, opts) {
                        Ok(s) => out.extend(s),
                        Err(e) => errors.push(e),
                    },
                    None => errors.push(format!(
                        "{file}: SLO {name:?}: indicatorRef {:?} names no SLI document of this load",
                        doc.spec.indicator_ref.unwrap_or_default()
                    )),
                }
            }
            _ => {}
        }
    }
    for slo in &mut out {
        if let Some(w) = windows.get(&slo.period.nominal()) {
            if slo.windows == AlertWindows::defaults_for(slo.period.nominal()) {
                slo.windows = w.clone();
            }
        }
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for slo in &out {
        if let Err(e) = validate(slo) {
            errors.push(format!("{}: SLO {:?}: {e}", slo.file, slo.name));
        }
        if let Some(prev) = seen.insert(slo.id(), slo.file.clone()) {
            if !opts.allow_duplicates {
                errors.push(format!(
                    "{}: SLO {:?} of service {:?} is already defined in {prev}",
                    slo.file, slo.name, slo.service
                ));
            }
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push("no SLO spec files found".into());
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn collect_files(p: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                errors.push(format!("{}: {e}", p.display()));
                return;
            }
        };
        entries.sort();
        for e in entries {
            let yaml = matches!(e.extension().and_then(|x| x.to_str()), Some("yml" | "yaml"));
            if e.is_dir() || yaml {
                collect_files(&e, files, errors);
            }
        }
    } else {
        files.push(p.to_path_buf());
    }
}

fn parse_documents(file: &str, text: &str, opts: &LoadOptions) -> Result<Vec<Doc>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let where_ = format!("{file}: document {}", i + 1);
        let v = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{where_}: {e}"));
                break;
            }
        };
        let items = match v {
            Value::Null => continue,
            Value::Sequence(items) => items,
            other => vec![other],
        };
        for item in items {
            match parse_object(file, item, opts) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {}
                Err(e) => errors.push(format!("{where_}: {e}")),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn parse_object(file: &str, v: Value, opts: &LoadOptions) -> Result<Option<Doc>, String> {
    let version = str_field(&v, "version").map(str::to_owned);
    let api = str_field(&v, "apiVersion").map(str::to_owned);
    let kind = str_field(&v, "kind").unwrap_or("").to_owned();
    let de = |e: serde_yaml::Error| e.to_string();
    match (version.as_deref(), api.as_deref(), kind.as_str()) {
        (Some("prometheus/v1"), _, _) => {
            let d: PromDoc = serde_yaml::from_value(v).map_err(de)?;
            sloth_prom(file, d, opts).map(|s| Some(Doc::Slos(s)))
        }
        (Some(other), _, _) => Err(format!(
            "unsupported spec version {other:?} (want \"prometheus/v1\")"
        )),
        (None, Some("sloth.slok.dev/v1"), "PrometheusServiceLevel") => {
            let d: K8sDoc = serde_yaml::from_value(v).map_err(de)?;
            sloth_k8s(file, d, opts).map(|s| Some(Doc::Slos(s)))
        }
        (None, Some("sloth.slok.dev/v1"), "AlertWindows") => {
            let d: AlertWindowsDoc = serde_yaml::from_value(v).map_err(de)?;
            alert_windows_doc(d).map(|(p, w)| Some(Doc::Windows(p, w)))
        }
        (None, Some("openslo/v1alpha"), "SLO") => {
            let d: OsV1AlphaDoc = serde_yaml::from_value(v).map_err(de)?;
            openslo_v1alpha(file, d, opts).map(|s| Some(Doc::Slos(s)))
        }
        (None, Some("openslo/v1"), "SLO") => {
            let d: OsV1Doc = serde_yaml::from_value(v).map_err(de)?;
            match d.spec.indicator.clone() {
                Some(sli) => openslo_v1(file, d, &sli, opts).map(|s| Some(Doc::Slos(s))),
                None => Ok(Some(Doc::PendingV1(d.metadata.name.clone(), d))),
            }
        }
        (None, Some("openslo/v1"), "SLI") => {
            let name = v
                .get("metadata")
                .and_then(|m| str_field(m, "name"))
                .unwrap_or("")
                .to_owned();
            let d: OsV1Sli = serde_yaml::from_value(v).map_err(de)?;
            Ok(Some(Doc::Sli(name, d)))
        }
        // Other OpenSLO kinds (Service, DataSource, AlertPolicy…) carry nothing we evaluate.
        (None, Some(a), _) if a.starts_with("openslo/") => Ok(None),
        (None, Some(a), k) => Err(format!("unsupported document apiVersion {a:?} kind {k:?}")),
        (None, None, _) => Err("document has neither `version` nor `apiVersion`".into()),
    }
}

fn alert_windows_doc(d: AlertWindowsDoc) -> Result<(Duration, AlertWindows), String> {
    let period = parse_duration(&d.spec.slo_period)?;
    let w = |x: &AwWindow| -> Result<BurnWindow, String> {
        Ok(BurnWindow::from_budget_percent(
            x.error_budget_percent,
            parse_duration(&x.short_window)?,
            parse_duration(&x.long_window)?,
            period,
        ))
    };
    Ok((
        period,
        AlertWindows {
            page_quick: w(&d.spec.page.quick)?,
            page_slow: w(&d.spec.page.slow)?,
            ticket_quick: w(&d.spec.ticket.quick)?,
            ticket_slow: w(&d.spec.ticket.slow)?,
        },
    ))
}

fn meta(m: PromAlertMeta) -> AlertMeta {
    AlertMeta {
        disable: m.disable,
        labels: m.labels,
        annotations: m.annotations,
    }
}

fn merged(base: &Labels, over: Labels) -> Labels {
    let mut out = base.clone();
    out.extend(over);
    out
}

/// The SLI from a Sloth `sli:` block (exactly one of events, raw, latency).
fn sloth_sli(
    events: Option<(String, String)>,
    raw: Option<String>,
    plugin: bool,
    latency: Option<LatencySli>,
) -> Result<Sli, String> {
    let n = usize::from(events.is_some())
        + usize::from(raw.is_some())
        + usize::from(plugin)
        + usize::from(latency.is_some());
    if n != 1 {
        return Err("sli must have exactly one of `events`, `raw`, `latency`".into());
    }
    if plugin {
        return Err(
            "SLI plugins are Go code and are not supported; use `events`, `raw` or `latency`"
                .into(),
        );
    }
    if let Some((error_query, total_query)) = events {
        return Ok(Sli::Events {
            error_query,
            total_query,
        });
    }
    if let Some(error_ratio_query) = raw {
        return Ok(Sli::Raw { error_ratio_query });
    }
    match latency {
        Some(l) => latency_sli(&l),
        None => Err("sli is empty".into()),
    }
}

fn latency_sli(l: &LatencySli) -> Result<Sli, String> {
    if !(l.threshold.is_finite() && l.threshold >= 0.0) {
        return Err(format!(
            "latency threshold {} is not a finite bound",
            l.threshold
        ));
    }
    let sel = l.selector.trim();
    let inner = if sel.is_empty() {
        String::new()
    } else if sel.starts_with('{') && sel.ends_with('}') {
        sel[1..sel.len() - 1]
            .trim()
            .trim_end_matches(',')
            .to_string()
    } else {
        return Err(format!(
            "latency selector {sel:?} must be written in braces, like {{job=\"api\"}}"
        ));
    };
    // Client libraries spell integral bounds "1" or "1.0"; accept both.
    let le = if l.threshold.fract() == 0.0 && l.threshold < 1e15 {
        format!("le=~\"{0}|{0}.0\"", l.threshold)
    } else {
        format!("le=\"{}\"", l.threshold)
    };
    let with = |extra: &str| {
        if inner.is_empty() {
            format!("{{{extra}}}")
        } else if extra.is_empty() {
            format!("{{{inner}}}")
        } else {
            format!("{{{inner},{extra}}}")
        }
    };
    Ok(Sli::GoodTotal {
        good_query: format!(
            "sum(rate({}_bucket{}[{{{{.window}}}}]))",
            l.histogram,
            with(&le)
        ),
        total_query: format!(
            "sum(rate({}_count{}[{{{{.window}}}}]))",
            l.histogram,
            with("")
        ),
    })
}

/// Period and windows of a Sloth SLO, from its extensions.
fn period_and_windows(
    ext: &Extensions,
    opts: &LoadOptions,
) -> Result<(Period, AlertWindows), String> {
    let period = match (&ext.period, &ext.calendar) {
        (Some(_), Some(_)) => return Err("`period` and `calendar` are exclusive".into()),
        (Some(p), None) => Period::Rolling(parse_duration(p)?),
        (None, Some(c)) => Period::Calendar {
            unit: match c.unit.to_ascii_lowercase().as_str() {
                "month" => CalendarUnit::Month,
                "quarter" => CalendarUnit::Quarter,
                u => return Err(format!("calendar unit {u:?} is not `month` or `quarter`")),
            },
            time_zone: c.time_zone.clone(),
        },
        (None, None) => Period::Rolling(opts.default_period),
    };
    let nominal = period.nominal();
    let mut w = AlertWindows::defaults_for(nominal);
    if let Some(o) = &ext.alert_windows {
        for (slot, ov) in [
            (&mut w.page_quick, &o.page_quick),
            (&mut w.page_slow, &o.page_slow),
            (&mut w.ticket_quick, &o.ticket_quick),
            (&mut w.ticket_slow, &o.ticket_slow),
        ] {
            let Some(ov) = ov else { continue };
            if let Some(s) = &ov.short_window {
                slot.short = parse_duration(s)?;
            }
            if let Some(l) = &ov.long_window {
                slot.long = parse_duration(l)?;
            }
            match (ov.burn_rate, ov.error_budget_percent) {
                (Some(_), Some(_)) => {
                    return Err(
                        "alert window: `burn_rate` and `error_budget_percent` are exclusive".into(),
                    )
                }
                (Some(b), None) => slot.burn_rate = b,
                (None, Some(p)) => {
                    *slot = BurnWindow::from_budget_percent(p, slot.short, slot.long, nominal)
                }
                (None, None) => {
                    *slot = BurnWindow {
                        burn_rate: slot.burn_rate,
                        ..slot.clone()
                    }
                }
            }
        }
    }
    Ok((period, w))
}

fn sloth_prom(file: &str, d: PromDoc, opts: &LoadOptions) -> Result<Vec<SloSpec>, String> {
    let mut out = Vec::new();
    for s in d.slos {
        let ctx = |e: String| format!("SLO {:?}: {e}", s.name);
        let sli = sloth_sli(
            s.sli.events.map(|e| (e.error_query, e.total_query)),
            s.sli.raw.map(|r| r.error_ratio_query),
            s.sli.plugin.is_some(),
            s.sli.latency,
        )
        .map_err(ctx)?;
        let (period, windows) = period_and_windows(&s.ext, opts).map_err(ctx)?;
        out.push(SloSpec {
            file: file.to_string(),
            kind: SpecKind::PrometheusV1,
            service: d.service.clone(),
            name: s.name,
            description: s.description,
            objective: s.objective,
            labels: merged(&d.labels, s.labels),
            sli,
            period,
            windows,
            alerting: Alerting {
                name: s.alerting.name,
                labels: s.alerting.labels,
                annotations: s.alerting.annotations,
                page: meta(s.alerting.page_alert),
                ticket: meta(s.alerting.ticket_alert),
            },
            min_events: s.ext.min_events.unwrap_or(0.0),
        });
    }
    Ok(out)
}

fn sloth_k8s(file: &str, d: K8sDoc, opts: &LoadOptions) -> Result<Vec<SloSpec>, String> {
    let mut out = Vec::new();
    for s in d.spec.slos {
        let ctx = |e: String| format!("SLO {:?}: {e}", s.name);
        let sli = sloth_sli(
            s.sli.events.map(|e| (e.error_query, e.total_query)),
            s.sli.raw.map(|r| r.error_ratio_query),
            s.sli.plugin.is_some(),
            s.sli.latency,
        )
        .map_err(ctx)?;
        let (period, windows) = period_and_windows(&s.ext, opts).map_err(ctx)?;
        out.push(SloSpec {
            file: file.to_string(),
            kind: SpecKind::SlothK8s,
            service: d.spec.service.clone(),
            name: s.name,
            description: s.description,
            objective: s.objective,
            labels: merged(&d.spec.labels, s.labels),
            sli,
            period,
            windows,
            alerting: Alerting {
                name: s.alerting.name,
                labels: s.alerting.labels,
                annotations: s.alerting.annotations,
                page: meta(s.alerting.page_alert),
                ticket: meta(s.alerting.ticket_alert),
            },
            min_events: s.ext.min_events.unwrap_or(0.0),
        });
    }
    Ok(out)
}

fn check_budgeting(method: &str) -> Result<(), String> {
    match method {
        "" | "Occurrences" => Ok(()),
        m => Err(format!(
            "budgetingMethod {m:?} is not supported (only Occurrences)"
        )),
    }
}

/// OpenSLO SLOs have no alerting block: both alerts disabled, like Sloth.
#[allow(clippy::too_many_arguments)] // one call per OpenSLO version; a struct adds nothing
fn openslo_spec(
    file: &str,
    kind: SpecKind,
    service: &str,
    name: String,
    description: &str,
    objective: f64,
    sli: Sli,
    period: Period,
) -> SloSpec {
    let windows = AlertWindows::defaults_for(period.nominal());
    let off = AlertMeta {
        disable: true,
        ..AlertMeta::default()
    };
    SloSpec {
        file: file.to_string(),
        kind,
        service: service.to_string(),
        name,
        description: description.to_string(),
        objective,
        labels: Labels::new(),
        sli,
        period,
        windows,
        alerting: Alerting {
            page: off.clone(),
            ticket: off,
            ..Alerting::default()
        },
        min_events: 0.0,
    }
}

fn good_or_bad(good: Option<String>, bad: Option<String>, total: String) -> Result<Sli, String> {
    match (good, bad) {
        (Some(g), None) => Ok(Sli::GoodTotal {
            good_query: g,
            total_query: total,
        }),
        (None, Some(b)) => Ok(Sli::Events {
            error_query: b,
            total_query: total,
        }),
        _ => Err("ratio metric needs exactly one of `good` and `bad`".into()),
    }
}

fn openslo_period(
    count: u64,
    unit: &str,
    rolling: bool,
    tz: Option<&OsCalendar>,
    opts: &LoadOptions,
) -> Result<Period, String> {
    let tz = || tz.map(|c| c.time_zone.clone()).unwrap_or_else(utc);
    let unit_secs = match unit {
        "Second" | "s" => 1,
        "Minute" | "m" => 60,
        "Hour" | "h" => 3600,
        "Day" | "d" => 86_400,
        "Week" | "w" => 7 * 86_400,
        "Month" | "M" if !rolling && count == 1 => {
            return Ok(Period::Calendar {
                unit: CalendarUnit::Month,
                time_zone: tz(),
            })
        }
        "Quarter" | "Q" if !rolling && count == 1 => {
            return Ok(Period::Calendar {
                unit: CalendarUnit::Quarter,
                time_zone: tz(),
            })
        }
        "" => return Ok(Period::Rolling(opts.default_period)),
        u => return Err(format!("time window unit {u:?} is not supported")),
    };
    if !rolling {
        return Err("calendar-aligned windows must be 1 Month or 1 Quarter".into());
    }
    Ok(Period::Rolling(Duration::from_secs(count * unit_secs)))
}

fn openslo_v1alpha(
    file: &str,
    d: OsV1AlphaDoc,
    opts: &LoadOptions,
) -> Result<Vec<SloSpec>, String> {
    check_budgeting(&d.spec.budgeting_method)?;
    let period = match d.spec.time_windows.first() {
        Some(w) => openslo_period(w.count, &w.unit, w.is_rolling, w.calendar.as_ref(), opts)?,
        None => Period::Rolling(opts.default_period),
    };
    let mut out = Vec::new();
    for (i, o) in d.spec.objectives.into_iter().enumerate() {
        let name = format!("{}-{i}", d.metadata.name);
        let r = o
            .ratio_metrics
            .ok_or_else(|| format!("SLO {name:?}: only ratioMetrics objectives are supported"))?;
        for q in [&r.good, &r.bad, &Some(r.total.clone_query())]
            .into_iter()
            .flatten()
        {
            if !q.source.is_empty() && !q.source.eq_ignore_ascii_case("prometheus") {
                return Err(format!(
                    "SLO {name:?}: source {:?} is not prometheus",
                    q.source
                ));
            }
        }
        let sli = good_or_bad(
            r.good.map(|q| q.query),
            r.bad.map(|q| q.query),
            r.total.query,
        )
        .map_err(|e| format!("SLO {name:?}: {e}"))?;
        out.push(openslo_spec(
            file,
            SpecKind::OpenSloV1Alpha,
            &d.spec.service,
            name,
            &d.spec.description,
            o.target * 100.0,
            sli,
            period.clone(),
        ));
    }
    Ok(out)
}

impl OsV1AlphaQuery {
    fn clone_query(&self) -> OsV1AlphaQuery {
        OsV1AlphaQuery {
            source: self.source.clone(),
            query: self.query.clone(),
        }
    }
}

fn v1_query(m: &Option<OsV1Metric>) -> Result<Option<String>, String> {
    let Some(m) = m else { return Ok(None) };
    if !m.metric_source.kind.eq_ignore_ascii_case("prometheus") {
        return Err(format!(
            "metricSource type {:?} is not Prometheus",
            m.metric_source.kind
        ));
    }
    match m.metric_source.spec.get("query").and_then(Value::as_str) {
        Some(q) => Ok(Some(q.to_string())),
        None => Err("metricSource spec has no `query`".into()),
    }
}

fn openslo_v1(
    file: &str,
    d: OsV1Doc,
    sli: &OsV1Sli,
    opts: &LoadOptions,
) -> Result<Vec<SloSpec>, String> {
    let slo_name = d.metadata.name.clone();
    let ctx = |e: String| format!("SLO {slo_name:?}: {e}");
    check_budgeting(&d.spec.budgeting_method).map_err(ctx)?;
    let r = sli
        .spec
        .ratio_metric
        .as_ref()
        .ok_or_else(|| ctx("only ratioMetric indicators are supported".into()))?;
    let parsed = if let Some(raw) = v1_query(&r.raw).map_err(ctx)? {
        match r.raw_type.as_str() {
            "failure" | "" => Sli::Raw {
                error_ratio_query: raw,
            },
            "success" => Sli::Raw {
                error_ratio_query: format!("1 - ({raw})"),
            },
            t => return Err(ctx(format!("rawType {t:?} is not success or failure"))),
        }
    } else {
        let total = v1_query(&r.total)
            .map_err(ctx)?
            .ok_or_else(|| ctx("ratioMetric needs `total`".into()))?;
        good_or_bad(
            v1_query(&r.good).map_err(ctx)?,
            v1_query(&r.bad).map_err(ctx)?,
            total,
        )
        .map_err(ctx)?
    };
    let period = match d.spec.time_window.first() {
        Some(w) => {
            let dur = w.duration.trim();
            let split = dur.find(|c: char| !c.is_ascii_digit()).unwrap_or(dur.len());
            let count: u64 = dur[..split]
                .parse()
                .map_err(|_| ctx(format!("invalid timeWindow duration {dur:?}")))?;
            openslo_period(
                count,
                &dur[split..],
                w.is_rolling,
                w.calendar.as_ref(),
                opts,
            )
            .map_err(ctx)?
        }
        None => Period::Rolling(opts.default_period),
    };
    let mut out = Vec::new();
    for (i, o) in d.spec.objectives.iter().enumerate() {
        let objective = match (o.target, o.target_percent) {
            (Some(t), _) => t * 100.0,
            (None, Some(p)) => p,
            (None, None) => return Err(ctx("objective needs `target` or `targetPercent`".into())),
        };
        out.push(openslo_spec(
            file,
            SpecKind::OpenSloV1,
            &d.spec.service,
            format!("{slo_name}-{i}"),
            &d.spec.description,
            objective,
            parsed.clone(),
            period.clone(),
        ));
    }
    Ok(out)
}

/// Checks the invariants of [`SloSpec`]; every query must parse once the window is filled in.
pub fn validate(s: &SloSpec) -> Result<(), String> {
    if s.service.is_empty() {
        return Err("service is required".into());
    }
    if s.name.is_empty() {
        return Err("name is required".into());
    }
    if !(s.objective > 0.0 && s.objective < 100.0) {
        return Err(format!(
            "objective {} must be greater than 0 and less than 100",
            s.objective
        ));
    }
    let alerts = !(s.alerting.page.disable && s.alerting.ticket.disable);
    if alerts && s.alerting.name.is_empty() {
        return Err("alerting.name is required unless page and ticket alerts are disabled".into());
    }
    if s.min_events < 0.0 || !s.min_events.is_finite() {
        return Err("min_events must be a non-negative number".into());
    }
    if s.min_events > 0.0 && s.sli.total_query().is_none() {
        return Err(
            "min_events needs an SLI with a total query (events, latency or good/total), not raw"
                .into(),
        );
    }
    if let Period::Rolling(p) = &s.period {
        if p.is_zero() {
            return Err("SLO period must be positive".into());
        }
    }
    if let Period::Calendar { time_zone, .. } = &s.period {
        super::calendar::check_time_zone(time_zone)?;
    }
    for w in [
        &s.windows.page_quick,
        &s.windows.page_slow,
        &s.windows.ticket_quick,
        &s.windows.ticket_slow,
    ] {
        if w.short.is_zero() || w.long.is_zero() || w.burn_rate.is_nan() || w.burn_rate <= 0.0 {
            return Err("alert windows need positive windows and burn rates".into());
        }
    }
    let queries: Vec<&str> = match &s.sli {
        Sli::Events {
            error_query,
            total_query,
        } => vec![error_query, total_query],
        Sli::GoodTotal {
            good_query,
            total_query,
        } => vec![good_query, total_query],
        Sli::Raw { error_ratio_query } => vec![error_ratio_query],
    };
    for q in queries {
        let rendered = render_window(q, "5m")?;
        sextant_query::promql::parse(&rendered)
            .map_err(|e| format!("invalid SLI query {:?}: {e}", q.trim()))?;
    }
    Ok(())
}
