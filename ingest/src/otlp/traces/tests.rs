//! Decoder and HTTP endpoint tests for OTLP traces. The reference for the one-pass decoder is
//! prost's decoding of the same bytes, mapped field by field (`reference`).

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as AV, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1::{
    span::Event, span::Link, ResourceSpans, ScopeSpans, Span as PSpan, Status,
};
use prost::Message;
use sextant_storage::traces::{
    Attr, AttrValue, NaiveTraceStore, Resource, Scope, Span, SpanBatch, SpanEvent, SpanKind,
    SpanLink, StatusCode as SStatus, TraceId, TraceSource,
};
use sextant_storage::Db;
use tower::ServiceExt;

use super::super::{http_router, OtlpOptions, OtlpState};
use super::{json, wire};

fn kv(key: &str, v: AV) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn tid(n: u8) -> Vec<u8> {
    let mut id = vec![0xab; 16];
    id[15] = n;
    id
}

fn sid(n: u8) -> Vec<u8> {
    vec![0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, n]
}

/// A span with every field set.
fn full_span(n: u8) -> PSpan {
    PSpan {
        trace_id: tid(n),
        span_id: sid(n),
        trace_state: "k=v".into(),
        parent_span_id: if n.is_multiple_of(2) {
            sid(n + 100)
        } else {
            vec![]
        },
        flags: 0x301,
        name: format!("GET /item/{n}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        end_time_unix_nano: 1_700_000_000_250_000_000 + u64::from(n),
        attributes: vec![
            kv("http.method", AV::StringValue("GET".into())),
            kv("http.status_code", AV::IntValue(-200)),
            kv("ratio", AV::DoubleValue(0.25)),
            kv("ok", AV::BoolValue(true)),
            kv("raw", AV::BytesValue(vec![0, 159, 255])),
            kv(
                "list",
                AV::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(AV::IntValue(1)),
                        },
                        AnyValue { value: None },
                    ],
                }),
            ),
            kv(
                "map",
                AV::KvlistValue(KeyValueList {
                    values: vec![kv("inner", AV::StringValue("x".into()))],
                }),
            ),
        ],
        dropped_attributes_count: 3,
        events: vec![Event {
            time_unix_nano: 1_700_000_000_100_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.message", AV::StringValue("boom".into()))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 4,
        links: vec![Link {
            trace_id: tid(200),
            span_id: sid(200),
            trace_state: "a=b".into(),
            attributes: vec![kv("link.kind", AV::StringValue("follows".into()))],
            dropped_attributes_count: 2,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "failed".into(),
            code: 2,
        }),
    }
}

fn request(spans: Vec<PSpan>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PResource {
                attributes: vec![kv("service.name", AV::StringValue("checkout".into()))],
                dropped_attributes_count: 7,
                entity_refs: vec![],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.2.3".into(),
                    attributes: vec![kv("scope.attr", AV::IntValue(9))],
                    dropped_attributes_count: 1,
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.20.0".into(),
        }],
    }
}

// ---- reference mapping (prost → store model) ----

fn ref_value(v: &AnyValue) -> AttrValue {
    match &v.value {
        None => AttrValue::Empty,
        Some(AV::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(AV::BoolValue(b)) => AttrValue::Bool(*b),
        Some(AV::IntValue(i)) => AttrValue::Int(*i),
        Some(AV::DoubleValue(d)) => AttrValue::Double(*d),
        Some(AV::BytesValue(b)) => AttrValue::Bytes(b.clone()),
        Some(AV::ArrayValue(a)) => AttrValue::Array(a.values.iter().map(ref_value).collect()),
        Some(AV::KvlistValue(l)) => AttrValue::KvList(ref_attrs(&l.values)),
    }
}

fn ref_attrs(kvs: &[KeyValue]) -> Vec<Attr> {
    kvs.iter()
        .map(|k| Attr {
            key: k.key.clone(),
            value: k.value.as_ref().map_or(AttrValue::Empty, ref_value),
        })
        .collect()
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    b.try_into().unwrap()
}

fn reference(req: &ExportTraceServiceRequest) -> Vec<SpanBatch> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let r = rs.resource.clone().unwrap_or_default();
        let resource = Arc::new(Resource {
            attributes: ref_attrs(&r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            schema_url: rs.schema_url.clone(),
        });
        for ss in &rs.scope_spans {
            let s = ss.scope.clone().unwrap_or_default();
            let scope = Arc::new(Scope {
                name: s.name,
                version: s.version,
                attributes: ref_attrs(&s.attributes),
                dropped_attributes_count: s.dropped_attributes_count,
                schema_url: ss.schema_url.clone(),
            });
            let spans = ss
                .spans
                .iter()
                .map(|p| Span {
                    trace_id: TraceId(arr(&p.trace_id)),
                    span_id: arr(&p.span_id),
                    parent_span_id: (!p.parent_span_id.is_empty()).then(|| arr(&p.parent_span_id)),
                    trace_state: p.trace_state.clone(),
                    flags: p.flags,
                    name: p.name.clone(),
                    kind: SpanKind::from_i32(p.kind),
                    start_unix_nano: p.start_time_unix_nano,
                    end_unix_nano: p.end_time_unix_nano,
                    attributes: ref_attrs(&p.attributes),
                    dropped_attributes_count: p.dropped_attributes_count,
                    events: p
                        .events
                        .iter()
                        .map(|e| SpanEvent {
                            time_unix_nano: e.time_unix_nano,
                            name: e.name.clone(),
                            attributes: ref_attrs(&e.attributes),
                            dropped_attributes_count: e.dropped_attributes_count,
                        })
                        .collect(),
                    dropped_events_count: p.dropped_events_count,
                    links: p
                        .links
                        .iter()
                        .map(|l| SpanLink {
                            trace_id: TraceId(arr(&l.trace_id)),
                            span_id: arr(&l.span_id),
                            trace_state: l.trace_state.clone(),
                            attributes: ref_attrs(&l.attributes),
                            dropped_attributes_count: l.dropped_attributes_count,
                            flags: l.flags,
                        })
                        .collect(),
                    dropped_links_count: p.dropped_links_count,
                    status_code: SStatus::from_i32(p.status.as_ref().map_or(0, |s| s.code)),
                    status_message: p
                        .status
                        .as_ref()
                        .map_or(String::new(), |s| s.message.clone()),
                })
                .collect();
            out.push(SpanBatch {
                resource: resource.clone(),
                scope,
                spans,
            });
        }
    }
    out
}

#[test]
fn protobuf_decoding_matches_prost_field_by_field() {
    let req = request((1..=6).map(full_span).collect());
    let decoded = wire::decode(&req.encode_to_vec()).unwrap();
    assert_eq!(decoded.spans, 6);
    assert_eq!(decoded.rejected, 0);
    assert_eq!(decoded.batches, reference(&req));
    // Spot checks that the reference itself is what we think.
    let s = &decoded.batches[0].spans[1];
    assert_eq!(s.parent_span_id, Some(arr(&sid(102))));
    assert_eq!(s.kind, SpanKind::Server);
    assert_eq!(s.status_code, SStatus::Error);
    assert_eq!(s.flags, 0x301);
    assert_eq!(decoded.batches[0].resource.service_name(), Some("checkout"));
}

#[test]
fn spans_of_one_resource_share_the_resource_arc() {
    let mut req = request(vec![full_span(1)]);
    let mut second = req.resource_spans[0].scope_spans[0].clone();
    second.scope.as_mut().unwrap().name = "other".into();
    second.spans = vec![full_span(2)];
    req.resource_spans[0].scope_spans.push(second);
    let decoded = wire::decode(&req.encode_to_vec()).unwrap();
    assert_eq!(decoded.batches.len(), 2);
    assert!(Arc::ptr_eq(
        &decoded.batches[0].resource,
        &decoded.batches[1].resource
    ));
    assert_eq!(decoded.batches[1].scope.name, "other");
}

#[test]
fn spans_with_bad_ids_are_rejected_individually() {
    let mut zero = full_span(2);
    zero.trace_id = vec![0; 16];
    let mut short = full_span(3);
    short.span_id = vec![1, 2, 3];
    let mut bad_parent = full_span(4);
    bad_parent.parent_span_id = vec![1; 5];
    let mut zero_parent = full_span(5);
    zero_parent.parent_span_id = vec![0; 8];
    let req = request(vec![full_span(1), zero, short, bad_parent, zero_parent]);
    let d = wire::decode(&req.encode_to_vec()).unwrap();
    assert_eq!((d.spans, d.rejected, d.accepted()), (5, 3, 2));
    assert_eq!(d.batches[0].spans.len(), 2);
    // An all-zero parent means "root".
    assert_eq!(d.batches[0].spans[1].parent_span_id, None);
    assert_eq!(d.reasons.len(), 3, "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("all-zero")));
}

#[test]
fn malformed_protobuf_is_an_error_not_a_panic() {
    let bytes = request(vec![full_span(1)]).encode_to_vec();
    for cut in 1..bytes.len() {
        // Every strict prefix is either an error or (at a field boundary) a smaller request;
        // never a panic.
        let _ = wire::decode(&bytes[..cut]);
    }
    assert_eq!(
        wire::decode(&bytes[..bytes.len() - 3]),
        Err(wire::DecodeError::Truncated)
    );
    // Field 1 of the request with the varint wire type.
    assert!(matches!(
        wire::decode(&[0x08, 0x01]),
        Err(wire::DecodeError::BadWireType { field: 1, .. })
    ));
    // Invalid UTF-8 in a span name.
    let mut s = full_span(1);
    s.name = "X".into();
    let mut bytes = request(vec![s]).encode_to_vec();
    let at = bytes.iter().position(|b| *b == b'X').unwrap();
    bytes[at] = 0xff;
    assert_eq!(wire::decode(&bytes), Err(wire::DecodeError::BadUtf8));
}

#[test]
fn unknown_fields_are_skipped() {
    let mut bytes = request(vec![full_span(1)]).encode_to_vec();
    // Field 99 (varint) at the top level, and a length-delimited field 50.
    bytes.extend_from_slice(&[0x98, 0x06, 0x05, 0x92, 0x03, 0x02, b'h', b'i']);
    let d = wire::decode(&bytes).unwrap();
    assert_eq!(d.batches, reference(&request(vec![full_span(1)])));
}

fn json_request() -> String {
    // What the OpenTelemetry Collector / SDK JSON exporters send (hex ids, int64 as strings,
    // enums as numbers or names).
    r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}],"droppedAttributesCount":7},
      "scopeSpans":[{"scope":{"name":"io.opentelemetry.http","version":"1.2.3","attributes":[{"key":"scope.attr","value":{"intValue":"9"}}],"droppedAttributesCount":1},
        "spans":[{"traceId":"abababababababababababababababab01","spanId":"1020304050607001","traceState":"k=v","flags":769,
          "name":"GET /item/1","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1700000000000000001","endTimeUnixNano":"1700000000250000001",
          "attributes":[{"key":"http.method","value":{"stringValue":"GET"}},{"key":"http.status_code","value":{"intValue":"-200"}},
            {"key":"ratio","value":{"doubleValue":0.25}},{"key":"ok","value":{"boolValue":true}},{"key":"raw","value":{"bytesValue":"AJ//"}},
            {"key":"list","value":{"arrayValue":{"values":[{"intValue":1},{}]}}},
            {"key":"map","value":{"kvlistValue":{"values":[{"key":"inner","value":{"stringValue":"x"}}]}}}],
          "droppedAttributesCount":3,
          "events":[{"timeUnixNano":"1700000000100000000","name":"exception","attributes":[{"key":"exception.message","value":{"stringValue":"boom"}}],"droppedAttributesCount":1}],
          "droppedEventsCount":4,
          "links":[{"traceId":"LINKTRACE","spanId":"10203040506070c8","traceState":"a=b","attributes":[{"key":"link.kind","value":{"stringValue":"follows"}}],"droppedAttributesCount":2,"flags":1}],
          "droppedLinksCount":5,"status":{"message":"failed","code":2}}],
        "schemaUrl":"https://opentelemetry.io/schemas/1.21.0"}],
      "schemaUrl":"https://opentelemetry.io/schemas/1.20.0"}]}"#
        .replace("abababababababababababababababab01", &hex(&tid(1)))
        .replace("LINKTRACE", &hex(&tid(200)))
}

fn hex(b: &[u8]) -> String {
    sextant_storage::traces::hex(b)
}

#[test]
fn json_decoding_matches_the_protobuf_decoding_of_the_same_request() {
    let d = json::decode(json_request().as_bytes()).unwrap();
    assert_eq!(d.rejected, 0, "{:?}", d.reasons);
    assert_eq!(d.batches, reference(&request(vec![full_span(1)])));
}

#[test]
fn json_accepts_snake_case_and_numeric_enums_and_rejects_garbage() {
    let body = format!(
        r#"{{"resource_spans":[{{"scope_spans":[{{"spans":[{{"trace_id":"{}","span_id":"{}","kind":3,"start_time_unix_nano":5,"end_time_unix_nano":"9","status":{{"code":"STATUS_CODE_ERROR"}}}}]}}]}}]}}"#,
        hex(&tid(1)),
        hex(&sid(1))
    );
    let d = json::decode(body.as_bytes()).unwrap();
    let s = &d.batches[0].spans[0];
    assert_eq!(s.kind, SpanKind::Client);
    assert_eq!(s.status_code, SStatus::Error);
    assert_eq!(s.duration_nanos(), 4);
    for bad in [
        "[]",
        "{\"resourceSpans\":{}}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"xyz\"}]}]}]}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"kind\":\"SPAN_KIND_BOGUS\"}]}]}]}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"startTimeUnixNano\":\"-1\"}]}]}]}",
        "not json",
    ] {
        assert!(json::decode(bad.as_bytes()).is_err(), "{bad}");
    }
}

// ---- HTTP endpoint ----

fn setup(opts: OtlpOptions) -> (Arc<NaiveTraceStore>, Router) {
    let db = Arc::new(Db::in_memory());
    let state = OtlpState::with_db(db, opts);
    let store = Arc::new(NaiveTraceStore::new());
    state.set_traces(store.clone(), None, 1 << 20);
    (store, http_router(state))
}

async fn post(
    app: &Router,
    ct: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::post("/v1/traces").header("content-type", ct);
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

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn stored_trace(store: &NaiveTraceStore, n: u8) -> Option<usize> {
    store
        .trace(&TraceId(arr(&tid(n))), None)
        .unwrap()
        .map(|t| t.span_count())
}

#[tokio::test]
async fn http_protobuf_gzip_and_json_requests_are_stored() {
    let (store, app) = setup(OtlpOptions::default());
    let body = request(vec![full_span(1), full_span(2)]).encode_to_vec();
    let (status, headers, resp) = post(&app, "application/x-protobuf", None, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(
        ExportTraceServiceResponse::decode(resp.as_slice()).unwrap(),
        ExportTraceServiceResponse {
            partial_success: None
        }
    );
    let body = gzip(&request(vec![full_span(3)]).encode_to_vec());
    let (status, _, _) = post(&app, "application/x-protobuf", Some("gzip"), body).await;
    assert_eq!(status, StatusCode::OK);
    let json = json_request().replace(&hex(&tid(1)), &hex(&tid(4)));
    let (status, _, resp) = post(&app, "application/json", None, json.into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp, b"{}");
    for n in 1..=4 {
        assert_eq!(stored_trace(&store, n), Some(1), "trace {n}");
    }
    let t = store.trace(&TraceId(arr(&tid(4))), None).unwrap().unwrap();
    assert_eq!(t.batches, {
        let mut r = reference(&request(vec![full_span(1)]));
        r[0].spans[0].trace_id = TraceId(arr(&tid(4)));
        r
    });
}

#[tokio::test]
async fn http_partial_success_reports_rejected_spans() {
    let (store, app) = setup(OtlpOptions::default());
    let mut zero = full_span(2);
    zero.span_id = vec![0; 8];
    let body = request(vec![full_span(1), zero]).encode_to_vec();
    let (status, _, resp) = post(&app, "application/x-protobuf", None, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let p = ExportTraceServiceResponse::decode(resp.as_slice())
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(p.rejected_spans, 1);
    assert!(p.error_message.contains("all-zero"), "{}", p.error_message);
    assert_eq!(stored_trace(&store, 1), Some(1));
    assert_eq!(stored_trace(&store, 2), None);
    // The JSON form of the same answer.
    let (_, _, resp) = post(
        &app,
        "application/json",
        None,
        json_request()
            .replace("1020304050607001", "0000000000000000")
            .into_bytes(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
}

#[tokio::test]
async fn http_errors_use_otlp_shapes() {
    let (_, app) = setup(OtlpOptions {
        max_body_bytes: 4096,
        ..OtlpOptions::default()
    });
    // The traces limit applies below the transport's.
    let small = {
        let state = OtlpState::with_db(Arc::new(Db::in_memory()), OtlpOptions::default());
        state.set_traces(Arc::new(NaiveTraceStore::new()), None, 100);
        http_router(state)
    };
    let body = request(vec![full_span(1)]).encode_to_vec();
    let (status, _, resp) = post(&small, "application/x-protobuf", None, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let st = super::super::RpcStatus::decode(resp.as_slice()).unwrap();
    assert!(
        st.message.contains("traces.max_request_bytes"),
        "{}",
        st.message
    );
    // Undecodable protobuf: 400 with a google.rpc.Status body.
    let (status, _, resp) = post(&app, "application/x-protobuf", None, vec![0x0a, 0x05, 1]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let st = super::super::RpcStatus::decode(resp.as_slice()).unwrap();
    assert_eq!(st.code, tonic::Code::InvalidArgument as i32);
    assert!(
        st.message.contains("ExportTraceServiceRequest"),
        "{}",
        st.message
    );
    // Bad JSON: 400 with a JSON status.
    let (status, _, resp) = post(&app, "application/json", None, b"{".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert!(v["message"].as_str().unwrap().contains("invalid JSON"));
    // Too big, plain and after gunzip: 413.
    let big = request((0..40).map(full_span).collect()).encode_to_vec();
    assert!(big.len() > 4096);
    let (status, _, _) = post(&app, "application/x-protobuf", None, big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) = post(&app, "application/x-protobuf", Some("gzip"), gzip(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Other content types: 415.
    let (status, _, _) = post(&app, "text/plain", None, b"x".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn traces_answer_501_without_a_trace_store_and_503_before_storage() {
    let state = OtlpState::new(OtlpOptions::default());
    let app = http_router(state.clone());
    let body = request(vec![full_span(1)]).encode_to_vec();
    let (status, headers, _) = post(&app, "application/x-protobuf", None, body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    state.set_db(Arc::new(Db::in_memory()));
    let (status, _, resp) = post(&app, "application/x-protobuf", None, body).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let st = super::super::RpcStatus::decode(resp.as_slice()).unwrap();
    assert_eq!(st.code, tonic::Code::Unimplemented as i32);
}
