//! `GET /api/v1/rules`, `GET /api/v1/alerts` and `POST /-/reload`, shaped as Prometheus shapes
//! them (`web/api/v1/api.go`) so Grafana's alert list and rule views read them unchanged.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::eval::{ActiveAlert, AlertState, GroupStatus, RuleStatus};
use super::manager::RuleManager;
use super::model::RuleKind;

/// The rules API and the reload endpoint, over `manager`.
pub fn router(manager: Arc<RuleManager>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/-/reload", post(reload).put(reload))
        .with_state(manager)
}

fn bad_data(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "error", "errorType": "bad_data", "error": msg})),
    )
        .into_response()
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Which rules `/api/v1/rules` returns.
#[derive(Debug, Default, PartialEq)]
pub struct RulesFilter {
    /// `type=alert|record`; `None` for both.
    pub kind: Option<&'static str>,
    pub rule_names: HashSet<String>,
    pub group_names: HashSet<String>,
    pub files: HashSet<String>,
    pub exclude_alerts: bool,
}

impl RulesFilter {
    /// Parses the query string (`type`, `rule_name[]`, `rule_group[]` (or `group_name[]`),
    /// `file[]`, `exclude_alerts`); errors are Prometheus' `invalid parameter` texts.
    pub fn parse(query: &str) -> Result<RulesFilter, String> {
        let mut f = RulesFilter::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "type" => {
                    f.kind = match v.to_lowercase().as_str() {
                        "" => None,
                        "alert" => Some("alert"),
                        "record" => Some("record"),
                        other => {
                            return Err(format!(
                                "invalid parameter \"type\": not supported value {other:?}"
                            ))
                        }
                    }
                }
                "rule_name[]" => {
                    f.rule_names.insert(v.into_owned());
                }
                "rule_group[]" | "group_name[]" => {
                    f.group_names.insert(v.into_owned());
                }
                "file[]" => {
                    f.files.insert(v.into_owned());
                }
                "exclude_alerts" => {
                    f.exclude_alerts = match v.as_ref() {
                        "" => false,
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        other => {
                            return Err(format!(
                                "invalid parameter \"exclude_alerts\": strconv.ParseBool: parsing {other:?}: invalid syntax"
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(f)
    }
}

/// Builds the `data` object of `/api/v1/rules`.
pub fn rules_json(groups: &[(GroupStatus, Vec<RuleStatus>)], f: &RulesFilter) -> Value {
    let rule_filtered = f.kind.is_some() || !f.rule_names.is_empty();
    let mut out = Vec::new();
    for (g, rules) in groups {
        if !f.group_names.is_empty() && !f.group_names.contains(&g.name) {
            continue;
        }
        if !f.files.is_empty() && !f.files.contains(&g.file) {
            continue;
        }
        let mut rs = Vec::new();
        for r in rules {
            let (name, kind) = match &r.kind {
                RuleKind::Alert(n) => (n, "alert"),
                RuleKind::Record(n) => (n, "record"),
            };
            if f.kind.is_some_and(|k| k != kind) {
                continue;
            }
            if !f.rule_names.is_empty() && !f.rule_names.contains(name) {
                continue;
            }
            rs.push(rule_json(name, r, f.exclude_alerts));
        }
        if rs.is_empty() && rule_filtered {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rs,
            "interval": g.interval.as_secs_f64(),
            "limit": g.limit,
            "evaluationTime": g.evaluation_time.as_secs_f64(),
            "lastEvaluation": rfc3339(g.last_evaluation_ms),
        }));
    }
    json!({ "groups": out })
}

fn rule_json(name: &str, r: &RuleStatus, exclude_alerts: bool) -> Value {
    let mut m = Map::new();
    match &r.kind {
        RuleKind::Alert(_) => {
            m.insert("state".into(), json!(r.state.as_str()));
            m.insert("name".into(), json!(name));
            m.insert("query".into(), json!(r.query));
            m.insert("duration".into(), json!(r.for_.as_secs_f64()));
            m.insert(
                "keepFiringFor".into(),
                json!(r.keep_firing_for.as_secs_f64()),
            );
            m.insert("labels".into(), json!(r.labels));
            m.insert("annotations".into(), json!(r.annotations));
            let alerts = if exclude_alerts {
                Value::Null
            } else {
                Value::Array(r.alerts.iter().map(alert_json).collect())
            };
            m.insert("alerts".into(), alerts);
        }
        RuleKind::Record(_) => {
            m.insert("name".into(), json!(name));
            m.insert("query".into(), json!(r.query));
            if !r.labels.is_empty() {
                m.insert("labels".into(), json!(r.labels));
            }
        }
    }
    m.insert("health".into(), json!(r.health.as_str()));
    if let Some(e) = &r.last_error {
        m.insert("lastError".into(), json!(e));
    }
    m.insert(
        "evaluationTime".into(),
        json!(r.evaluation_time.as_secs_f64()),
    );
    m.insert(
        "lastEvaluation".into(),
        json!(rfc3339(r.last_evaluation_ms)),
    );
    let ty = match r.kind {
        RuleKind::Alert(_) => "alerting",
        RuleKind::Record(_) => "recording",
    };
    m.insert("type".into(), json!(ty));
    Value::Object(m)
}

/// One alert as the API shows it: `value` in Go's `%e` shortest form (`1e+00`).
pub fn alert_json(a: &ActiveAlert) -> Value {
    let mut m = Map::new();
    m.insert("labels".into(), json!(a.labels));
    m.insert("annotations".into(), json!(a.annotations));
    m.insert("state".into(), json!(a.state.as_str()));
    m.insert("activeAt".into(), json!(rfc3339(Some(a.active_at_ms))));
    if let Some(k) = a.keep_firing_since_ms {
        m.insert("keepFiringSince".into(), json!(rfc3339(Some(k))));
    }
    m.insert("value".into(), json!(go_exp_float(a.value)));
    Value::Object(m)
}

/// Builds the `data` object of `/api/v1/alerts`: pending and firing alerts of every rule.
pub fn alerts_json(groups: &[(GroupStatus, Vec<RuleStatus>)]) -> Value {
    let alerts: Vec<Value> = groups
        .iter()
        .flat_map(|(_, rules)| rules.iter())
        .flat_map(|r| r.alerts.iter())
        .filter(|a| a.state != AlertState::Inactive)
        .map(alert_json)
        .collect();
    json!({ "alerts": alerts })
}

async fn rules(State(m): State<Arc<RuleManager>>, RawQuery(q): RawQuery) -> Response {
    let filter = match RulesFilter::parse(q.as_deref().unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return bad_data(e),
    };
    success(rules_json(&m.snapshot(), &filter))
}

async fn alerts(State(m): State<Arc<RuleManager>>) -> Response {
    success(alerts_json(&m.snapshot()))
}

async fn reload(State(m): State<Arc<RuleManager>>) -> Response {
    match m.reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: shortest digits, exponent sign and at least two
/// exponent digits (`1e+00`, `2.5e-07`).
pub fn go_exp_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// RFC 3339 in UTC with the fractional seconds Go's `RFC3339Nano` prints (trailing zeros
/// trimmed); `None` is Go's zero time, `0001-01-01T00:00:00Z`.
pub fn rfc3339(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "0001-01-01T00:00:00Z".into();
    };
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::rules::eval::RuleHealth;

    fn label_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn formats() {
        assert_eq!(go_exp_float(1.0), "1e+00");
        assert_eq!(go_exp_float(0.00025), "2.5e-04");
        assert_eq!(go_exp_float(123456.0), "1.23456e+05");
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_700_000_000_120)), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339(Some(951_782_400_000)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn filter_parsing() {
        let f = RulesFilter::parse("type=ALERT&rule_name[]=a&rule_name[]=b&rule_group[]=g&file[]=x.yml&exclude_alerts=true")
            .expect("parse");
        assert_eq!(f.kind, Some("alert"));
        assert_eq!(f.rule_names.len(), 2);
        assert!(f.group_names.contains("g") && f.files.contains("x.yml") && f.exclude_alerts);
        assert_eq!(
            RulesFilter::parse("type=foo").err().as_deref(),
            Some("invalid parameter \"type\": not supported value \"foo\"")
        );
        assert!(RulesFilter::parse("exclude_alerts=maybe").is_err());
    }

    fn sample() -> Vec<(GroupStatus, Vec<RuleStatus>)> {
        let alert = ActiveAlert {
            labels: label_map(&[("alertname", "A"), ("job", "x")]),
            annotations: label_map(&[("summary", "s")]),
            state: AlertState::Firing,
            value: 1.0,
            active_at_ms: 1000,
            fired_at_ms: Some(2000),
            resolved_at_ms: None,
            last_sent_at_ms: None,
            valid_until_ms: None,
            keep_firing_since_ms: None,
        };
        let base = RuleStatus {
            kind: RuleKind::Alert("A".into()),
            query: "up == 0".into(),
            for_: Duration::from_secs(300),
            keep_firing_for: Duration::ZERO,
            labels: label_map(&[("severity", "page")]),
            annotations: label_map(&[("summary", "s")]),
            health: RuleHealth::Ok,
            last_error: None,
            last_evaluation_ms: Some(60_000),
            evaluation_time: Duration::from_millis(2),
            state: AlertState::Firing,
            alerts: vec![alert],
        };
        let rec = RuleStatus {
            kind: RuleKind::Record("r".into()),
            query: "sum(up)".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            health: RuleHealth::Err,
            last_error: Some("boom".into()),
            state: AlertState::Inactive,
            alerts: vec![],
            ..base.clone()
        };
        vec![(
            GroupStatus {
                name: "g".into(),
                file: "f.yml".into(),
                interval: Duration::from_secs(60),
                limit: 0,
                last_evaluation_ms: Some(60_000),
                evaluation_time: Duration::from_millis(3),
            },
            vec![base, rec],
        )]
    }

    #[test]
    fn rules_json_shape_and_filters() {
        let groups = sample();
        let all = rules_json(&groups, &RulesFilter::default());
        assert_eq!(
            all["groups"][0]["rules"][0],
            json!({
                "state": "firing", "name": "A", "query": "up == 0", "duration": 300.0,
                "keepFiringFor": 0.0, "labels": {"severity": "page"},
                "annotations": {"summary": "s"},
                "alerts": [{"labels": {"alertname": "A", "job": "x"},
                            "annotations": {"summary": "s"}, "state": "firing",
                            "activeAt": "1970-01-01T00:00:01Z", "value": "1e+00"}],
                "health": "ok", "evaluationTime": 0.002,
                "lastEvaluation": "1970-01-01T00:01:00Z", "type": "alerting"
            })
        );
        assert_eq!(
            all["groups"][0]["rules"][1],
            json!({"name": "r", "query": "sum(up)", "health": "err", "lastError": "boom",
                   "evaluationTime": 0.002, "lastEvaluation": "1970-01-01T00:01:00Z",
                   "type": "recording"})
        );
        assert_eq!(all["groups"][0]["interval"], json!(60.0));
        let rec = rules_json(&groups, &RulesFilter::parse("type=record").expect("f"));
        assert_eq!(rec["groups"][0]["rules"].as_array().map(Vec::len), Some(1));
        let none = rules_json(&groups, &RulesFilter::parse("rule_name[]=zzz").expect("f"));
        assert_eq!(none["groups"], json!([]));
        let other_file = rules_json(&groups, &RulesFilter::parse("file[]=other").expect("f"));
        assert_eq!(other_file["groups"], json!([]));
        let ex = rules_json(&groups, &RulesFilter::parse("exclude_alerts=1").expect("f"));
        assert_eq!(ex["groups"][0]["rules"][0]["alerts"], Value::Null);
        let alerts = alerts_json(&groups);
        assert_eq!(alerts["alerts"].as_array().map(Vec::len), Some(1));
        assert_eq!(alerts["alerts"][0]["state"], "firing");
    }
}
