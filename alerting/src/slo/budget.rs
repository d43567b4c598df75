//! Error-budget state of one SLO at an instant, computed with PromQL instant queries over the
//! SLI's own queries (so it does not depend on the recording rules having run).
//!
//! Definitions (ratios are of events; `budget` = 1 − objective; `P` = the period length):
//! - error ratio over `w`: the SLI's ratio query with `{{.window}}` = `w`; burn rate = ratio /
//!   budget.
//! - consumed = error ratio over the elapsed part `E` of the period × `E/P` / budget (rolling:
//!   `E = P`; calendar: `E` = time since the boundary, so traffic is assumed to continue as so
//!   far); remaining = 1 − consumed (negative when overspent).
//! - remaining time = remaining × budget × P: seconds of full outage (error ratio 1) left.
//! - time to exhaustion = remaining time / current error ratio (the page alert's short window,
//!   5m, like `slo:current_burn_rate:ratio`); `None` when nothing is failing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sextant_query::promql::{parse, Engine, Value};
use sextant_storage::SeriesSource;

use super::calendar::bounds;
use super::generate::window_error_expr;
use super::spec::{format_duration, BudgetingMethod, CalendarUnit, Period, Sli, SloSpec};

/// The period the budget is computed over.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WindowState {
    /// `rolling` or `calendar`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `30d`, `month`, `quarter`, `year`, or the length of an anchored calendar window (`1w`).
    pub period: String,
    /// Start and end of the period, seconds since the epoch (rolling: now − P and now).
    pub start: f64,
    pub end: f64,
    /// Length of the period in seconds.
    pub seconds: f64,
    /// IANA time zone of a calendar period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Budget figures; ratios are fractions of the budget except `total`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BudgetFigures {
    /// Allowed error ratio (1 − objective).
    pub total: f64,
    /// Fraction of the budget spent in this period.
    pub consumed: Option<f64>,
    /// 1 − consumed.
    pub remaining: Option<f64>,
    /// Seconds of full outage left this period.
    pub remaining_time: Option<f64>,
    /// `"31m of full outage left this window"`.
    pub remaining_time_human: Option<String>,
}

/// A firing (or pending) alert of this SLO, read from `ALERTS`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloAlert {
    pub alertname: String,
    /// `page` or `ticket` (`sloth_severity`).
    pub severity: String,
    pub state: String,
    pub labels: BTreeMap<String, String>,
}

/// What `/api/v1/slos` reports for one SLO.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloState {
    pub id: String,
    pub name: String,
    pub service: String,
    pub description: String,
    pub file: String,
    /// Objective as a ratio (0.999).
    pub objective: f64,
    /// Good ratio over the current window (5m): 1 − error ratio; `None` without traffic.
    pub sli: Option<f64>,
    pub error_ratio: Option<f64>,
    pub window: WindowState,
    pub budget: BudgetFigures,
    /// Burn rate per window (`5m` … `3d` and the period); `None` where the SLI is empty.
    pub burn_rates: BTreeMap<String, Option<f64>>,
    /// Seconds until the budget is spent at the current error ratio.
    pub time_to_exhaustion: Option<f64>,
    pub alerts: Vec<SloAlert>,
    pub warnings: Vec<String>,
    /// `Occurrences`, `Timeslices` or `RatioTimeslices` (OpenSLO's names). With time slices,
    /// error ratios and burn rates are of slices: the fraction of bad slices (`Timeslices`) or
    /// the mean slice error ratio (`RatioTimeslices`).
    pub budgeting_method: &'static str,
    /// Why the SLO cannot be evaluated (then every figure is `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// Evaluates `expr` at `now_ms` and returns the first sample's value (a scalar, or the first
/// element of a vector); `None` when empty or NaN.
fn scalar_of(
    engine: &Engine,
    src: &dyn SeriesSource,
    expr: &str,
    now_ms: i64,
) -> Result<Option<f64>, String> {
    let parsed = parse(expr).map_err(|e| format!("{expr}: {e}"))?;
    let res = engine
        .instant_query(src, expr, &parsed, now_ms)
        .map_err(|e| format!("{expr}: {e}"))?;
    let v = match res.value {
        Value::Scalar(_, v) => Some(v),
        Value::Vector(v) => v.first().map(|s| s.v),
        _ => None,
    };
    Ok(v.filter(|x| x.is_finite()))
}

/// `2h 5m`, `31m`, `3d 4h`, `45s`: the two largest non-zero units.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "0s".into();
    }
    let mut s = secs.round() as u64;
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400u64), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= size {
            parts.push(format!("{}{unit}", s / size));
            s %= size;
        }
    }
    if parts.is_empty() {
        return "0s".into();
    }
    parts.truncate(2);
    parts.join(" ")
}

fn quote(v: &str) -> String {
    format!("{v:?}")
}

/// Computes the state of `slo` at `now_ms`.
pub fn slo_state(
    engine: &Engine,
    src: &dyn SeriesSource,
    slo: &SloSpec,
    now_ms: i64,
) -> Result<SloState, String> {
    let budget = slo.error_budget_ratio();
    let mut warnings = Vec::new();
    let method = match slo.budgeting {
        BudgetingMethod::Occurrences => "Occurrences",
        BudgetingMethod::Timeslices { .. } => "Timeslices",
        BudgetingMethod::RatioTimeslices { .. } => "RatioTimeslices",
    };
    let (window, elapsed) = match &slo.period {
        Period::Rolling(p) => {
            let secs = p.as_secs_f64();
            (
                WindowState {
                    kind: "rolling",
                    period: format_duration(*p),
                    start: now_ms as f64 / 1000.0 - secs,
                    end: now_ms as f64 / 1000.0,
                    seconds: secs,
                    time_zone: None,
                },
                *p,
            )
        }
        Period::Calendar { time_zone, .. } | Period::Aligned { time_zone, .. } => {
            let (start, end) = bounds(&slo.period, now_ms)?.unwrap_or((now_ms, now_ms + 1000));
            let elapsed_ms = u64::try_from((now_ms - start).max(1000)).unwrap_or(1000);
            (
                WindowState {
                    kind: "calendar",
                    period: match &slo.period {
                        Period::Calendar {
                            unit: CalendarUnit::Month,
                            ..
                        } => "month".into(),
                        Period::Calendar {
                            unit: CalendarUnit::Quarter,
                            ..
                        } => "quarter".into(),
                        Period::Calendar {
                            unit: CalendarUnit::Year,
                            ..
                        } => "year".into(),
                        other => format_duration(other.nominal()),
                    },
                    start: start as f64 / 1000.0,
                    end: end as f64 / 1000.0,
                    seconds: (end - start) as f64 / 1000.0,
                    time_zone: Some(time_zone.clone()),
                },
                // Whole seconds: PromQL ranges are written in them.
                Duration::from_secs(elapsed_ms / 1000),
            )
        }
    };

    if let Some(reason) = slo.unsupported() {
        return Ok(SloState {
            id: slo.id(),
            name: slo.name.clone(),
            service: slo.service.clone(),
            description: slo.description.clone(),
            file: slo.file.clone(),
            objective: slo.objective_ratio(),
            sli: None,
            error_ratio: None,
            window,
            budget: BudgetFigures {
                total: budget,
                consumed: None,
                remaining: None,
                remaining_time: None,
                remaining_time_human: None,
            },
            burn_rates: BTreeMap::new(),
            time_to_exhaustion: None,
            alerts: Vec::new(),
            warnings: vec![format!("the SLO cannot be evaluated: {reason}")],
            budgeting_method: method,
            unsupported: Some(reason.to_string()),
        });
    }
    let mut burn_rates = BTreeMap::new();
    let mut windows = slo.windows.windows();
    if let Period::Rolling(p) = slo.period {
        windows.push(p);
    }
    let current_window = slo.windows.page_quick.short;
    let mut current = None;
    for w in windows {
        let ratio = scalar_of(engine, src, &window_error_expr(slo, w)?, now_ms)?;
        if w == current_window {
            current = ratio;
        }
        burn_rates.insert(format_duration(w), ratio.map(|r| r / budget));
    }
    // The period (or, for calendar periods, its elapsed part).
    let period_ratio = scalar_of(engine, src, &window_error_expr(slo, elapsed)?, now_ms)?;
    if !matches!(slo.period, Period::Rolling(_)) {
        burn_rates.insert(window.period.clone(), period_ratio.map(|r| r / budget));
    }
    let fraction = elapsed.as_secs_f64() / window.seconds;
    let consumed = period_ratio.map(|r| r * fraction / budget);
    let remaining = consumed.map(|c| 1.0 - c);
    let remaining_time = remaining.map(|r| r * budget * window.seconds);
    let time_to_exhaustion = match (remaining_time, current) {
        (Some(t), _) if t <= 0.0 => Some(0.0),
        (Some(t), Some(e)) if e > 0.0 => Some(t / e),
        _ => None,
    };
    if period_ratio.is_none() {
        warnings.push("the SLI has no data over the SLO period".to_string());
        if let Sli::GoodTotal { good_query, .. } = &slo.sli {
            if let Some(w) = latency_bucket_warning(engine, src, good_query, now_ms, elapsed) {
                warnings.push(w);
            }
        }
    }

    let alerts_expr = format!(
        "ALERTS{{sloth_service={}, sloth_slo={}}}",
        quote(&slo.service),
        quote(&slo.name)
    );
    let mut alerts = Vec::new();
    let parsed = parse(&alerts_expr).map_err(|e| e.to_string())?;
    if let Ok(res) = engine.instant_query(src, &alerts_expr, &parsed, now_ms) {
        if let Value::Vector(v) = res.value {
            for s in v {
                let labels: BTreeMap<String, String> = s
                    .labels
                    .iter()
                    .filter(|l| l.name != "__name__")
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect();
                alerts.push(SloAlert {
                    alertname: labels.get("alertname").cloned().unwrap_or_default(),
                    severity: labels.get("sloth_severity").cloned().unwrap_or_default(),
                    state: labels.get("alertstate").cloned().unwrap_or_default(),
                    labels,
                });
            }
        }
    }

    Ok(SloState {
        id: slo.id(),
        name: slo.name.clone(),
        service: slo.service.clone(),
        description: slo.description.clone(),
        file: slo.file.clone(),
        objective: slo.objective_ratio(),
        sli: current.map(|e| 1.0 - e),
        error_ratio: current,
        budget: BudgetFigures {
            total: budget,
            consumed,
            remaining,
            remaining_time,
            remaining_time_human: remaining_time
                .map(|t| format!("{} of full outage left this window", human_duration(t))),
        },
        window,
        burn_rates,
        time_to_exhaustion,
        alerts,
        warnings,
        budgeting_method: method,
        unsupported: None,
    })
}

/// For a latency SLI with no data: names the `le` bounds the histogram does have, when the
/// threshold's bucket is missing.
fn latency_bucket_warning(
    engine: &Engine,
    src: &dyn SeriesSource,
    good_query: &str,
    now_ms: i64,
    over: Duration,
) -> Option<String> {
    let start = good_query.find("rate(")? + 5;
    let metric_end = good_query[start..].find('{')? + start;
    let metric = &good_query[start..metric_end];
    if !metric.ends_with("_bucket") {
        return None;
    }
    let expr = format!(
        "count by (le) (last_over_time({metric}[{}]))",
        format_duration(over)
    );
    let parsed = parse(&expr).ok()?;
    let res = engine.instant_query(src, &expr, &parsed, now_ms).ok()?;
    let Value::Vector(v) = res.value else {
        return None;
    };
    if v.is_empty() {
        return Some(format!("no {metric} series found"));
    }
    let mut les: Vec<String> = v
        .iter()
        .filter_map(|s| s.labels.get("le").map(str::to_owned))
        .collect();
    les.sort();
    Some(format!(
        "latency threshold bucket not found in {metric}; its le bounds are: {}",
        les.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::parse::{load_slo_files_with, LoadOptions};
    use sextant_query::promql::EngineOptions;
    use sextant_storage::{Db, Labels, Sample};

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    /// One SLO (99.9 %, events SLI on `req_total`), optionally with Sextant extensions.
    fn slo(extra: &str) -> SloSpec {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("slo.yml");
        let text = format!(
            r#"version: "prometheus/v1"
service: api
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(req_total{{code="500"}}[{{{{.window}}}}]))
        total_query: sum(rate(req_total[{{{{.window}}}}]))
    alerting:
      name: ApiErrors
{extra}"#
        );
        if std::fs::write(&path, text).is_err() {
            panic!("write spec");
        }
        match load_slo_files_with(&[path], &LoadOptions::default()) {
            Ok(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("{other:?}"),
        }
    }

    /// Counters every minute from `from` to `to` inclusive, starting at 0: 600 requests a
    /// minute (10/s), of which `errors_at(t)` fail.
    fn load(db: &Db, from: i64, to: i64, errors_at: impl Fn(i64) -> f64) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        let (mut ok_c, mut bad_c) = (0.0, 0.0);
        let mut t = from;
        while t <= to {
            if t > from {
                let e = errors_at(t);
                bad_c += e;
                ok_c += 600.0 - e;
            }
            ok.push(Sample { t, v: ok_c });
            bad.push(Sample { t, v: bad_c });
            t += MIN;
        }
        let batch = vec![
            (
                Labels::from_pairs([("__name__", "req_total"), ("code", "200")]),
                ok,
            ),
            (
                Labels::from_pairs([("__name__", "req_total"), ("code", "500")]),
                bad,
            ),
        ];
        if let Err(e) = db.append(&batch) {
            panic!("append: {e}");
        }
    }

    fn close(a: Option<f64>, b: f64, rel: f64) -> bool {
        a.is_some_and(|a| ((a - b) / b).abs() <= rel)
    }

    const NOW: i64 = 1_710_115_200_000; // 2024-03-11T00:00:00Z

    #[test]
    fn one_hour_at_one_percent_consumes_the_workbook_fraction() {
        let db = Db::in_memory();
        let start = NOW - 30 * DAY + MIN;
        // 1 % errors from 3h to 2h before now.
        load(&db, start, NOW, |t| {
            if t > NOW - 180 * MIN && t <= NOW - 120 * MIN {
                6.0
            } else {
                0.0
            }
        });
        let alert = |slo: &str| {
            (
                Labels::from_pairs([
                    ("__name__", "ALERTS"),
                    ("alertname", "ApiErrors"),
                    ("alertstate", "firing"),
                    ("sloth_service", "api"),
                    ("sloth_slo", slo),
                    ("sloth_severity", "ticket"),
                ]),
                vec![Sample {
                    t: NOW - 30_000,
                    v: 1.0,
                }],
            )
        };
        if db.append(&[alert("availability"), alert("other")]).is_err() {
            panic!("append alerts");
        }
        let engine = Engine::new(EngineOptions::default());
        let s = slo("");
        let st = match slo_state(&engine, &db, &s, NOW) {
            Ok(st) => st,
            Err(e) => panic!("{e}"),
        };
        // 1h × 1 % / (30d × 0.1 %) = 1/72. The samples cover 30d − 1m, which rate() does
        // not extrapolate for counters starting at 0, hence the small tolerance.
        let workbook = 1.0 / 72.0;
        assert!(close(st.budget.consumed, workbook, 1e-4), "{:?}", st.budget);
        let exact = 360.0 / (600.0 * 43_199.0) / s.error_budget_ratio();
        assert!(close(st.budget.consumed, exact, 1e-9), "{:?}", st.budget);
        assert!(close(st.budget.remaining, 1.0 - exact, 1e-9));
        let secs = (1.0 - exact) * s.error_budget_ratio() * 30.0 * 86_400.0;
        assert!(close(st.budget.remaining_time, secs, 1e-9));
        assert_eq!(
            st.budget.remaining_time_human.as_deref(),
            Some("42m 36s of full outage left this window")
        );
        // Nothing failing now: SLI 1, no exhaustion.
        assert_eq!(st.sli, Some(1.0));
        assert_eq!(st.time_to_exhaustion, None);
        assert_eq!(st.burn_rates.get("1h"), Some(&Some(0.0)));
        // The 6h window holds the whole hour: ratio 1/600, burn ≈ 1.67 (the window start is
        // extrapolated for the total only, so allow 0.5 %).
        let six = st.burn_rates.get("6h").copied().flatten();
        assert!(
            close(six, 1.0 / 600.0 / s.error_budget_ratio(), 5e-3),
            "{six:?}"
        );
        assert_eq!(st.burn_rates.len(), 8, "{:?}", st.burn_rates.keys());
        assert_eq!(st.alerts.len(), 1, "{:?}", st.alerts);
        assert_eq!(st.alerts[0].severity, "ticket");
        assert_eq!(st.alerts[0].alertname, "ApiErrors");
    }

    #[test]
    fn time_to_exhaustion_follows_the_current_error_ratio() {
        let db = Db::in_memory();
        let start = NOW - 30 * DAY + MIN;
        // 0.5 % errors during the last 30 minutes only.
        load(
            &db,
            start,
            NOW,
            |t| if t > NOW - 30 * MIN { 3.0 } else { 0.0 },
        );
        let engine = Engine::new(EngineOptions::default());
        let s = slo("");
        let st = match slo_state(&engine, &db, &s, NOW) {
            Ok(st) => st,
            Err(e) => panic!("{e}"),
        };
        assert!(close(st.error_ratio, 0.005, 1e-9), "{:?}", st.error_ratio);
        assert!(close(st.sli, 0.995, 1e-9));
        let remaining = st.budget.remaining_time.unwrap_or(f64::NAN);
        assert!(close(st.time_to_exhaustion, remaining / 0.005, 1e-9));
        assert!(st.alerts.is_empty());
    }

    #[test]
    fn calendar_month_resets_the_budget_at_the_boundary() {
        let db = Db::in_memory();
        let feb20 = NOW - 20 * DAY;
        let mar1 = NOW - 10 * DAY; // 2024-03-01T00:00Z
                                   // A full outage on Feb 25 (previous month) and 1 % for an hour on Mar 5.
        load(&db, feb20, NOW, |t| {
            if t > mar1 - 5 * DAY && t <= mar1 - 5 * DAY + 60 * MIN {
                600.0
            } else if t > mar1 + 4 * DAY && t <= mar1 + 4 * DAY + 60 * MIN {
                6.0
            } else {
                0.0
            }
        });
        let engine = Engine::new(EngineOptions::default());
        let s = slo("    calendar: {unit: month, time_zone: UTC}\n");
        let st = match slo_state(&engine, &db, &s, NOW) {
            Ok(st) => st,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(st.window.kind, "calendar");
        assert_eq!(st.window.start, mar1 as f64 / 1000.0);
        assert_eq!(st.window.seconds, 31.0 * 86_400.0);
        // Only March counts: 1h × 1 % over a 31-day month at 0.1 %.
        let expected = 0.01 / (31.0 * 24.0 * 0.001);
        assert!(close(st.budget.consumed, expected, 1e-3), "{:?}", st.budget);
        assert!(st.burn_rates.contains_key("month"));
    }

    #[test]
    fn latency_slo_without_its_bucket_says_which_bounds_exist() {
        let db = Db::in_memory();
        let series = |le: &str, v: f64| {
            (
                Labels::from_pairs([("__name__", "lat_bucket"), ("job", "api"), ("le", le)]),
                vec![
                    Sample {
                        t: NOW - 2 * MIN,
                        v: 0.0,
                    },
                    Sample { t: NOW - MIN, v },
                ],
            )
        };
        let count = (
            Labels::from_pairs([("__name__", "lat_count"), ("job", "api")]),
            vec![
                Sample {
                    t: NOW - 2 * MIN,
                    v: 0.0,
                },
                Sample {
                    t: NOW - MIN,
                    v: 100.0,
                },
            ],
        );
        if db
            .append(&[
                series("0.25", 90.0),
                series("0.5", 99.0),
                series("+Inf", 100.0),
                count,
            ])
            .is_err()
        {
            panic!("append");
        }
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("lat.yml");
        let spec = r#"version: "prometheus/v1"
service: api
slos:
  - name: latency
    objective: 99
    period: 1h
    sli:
      latency: {histogram: lat, selector: '{job="api"}', threshold: 0.3}
    alerting: {page_alert: {disable: true}, ticket_alert: {disable: true}}
"#;
        if std::fs::write(&path, spec).is_err() {
            panic!("write");
        }
        let s = match load_slo_files_with(std::slice::from_ref(&path), &LoadOptions::default()) {
            Ok(mut v) => v.remove(0),
            Err(e) => panic!("{e:?}"),
        };
        let engine = Engine::new(EngineOptions::default());
        let st = match slo_state(&engine, &db, &s, NOW) {
            Ok(st) => st,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(st.budget.consumed, None);
        assert!(
            st.warnings.iter().any(|w| w.contains("+Inf, 0.25, 0.5")),
            "{:?}",
            st.warnings
        );
        // With an existing bound the SLI is 1 − bucket/count.
        let text = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .replace("0.3", "0.25");
        if std::fs::write(&path, text).is_err() {
            panic!("write");
        }
        let s = match load_slo_files_with(&[path], &LoadOptions::default()) {
            Ok(mut v) => v.remove(0),
            Err(e) => panic!("{e:?}"),
        };
        let st = match slo_state(&engine, &db, &s, NOW) {
            Ok(st) => st,
            Err(e) => panic!("{e}"),
        };
        assert!(
            close(
                st.burn_rates.get("1h").copied().flatten(),
                0.1 / s.error_budget_ratio(),
                1e-9
            ),
            "{:?}",
            st.burn_rates
        );
    }

    /// An OpenSLO v1 SLO on `req_total` (bad/total, 99 % over a rolling day) with `method`.
    fn timeslice_slo(method: &str) -> SloSpec {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("ts.yaml");
        let text = format!(
            r#"apiVersion: openslo/v1
kind: SLO
metadata: {{name: api}}
spec:
  service: shop
  indicator:
    metadata: {{name: errors}}
    spec:
      ratioMetric:
        bad: {{metricSource: {{type: Prometheus, spec: {{query: 'sum(rate(req_total{{code="500"}}[{{{{.window}}}}]))'}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: 'sum(rate(req_total[{{{{.window}}}}]))'}}}}}}
  timeWindow: [{{duration: 1d, isRolling: true}}]
  budgetingMethod: {method}
  objectives: [{{target: 0.99, timeSliceTarget: 0.95, timeSliceWindow: 1m}}]
"#
        );
        if std::fs::write(&path, text).is_err() {
            panic!("write spec");
        }
        match load_slo_files_with(&[path], &LoadOptions::default()) {
            Ok(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("{other:?}"),
        }
    }

    /// One day of 10 s samples ending at NOW, 1 request/s: 6 minutes at 10 % errors
    /// (25–31 min ago), an hour of minutes with one error in 60 requests (2–3 h ago, 2 %
    /// of what a 1m rate sees), four idle hours (6–10 h ago), no errors otherwise. Counters
    /// start high so `rate` extrapolates both series alike.
    fn timeslice_day(db: &Db) {
        const S: i64 = 10_000;
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        let (mut ok_c, mut bad_c) = (1e7, 1e6);
        let mut t = NOW - DAY;
        while t <= NOW {
            let idle = t > NOW - 600 * MIN && t <= NOW - 360 * MIN;
            let burst = t > NOW - 31 * MIN && t <= NOW - 25 * MIN;
            let trickle = t > NOW - 180 * MIN && t <= NOW - 120 * MIN && t % MIN == 30_000;
            let errors = if !idle && (burst || trickle) {
                1.0
            } else {
                0.0
            };
            if !idle {
                bad_c += errors;
                ok_c += 10.0 - errors;
            }
            ok.push(Sample { t, v: ok_c });
            bad.push(Sample { t, v: bad_c });
            t += S;
        }
        let batch = vec![
            (
                Labels::from_pairs([("__name__", "req_total"), ("code", "200")]),
                ok,
            ),
            (
                Labels::from_pairs([("__name__", "req_total"), ("code", "500")]),
                bad,
            ),
        ];
        if let Err(e) = db.append(&batch) {
            panic!("append: {e}");
        }
    }

    #[test]
    fn timeslices_budget_is_the_fraction_of_bad_slices() {
        let db = Db::in_memory();
        timeslice_day(&db);
        let engine = Engine::new(EngineOptions::default());
        let s = timeslice_slo("Timeslices");
        let st = match slo_state(&engine, &db, &s, NOW) {
            Ok(st) => st,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(st.budgeting_method, "Timeslices");
        // 1440 slices, 240 idle (not counted), 6 bad (10 % > 5 %); the 2 % minutes are good.
        // 6/1200 = 0.5 % bad slices against a 1 % budget: half of it spent.
        assert!(close(st.budget.consumed, 0.5, 1e-9), "{:?}", st.budget);
        assert!(close(st.budget.remaining, 0.5, 1e-9));
        // Half the budget is 0.5 % of a day: 432 s of full outage.
        assert!(close(st.budget.remaining_time, 432.0, 1e-9));
        // Over the last hour 6 of 60 slices are bad: burn rate 10; none in the last 5m.
        assert!(close(
            st.burn_rates.get("1h").copied().flatten(),
            10.0,
            1e-9
        ));
        assert_eq!(st.burn_rates.get("5m"), Some(&Some(0.0)));
        assert_eq!(st.error_ratio, Some(0.0));

        // The generated rules give the same period ratio: record the per-slice indicator at
        // each slice end as its 1m group would, then evaluate the period recording.
        let groups = crate::slo::rule_groups(std::slice::from_ref(&s));
        let rule = |name: &str| {
            groups
                .iter()
                .flat_map(|g| g.rules.iter())
                .find(|r| r.kind == crate::rules::RuleKind::Record(name.into()))
                .map(|r| (r.expr.clone(), r.labels.clone()))
        };
        let Some((ind, labels)) = rule("slo:timeslice_error:ratio") else {
            panic!("no indicator rule")
        };
        let mut samples = Vec::new();
        let mut t = NOW - DAY + MIN;
        while t <= NOW {
            let v = scalar_of(&engine, &db, &ind, t).unwrap_or_else(|e| panic!("{e}"));
            if let Some(v) = v {
                samples.push(Sample { t, v });
            }
            t += MIN;
        }
        assert_eq!(samples.len(), 1200);
        assert_eq!(samples.iter().filter(|s| s.v == 1.0).count(), 6);
        let mut pairs: Vec<(&str, &str)> = vec![("__name__", "slo:timeslice_error:ratio")];
        pairs.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Err(e) = db.append(&[(Labels::from_pairs(pairs), samples)]) {
            panic!("append: {e}");
        }
        let Some((period_expr, _)) = rule("slo:sli_error:ratio_rate1d") else {
            panic!("no period rule")
        };
        let recorded = scalar_of(&engine, &db, &period_expr, NOW).unwrap_or_else(|e| panic!("{e}"));
        assert!(close(recorded, 0.005, 1e-9), "{recorded:?}");
    }

    #[test]
    fn ratio_timeslices_budget_is_the_mean_slice_error_ratio() {
        let db = Db::in_memory();
        timeslice_day(&db);
        let engine = Engine::new(EngineOptions::default());
        let s = timeslice_slo("RatioTimeslices");
        let st = match slo_state(&engine, &db, &s, NOW) {
            Ok(st) => st,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(st.budgeting_method, "RatioTimeslices");
        // (6 × 10 % + 60 × 2 %) / 1200 slices = 0.15 % against 1 %: 15 % spent.
        assert!(close(st.budget.consumed, 0.15, 1e-9), "{:?}", st.budget);
        // Last hour: 6 × 10 % / 60 = 1 %, burn 1.
        assert!(close(st.burn_rates.get("1h").copied().flatten(), 1.0, 1e-9));
    }
}
