use std::io::Write;

use super::*;
use axum::body::Body;
use axum::http::Request;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sextant_storage::{Matcher, SeriesSource};
use tower::ServiceExt;

fn gauge_request(name: &str, t_ms: u64, v: f64) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(AV::StringValue("svc".into())),
                    }),
                }],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics: vec![Metric {
                    name: name.into(),
                    description: String::new(),
                    unit: String::new(),
                    metadata: vec![],
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![],
                            start_time_unix_nano: 0,
                            time_unix_nano: t_ms * 1_000_000,
                            exemplars: vec![],
                            flags: 0,
                            value: Some(number_data_point::Value::AsDouble(v)),
                        }],
                    })),
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn setup(opts: OtlpOptions) -> (Arc<Db>, Router) {
    let db = Arc::new(Db::in_memory());
    let state = OtlpState::with_db(db.clone(), opts);
    (db, http_router(state))
}

async fn post(
    app: &Router,
    path: &str,
    ct: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::post(path).header("content-type", ct);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

fn stored(db: &Db, name: &str) -> Vec<(i64, f64)> {
    let m = [Matcher::equal("__name__", name)];
    db.select(&m, i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.samples.into_iter().map(|x| (x.t, x.v)))
        .collect()
}

#[tokio::test]
async fn protobuf_json_and_gzip_bodies_are_stored() {
    let (db, app) = setup(OtlpOptions::default());
    let (status, headers, body) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        gauge_request("a", 1000, 1.5).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let resp = ExportMetricsServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(resp.partial_success, None);
    assert_eq!(stored(&db, "a"), vec![(1000, 1.5)]);

    let json = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"b",
        "gauge":{"dataPoints":[{"timeUnixNano":"2000000000","asInt":"3"}]}}]}]}]}"#;
    let (status, headers, body) = post(
        &app,
        "/api/v1/otlp/v1/metrics",
        "application/json",
        None,
        json.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, b"{}");
    assert_eq!(stored(&db, "b"), vec![(2000, 3.0)]);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&gauge_request("c", 3000, 7.0).encode_to_vec())
        .unwrap();
    let (status, _, _) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        Some("gzip"),
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stored(&db, "c"), vec![(3000, 7.0)]);
    assert_eq!(
        db.metadata(Some("c"), None)["c"].metric_type,
        "gauge".to_string()
    );
}

#[tokio::test]
async fn bad_requests_get_documented_errors_and_keep_earlier_data() {
    let opts = OtlpOptions {
        max_body_bytes: 4096,
        ..OtlpOptions::default()
    };
    let (db, app) = setup(opts);
    let ok = gauge_request("kept", 1000, 1.0).encode_to_vec();
    assert_eq!(
        post(&app, "/v1/metrics", "application/x-protobuf", None, ok)
            .await
            .0,
        200
    );

    // Undecodable protobuf and JSON: 400 with a google.rpc.Status body.
    let (status, _, body) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0x01],
    )
    .await;
    assert_eq!(status, 400);
    let st = RpcStatus::decode(body.as_slice()).unwrap();
    assert_eq!(st.code, tonic::Code::InvalidArgument as i32);
    assert!(st.message.contains("protobuf"), "{}", st.message);
    let (status, _, body) = post(
        &app,
        "/v1/metrics",
        "application/json",
        None,
        b"{\"resourceMetrics\": 5}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("resourceMetrics"),
        "{v}"
    );
    // Corrupt gzip: 400.
    let (status, _, _) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        Some("gzip"),
        b"nope".to_vec(),
    )
    .await;
    assert_eq!(status, 400);

    // Wrong content type or encoding: 415.
    let (status, _, _) = post(&app, "/v1/metrics", "text/plain", None, b"x".to_vec()).await;
    assert_eq!(status, 415);
    let (status, _, _) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        Some("br"),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(status, 415);

    // Too large, plain and after decompression: 413.
    let (status, _, _) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        vec![0u8; 8192],
    )
    .await;
    assert_eq!(status, 413);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 100_000]).unwrap();
    let (status, _, _) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        Some("gzip"),
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(status, 413);

    // Logs and traces: 501.
    let (status, _, _) = post(&app, "/v1/logs", "application/x-protobuf", None, vec![]).await;
    assert_eq!(status, 501);
    let (status, _, _) = post(&app, "/v1/traces", "application/json", None, b"{}".to_vec()).await;
    assert_eq!(status, 501);

    assert_eq!(stored(&db, "kept"), vec![(1000, 1.0)]);
}

#[tokio::test]
async fn partial_success_reports_refused_points() {
    let (db, app) = setup(OtlpOptions::default());
    let first = gauge_request("g", 5000, 1.0).encode_to_vec();
    assert_eq!(
        post(&app, "/v1/metrics", "application/x-protobuf", None, first)
            .await
            .0,
        200
    );
    // Older than the stored sample: refused by storage, reported as partial success.
    let mut req = gauge_request("g", 4000, 2.0);
    req.resource_metrics
        .extend(gauge_request("h", 4000, 3.0).resource_metrics);
    let (status, _, body) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let resp = ExportMetricsServiceResponse::decode(body.as_slice()).unwrap();
    let p = resp.partial_success.expect("partial success");
    assert_eq!(p.rejected_data_points, 1);
    assert!(
        p.error_message.contains("out_of_order"),
        "{}",
        p.error_message
    );
    assert_eq!(stored(&db, "g"), vec![(5000, 1.0)]);
    assert_eq!(stored(&db, "h"), vec![(4000, 3.0)]);
}

#[tokio::test]
async fn not_ready_and_overloaded_ask_to_retry() {
    let state = OtlpState::new(OtlpOptions::default());
    let app = http_router(state.clone());
    let body = gauge_request("x", 1, 1.0).encode_to_vec();
    let (status, headers, _) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        body.clone(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");

    let state = OtlpState::with_db(
        Arc::new(Db::in_memory()),
        OtlpOptions {
            max_concurrent_requests: 1,
            ..OtlpOptions::default()
        },
    );
    let app = http_router(state.clone());
    let held = state.inflight.try_acquire().unwrap();
    let (status, headers, _) = post(
        &app,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        body.clone(),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    drop(held);
    let (status, _, _) = post(&app, "/v1/metrics", "application/x-protobuf", None, body).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn grpc_answers_unavailable_before_storage_and_stores_after() {
    let state = OtlpState::new(OtlpOptions::default());
    // The service's request bytes, as tonic hands them over after gRPC framing.
    let bytes = || axum::body::Bytes::from(gauge_request("x", 1000, 1.0).encode_to_vec());
    let err = grpc_raw::export(state.clone(), tonic::Request::new(bytes()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let db = Arc::new(Db::in_memory());
    state.set_db(db.clone());
    let resp = grpc_raw::export(state.clone(), tonic::Request::new(bytes()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
    assert_eq!(stored(&db, "x"), vec![(1000, 1.0)]);
}

mod logs_http {
    use super::*;
    use crate::loki::{LogSink, LokiPushOptions, Refusal};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use parking_lot::Mutex;
    use sextant_storage::logs::LogStreamBatch;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<LogStreamBatch>>);

    impl LogSink for Recorder {
        fn append_logs(&self, b: &[LogStreamBatch]) -> Result<Vec<Refusal>, String> {
            self.0.lock().extend_from_slice(b);
            Ok(Vec::new())
        }
    }

    fn setup_logs(push: LokiPushOptions) -> (Arc<Recorder>, Router) {
        let state = OtlpState::with_db(Arc::new(Db::in_memory()), OtlpOptions::default());
        let push_state = crate::loki::LokiPushState::new(push);
        let rec = Arc::new(Recorder::default());
        push_state.set_sink(rec.clone());
        state.set_logs(push_state, OtlpLogsOptions::default());
        (rec, http_router(state))
    }

    fn now_ns() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }

    fn logs_request(lines: &[(&str, u64)]) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(AV::StringValue("shop".into())),
                        }),
                    }],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: lines
                        .iter()
                        .map(|(l, t)| LogRecord {
                            time_unix_nano: *t,
                            severity_number: 9,
                            body: Some(AnyValue {
                                value: Some(AV::StringValue(l.to_string())),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[tokio::test]
    async fn protobuf_logs_are_stored_with_service_name_and_level() {
        let (rec, app) = setup_logs(LokiPushOptions::default());
        let t = now_ns();
        let body = logs_request(&[("hello", t), ("world", t + 1)]).encode_to_vec();
        let (status, _, bytes) = post(&app, "/v1/logs", "application/x-protobuf", None, body).await;
        assert_eq!(status, 200);
        let resp = ExportLogsServiceResponse::decode(bytes.as_slice()).unwrap();
        assert!(resp.partial_success.is_none());
        let batches = rec.0.lock();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].labels.get("service_name"), Some("shop"));
        let lines: Vec<&str> = batches[0].entries.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, ["hello", "world"]);
        assert!(batches[0].entries[0]
            .metadata
            .contains(&("detected_level".into(), "info".into())));
    }

    #[tokio::test]
    async fn json_logs_with_hex_ids_and_partial_refusal() {
        let (rec, app) = setup_logs(LokiPushOptions::default());
        let t = now_ns();
        let body = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
              "scopeLogs":[{{"logRecords":[
                {{"timeUnixNano":"{t}","severityNumber":"SEVERITY_NUMBER_ERROR","body":{{"stringValue":"boom"}},
                  "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174"}},
                {{"timeUnixNano":"1000","body":{{"stringValue":"too old"}}}}]}}]}}]}}"#
        );
        let (status, _, bytes) = post(
            &app,
            "/v1/logs",
            "application/json",
            None,
            body.into_bytes(),
        )
        .await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "1");
        let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap();
        assert!(msg.contains("greater_than_max_sample_age"), "{msg}");
        let batches = rec.0.lock();
        let e = &batches[0].entries;
        assert_eq!(e.len(), 1);
        assert!(e[0]
            .metadata
            .contains(&("trace_id".into(), "5b8efff798038103d269b633813fc60c".into())));
        assert!(e[0]
            .metadata
            .contains(&("detected_level".into(), "error".into())));
    }

    #[tokio::test]
    async fn logs_rate_limit_is_429_and_bad_body_400() {
        let (rec, app) = setup_logs(LokiPushOptions {
            ingestion_rate_bytes: 3.0,
            ingestion_burst_bytes: 3.0,
            ..LokiPushOptions::default()
        });
        let body = logs_request(&[("longer than three", now_ns())]).encode_to_vec();
        let (status, headers, _) =
            post(&app, "/v1/logs", "application/x-protobuf", None, body).await;
        assert_eq!(status, 429);
        assert!(headers.contains_key("retry-after"));
        let (status, _, _) = post(
            &app,
            "/v1/logs",
            "application/json",
            None,
            b"{\"resourceLogs\": 5}".to_vec(),
        )
        .await;
        assert_eq!(status, 400);
        assert!(rec.0.lock().is_empty());
    }
}
