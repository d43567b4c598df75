//! Traces end to end through the `sextant` binary: Python's OpenTelemetry SDK exports nested
//! traces across three services over OTLP/gRPC; Tempo's API returns each trace with every span
//! and its parent link (protobuf, as Grafana asks), TraceQL searches find exactly the traces the
//! exporter says match, span metrics and service-graph series answer in PromQL, and a latency
//! exemplar leads to a stored trace. A second test kills the server with SIGKILL after
//! acknowledged OTLP/HTTP writes (some flushed to a block, some only in the WAL) and finds every
//! span after the restart.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use serde_json::Value;
use support::{free_port, poll, urlencode, venv_python, Server};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SLOs on span metrics alone (no metrics pipeline): payment's server-span availability, and
/// the share of checkout page loads faster than 2.048 s (a span-metrics latency bucket).
const SPAN_SLOS: &str = r#"version: "prometheus/v1"
service: shop
slos:
  - name: payment-availability
    objective: 99
    sli:
      events:
        error_query: sum(rate(traces_spanmetrics_calls_total{service="payment",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"}[{{.window}}]))
        total_query: sum(rate(traces_spanmetrics_calls_total{service="payment",span_kind="SPAN_KIND_SERVER"}[{{.window}}]))
    alerting: {name: PaymentErrors}
  - name: checkout-latency
    objective: 90
    sli:
      latency: {histogram: traces_spanmetrics_latency, selector: '{service="frontend",span_name="GET /checkout"}', threshold: 2.048}
    alerting: {name: CheckoutSlow}
"#;

fn config(dir: &std::path::Path, grpc: u16) -> std::path::PathBuf {
    let path = dir.join("sextant.yml");
    std::fs::write(dir.join("slos.yml"), SPAN_SLOS).unwrap();
    std::fs::write(
        &path,
        format!(
            "storage:\n  wal_fsync: never\notlp:\n  grpc_addr: 127.0.0.1:{grpc}\n  http_addr: \"off\"\nslo_files: [slos.yml]\ntraces:\n  span_metrics:\n    collection_interval: 1s\n  service_graph:\n    wait: 2s\n"
        ),
    )
    .unwrap();
    path
}

/// One span as stored: (parent span id hex, "" for a root; service; name), by span id hex.
type SpanTable = BTreeMap<String, (String, String, String)>;

/// `GET /api/traces/<id>` with `Accept: application/protobuf`, decoded as OTLP `TracesData`.
async fn trace_by_id(base: &str, id: &str) -> Option<SpanTable> {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/traces/{id}"))
        .header("Accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    if r.status() == 404 {
        return None;
    }
    assert_eq!(r.status(), 200, "{id}");
    let data = TracesData::decode(r.bytes().await.unwrap()).unwrap();
    let mut table = SpanTable::new();
    for rs in data.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(AV::StringValue(s)) => Some(s.clone()),
                    _ => None,
                },
            )
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                assert_eq!(hex(&s.trace_id), id, "every span carries the trace id");
                let dup = table.insert(
                    hex(&s.span_id),
                    (hex(&s.parent_span_id), service.clone(), s.name.clone()),
                );
                assert!(dup.is_none(), "span {} twice in {id}", hex(&s.span_id));
            }
        }
    }
    Some(table)
}

/// `/api/search` → the set of 32-digit trace ids (Tempo drops leading zeros).
async fn search(base: &str, q: &str, start: u64, end: u64) -> BTreeSet<String> {
    let url = format!(
        "{base}/api/search?q={}&start={start}&end={end}&limit=1000",
        urlencode(q)
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200, "{q}");
    let body: Value = r.json().await.unwrap();
    body["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("{q}: {body}"))
        .iter()
        .map(|t| format!("{:0>32}", t["traceID"].as_str().unwrap()))
        .collect()
}

async fn scalar(base: &str, q: &str) -> Option<f64> {
    let body: Value = reqwest::get(format!("{base}/api/v1/query?query={}", urlencode(q)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = body["data"]["result"].as_array().unwrap().clone();
    assert!(result.len() <= 1, "{q}: {body}");
    result
        .first()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_traces_across_three_services_through_tempo_api_traceql_and_promql() {
    let python = venv_python();
    let tmp = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let cfg = config(tmp.path(), grpc);
    let server = Server::start(&cfg, &tmp.path().join("data"), &tmp.path().join("log")).await;
    let base = server.base.clone();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/three_services.py");
    let out = std::process::Command::new(&python)
        .args([script, "grpc", &format!("http://127.0.0.1:{grpc}"), "20"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
    let traces = sent["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 20);
    let start = sent["base_ns"].as_u64().unwrap() / 1_000_000_000 - 1;
    let end = start + 600;

    // Trace by id: every span, its parent and its service, exactly.
    for t in traces {
        let id = t["trace_id"].as_str().unwrap();
        let want: SpanTable = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["span_id"].as_str().unwrap().to_string(),
                    (
                        s["parent_span_id"].as_str().unwrap().to_string(),
                        s["service"].as_str().unwrap().to_string(),
                        s["name"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        let got = poll(Duration::from_secs(20), "trace by id", || async {
            trace_by_id(&base, id)
                .await
                .filter(|t| t.len() >= want.len())
        })
        .await;
        assert_eq!(got, want, "trace {id}");
    }
    // JSON (no Accept header): Tempo's `batches`, same span count.
    let first = traces[0]["trace_id"].as_str().unwrap();
    let json: Value = reqwest::get(format!("{base}/api/traces/{first}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let json_spans: usize = json["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().unwrap().iter())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(json_spans, traces[0]["spans"].as_array().unwrap().len());
    let missing = reqwest::get(format!("{base}/api/traces/{}", "ab".repeat(16)))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // TraceQL: each query's answer equals the exporter's own account.
    let ids = |pred: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
        traces
            .iter()
            .filter(|t| pred(t))
            .map(|t| t["trace_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = ids(&|_| true);
    let failed = ids(&|t| t["failed"].as_bool().unwrap());
    let slow = ids(&|t| t["slow"].as_bool().unwrap());
    assert!(!failed.is_empty() && failed.len() < all.len());
    assert!(!slow.is_empty() && slow.len() < all.len());
    for (q, want) in [
        ("{ status = error }", &failed),
        (
            r#"{ resource.service.name = "payment" && span.http.response.status_code >= 500 }"#,
            &failed,
        ),
        ("{ duration > 2s }", &slow),
        (r#"{ .http.route = "/api/pay" }"#, &all),
        (
            r#"{ resource.service.name = "frontend" } >> { resource.service.name = "payment" && status = error }"#,
            &failed,
        ),
        (r#"{ name = "render" } ~ { name = "POST checkout" }"#, &slow),
        (
            r#"{ kind = server } > { kind = internal && name = "validate cart" }"#,
            &all,
        ),
        (
            r#"{ resource.service.name = "payment" } | count() > 1"#,
            &all,
        ),
        ("{ } | max(duration) > 2s", &slow),
        (
            r#"{ rootServiceName = "frontend" && traceDuration > 1s }"#,
            &slow,
        ),
        (
            r#"{ .db.system.name =~ "post.*" && status != error }"#,
            &all,
        ),
        (r#"{ resource.service.name = "nope" }"#, &BTreeSet::new()),
    ] {
        assert_eq!(&search(&base, q, start, end).await, want, "{q}");
    }
    let bad = reqwest::get(format!("{base}/api/search?q={}", urlencode("{ status = }")))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Autocomplete and the Jaeger API see the three services.
    let values: Value = reqwest::get(format!(
        "{base}/api/v2/search/tag/resource.service.name/values?start={start}&end={end}"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let services: BTreeSet<&str> = values["tagValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["checkout", "frontend", "payment"])
    );
    let jaeger: Value = reqwest::get(format!("{base}/jaeger/api/services"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut jaeger_services: Vec<&str> = jaeger["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    jaeger_services.sort();
    assert_eq!(jaeger_services, ["checkout", "frontend", "payment"]);

    // RED metrics from the spans.
    poll(Duration::from_secs(30), "span metrics", || async {
        scalar(
            &base,
            r#"sum(traces_spanmetrics_calls_total{service="payment",span_kind="SPAN_KIND_SERVER"})"#,
        )
        .await
        .filter(|v| *v == 20.0)
    })
    .await;
    assert_eq!(
        scalar(
            &base,
            r#"sum(traces_spanmetrics_calls_total{service="payment",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"})"#
        )
        .await,
        Some(failed.len() as f64)
    );
    assert_eq!(
        scalar(
            &base,
            r#"sum(traces_spanmetrics_latency_count{service="frontend",span_name="render"})"#
        )
        .await,
        Some(slow.len() as f64)
    );
    // The slow render spans (2.5 s) are the only frontend INTERNAL spans above 2.048 s.
    assert_eq!(
        scalar(
            &base,
            r#"sum(traces_spanmetrics_latency_count{service="frontend",span_kind="SPAN_KIND_INTERNAL"}) - sum(traces_spanmetrics_latency_bucket{service="frontend",span_kind="SPAN_KIND_INTERNAL",le="2.048"})"#
        )
        .await,
        Some(slow.len() as f64)
    );
    for (client, server, total, failures) in [
        ("frontend", "checkout", 20.0, failed.len() as f64),
        ("checkout", "payment", 20.0, failed.len() as f64),
    ] {
        let q = format!(
            r#"sum(traces_service_graph_request_total{{client="{client}",server="{server}"}})"#
        );
        poll(Duration::from_secs(30), "service graph", || async {
            scalar(&base, &q).await.filter(|v| *v == total)
        })
        .await;
        assert_eq!(
            scalar(
                &base,
                &format!(
                    r#"sum(traces_service_graph_request_failed_total{{client="{client}",server="{server}"}})"#
                )
            )
            .await
            .unwrap_or(0.0),
            failures
        );
    }

    // SLOs defined on span metrics only: the SLI is what the exporter sent (payment servers:
    // a quarter failed; checkout page loads: a fifth took 2.7 s).
    for (slo, want) in [
        (
            "shop-payment-availability",
            1.0 - failed.len() as f64 / 20.0,
        ),
        ("shop-checkout-latency", 1.0 - slow.len() as f64 / 20.0),
    ] {
        let sli = poll(Duration::from_secs(30), "SLI on span metrics", || async {
            let v: Value = reqwest::get(format!("{base}/api/v1/slos/{slo}"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v["data"]["sli"].as_f64()
        })
        .await;
        assert!((sli - want).abs() < 1e-9, "{slo}: SLI {sli}, want {want}");
    }

    // An exemplar on the latency histogram leads to a trace that exists.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body: Value = reqwest::get(format!(
        "{base}/api/v1/query_exemplars?query={}&start={}&end={}",
        urlencode(r#"traces_spanmetrics_latency_bucket{service="checkout"}"#),
        now - 600,
        now + 600
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let exemplar_ids: BTreeSet<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["exemplars"].as_array().unwrap().clone())
        .map(|e| e["labels"]["trace_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!exemplar_ids.is_empty(), "{body}");
    for id in &exemplar_ids {
        assert!(all.contains(id), "exemplar names unknown trace {id}");
        let t = trace_by_id(&base, id).await.expect("exemplar's trace");
        assert!(t.values().any(|(_, service, _)| service == "checkout"));
    }
}

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AV::StringValue(v.into())),
        }),
    }
}

/// Trace `t` of a test run: 16 bytes with `t` in the last four.
fn trace_id(t: u32) -> Vec<u8> {
    let mut id = vec![0x7a; 16];
    id[12..].copy_from_slice(&t.to_be_bytes());
    id
}

/// A request with span `k` of each given trace (span 0 is the root, span k's parent is k-1).
fn request(traces: &[u32], k: u8, now_ns: u64) -> ExportTraceServiceRequest {
    let spans = traces
        .iter()
        .map(|&t| {
            let span_id = |k: u8| {
                let mut id = t.to_be_bytes().to_vec();
                id.extend([0x51, 0x52, 0x53, k + 1]);
                id
            };
            Span {
                trace_id: trace_id(t),
                span_id: span_id(k),
                parent_span_id: if k == 0 { Vec::new() } else { span_id(k - 1) },
                name: format!("op-{k}"),
                kind: 2,
                start_time_unix_nano: now_ns + u64::from(k) * 1000,
                end_time_unix_nano: now_ns + 1_000_000,
                attributes: vec![kv("step", &k.to_string())],
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "crashy")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_kill_9_with_flushed_and_unflushed_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), free_port());
    let data = tmp.path().join("data");
    let log = tmp.path().join("log");
    let mut server = Server::start(&cfg, &data, &log).await;
    let client = reqwest::Client::new();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 60_000_000_000;
    let traces: Vec<u32> = (1..=40).collect();
    let post = |req: ExportTraceServiceRequest| {
        let client = client.clone();
        let url = format!("{}/v1/traces", server.base);
        async move {
            let r = client
                .post(url)
                .header("Content-Type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    // Spans 0-2 of every trace, then a flush into a block; spans 3-4 only reach the WAL; span 5
    // of the first 20 traces as the last acknowledged write.
    for k in 0..3 {
        post(request(&traces, k, now_ns)).await;
    }
    let flushed = client
        .post(format!("{}/flush", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(flushed.status(), 204);
    for k in 3..5 {
        post(request(&traces, k, now_ns)).await;
    }
    post(request(&traces[..20], 5, now_ns)).await;
    server.kill();

    let server = Server::start(&cfg, &data, &log).await;
    for &t in &traces {
        let id = hex(&trace_id(t));
        let got = trace_by_id(&server.base, &id)
            .await
            .unwrap_or_else(|| panic!("trace {id} lost"));
        let want = if t <= 20 { 6 } else { 5 };
        assert_eq!(got.len(), want, "trace {id}: {got:?}");
        let roots = got.values().filter(|(p, _, _)| p.is_empty()).count();
        assert_eq!(roots, 1);
    }
    // Search sees the trace whole: its root (in the block) and its last span (WAL only).
    let start = now_ns / 1_000_000_000 - 1;
    let found = search(
        &server.base,
        r#"{ name = "op-0" } >> { name = "op-5" && resource.service.name = "crashy" }"#,
        start,
        start + 600,
    )
    .await;
    let want: BTreeSet<String> = traces[..20].iter().map(|&t| hex(&trace_id(t))).collect();
    assert_eq!(found, want);
}
