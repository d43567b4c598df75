//! The normalised SLO model every input format (Sloth `prometheus/v1`, Sloth's Kubernetes
//! `PrometheusServiceLevel`, OpenSLO `v1alpha`/`v1`, Sextant's latency SLI) is turned into, plus
//! the duration helpers shared by the parser and the generator.

use std::collections::BTreeMap;
use std::time::Duration;

/// Which document an SLO came from; sets `sloth_spec`/`sloth_mode` on `sloth_slo_info`
/// (the same values Sloth writes, so Sloth's Grafana dashboards keep working).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecKind {
    /// `version: prometheus/v1`.
    PrometheusV1,
    /// `apiVersion: sloth.slok.dev/v1`, `kind: PrometheusServiceLevel`.
    SlothK8s,
    /// `apiVersion: openslo/v1alpha`, `kind: SLO`.
    OpenSloV1Alpha,
    /// `apiVersion: openslo/v1`, `kind: SLO`.
    OpenSloV1,
    /// `apiVersion: openslo.com/v2alpha`, `kind: SLO`.
    OpenSloV2Alpha,
}

impl SpecKind {
    /// Value of the `sloth_spec` label.
    pub fn spec_label(self) -> &'static str {
        match self {
            SpecKind::PrometheusV1 => "prometheus/v1",
            SpecKind::SlothK8s => "sloth.slok.dev/v1",
            SpecKind::OpenSloV1Alpha => "openslo/v1alpha",
            SpecKind::OpenSloV1 => "openslo/v1",
            SpecKind::OpenSloV2Alpha => "openslo.com/v2alpha",
        }
    }

    /// Value of the `sloth_mode` label.
    pub fn mode_label(self) -> &'static str {
        match self {
            SpecKind::PrometheusV1 => "cli-gen-prom",
            SpecKind::SlothK8s => "cli-gen-k8s",
            SpecKind::OpenSloV1Alpha | SpecKind::OpenSloV1 | SpecKind::OpenSloV2Alpha => {
                "cli-gen-openslo"
            }
        }
    }
}

/// How the error ratio of an SLO is measured. Queries keep their `{{.window}}` placeholders.
#[derive(Clone, Debug, PartialEq)]
pub enum Sli {
    /// Sloth `events`: bad and total event queries (per-second rates by convention).
    Events {
        error_query: String,
        total_query: String,
    },
    /// Good and total event queries (OpenSLO `good`; Sextant latency SLIs are turned into this).
    GoodTotal {
        good_query: String,
        total_query: String,
    },
    /// Sloth `raw.error_ratio_query` (or OpenSLO `raw`): the error ratio itself, no event counts.
    Raw { error_ratio_query: String },
    /// An SLI Sextant cannot evaluate (a non-Prometheus metric source, an OpenSLO
    /// `thresholdMetric`…): the SLO is loaded and listed, but no rules are generated for it and
    /// its budget state carries `reason` instead of figures.
    Unsupported { reason: String },
}

impl Sli {
    /// The total-events query, when the SLI has one (low-traffic guard, period window).
    pub fn total_query(&self) -> Option<&str> {
        match self {
            Sli::Events { total_query, .. } | Sli::GoodTotal { total_query, .. } => {
                Some(total_query)
            }
            Sli::Raw { .. } | Sli::Unsupported { .. } => None,
        }
    }
}

/// How the error budget is counted (OpenSLO `budgetingMethod`; Sloth specs are `Occurrences`).
#[derive(Clone, Debug, PartialEq)]
pub enum BudgetingMethod {
    /// Bad events over all events in the window.
    Occurrences,
    /// The window is cut into slices of `slice` (see the `slo` module docs for their alignment);
    /// a slice is bad when its good ratio is below `slice_target` (a ratio, 0.95). The error
    /// ratio is the fraction of bad slices among the slices with traffic.
    Timeslices { slice: Duration, slice_target: f64 },
    /// Slices of `slice` as above; the error ratio is the mean of the slices' error ratios
    /// (every slice with traffic weighs the same, however busy).
    RatioTimeslices { slice: Duration },
}

impl BudgetingMethod {
    /// The slice length of a time-slice method.
    pub fn slice(&self) -> Option<Duration> {
        match self {
            BudgetingMethod::Occurrences => None,
            BudgetingMethod::Timeslices { slice, .. }
            | BudgetingMethod::RatioTimeslices { slice } => Some(*slice),
        }
    }
}

/// Calendar unit of a calendar-aligned SLO period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalendarUnit {
    Month,
    Quarter,
    Year,
}

/// Unit of an [`Period::Aligned`] window: minutes and hours are fixed lengths, days and weeks
/// are civil (a DST day is 23h or 25h long).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignedUnit {
    Minute,
    Hour,
    Day,
    Week,
}

impl AlignedUnit {
    /// Nominal length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            AlignedUnit::Minute => 60,
            AlignedUnit::Hour => 3600,
            AlignedUnit::Day => 86_400,
            AlignedUnit::Week => 7 * 86_400,
        }
    }
}

/// The window an error budget is spent over.
#[derive(Clone, Debug, PartialEq)]
pub enum Period {
    /// A rolling window ending now (Sloth's only kind; default 30d).
    Rolling(Duration),
    /// Calendar months or quarters starting at local midnight of the first day in `time_zone`
    /// (an IANA name); the budget resets at each boundary.
    Calendar {
        unit: CalendarUnit,
        time_zone: String,
    },
    /// OpenSLO calendar windows of `count` × `unit` (`1w`, `7d`): consecutive windows starting
    /// at `anchor` (a civil date-time, `2022-01-01T12:00:00`) in `time_zone`; the budget resets
    /// at each window boundary.
    Aligned {
        count: u32,
        unit: AlignedUnit,
        anchor: String,
        time_zone: String,
    },
}

impl Period {
    /// The nominal length used for burn-rate factors and `slo:time_period:days`: the rolling
    /// length, 30d for a month, 90d for a quarter, 365d for a year, `count × unit` when aligned.
    pub fn nominal(&self) -> Duration {
        match self {
            Period::Rolling(d) => *d,
            Period::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => Duration::from_secs(30 * 86_400),
            Period::Calendar {
                unit: CalendarUnit::Quarter,
                ..
            } => Duration::from_secs(90 * 86_400),
            Period::Calendar {
                unit: CalendarUnit::Year,
                ..
            } => Duration::from_secs(365 * 86_400),
            Period::Aligned { count, unit, .. } => {
                Duration::from_secs(u64::from(*count) * unit.seconds())
            }
        }
    }
}

/// One alert of a multi-window multi-burn-rate pair: fires when the error ratio over both
/// windows exceeds `burn_rate × error budget`.
#[derive(Clone, Debug, PartialEq)]
pub struct BurnWindow {
    pub short: Duration,
    pub long: Duration,
    /// Multiple of the sustainable error rate (1 = budget exactly spent at period end).
    pub burn_rate: f64,
}

impl BurnWindow {
    /// Sloth's factor: the rate that spends `budget_percent` % of the budget of `period` in
    /// `long` (computed in the same order as Sloth so the printed numbers are identical).
    pub fn from_budget_percent(
        budget_percent: f64,
        short: Duration,
        long: Duration,
        period: Duration,
    ) -> BurnWindow {
        let hours_needed = budget_percent * hours(period) / 100.0;
        BurnWindow {
            short,
            long,
            burn_rate: hours_needed / hours(long),
        }
    }
}

/// The four alert windows (SRE workbook: page 14.4× 1h/5m, 6× 6h/30m; ticket 3× 1d/2h,
/// 1× 3d/6h for a 30d period; the factors scale with the period like Sloth's).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertWindows {
    pub page_quick: BurnWindow,
    pub page_slow: BurnWindow,
    pub ticket_quick: BurnWindow,
    pub ticket_slow: BurnWindow,
}

impl AlertWindows {
    /// The workbook defaults (2 %, 5 %, 10 %, 10 % of the budget) for `period`.
    pub fn defaults_for(period: Duration) -> AlertWindows {
        let m = |x: u64| Duration::from_secs(x * 60);
        let h = |x: u64| Duration::from_secs(x * 3600);
        AlertWindows {
            page_quick: BurnWindow::from_budget_percent(2.0, m(5), h(1), period),
            page_slow: BurnWindow::from_budget_percent(5.0, m(30), h(6), period),
            ticket_quick: BurnWindow::from_budget_percent(10.0, h(2), h(24), period),
            ticket_slow: BurnWindow::from_budget_percent(10.0, h(6), h(72), period),
        }
    }

    /// All windows the alerts use, deduplicated and sorted.
    pub fn windows(&self) -> Vec<Duration> {
        let mut v = vec![
            self.page_quick.short,
            self.page_quick.long,
            self.page_slow.short,
            self.page_slow.long,
            self.ticket_quick.short,
            self.ticket_quick.long,
            self.ticket_slow.short,
            self.ticket_slow.long,
        ];
        v.sort();
        v.dedup();
        v
    }
}

/// `page_alert` / `ticket_alert` of a Sloth spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertMeta {
    pub disable: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// `alerting:` of a Sloth spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alerting {
    /// The alert name of both alerts (required unless both are disabled).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub page: AlertMeta,
    pub ticket: AlertMeta,
}

/// One SLO, normalised. Invariants (checked by the loader): `0 < objective < 100`, `service`
/// and `name` are non-empty, every query parses as PromQL once `{{.window}}` is substituted.
#[derive(Clone, Debug, PartialEq)]
pub struct SloSpec {
    /// Path of the file it was loaded from (the `file` of the generated groups).
    pub file: String,
    pub kind: SpecKind,
    pub service: String,
    pub name: String,
    pub description: String,
    /// Target in percent (99.9 means 99.9 % good).
    pub objective: f64,
    /// Spec-level labels overlaid by SLO-level labels; added to every recording.
    pub labels: BTreeMap<String, String>,
    pub sli: Sli,
    pub period: Period,
    pub windows: AlertWindows,
    pub alerting: Alerting,
    /// Low-traffic guard: a burn alert may fire only when the SLI's total events over the
    /// alert's long window reach this count (0 = no guard, Sloth's behaviour).
    pub min_events: f64,
    /// Occurrences (Sloth, default) or one of OpenSLO's time-slice methods.
    pub budgeting: BudgetingMethod,
    /// The Sloth SLO plugin chain, in execution order (Sloth's default chain unless the spec
    /// names plugins).
    pub plugins: super::plugins::PluginChain,
}

impl SloSpec {
    /// `<service>-<name>`, the `sloth_id` label.
    pub fn id(&self) -> String {
        format!("{}-{}", self.service, self.name)
    }

    /// Allowed error ratio: `(100 - objective) / 100`, computed like Sloth.
    pub fn error_budget_ratio(&self) -> f64 {
        (100.0 - self.objective) / 100.0
    }

    /// The objective as a ratio (`objective / 100`).
    pub fn objective_ratio(&self) -> f64 {
        self.objective / 100.0
    }

    /// Why Sextant cannot evaluate this SLO, when it cannot (see [`Sli::Unsupported`]).
    pub fn unsupported(&self) -> Option<&str> {
        match &self.sli {
            Sli::Unsupported { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Hours in `d`, as Go's `Duration.Hours()`.
pub fn hours(d: Duration) -> f64 {
    let secs = d.as_secs();
    (secs / 3600) as f64 + ((secs % 3600) as f64 * 1e9 + f64::from(d.subsec_nanos())) / 3.6e12
}

/// Parses a Prometheus duration (`90s`, `1h30m`, `30d`, `1w`, `1y`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    if s.is_empty() {
        return Err(bad());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        let n: u128 = s[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms: u128 = match &s[unit_start..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|x| x.checked_add(total_ms))
            .ok_or_else(bad)?;
    }
    let ms = u64::try_from(total_ms).map_err(|_| bad())?;
    Ok(Duration::from_millis(ms))
}

/// Formats like Prometheus' `model.Duration` (`1w`, `1d12h`, `5m`): the window suffix of rule
/// names and the `sloth_window` label.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 86_400_000u128),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        // Years and weeks only when exact, as Prometheus does (`90d`, not `12w6d`).
        let exact_only = unit == "y" || unit == "w";
        if ms >= size && (!exact_only || ms.is_multiple_of(size)) {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Substitutes `{{.window}}` (any inner spacing) in a Sloth query template.
pub fn render_window(template: &str, window: &str) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "unclosed \"{{\" in query template".to_string())?;
        let field = after[..close].trim();
        if field != ".window" {
            return Err(format!(
                "unknown template field {field:?} in query (only {{{{.window}}}} is supported)"
            ));
        }
        out.push_str(window);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_like_prometheus() {
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "1w");
        assert_eq!(format_duration(Duration::from_secs(36 * 3600)), "1d12h");
        assert_eq!(format_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn burn_factors_match_sloth_numbers() {
        let w = AlertWindows::defaults_for(Duration::from_secs(30 * 86_400));
        assert_eq!(w.page_quick.burn_rate, 14.4);
        assert_eq!(w.page_slow.burn_rate, 6.0);
        assert_eq!(w.ticket_quick.burn_rate, 3.0);
        assert_eq!(w.ticket_slow.burn_rate, 1.0);
        let w = AlertWindows::defaults_for(Duration::from_secs(28 * 86_400));
        assert_eq!(format!("{}", w.page_quick.burn_rate), "13.44");
    }

    #[test]
    fn window_template_is_rendered_and_unknown_fields_refused() {
        assert_eq!(
            render_window("rate(x[{{.window}}]) + rate(y[{{ .window }}])", "5m").ok(),
            Some("rate(x[5m]) + rate(y[5m])".to_string())
        );
        assert!(render_window("rate(x[{{.foo}}])", "5m").is_err());
        assert!(render_window("rate(x[{{.window])", "5m").is_err());
    }
}
