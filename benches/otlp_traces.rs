//! OTLP traces decode speed: 2000-span `ExportTraceServiceRequest`s of realistic spans
//! (12 services, nested server/client/db spans, 15 attributes each, ~2% errors, ~330 bytes
//! per span on the wire, as the corpus), decoded by the one-pass decoder into the store's span model, and
//! decoded plus folded into the span-metrics / service-graph generator.
//!
//! Also the store write path: decode + `append` into `TraceStore::in_memory` (old) against
//! `wire::encode` + `append_encoded` (new, no span structs).
//!
//! `cargo bench --bench otlp_traces` (throughput is reported per span).

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as AV, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use sextant_ingest::otlp::traces::wire;
use sextant_ingest::spanmetrics::{SpanMetrics, SpanMetricsOptions};
use sextant_storage::traces::{SpanBatchEncoder, TraceAppender};

const SERVICES: [&str; 12] = [
    "frontend",
    "cart",
    "checkout",
    "payment",
    "shipping",
    "email",
    "currency",
    "ads",
    "recommendation",
    "catalog",
    "quote",
    "fraud",
];

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AV::StringValue(v.into())),
        }),
    }
}

fn i(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AV::IntValue(v)),
        }),
    }
}

/// One request of `n` spans from one service: traces of 1 server span, 1–2 client spans and
/// a db span, each with ~15 attributes.
fn request(rng: &mut Rng, service: &str, n: usize) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity(n);
    let t0 = 1_700_000_000_000_000_000u64;
    while spans.len() < n {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&rng.next().to_le_bytes());
        trace_id[8..].copy_from_slice(&rng.next().to_le_bytes());
        let root = rng.next().to_le_bytes();
        let start = t0 + rng.below(60_000_000_000);
        let route = format!("/api/v1/{}/{}", service, rng.below(20));
        for k in 0..4 {
            let span_id = if k == 0 {
                root
            } else {
                rng.next().to_le_bytes()
            };
            let (kind, name) = match k {
                0 => (2, format!("GET {route}")),
                3 => (3, "SELECT orders".to_string()),
                _ => (3, format!("POST /{}", SERVICES[rng.below(12) as usize])),
            };
            let dur = 1_000_000 + rng.below(200_000_000);
            let mut attributes = vec![
                s("http.request.method", if k == 0 { "GET" } else { "POST" }),
                s("http.route", route.clone()),
                i("http.response.status_code", 200),
                s("server.address", service),
                i("server.port", 8080),
                s("network.protocol.version", "1.1"),
                s(
                    "client.address",
                    format!("10.0.{}.{}", rng.below(255), rng.below(255)),
                ),
                i("http.request.body.size", rng.below(4096) as i64),
                i("http.response.body.size", rng.below(65536) as i64),
                s("thread.name", format!("w-{}", rng.below(32))),
                i("thread.id", rng.below(1000) as i64),
                s("code.function", "handle"),
                s("net.host.name", "node-3"),
                s("tenant", format!("t{}", rng.below(50))),
                i("retry", 0),
            ];
            if k == 3 {
                attributes.push(s("db.system", "postgresql"));
                attributes.push(s("db.name", "orders"));
            }
            let error = rng.below(50) == 0;
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: if k == 0 { vec![] } else { root.to_vec() },
                name,
                kind,
                start_time_unix_nano: start + k as u64 * 1000,
                end_time_unix_nano: start + dur,
                attributes,
                status: Some(Status {
                    message: if error {
                        "internal error".into()
                    } else {
                        String::new()
                    },
                    code: if error { 2 } else { 0 },
                }),
                flags: 0x100,
                ..Span::default()
            });
            if spans.len() == n {
                break;
            }
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s("service.name", service),
                    s("service.namespace", "shop"),
                    s("service.version", "1.4.2"),
                    s("deployment.environment", "production"),
                    s("host.name", format!("{service}-7d9f8c-abcde")),
                    s("k8s.pod.name", format!("{service}-7d9f8c-abcde")),
                    s("k8s.namespace.name", "shop"),
                    s("telemetry.sdk.language", "java"),
                    s("telemetry.sdk.name", "opentelemetry"),
                    s("telemetry.sdk.version", "1.32.0"),
                ],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.tomcat-10.0".into(),
                    version: "1.32.0-alpha".into(),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        }],
    }
}

fn bench(c: &mut Criterion) {
    const SPANS: usize = 2000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let bodies: Vec<Vec<u8>> = SERVICES
        .iter()
        .map(|svc| request(&mut rng, svc, SPANS).encode_to_vec())
        .collect();
    let avg = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    eprintln!(
        "otlp_traces: {} requests of {SPANS} spans, {avg} bytes each ({} bytes/span)",
        bodies.len(),
        avg / SPANS
    );
    let mut g = c.benchmark_group("otlp_traces");
    g.throughput(Throughput::Elements(SPANS as u64));
    let mut at = 0;
    g.bench_function("decode_2000_spans", |b| {
        b.iter(|| {
            at = (at + 1) % bodies.len();
            let d = wire::decode(black_box(&bodies[at])).unwrap();
            assert_eq!(d.spans, SPANS);
            d
        })
    });
    let generator = SpanMetrics::new(
        Arc::new(sextant_storage::Db::in_memory()),
        SpanMetricsOptions::default(),
    )
    .unwrap();
    g.bench_function("decode_and_span_metrics_2000_spans", |b| {
        b.iter(|| {
            at = (at + 1) % bodies.len();
            let d = wire::decode(black_box(&bodies[at])).unwrap();
            generator.observe(&d.batches);
            d
        })
    });
    let old_store = sextant_storage::traces::TraceStore::in_memory();
    g.bench_function("old_decode_and_append_2000_spans", |b| {
        b.iter(|| {
            at = (at + 1) % bodies.len();
            let d = wire::decode(black_box(&bodies[at])).unwrap();
            old_store.append(d.batches).unwrap()
        })
    });
    let new_store = sextant_storage::traces::TraceStore::in_memory();
    g.bench_function("new_encode_and_append_encoded_2000_spans", |b| {
        b.iter(|| {
            at = (at + 1) % bodies.len();
            let raw = black_box(&bodies[at]);
            let mut enc = SpanBatchEncoder::with_capacity(raw.len() + raw.len() / 8);
            let counts = wire::encode(raw, &mut enc).unwrap();
            assert_eq!(counts.spans, SPANS);
            new_store.append_encoded(enc.finish().unwrap()).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
