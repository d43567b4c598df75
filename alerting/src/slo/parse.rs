//! Reading SLO files: each YAML document (or each item of a YAML list of objects) is
//! dispatched on `version` / `apiVersion` + `kind` to the Sloth, Sloth-Kubernetes or OpenSLO
//! reader, normalised into [`SloSpec`] and validated. Errors name the file, the document and
//! the SLO.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::openslo::{budgeting, object, period as openslo_period, resolve, Object};
use super::plugins::{
    build_chain, check_metricsql, sli_plugin, PluginChain, PluginsDoc, SliPluginRef, SloPlugin,
};
use super::spec::{
    format_duration, parse_duration, render_window, AlertMeta, AlertWindows, Alerting,
    BudgetingMethod, BurnWindow, CalendarUnit, Period, Sli, SloSpec, SpecKind,
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
    #[serde(default, deserialize_with = "scalar_labels")]
    labels: Labels,
    #[serde(default)]
    slo_plugins: Option<PluginsDoc>,
    slos: Vec<PromSlo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromSlo {
    name: String,
    objective: f64,
    #[serde(default)]
    description: String,
    #[serde(default, deserialize_with = "scalar_labels")]
    labels: Labels,
    sli: PromSli,
    #[serde(default)]
    plugins: Option<PluginsDoc>,
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
    plugin: Option<SliPluginRef>,
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
    #[serde(default, deserialize_with = "scalar_labels")]
    labels: Labels,
    #[serde(default, deserialize_with = "scalar_labels")]
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
    #[serde(default, deserialize_with = "scalar_labels")]
    labels: Labels,
    #[serde(default, deserialize_with = "scalar_labels")]
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
    #[serde(default, rename = "sloPlugins")]
    slo_plugins: Option<PluginsDoc>,
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
    plugins: Option<PluginsDoc>,
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
    plugin: Option<SliPluginRef>,
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
    time_slice_target: Option<f64>,
    time_slice_window: Option<String>,
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
    start_time: Option<String>,
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
    /// An OpenSLO v1/v2alpha object, resolved once all files are read.
    OpenSlo(Object),
}

/// What a load produced: the SLOs and what the operator should know about (SLOs that cannot
/// be evaluated, OpenSLO objects that are accepted but not used).
#[derive(Debug, Default)]
pub struct Loaded {
    pub slos: Vec<SloSpec>,
    pub warnings: Vec<String>,
}

/// Reads SLO specs from files or directories (searched recursively for `.yml`/`.yaml`).
/// Every error is collected (prefixed with the file) so one run reports them all; warnings
/// (see [`Loaded`]) are logged.
pub fn load_slo_files_with(
    paths: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Vec<SloSpec>, Vec<String>> {
    let loaded = load_slo_files_detailed(paths, opts)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded.slos)
}

/// [`load_slo_files_with`], returning the warnings instead of logging them.
pub fn load_slo_files_detailed(
    paths: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Loaded, Vec<String>> {
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
    // Custom windows and OpenSLO references apply to every file of the load.
    let mut windows: HashMap<Duration, AlertWindows> = HashMap::new();
    for (file, d) in &docs {
        if let Doc::Windows(p, w) = d {
            if windows.insert(*p, w.clone()).is_some() {
                errors.push(format!(
                    "{file}: alert windows for SLO period {} are defined twice",
                    format_duration(*p)
                ));
            }
        }
    }
    let mut out = Vec::new();
    let mut objects = Vec::new();
    for (_, d) in docs {
        match d {
            Doc::Slos(s) => out.extend(s),
            Doc::OpenSlo(o) => objects.push(o),
            Doc::Windows(..) => {}
        }
    }
    let resolved = resolve(objects, opts);
    out.extend(resolved.slos);
    errors.extend(resolved.errors);
    let mut warnings = resolved.warnings;
    for s in &out {
        if s.plugins.validates_metricsql() {
            warnings.push(format!(
                "{}: SLO {:?} uses MetricsQL (sloth.dev/contrib/validate_victoria_metrics/v1): its \
                 rules are generated for VictoriaMetrics; Sextant's own rule evaluation and \
                 budget API need PromQL and will report its queries as invalid",
                s.file, s.name
            ));
        }
        if let (SpecKind::OpenSloV1Alpha, Some(r)) = (s.kind, s.unsupported()) {
            warnings.push(format!(
                "{}: SLO {:?} is loaded but cannot be evaluated: {r}",
                s.file, s.name
            ));
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
        Ok(Loaded {
            slos: out,
            warnings,
        })
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
        (None, Some(a @ ("openslo/v1" | "openslo.com/v2alpha")), k) => {
            object(file, a, k, v).map(|o| Some(Doc::OpenSlo(o)))
        }
        // Other v1alpha kinds (Service) carry nothing we evaluate.
        (None, Some("openslo/v1alpha"), "Service") => Ok(None),
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

/// A `prometheus/v1` label or annotation map: scalar values are taken as their text
/// (`generated: true` is `"true"`, `le: 0.2` is `"0.2"`), as Sloth's YAML decoding does.
fn scalar_labels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
    let raw = BTreeMap::<String, Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "label {k:?}: value must be a string, number or boolean"
                    )))
                }
            };
            Ok((k, v))
        })
        .collect()
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
    plugin: Option<SliPluginRef>,
    latency: Option<LatencySli>,
    labels: &Labels,
) -> Result<Sli, String> {
    let n = usize::from(events.is_some())
        + usize::from(raw.is_some())
        + usize::from(plugin.is_some())
        + usize::from(latency.is_some());
    if n != 1 {
        return Err("sli must have exactly one of `events`, `raw`, `plugin`, `latency`".into());
    }
    if let Some(p) = plugin {
        return sli_plugin(&p, labels);
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
        let labels = merged(&d.labels, s.labels);
        let sli = sloth_sli(
            s.sli.events.map(|e| (e.error_query, e.total_query)),
            s.sli.raw.map(|r| r.error_ratio_query),
            s.sli.plugin,
            s.sli.latency,
            &labels,
        )
        .map_err(ctx)?;
        let plugins = build_chain(d.slo_plugins.as_ref(), s.plugins.as_ref()).map_err(ctx)?;
        let (period, windows) = period_and_windows(&s.ext, opts).map_err(ctx)?;
        out.push(SloSpec {
            file: file.to_string(),
            kind: SpecKind::PrometheusV1,
            service: d.service.clone(),
            name: s.name,
            description: s.description,
            objective: s.objective,
            labels,
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
            budgeting: BudgetingMethod::Occurrences,
            plugins,
        });
    }
    Ok(out)
}

fn sloth_k8s(file: &str, d: K8sDoc, opts: &LoadOptions) -> Result<Vec<SloSpec>, String> {
    let mut out = Vec::new();
    for s in d.spec.slos {
        let ctx = |e: String| format!("SLO {:?}: {e}", s.name);
        let labels = merged(&d.spec.labels, s.labels);
        let sli = sloth_sli(
            s.sli.events.map(|e| (e.error_query, e.total_query)),
            s.sli.raw.map(|r| r.error_ratio_query),
            s.sli.plugin,
            s.sli.latency,
            &labels,
        )
        .map_err(ctx)?;
        let plugins = build_chain(d.spec.slo_plugins.as_ref(), s.plugins.as_ref()).map_err(ctx)?;
        let (period, windows) = period_and_windows(&s.ext, opts).map_err(ctx)?;
        out.push(SloSpec {
            file: file.to_string(),
            kind: SpecKind::SlothK8s,
            service: d.spec.service.clone(),
            name: s.name,
            description: s.description,
            objective: s.objective,
            labels,
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
            budgeting: BudgetingMethod::Occurrences,
            plugins,
        });
    }
    Ok(out)
}

/// OpenSLO SLOs have no alerting block: both alerts disabled, like Sloth.
#[allow(clippy::too_many_arguments)] // one call per OpenSLO version; a struct adds nothing
pub(super) fn openslo_spec(
    file: &str,
    kind: SpecKind,
    service: &str,
    name: String,
    description: &str,
    objective: f64,
    sli: Sli,
    period: Period,
    budgeting: BudgetingMethod,
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
        budgeting,
        plugins: PluginChain::default(),
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

fn openslo_v1alpha(
    file: &str,
    d: OsV1AlphaDoc,
    opts: &LoadOptions,
) -> Result<Vec<SloSpec>, String> {
    let slo_name = d.metadata.name.clone();
    let ctx = |e: String| format!("SLO {slo_name:?}: {e}");
    let period = match d.spec.time_windows.first() {
        Some(w) => {
            let cal = w.calendar.as_ref();
            let count = u32::try_from(w.count).map_err(|_| ctx("time window too long".into()))?;
            openslo_period(
                count,
                &w.unit,
                w.is_rolling,
                cal.map(|c| c.time_zone.as_str()),
                cal.and_then(|c| c.start_time.as_deref()),
                opts,
            )
            .map_err(ctx)?
        }
        None => Period::Rolling(opts.default_period),
    };
    let mut out = Vec::new();
    for (i, o) in d.spec.objectives.into_iter().enumerate() {
        let name = format!("{}-{i}", d.metadata.name);
        let budgeting = budgeting(
            &d.spec.budgeting_method,
            o.time_slice_target,
            o.time_slice_window.as_deref(),
        )
        .map_err(|e| format!("SLO {name:?}: {e}"))?;
        let sli = match o.ratio_metrics {
            None => Sli::Unsupported {
                reason: "only ratioMetrics objectives can be evaluated (thresholdMetric is not \
                         supported)"
                    .into(),
            },
            Some(r) => {
                let foreign = [r.good.as_ref(), r.bad.as_ref(), Some(&r.total)]
                    .into_iter()
                    .flatten()
                    .find(|q| !q.source.is_empty() && !q.source.eq_ignore_ascii_case("prometheus"));
                match foreign {
                    Some(q) => Sli::Unsupported {
                        reason: format!(
                            "metric source {:?} is not Prometheus (Sextant evaluates PromQL only)",
                            q.source
                        ),
                    },
                    None => good_or_bad(
                        r.good.map(|q| q.query),
                        r.bad.map(|q| q.query),
                        r.total.query,
                    )
                    .map_err(|e| format!("SLO {name:?}: {e}"))?,
                }
            }
        };
        out.push(openslo_spec(
            file,
            SpecKind::OpenSloV1Alpha,
            &d.spec.service,
            name,
            &d.spec.description,
            o.target * 100.0,
            sli,
            period.clone(),
            budgeting,
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
        Sli::Unsupported { .. } => vec![],
    };
    if let Some(slice) = s.budgeting.slice() {
        if slice.is_zero() {
            return Err("timeSliceWindow must be positive".into());
        }
        if slice > s.period.nominal() {
            return Err(format!(
                "timeSliceWindow {} is longer than the SLO period",
                format_duration(slice)
            ));
        }
    }
    if s.plugins.0.contains(&SloPlugin::DenominatorCorrected)
        && !matches!(s.sli, Sli::Events { .. })
    {
        return Err("denominator corrected SLI requires SLI event type".into());
    }
    for q in queries {
        let rendered = render_window(q, "5m")?;
        if s.plugins.validates_promql() {
            sextant_query::promql::parse(&rendered)
                .map_err(|e| format!("invalid SLI query {:?}: {e}", q.trim()))?;
        }
        if s.plugins.validates_metricsql() {
            check_metricsql(&rendered)?;
        }
    }
    Ok(())
}
