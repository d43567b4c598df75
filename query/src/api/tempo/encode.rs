//! Trace encodings Tempo serves: OTLP protobuf (`tempopb.Trace` is wire-identical to OTLP
//! `TracesData`: repeated `ResourceSpans` as field 1) and Tempo's jsonpb JSON (camelCase
//! fields, ids as base64, 64-bit integers as strings, enums by name, zero values omitted).

use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1::{
    span, ResourceSpans, ScopeSpans, Span as PSpan, Status, TracesData,
};
use serde_json::{json, Map, Value};
use sextant_storage::traces::{Attr, AttrValue, SpanKind, StatusCode, Trace};

/// `tempopb.TraceByIDResponse { Trace trace = 1; TraceByIDMetrics metrics = 2; }` with the
/// metrics left empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TracesData>,
}

fn any_value(v: &AttrValue) -> AnyValue {
    let value = match v {
        AttrValue::Empty => None,
        AttrValue::Str(s) => Some(any_value::Value::StringValue(s.clone())),
        AttrValue::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        AttrValue::Int(i) => Some(any_value::Value::IntValue(*i)),
        AttrValue::Double(d) => Some(any_value::Value::DoubleValue(*d)),
        AttrValue::Bytes(b) => Some(any_value::Value::BytesValue(b.clone())),
        AttrValue::Array(a) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: a.iter().map(any_value).collect(),
        })),
        AttrValue::KvList(kv) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: key_values(kv),
        })),
    };
    AnyValue { value }
}

fn key_values(attrs: &[Attr]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|a| KeyValue {
            key: a.key.clone(),
            value: Some(any_value(&a.value)),
        })
        .collect()
}

/// The trace as OTLP `TracesData` (one `ResourceSpans` per stored batch).
pub fn traces_data(trace: &Trace) -> TracesData {
    let resource_spans = trace
        .batches
        .iter()
        .map(|b| ResourceSpans {
            resource: Some(PResource {
                attributes: key_values(&b.resource.attributes),
                dropped_attributes_count: b.resource.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: b.scope.name.clone(),
                    version: b.scope.version.clone(),
                    attributes: key_values(&b.scope.attributes),
                    dropped_attributes_count: b.scope.dropped_attributes_count,
                }),
                spans: b
                    .spans
                    .iter()
                    .map(|s| PSpan {
                        trace_id: s.trace_id.0.to_vec(),
                        span_id: s.span_id.to_vec(),
                        trace_state: s.trace_state.clone(),
                        parent_span_id: s.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
                        flags: s.flags,
                        name: s.name.clone(),
                        kind: s.kind as i32,
                        start_time_unix_nano: s.start_unix_nano,
                        end_time_unix_nano: s.end_unix_nano,
                        attributes: key_values(&s.attributes),
                        dropped_attributes_count: s.dropped_attributes_count,
                        events: s
                            .events
                            .iter()
                            .map(|e| span::Event {
                                time_unix_nano: e.time_unix_nano,
                                name: e.name.clone(),
                                attributes: key_values(&e.attributes),
                                dropped_attributes_count: e.dropped_attributes_count,
                            })
                            .collect(),
                        dropped_events_count: s.dropped_events_count,
                        links: s
                            .links
                            .iter()
                            .map(|l| span::Link {
                                trace_id: l.trace_id.0.to_vec(),
                                span_id: l.span_id.to_vec(),
                                trace_state: l.trace_state.clone(),
                                attributes: key_values(&l.attributes),
                                dropped_attributes_count: l.dropped_attributes_count,
                                flags: l.flags,
                            })
                            .collect(),
                        dropped_links_count: s.dropped_links_count,
                        status: Some(Status {
                            message: s.status_message.clone(),
                            code: s.status_code as i32,
                        }),
                    })
                    .collect(),
                schema_url: b.scope.schema_url.clone(),
            }],
            schema_url: b.resource.schema_url.clone(),
        })
        .collect();
    TracesData { resource_spans }
}

/// Standard base64 with padding (jsonpb's encoding of `bytes`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `AnyValue` as jsonpb writes it (`{"stringValue":"x"}`, `{"intValue":"5"}`, …).
pub fn any_value_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::Empty => json!({}),
        AttrValue::Str(s) => json!({ "stringValue": s }),
        AttrValue::Bool(b) => json!({ "boolValue": b }),
        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttrValue::Double(d) => {
            if d.is_finite() {
                json!({ "doubleValue": d })
            } else {
                json!({ "doubleValue": d.to_string() })
            }
        }
        AttrValue::Bytes(b) => json!({ "bytesValue": base64(b) }),
        AttrValue::Array(a) => {
            json!({ "arrayValue": { "values": a.iter().map(any_value_json).collect::<Vec<_>>() } })
        }
        AttrValue::KvList(kv) => json!({ "kvlistValue": { "values": attrs_json(kv) } }),
    }
}

/// Attributes as a jsonpb `KeyValue` list.
pub fn attrs_json(attrs: &[Attr]) -> Vec<Value> {
    attrs
        .iter()
        .map(|a| json!({ "key": a.key, "value": any_value_json(&a.value) }))
        .collect()
}

fn kind_enum(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

fn status_enum(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

/// Inserts `key: value` unless the value is jsonpb's zero (omitted).
fn put(m: &mut Map<String, Value>, key: &str, value: Value) {
    let zero = match &value {
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(a) => a.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Object(_) => false,
    };
    if !zero {
        m.insert(key.to_string(), value);
    }
}

/// The trace's `ResourceSpans` list in Tempo's JSON form.
pub fn resource_spans_json(trace: &Trace) -> Vec<Value> {
    trace
        .batches
        .iter()
        .map(|b| {
            let mut resource = Map::new();
            put(
                &mut resource,
                "attributes",
                Value::Array(attrs_json(&b.resource.attributes)),
            );
            put(
                &mut resource,
                "droppedAttributesCount",
                json!(b.resource.dropped_attributes_count),
            );
            let mut scope = Map::new();
            put(&mut scope, "name", json!(b.scope.name));
            put(&mut scope, "version", json!(b.scope.version));
            put(
                &mut scope,
                "attributes",
                Value::Array(attrs_json(&b.scope.attributes)),
            );
            let spans: Vec<Value> = b
                .spans
                .iter()
                .map(|s| {
                    let mut m = Map::new();
                    put(&mut m, "traceId", json!(base64(&s.trace_id.0)));
                    put(&mut m, "spanId", json!(base64(&s.span_id)));
                    put(&mut m, "traceState", json!(s.trace_state));
                    if let Some(p) = s.parent_span_id {
                        put(&mut m, "parentSpanId", json!(base64(&p)));
                    }
                    put(&mut m, "flags", json!(s.flags));
                    put(&mut m, "name", json!(s.name));
                    if s.kind != SpanKind::Unspecified {
                        m.insert("kind".into(), json!(kind_enum(s.kind)));
                    }
                    put(
                        &mut m,
                        "startTimeUnixNano",
                        json!(s.start_unix_nano.to_string()),
                    );
                    put(
                        &mut m,
                        "endTimeUnixNano",
                        json!(s.end_unix_nano.to_string()),
                    );
                    put(
                        &mut m,
                        "attributes",
                        Value::Array(attrs_json(&s.attributes)),
                    );
                    put(
                        &mut m,
                        "droppedAttributesCount",
                        json!(s.dropped_attributes_count),
                    );
                    let events: Vec<Value> = s
                        .events
                        .iter()
                        .map(|e| {
                            let mut em = Map::new();
                            put(&mut em, "timeUnixNano", json!(e.time_unix_nano.to_string()));
                            put(&mut em, "name", json!(e.name));
                            put(
                                &mut em,
                                "attributes",
                                Value::Array(attrs_json(&e.attributes)),
                            );
                            put(
                                &mut em,
                                "droppedAttributesCount",
                                json!(e.dropped_attributes_count),
                            );
                            Value::Object(em)
                        })
                        .collect();
                    put(&mut m, "events", Value::Array(events));
                    put(&mut m, "droppedEventsCount", json!(s.dropped_events_count));
                    let links: Vec<Value> = s
                        .links
                        .iter()
                        .map(|l| {
                            let mut lm = Map::new();
                            put(&mut lm, "traceId", json!(base64(&l.trace_id.0)));
                            put(&mut lm, "spanId", json!(base64(&l.span_id)));
                            put(&mut lm, "traceState", json!(l.trace_state));
                            put(
                                &mut lm,
                                "attributes",
                                Value::Array(attrs_json(&l.attributes)),
                            );
                            put(
                                &mut lm,
                                "droppedAttributesCount",
                                json!(l.dropped_attributes_count),
                            );
                            put(&mut lm, "flags", json!(l.flags));
                            Value::Object(lm)
                        })
                        .collect();
                    put(&mut m, "links", Value::Array(links));
                    put(&mut m, "droppedLinksCount", json!(s.dropped_links_count));
                    let mut status = Map::new();
                    put(&mut status, "message", json!(s.status_message));
                    if s.status_code != StatusCode::Unset {
                        status.insert("code".into(), json!(status_enum(s.status_code)));
                    }
                    m.insert("status".into(), Value::Object(status));
                    Value::Object(m)
                })
                .collect();
            let mut scope_spans = Map::new();
            scope_spans.insert("scope".into(), Value::Object(scope));
            put(&mut scope_spans, "spans", Value::Array(spans));
            put(&mut scope_spans, "schemaUrl", json!(b.scope.schema_url));
            let mut rs = Map::new();
            rs.insert("resource".into(), Value::Object(resource));
            rs.insert(
                "scopeSpans".into(),
                Value::Array(vec![Value::Object(scope_spans)]),
            );
            put(&mut rs, "schemaUrl", json!(b.resource.schema_url));
            Value::Object(rs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x01, 0x00]), "//4BAA==");
    }
}
