//! Integration tests of the API router: requests go through `tower::ServiceExt::oneshot`
//! against an in-memory database, and bodies are compared as exact JSON text.

mod metadata;
mod query;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use sextant_storage::{Db, Labels, MetricMetadata, Sample};
use tower::ServiceExt;

use super::{router, ApiState, ServerInfo};
use crate::promql::{Engine, EngineOptions};

/// Series used by every test: three `up`, one counter, one label with a dot in its name.
/// Samples every 15s from t=0 to t=60s with values 0..=4 (times 10 for the counter).
fn test_db() -> Db {
    let db = Db::in_memory();
    let series = |pairs: &[(&str, &str)], scale: f64| {
        let labels = Labels::from_pairs(pairs.iter().copied());
        let samples = (0..5)
            .map(|i| Sample {
                t: i * 15_000,
                v: i as f64 * scale,
            })
            .collect();
        (labels, samples)
    };
    let batch = vec![
        series(
            &[("__name__", "up"), ("job", "api"), ("instance", "a")],
            1.0,
        ),
        series(
            &[("__name__", "up"), ("job", "api"), ("instance", "b")],
            1.0,
        ),
        series(
            &[("__name__", "up"), ("job", "node"), ("instance", "c")],
            1.0,
        ),
        series(
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("code", "200"),
            ],
            10.0,
        ),
        series(&[("__name__", "dotted"), ("foo.bar", "x")], 1.0),
    ];
    if let Err(e) = db.append(&batch) {
        panic!("append failed: {e}");
    }
    // Exemplars on `up{instance="a"}` (t=1.5s and 30s) and on the counter (t=45.001s).
    let ex = |trace: &str, value: f64, t: i64| sextant_storage::Exemplar {
        labels: Labels::from_pairs([("trace_id", trace)]),
        value,
        t,
    };
    let up_a = batch[0].0.clone();
    let requests = batch[3].0.clone();
    let (ex_up, ex_req) = (
        vec![ex("aa", 1.0, 1_500), ex("bb", 0.25, 30_000)],
        vec![ex("cc", 1e-7, 45_001)],
    );
    if let Err(e) =
        db.append_exemplars([(&up_a, ex_up.as_slice()), (&requests, ex_req.as_slice())].into_iter())
    {
        panic!("append_exemplars failed: {e}");
    }
    db.set_metadata(
        "up",
        MetricMetadata {
            metric_type: "gauge".into(),
            help: "Whether the target is up.".into(),
            unit: String::new(),
        },
    );
    db.set_metadata(
        "http_requests_total",
        MetricMetadata {
            metric_type: "counter".into(),
            help: "Requests <served>.".into(),
            unit: "requests".into(),
        },
    );
    db
}

fn test_info() -> ServerInfo {
    ServerInfo {
        version: "2.53.0".into(),
        revision: "abc123".into(),
        branch: "main".into(),
        build_user: "ci@sextant".into(),
        build_date: "20240501-10:00:00".into(),
        go_version: "rustc 1.85.0".into(),
        start_time: UNIX_EPOCH + Duration::from_millis(1_714_557_600_250),
        config_yaml: "global:\n  scrape_interval: 15s\n".into(),
        flags: BTreeMap::from([("web.listen-address".to_string(), ":9090".to_string())]),
        data_dir: "/data".into(),
        storage_retention: "15d".into(),
        max_points_per_series: 11_000,
    }
}

fn app_with(opts: EngineOptions) -> Router {
    router(Arc::new(ApiState {
        db: Arc::new(test_db()),
        engine: Arc::new(Engine::new(opts)),
        info: test_info(),
    }))
}

fn app() -> Router {
    app_with(EngineOptions::default())
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = match app.oneshot(req).await {
        Ok(r) => r,
        Err(e) => panic!("router failed: {e}"),
    };
    let status = resp.status();
    if status != StatusCode::METHOD_NOT_ALLOWED {
        let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
        assert_eq!(
            ct.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
    }
    let bytes = match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => panic!("body failed: {e}"),
    };
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn build(method: Method, uri: &str, body: Body, form: bool) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if form {
        b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    match b.body(body) {
        Ok(r) => r,
        Err(e) => panic!("bad request {uri}: {e}"),
    }
}

/// GET `uri` (already percent-encoded).
async fn get(uri: &str) -> (StatusCode, String) {
    send(app(), build(Method::GET, uri, Body::empty(), false)).await
}

/// POST a form body to `uri`.
async fn post(uri: &str, form: &str) -> (StatusCode, String) {
    send(
        app(),
        build(Method::POST, uri, Body::from(form.to_string()), true),
    )
    .await
}

/// Percent-encodes a query-string value.
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The error body Prometheus sends.
fn error_body(kind: &str, message: &str) -> String {
    let mut msg = String::new();
    super::response::write_json_str(&mut msg, message);
    format!(r#"{{"status":"error","errorType":"{kind}","error":{msg}}}"#)
}

fn success(data: &str) -> String {
    format!(r#"{{"status":"success","data":{data}}}"#)
}

/// Whether the PromQL parser is in place yet (`1+1` parses).
fn parser_ready() -> bool {
    crate::promql::parse("1+1").is_ok()
}

#[tokio::test]
async fn unknown_api_paths_are_404() {
    for uri in [
        "/api/v1/nope",
        "/api/v1/status/nope",
        "/api/v1/",
        "/api/v1/label/job",
    ] {
        let (status, body) = get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            body,
            error_body("not_found", &format!("unknown API endpoint \"{uri}\"")),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn unsupported_methods_are_405() {
    let req = build(Method::DELETE, "/api/v1/labels", Body::empty(), false);
    let (status, _) = send(app(), req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
