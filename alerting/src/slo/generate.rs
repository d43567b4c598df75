//! SLO specs → rule groups, in Sloth's layout: per SLO an SLI group
//! (`sloth-slo-sli-recordings-<id>`), a metadata group (`sloth-slo-meta-recordings-<id>`) and an
//! alert group (`sloth-slo-alerts-<id>`), with Sloth's rule names, labels and expressions.
//!
//! Deliberate differences from Sloth (see the module docs of `slo` for the reasons):
//! - the SLO-period ratio (`slo:sli_error:ratio_rate30d`) is traffic-weighted: two extra
//!   recordings, `slo:sli_error_events:rate<w>` and `slo:sli_total_events:rate<w>` (`<w>` = the
//!   page alert's short window, 5m), hold the SLI's event rates and the period ratio is
//!   `sum_over_time(errors[P]) / sum_over_time(total[P])`; Sloth averages the 5m ratios instead.
//!   Raw SLIs have no events: their period ratio is the raw query over the period itself.
//! - `slo:period_error_budget_remaining:seconds` (budget left as seconds of full outage).
//! - with `min_events`, each alert condition also requires that many total events over its
//!   long window.

use std::collections::BTreeMap;
use std::time::Duration;

use super::plugins::SloPlugin;
use super::spec::{
    format_duration, render_window, BudgetingMethod, BurnWindow, Period, Sli, SloSpec,
};
use crate::rules::{RuleDef, RuleGroup, RuleKind};

type Labels = BTreeMap<String, String>;

/// Generation switches (Sloth's CLI flags).
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Added to every recording rule (Sloth's `-l k=v`).
    pub extra_labels: Labels,
    /// Omit the alert groups (`--disable-alerts`).
    pub disable_alerts: bool,
    /// Omit the SLI and metadata groups (`--disable-recordings`).
    pub disable_recordings: bool,
    /// Value of `sloth_version` on `sloth_slo_info`.
    pub version: String,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            extra_labels: Labels::new(),
            disable_alerts: false,
            disable_recordings: false,
            version: format!("sextant-{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Name of the SLI error-ratio recording over `w`.
pub fn sli_error_metric(w: Duration) -> String {
    format!("slo:sli_error:ratio_rate{}", format_duration(w))
}

/// Name of the per-slice error indicator of a time-slice SLO (Sextant addition): for
/// `Timeslices` 1 when the slice is bad, 0 when good; for `RatioTimeslices` the slice's error
/// ratio. Recorded once per slice (its group's interval is the slice); slices without traffic
/// record nothing and so do not count.
pub const TIMESLICE_METRIC: &str = "slo:timeslice_error:ratio";

/// The per-slice indicator of a time-slice SLO (see [`TIMESLICE_METRIC`]) evaluated at the end
/// of a slice; `None` for `Occurrences`. NaN ratios (no traffic) are dropped by `>= 0`.
pub fn timeslice_indicator_expr(slo: &SloSpec) -> Result<Option<String>, String> {
    let (slice, target) = match slo.budgeting {
        BudgetingMethod::Occurrences => return Ok(None),
        BudgetingMethod::Timeslices {
            slice,
            slice_target,
        } => (slice, Some(slice_target)),
        BudgetingMethod::RatioTimeslices { slice } => (slice, None),
    };
    let ratio = sli_ratio_expr(&slo.sli, slice)?;
    Ok(Some(match target {
        // Good when the slice's good ratio reaches the target.
        Some(t) => format!("(1 - (\n{}\n) >= 0) < bool {}", ratio.trim(), num(t)),
        None => format!("(\n{}\n) >= 0", ratio.trim()),
    }))
}

/// The error ratio of `slo` over `w` computed from the SLI's own queries (no recordings): for
/// `Occurrences` [`sli_ratio_expr`]; for time slices the mean of the per-slice indicator over
/// the slices ending in `w` (a subquery stepping at the slice, aligned like the rule group).
pub fn window_error_expr(slo: &SloSpec, w: Duration) -> Result<String, String> {
    match (timeslice_indicator_expr(slo)?, slo.budgeting.slice()) {
        (Some(ind), Some(slice)) => Ok(format!(
            "avg_over_time((\n{ind}\n)[{}:{}])",
            format_duration(w),
            format_duration(slice)
        )),
        _ => sli_ratio_expr(&slo.sli, w),
    }
}

/// Name of the recorded error-event rate over `w` (Sextant addition).
pub fn error_events_metric(w: Duration) -> String {
    format!("slo:sli_error_events:rate{}", format_duration(w))
}

/// Name of the recorded total-event rate over `w` (Sextant addition).
pub fn total_events_metric(w: Duration) -> String {
    format!("slo:sli_total_events:rate{}", format_duration(w))
}

/// The `sloth_id`, `sloth_service`, `sloth_slo` labels of an SLO.
pub fn id_labels(slo: &SloSpec) -> Labels {
    Labels::from([
        ("sloth_id".to_string(), slo.id()),
        ("sloth_service".to_string(), slo.service.clone()),
        ("sloth_slo".to_string(), slo.name.clone()),
    ])
}

/// `{sloth_id="…", sloth_service="…", sloth_slo="…"}`.
pub fn id_filter(slo: &SloSpec) -> String {
    let parts: Vec<String> = id_labels(slo)
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The SLI's error ratio over `w` (Sloth's text, parentheses included).
pub fn sli_ratio_expr(sli: &Sli, w: Duration) -> Result<String, String> {
    let win = format_duration(w);
    Ok(match sli {
        Sli::Events {
            error_query,
            total_query,
        } => format!(
            "({})\n/\n({})\n",
            render_window(error_query, &win)?,
            render_window(total_query, &win)?
        ),
        Sli::GoodTotal {
            good_query,
            total_query,
        } => format!(
            "(\n  1 - (\n    (\n      {}\n    )\n    /\n    (\n      {}\n    )\n  )\n)",
            render_window(good_query, &win)?.trim(),
            render_window(total_query, &win)?.trim()
        ),
        Sli::Raw { error_ratio_query } => format!("({})", render_window(error_ratio_query, &win)?),
        Sli::Unsupported { reason } => return Err(reason.clone()),
    })
}

fn record(name: String, expr: String, labels: Labels) -> RuleDef {
    RuleDef {
        kind: RuleKind::Record(name),
        expr,
        for_: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        labels,
        annotations: Labels::new(),
        line: 0,
    }
}

/// Go's `%g`-style shortest float (Sloth prints numbers this way).
fn num(v: f64) -> String {
    format!("{v}")
}

/// Rule groups for `slos` with default options (see [`rule_groups_with`]).
pub fn rule_groups(slos: &[SloSpec]) -> Vec<RuleGroup> {
    rule_groups_with(slos, &GenerateOptions::default())
}

/// Rule groups for `slos`: SLI recordings, metadata recordings, alerts, per SLO in order.
/// Specs are validated by the loader, so templates render; an SLO whose templates do not
/// (hand-built specs) is skipped with a log line rather than producing broken rules.
pub fn rule_groups_with(slos: &[SloSpec], opts: &GenerateOptions) -> Vec<RuleGroup> {
    let mut out = Vec::new();
    for slo in slos {
        match slo_groups(slo, opts) {
            Ok(g) => out.extend(g),
            Err(e) => {
                tracing::error!(slo = %slo.id(), error = %e, "SLO skipped: cannot generate rules")
            }
        }
    }
    out
}

fn group(name: String, file: &str, rules: Vec<RuleDef>) -> RuleGroup {
    RuleGroup {
        name,
        file: file.to_string(),
        interval: None,
        limit: 0,
        query_offset: None,
        labels: Labels::new(),
        rules,
    }
}

fn slo_groups(slo: &SloSpec, opts: &GenerateOptions) -> Result<Vec<RuleGroup>, String> {
    if slo.unsupported().is_some() {
        // Reported at load and by the API; there is nothing to evaluate.
        return Ok(Vec::new());
    }
    let id = slo.id();
    let filter = id_filter(slo);
    let period = slo.period.nominal();
    let period_str = format_duration(period);
    let mut base = id_labels(slo);
    base.extend(slo.labels.clone());
    base.extend(opts.extra_labels.clone());
    let with_window = |w: Duration| {
        let mut l = base.clone();
        l.insert("sloth_window".into(), format_duration(w));
        l
    };
    // Sloth's core plugins' output, computed up front; the plugin chain decides what is kept.
    let mut ts_group = None;
    let mut sli_group = None;
    let mut meta_group = None;
    let mut alert_group = None;

    if !opts.disable_recordings {
        let mut windows = slo.windows.windows();
        windows.push(period);
        windows.sort();
        windows.dedup();
        let events_window = slo.windows.page_quick.short;
        let mut rules = Vec::new();
        if let (Some(ind), Some(slice)) = (timeslice_indicator_expr(slo)?, slo.budgeting.slice()) {
            let mut g = group(
                format!("sextant-slo-timeslice-recordings-{id}"),
                &slo.file,
                vec![record(TIMESLICE_METRIC.into(), ind, with_window(slice))],
            );
            g.interval = Some(slice);
            ts_group = Some(g);
        }
        for w in windows {
            if slo.budgeting.slice().is_some() {
                rules.push(record(
                    sli_error_metric(w),
                    format!(
                        "avg_over_time({TIMESLICE_METRIC}{filter}[{}])",
                        format_duration(w)
                    ),
                    with_window(w),
                ));
                continue;
            }
            if w != period {
                rules.push(record(
                    sli_error_metric(w),
                    sli_ratio_expr(&slo.sli, w)?,
                    with_window(w),
                ));
                continue;
            }
            let expr = match &slo.sli {
                Sli::Raw { .. } | Sli::Unsupported { .. } => sli_ratio_expr(&slo.sli, w)?,
                Sli::Events { .. } | Sli::GoodTotal { .. } => {
                    let ew = format_duration(events_window);
                    let (errors, total) = match &slo.sli {
                        Sli::Events {
                            error_query,
                            total_query,
                        } => (
                            render_window(error_query, &ew)?,
                            render_window(total_query, &ew)?,
                        ),
                        Sli::GoodTotal {
                            good_query,
                            total_query,
                        } => {
                            let total = render_window(total_query, &ew)?;
                            (
                                format!(
                                    "({})\n-\n({})",
                                    total.trim(),
                                    render_window(good_query, &ew)?.trim()
                                ),
                                total,
                            )
                        }
                        Sli::Raw { .. } | Sli::Unsupported { .. } => unreachable_raw()?,
                    };
                    rules.push(record(
                        error_events_metric(events_window),
                        errors,
                        with_window(events_window),
                    ));
                    rules.push(record(
                        total_events_metric(events_window),
                        total,
                        with_window(events_window),
                    ));
                    format!(
                        "sum_over_time({}{filter}[{period_str}])\n/ ignoring (sloth_window)\nsum_over_time({}{filter}[{period_str}])\n",
                        error_events_metric(events_window),
                        total_events_metric(events_window)
                    )
                }
            };
            rules.push(record(sli_error_metric(w), expr, with_window(w)));
        }
        sli_group = Some(group(
            format!("sloth-slo-sli-recordings-{id}"),
            &slo.file,
            rules,
        ));

        let obj = slo.objective_ratio();
        let burn = |metric: String| {
            format!(
                "{metric}{filter}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{filter}\n"
            )
        };
        let mut info = base.clone();
        info.insert("sloth_version".into(), opts.version.clone());
        info.insert("sloth_mode".into(), slo.kind.mode_label().into());
        info.insert("sloth_spec".into(), slo.kind.spec_label().into());
        info.insert("sloth_objective".into(), num(slo.objective));
        let meta = vec![
            record(
                "slo:objective:ratio".into(),
                format!("vector({})", num(obj)),
                base.clone(),
            ),
            record(
                "slo:error_budget:ratio".into(),
                format!("vector(1-{})", num(obj)),
                base.clone(),
            ),
            record(
                "slo:time_period:days".into(),
                format!("vector({})", num(period.as_secs_f64() / 86_400.0)),
                base.clone(),
            ),
            record(
                "slo:current_burn_rate:ratio".into(),
                burn(sli_error_metric(slo.windows.page_quick.short)),
                base.clone(),
            ),
            record(
                "slo:period_burn_rate:ratio".into(),
                burn(sli_error_metric(period)),
                base.clone(),
            ),
            record(
                "slo:period_error_budget_remaining:ratio".into(),
                format!("1 - slo:period_burn_rate:ratio{filter}"),
                base.clone(),
            ),
            record(
                "slo:period_error_budget_remaining:seconds".into(),
                format!(
                    "slo:period_error_budget_remaining:ratio{filter} * {} * {}",
                    num(slo.error_budget_ratio()),
                    num(period.as_secs_f64())
                ),
                base.clone(),
            ),
            record("sloth_slo_info".into(), "vector(1)".into(), info),
        ];
        meta_group = Some(group(
            format!("sloth-slo-meta-recordings-{id}"),
            &slo.file,
            meta,
        ));
    }

    if !opts.disable_alerts {
        let mut rules = Vec::new();
        for (severity, meta, quick, slow) in [
            (
                "page",
                &slo.alerting.page,
                &slo.windows.page_quick,
                &slo.windows.page_slow,
            ),
            (
                "ticket",
                &slo.alerting.ticket,
                &slo.windows.ticket_quick,
                &slo.windows.ticket_slow,
            ),
        ] {
            if meta.disable {
                continue;
            }
            let expr = format!(
                "(\n{}\n)\nor\n(\n{}\n)\n",
                condition(slo, &filter, quick)?,
                condition(slo, &filter, slow)?
            );
            let mut labels = Labels::from([("sloth_severity".to_string(), severity.to_string())]);
            labels.extend(slo.alerting.labels.clone());
            labels.extend(meta.labels.clone());
            let mut annotations = Labels::from([
                (
                    "title".to_string(),
                    format!("({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast."),
                ),
                (
                    "summary".to_string(),
                    "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.".to_string(),
                ),
            ]);
            annotations.extend(budget_annotations(slo, &filter, quick));
            annotations.extend(slo.alerting.annotations.clone());
            annotations.extend(meta.annotations.clone());
            rules.push(RuleDef {
                kind: RuleKind::Alert(slo.alerting.name.clone()),
                expr,
                for_: Duration::ZERO,
                keep_firing_for: Duration::ZERO,
                labels,
                annotations,
                line: 0,
            });
        }
        if !rules.is_empty() {
            alert_group = Some(group(format!("sloth-slo-alerts-{id}"), &slo.file, rules));
        }
    }

    // The plugin chain (see `plugins.rs`): core plugins put their group in place (again),
    // contrib plugins edit what is in place; intervals apply to whatever is output.
    let (mut out_ts, mut out_sli, mut out_meta, mut out_alerts) = (None, None, None, None);
    let (mut iv_sli, mut iv_meta, mut iv_alert) = (None, None, None);
    for p in &slo.plugins.0 {
        match p {
            SloPlugin::Validate | SloPlugin::ValidateVictoriaMetrics => {}
            SloPlugin::Debug { msg } => tracing::debug!(slo = %id, msg = %msg, "SLO debug plugin"),
            SloPlugin::SliRules => {
                out_ts.clone_from(&ts_group);
                out_sli.clone_from(&sli_group);
            }
            SloPlugin::MetadataRules => out_meta.clone_from(&meta_group),
            SloPlugin::AlertRules => out_alerts.clone_from(&alert_group),
            SloPlugin::InfoLabels { metric, labels } => {
                let rules = out_meta
                    .iter_mut()
                    .flat_map(|g: &mut RuleGroup| g.rules.iter_mut());
                for r in rules {
                    if matches!(&r.kind, RuleKind::Record(n) if n == metric) {
                        r.labels.extend(labels.clone());
                    }
                }
            }
            SloPlugin::RuleIntervals {
                default,
                sli,
                metadata,
                alert,
            } => {
                iv_sli = Some(sli.unwrap_or(*default));
                iv_meta = Some(metadata.unwrap_or(*default));
                iv_alert = Some(alert.unwrap_or(*default));
            }
            SloPlugin::DenominatorCorrected => {
                denominator_corrected(slo, &filter, &base, &mut out_sli, &mut out_meta)?
            }
        }
    }
    for (g, iv) in [
        (&mut out_sli, iv_sli),
        (&mut out_meta, iv_meta),
        (&mut out_alerts, iv_alert),
    ] {
        if let (Some(g), Some(iv)) = (g.as_mut(), iv) {
            g.interval = Some(iv);
        }
    }
    Ok([out_ts, out_sli, out_meta, out_alerts]
        .into_iter()
        .flatten()
        .collect())
}

/// `q` as the right operand of `*`: as written (Sloth's text) unless it is itself a unary or
/// binary operation, which is parenthesised so the product keeps its meaning.
fn operand(q: &str) -> String {
    use sextant_query::promql::Expr;
    match sextant_query::promql::parse(q) {
        Ok(Expr::Binary(_) | Expr::Unary(_)) | Err(_) => format!("({q})"),
        Ok(_) => q.to_string(),
    }
}

/// `sloth.dev/contrib/denominator_corrected_rules/v1`: each window shorter than the period
/// gets `(slo:numerator_correction:ratio<w>{id} * on() (<errors over w>)) / (<total over w>)`,
/// and the metadata group records `slo:numerator_correction:ratio<w>` = `(<total over w>) /
/// (<total over the period>)` (the window's share of the period's traffic). The period
/// recording stays Sextant's traffic-weighted ratio.
fn denominator_corrected(
    slo: &SloSpec,
    filter: &str,
    base: &Labels,
    sli: &mut Option<RuleGroup>,
    meta: &mut Option<RuleGroup>,
) -> Result<(), String> {
    let Sli::Events {
        error_query,
        total_query,
    } = &slo.sli
    else {
        return Err("denominator corrected SLI requires SLI event type".into());
    };
    let period = slo.period.nominal();
    let mut windows = slo.windows.windows();
    windows.sort();
    windows.dedup();
    windows.retain(|w| *w != period);
    let period_total = render_window(total_query, &format_duration(period))?;
    let correction = |w: Duration| format!("slo:numerator_correction:ratio{}", format_duration(w));
    if let Some(g) = sli.as_mut() {
        for r in &mut g.rules {
            let RuleKind::Record(name) = &r.kind else {
                continue;
            };
            let Some(w) = windows.iter().find(|w| *name == sli_error_metric(**w)) else {
                continue;
            };
            let win = format_duration(*w);
            r.expr = format!(
                "(\n{}{filter}\n* on()\n{}\n)\n/\n({})\n",
                correction(*w),
                operand(render_window(error_query, &win)?.trim()),
                render_window(total_query, &win)?.trim()
            );
        }
    }
    if let Some(g) = meta.as_mut() {
        for w in &windows {
            g.rules.push(record(
                correction(*w),
                format!(
                    "({})/({})",
                    render_window(total_query, &format_duration(*w))?,
                    period_total
                ),
                base.clone(),
            ));
        }
    }
    Ok(())
}

/// Annotations Sextant adds to each generated page/ticket alert (Sloth has none of these), so
/// a notification shows the budget state: the objective, budget left in the SLO period (as a
/// ratio and as time of full outage), the burn rates over the severity's quick windows, and
/// the URL of the SLO's state (`/api/v1/slos/<id>` under `$externalURL`). Values are read with
/// the template `query` function from the SLI group's own recordings (which exist whenever the
/// alert's expression has a value), so they are current when the alert is evaluated. The
/// SLO's own annotations override these.
pub const BUDGET_ANNOTATIONS: [&str; 5] = [
    "objective",
    "error_budget_remaining",
    "error_budget_remaining_time",
    "burn_rate",
    "slo_url",
];

fn budget_annotations(slo: &SloSpec, filter: &str, quick: &BurnWindow) -> Labels {
    let budget = num(slo.error_budget_ratio());
    let period = slo.period.nominal();
    let remaining = format!("1 - ({}{filter} / {budget})", sli_error_metric(period));
    let remaining_secs = format!("({remaining}) * {budget} * {}", num(period.as_secs_f64()));
    let burn = |w: Duration| {
        format!(
            "{{{{ with query {} }}}}{{{{ . | first | value | printf \"%.1f\" }}}}×{{{{ else }}}}no data{{{{ end }}}} over {}",
            go_quote(&format!("{}{filter} / {budget}", sli_error_metric(w))),
            format_duration(w)
        )
    };
    Labels::from([
        ("objective".to_string(), format!("{}%", num(slo.objective))),
        (
            "error_budget_remaining".to_string(),
            format!(
                "{{{{ with query {} }}}}{{{{ . | first | value | humanizePercentage }}}} of the {} budget{{{{ else }}}}no data{{{{ end }}}}",
                go_quote(&remaining),
                format_duration(period)
            ),
        ),
        (
            "error_budget_remaining_time".to_string(),
            format!(
                "{{{{ with query {} }}}}{{{{ $s := . | first | value }}}}{{{{ if gt $s 0.0 }}}}{{{{ $s | humanizeDuration }}}} of full outage left{{{{ else }}}}none: budget exhausted{{{{ end }}}}{{{{ else }}}}no data{{{{ end }}}}",
                go_quote(&remaining_secs)
            ),
        ),
        (
            "burn_rate".to_string(),
            format!(
                "{}, {} (alerts above {}×)",
                burn(quick.short),
                burn(quick.long),
                num(quick.burn_rate)
            ),
        ),
        (
            "slo_url".to_string(),
            format!(
                "{{{{ $externalURL }}}}/api/v1/slos/{}",
                path_escape(&slo.id())
            ),
        ),
    ])
}

/// A Go template string literal holding `s`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters (one URL path segment).
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unreachable_raw<T>() -> Result<T, String> {
    Err("raw SLI has no event queries".into())
}

/// One multi-window condition: both windows above `burn_rate × budget`, plus the low-traffic
/// guard on the long window when `min_events` is set.
fn condition(slo: &SloSpec, filter: &str, w: &BurnWindow) -> Result<String, String> {
    let eb = num(slo.error_budget_ratio());
    let f = num(w.burn_rate);
    let one = |win: Duration| {
        format!(
            "    max({}{filter} > ({f} * {eb})) without (sloth_window)",
            sli_error_metric(win)
        )
    };
    let mut s = format!("{}\n    and\n{}", one(w.short), one(w.long));
    if slo.min_events > 0.0 {
        if let Some(total) = slo.sli.total_query() {
            let total = render_window(total, &format_duration(w.long))?;
            s.push_str(&format!(
                "\n    and on()\n    (sum({}) * {} >= {})",
                total.trim(),
                num(w.long.as_secs_f64()),
                num(slo.min_events)
            ));
        }
    }
    Ok(s)
}

/// Whether the SLO period is calendar-aligned (its period rules use the nominal length; the
/// API computes exact calendar figures).
pub fn is_calendar(slo: &SloSpec) -> bool {
    matches!(slo.period, Period::Calendar { .. } | Period::Aligned { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::parse::{load_slo_files_with, LoadOptions};
    use sextant_query::promql::{parse, Engine, EngineOptions, Value};
    use sextant_storage::{Db, Labels, Sample};

    fn load(spec: &str) -> Vec<SloSpec> {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("s.yml");
        if std::fs::write(&path, spec).is_err() {
            panic!("write");
        }
        match load_slo_files_with(&[path], &LoadOptions::default()) {
            Ok(v) => v,
            Err(e) => panic!("{e:?}"),
        }
    }

    const LATENCY: &str = r#"version: "prometheus/v1"
service: api
slos:
  - name: latency
    objective: 99
    min_events: 100
    alert_windows:
      page_quick: {burn_rate: 10}
    sli:
      latency: {histogram: http_request_duration_seconds, selector: '{job="api"}', threshold: 0.3}
    alerting: {name: ApiSlow}
"#;

    fn rule<'a>(groups: &'a [RuleGroup], name: &str) -> Vec<&'a RuleDef> {
        groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter(|r| matches!(&r.kind, RuleKind::Record(n) | RuleKind::Alert(n) if n == name))
            .collect()
    }

    #[test]
    fn latency_sli_reads_the_threshold_bucket_and_alerts_have_the_traffic_guard() {
        let groups = rule_groups(&load(LATENCY));
        let r5 = rule(&groups, "slo:sli_error:ratio_rate5m");
        assert_eq!(r5.len(), 1);
        let canon = parse(&r5[0].expr)
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            canon,
            "(1 - ((sum(rate(http_request_duration_seconds_bucket{job=\"api\",le=\"0.3\"}[5m]))) / (sum(rate(http_request_duration_seconds_count{job=\"api\"}[5m])))))"
        );
        let alerts = rule(&groups, "ApiSlow");
        assert_eq!(alerts.len(), 2);
        for a in &alerts {
            assert!(parse(&a.expr).is_ok(), "{}", a.expr);
        }
        let page = parse(&alerts[0].expr)
            .map(|e| e.to_string())
            .unwrap_or_default();
        // The overridden page-quick factor, and the guard on each long window.
        assert!(page.contains("> (10 * 0.01)"), "{page}");
        assert!(
            page.contains("and on () (sum(sum(rate(http_request_duration_seconds_count{job=\"api\"}[1h]))) * 3600 >= 100)"),
            "{page}"
        );
        assert!(page.contains("[6h]))) * 21600 >= 100)"), "{page}");
        // Every generated expression parses.
        for r in groups.iter().flat_map(|g| &g.rules) {
            assert!(parse(&r.expr).is_ok(), "{:?}: {}", r.kind, r.expr);
        }
    }

    #[test]
    fn period_ratio_is_weighted_by_traffic() {
        let slos = load(
            r#"version: "prometheus/v1"
service: s
slos:
  - name: a
    objective: 99
    period: 2h
    sli:
      events: {error_query: 'sum(rate(e[{{.window}}]))', total_query: 'sum(rate(t[{{.window}}]))'}
    alerting: {page_alert: {disable: true}, ticket_alert: {disable: true}}
"#,
        );
        let groups = rule_groups(&slos);
        let period = rule(&groups, "slo:sli_error:ratio_rate2h");
        assert_eq!(period.len(), 1);
        // Recorded 5m rates: a busy minute with 1 error in 100 and a quiet one with 1 in 1.
        let db = Db::in_memory();
        let ids = [
            ("sloth_id", "s-a"),
            ("sloth_service", "s"),
            ("sloth_slo", "a"),
            ("sloth_window", "5m"),
        ];
        let series = |name: &str, a: f64, b: f64| {
            let mut pairs = vec![("__name__", name)];
            pairs.extend(ids);
            (
                Labels::from_pairs(pairs),
                vec![Sample { t: 60_000, v: a }, Sample { t: 120_000, v: b }],
            )
        };
        let batch = [
            series("slo:sli_error_events:rate5m", 1.0, 1.0),
            series("slo:sli_total_events:rate5m", 100.0, 1.0),
        ];
        if db.append(&batch).is_err() {
            panic!("append");
        }
        let engine = Engine::new(EngineOptions::default());
        let expr = match parse(&period[0].expr) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        let v = match engine.instant_query(&db, &period[0].expr, &expr, 120_000) {
            Ok(r) => r.value,
            Err(e) => panic!("{e}"),
        };
        let Value::Vector(v) = v else {
            panic!("not a vector")
        };
        assert_eq!(v.len(), 1);
        // 2 errors in 101 events, not the mean of 1 % and 100 %.
        assert!((v[0].v - 2.0 / 101.0).abs() < 1e-12, "{}", v[0].v);
    }

    #[test]
    fn alerts_carry_budget_figures_from_the_sli_recordings() {
        use crate::rules::eval::{EvalOptions, GroupEvaluator};
        let slos = load(
            r#"version: "prometheus/v1"
service: "my api"
slos:
  - name: availability
    objective: 99.9
    sli:
      events: {error_query: 'sum(rate(e[{{.window}}]))', total_query: 'sum(rate(t[{{.window}}]))'}
    alerting: {name: Burn, ticket_alert: {disable: true}}
"#,
        );
        let groups = rule_groups(&slos);
        let Some(alerts) = groups
            .iter()
            .find(|g| g.name.starts_with("sloth-slo-alerts-"))
        else {
            panic!("no alert group")
        };
        let engine = Engine::new(EngineOptions::default());
        let put = |db: &Db, window: &str, v: f64, t: i64| {
            let labels = Labels::from_pairs(vec![
                (
                    "__name__",
                    format!("slo:sli_error:ratio_rate{window}").as_str(),
                ),
                ("sloth_id", "my api-availability"),
                ("sloth_service", "my api"),
                ("sloth_slo", "availability"),
                ("sloth_window", window),
            ]);
            if db.append(&[(labels, vec![Sample { t, v }])]).is_err() {
                panic!("append");
            }
        };
        let t = 3_600_000;
        let annotations = |period_ratio: f64| {
            let db = Db::in_memory();
            put(&db, "5m", 0.02, t);
            put(&db, "1h", 0.018, t);
            put(&db, "30d", period_ratio, t);
            let opts = EvalOptions {
                external_url: "http://sx:9090".into(),
                ..EvalOptions::default()
            };
            let mut ev = match GroupEvaluator::new(alerts.clone(), opts) {
                Ok(ev) => ev,
                Err(e) => panic!("{e}"),
            };
            let out = ev.evaluate(&engine, &db, t);
            assert_eq!(out.failed_rules, 0);
            assert_eq!(out.alerts.len(), 1, "the page fires");
            out.alerts[0].annotations.clone()
        };
        // 40 % of the 0.1 % budget spent: 60 % left, i.e. 0.6 × 0.001 × 30d of full outage.
        let a = annotations(0.0004);
        assert_eq!(a["objective"], "99.9%");
        assert_eq!(a["error_budget_remaining"], "60% of the 30d budget");
        assert_eq!(
            a["error_budget_remaining_time"],
            "25m 55s of full outage left"
        );
        assert_eq!(
            a["burn_rate"],
            "20.0× over 5m, 18.0× over 1h (alerts above 14.4×)"
        );
        assert_eq!(
            a["slo_url"],
            "http://sx:9090/api/v1/slos/my%20api-availability"
        );
        // Sloth's annotations are still there.
        assert_eq!(
            a["summary"],
            "my api availability SLO error budget burn rate is over expected."
        );
        // Over budget: the remaining ratio goes negative and the time says so.
        let a = annotations(0.003);
        assert_eq!(a["error_budget_remaining"], "-200% of the 30d budget");
        assert_eq!(a["error_budget_remaining_time"], "none: budget exhausted");
    }
}
