//! `GET /api/v1/slos` and `GET /api/v1/slos/{name}`: the error-budget state of the loaded SLOs
//! in Prometheus' envelope (`{"status":"success","data":…}`; errors as
//! `{"status":"error","errorType":…,"error":…}`). `{name}` is an SLO id (`<service>-<name>`) or,
//! when unambiguous, its name. `?time=<unix seconds>` evaluates at another instant.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::json;
use sextant_query::promql::Engine;
use sextant_storage::Db;

use super::budget::{slo_state, SloState};
use super::spec::SloSpec;

/// What the SLO endpoints read. `slos` is shared with whoever reloads the SLO files.
#[derive(Clone)]
pub struct SloApiState {
    pub db: Arc<Db>,
    pub engine: Arc<Engine>,
    pub slos: Arc<RwLock<Vec<SloSpec>>>,
}

/// The router serving both endpoints; merge it into the application.
pub fn slo_router(state: SloApiState) -> Router {
    Router::new()
        .route("/api/v1/slos", get(list))
        .route("/api/v1/slos/{name}", get(one))
        .with_state(state)
}

#[derive(Deserialize)]
struct TimeParam {
    time: Option<String>,
}

fn error(status: StatusCode, kind: &str, msg: String) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": kind, "error": msg})),
    )
        .into_response()
}

fn eval_time(p: &TimeParam) -> Result<i64, String> {
    match &p.time {
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)),
        Some(t) => match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok((v * 1000.0).round() as i64),
            _ => Err(format!(
                "invalid parameter \"time\": cannot parse {t:?} to a valid timestamp"
            )),
        },
    }
}

async fn states(
    state: SloApiState,
    slos: Vec<SloSpec>,
    now_ms: i64,
) -> Result<Vec<SloState>, Response> {
    let res = tokio::task::spawn_blocking(move || {
        slos.iter()
            .map(|s| slo_state(&state.engine, state.db.as_ref(), s, now_ms))
            .collect::<Result<Vec<_>, String>>()
    })
    .await;
    match res {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::UNPROCESSABLE_ENTITY, "execution", e)),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}

fn success<T: serde::Serialize>(data: T) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

async fn list(State(state): State<SloApiState>, Query(p): Query<TimeParam>) -> Response {
    let now = match eval_time(&p) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_data", e),
    };
    let slos = state.slos.read().clone();
    match states(state, slos, now).await {
        Ok(v) => success(v),
        Err(r) => r,
    }
}

async fn one(
    State(state): State<SloApiState>,
    Path(name): Path<String>,
    Query(p): Query<TimeParam>,
) -> Response {
    let now = match eval_time(&p) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_data", e),
    };
    let found: Vec<SloSpec> = {
        let all = state.slos.read();
        let by_id: Vec<SloSpec> = all.iter().filter(|s| s.id() == name).cloned().collect();
        if by_id.is_empty() {
            all.iter().filter(|s| s.name == name).cloned().collect()
        } else {
            by_id
        }
    };
    match found.len() {
        0 => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("SLO {name:?} not found"),
        ),
        1 => match states(state, found, now).await {
            Ok(v) => match v.into_iter().next() {
                Some(one) => success(one),
                None => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("SLO {name:?} not found"),
                ),
            },
            Err(r) => r,
        },
        _ => error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!(
                "SLO name {name:?} is ambiguous; use one of: {}",
                found.iter().map(SloSpec::id).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::parse::{load_slo_files_with, LoadOptions};
    use axum::body::Body;
    use axum::http::Request;
    use sextant_query::promql::EngineOptions;
    use sextant_storage::{Labels, Sample};
    use tower::ServiceExt;

    const NOW: i64 = 1_710_115_200_000;

    fn state() -> SloApiState {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("s.yml");
        let spec = r#"version: "prometheus/v1"
service: api
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(req_total{code="500"}[{{.window}}]))
        total_query: sum(rate(req_total[{{.window}}]))
    alerting: {page_alert: {disable: true}, ticket_alert: {disable: true}}
  - name: other
    objective: 99
    sli:
      raw: {error_ratio_query: 'vector(0.001)'}
    alerting: {page_alert: {disable: true}, ticket_alert: {disable: true}}
"#;
        if std::fs::write(&path, spec).is_err() {
            panic!("write");
        }
        let slos = match load_slo_files_with(&[path], &LoadOptions::default()) {
            Ok(v) => v,
            Err(e) => panic!("{e:?}"),
        };
        let db = Db::in_memory();
        // 2 % errors over the last 10 minutes.
        let mk = |code: &str, per_min: f64| {
            (
                Labels::from_pairs([("__name__", "req_total"), ("code", code)]),
                (0..=10)
                    .map(|i| Sample {
                        t: NOW - (10 - i) * 60_000,
                        v: per_min * i as f64,
                    })
                    .collect::<Vec<_>>(),
            )
        };
        if db.append(&[mk("200", 588.0), mk("500", 12.0)]).is_err() {
            panic!("append");
        }
        SloApiState {
            db: Arc::new(db),
            engine: Arc::new(Engine::new(EngineOptions::default())),
            slos: Arc::new(RwLock::new(slos)),
        }
    }

    async fn get(uri: &str) -> (StatusCode, serde_json::Value) {
        let resp = slo_router(state())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap_or_default())
            .await;
        let Ok(resp) = resp;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn lists_every_slo_with_budget_figures() {
        let (status, v) = get(&format!("/api/v1/slos?time={}", NOW / 1000)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["status"], "success");
        let data = v["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0]["id"], "api-availability");
        assert_eq!(data[0]["objective"], 0.999);
        // 2 % errors now: SLI 0.98, burn 20 over 5m.
        let sli = data[0]["sli"].as_f64().unwrap_or(f64::NAN);
        assert!((sli - 0.98).abs() < 1e-9, "{sli}");
        let burn = data[0]["burnRates"]["5m"].as_f64().unwrap_or(f64::NAN);
        assert!((burn - 20.0).abs() < 1e-6, "{burn}");
        assert_eq!(data[0]["window"]["type"], "rolling");
        assert_eq!(data[0]["window"]["seconds"], 2_592_000.0);
        assert!(data[0]["budget"]["remainingTimeHuman"]
            .as_str()
            .is_some_and(|s| s.ends_with("of full outage left this window")));
        // The period ratio is 2 % too (the only traffic there is): 20× the budget is spent,
        // so the budget is already exhausted.
        let consumed = data[0]["budget"]["consumed"].as_f64().unwrap_or(f64::NAN);
        assert!((consumed - 20.0).abs() < 1e-6, "{consumed}");
        assert_eq!(data[0]["timeToExhaustion"], 0.0);
        // Raw SLI at 0.1 % against a 1 % budget: a tenth spent, nothing failing "now" is
        // unknowable for raw SLIs beyond their ratio, which is constant here.
        let consumed = data[1]["budget"]["consumed"].as_f64().unwrap_or(f64::NAN);
        assert!((consumed - 0.1).abs() < 1e-9, "{consumed}");
    }

    #[tokio::test]
    async fn one_slo_by_id_or_name_and_errors_in_prometheus_shape() {
        let (status, v) = get(&format!("/api/v1/slos/api-other?time={}", NOW / 1000)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["data"]["name"], "other");
        let (_, v) = get(&format!("/api/v1/slos/availability?time={}", NOW / 1000)).await;
        assert_eq!(v["data"]["id"], "api-availability");
        let (status, v) = get("/api/v1/slos/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "not_found");
        let (status, v) = get("/api/v1/slos?time=yesterday").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["errorType"], "bad_data");
    }
}
