//! Service level objectives: specs (Sloth `prometheus/v1`, Sloth's Kubernetes
//! `PrometheusServiceLevel`, OpenSLO `v1alpha`/`v1`/`v2alpha`) turned into SLI recording rules and
//! multi-window multi-burn-rate alerts, and the error-budget state served by `/api/v1/slos`.
//!
//! # Inputs
//! [`load_slo_files`] reads files or directories; each YAML document (or each object of a YAML
//! list) is one of: a Sloth `version: prometheus/v1` spec (snake_case, unknown fields refused
//! as Sloth does), a `sloth.slok.dev/v1` `PrometheusServiceLevel` (camelCase), a Sloth
//! `AlertWindows` document (custom windows for its `sloPeriod`, applied to every SLO of that
//! period in the same load), an OpenSLO `v1alpha` `SLO` (`ratioMetrics` with prometheus
//! `good`/`bad` + `total`), or an OpenSLO `v1` / `openslo.com/v2alpha` object of any kind
//! (`openslo.rs`: `SLO`, `SLI` via `indicatorRef`, `DataSource` resolving `metricSourceRef`,
//! `Service`; `AlertPolicy`, `AlertCondition`, `AlertNotificationTarget` are accepted and
//! reported as not used). OpenSLO SLOs are named `<metadata.name>-<objective index>` and have
//! no alerts, like Sloth. An SLO that cannot be evaluated (non-Prometheus source, unresolved
//! data source, `thresholdMetric`) is loaded with [`Sli::Unsupported`]: a load warning, the
//! reason in `/api/v1/slos`, no rules. [`load_slo_files_detailed`] returns the warnings.
//!
//! # Sloth plugins ([`plugins`])
//! SLI plugins (`sli.plugin: {id, options}`) and SLO plugin chains (`slo_plugins`/`sloPlugins`,
//! per-SLO `plugins`, with `priority` and `overridePrevious`) are implemented natively: SLI
//! plugin `getting_started_availability`; SLO plugins `sloth.dev/core/{validate,sli_rules,
//! metadata_rules,alert_rules,debug,noop}/v1` and `sloth.dev/contrib/{info_labels,
//! rule_intervals,denominator_corrected_rules,validate_victoria_metrics}/v1`. Any other id is a
//! load error. With `validate_victoria_metrics` (MetricsQL) the rules are generated for export
//! but Sextant cannot evaluate them (a load warning says so).
//!
//! # Budgeting methods
//! `Occurrences` (Sloth's only one): bad events / all events. OpenSLO `Timeslices`: the period
//! is cut into `timeSliceWindow` slices aligned to multiples of the slice since the epoch; a
//! slice is bad when its good ratio is below `timeSliceTarget`; the error ratio of a window is
//! the fraction of bad slices among slices with traffic (idle slices do not count).
//! `RatioTimeslices`: the mean of the slices' error ratios. Rules: a group
//! `sextant-slo-timeslice-recordings-<id>` with `interval` = the slice records
//! `slo:timeslice_error:ratio` (0/1, or the slice ratio), and each `slo:sli_error:ratio_rate<w>`
//! is `avg_over_time` of it over `w`; burn rates and alerts follow unchanged. `budget.rs`
//! computes the same from raw data with a subquery stepping at the slice. The API's slices end
//! at multiples of the slice since the epoch; the recorded ones end at the group's evaluation
//! times, which (as in Prometheus) are shifted by a per-group offset within the interval, so
//! the two can differ by where slice boundaries fall, not by how slices are counted.
//!
//! # Sextant extensions (on Sloth and `PrometheusServiceLevel` SLOs)
//! ```yaml
//! version: "prometheus/v1"
//! service: api
//! slos:
//!   - name: latency
//!     objective: 99
//!     sli:
//!       latency:                          # good = requests in the le="0.3" bucket
//!         histogram: http_request_duration_seconds   # classic histogram base name
//!         selector: '{job="api"}'        # optional
//!         threshold: 0.3                  # in the histogram's unit
//!     period: 28d                         # rolling period (default 30d), or:
//!     # calendar: {unit: month, time_zone: Europe/Berlin}   # month | quarter
//!     min_events: 100                     # low-traffic guard (see below)
//!     alert_windows:                      # any subset; burn_rate or error_budget_percent
//!       page_quick: {short_window: 5m, long_window: 1h, burn_rate: 10}
//!     alerting: {name: ApiSlow, page_alert: {labels: {severity: page}}}
//! ```
//! A latency SLI becomes good/total events: good =
//! `sum(rate(<h>_bucket{<selector>,le="0.3"}[w]))`, total = `sum(rate(<h>_count{<selector>}[w]))`,
//! error ratio = `1 - good/total`. Integral thresholds match `le` spelled `1` or `1.0`. That the
//! threshold is an existing bucket bound cannot be checked when the file is loaded (the series
//! may not exist yet): if it is not, the good-events query selects nothing, so the SLI ratios
//! are empty, no burn alert can fire, and `/api/v1/slos` reports the SLI as `null` with a
//! warning naming the bucket bounds it did find. SLOs on span metrics use the same form with
//! the span-metrics histogram (e.g. `traces_span_metrics_duration_seconds`).
//!
//! # Generated rules ([`rule_groups`])
//! What Sloth generates (same group names, rule names, labels, alert expressions and factors:
//! page 14.4× over 1h and 5m or 6× over 6h and 30m; ticket 3× over 1d and 2h or 1× over 3d and
//! 6h for 30d, scaled with the period) with these differences:
//! - **Traffic-weighted period ratio.** Windows up to 3d are the SLI's own query over the window
//!   (already a ratio of summed increases, as in Sloth). For the SLO period Sloth averages the 5m
//!   ratios, which over-weights quiet hours. Sextant records the SLI's 5m event rates
//!   (`slo:sli_error_events:rate5m`, `slo:sli_total_events:rate5m`) and divides their sums over
//!   the period: each evaluation contributes in proportion to its traffic, and the cost is two
//!   extra series per SLO read over the period (instead of re-reading every raw series for 30d
//!   at each evaluation). Raw SLIs carry no event counts, so their period ratio is the raw
//!   query with `{{.window}}` = the period.
//! - **Low-traffic guard.** With `min_events: N`, each of the four conditions also requires
//!   `sum(<total query over the long window>) * <long window seconds> >= N` (the total query is
//!   taken to be a per-second rate, Sloth's convention). Default 0: no guard.
//! - `slo:period_error_budget_remaining:seconds`: the budget left as seconds of full outage.
//! - Calendar periods: recording rules use the nominal length (30d month, 90d quarter) because
//!   rule text cannot follow a moving boundary; `/api/v1/slos` computes the exact calendar
//!   figures (budget reset at the boundary in the configured time zone).
//!
//! # Budget state ([`budget`], [`api`])
//! Computed at request time with PromQL instant queries over the SLI's own queries.

pub mod api;
pub mod budget;
pub mod calendar;
pub mod generate;
mod openslo;
pub mod parse;
pub mod plugins;
pub mod spec;

#[cfg(test)]
mod sloth_conformance;

#[cfg(test)]
mod openslo_conformance;

use std::path::PathBuf;

pub use generate::{rule_groups, rule_groups_with, GenerateOptions};
pub use parse::{load_slo_files_detailed, load_slo_files_with, LoadOptions, Loaded};
pub use spec::{
    AlertWindows, BudgetingMethod, BurnWindow, CalendarUnit, Period, Sli, SloSpec, SpecKind,
};

/// Loads SLO specs from files or directories with default options (30d period, duplicates
/// refused). Errors are messages naming file, document and SLO.
pub fn load_slo_files(paths: &[PathBuf]) -> Result<Vec<SloSpec>, Vec<String>> {
    load_slo_files_with(paths, &LoadOptions::default())
}
