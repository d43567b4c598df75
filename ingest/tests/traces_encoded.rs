//! The direct protobuf → store encoding path (`wire::encode` + `append_encoded`) against the
//! reference path (`wire::decode` → `SpanBatch` → `append`): same counts, same errors, same
//! stored traces, the same autocomplete answers (tag names and values from the head summary),
//! and the same span metrics and service-graph series, on realistic, randomised, merged-field
//! and mutated (malformed) requests.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as AV, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use std::sync::Arc;

use prost::Message;
use sextant_ingest::otlp::traces::wire;
use sextant_ingest::spanmetrics::{HistogramMode, SpanMetrics, SpanMetricsOptions};
use sextant_storage::traces::{
    AttrScope, SpanBatchEncoder, SpanField, SpanFilter, TraceAppender, TraceId, TraceSearch,
    TraceSource, TraceStore,
};
use sextant_storage::Db;

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

fn kv(key: &str, v: AV) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn rand_value(rng: &mut Rng, depth: u32) -> Option<AV> {
    Some(match rng.below(if depth < 3 { 9 } else { 7 }) {
        0 => return None,
        1 => AV::StringValue(format!("s{}", rng.below(40))),
        2 => AV::BoolValue(rng.below(2) == 1),
        3 => AV::IntValue(rng.next() as i64),
        4 => AV::DoubleValue(rng.below(1000) as f64 / 7.0),
        5 => AV::BytesValue(vec![rng.below(256) as u8; rng.below(20) as usize]),
        6 => AV::StringValue("x".repeat(rng.below(200) as usize)),
        7 => AV::ArrayValue(ArrayValue {
            values: (0..rng.below(5))
                .map(|_| AnyValue {
                    value: rand_value(rng, depth + 1),
                })
                .collect(),
        }),
        _ => AV::KvlistValue(KeyValueList {
            values: rand_attrs(rng, depth + 1, 4),
        }),
    })
}

fn rand_attrs(rng: &mut Rng, depth: u32, max: u64) -> Vec<KeyValue> {
    (0..rng.below(max))
        .map(|i| KeyValue {
            key: format!("k{i}.{}", rng.below(5)),
            value: (rng.below(20) != 0).then(|| AnyValue {
                value: rand_value(rng, depth),
            }),
        })
        .collect()
}

fn id(rng: &mut Rng, n: usize) -> Vec<u8> {
    match rng.below(30) {
        0 => vec![0; n],
        1 => vec![1; n - 1],
        _ => (0..n).map(|_| rng.below(4) as u8 + 1).collect(),
    }
}

fn rand_request(rng: &mut Rng) -> ExportTraceServiceRequest {
    rand_request_with(rng, false)
}

/// A span id: random, or with `pool` often one of a few shared ids (so CLIENT and SERVER
/// spans pair up in the service graph).
fn span_id(rng: &mut Rng, pool: bool) -> Vec<u8> {
    if pool && rng.below(2) == 0 {
        vec![1 + rng.below(40) as u8; 8]
    } else {
        id(rng, 8)
    }
}

/// Span attributes; with `pool`, sometimes the service-graph ones too.
fn span_attrs(rng: &mut Rng, pool: bool) -> Vec<KeyValue> {
    let mut a = rand_attrs(rng, 0, 20);
    if pool {
        for key in ["db.system", "db.name", "peer.service", "db.namespace"] {
            if rng.below(6) == 0 {
                let v = match rng.below(5) {
                    0 => AV::StringValue(String::new()),
                    1 => AV::IntValue(3),
                    _ => AV::StringValue(format!("{key}-{}", rng.below(3))),
                };
                a.push(kv(key, v));
            }
        }
    }
    a
}

fn rand_request_with(rng: &mut Rng, pool: bool) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: (0..1 + rng.below(3))
            .map(|_| ResourceSpans {
                resource: (rng.below(8) != 0).then(|| Resource {
                    attributes: {
                        let mut a = rand_attrs(rng, 0, 5);
                        a.push(kv(
                            "service.name",
                            AV::StringValue(format!("svc{}", rng.below(4))),
                        ));
                        a
                    },
                    dropped_attributes_count: rng.below(2) as u32,
                    entity_refs: vec![],
                }),
                scope_spans: (0..rng.below(3))
                    .map(|_| ScopeSpans {
                        scope: (rng.below(4) != 0).then(|| InstrumentationScope {
                            name: format!("lib{}", rng.below(3)),
                            version: "1.0".into(),
                            attributes: rand_attrs(rng, 0, 2),
                            dropped_attributes_count: rng.below(2) as u32,
                        }),
                        spans: (0..rng.below(25))
                            .map(|_| {
                                let start = 1_700_000_000_000_000_000 + rng.below(1 << 40);
                                Span {
                                    trace_id: if pool {
                                        vec![1 + rng.below(3) as u8; 16]
                                    } else {
                                        id(rng, 16)
                                    },
                                    span_id: span_id(rng, pool),
                                    trace_state: if rng.below(5) == 0 {
                                        "a=1".into()
                                    } else {
                                        String::new()
                                    },
                                    parent_span_id: match rng.below(3) {
                                        0 => vec![],
                                        1 => vec![0; 8],
                                        _ => span_id(rng, pool),
                                    },
                                    flags: rng.below(512) as u32,
                                    name: format!("op{}", rng.below(9)),
                                    kind: rng.below(7) as i32,
                                    start_time_unix_nano: start,
                                    end_time_unix_nano: start + rng.below(1 << 30),
                                    attributes: span_attrs(rng, pool),
                                    dropped_attributes_count: rng.below(2) as u32,
                                    events: (0..rng.below(3))
                                        .map(|_| Event {
                                            time_unix_nano: start + rng.below(100),
                                            name: "ev".into(),
                                            attributes: rand_attrs(rng, 0, 3),
                                            dropped_attributes_count: rng.below(2) as u32,
                                        })
                                        .collect(),
                                    dropped_events_count: rng.below(2) as u32,
                                    links: (0..rng.below(3))
                                        .map(|_| Link {
                                            trace_id: id(rng, 16),
                                            span_id: id(rng, 8),
                                            trace_state: "l".into(),
                                            attributes: rand_attrs(rng, 0, 3),
                                            dropped_attributes_count: rng.below(2) as u32,
                                            flags: rng.below(300) as u32,
                                        })
                                        .collect(),
                                    dropped_links_count: rng.below(2) as u32,
                                    status: (rng.below(3) != 0).then(|| Status {
                                        message: if rng.below(3) == 0 {
                                            "boom".into()
                                        } else {
                                            String::new()
                                        },
                                        code: rng.below(4) as i32,
                                    }),
                                }
                            })
                            .collect(),
                        schema_url: if rng.below(2) == 0 {
                            "https://x/1".into()
                        } else {
                            String::new()
                        },
                    })
                    .collect(),
                schema_url: format!("r{}", rng.below(2)),
            })
            .collect(),
    }
}

/// Every stored trace of a store, by id (search over all time with no filter).
fn all_traces(s: &TraceStore) -> Vec<(TraceId, sextant_storage::traces::Trace)> {
    let mut out = Vec::new();
    s.search(
        &TraceSearch {
            start_ns: 0,
            end_ns: u64::MAX,
            filter: &[],
        },
        &mut |t| {
            out.push((t.id, t));
            true
        },
    )
    .unwrap();
    out.sort_by_key(|(id, _)| *id);
    out
}

/// Runs `body` through both paths into two fresh-or-given stores; asserts identical outcomes.
/// Returns whether the body was accepted.
fn check(body: &[u8], old: &TraceStore, new: &TraceStore) -> bool {
    let decoded = wire::decode(body);
    let mut enc = SpanBatchEncoder::default();
    let encoded = wire::encode(body, &mut enc);
    match (decoded, encoded) {
        (Err(_), Err(_)) => false,
        (Ok(d), Ok(e)) => {
            assert_eq!(
                (d.spans, d.rejected, &d.reasons),
                (e.spans, e.rejected, &e.reasons)
            );
            let rec = enc.finish().unwrap();
            assert_eq!(rec.accepted_spans() as usize, d.accepted());
            let ids: Vec<TraceId> = d
                .batches
                .iter()
                .flat_map(|b| b.spans.iter().map(|s| s.trace_id))
                .collect();
            let a = if d.batches.is_empty() {
                Default::default()
            } else {
                old.append(d.batches).unwrap()
            };
            let b = new.append_encoded(rec).unwrap();
            assert_eq!(a, b);
            for id in ids {
                assert_eq!(old.trace(&id, None).unwrap(), new.trace(&id, None).unwrap());
            }
            true
        }
        (d, e) => panic!("paths disagree: decode {d:?} vs encode {e:?}"),
    }
}

/// Both stores give the same autocomplete answers over all time (served from the head
/// summary, which each path maintains on its own); returns how many tag names there were.
fn same_autocomplete(old: &TraceStore, new: &TraceStore) -> usize {
    let mut names = 0;
    let values = |s: &TraceStore, f: &SpanField| {
        s.tag_values(f, &SpanFilter::True, 0, u64::MAX, 1_000_000)
            .unwrap()
    };
    for scope in [AttrScope::Span, AttrScope::Resource, AttrScope::Any] {
        let a = old.tag_names(scope, 0, u64::MAX, 1_000_000).unwrap();
        let b = new.tag_names(scope, 0, u64::MAX, 1_000_000).unwrap();
        assert_eq!(a, b, "tag names of {scope:?}");
        names += a.len();
        for key in a {
            let f = SpanField::Attr { scope, key };
            assert_eq!(values(old, &f), values(new, &f), "values of {f:?}");
        }
    }
    for f in [SpanField::Name, SpanField::StatusMessage] {
        let a = values(old, &f);
        assert!(!a.is_empty(), "no values of {f:?}");
        assert_eq!(a, values(new, &f), "values of {f:?}");
    }
    names
}

#[test]
fn random_requests_store_identical_traces() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (old, new) = (TraceStore::in_memory(), TraceStore::in_memory());
    let mut stored = 0;
    for _ in 0..150 {
        let body = rand_request(&mut rng).encode_to_vec();
        assert!(check(&body, &old, &new));
        stored += 1;
    }
    assert_eq!(stored, 150);
    let (a, b) = (all_traces(&old), all_traces(&new));
    assert!(a.len() > 100, "only {} traces", a.len());
    assert_eq!(a, b);
    assert!(same_autocomplete(&old, &new) > 20);
}

#[test]
fn mutated_requests_fail_or_store_alike() {
    let mut rng = Rng(0xfeed_0042);
    let (old, new) = (TraceStore::in_memory(), TraceStore::in_memory());
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..1500 {
        let mut body = rand_request(&mut rng).encode_to_vec();
        if body.is_empty() {
            continue;
        }
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(body.len() as u64) as usize;
            match rng.below(4) {
                0 => body[at] = rng.below(256) as u8,
                1 => body.truncate(at),
                2 => body.insert(at, rng.below(256) as u8),
                _ => body[at] ^= 0x80,
            }
            if body.is_empty() {
                break;
            }
        }
        if check(&body, &old, &new) {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    assert!(ok > 50 && bad > 50, "ok {ok} bad {bad}");
    assert_eq!(all_traces(&old), all_traces(&new));
    assert!(same_autocomplete(&old, &new) > 20);
}

/// The generator fed from the encoded record's views (the protobuf ingest path) produces
/// exactly the series, values and exemplars it produces from decoded `SpanBatch`es: span
/// metrics with dimensions (span attribute first, then resource), classic and native
/// latency, and service-graph edges (paired across requests, database / `peer.service` /
/// `user` virtual nodes, failures).
#[test]
fn span_metrics_from_views_equal_span_metrics_from_batches() {
    let options = SpanMetricsOptions {
        dimensions: vec![
            "k0.1".into(),
            "k1.3".into(),
            "service.name".into(),
            "k0.0".into(),
        ],
        histogram: HistogramMode::Both,
        ..SpanMetricsOptions::default()
    };
    let make = || SpanMetrics::new(Arc::new(Db::in_memory()), options.clone()).unwrap();
    let (from_batches, from_views) = (make(), make());
    let mut rng = Rng(0x0bad_cafe_7777);
    const T: i64 = 1_700_000_000_000;
    let mut spans = 0;
    for i in 0..120 {
        let mut body = rand_request_with(&mut rng, true).encode_to_vec();
        if i % 7 == 3 {
            // Malformed tails too: both paths must refuse the same bodies.
            let at = rng.below(body.len().max(1) as u64) as usize;
            body.truncate(at);
        }
        let now = T + i * 1000;
        let mut enc = SpanBatchEncoder::default();
        match (wire::decode(&body), wire::encode(&body, &mut enc)) {
            (Ok(d), Ok(_)) => {
                let rec = enc.finish().unwrap();
                spans += d.accepted();
                from_batches.observe_at(&d.batches, now);
                from_views.observe_views_at(&rec.views().unwrap(), now);
            }
            (Err(_), Err(_)) => {}
            (d, e) => panic!("paths disagree: decode {d:?} vs encode {e:?}"),
        }
        if i % 40 == 39 {
            let (a, b) = (
                from_batches.collect_at(now, false),
                from_views.collect_at(now, false),
            );
            assert_eq!(a.floats, b.floats);
            assert_eq!(a.histograms, b.histograms);
            assert_eq!(a.exemplars, b.exemplars);
        }
    }
    assert!(spans > 1000, "only {spans} spans");
    let (a, b) = (
        from_batches.collect_at(T + 200_000, true),
        from_views.collect_at(T + 200_000, true),
    );
    let has = |name: &str| {
        a.floats
            .iter()
            .filter(|(l, _)| l.get("__name__") == Some(name))
            .count()
    };
    assert!(has("traces_spanmetrics_calls_total") > 50);
    assert!(has("traces_service_graph_request_total") > 5);
    assert!(a
        .floats
        .iter()
        .any(|(l, _)| l.get("k0_1").is_some_and(|v| !v.is_empty())));
    assert!(a
        .floats
        .iter()
        .any(|(l, _)| l.get("connection_type") == Some("database")));
    assert!(!a.histograms.is_empty() && !a.exemplars.is_empty());
    assert_eq!(a.floats, b.floats);
    assert_eq!(a.histograms, b.histograms);
    assert_eq!(a.exemplars, b.exemplars);
}

fn ld(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

#[test]
fn merged_repeated_fields_store_alike() {
    // A span whose attribute carries two `value` fields (arrays concatenate), a value with two
    // variants (the last wins), a repeated status and a repeated name (last wins).
    let span = Span {
        trace_id: vec![9; 16],
        span_id: vec![8; 8],
        name: "first".into(),
        status: Some(Status {
            message: "m1".into(),
            code: 2,
        }),
        ..Span::default()
    };
    let mut span_bytes = span.encode_to_vec();
    let arr = |v: i64| {
        AnyValue {
            value: Some(AV::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(AV::IntValue(v)),
                }],
            })),
        }
        .encode_to_vec()
    };
    let mut kv_bytes = ld(1, b"merged");
    kv_bytes.extend(ld(2, &arr(1)));
    kv_bytes.extend(ld(2, &arr(2)));
    span_bytes.extend(ld(9, &kv_bytes));
    let mut two = AnyValue {
        value: Some(AV::StringValue("gone".into())),
    }
    .encode_to_vec();
    two.extend(
        AnyValue {
            value: Some(AV::IntValue(5)),
        }
        .encode_to_vec(),
    );
    let mut kv2 = ld(1, b"last");
    kv2.extend(ld(2, &two));
    span_bytes.extend(ld(9, &kv2));
    span_bytes.extend(
        Span {
            name: "second".into(),
            status: Some(Status {
                message: String::new(),
                code: 1,
            }),
            ..Span::default()
        }
        .encode_to_vec(),
    );
    let mut status_msg = Vec::new();
    status_msg.extend(ld(2, b"m2"));
    span_bytes.extend(ld(15, &status_msg));
    let scope_spans = ld(2, &span_bytes);
    let mut rs = ld(2, &scope_spans);
    rs.extend(ld(
        1,
        &Resource {
            attributes: vec![kv("service.name", AV::StringValue("a".into()))],
            ..Resource::default()
        }
        .encode_to_vec(),
    ));
    let body = ld(1, &rs);
    let (old, new) = (TraceStore::in_memory(), TraceStore::in_memory());
    assert!(check(&body, &old, &new));
    let t = new.trace(&TraceId([9; 16]), None).unwrap().unwrap();
    let s = &t.batches[0].spans[0];
    assert_eq!(s.name, "second");
    assert_eq!(s.status_message, "m2");
    use sextant_storage::traces::AttrValue;
    assert_eq!(
        s.attributes[0].value,
        AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Int(2)])
    );
    assert_eq!(s.attributes[1].value, AttrValue::Int(5));
    assert_eq!(t.batches[0].resource.service_name(), Some("a"));
}

/// Strings are checked as UTF-8 on the encoding path as on the reference path: multi-byte
/// keys and values are stored alike, and a key or a string value that is not UTF-8 (non-ASCII
/// bytes that form no character) fails the request with `BadUtf8`.
#[test]
fn attribute_strings_are_checked_as_utf8() {
    let span = |key: &str, value: &str| Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        name: "op".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_000_001_000,
        attributes: vec![kv(key, AV::StringValue(value.into()))],
        ..Span::default()
    };
    let body = |s: Span| {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![s],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    };
    let (old, new) = (TraceStore::in_memory(), TraceStore::in_memory());
    assert!(check(&body(span("clé.ü", "日本語 – ok")), &old, &new));
    let stored = new.trace(&TraceId([7; 16]), None).unwrap().unwrap();
    let attrs = &stored.batches[0].spans[0].attributes;
    assert_eq!(attrs[0].key, "clé.ü");
    assert_eq!(
        attrs[0].value,
        sextant_storage::traces::AttrValue::Str("日本語 – ok".into())
    );
    for (key, value) in [("kXk", "v"), ("k", "vXv")] {
        let mut b = body(span(key, value));
        let at = b.iter().position(|c| *c == b'X').unwrap();
        b[at] = 0xff;
        let mut enc = SpanBatchEncoder::default();
        assert_eq!(
            wire::encode(&b, &mut enc).map(|_| ()),
            Err(wire::DecodeError::BadUtf8)
        );
        assert!(!check(&b, &old, &new));
    }
}
