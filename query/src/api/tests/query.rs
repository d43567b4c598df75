//! `query`, `query_range`, `query_exemplars`, `format_query` and `parse_query`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::super::params::Params;
use super::super::query::{encode_result, query_timeout, run_blocking};
use super::super::{ApiError, ApiState, ErrorType};
use super::{enc, error_body, get, parser_ready, post, success, test_db, test_info};
use crate::promql::{Engine, EngineOptions, QueryError, QueryResult, Value};

fn invalid(param: &str, reason: &str) -> String {
    error_body(
        "bad_data",
        &format!("invalid parameter \"{param}\": {reason}"),
    )
}

#[tokio::test]
async fn instant_query_parameter_errors() {
    let cases = [
        (
            "/api/v1/query?query=1&time=abc",
            invalid(
                "time",
                "Invalid time value for 'time': cannot parse \"abc\" to a valid timestamp",
            ),
        ),
        (
            "/api/v1/query?query=1&time=4&timeout=soon",
            invalid("timeout", "cannot parse \"soon\" to a valid duration"),
        ),
        (
            "/api/v1/query?query=1&time=4&limit=-2",
            invalid("limit", "limit must be non-negative"),
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(get(uri).await, (StatusCode::BAD_REQUEST, want), "{uri}");
    }
}

#[tokio::test]
async fn query_parse_errors_are_bad_data() {
    for uri in [
        format!("/api/v1/query?time=4&query={}", enc("up{")),
        format!(
            "/api/v1/query_range?start=0&end=60&step=15&query={}",
            enc("sum(")
        ),
        "/api/v1/query?time=4".to_string(),
    ] {
        let (status, body) = get(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            body.starts_with(
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": "#
            ),
            "{uri}: {body}"
        );
    }
}

#[tokio::test]
async fn range_query_parameter_errors() {
    let q = "/api/v1/query_range?query=1";
    let cases = [
        (
            format!("{q}&end=10&step=1"),
            invalid("start", "cannot parse \"\" to a valid timestamp"),
        ),
        (
            format!("{q}&start=10&end=x&step=1"),
            invalid("end", "cannot parse \"x\" to a valid timestamp"),
        ),
        (
            format!("{q}&start=10&end=9.999&step=1"),
            invalid("end", "end timestamp must not be before start time"),
        ),
        (
            format!("{q}&start=0&end=10"),
            invalid("step", "cannot parse \"\" to a valid duration"),
        ),
        (
            format!("{q}&start=0&end=10&step=0"),
            invalid(
                "step",
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ),
        ),
        (
            format!("{q}&start=0&end=10&step=-1m"),
            invalid("step", "cannot parse \"-1m\" to a valid duration"),
        ),
        (
            format!("{q}&start=0&end=10&step=-15"),
            invalid(
                "step",
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ),
        ),
        (
            format!("{q}&start=0&end=11001&step=1s"),
            error_body(
                "bad_data",
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ),
        ),
        (
            format!("{q}&start=0&end=1&step=1&timeout=1e300"),
            invalid("timeout", "cannot parse \"1e300\" to a valid duration. It overflows int64"),
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(get(&uri).await, (StatusCode::BAD_REQUEST, want), "{uri}");
    }
    // The same checks read a POSTed form.
    let (status, body) = post("/api/v1/query_range", "query=1&start=2&end=1&step=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        invalid("end", "end timestamp must not be before start time")
    );
}

#[tokio::test]
async fn exemplars() {
    let (status, body) = get("/api/v1/query_exemplars?query=up&start=10&end=5").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body(
            "bad_data",
            "end timestamp must not be before start timestamp"
        )
    );
    let (_, body) = get("/api/v1/query_exemplars?query=up&start=x").await;
    assert_eq!(
        body,
        invalid(
            "start",
            "Invalid time value for 'start': cannot parse \"x\" to a valid timestamp"
        )
    );
    let (status, body) = get("/api/v1/query_exemplars?query=up(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""errorType":"bad_data""#), "{body}");
    // Every selector of the expression counts, a series matching any of them is returned,
    // sorted by series labels; the time range is inclusive.
    let up_a = r#"{"seriesLabels":{"__name__":"up","instance":"a","job":"api"},"exemplars":[{"labels":{"trace_id":"aa"},"value":"1","timestamp":1.500},{"labels":{"trace_id":"bb"},"value":"0.25","timestamp":30}]}"#;
    let requests = r#"{"seriesLabels":{"__name__":"http_requests_total","code":"200","job":"api"},"exemplars":[{"labels":{"trace_id":"cc"},"value":"1e-07","timestamp":45.001}]}"#;
    let (status, body) = post(
        "/api/v1/query_exemplars",
        "query=sum(rate(http_requests_total[5m])) / on() group_left count(up{job=~\"api|x\"})&start=0&end=60",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, success(&format!("[{requests},{up_a}]")));
    let (_, body) = get("/api/v1/query_exemplars?query=up&start=1.5&end=29.999").await;
    assert_eq!(
        body,
        success(
            r#"[{"seriesLabels":{"__name__":"up","instance":"a","job":"api"},"exemplars":[{"labels":{"trace_id":"aa"},"value":"1","timestamp":1.500}]}]"#
        )
    );
    let (_, body) = get("/api/v1/query_exemplars?query=up%7Binstance%3D%22b%22%7D").await;
    assert_eq!(body, success("[]"));
    // No selector at all: `data` is null, as in Prometheus.
    let (status, body) = get("/api/v1/query_exemplars?query=1%2B1").await;
    assert_eq!((status, body), (StatusCode::OK, success("null")));
}

fn state(timeout: Duration) -> Arc<ApiState> {
    Arc::new(ApiState {
        db: Arc::new(test_db()),
        engine: Arc::new(Engine::new(EngineOptions {
            timeout,
            ..EngineOptions::default()
        })),
        info: test_info(),
    })
}

#[tokio::test]
async fn timeout_param_only_lowers_the_engine_deadline() {
    let st = state(Duration::from_secs(120));
    let p = |q: &str| Params::from_parts(None, Some(q));
    assert_eq!(query_timeout(&p(""), &st), Ok(Duration::from_secs(120)));
    assert_eq!(
        query_timeout(&p("timeout=1s"), &st),
        Ok(Duration::from_secs(1))
    );
    assert_eq!(
        query_timeout(&p("timeout=0.25"), &st),
        Ok(Duration::from_millis(250))
    );
    assert_eq!(
        query_timeout(&p("timeout=10m"), &st),
        Ok(Duration::from_secs(120))
    );
    assert_eq!(query_timeout(&p("timeout=-1"), &st), Ok(Duration::ZERO));
}

/// On the multi-threaded runtime the query runs in place and its late answer is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_time_out() {
    assert_slow_query_times_out().await;
}

/// On a current-thread runtime the wait for the blocking pool is cut at the deadline.
#[tokio::test]
async fn slow_queries_time_out_on_a_current_thread_runtime() {
    let started = std::time::Instant::now();
    assert_slow_query_times_out().await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

/// A panicking evaluation is answered with an internal error, in place as on the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_query_is_an_internal_error() {
    let st = state(Duration::from_secs(5));
    let res = run_blocking(
        &st,
        Duration::from_secs(5),
        |_, _| -> Result<QueryResult, QueryError> { panic!("engine bug") },
        |res| encode_result(res, 0),
    )
    .await;
    let err = match res {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    assert_eq!(err.kind, ErrorType::Internal);
    assert!(err.message.contains("engine bug"), "{}", err.message);
}

async fn assert_slow_query_times_out() {
    let st = state(Duration::from_millis(50));
    let res = run_blocking(
        &st,
        Duration::from_millis(50),
        |_, _| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(QueryResult {
                value: Value::Scalar(0, 1.0),
                warnings: vec![],
                infos: vec![],
                stats: Default::default(),
            })
        },
        |res| encode_result(res, 0),
    )
    .await;
    let err = match res {
        Err(e) => e,
        Ok(_) => panic!("expected a timeout"),
    };
    assert_eq!(err.kind, ErrorType::Timeout);
    let resp = err.into_response();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        error_body("timeout", "query timed out in expression evaluation")
    );
}

#[test]
fn query_errors_map_to_prometheus_types() {
    let cases = [
        (QueryError::BadData("x".into()), ErrorType::BadData, 400),
        (QueryError::Execution("x".into()), ErrorType::Execution, 422),
        (QueryError::Limit("x".into()), ErrorType::Execution, 422),
        (QueryError::Timeout("x"), ErrorType::Timeout, 503),
        (
            QueryError::Storage(sextant_storage::StorageError::Closed),
            ErrorType::Internal,
            500,
        ),
    ];
    for (e, kind, code) in cases {
        let api = ApiError::from(e);
        assert_eq!(api.kind, kind);
        assert_eq!(api.kind.status().as_u16(), code);
    }
    assert_eq!(ErrorType::Canceled.status().as_u16(), 503);
    assert_eq!(ErrorType::NotFound.status().as_u16(), 404);
}

// ---- Results: these need the PromQL parser and evaluator. ----

#[tokio::test]
async fn grafana_health_check() {
    let want = success(r#"{"resultType":"scalar","result":[4,"2"]}"#);
    assert_eq!(
        get("/api/v1/query?query=1%2B1&time=4").await,
        (StatusCode::OK, want.clone())
    );
    assert_eq!(
        post("/api/v1/query", "query=1%2B1&time=4").await,
        (StatusCode::OK, want.clone())
    );
    // Parameters split between the query string and the body.
    assert_eq!(
        post("/api/v1/query?time=4", "query=1%2B1").await,
        (StatusCode::OK, want)
    );
}

#[tokio::test]
async fn instant_vector_with_rfc3339_and_float_times() {
    let want = success(
        r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[30,"2"]}]}"#,
    );
    let q = enc("up{instance=\"a\"}");
    for time in [
        "30",
        "30.0",
        "1970-01-01T00:00:30Z",
        "1970-01-01T00:00:30.000Z",
        "1970-01-01T01:00:30%2B01:00",
    ] {
        let (status, body) = get(&format!("/api/v1/query?query={q}&time={time}")).await;
        assert_eq!((status, body), (StatusCode::OK, want.clone()), "{time}");
    }
    let (_, body) = get(&format!("/api/v1/query?query={q}&time=30.5")).await;
    assert_eq!(
        body,
        success(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[30.500,"2"]}]}"#
        )
    );
}

#[tokio::test]
async fn instant_query_limit() {
    let (status, body) = get(&format!(
        "/api/v1/query?query={}&time=30&limit=1",
        enc("up")
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.ends_with(r#""warnings":["results truncated due to limit"]}"#),
        "{body}"
    );
    assert_eq!(body.matches("\"metric\"").count(), 1, "{body}");
}

#[tokio::test]
async fn range_query_matrix() {
    let q = enc("up{instance=\"a\"}");
    let want = success(
        r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"values":[[0,"0"],[15,"1"],[30,"2"]]}]}"#,
    );
    for (start, end, step) in [
        ("0", "30", "15"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:30Z", "15s"),
    ] {
        let uri = format!("/api/v1/query_range?query={q}&start={start}&end={end}&step={step}");
        assert_eq!(get(&uri).await, (StatusCode::OK, want.clone()), "{uri}");
    }
    let (_, body) = post(
        "/api/v1/query_range",
        &format!("query={q}&start=0&end=30&step=15"),
    )
    .await;
    assert_eq!(body, want);
    // Exactly at the resolution limit is allowed.
    let (status, _) = get("/api/v1/query_range?query=1&start=0&end=11000&step=1").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn float_formatting_through_the_engine() {
    for (expr, want) in [
        ("0.1", "0.1"),
        ("1e21", "1e+21"),
        ("1e-7", "1e-07"),
        ("NaN", "NaN"),
        ("Inf", "+Inf"),
        ("-Inf", "-Inf"),
        ("-0", "-0"),
        ("1/3", "0.3333333333333333"),
    ] {
        let (status, body) = get(&format!("/api/v1/query?time=4&query={}", enc(expr))).await;
        assert_eq!(status, StatusCode::OK, "{expr}: {body}");
        assert_eq!(
            body,
            success(&format!(
                r#"{{"resultType":"scalar","result":[4,"{want}"]}}"#
            )),
            "{expr}"
        );
    }
}

#[tokio::test]
async fn string_results() {
    let (status, body) = get(&format!("/api/v1/query?time=1.5&query={}", enc("\"hi\""))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        success(r#"{"resultType":"string","result":[1.500,"hi"]}"#)
    );
}

#[tokio::test]
async fn format_and_parse_query() {
    if !parser_ready() {
        panic!("the PromQL parser is not available yet");
    }
    let (status, body) = get(&format!(
        "/api/v1/format_query?query={}",
        enc("sum(rate(x[5m]))by(job)")
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, success(r#""sum by (job) (rate(x[5m]))""#));
    let (status, body) = post("/api/v1/parse_query", &format!("query={}", enc("up"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""type":"vectorSelector""#), "{body}");
    let (status, body) = get(&format!("/api/v1/format_query?query={}", enc("sum("))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn instant_range_selector_is_a_matrix() {
    let q = enc("up{instance=\"a\"}[30s]");
    let (status, body) = get(&format!("/api/v1/query?query={q}&time=30")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.starts_with(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"values":[["#),
        "{body}"
    );
}

#[tokio::test]
async fn annotations_become_infos() {
    let (status, body) = get(&format!(
        "/api/v1/query?time=60&query={}",
        enc("rate(up[1m])")
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.ends_with(r#"]},"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"]}"#),
        "{body}"
    );
}

/// `data.stats` of a successful response, parsed.
async fn stats_of(uri: &str) -> serde_json::Value {
    let (status, body) = get(uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["stats"].clone()
}

#[tokio::test]
async fn query_stats_follow_prometheus() {
    if !parser_ready() {
        return;
    }
    // No `stats`: no object.
    let (_, body) = get("/api/v1/query?query=up&time=60").await;
    assert!(!body.contains("\"stats\""), "{body}");

    // Three `up` series, one sample each at 60s.
    let s = stats_of("/api/v1/query?query=up&time=60&stats=all").await;
    assert_eq!(
        s["samples"],
        serde_json::json!({"totalQueryableSamplesPerStep": [[60, 3]], "totalQueryableSamples": 3, "peakSamples": 3})
    );
    let timings = s["timings"].as_object().unwrap();
    let keys: Vec<&str> = timings.keys().map(String::as_str).collect();
    for k in [
        "evalTotalTime",
        "resultSortTime",
        "queryPreparationTime",
        "innerEvalTime",
        "execQueueTime",
        "execTotalTime",
    ] {
        assert!(timings[k].as_f64().is_some_and(|v| v >= 0.0), "{k}");
        assert!(keys.contains(&k), "{k}");
    }
    assert!(timings["execTotalTime"].as_f64() >= timings["evalTotalTime"].as_f64());

    // Any other value: no per-step counts.
    let s = stats_of("/api/v1/query?query=up&time=60&stats=true").await;
    assert_eq!(
        s["samples"],
        serde_json::json!({"totalQueryableSamples": 3, "peakSamples": 3})
    );

    // Five steps of three samples; the result held at the last step makes the peak 15.
    let s = stats_of("/api/v1/query_range?query=up&start=0&end=60&step=15&stats=all").await;
    assert_eq!(
        s["samples"],
        serde_json::json!({
            "totalQueryableSamplesPerStep": [[0, 3], [15, 3], [30, 3], [45, 3], [60, 3]],
            "totalQueryableSamples": 15,
            "peakSamples": 15
        })
    );

    // (0s, 60s] holds four samples of each series.
    let s = stats_of(&format!(
        "/api/v1/query?query={}&time=60&stats=1",
        enc("count_over_time(up[1m])")
    ))
    .await;
    assert_eq!(s["samples"]["totalQueryableSamples"], 12);

    // A subquery that is the whole query counts what its four steps (15s..60s) load: two
    // samples of each of three series per step. As a function argument, only its output
    // (three series × four steps) counts.
    let s = stats_of(&format!(
        "/api/v1/query?query={}&time=60&stats=1",
        enc("count_over_time(up[30s])[1m:15s]")
    ))
    .await;
    assert_eq!(s["samples"]["totalQueryableSamples"], 24);
    let s = stats_of(&format!(
        "/api/v1/query?query={}&time=60&stats=1",
        enc("max_over_time(count_over_time(up[30s])[1m:15s])")
    ))
    .await;
    assert_eq!(s["samples"]["totalQueryableSamples"], 12);
}

#[tokio::test]
async fn max_samples_applies_to_the_peak() {
    if !parser_ready() {
        return;
    }
    let uri = "/api/v1/query_range?query=up&start=0&end=60&step=15";
    for (max, ok) in [(14, false), (15, true)] {
        let app = super::app_with(EngineOptions {
            max_samples: max,
            ..EngineOptions::default()
        });
        let (status, body) = super::send(
            app,
            axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        if ok {
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(
                body,
                error_body(
                    "execution",
                    "query processing would load too many samples into memory in query execution"
                )
            );
        }
    }
}
