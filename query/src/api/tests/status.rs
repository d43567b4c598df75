//! `status/*` endpoints.

use axum::http::StatusCode;

use super::{error_body, get, post, success};

#[tokio::test]
async fn buildinfo() {
    let want = success(
        r#"{"version":"2.53.0","revision":"abc123","branch":"main","buildUser":"ci@sextant","buildDate":"20240501-10:00:00","goVersion":"rustc 1.85.0"}"#,
    );
    assert_eq!(
        get("/api/v1/status/buildinfo").await,
        (StatusCode::OK, want.clone())
    );
    assert_eq!(
        post("/api/v1/status/buildinfo", "").await,
        (StatusCode::OK, want)
    );
}

#[tokio::test]
async fn runtimeinfo() {
    let (status, body) = get("/api/v1/status/runtimeinfo").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let data = &v["data"];
    assert_eq!(data["startTime"], "2024-05-01T10:00:00.25Z");
    assert_eq!(data["lastConfigTime"], "2024-05-01T10:00:00.25Z");
    assert_eq!(data["reloadConfigSuccess"], true);
    assert_eq!(data["storageRetention"], "15d");
    assert_eq!(data["corruptionCount"], 0);
    assert!(data["GOMAXPROCS"].as_u64().is_some_and(|n| n >= 1));
    assert!(data["CWD"].is_string());
    let keys: Vec<&str> = data
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 11, "{keys:?}");
}

#[tokio::test]
async fn flags_and_config() {
    let (status, body) = get("/api/v1/status/flags").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        success(
            r#"{"storage.tsdb.path":"/data","storage.tsdb.retention.time":"15d","web.listen-address":":9090"}"#
        )
    );
    let (status, body) = get("/api/v1/status/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        success(r#"{"yaml":"global:\n  scrape_interval: 15s\n"}"#)
    );
}

#[tokio::test]
async fn tsdb_status() {
    let (status, body) = get("/api/v1/status/tsdb?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        success(concat!(
            r#"{"headStats":{"numSeries":5,"numLabelPairs":10,"chunkCount":0,"minTime":0,"maxTime":60000},"#,
            r#""seriesCountByMetricName":[{"name":"up","value":3},{"name":"dotted","value":1}],"#,
            r#""labelValueCountByLabelName":[{"name":"__name__","value":3},{"name":"instance","value":3}],"#,
            r#""memoryInBytesByLabelName":[{"name":"__name__","value":27},{"name":"job","value":7}],"#,
            r#""seriesCountByLabelValuePair":[{"name":"__name__=up","value":3},{"name":"job=api","value":3}]}"#
        ))
    );
    let (_, body) = get("/api/v1/status/tsdb").await;
    assert!(body.contains(r#""seriesCountByMetricName":[{"name":"up","value":3},{"name":"dotted","value":1},{"name":"http_requests_total","value":1}]"#), "{body}");
    for bad in ["0", "-3", "many"] {
        let (status, body) = get(&format!("/api/v1/status/tsdb?limit={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            error_body("bad_data", "limit must be a positive number")
        );
    }
}
