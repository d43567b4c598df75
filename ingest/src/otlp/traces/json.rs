//! Decodes an OTLP/JSON `ExportTraceServiceRequest` (the protobuf JSON mapping with OTLP's
//! exceptions: trace and span ids are hex, not base64) into the store's span model.
//!
//! Field names are accepted in lowerCamelCase and in their proto spelling; enums as numbers or
//! names (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`); 64-bit integers as strings or numbers;
//! `bytesValue` as base64. Unknown fields are ignored, as the OTLP specification asks.

use std::sync::Arc;

use serde_json::{Map, Value};
use sextant_storage::traces::{
    Attr, AttrValue, Resource, Scope, Span, SpanBatch, SpanEvent, SpanKind, SpanLink, StatusCode,
    TraceId,
};

use super::wire::{DecodedTraces, RawIds};

type Obj = Map<String, Value>;

/// Why a body is not a valid OTLP/JSON traces request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JsonError {}

type R<T> = Result<T, JsonError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(JsonError(msg.into()))
}

/// Parses an OTLP/JSON traces export request.
pub fn decode(body: &[u8]) -> R<DecodedTraces> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    let o = obj(&v, "request")?;
    let mut out = DecodedTraces::default();
    for rs in list(o, "resourceSpans", "resource_spans")? {
        resource_spans(rs, &mut out)?;
    }
    Ok(out)
}

fn obj<'a>(v: &'a Value, what: &str) -> R<&'a Obj> {
    v.as_object()
        .ok_or_else(|| JsonError(format!("{what}: expected an object")))
}

fn field<'a>(o: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel)
        .or_else(|| o.get(snake))
        .filter(|v| !v.is_null())
}

fn list<'a>(o: &'a Obj, camel: &str, snake: &str) -> R<&'a [Value]> {
    match field(o, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => err(format!("{camel}: expected an array")),
    }
}

fn string(o: &Obj, camel: &str, snake: &str) -> R<String> {
    match field(o, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => err(format!("{camel}: expected a string")),
    }
}

/// An integer given as a JSON number or a decimal string.
fn int_of(v: &Value, what: &str) -> R<i128> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                err(format!("{what}: expected an integer, got {n}"))
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| JsonError(format!("{what}: expected an integer, got {s:?}"))),
        _ => err(format!("{what}: expected an integer")),
    }
}

fn u64_field(o: &Obj, camel: &str, snake: &str) -> R<u64> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => u64::try_from(int_of(v, camel)?)
            .map_err(|_| JsonError(format!("{camel}: out of range"))),
    }
}

fn u32_field(o: &Obj, camel: &str, snake: &str) -> R<u32> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => u32::try_from(int_of(v, camel)?)
            .map_err(|_| JsonError(format!("{camel}: out of range"))),
    }
}

/// An enum given as its number or its name (looked up in `names`, index = number).
fn enum_field(o: &Obj, camel: &str, snake: &str, names: &[&str]) -> R<i32> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(Value::String(s)) if s.parse::<i64>().is_err() => names
            .iter()
            .position(|n| n == s)
            .map(|i| i as i32)
            .ok_or_else(|| JsonError(format!("{camel}: unknown value {s:?}"))),
        Some(v) => i32::try_from(int_of(v, camel)?)
            .map_err(|_| JsonError(format!("{camel}: out of range"))),
    }
}

/// Hex text as bytes (any even length; the length is checked with the span).
fn hex_field(o: &Obj, camel: &str, snake: &str) -> R<Vec<u8>> {
    let text = match field(o, camel, snake) {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return err(format!("{camel}: expected a hex string")),
    };
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return err(format!("{camel}: odd number of hex digits in {text:?}"));
    }
    let digit = |c: u8| (c as char).to_digit(16);
    bytes
        .chunks_exact(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
            _ => err(format!("{camel}: invalid hex {text:?}")),
        })
        .collect()
}

fn attributes(o: &Obj) -> R<Vec<Attr>> {
    list(o, "attributes", "attributes")?
        .iter()
        .map(|v| key_value(v, 0))
        .collect()
}

fn key_value(v: &Value, depth: u32) -> R<Attr> {
    let o = obj(v, "attribute")?;
    Ok(Attr {
        key: string(o, "key", "key")?,
        value: match field(o, "value", "value") {
            None => AttrValue::Empty,
            Some(v) => any_value(v, depth)?,
        },
    })
}

fn any_value(v: &Value, depth: u32) -> R<AttrValue> {
    if depth >= 64 {
        return err("AnyValue nested too deeply");
    }
    let o = obj(v, "value")?;
    Ok(if let Some(s) = field(o, "stringValue", "string_value") {
        AttrValue::Str(
            s.as_str()
                .ok_or_else(|| JsonError("stringValue: expected a string".into()))?
                .to_string(),
        )
    } else if let Some(b) = field(o, "boolValue", "bool_value") {
        AttrValue::Bool(
            b.as_bool()
                .ok_or_else(|| JsonError("boolValue: expected a boolean".into()))?,
        )
    } else if let Some(i) = field(o, "intValue", "int_value") {
        AttrValue::Int(
            i64::try_from(int_of(i, "intValue")?)
                .map_err(|_| JsonError("intValue: out of range".into()))?,
        )
    } else if let Some(d) = field(o, "doubleValue", "double_value") {
        AttrValue::Double(match d {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s) => match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .map_err(|_| JsonError(format!("doubleValue: invalid number {other:?}")))?,
            },
            _ => return err("doubleValue: expected a number"),
        })
    } else if let Some(a) = field(o, "arrayValue", "array_value") {
        let a = obj(a, "arrayValue")?;
        AttrValue::Array(
            list(a, "values", "values")?
                .iter()
                .map(|v| any_value(v, depth + 1))
                .collect::<R<_>>()?,
        )
    } else if let Some(kv) = field(o, "kvlistValue", "kvlist_value") {
        let kv = obj(kv, "kvlistValue")?;
        AttrValue::KvList(
            list(kv, "values", "values")?
                .iter()
                .map(|v| key_value(v, depth + 1))
                .collect::<R<_>>()?,
        )
    } else if let Some(b) = field(o, "bytesValue", "bytes_value") {
        let text = b
            .as_str()
            .ok_or_else(|| JsonError("bytesValue: expected a base64 string".into()))?;
        AttrValue::Bytes(
            base64_decode(text)
                .ok_or_else(|| JsonError(format!("bytesValue: invalid base64 {text:?}")))?,
        )
    } else {
        AttrValue::Empty
    })
}

/// Standard or URL-safe base64, padding optional (protobuf's JSON mapping accepts both).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn resource_spans(v: &Value, out: &mut DecodedTraces) -> R<()> {
    let o = obj(v, "resourceSpans")?;
    let mut resource = Resource::default();
    if let Some(r) = field(o, "resource", "resource") {
        let r = obj(r, "resource")?;
        resource.attributes = attributes(r)?;
        resource.dropped_attributes_count =
            u32_field(r, "droppedAttributesCount", "dropped_attributes_count")?;
    }
    resource.schema_url = string(o, "schemaUrl", "schema_url")?;
    let resource = Arc::new(resource);
    for ss in list(o, "scopeSpans", "scope_spans")? {
        let so = obj(ss, "scopeSpans")?;
        let mut scope = Scope::default();
        if let Some(s) = field(so, "scope", "scope") {
            let s = obj(s, "scope")?;
            scope.name = string(s, "name", "name")?;
            scope.version = string(s, "version", "version")?;
            scope.attributes = attributes(s)?;
            scope.dropped_attributes_count =
                u32_field(s, "droppedAttributesCount", "dropped_attributes_count")?;
        }
        scope.schema_url = string(so, "schemaUrl", "schema_url")?;
        let mut spans = Vec::new();
        for sp in list(so, "spans", "spans")? {
            let so = obj(sp, "span")?;
            let trace_id = hex_field(so, "traceId", "trace_id")?;
            let span_id = hex_field(so, "spanId", "span_id")?;
            let parent = hex_field(so, "parentSpanId", "parent_span_id")?;
            let ids = RawIds {
                trace_id: &trace_id,
                span_id: &span_id,
                parent_span_id: &parent,
            };
            out.admit(ids, span(so)?, &mut spans);
        }
        if !spans.is_empty() {
            out.batches.push(SpanBatch {
                resource: resource.clone(),
                scope: Arc::new(scope),
                spans,
            });
        }
    }
    Ok(())
}

const KINDS: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const CODES: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// Everything of a span but its ids (checked by the caller).
fn span(o: &Obj) -> R<Span> {
    let mut s = Span {
        trace_state: string(o, "traceState", "trace_state")?,
        flags: u32_field(o, "flags", "flags")?,
        name: string(o, "name", "name")?,
        kind: SpanKind::from_i32(enum_field(o, "kind", "kind", KINDS)?),
        start_unix_nano: u64_field(o, "startTimeUnixNano", "start_time_unix_nano")?,
        end_unix_nano: u64_field(o, "endTimeUnixNano", "end_time_unix_nano")?,
        attributes: attributes(o)?,
        dropped_attributes_count: u32_field(
            o,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
        dropped_events_count: u32_field(o, "droppedEventsCount", "dropped_events_count")?,
        dropped_links_count: u32_field(o, "droppedLinksCount", "dropped_links_count")?,
        ..Span::default()
    };
    for e in list(o, "events", "events")? {
        let eo = obj(e, "event")?;
        s.events.push(SpanEvent {
            time_unix_nano: u64_field(eo, "timeUnixNano", "time_unix_nano")?,
            name: string(eo, "name", "name")?,
            attributes: attributes(eo)?,
            dropped_attributes_count: u32_field(
                eo,
                "droppedAttributesCount",
                "dropped_attributes_count",
            )?,
        });
    }
    for l in list(o, "links", "links")? {
        let lo = obj(l, "link")?;
        let trace_id = hex_field(lo, "traceId", "trace_id")?;
        let span_id = hex_field(lo, "spanId", "span_id")?;
        s.links.push(SpanLink {
            trace_id: TraceId(<[u8; 16]>::try_from(trace_id.as_slice()).unwrap_or([0; 16])),
            span_id: <[u8; 8]>::try_from(span_id.as_slice()).unwrap_or([0; 8]),
            trace_state: string(lo, "traceState", "trace_state")?,
            attributes: attributes(lo)?,
            dropped_attributes_count: u32_field(
                lo,
                "droppedAttributesCount",
                "dropped_attributes_count",
            )?,
            flags: u32_field(lo, "flags", "flags")?,
        });
    }
    if let Some(st) = field(o, "status", "status") {
        let st = obj(st, "status")?;
        s.status_message = string(st, "message", "message")?;
        s.status_code = StatusCode::from_i32(enum_field(st, "code", "code", CODES)?);
    }
    Ok(s)
}
