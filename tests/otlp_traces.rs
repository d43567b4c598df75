//! OTLP traces end to end.
//!
//! - In process, over real sockets: a tonic `TraceServiceClient` (gzip), OTLP/HTTP protobuf
//!   and OTLP/HTTP JSON requests reach the trace appender with exactly the spans sent; gRPC
//!   refusals use OTLP's shapes (`partial_success`, `INVALID_ARGUMENT`). (The binary's store
//!   is not readable here until the Tempo API lands.)
//! - Through the `sextant` binary: span metrics and service-graph series answer in PromQL
//!   (`/api/v1/query`), the latency exemplars name a trace that was sent, and the last partial
//!   interval is written on shutdown.
//! - Python's OpenTelemetry SDK (gRPC and HTTP exporters) as the real client: its spans become
//!   span metrics and service-graph edges whose exemplars name the SDK's traces.

mod support;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value;
use sextant_ingest::{OtlpOptions, OtlpState};
use sextant_storage::traces::{NaiveTraceStore, TraceId, TraceSource};
use support::{free_port, poll, urlencode, venv_python, Server};

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AV::StringValue(v.into())),
        }),
    }
}

fn trace_id(n: u32) -> Vec<u8> {
    let mut id = vec![0x5e; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    id
}

fn span_id(trace: u32, k: u8) -> Vec<u8> {
    let mut id = vec![0x40 + k; 8];
    id[..4].copy_from_slice(&trace.to_be_bytes());
    id
}

/// One service's spans of `traces` traces: a SERVER span per trace (child of the caller's
/// CLIENT span `k=1`, or root), optionally a CLIENT span `k=1` calling the next service.
fn service_request(
    service: &str,
    traces: std::ops::Range<u32>,
    server_k: u8,
    client: bool,
    error_every: u32,
) -> ExportTraceServiceRequest {
    let t0 = now_ns() - 2_000_000_000;
    let mut spans = Vec::new();
    for t in traces {
        let failed = error_every > 0 && t % error_every == 0;
        spans.push(Span {
            trace_id: trace_id(t),
            span_id: span_id(t, server_k),
            parent_span_id: if server_k == 2 { span_id(t, 1) } else { vec![] },
            name: format!("{service} handle"),
            kind: 2,
            start_time_unix_nano: t0,
            end_time_unix_nano: t0 + 30_000_000,
            attributes: vec![kv("http.method", "GET"), kv("http.route", "/x")],
            status: Some(Status {
                message: String::new(),
                code: if failed { 2 } else { 0 },
            }),
            ..Span::default()
        });
        if client {
            spans.push(Span {
                trace_id: trace_id(t),
                span_id: span_id(t, 1),
                parent_span_id: span_id(t, server_k),
                name: "call backend".into(),
                kind: 3,
                start_time_unix_nano: t0 + 1_000_000,
                end_time_unix_nano: t0 + 25_000_000,
                ..Span::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The OTLP/JSON form of `req`'s spans (what an OTLP/HTTP JSON exporter sends).
fn to_json(req: &ExportTraceServiceRequest) -> String {
    let hex = sextant_storage::traces::hex;
    let rs = &req.resource_spans[0];
    let service = match &rs.resource.as_ref().unwrap().attributes[0].value {
        Some(AnyValue {
            value: Some(AV::StringValue(s)),
        }) => s.clone(),
        _ => unreachable!(),
    };
    let spans: Vec<Value> = rs.scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            serde_json::json!({
                "traceId": hex(&s.trace_id),
                "spanId": hex(&s.span_id),
                "parentSpanId": hex(&s.parent_span_id),
                "name": s.name,
                "kind": if s.kind == 2 { "SPAN_KIND_SERVER" } else { "SPAN_KIND_CLIENT" },
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                "attributes": s.attributes.iter().map(|a| serde_json::json!({
                    "key": a.key,
                    "value": {"stringValue": match &a.value { Some(AnyValue { value: Some(AV::StringValue(v)) }) => v.clone(), _ => String::new() }},
                })).collect::<Vec<_>>(),
                "status": {"code": s.status.as_ref().map_or(0, |st| st.code)},
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": spans}],
    }]})
    .to_string()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_http_protobuf_and_json_reach_the_appender_with_exactly_the_spans_sent() {
    let db = Arc::new(sextant_storage::Db::in_memory());
    let state = OtlpState::with_db(db, OtlpOptions::default());
    let store = Arc::new(NaiveTraceStore::new());
    state.set_traces(store.clone(), None, 32 << 20);
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grpc_task = tokio::spawn(sextant_ingest::otlp::serve_grpc(
        grpc,
        state.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let app = sextant_ingest::otlp::http_router(state);
    tokio::spawn(async move { axum::serve(http, app).await });

    // gRPC, gzip-compressed: traces 0..50.
    let mut client = TraceServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let sent_grpc = service_request("frontend", 0..50, 0, true, 0);
    let resp = client.export(sent_grpc.clone()).await.unwrap().into_inner();
    assert_eq!(resp, ExportTraceServiceResponse::default());
    // OTLP/HTTP protobuf: traces 50..80 (with the other half of traces 0..50).
    let sent_proto = service_request("backend", 0..80, 2, false, 0);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{http_addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&sent_proto.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap(),
        ExportTraceServiceResponse::default()
    );
    // OTLP/HTTP JSON: traces 100..110.
    let sent_json = service_request("worker", 100..110, 0, false, 3);
    let r = http
        .post(format!("http://{http_addr}/v1/traces"))
        .header("content-type", "application/json")
        .body(to_json(&sent_json))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");

    // The store holds exactly what was sent: per trace, the same spans (id, parent, name,
    // kind, times, status, attributes).
    type Key = (
        Vec<u8>,
        Option<Vec<u8>>,
        String,
        i32,
        u64,
        u64,
        i32,
        Vec<(String, String)>,
    );
    let key_of = |s: &Span| -> Key {
        (
            s.span_id.clone(),
            (!s.parent_span_id.is_empty()).then(|| s.parent_span_id.clone()),
            s.name.clone(),
            s.kind,
            s.start_time_unix_nano,
            s.end_time_unix_nano,
            s.status.as_ref().map_or(0, |st| st.code),
            s.attributes
                .iter()
                .map(|a| {
                    let v = match &a.value {
                        Some(AnyValue {
                            value: Some(AV::StringValue(v)),
                        }) => v.clone(),
                        _ => String::new(),
                    };
                    (a.key.clone(), v)
                })
                .collect(),
        )
    };
    let mut expected: std::collections::BTreeMap<Vec<u8>, Vec<Key>> = Default::default();
    for req in [&sent_grpc, &sent_proto, &sent_json] {
        for s in &req.resource_spans[0].scope_spans[0].spans {
            expected
                .entry(s.trace_id.clone())
                .or_default()
                .push(key_of(s));
        }
    }
    let mut total = 0;
    for (tid, mut want) in expected {
        let trace = store
            .trace(&TraceId(tid.clone().try_into().unwrap()), None)
            .unwrap()
            .unwrap_or_else(|| panic!("trace {} missing", sextant_storage::traces::hex(&tid)));
        let mut got: Vec<Key> = trace
            .batches
            .iter()
            .flat_map(|b| b.spans.iter())
            .map(|s| {
                (
                    s.span_id.to_vec(),
                    s.parent_span_id.map(|p| p.to_vec()),
                    s.name.clone(),
                    s.kind as i32,
                    s.start_unix_nano,
                    s.end_unix_nano,
                    s.status_code as i32,
                    s.attributes
                        .iter()
                        .map(|a| {
                            let v = match &a.value {
                                sextant_storage::traces::AttrValue::Str(v) => v.clone(),
                                _ => String::new(),
                            };
                            (a.key.clone(), v)
                        })
                        .collect(),
                )
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        total += got.len();
    }
    assert_eq!(total, 100 + 80 + 10);
    // Nothing else: a trace id that was not sent is absent.
    assert!(store
        .trace(&TraceId(trace_id(90).try_into().unwrap()), None)
        .unwrap()
        .is_none());

    // gRPC refusals use OTLP's codes: undecodable → INVALID_ARGUMENT; bad span ids →
    // partial success.
    let mut bad = service_request("frontend", 200..203, 0, false, 0);
    bad.resource_spans[0].scope_spans[0].spans[1].span_id = vec![0; 8];
    let resp = client.export(bad).await.unwrap().into_inner();
    let p = resp.partial_success.unwrap();
    assert_eq!(p.rejected_spans, 1);
    assert!(p.error_message.contains("all-zero"), "{}", p.error_message);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    // A ResourceSpans whose length runs past the end of the message.
    let err = raw
        .unary(
            tonic::Request::new(RawBytes(vec![0x0a, 0x10, 0x12, 0x03])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("ExportTraceServiceRequest"), "{err}");
    let _ = stop_tx.send(());
    grpc_task.await.unwrap().unwrap();
}

/// A request body sent as is, for malformed gRPC messages.
#[derive(Clone)]
struct RawBytes(Vec<u8>);

#[derive(Clone, Default)]
struct RawCodec;

struct RawEnc;
struct RawDec;

impl tonic::codec::Codec for RawCodec {
    type Encode = RawBytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEnc;
    type Decoder = RawDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RawDec {
        RawDec
    }
}

impl tonic::codec::Encoder for RawEnc {
    type Item = RawBytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: RawBytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item.0);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

async fn query(base: &str, q: &str) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{base}/api/v1/query?query={}", urlencode(q)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{q}: {body}");
    body["data"]["result"].as_array().unwrap().clone()
}

async fn scalar(base: &str, q: &str) -> Option<f64> {
    let r = query(base, q).await;
    assert!(r.len() <= 1, "{q}: {r:?}");
    r.first()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

fn config(dir: &std::path::Path, grpc: u16, interval: &str) -> std::path::PathBuf {
    let path = dir.join("sextant.yml");
    std::fs::write(
        &path,
        format!(
            "storage:\n  wal_fsync: never\notlp:\n  grpc_addr: 127.0.0.1:{grpc}\n  http_addr: \"off\"\ntraces:\n  span_metrics:\n    collection_interval: {interval}\n    dimensions: [http.method]\n  service_graph:\n    wait: 2s\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_metrics_and_service_graph_answer_in_promql() {
    let tmp = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let cfg = config(tmp.path(), grpc, "1s");
    let server = Server::start(&cfg, &tmp.path().join("data"), &tmp.path().join("log")).await;
    let base = server.base.clone();
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();
    // 40 traces: frontend SERVER → frontend CLIENT → backend SERVER; every 4th backend span
    // fails. The backend half arrives first, in its own request.
    client
        .export(service_request("backend", 0..40, 2, false, 4))
        .await
        .unwrap();
    client
        .export(service_request("frontend", 0..40, 0, true, 0))
        .await
        .unwrap();

    let calls = poll(Duration::from_secs(20), "span metrics in PromQL", || {
        let base = base.clone();
        async move {
            scalar(
                &base,
                r#"sum(traces_spanmetrics_calls_total{service="backend",span_kind="SPAN_KIND_SERVER",http_method="GET"})"#,
            )
            .await
            .filter(|v| *v == 40.0)
        }
    })
    .await;
    assert_eq!(calls, 40.0);
    assert_eq!(
        scalar(
            &base,
            r#"traces_spanmetrics_calls_total{service="backend",status_code="STATUS_CODE_ERROR"}"#
        )
        .await,
        Some(10.0)
    );
    assert_eq!(
        scalar(
            &base,
            r#"traces_spanmetrics_latency_bucket{service="frontend",span_name="frontend handle",le="0.032"}"#
        )
        .await,
        Some(40.0)
    );
    assert_eq!(
        scalar(
            &base,
            r#"traces_spanmetrics_latency_bucket{service="frontend",span_name="frontend handle",le="0.016"}"#
        )
        .await,
        Some(0.0)
    );
    let edges = poll(Duration::from_secs(20), "service graph in PromQL", || {
        let base = base.clone();
        async move {
            scalar(
                &base,
                r#"traces_service_graph_request_total{client="frontend",server="backend"}"#,
            )
            .await
            .filter(|v| *v == 40.0)
        }
    })
    .await;
    assert_eq!(edges, 40.0);
    assert_eq!(
        scalar(
            &base,
            r#"traces_service_graph_request_failed_total{client="frontend",server="backend"}"#
        )
        .await,
        Some(10.0)
    );
    // Root SERVER spans of the frontend come from the `user` virtual node.
    assert_eq!(
        scalar(
            &base,
            r#"traces_service_graph_request_total{client="user",server="frontend"}"#
        )
        .await,
        Some(40.0)
    );
    // An exemplar on the latency histogram names a trace that was sent.
    let now = now_ns() / 1_000_000_000;
    let body: Value = reqwest::get(format!(
        "{base}/api/v1/query_exemplars?query={}&start={}&end={}",
        urlencode(r#"traces_spanmetrics_latency_bucket{service="backend"}"#),
        now - 600,
        now + 600
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let sent: Vec<String> = (0..40)
        .map(|t| sextant_storage::traces::hex(&trace_id(t)))
        .collect();
    let ids: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["exemplars"].as_array().unwrap().clone())
        .map(|e| e["labels"]["trace_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.is_empty(), "{body}");
    assert!(ids.iter().all(|id| sent.contains(id)), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_partial_interval_is_written_on_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let cfg = config(tmp.path(), grpc, "1h");
    let data = tmp.path().join("data");
    let log = tmp.path().join("log");
    let mut server = Server::start(&cfg, &data, &log).await;
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();
    client
        .export(service_request("solo", 0..7, 0, false, 0))
        .await
        .unwrap();
    // Nothing is written before the (hour-long) interval ends...
    assert_eq!(
        scalar(
            &server.base,
            r#"traces_spanmetrics_calls_total{service="solo"}"#
        )
        .await,
        None
    );
    server.terminate().await;
    // ...but the shutdown flush wrote it.
    let server = Server::start(&cfg, &data, &log).await;
    assert_eq!(
        scalar(
            &server.base,
            r#"traces_spanmetrics_calls_total{service="solo"}"#
        )
        .await,
        Some(7.0)
    );
}

/// The test virtualenv's Python (`scripts/install-test-deps.sh` installs the OpenTelemetry SDK).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_traces_become_span_metrics_and_service_graph_edges() {
    let python = venv_python();
    let tmp = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let cfg = config(tmp.path(), grpc, "1s");
    let server = Server::start(&cfg, &tmp.path().join("data"), &tmp.path().join("log")).await;
    let base = server.base.clone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/export_traces.py");
    for (protocol, endpoint, service) in [
        ("grpc", format!("http://127.0.0.1:{grpc}"), "pygrpc"),
        ("http", format!("{base}/v1/traces"), "pyhttp"),
    ] {
        let out = std::process::Command::new(&python)
            .args([script, protocol, &endpoint, service, "6"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && stdout.ends_with("ok\n"),
            "{protocol}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sent: Vec<String> = stdout
            .lines()
            .filter(|l| *l != "ok")
            .map(str::to_string)
            .collect();
        assert_eq!(sent.len(), 6);
        let front = format!("{service}-front");
        let back = format!("{service}-back");
        let q = format!(r#"sum(traces_spanmetrics_calls_total{{service="{back}"}})"#);
        poll(Duration::from_secs(20), "Python SDK span metrics", || {
            let (base, q) = (base.clone(), q.clone());
            async move { scalar(&base, &q).await.filter(|v| *v == 6.0) }
        })
        .await;
        assert_eq!(
            scalar(
                &base,
                &format!(
                    r#"traces_spanmetrics_calls_total{{service="{back}",span_name="POST /pay",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"}}"#
                )
            )
            .await,
            Some(2.0)
        );
        assert_eq!(
            scalar(
                &base,
                &format!(
                    r#"traces_spanmetrics_calls_total{{service="{front}",span_kind="SPAN_KIND_CLIENT",http_method="POST"}}"#
                )
            )
            .await,
            Some(6.0)
        );
        let edge =
            format!(r#"traces_service_graph_request_total{{client="{front}",server="{back}"}}"#);
        poll(Duration::from_secs(20), "Python SDK service graph", || {
            let (base, q) = (base.clone(), edge.clone());
            async move { scalar(&base, &q).await.filter(|v| *v == 6.0) }
        })
        .await;
        assert_eq!(
            scalar(
                &base,
                &format!(
                    r#"traces_service_graph_request_failed_total{{client="{front}",server="{back}"}}"#
                )
            )
            .await,
            Some(2.0)
        );
        // Exemplars on the backend's latency buckets name traces the SDK created.
        let now = now_ns() / 1_000_000_000;
        let body: Value = reqwest::get(format!(
            "{base}/api/v1/query_exemplars?query={}&start={}&end={}",
            urlencode(&format!(
                r#"traces_spanmetrics_latency_bucket{{service="{back}"}}"#
            )),
            now - 600,
            now + 600
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let ids: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["exemplars"].as_array().unwrap().clone())
            .map(|e| e["labels"]["trace_id"].as_str().unwrap().to_string())
            .collect();
        assert!(!ids.is_empty(), "{body}");
        assert!(
            ids.iter().all(|id| sent.contains(id)),
            "{ids:?} vs {sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_grpc_requests_are_resource_exhausted_and_nothing_is_stored() {
    let state = OtlpState::with_db(
        Arc::new(sextant_storage::Db::in_memory()),
        OtlpOptions {
            max_body_bytes: 4096,
            ..OtlpOptions::default()
        },
    );
    let store = Arc::new(NaiveTraceStore::new());
    state.set_traces(store.clone(), None, 2048);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sextant_ingest::otlp::serve_grpc(
        listener,
        state,
        std::future::pending(),
    ));
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // Above the transport limit (tonic's decoding limit): RESOURCE_EXHAUSTED, not OUT_OF_RANGE.
    let big = service_request("big", 0..60, 0, true, 0);
    assert!(big.encoded_len() > 4096);
    let err = client.export(big).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    // Between the traces limit and the transport limit: refused by `traces.max_request_bytes`.
    let mid = service_request("mid", 100..125, 0, false, 0);
    assert!(
        (2048..4096).contains(&mid.encoded_len()),
        "{}",
        mid.encoded_len()
    );
    let err = client.export(mid).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("traces.max_request_bytes"), "{err}");
    // A small one passes; the refused ones left nothing behind.
    client
        .export(service_request("small", 200..202, 0, false, 0))
        .await
        .unwrap();
    for (t, present) in [(0, false), (100, false), (200, true), (201, true)] {
        let got = store
            .trace(&TraceId(trace_id(t).try_into().unwrap()), None)
            .unwrap();
        assert_eq!(got.is_some(), present, "trace {t}");
    }
}
