//! The Tempo- and Jaeger-compatible APIs over real HTTP: a router over a `NaiveTraceStore`
//! seeded with nested traces across three services (frontend → cart → payment), queried the
//! way Grafana's Tempo and Jaeger data sources query (protobuf trace by id, TraceQL search,
//! tag autocomplete, Jaeger services/operations/search).

mod support;

use support::venv_python;

use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::Value;
use sextant_query::api::jaeger::jaeger_router;
use sextant_query::api::tempo::grpc::{
    streaming_querier_router, SearchRequest as GrpcSearchRequest,
    SearchResponse as GrpcSearchResponse, SEARCH_PATH,
};
use sextant_query::api::tempo::{tempo_router, TempoBuildInfo};
use sextant_storage::traces::{
    Attr, AttrValue, NaiveTraceStore, Resource, Scope, Span, SpanBatch, SpanKind, StatusCode,
    TraceAppender, TraceId, TraceSource,
};

/// Traces start at this Unix second, one trace per 10 s.
const T0: u64 = 1_700_000_000;
const MS: u64 = 1_000_000;

/// `tempopb.TraceByIDResponse` with its `trace` field only.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

fn trace_id(i: u8) -> TraceId {
    // Leading zero bytes, so the search id loses its leading zeros.
    let mut id = [0u8; 16];
    id[8] = 0x0a;
    id[15] = i + 1;
    TraceId(id)
}

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![
            Attr::new("service.name", AttrValue::Str(service.into())),
            Attr::new("host.name", AttrValue::Str(format!("{service}-host"))),
        ],
        ..Resource::default()
    })
}

#[allow(clippy::too_many_arguments)]
fn span(
    i: u8,
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: SpanKind,
    start_ms: u64,
    dur_ms: u64,
    attrs: Vec<Attr>,
    status: StatusCode,
) -> Span {
    let base = (T0 + 10 * i as u64) * 1_000_000_000;
    Span {
        trace_id: trace_id(i),
        span_id: [i + 1, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent.map(|p| [i + 1, 0, 0, 0, 0, 0, 0, p]),
        name: name.into(),
        kind,
        start_unix_nano: base + start_ms * MS,
        end_unix_nano: base + (start_ms + dur_ms) * MS,
        attributes: attrs,
        status_code: status,
        ..Span::default()
    }
}

/// Six complete traces (i = 0..6) of five spans:
/// frontend `GET /checkout` (server, 100+100·i ms) → frontend `POST /cart` (client) → cart
/// `POST /cart` (server; `http.response.status_code` 500 with status error when i % 3 == 0,
/// else 200) → { payment `charge` (server; `amount` = 10·i; error when i == 2), cart
/// `validate` (internal) }. Plus trace 6: one orphan cart span whose parent was never received.
fn seed() -> Arc<NaiveTraceStore> {
    let store = Arc::new(NaiveTraceStore::new());
    let (frontend, cart, payment) = (resource("frontend"), resource("cart"), resource("payment"));
    let scope = Arc::new(Scope {
        name: "shop".into(),
        version: "1.0".into(),
        ..Scope::default()
    });
    let batch = |res: &Arc<Resource>, spans: Vec<Span>| SpanBatch {
        resource: res.clone(),
        scope: scope.clone(),
        spans,
    };
    for i in 0..6u8 {
        let total = 100 + 100 * i as u64;
        let failed = i % 3 == 0;
        let code = if failed { 500 } else { 200 };
        let cart_status = if failed {
            StatusCode::Error
        } else {
            StatusCode::Unset
        };
        let pay_status = if i == 2 {
            StatusCode::Error
        } else {
            StatusCode::Ok
        };
        let batches = vec![
            batch(
                &frontend,
                vec![
                    span(
                        i,
                        1,
                        None,
                        "GET /checkout",
                        SpanKind::Server,
                        0,
                        total,
                        vec![Attr::new(
                            "http.request.method",
                            AttrValue::Str("GET".into()),
                        )],
                        StatusCode::Unset,
                    ),
                    span(
                        i,
                        2,
                        Some(1),
                        "POST /cart",
                        SpanKind::Client,
                        5,
                        total - 10,
                        vec![],
                        StatusCode::Unset,
                    ),
                ],
            ),
            batch(
                &cart,
                vec![
                    span(
                        i,
                        3,
                        Some(2),
                        "POST /cart",
                        SpanKind::Server,
                        6,
                        total - 12,
                        vec![Attr::new("http.response.status_code", AttrValue::Int(code))],
                        cart_status,
                    ),
                    span(
                        i,
                        5,
                        Some(3),
                        "validate",
                        SpanKind::Internal,
                        8,
                        2,
                        vec![],
                        StatusCode::Unset,
                    ),
                ],
            ),
            batch(
                &payment,
                vec![span(
                    i,
                    4,
                    Some(3),
                    "charge",
                    SpanKind::Server,
                    20,
                    50,
                    vec![Attr::new("amount", AttrValue::Int(10 * i as i64))],
                    pay_status,
                )],
            ),
        ];
        let out = store.append(batches).unwrap();
        assert_eq!(out.accepted_spans, 5);
    }
    store
        .append(vec![batch(
            &cart,
            vec![span(
                6,
                9,
                Some(8),
                "late",
                SpanKind::Server,
                0,
                30,
                vec![],
                StatusCode::Unset,
            )],
        )])
        .unwrap();
    store
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn start() -> Api {
        let store = seed();
        let source: Arc<dyn TraceSource> = store;
        let app = tempo_router(source.clone(), TempoBuildInfo::default())
            .merge(jaeger_router(source.clone()))
            .merge(streaming_querier_router(source));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Api {
            client: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    async fn raw(
        &self,
        path: &str,
        params: &[(&str, &str)],
        accept: Option<&str>,
    ) -> (u16, String, Vec<u8>) {
        let mut req = self
            .client
            .get(format!("{}{path}", self.base))
            .query(params);
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ctype, resp.bytes().await.unwrap().to_vec())
    }

    async fn json(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let (status, _, body) = self.raw(path, params, None).await;
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, v)
    }

    /// Runs a search and returns the sorted trace ids (index `i` of the fixture) it found.
    async fn search(&self, params: &[(&str, &str)]) -> (Vec<u8>, Value) {
        let (status, body) = self.json("/api/search", params).await;
        assert_eq!(status, 200, "{params:?}: {body}");
        let mut ids: Vec<u8> = body["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let id = TraceId::from_hex(t["traceID"].as_str().unwrap()).unwrap();
                id.0[15] - 1
            })
            .collect();
        ids.sort();
        (ids, body)
    }
}

fn hex_id(i: u8) -> String {
    trace_id(i).to_hex()
}

/// Jaeger prints 64-bit-high-zero ids as 16 hex digits.
fn jaeger_id(i: u8) -> String {
    hex_id(i)[16..].to_string()
}

#[tokio::test]
async fn trace_by_id_protobuf_and_json() {
    let api = Api::start().await;
    let id = hex_id(2);

    // v1 protobuf: tempopb.Trace == OTLP TracesData.
    let (status, ctype, body) = api
        .raw(
            &format!("/api/traces/{id}"),
            &[],
            Some("application/protobuf"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/protobuf");
    let data = TracesData::decode(body.as_slice()).unwrap();
    let spans: Vec<_> = data
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()))
        .collect();
    assert_eq!(spans.len(), 5);
    let by_name = |n: &str, kind: i32| {
        spans
            .iter()
            .find(|s| s.name == n && s.kind == kind)
            .unwrap_or_else(|| panic!("span {n}"))
    };
    let root = by_name("GET /checkout", 2);
    assert!(root.parent_span_id.is_empty());
    let client = by_name("POST /cart", 3);
    let server = by_name("POST /cart", 2);
    assert_eq!(client.parent_span_id, root.span_id);
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(by_name("charge", 2).parent_span_id, server.span_id);
    assert_eq!(by_name("charge", 2).status.as_ref().unwrap().code, 2);
    assert!(spans.iter().all(|s| s.trace_id == trace_id(2).0.to_vec()));
    let services: Vec<String> = data
        .resource_spans
        .iter()
        .map(|rs| {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            match attrs[0].value.as_ref().unwrap().value.as_ref().unwrap() {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                    s.clone()
                }
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(services, ["frontend", "cart", "payment"]);

    // v2 protobuf: TraceByIDResponse { trace = 1 }; ids without leading zeros work too.
    let short = id.trim_start_matches('0');
    let (status, _, body) = api
        .raw(
            &format!("/api/v2/traces/{short}"),
            &[("start", "1699999000"), ("end", "1700001000")],
            Some("application/protobuf"),
        )
        .await;
    assert_eq!(status, 200);
    let resp = TraceByIdResponse::decode(body.as_slice()).unwrap();
    let inner = resp.trace.unwrap();
    assert_eq!(inner, data);

    // v1 JSON: jsonpb with base64 ids.
    let (status, v) = api.json(&format!("/api/traces/{id}"), &[]).await;
    assert_eq!(status, 200);
    let batches = v["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    let s0 = &batches[0]["scopeSpans"][0]["spans"][0];
    assert_eq!(s0["traceId"], "AAAAAAAAAAAKAAAAAAAAAw==");
    assert_eq!(s0["kind"], "SPAN_KIND_SERVER");
    assert_eq!(s0["name"], "GET /checkout");
    assert_eq!(
        s0["startTimeUnixNano"],
        ((T0 + 20) * 1_000_000_000).to_string()
    );
    assert!(s0.get("parentSpanId").is_none());
    assert_eq!(batches[0]["scopeSpans"][0]["scope"]["name"], "shop");
    let cart_server = &batches[1]["scopeSpans"][0]["spans"][0];
    assert_eq!(
        cart_server["attributes"][0]["value"]["intValue"], "200",
        "{cart_server}"
    );
    // v2 JSON wraps the trace.
    let (status, v2) = api.json(&format!("/api/v2/traces/{id}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(v2["trace"]["resourceSpans"], v["batches"]);

    // Errors: unknown id 404, bad id 400, both plain text.
    let (status, ctype, body) = api
        .raw(
            &format!("/api/traces/{}", "f".repeat(32)),
            &[],
            Some("application/protobuf"),
        )
        .await;
    assert_eq!(status, 404);
    assert!(ctype.starts_with("text/plain"));
    assert!(String::from_utf8_lossy(&body).contains("trace not found"));
    let (status, v) = api.json("/api/traces/xyz-not-hex", &[]).await;
    assert_eq!(status, 400);
    assert!(v.as_str().unwrap().contains("invalid trace id"), "{v}");
    let (status, _) = api
        .json(&format!("/api/traces/{}", "1".repeat(33)), &[])
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn traceql_searches_find_exactly_the_expected_traces() {
    let api = Api::start().await;
    let cases: &[(&str, &[u8])] = &[
        ("{}", &[0, 1, 2, 3, 4, 5, 6]),
        (
            r#"{ resource.service.name = "payment" && status = error }"#,
            &[2],
        ),
        ("{ span.http.response.status_code >= 500 }", &[0, 3]),
        ("{ .http.response.status_code = 200 }", &[1, 2, 4, 5]),
        (
            r#"{ resource.service.name = "frontend" } >> { resource.service.name = "payment" }"#,
            &[0, 1, 2, 3, 4, 5],
        ),
        (
            r#"{ name = "POST /cart" && kind = client } > { kind = server }"#,
            &[0, 1, 2, 3, 4, 5],
        ),
        (
            r#"{ name = "charge" } ~ { name = "validate" }"#,
            &[0, 1, 2, 3, 4, 5],
        ),
        (
            r#"{ name = "charge" } < { name = "POST /cart" }"#,
            &[0, 1, 2, 3, 4, 5],
        ),
        (r#"{ name = "validate" } > { }"#, &[]),
        ("{ traceDuration > 350ms }", &[3, 4, 5]),
        (
            "{ trace:duration <= 200ms && span:kind = server }",
            &[0, 1, 6],
        ),
        (
            r#"{ rootServiceName = "frontend" && .amount >= 30 }"#,
            &[3, 4, 5],
        ),
        (
            r#"{ .amount > 5 && .amount < 25 } || { status = error && .amount = nil }"#,
            &[0, 1, 2, 3],
        ),
        (
            r#"{ resource.service.name =~ "pay.*" && .amount != 0 } && { span.http.response.status_code = 500 }"#,
            &[3],
        ),
        (r#"{ name !~ "GET.*|POST.*|charge|validate" }"#, &[6]),
        ("{ } | count() > 4", &[0, 1, 2, 3, 4, 5]),
        ("{ kind = server } | avg(duration) > 250ms", &[3, 4, 5]),
        (r#"{ .amount >= 0 } | max(.amount) >= 40"#, &[4, 5]),
        (r#"{ status = error } | count() = 2"#, &[]),
        (
            r#"({ status = error } | count() = 1) && { resource.service.name = "payment" && status = ok }"#,
            &[0, 3],
        ),
    ];
    for (q, want) in cases {
        let (ids, body) = api.search(&[("q", q), ("limit", "100")]).await;
        assert_eq!(&ids, want, "query {q}: {body}");
    }

    // Time range (Unix seconds), duration bounds, legacy tags, limit.
    let (ids, _) = api
        .search(&[
            ("q", "{}"),
            ("start", &(T0 + 15).to_string()),
            ("end", &(T0 + 35).to_string()),
        ])
        .await;
    assert_eq!(ids, [2, 3]);
    let (ids, _) = api
        .search(&[("tags", "service.name=payment"), ("minDuration", "450ms")])
        .await;
    assert_eq!(ids, [4, 5]);
    let (ids, _) = api
        .search(&[
            ("tags", r#"name="POST /cart" http.response.status_code=500"#),
            ("maxDuration", "0.35s"),
        ])
        .await;
    assert_eq!(ids, [0]);
    let (ids, body) = api.search(&[("q", "{}"), ("limit", "2")]).await;
    assert_eq!(ids.len(), 2, "{body}");
}

#[tokio::test]
async fn search_response_has_tempos_shape() {
    let api = Api::start().await;
    let (_, body) = api
        .search(&[
            (
                "q",
                r#"{ resource.service.name = "cart" } | select(span.http.response.status_code)"#,
            ),
            ("spss", "1"),
        ])
        .await;
    let traces = body["traces"].as_array().unwrap();
    // Most recent first; the orphan trace 6 has no root.
    assert_eq!(traces[0]["traceID"], "a00000000000007");
    assert_eq!(traces[0]["rootServiceName"], "<root span not yet received>");
    assert!(traces[0].get("rootTraceName").is_none());
    let t3 = traces
        .iter()
        .find(|t| t["traceID"] == "a00000000000004")
        .unwrap();
    assert_eq!(t3["rootServiceName"], "frontend");
    assert_eq!(t3["rootTraceName"], "GET /checkout");
    assert_eq!(t3["durationMs"], 400);
    assert_eq!(
        t3["startTimeUnixNano"],
        ((T0 + 30) * 1_000_000_000).to_string()
    );
    let set = &t3["spanSets"][0];
    assert_eq!(set["matched"], 2);
    assert_eq!(set["spans"].as_array().unwrap().len(), 1, "spss=1");
    assert_eq!(t3["spanSet"], *set);
    let sp = &set["spans"][0];
    assert_eq!(sp["spanID"], "0400000000000003");
    assert_eq!(sp["name"], "POST /cart");
    assert_eq!(sp["durationNanos"], (388 * MS).to_string());
    assert_eq!(
        sp["attributes"],
        serde_json::json!([
            {"key": "service.name", "value": {"stringValue": "cart"}},
            {"key": "http.response.status_code", "value": {"intValue": "500"}},
        ])
    );
    assert_eq!(body["metrics"]["inspectedTraces"], 7);

    // by() splits spansets and labels them.
    let (_, body) = api
        .search(&[
            ("q", "{ } | by(resource.service.name)"),
            ("start", &(T0 + 50).to_string()),
            ("end", &(T0 + 55).to_string()),
        ])
        .await;
    let sets = body["traces"][0]["spanSets"].as_array().unwrap();
    let labels: Vec<(&str, u64)> = sets
        .iter()
        .map(|s| {
            (
                s["attributes"][0]["value"]["stringValue"].as_str().unwrap(),
                s["matched"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(labels, [("cart", 2), ("frontend", 2), ("payment", 1)]);
    assert_eq!(sets[0]["attributes"][0]["key"], "by(resource.service.name)");

    // Bad TraceQL: 400 with a positioned plain-text message.
    let (status, v) = api.json("/api/search", &[("q", "{ .a = }")]).await;
    assert_eq!(status, 400);
    let msg = v.as_str().unwrap();
    assert!(
        msg.starts_with("invalid TraceQL query: parse error at line 1, col 8"),
        "{msg}"
    );
    let (status, v) = api.json("/api/search", &[("q", "{ .a =~ \"(\" }")]).await;
    assert_eq!(status, 400);
    assert!(v.as_str().unwrap().contains("invalid regex"), "{v}");
    let (status, _) = api
        .json("/api/search", &[("start", "20"), ("end", "10")])
        .await;
    assert_eq!(status, 400);
    let (status, _) = api.json("/api/search", &[("minDuration", "fast")]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn tags_echo_and_buildinfo() {
    let api = Api::start().await;
    let (status, _, body) = api.raw("/api/echo", &[], None).await;
    assert_eq!((status, body.as_slice()), (200, b"echo".as_slice()));
    let (_, v) = api.json("/api/status/buildinfo", &[]).await;
    assert_eq!(v["version"], TempoBuildInfo::default().version);

    let (_, v) = api.json("/api/search/tags", &[]).await;
    assert_eq!(
        v["tagNames"],
        serde_json::json!([
            "amount",
            "host.name",
            "http.request.method",
            "http.response.status_code",
            "service.name"
        ])
    );
    let (_, v) = api
        .json("/api/v2/search/tags", &[("scope", "resource")])
        .await;
    assert_eq!(
        v["scopes"],
        serde_json::json!([{"name": "resource", "tags": ["host.name", "service.name"]}])
    );
    let (_, v) = api.json("/api/v2/search/tags", &[]).await;
    let names: Vec<&str> = v["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["span", "resource", "intrinsic"]);
    assert!(v["scopes"][2]["tags"]
        .as_array()
        .unwrap()
        .contains(&"traceDuration".into()));
    let (status, _) = api.json("/api/v2/search/tags", &[("scope", "bogus")]).await;
    assert_eq!(status, 400);

    let (_, v) = api.json("/api/search/tag/service.name/values", &[]).await;
    assert_eq!(
        v["tagValues"],
        serde_json::json!(["cart", "frontend", "payment"])
    );
    let (_, v) = api
        .json("/api/v2/search/tag/resource.service.name/values", &[])
        .await;
    assert_eq!(
        v["tagValues"][0],
        serde_json::json!({"type": "string", "value": "cart"})
    );
    let (_, v) = api
        .json(
            "/api/v2/search/tag/name/values",
            &[("q", r#"{ resource.service.name = "cart" }"#)],
        )
        .await;
    let names: Vec<&str> = v["tagValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["POST /cart", "late", "validate"]);
    let (_, v) = api
        .json(
            "/api/v2/search/tag/span.http.response.status_code/values",
            &[],
        )
        .await;
    assert_eq!(
        v["tagValues"],
        serde_json::json!([{"type": "int", "value": "200"}, {"type": "int", "value": "500"}])
    );
    let (_, v) = api.json("/api/v2/search/tag/status/values", &[]).await;
    assert_eq!(
        v["tagValues"][0],
        serde_json::json!({"type": "keyword", "value": "error"})
    );
    let (status, _) = api.json("/api/v2/search/tag/resource./values", &[]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn jaeger_api_under_prefix() {
    let api = Api::start().await;
    let (_, v) = api.json("/jaeger/api/services", &[]).await;
    assert_eq!(
        v["data"],
        serde_json::json!(["cart", "frontend", "payment"])
    );
    assert_eq!(v["total"], 3);
    assert!(v["errors"].is_null());
    let (_, v) = api.json("/jaeger/api/services/cart/operations", &[]).await;
    assert_eq!(
        v["data"],
        serde_json::json!(["POST /cart", "late", "validate"])
    );
    let (_, v) = api
        .json(
            "/jaeger/api/operations",
            &[("service", "frontend"), ("spanKind", "client")],
        )
        .await;
    assert_eq!(
        v["data"],
        serde_json::json!([{"name": "POST /cart", "spanKind": "client"}])
    );

    // Trace by id: Jaeger's model with CHILD_OF references and processes.
    let (status, v) = api
        .json(&format!("/jaeger/api/traces/{}", hex_id(1)), &[])
        .await;
    assert_eq!(status, 200);
    let t = &v["data"][0];
    assert_eq!(t["traceID"], jaeger_id(1));
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 5);
    let charge = spans
        .iter()
        .find(|s| s["operationName"] == "charge")
        .unwrap();
    assert_eq!(
        charge["references"],
        serde_json::json!([{"refType": "CHILD_OF", "traceID": jaeger_id(1), "spanID": "0200000000000003"}])
    );
    assert_eq!(charge["duration"], 50_000);
    assert_eq!(charge["startTime"], (T0 + 10) * 1_000_000 + 20_000);
    let pid = charge["processID"].as_str().unwrap();
    assert_eq!(t["processes"][pid]["serviceName"], "payment");
    assert_eq!(
        t["processes"][pid]["tags"],
        serde_json::json!([{"key": "host.name", "type": "string", "value": "payment-host"}])
    );
    assert!(charge["tags"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"key": "amount", "type": "int64", "value": 10})));
    let (status, v) = api
        .json(&format!("/jaeger/api/traces/{}", "e".repeat(32)), &[])
        .await;
    assert_eq!(status, 404);
    assert_eq!(v["errors"][0]["code"], 404);

    // Search: one span must match service, operation, tags and duration together.
    let (status, v) = api
        .json(
            "/jaeger/api/traces",
            &[
                ("service", "cart"),
                ("operation", "POST /cart"),
                ("tags", r#"{"http.response.status_code":"500"}"#),
                ("minDuration", "300ms"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [jaeger_id(3)]);
    let start_us = ((T0 + 35) * 1_000_000).to_string();
    let (_, v) = api
        .json(
            "/jaeger/api/traces",
            &[
                ("service", "payment"),
                ("start", &start_us),
                ("limit", "10"),
            ],
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    // Service dependencies from parent/child spans (the orphan trace adds nothing).
    let end_ms = ((T0 + 3600) * 1000).to_string();
    let (_, v) = api
        .json(
            "/jaeger/api/dependencies",
            &[("endTs", &end_ms), ("lookback", "7200000")],
        )
        .await;
    assert_eq!(
        v["data"],
        serde_json::json!([
            {"parent": "cart", "child": "payment", "callCount": 6},
            {"parent": "frontend", "child": "cart", "callCount": 6},
        ])
    );
    let (_, v) = api
        .json(
            "/jaeger/api/dependencies",
            &[
                ("endTs", &((T0 - 10) * 1000).to_string()),
                ("lookback", "1000"),
            ],
        )
        .await;
    assert_eq!(v["data"], serde_json::json!([]));
    let (status, v) = api.json("/jaeger/api/traces", &[("operation", "x")]).await;
    assert_eq!(status, 400);
    assert!(v["errors"][0]["msg"].as_str().unwrap().contains("service"));
}

/// Grafana's streaming search: `tempopb.StreamingQuerier/Search` over gRPC (h2c) on the same
/// port as the HTTP API.
#[tokio::test]
async fn streaming_search_over_grpc() {
    let api = Api::start().await;
    let channel = tonic::transport::Endpoint::from_shared(api.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let search = |query: &str, limit: u32| GrpcSearchRequest {
        query: query.into(),
        limit,
        spans_per_span_set: 2,
        start: (T0 - 60) as u32,
        end: (T0 + 3600) as u32,
        ..GrpcSearchRequest::default()
    };
    grpc.ready().await.unwrap();
    let resp = grpc
        .server_streaming(
            tonic::Request::new(search(
                r#"{ resource.service.name = "payment" && status = error }"#,
                20,
            )),
            tonic::codegen::http::uri::PathAndQuery::from_static(SEARCH_PATH),
            tonic::codec::ProstCodec::<GrpcSearchRequest, GrpcSearchResponse>::default(),
        )
        .await
        .unwrap();
    let mut stream = resp.into_inner();
    let mut traces = Vec::new();
    let mut inspected = 0;
    while let Some(msg) = stream.message().await.unwrap() {
        inspected = msg.metrics.as_ref().unwrap().inspected_traces;
        traces.extend(msg.traces);
    }
    assert_eq!(traces.len(), 1);
    let t = &traces[0];
    assert_eq!(t.trace_id, "a00000000000003");
    assert_eq!(t.root_service_name, "frontend");
    assert_eq!(t.root_trace_name, "GET /checkout");
    assert_eq!(t.duration_ms, 300);
    assert_eq!(t.span_sets.len(), 1);
    assert_eq!(t.span_sets[0].matched, 1);
    assert_eq!(t.span_sets[0].spans[0].name, "charge");
    assert_eq!(t.span_sets[0].spans[0].span_id, "0300000000000004");
    assert_eq!(t.span_set.as_ref(), Some(&t.span_sets[0]));
    assert!(inspected >= 1);

    grpc.ready().await.unwrap();
    let err = grpc
        .server_streaming(
            tonic::Request::new(search("{ .a = ", 20)),
            tonic::codegen::http::uri::PathAndQuery::from_static(SEARCH_PATH),
            tonic::codec::ProstCodec::<GrpcSearchRequest, GrpcSearchResponse>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("parse error at line 1"),
        "{}",
        err.message()
    );

    // The HTTP API still answers on the same port.
    let (status, _, body) = api.raw("/api/echo", &[], None).await;
    assert_eq!((status, body.as_slice()), (200, b"echo".as_slice()));
}

/// A real peer reads our encodings: Python's official OTLP protobuf classes decode the
/// protobuf body, and Python's proto3 JSON parser reads the JSON body (base64 ids, enum names,
/// int64 strings) into the same messages.
#[tokio::test]
async fn python_protobuf_reads_our_trace_encodings() {
    let api = Api::start().await;
    let id = hex_id(3);
    let (_, _, pb) = api
        .raw(
            &format!("/api/traces/{id}"),
            &[],
            Some("application/protobuf"),
        )
        .await;
    let (_, json) = api.json(&format!("/api/traces/{id}"), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trace.pb"), &pb).unwrap();
    std::fs::write(dir.path().join("trace.json"), json.to_string()).unwrap();
    let script = r#"
import json, sys
from google.protobuf import json_format
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData, ResourceSpans
d = sys.argv[1]
pb = TracesData.FromString(open(d + "/trace.pb", "rb").read())
batches = json.load(open(d + "/trace.json"))["batches"]
same = len(batches) == len(pb.resource_spans) and all(
    json_format.ParseDict(b, ResourceSpans()) == rs for b, rs in zip(batches, pb.resource_spans))
spans = {s.span_id.hex(): s for rs in pb.resource_spans for ss in rs.scope_spans for s in ss.spans}
edges = sorted((s.name, spans[s.parent_span_id.hex()].name if s.parent_span_id else "")
               for s in spans.values())
print(json.dumps({"same": same, "trace_ids": sorted({s.trace_id.hex() for s in spans.values()}),
                  "edges": edges}))
"#;
    let out = std::process::Command::new(venv_python())
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["same"], true, "JSON and protobuf disagree: {v}");
    assert_eq!(v["trace_ids"], serde_json::json!([id]));
    assert_eq!(
        v["edges"],
        serde_json::json!([
            ["GET /checkout", ""],
            ["POST /cart", "GET /checkout"],
            ["POST /cart", "POST /cart"],
            ["charge", "POST /cart"],
            ["validate", "POST /cart"],
        ])
    );
}
