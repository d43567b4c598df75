//! Decodes a protobuf `ExportTraceServiceRequest` in one pass straight into the store's span
//! model ([`SpanBatch`] with shared `Arc<Resource>` / `Arc<Scope>`): no prost intermediate
//! messages. Strings are UTF-8-checked and copied once; unknown fields are skipped; packed and
//! unpacked encodings are irrelevant here (traces have no repeated scalars). Malformed input is
//! an error, never a panic.
//!
//! Protobuf merge rules: scalars keep the last value, repeated fields concatenate, a message
//! field that repeats (a span's `status`, a `resource`) merges into the earlier one.
//!
//! Spans whose ids are malformed (a trace id that is not 16 bytes, a span id that is not 8, a
//! parent span id that is neither empty nor 8 bytes) or all zeros are not errors for the
//! request: they are counted in [`DecodedTraces::rejected`] with a reason, as OTLP's
//! `partial_success` expects.

use std::fmt;
use std::sync::Arc;

use sextant_storage::traces::{
    Attr, AttrValue, Resource, Scope, Span, SpanBatch, SpanBatchEncoder, SpanEvent, SpanHeader,
    SpanKind, SpanLink, StatusCode, TraceId, Utf8Bytes,
};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// How deeply unknown groups and `AnyValue`s may nest.
const MAX_DEPTH: u32 = 64;

/// Why a body is not a valid `ExportTraceServiceRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    BadVarint,
    BadKey,
    BadWireType { field: u32, wire_type: u8 },
    BadGroup,
    BadUtf8,
    TooDeep,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("message is truncated"),
            DecodeError::BadVarint => f.write_str("invalid varint"),
            DecodeError::BadKey => f.write_str("invalid field key"),
            DecodeError::BadWireType { field, wire_type } => {
                write!(f, "field {field} has unexpected wire type {wire_type}")
            }
            DecodeError::BadGroup => f.write_str("invalid or too deeply nested group"),
            DecodeError::BadUtf8 => f.write_str("string field is not valid UTF-8"),
            DecodeError::TooDeep => f.write_str("AnyValue nested too deeply"),
        }
    }
}

impl std::error::Error for DecodeError {}

type Result<T> = std::result::Result<T, DecodeError>;

/// Most distinct rejection reasons kept for the partial-success message.
pub const MAX_REASONS: usize = 5;

/// A decoded request: spans ready for [`sextant_storage::traces::TraceAppender::append`].
#[derive(Debug, Default, PartialEq)]
pub struct DecodedTraces {
    /// Valid spans only, grouped as on the wire (one batch per `ScopeSpans` with spans).
    pub batches: Vec<SpanBatch>,
    /// Spans seen in the request, valid or not.
    pub spans: usize,
    /// Spans dropped for malformed or all-zero ids.
    pub rejected: usize,
    /// The first few distinct reasons for `rejected`.
    pub reasons: Vec<String>,
}

impl DecodedTraces {
    /// Valid spans (those in `batches`).
    pub fn accepted(&self) -> usize {
        self.spans - self.rejected
    }

    /// Counts one refused span (and remembers the reason if it is new and there is room).
    pub fn reject(&mut self, reason: &str) {
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS && !self.reasons.iter().any(|r| r == reason) {
            self.reasons.push(reason.to_string());
        }
    }

    /// Checks a span's ids; valid spans go to `out`, others are counted.
    pub(crate) fn admit(&mut self, raw: RawIds<'_>, mut span: Span, out: &mut Vec<Span>) {
        self.spans += 1;
        match raw.check() {
            Ok((trace_id, span_id, parent)) => {
                span.trace_id = trace_id;
                span.span_id = span_id;
                span.parent_span_id = parent;
                out.push(span);
            }
            Err(reason) => self.reject(reason),
        }
    }
}

/// A span's ids as received, checked by [`RawIds::check`].
#[derive(Default, Clone, Copy)]
pub(crate) struct RawIds<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
}

/// Trace id, span id and parent span id of a valid span.
type CheckedIds = (TraceId, [u8; 8], Option<[u8; 8]>);

impl RawIds<'_> {
    fn check(&self) -> std::result::Result<CheckedIds, &'static str> {
        let trace: [u8; 16] = self
            .trace_id
            .try_into()
            .map_err(|_| "span with a trace id that is not 16 bytes")?;
        let span: [u8; 8] = self
            .span_id
            .try_into()
            .map_err(|_| "span with a span id that is not 8 bytes")?;
        if trace == [0; 16] || span == [0; 8] {
            return Err("span with an all-zero trace or span id");
        }
        let parent = match self.parent_span_id.len() {
            0 => None,
            8 => {
                let p: [u8; 8] = self
                    .parent_span_id
                    .try_into()
                    .map_err(|_| "span with a parent span id that is not 8 bytes")?;
                // An all-zero parent is how some SDKs spell "no parent".
                (p != [0; 8]).then_some(p)
            }
            _ => return Err("span with a parent span id that is not 8 bytes"),
        };
        Ok((TraceId(trace), span, parent))
    }
}

/// Decodes a protobuf `ExportTraceServiceRequest`.
pub fn decode(buf: &[u8]) -> Result<DecodedTraces> {
    let mut out = DecodedTraces::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => resource_spans(r.bytes()?, &mut out)?,
            _ => r.skip_unknown(field, wt, &[1])?,
        }
    }
    Ok(out)
}

fn resource_spans(buf: &[u8], out: &mut DecodedTraces) -> Result<()> {
    let mut r = Reader::new(buf);
    let mut resource = Resource::default();
    let mut scopes: Vec<(Scope, Vec<Span>)> = Vec::new();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => resource_into(r.bytes()?, &mut resource)?,
            (2, LEN) => scopes.push(scope_spans(r.bytes()?, out)?),
            (3, LEN) => resource.schema_url = r.string()?.to_owned(),
            _ => r.skip_unknown(field, wt, &[1, 2, 3])?,
        }
    }
    let resource = Arc::new(resource);
    for (scope, spans) in scopes {
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

fn resource_into(buf: &[u8], res: &mut Resource) -> Result<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => res.attributes.push(key_value(r.bytes()?, 0)?),
            (2, VARINT) => res.dropped_attributes_count = r.varint()? as u32,
            _ => r.skip_unknown(field, wt, &[1, 2])?,
        }
    }
    Ok(())
}

fn scope_spans(buf: &[u8], out: &mut DecodedTraces) -> Result<(Scope, Vec<Span>)> {
    let mut r = Reader::new(buf);
    let mut scope = Scope::default();
    // Sized up front: growing a vector of 2000 spans by doubling costs copies and, with glibc,
    // fastbin consolidations on each large allocation.
    let mut spans = Vec::with_capacity(count_field(buf, 2));
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => scope_into(r.bytes()?, &mut scope)?,
            (2, LEN) => {
                let (ids, s) = span(r.bytes()?)?;
                out.admit(ids, s, &mut spans);
            }
            (3, LEN) => scope.schema_url = r.string()?.to_owned(),
            _ => r.skip_unknown(field, wt, &[1, 2, 3])?,
        }
    }
    Ok((scope, spans))
}

fn scope_into(buf: &[u8], scope: &mut Scope) -> Result<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => scope.name = r.string()?.to_owned(),
            (2, LEN) => scope.version = r.string()?.to_owned(),
            (3, LEN) => scope.attributes.push(key_value(r.bytes()?, 0)?),
            (4, VARINT) => scope.dropped_attributes_count = r.varint()? as u32,
            _ => r.skip_unknown(field, wt, &[1, 2, 3, 4])?,
        }
    }
    Ok(())
}

fn span(buf: &[u8]) -> Result<(RawIds<'_>, Span)> {
    let mut r = Reader::new(buf);
    let mut ids = RawIds::default();
    let mut s = Span {
        attributes: Vec::with_capacity(count_field(buf, 9)),
        ..Span::default()
    };
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => ids.trace_id = r.bytes()?,
            (2, LEN) => ids.span_id = r.bytes()?,
            (3, LEN) => s.trace_state = r.string()?.to_owned(),
            (4, LEN) => ids.parent_span_id = r.bytes()?,
            (5, LEN) => s.name = r.string()?.to_owned(),
            (6, VARINT) => s.kind = SpanKind::from_i32(r.varint()? as i32),
            (7, FIXED64) => s.start_unix_nano = r.fixed64()?,
            (8, FIXED64) => s.end_unix_nano = r.fixed64()?,
            (9, LEN) => s.attributes.push(key_value(r.bytes()?, 0)?),
            (10, VARINT) => s.dropped_attributes_count = r.varint()? as u32,
            (11, LEN) => s.events.push(event(r.bytes()?)?),
            (12, VARINT) => s.dropped_events_count = r.varint()? as u32,
            (13, LEN) => s.links.push(link(r.bytes()?)?),
            (14, VARINT) => s.dropped_links_count = r.varint()? as u32,
            (15, LEN) => status_into(r.bytes()?, &mut s)?,
            (16, FIXED32) => s.flags = r.fixed32()?,
            _ => r.skip_unknown(
                field,
                wt,
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            )?,
        }
    }
    Ok((ids, s))
}

fn status_into(buf: &[u8], s: &mut Span) -> Result<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (2, LEN) => s.status_message = r.string()?.to_owned(),
            (3, VARINT) => s.status_code = StatusCode::from_i32(r.varint()? as i32),
            _ => r.skip_unknown(field, wt, &[2, 3])?,
        }
    }
    Ok(())
}

fn event(buf: &[u8]) -> Result<SpanEvent> {
    let mut r = Reader::new(buf);
    let mut e = SpanEvent::default();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, FIXED64) => e.time_unix_nano = r.fixed64()?,
            (2, LEN) => e.name = r.string()?.to_owned(),
            (3, LEN) => e.attributes.push(key_value(r.bytes()?, 0)?),
            (4, VARINT) => e.dropped_attributes_count = r.varint()? as u32,
            _ => r.skip_unknown(field, wt, &[1, 2, 3, 4])?,
        }
    }
    Ok(e)
}

fn link(buf: &[u8]) -> Result<SpanLink> {
    let mut r = Reader::new(buf);
    let mut l = SpanLink::default();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            // Links keep what they can: a malformed id is stored as zeros (the span is kept).
            (1, LEN) => {
                if let Ok(id) = <[u8; 16]>::try_from(r.bytes()?) {
                    l.trace_id = TraceId(id);
                }
            }
            (2, LEN) => {
                if let Ok(id) = <[u8; 8]>::try_from(r.bytes()?) {
                    l.span_id = id;
                }
            }
            (3, LEN) => l.trace_state = r.string()?.to_owned(),
            (4, LEN) => l.attributes.push(key_value(r.bytes()?, 0)?),
            (5, VARINT) => l.dropped_attributes_count = r.varint()? as u32,
            (6, FIXED32) => l.flags = r.fixed32()?,
            _ => r.skip_unknown(field, wt, &[1, 2, 3, 4, 5, 6])?,
        }
    }
    Ok(l)
}

fn key_value(buf: &[u8], depth: u32) -> Result<Attr> {
    let mut r = Reader::new(buf);
    let mut key = String::new();
    let mut value = AttrValue::Empty;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => key = r.string()?.to_owned(),
            (2, LEN) => any_value_into(r.bytes()?, depth, &mut value)?,
            _ => r.skip_unknown(field, wt, &[1, 2])?,
        }
    }
    Ok(Attr { key, value })
}

/// Decodes an `AnyValue`; the oneof keeps the last variant set.
fn any_value_into(buf: &[u8], depth: u32, v: &mut AttrValue) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => *v = AttrValue::Str(r.string()?.to_owned()),
            (2, VARINT) => *v = AttrValue::Bool(r.varint()? != 0),
            (3, VARINT) => *v = AttrValue::Int(r.varint()? as i64),
            (4, FIXED64) => *v = AttrValue::Double(f64::from_bits(r.fixed64()?)),
            (5, LEN) => {
                let mut items = match std::mem::take(v) {
                    AttrValue::Array(items) => items,
                    _ => Vec::new(),
                };
                let mut a = Reader::new(r.bytes()?);
                while !a.is_empty() {
                    let (f, w) = a.key()?;
                    match (f, w) {
                        (1, LEN) => {
                            let mut item = AttrValue::Empty;
                            any_value_into(a.bytes()?, depth + 1, &mut item)?;
                            items.push(item);
                        }
                        _ => a.skip_unknown(f, w, &[1])?,
                    }
                }
                *v = AttrValue::Array(items);
            }
            (6, LEN) => {
                let mut items = match std::mem::take(v) {
                    AttrValue::KvList(items) => items,
                    _ => Vec::new(),
                };
                let mut a = Reader::new(r.bytes()?);
                while !a.is_empty() {
                    let (f, w) = a.key()?;
                    match (f, w) {
                        (1, LEN) => items.push(key_value(a.bytes()?, depth + 1)?),
                        _ => a.skip_unknown(f, w, &[1])?,
                    }
                }
                *v = AttrValue::KvList(items);
            }
            (7, LEN) => *v = AttrValue::Bytes(r.bytes()?.to_vec()),
            _ => r.skip_unknown(field, wt, &[1, 2, 3, 4, 5, 6, 7])?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Direct encoding: protobuf → the store's record, without building spans.

/// Decodes a protobuf `ExportTraceServiceRequest` straight into `enc` (strings borrowed from
/// `buf`, UTF-8-checked once). The returned [`DecodedTraces`] has no batches, only the span,
/// rejection and reason counts, which are those [`decode`] reports for the same bytes. On an
/// error the encoder holds a partial request and must be dropped; the error may differ from
/// [`decode`]'s for the same bytes (callers wanting its message re-run [`decode`]).
pub fn encode(buf: &[u8], enc: &mut SpanBatchEncoder) -> Result<DecodedTraces> {
    let mut out = DecodedTraces::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => enc_resource_spans(r.bytes()?, enc, &mut out)?,
            _ => r.skip_unknown(field, wt, &[1])?,
        }
    }
    Ok(out)
}

/// Calls `f` with the payload of each length-delimited field `field` of a message whose keys
/// were already validated.
fn each_len<'a>(
    buf: &'a [u8],
    field: u32,
    mut f: impl FnMut(&'a [u8]) -> Result<()>,
) -> Result<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (fl, wt) = r.key()?;
        if fl == field && wt == LEN {
            f(r.bytes()?)?;
        } else {
            r.skip(fl, wt, 0)?;
        }
    }
    Ok(())
}

fn enc_resource_spans(
    buf: &[u8],
    enc: &mut SpanBatchEncoder,
    out: &mut DecodedTraces,
) -> Result<()> {
    let mut r = Reader::new(buf);
    let mut schema = "";
    let mut dropped = 0u32;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => {
                let mut rr = Reader::new(r.bytes()?);
                while !rr.is_empty() {
                    let (f, w) = rr.key()?;
                    match (f, w) {
                        (1, LEN) => drop(rr.bytes()?),
                        (2, VARINT) => dropped = rr.varint()? as u32,
                        _ => rr.skip_unknown(f, w, &[1, 2])?,
                    }
                }
            }
            (2, LEN) => drop(r.bytes()?),
            (3, LEN) => schema = r.string()?,
            _ => r.skip_unknown(field, wt, &[1, 2, 3])?,
        }
    }
    enc.begin_resource(dropped, schema);
    each_len(buf, 1, |res| {
        each_len(res, 1, |kv| enc_key_value(kv, 0, enc))
    })?;
    each_len(buf, 2, |ss| enc_scope_spans(ss, enc, out))
}

fn enc_scope_spans(buf: &[u8], enc: &mut SpanBatchEncoder, out: &mut DecodedTraces) -> Result<()> {
    let mut r = Reader::new(buf);
    let (mut name, mut version, mut dropped, mut schema) = ("", "", 0u32, "");
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => {
                let mut rr = Reader::new(r.bytes()?);
                while !rr.is_empty() {
                    let (f, w) = rr.key()?;
                    match (f, w) {
                        (1, LEN) => name = rr.string()?,
                        (2, LEN) => version = rr.string()?,
                        (3, LEN) => drop(rr.bytes()?),
                        (4, VARINT) => dropped = rr.varint()? as u32,
                        _ => rr.skip_unknown(f, w, &[1, 2, 3, 4])?,
                    }
                }
            }
            (2, LEN) => drop(r.bytes()?),
            (3, LEN) => schema = r.string()?,
            _ => r.skip_unknown(field, wt, &[1, 2, 3])?,
        }
    }
    enc.begin_scope(name, version, dropped, schema);
    each_len(buf, 1, |sc| each_len(sc, 3, |kv| enc_key_value(kv, 0, enc)))?;
    each_len(buf, 2, |sp| enc_span(sp, enc, out))
}

fn enc_span(buf: &[u8], enc: &mut SpanBatchEncoder, out: &mut DecodedTraces) -> Result<()> {
    let mut r = Reader::new(buf);
    let mut ids = RawIds::default();
    let mut h = SpanHeader::default();
    let (mut events, mut links) = (false, false);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => ids.trace_id = r.bytes()?,
            (2, LEN) => ids.span_id = r.bytes()?,
            (3, LEN) => h.trace_state = r.string()?,
            (4, LEN) => ids.parent_span_id = r.bytes()?,
            (5, LEN) => h.name = r.string()?,
            (6, VARINT) => h.kind = SpanKind::from_i32(r.varint()? as i32),
            (7, FIXED64) => h.start_unix_nano = r.fixed64()?,
            (8, FIXED64) => h.end_unix_nano = r.fixed64()?,
            (9, LEN) => drop(r.bytes()?),
            (10, VARINT) => h.dropped_attributes_count = r.varint()? as u32,
            (11, LEN) => {
                r.bytes()?;
                events = true;
            }
            (12, VARINT) => h.dropped_events_count = r.varint()? as u32,
            (13, LEN) => {
                r.bytes()?;
                links = true;
            }
            (14, VARINT) => h.dropped_links_count = r.varint()? as u32,
            (15, LEN) => {
                let mut rr = Reader::new(r.bytes()?);
                while !rr.is_empty() {
                    let (f, w) = rr.key()?;
                    match (f, w) {
                        (2, LEN) => h.status_message = rr.string()?,
                        (3, VARINT) => h.status_code = StatusCode::from_i32(rr.varint()? as i32),
                        _ => rr.skip_unknown(f, w, &[2, 3])?,
                    }
                }
            }
            (16, FIXED32) => h.flags = r.fixed32()?,
            _ => r.skip_unknown(
                field,
                wt,
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            )?,
        }
    }
    out.spans += 1;
    let (trace_id, span_id, parent) = match ids.check() {
        Ok(ids) => ids,
        Err(reason) => {
            // Not stored, but its contents must still be valid (as `decode` checks them).
            span(buf)?;
            out.reject(reason);
            return Ok(());
        }
    };
    h.trace_id = trace_id;
    h.span_id = span_id;
    h.parent_span_id = parent;
    enc.begin_span(&h);
    each_len(buf, 9, |kv| enc_key_value(kv, 0, enc))?;
    if events {
        each_len(buf, 11, |e| enc_event(e, enc))?;
    }
    if links {
        each_len(buf, 13, |l| enc_link(l, enc))?;
    }
    enc.end_span();
    Ok(())
}

fn enc_event(buf: &[u8], enc: &mut SpanBatchEncoder) -> Result<()> {
    let mut r = Reader::new(buf);
    let (mut time, mut name, mut dropped) = (0u64, "", 0u32);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, FIXED64) => time = r.fixed64()?,
            (2, LEN) => name = r.string()?,
            (3, LEN) => drop(r.bytes()?),
            (4, VARINT) => dropped = r.varint()? as u32,
            _ => r.skip_unknown(field, wt, &[1, 2, 3, 4])?,
        }
    }
    enc.begin_event(time, name, dropped);
    each_len(buf, 3, |kv| enc_key_value(kv, 0, enc))
}

fn enc_link(buf: &[u8], enc: &mut SpanBatchEncoder) -> Result<()> {
    let mut r = Reader::new(buf);
    let (mut trace_id, mut span_id, mut state, mut dropped, mut flags) =
        (TraceId::default(), [0u8; 8], "", 0u32, 0u32);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => {
                if let Ok(id) = <[u8; 16]>::try_from(r.bytes()?) {
                    trace_id = TraceId(id);
                }
            }
            (2, LEN) => {
                if let Ok(id) = <[u8; 8]>::try_from(r.bytes()?) {
                    span_id = id;
                }
            }
            (3, LEN) => state = r.string()?,
            (4, LEN) => drop(r.bytes()?),
            (5, VARINT) => dropped = r.varint()? as u32,
            (6, FIXED32) => flags = r.fixed32()?,
            _ => r.skip_unknown(field, wt, &[1, 2, 3, 4, 5, 6])?,
        }
    }
    enc.begin_link(trace_id, span_id, state, dropped, flags);
    each_len(buf, 4, |kv| enc_key_value(kv, 0, enc))
}

/// Encodes one `KeyValue` of the list the encoder has open. The common shape (one value
/// field holding one variant) is encoded straight from the bytes; anything else (repeated
/// value fields, several variants merged) goes through [`key_value`], whose merge rules are
/// the reference.
fn enc_key_value(buf: &[u8], depth: u32, enc: &mut SpanBatchEncoder) -> Result<()> {
    let mut r = Reader::new(buf);
    let mut key = Utf8Bytes::from("");
    let mut value: Option<&[u8]> = None;
    let mut simple = true;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, LEN) => key = r.utf8()?,
            (2, LEN) => {
                let v = r.bytes()?;
                simple &= value.is_none();
                value = Some(v);
            }
            _ => r.skip_unknown(field, wt, &[1, 2])?,
        }
    }
    if simple {
        if let Some(v) = value {
            if let Some(done) = enc_any_value(v, depth, Some(key), enc)? {
                return Ok(done);
            }
        } else {
            enc.attr_empty(key);
            return Ok(());
        }
    }
    let kv = key_value(buf, depth)?;
    enc.value(Some(&kv.key), &kv.value);
    Ok(())
}

/// Encodes an `AnyValue` holding at most one field; `Ok(None)` (nothing written) when it
/// holds more, for the caller to take the general path.
fn enc_any_value(
    buf: &[u8],
    depth: u32,
    key: Option<Utf8Bytes<'_>>,
    enc: &mut SpanBatchEncoder,
) -> Result<Option<()>> {
    if depth >= MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let mut r = Reader::new(buf);
    if r.is_empty() {
        match key {
            Some(k) => enc.attr_empty(k),
            None => enc.item_empty(),
        }
        return Ok(Some(()));
    }
    let (field, wt) = r.key()?;
    let start = r.buf;
    // Validate and skip the one field; more fields (or unknown ones) take the general path.
    match (field, wt) {
        (1, LEN) | (5, LEN) | (6, LEN) | (7, LEN) => drop(r.bytes()?),
        (2, VARINT) | (3, VARINT) => drop(r.varint()?),
        (4, FIXED64) => drop(r.fixed64()?),
        _ => return Ok(None),
    }
    if !r.is_empty() {
        return Ok(None);
    }
    let mut r = Reader { buf: start };
    match (field, key) {
        (1, Some(k)) => enc.attr_str(k, r.utf8()?),
        (1, None) => enc.item_str(r.utf8()?),
        (2, Some(k)) => enc.attr_bool(k, r.varint()? != 0),
        (2, None) => enc.item_bool(r.varint()? != 0),
        (3, Some(k)) => enc.attr_int(k, r.varint()? as i64),
        (3, None) => enc.item_int(r.varint()? as i64),
        (4, Some(k)) => enc.attr_double(k, f64::from_bits(r.fixed64()?)),
        (4, None) => enc.item_double(f64::from_bits(r.fixed64()?)),
        (7, Some(k)) => enc.attr_bytes(k, r.bytes()?),
        (7, None) => enc.item_bytes(r.bytes()?),
        (5, _) => {
            let items = r.bytes()?;
            // Validate before opening, so a failure leaves nothing half-written.
            let mut a = Reader::new(items);
            while !a.is_empty() {
                let (f, w) = a.key()?;
                match (f, w) {
                    (1, LEN) => drop(a.bytes()?),
                    _ => a.skip_unknown(f, w, &[1])?,
                }
            }
            match key {
                Some(k) => enc.attr_array(k),
                None => enc.item_array(),
            }
            each_len(items, 1, |item| {
                if enc_any_value(item, depth + 1, None, enc)?.is_none() {
                    let mut v = AttrValue::Empty;
                    any_value_into(item, depth + 1, &mut v)?;
                    enc.value(None, &v);
                }
                Ok(())
            })?;
            enc.end_nested();
        }
        (6, _) => {
            let kvs = r.bytes()?;
            let mut a = Reader::new(kvs);
            while !a.is_empty() {
                let (f, w) = a.key()?;
                match (f, w) {
                    (1, LEN) => drop(a.bytes()?),
                    _ => a.skip_unknown(f, w, &[1])?,
                }
            }
            match key {
                Some(k) => enc.attr_kvlist(k),
                None => enc.item_kvlist(),
            }
            each_len(kvs, 1, |kv| enc_key_value(kv, depth + 1, enc))?;
            enc.end_nested();
        }
        _ => return Ok(None),
    }
    Ok(Some(()))
}

/// How many times length-delimited field `field` occurs at the top level of `buf` (0 when the
/// message is malformed: the decoding pass reports that).
fn count_field(buf: &[u8], field: u32) -> usize {
    let mut r = Reader::new(buf);
    let mut n = 0;
    while !r.is_empty() {
        let Ok((f, wt)) = r.key() else { return 0 };
        if f == field && wt == LEN {
            n += 1;
        }
        if r.skip(f, wt, 0).is_err() {
            return 0;
        }
    }
    n
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        if let Some(&b) = self.buf.first() {
            if b < 0x80 {
                self.buf = &self.buf[1..];
                return Ok(u64::from(b));
            }
        }
        let mut out = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(DecodeError::BadVarint);
                }
                self.buf = &self.buf[i + 1..];
                return Ok(out);
            }
        }
        Err(if self.buf.len() < 10 {
            DecodeError::Truncated
        } else {
            DecodeError::BadVarint
        })
    }

    #[inline]
    fn key(&mut self) -> Result<(u32, u8)> {
        let k = self.varint()?;
        let field = u32::try_from(k >> 3).map_err(|_| DecodeError::BadKey)?;
        if field == 0 {
            return Err(DecodeError::BadKey);
        }
        Ok((field, (k & 7) as u8))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn fixed64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn fixed32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
        self.take(n)
    }

    #[inline]
    fn string(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::BadUtf8)
    }

    /// A string field as checked UTF-8 bytes (cheaper than [`Reader::string`] for the many
    /// short ASCII keys and values).
    fn utf8(&mut self) -> Result<Utf8Bytes<'a>> {
        Utf8Bytes::new(self.bytes()?).ok_or(DecodeError::BadUtf8)
    }

    /// Skips a field whose number is not in `known`; a known number reaching here arrived
    /// with the wrong wire type, which prost refuses, and so do we.
    fn skip_unknown(&mut self, field: u32, wire_type: u8, known: &[u32]) -> Result<()> {
        if known.contains(&field) {
            return Err(DecodeError::BadWireType { field, wire_type });
        }
        self.skip(field, wire_type, 0)
    }

    /// Skips one field of any number.
    fn skip(&mut self, field: u32, wire_type: u8, depth: u32) -> Result<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                if depth >= MAX_DEPTH {
                    return Err(DecodeError::BadGroup);
                }
                loop {
                    let (f, wt) = self.key()?;
                    if wt == END_GROUP {
                        return if f == field {
                            Ok(())
                        } else {
                            Err(DecodeError::BadGroup)
                        };
                    }
                    self.skip(f, wt, depth + 1)?;
                }
            }
            _ => Err(DecodeError::BadWireType { field, wire_type }),
        }
    }
}
