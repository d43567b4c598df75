//! OpenSLO `openslo/v1` and `openslo.com/v2alpha` objects (`SLO`, `SLI`, `DataSource`,
//! `Service`, `AlertPolicy`, `AlertCondition`, `AlertNotificationTarget`), read as YAML values
//! because the two versions spell the same things differently (v1 `indicator` +
//! `metricSource{metricSourceRef,type,spec}`, v2alpha `sli` + `{dataSourceRef|dataSourceSpec,
//! spec}`; v1 `service`, v2alpha `serviceRef`).
//!
//! Objects are collected over the whole load, then SLOs are resolved: an `indicatorRef`/`sliRef`
//! names an `SLI`, a `metricSourceRef`/`dataSourceRef` without a `type` takes the type of the
//! `DataSource` of that name. An SLO whose metrics are not Prometheus queries (Datadog,
//! AppDynamics, an unresolvable reference) or whose indicator is a `thresholdMetric` is still
//! loaded, with [`Sli::Unsupported`] and a load warning: no rules are generated for it.
//! Alert policies, conditions and notification targets are accepted and reported as not used
//! (Sextant alerts with the SLO's multi-window burn-rate windows); `Service` only names.
//!
//! Queries without `{{.window}}` are taken as OpenSLO intends them, as values over time: with
//! `counter: true` a cumulative counter whose increase over the window is used
//! (`increase((q)[w:])`), otherwise a value averaged over the window (`avg_over_time((q)[w:])`).

use std::collections::HashMap;
use std::time::Duration;

use serde_yaml::Value;

use super::calendar::{check_time_zone, parse_anchor};
use super::parse::{openslo_spec, LoadOptions};
use super::spec::{
    parse_duration, AlignedUnit, BudgetingMethod, CalendarUnit, Period, Sli, SloSpec, SpecKind,
};

/// Anchor of calendar windows without a `startTime`: a Monday at local midnight, so weeks are
/// ISO weeks and days start at midnight.
const DEFAULT_ANCHOR: &str = "1970-01-05T00:00:00";

/// One OpenSLO object of a load, before resolution.
pub(super) enum Object {
    Slo {
        file: String,
        v2: bool,
        doc: Value,
    },
    Sli {
        name: String,
        spec: Value,
    },
    DataSource {
        name: String,
        kind: String,
    },
    /// Accepted, not evaluated (alert policies and friends; services).
    Other {
        file: String,
        kind: String,
        name: String,
    },
}

/// SLOs, errors and warnings of the OpenSLO objects of one load.
#[derive(Default)]
pub(super) struct Resolved {
    pub slos: Vec<SloSpec>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn metadata_name(v: &Value) -> Result<String, String> {
    match v.get("metadata").and_then(|m| s(m, "name")) {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err("metadata.name is required".into()),
    }
}

/// Reads one object; `api` is `openslo/v1` or `openslo.com/v2alpha`.
pub(super) fn object(file: &str, api: &str, kind: &str, v: Value) -> Result<Object, String> {
    let name = metadata_name(&v).map_err(|e| format!("{kind}: {e}"))?;
    let spec = v.get("spec").cloned().unwrap_or(Value::Null);
    if !spec.is_mapping() {
        return Err(format!("{kind} {name:?}: `spec` must be a mapping"));
    }
    Ok(match kind {
        "SLO" => Object::Slo {
            file: file.to_string(),
            v2: api != "openslo/v1",
            doc: v,
        },
        "SLI" => Object::Sli { name, spec },
        "DataSource" => Object::DataSource {
            kind: s(&spec, "type").unwrap_or("").to_string(),
            name,
        },
        "Service" | "AlertPolicy" | "AlertCondition" | "AlertNotificationTarget" => {
            if kind == "AlertCondition" {
                let c = spec.get("condition");
                match c.and_then(|c| s(c, "kind")) {
                    Some("burnrate") => {}
                    other => {
                        return Err(format!(
                            "AlertCondition {name:?}: condition kind {other:?} is not burnrate"
                        ))
                    }
                }
            }
            Object::Other {
                file: file.to_string(),
                kind: kind.to_string(),
                name,
            }
        }
        k => return Err(format!("unsupported OpenSLO kind {k:?} ({api})")),
    })
}

/// Resolves references across `objects` and turns every SLO objective into a [`SloSpec`].
pub(super) fn resolve(objects: Vec<Object>, opts: &LoadOptions) -> Resolved {
    let mut out = Resolved::default();
    let mut slis: HashMap<String, Value> = HashMap::new();
    let mut sources: HashMap<String, String> = HashMap::new();
    for o in &objects {
        match o {
            Object::Sli { name, spec } => {
                slis.insert(name.clone(), spec.clone());
            }
            Object::DataSource { name, kind } => {
                sources.insert(name.clone(), kind.clone());
            }
            Object::Other { file, kind, name } if kind != "Service" => out.warnings.push(format!(
                "{file}: OpenSLO {kind} {name:?} is accepted but not used: Sextant alerts on \
                 SLOs with their multi-window burn-rate windows"
            )),
            _ => {}
        }
    }
    for o in objects {
        let Object::Slo { file, v2, doc } = o else {
            continue;
        };
        match slo(&file, v2, &doc, &slis, &sources, opts, &mut out.warnings) {
            Ok(specs) => {
                for sp in &specs {
                    if let Some(r) = sp.unsupported() {
                        out.warnings.push(format!(
                            "{file}: SLO {:?} is loaded but cannot be evaluated: {r}",
                            sp.name
                        ));
                    }
                }
                out.slos.extend(specs);
            }
            Err(e) => out.errors.push(format!("{file}: {e}")),
        }
    }
    out
}

fn slo(
    file: &str,
    v2: bool,
    doc: &Value,
    slis: &HashMap<String, Value>,
    sources: &HashMap<String, String>,
    opts: &LoadOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<SloSpec>, String> {
    let name = metadata_name(doc)?;
    let ctx = |e: String| format!("SLO {name:?}: {e}");
    let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
    let service = s(&spec, "service")
        .or_else(|| s(&spec, "serviceRef"))
        .ok_or_else(|| ctx("`service` is required".into()))?;
    let description = s(&spec, "description").unwrap_or("");
    let inline = spec.get("indicator").or_else(|| spec.get("sli"));
    let sli_spec = match inline {
        Some(i) => i
            .get("spec")
            .cloned()
            .ok_or_else(|| ctx("inline indicator has no `spec`".into()))?,
        None => {
            let r = s(&spec, "indicatorRef")
                .or_else(|| s(&spec, "sliRef"))
                .ok_or_else(|| ctx("needs an indicator or an indicatorRef".into()))?;
            slis.get(r)
                .cloned()
                .ok_or_else(|| ctx(format!("indicatorRef {r:?} names no SLI of this load")))?
        }
    };
    let sli = indicator(&sli_spec, v2, sources).map_err(ctx)?;
    let period = match spec.get("timeWindow").and_then(|w| w.get(0)) {
        Some(w) => time_window(w, opts).map_err(ctx)?,
        None => Period::Rolling(opts.default_period),
    };
    let method = s(&spec, "budgetingMethod").unwrap_or("");
    if spec
        .get("alertPolicies")
        .and_then(Value::as_sequence)
        .is_some_and(|p| !p.is_empty())
    {
        warnings.push(format!(
            "{file}: SLO {name:?}: alertPolicies are accepted but not used: Sextant alerts with \
             the multi-window burn-rate windows"
        ));
    }
    let objectives = spec
        .get("objectives")
        .and_then(Value::as_sequence)
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ctx("needs at least one objective".into()))?;
    let mut out = Vec::new();
    for (i, o) in objectives.iter().enumerate() {
        let f = |k: &str| o.get(k).and_then(Value::as_f64);
        let objective = match (f("target"), f("targetPercent")) {
            (Some(t), _) => t * 100.0,
            (None, Some(p)) => p,
            (None, None) => return Err(ctx("objective needs `target` or `targetPercent`".into())),
        };
        let budgeting = budgeting(method, f("timeSliceTarget"), s(o, "timeSliceWindow"))
            .map_err(|e| ctx(format!("objective {i}: {e}")))?;
        out.push(openslo_spec(
            file,
            if v2 {
                SpecKind::OpenSloV2Alpha
            } else {
                SpecKind::OpenSloV1
            },
            service,
            format!("{name}-{i}"),
            description,
            objective,
            sli.clone(),
            period.clone(),
            budgeting,
        ));
    }
    Ok(out)
}

/// A query or the reason it cannot be evaluated.
enum Query {
    Prom(String),
    Unsupported(String),
}

/// The query of one metric (`good`, `bad`, `total`, `raw`, a threshold metric).
fn metric(m: &Value, v2: bool, sources: &HashMap<String, String>) -> Result<Query, String> {
    // v1: {metricSource: {metricSourceRef, type, spec}}; v2alpha: {dataSourceRef |
    // dataSourceSpec: {type}, spec}.
    let (spec, reference, kind) = if v2 {
        (
            m.get("spec"),
            s(m, "dataSourceRef"),
            m.get("dataSourceSpec").and_then(|d| s(d, "type")),
        )
    } else {
        let src = m
            .get("metricSource")
            .ok_or_else(|| "metric has no `metricSource`".to_string())?;
        (src.get("spec"), s(src, "metricSourceRef"), s(src, "type"))
    };
    let kind = match (kind, reference) {
        (Some(k), _) if !k.is_empty() => k.to_string(),
        (_, Some(r)) => match sources.get(r) {
            Some(k) => k.clone(),
            None => {
                return Ok(Query::Unsupported(format!(
                    "metric source {r:?} names no DataSource of this load and has no type"
                )))
            }
        },
        _ => return Ok(Query::Unsupported("metric source has no type".into())),
    };
    if !kind.eq_ignore_ascii_case("prometheus") {
        return Ok(Query::Unsupported(format!(
            "metric source type {kind:?} is not Prometheus (Sextant evaluates PromQL only)"
        )));
    }
    match spec.and_then(|sp| s(sp, "query")) {
        Some(q) if !q.trim().is_empty() => Ok(Query::Prom(q.to_string())),
        _ => Err("Prometheus metric source spec has no `query`".into()),
    }
}

/// Gives a query without `{{.window}}` one (see the module docs).
fn windowed(q: &str, counter: bool) -> String {
    if q.contains("{{") {
        return q.to_string();
    }
    let f = if counter { "increase" } else { "avg_over_time" };
    format!("{f}(({})[{{{{.window}}}}:])", q.trim())
}

/// The SLI of an OpenSLO `SLI` spec.
fn indicator(spec: &Value, v2: bool, sources: &HashMap<String, String>) -> Result<Sli, String> {
    if let Some(t) = spec.get("thresholdMetric") {
        // Read it anyway so a malformed one is still an error.
        let why = match metric(t, v2, sources)? {
            Query::Unsupported(r) => r,
            Query::Prom(_) => {
                "thresholdMetric indicators are not supported (only ratioMetric)".to_string()
            }
        };
        return Ok(Sli::Unsupported { reason: why });
    }
    let Some(r) = spec.get("ratioMetric") else {
        return Err("the indicator needs a ratioMetric or a thresholdMetric".into());
    };
    let counter = r.get("counter").and_then(Value::as_bool).unwrap_or(false);
    let q = |key: &str| -> Result<Option<Query>, String> {
        r.get(key).map(|m| metric(m, v2, sources)).transpose()
    };
    let (good, bad, total, raw) = (q("good")?, q("bad")?, q("total")?, q("raw")?);
    let prom = |x: Option<Query>| -> Result<Option<String>, String> {
        match x {
            None => Ok(None),
            Some(Query::Prom(p)) => Ok(Some(windowed(&p, counter))),
            Some(Query::Unsupported(r)) => Err(r),
        }
    };
    let unsupported = |reason| Ok(Sli::Unsupported { reason });
    if raw.is_some() {
        let raw = match prom(raw) {
            Ok(Some(r)) => r,
            Ok(None) => return Err("raw metric missing".into()),
            Err(reason) => return unsupported(reason),
        };
        return match s(r, "rawType").unwrap_or("failure") {
            "failure" => Ok(Sli::Raw {
                error_ratio_query: raw,
            }),
            "success" => Ok(Sli::Raw {
                error_ratio_query: format!("1 - ({raw})"),
            }),
            t => Err(format!("rawType {t:?} is not success or failure")),
        };
    }
    if good.is_some() == bad.is_some() {
        return Err("ratioMetric needs exactly one of `good` and `bad` (or `raw`)".into());
    }
    let (good, bad, total) = match (prom(good), prom(bad), prom(total)) {
        (Ok(g), Ok(b), Ok(Some(t))) => (g, b, t),
        (Ok(_), Ok(_), Ok(None)) => return Err("ratioMetric needs `total`".into()),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return unsupported(r),
    };
    Ok(match (good, bad) {
        (Some(good_query), _) => Sli::GoodTotal {
            good_query,
            total_query: total,
        },
        (None, Some(error_query)) => Sli::Events {
            error_query,
            total_query: total,
        },
        (None, None) => return Err("ratioMetric needs `good` or `bad`".into()),
    })
}

/// The budgeting method of one objective (`timeSliceWindow` defaults to 1m when missing).
pub(super) fn budgeting(
    method: &str,
    slice_target: Option<f64>,
    slice_window: Option<&str>,
) -> Result<BudgetingMethod, String> {
    let slice = || -> Result<Duration, String> {
        let d = parse_duration(slice_window.unwrap_or("1m"))?;
        if d.as_secs() == 0 || d.subsec_nanos() != 0 {
            return Err("timeSliceWindow must be a whole number of seconds, at least 1s".into());
        }
        Ok(d)
    };
    match method {
        "" | "Occurrences" => Ok(BudgetingMethod::Occurrences),
        "Timeslices" => {
            let t = slice_target
                .ok_or_else(|| "Timeslices budgeting needs `timeSliceTarget`".to_string())?;
            if !(t > 0.0 && t <= 1.0) {
                return Err(format!("timeSliceTarget {t} must be in (0, 1]"));
            }
            Ok(BudgetingMethod::Timeslices {
                slice: slice()?,
                slice_target: t,
            })
        }
        "RatioTimeslices" => Ok(BudgetingMethod::RatioTimeslices { slice: slice()? }),
        m => Err(format!(
            "budgetingMethod {m:?} is not Occurrences, Timeslices or RatioTimeslices"
        )),
    }
}

/// A v1/v2alpha `timeWindow` entry (`duration: 2w`, `isRolling`, `calendar`).
fn time_window(w: &Value, opts: &LoadOptions) -> Result<Period, String> {
    let dur = s(w, "duration").unwrap_or("").trim();
    let split = dur.find(|c: char| !c.is_ascii_digit()).unwrap_or(dur.len());
    let count: u32 = dur[..split]
        .parse()
        .map_err(|_| format!("invalid timeWindow duration {dur:?}"))?;
    let rolling = w.get("isRolling").and_then(Value::as_bool).unwrap_or(true);
    let cal = w.get("calendar");
    period(
        count,
        &dur[split..],
        rolling,
        cal.and_then(|c| s(c, "timeZone")),
        cal.and_then(|c| s(c, "startTime")),
        opts,
    )
}

/// An OpenSLO window: `unit` is a shorthand (`m h d w M Q Y`) or a v1alpha name (`Week`).
pub(super) fn period(
    count: u32,
    unit: &str,
    rolling: bool,
    time_zone: Option<&str>,
    start: Option<&str>,
    opts: &LoadOptions,
) -> Result<Period, String> {
    let unit = match unit {
        "Second" | "s" => "s",
        "Minute" | "m" => "m",
        "Hour" | "h" => "h",
        "Day" | "d" => "d",
        "Week" | "w" => "w",
        "Month" | "M" => "M",
        "Quarter" | "Q" => "Q",
        "Year" | "Y" => "Y",
        "" if count == 0 => return Ok(Period::Rolling(opts.default_period)),
        u => return Err(format!("time window unit {u:?} is not supported")),
    };
    if count == 0 {
        return Err("time window length must be positive".into());
    }
    let days = |d: u64| Duration::from_secs(u64::from(count) * d * 86_400);
    if rolling {
        return Ok(Period::Rolling(match unit {
            "s" => Duration::from_secs(u64::from(count)),
            "m" => Duration::from_secs(u64::from(count) * 60),
            "h" => Duration::from_secs(u64::from(count) * 3600),
            "d" => days(1),
            "w" => days(7),
            "M" => days(30),
            "Q" => days(90),
            _ => days(365),
        }));
    }
    let time_zone = time_zone.unwrap_or("UTC").to_string();
    check_time_zone(&time_zone)?;
    let calendar = |unit| {
        if count != 1 {
            return Err("calendar months, quarters and years must have a count of 1".to_string());
        }
        Ok(Period::Calendar {
            unit,
            time_zone: time_zone.clone(),
        })
    };
    let aligned = match unit {
        "M" => return calendar(CalendarUnit::Month),
        "Q" => return calendar(CalendarUnit::Quarter),
        "Y" => return calendar(CalendarUnit::Year),
        "m" => AlignedUnit::Minute,
        "h" => AlignedUnit::Hour,
        "d" => AlignedUnit::Day,
        "w" => AlignedUnit::Week,
        _ => return Err("calendar windows cannot be counted in seconds".into()),
    };
    let anchor = start.unwrap_or(DEFAULT_ANCHOR).to_string();
    parse_anchor(&anchor)?;
    Ok(Period::Aligned {
        count,
        unit: aligned,
        anchor,
        time_zone,
    })
}
