//! Alertmanager's API v2 for the built-in notifier: `GET|POST /api/v2/alerts`,
//! `GET /api/v2/alerts/groups`, `GET|POST /api/v2/silences`, `GET|DELETE /api/v2/silence/{id}`,
//! `GET /api/v2/status`, `GET /api/v2/receivers`. Shapes follow
//! Alertmanager's OpenAPI; errors are JSON strings with 400 / 404, as Alertmanager answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::dispatch::{AlertFilter, Notifier};
use super::matchers::Matchers;
use super::parse_rfc3339;
use super::silence::{PostableSilence, SilenceError};
use crate::Alert;

/// The routes, to merge into the server's router.
pub fn router(notifier: Arc<Notifier>) -> Router {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route(
            "/api/v2/status",
            get(|State(n): State<Arc<Notifier>>| async move { Json(n.status_json()) }),
        )
        .route(
            "/api/v2/receivers",
            get(|State(n): State<Arc<Notifier>>| async move {
                Json(
                    n.receiver_names()
                        .into_iter()
                        .map(|r| json!({"name": r}))
                        .collect::<Vec<_>>(),
                )
            }),
        )
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .with_state(notifier)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!(msg.into()))).into_response()
}

/// A request that fails the OpenAPI schema: 422 with go-swagger's validation error shape.
fn unprocessable(msg: String) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"code": 602, "message": msg})),
    )
        .into_response()
}

fn params(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn bool_param(ps: &[(String, String)], name: &str) -> Result<bool, String> {
    match ps.iter().rev().find(|(k, _)| k == name) {
        None => Ok(true),
        Some((_, v)) => v
            .parse::<bool>()
            .map_err(|_| format!("{name} in query should be of type boolean: {v:?}")),
    }
}

fn filter_matchers(ps: &[(String, String)]) -> Result<Matchers, String> {
    let lines: Vec<String> = ps
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.clone())
        .collect();
    Matchers::from_config(&lines, &Default::default(), &Default::default())
}

fn alert_filter(ps: &[(String, String)]) -> Result<AlertFilter, String> {
    let receiver = match ps.iter().find(|(k, _)| k == "receiver") {
        Some((_, r)) => Some(
            regex::Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| format!("failed to parse receiver param: {e}"))?,
        ),
        None => None,
    };
    Ok(AlertFilter {
        active: bool_param(ps, "active")?,
        silenced: bool_param(ps, "silenced")?,
        inhibited: bool_param(ps, "inhibited")?,
        matchers: filter_matchers(ps)?,
        receiver,
    })
}

async fn get_alerts(State(n): State<Arc<Notifier>>, RawQuery(q): RawQuery) -> Response {
    match alert_filter(&params(&q)) {
        Ok(f) => Json(n.alerts_json(&f)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn get_groups(State(n): State<Arc<Notifier>>, RawQuery(q): RawQuery) -> Response {
    match alert_filter(&params(&q)) {
        Ok(f) => Json(n.groups_json(&f)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

async fn post_alerts(State(n): State<Arc<Notifier>>, body: Bytes) -> Response {
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid alerts: {e}")),
    };
    let mut alerts = Vec::with_capacity(posted.len());
    for (i, p) in posted.into_iter().enumerate() {
        if p.labels.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                format!("alert {i}: at least one label pair required"),
            );
        }
        if let Some(bad) = p.labels.keys().find(|k| !valid_label_name(k)) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("alert {i}: invalid label set: invalid name {bad:?}"),
            );
        }
        let time = |s: &Option<String>| match s.as_deref() {
            None | Some("") => Ok(0),
            Some(t) => parse_rfc3339(t),
        };
        let (starts, ends) = match (time(&p.starts_at), time(&p.ends_at)) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(e), _) | (_, Err(e)) => {
                return error(StatusCode::BAD_REQUEST, format!("alert {i}: {e}"))
            }
        };
        if starts > 0 && ends > 0 && ends < starts {
            return error(
                StatusCode::BAD_REQUEST,
                format!("alert {i}: start time must be before end time"),
            );
        }
        alerts.push(Alert {
            labels: p.labels,
            annotations: p.annotations,
            starts_at_ms: starts,
            ends_at_ms: ends,
            generator_url: p.generator_url,
        });
    }
    n.receive(alerts);
    StatusCode::OK.into_response()
}

/// Alertmanager's (legacy) label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn get_silences(State(n): State<Arc<Notifier>>, RawQuery(q): RawQuery) -> Response {
    let ps = params(&q);
    let parsed = (|| {
        Ok::<_, String>((
            filter_matchers(&ps)?,
            bool_param(&ps, "active")?,
            bool_param(&ps, "expired")?,
            bool_param(&ps, "pending")?,
        ))
    })();
    let (matchers, active, expired, pending) = match parsed {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let now = n.now_ms();
    let mut list = n.silences().list();
    // Alertmanager's order: active, then pending, then expired; within each by end/start.
    list.sort_by_key(|s| match s.state(now) {
        "active" => (0, s.ends_at_ms),
        "pending" => (1, s.starts_at_ms),
        _ => (2, -s.ends_at_ms),
    });
    let out: Vec<_> = list
        .iter()
        .filter(|s| match s.state(now) {
            "active" => active,
            "pending" => pending,
            _ => expired,
        })
        .filter(|s| {
            // A silence passes a filter when its matchers include each filter matcher.
            matchers.0.iter().all(|f| {
                s.matchers.iter().any(|m| {
                    m.name == f.name
                        && m.value == f.value
                        && m.is_regex
                            == matches!(
                                f.op,
                                sextant_storage::MatchOp::Regex
                                    | sextant_storage::MatchOp::NotRegex
                            )
                        && m.is_equal
                            == matches!(
                                f.op,
                                sextant_storage::MatchOp::Equal | sextant_storage::MatchOp::Regex
                            )
                })
            })
        })
        .map(|s| s.to_json(now))
        .collect();
    Json(out).into_response()
}

fn silence_error(e: SilenceError) -> Response {
    match e {
        SilenceError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        SilenceError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        SilenceError::Storage(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

async fn post_silence(State(n): State<Arc<Notifier>>, body: Bytes) -> Response {
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) if e.is_data() => return unprocessable(format!("invalid silence: {e}")),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    if p.matchers.is_empty() {
        return unprocessable("matchers in body should have at least 1 items".into());
    }
    // The silence file is written and fsynced: off the async workers.
    let stored = tokio::task::spawn_blocking(move || n.silences().upsert(p, n.now_ms())).await;
    match stored {
        Ok(Ok(id)) => Json(json!({"silenceID": id})).into_response(),
        Ok(Err(e)) => silence_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_silence(State(n): State<Arc<Notifier>>, Path(id): Path<String>) -> Response {
    match n.silences().get(&id) {
        Some(s) => Json(s.to_json(n.now_ms())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence(State(n): State<Arc<Notifier>>, Path(id): Path<String>) -> Response {
    let expired = tokio::task::spawn_blocking(move || n.silences().expire(&id, n.now_ms())).await;
    match expired {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => silence_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
