//! Field-by-field production of a trace WAL record ([`SpanBatchEncoder`] → [`EncodedSpans`]),
//! byte-identical to what [`super::wal::encode_batch`] writes for the equivalent
//! [`SpanBatch`]es, so ingest can go from protobuf to the store's encoding without building
//! `Span` / `Attr` / `String` values.
//!
//! The encoder owns all framing (counts, lengths, tags): callers only supply field values, in
//! the order resource → scope → spans (each span: header, attributes, events, links). Any call
//! out of order marks the encoder broken and [`SpanBatchEncoder::finish`] then fails, so a
//! record that does not parse can never be produced. Spans with an all-zero trace or span id
//! are counted as rejected (same reason text as [`super::TraceAppender::append`]) and dropped;
//! scopes left without spans produce no batch.

use std::sync::Arc;

use super::codec::{
    get_bytes, get_count, get_fixed, get_i, get_resource, get_scope, get_span_body, get_span_ids,
    get_u, get_u8, kind_status_byte, put_bytes, put_str, split_kind_status, MAX_DEPTH, TAG_ARRAY,
    TAG_BYTES, TAG_DOUBLE, TAG_EMPTY, TAG_FALSE, TAG_INT, TAG_KVLIST, TAG_STR, TAG_TRUE,
};
use super::wal::{parse_record, FRAME_HEADER};
use super::{SpanBatch, SpanId, SpanKind, StatusCode, TraceAppendOutcome, TraceId};
use crate::varint::{write_uvarint, write_varint};
use crate::StorageError;

/// Bytes kept free at the start of the record for the frame header and the batch count.
const RESERVE: usize = FRAME_HEADER + 10;

/// The reason recorded for spans with an all-zero trace or span id.
const ZERO_ID_REASON: &str = "span with an all-zero trace or span id";

/// Why [`SpanBatchEncoder::finish`] refused to produce a record: the first out-of-order call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(pub &'static str);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "span encoder misused: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// The scalar fields of a span, given when it begins (the body encodes them before the
/// attributes). Times are Unix nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanHeader<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: &'a str,
    pub flags: u32,
    pub name: &'a str,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub dropped_attributes_count: u32,
    pub dropped_events_count: u32,
    pub dropped_links_count: u32,
    pub status_code: StatusCode,
    pub status_message: &'a str,
}

/// A finished record: one WAL frame holding every accepted span, plus the rejection counts.
/// Only [`SpanBatchEncoder::finish`] makes one, so the frame always parses.
#[derive(Debug)]
pub struct EncodedSpans {
    buf: Vec<u8>,
    /// Where the frame starts in `buf`.
    start: usize,
    accepted: u64,
    rejected: u64,
    errors: Vec<String>,
}

impl EncodedSpans {
    /// Spans in the record.
    pub fn accepted_spans(&self) -> u64 {
        self.accepted
    }

    /// Spans dropped by the encoder (all-zero ids).
    pub fn rejected_spans(&self) -> u64 {
        self.rejected
    }

    /// The outcome so far: accepted and rejected counts with reasons.
    pub fn outcome(&self) -> TraceAppendOutcome {
        TraceAppendOutcome {
            accepted_spans: self.accepted,
            rejected_spans: self.rejected,
            errors: self.errors.clone(),
        }
    }

    /// The whole WAL frame (header + payload).
    pub(crate) fn frame(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Decodes the record into span batches (one per encoded batch), for stores that only
    /// implement [`super::TraceAppender::append`].
    pub fn to_batches(&self) -> Result<Vec<SpanBatch>, StorageError> {
        let corrupt = || StorageError::Corruption {
            path: "<encoded spans>".into(),
            offset: 0,
            reason: "encoded span record does not decode".into(),
        };
        if self.accepted == 0 {
            return Ok(Vec::new());
        }
        let payload = &self.frame()[FRAME_HEADER..];
        let rec = parse_record(payload).ok_or_else(corrupt)?;
        let mut out = Vec::with_capacity(rec.len());
        for b in rec {
            let mut r = &payload[b.resource.clone()];
            let mut s = &payload[b.scope.clone()];
            let resource = Arc::new(get_resource(&mut r).ok_or_else(corrupt)?);
            let scope = Arc::new(get_scope(&mut s).ok_or_else(corrupt)?);
            let mut spans = Vec::with_capacity(b.spans.len());
            for sp in &b.spans {
                let mut body = &payload[sp.body.clone()];
                spans.push(get_span_body(&mut body, sp.trace_id).ok_or_else(corrupt)?);
            }
            out.push(SpanBatch {
                resource,
                scope,
                spans,
            });
        }
        Ok(out)
    }
}

/// Record buffers of dropped [`EncodedSpans`], reused by [`SpanBatchEncoder::with_capacity`]:
/// a request's record is about its protobuf size (~0.7 MB for 2,000 spans), and a fresh
/// buffer of that size per request costs page faults and kernel page zeroing, which pooling
/// avoids. Bounded in count and per-buffer size.
static BUF_POOL: parking_lot::Mutex<Vec<Vec<u8>>> = parking_lot::Mutex::new(Vec::new());
const POOL_BUFFERS: usize = 16;
const POOL_MAX_BYTES: usize = 16 << 20;

/// An empty buffer with room for `bytes` bytes, from the pool when one is there.
fn pooled_buffer(bytes: usize) -> Vec<u8> {
    let taken = BUF_POOL.lock().pop();
    match taken {
        Some(mut b) => {
            b.clear();
            b.reserve(bytes);
            b
        }
        None => Vec::with_capacity(bytes),
    }
}

impl Drop for EncodedSpans {
    fn drop(&mut self) {
        let cap = self.buf.capacity();
        if cap == 0 || cap > POOL_MAX_BYTES {
            return;
        }
        let mut pool = BUF_POOL.lock();
        if pool.len() < POOL_BUFFERS {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

/// An open count-prefixed list: where its count goes, how many bytes were reserved there, and
/// how many items it has.
#[derive(Clone, Copy, Debug)]
struct List {
    pos: usize,
    reserved: usize,
    count: u64,
    /// `true` for an array of values, `false` for a list of key/value pairs.
    array: bool,
}

/// Bytes known to be UTF-8: from a `&str`, or checked by [`Utf8Bytes::new`] (an ASCII fast
/// path, then the full check), which lets a protobuf decoder hand strings to the
/// [`SpanBatchEncoder`] without making `&str`s (`str::from_utf8` on every short key and value
/// was several percent of ingest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Bytes<'a>(&'a [u8]);

impl<'a> Utf8Bytes<'a> {
    /// `None` when `b` is not UTF-8.
    #[inline]
    pub fn new(b: &'a [u8]) -> Option<Utf8Bytes<'a>> {
        (b.is_ascii() || std::str::from_utf8(b).is_ok()).then_some(Utf8Bytes(b))
    }

    pub fn as_bytes(self) -> &'a [u8] {
        self.0
    }
}

impl<'a> From<&'a str> for Utf8Bytes<'a> {
    fn from(s: &'a str) -> Utf8Bytes<'a> {
        Utf8Bytes(s.as_bytes())
    }
}

impl<'a> From<&'a String> for Utf8Bytes<'a> {
    fn from(s: &'a String) -> Utf8Bytes<'a> {
        Utf8Bytes(s.as_bytes())
    }
}

fn open_list(buf: &mut Vec<u8>, reserved: usize, array: bool) -> List {
    let pos = buf.len();
    buf.resize(pos + reserved, 0);
    List {
        pos,
        reserved,
        count: 0,
        array,
    }
}

/// Writes `v` as a uvarint into the `reserved` bytes at `pos`, shifting what follows when the
/// varint needs a different size.
fn patch_uvarint(buf: &mut Vec<u8>, pos: usize, reserved: usize, v: u64) {
    let mut tmp = [0u8; 10];
    let mut n = 0;
    let mut x = v;
    loop {
        let b = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            tmp[n] = b;
            n += 1;
            break;
        }
        tmp[n] = b | 0x80;
        n += 1;
    }
    if n == reserved {
        buf[pos..pos + n].copy_from_slice(&tmp[..n]);
    } else {
        buf.splice(pos..pos + reserved, tmp[..n].iter().copied());
    }
}

fn close_list(buf: &mut Vec<u8>, l: List) {
    patch_uvarint(buf, l.pos, l.reserved, l.count);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Nothing yet, or the encoder is broken.
    Start,
    /// Resource attributes are being written (into `res`).
    Resource,
    /// Scope attributes are being written (into `scope`).
    Scope,
    /// Between spans of a scope.
    Spans,
    /// Span attributes.
    SpanAttrs,
    /// Inside an event's attributes.
    Event,
    /// Inside a link's attributes.
    Link,
}

/// Builds one trace WAL record field by field (see the module docs for the call order).
///
/// ```text
/// begin_resource → attr_*… → begin_scope → attr_*… →
///   (begin_span → attr_*… → (begin_event → attr_*…)* → (begin_link → attr_*…)* → end_span)* …
/// finish
/// ```
/// `attr_array` / `attr_kvlist` / `item_array` / `item_kvlist` open a nested value closed by
/// [`SpanBatchEncoder::end_nested`]; inside an array, values are added with `item_*`.
pub struct SpanBatchEncoder {
    buf: Vec<u8>,
    res: Vec<u8>,
    scope: Vec<u8>,
    stage: Stage,
    broken: Option<&'static str>,
    batches: u64,
    /// Batch header position in `buf` and its span-count list, while a batch is open.
    batch: Option<(usize, List)>,
    /// The attribute list receiving `attr_*` calls when no nested value is open.
    attrs: Option<List>,
    nested: Vec<List>,
    /// Open events / links lists of the current span.
    events: Option<List>,
    links: Option<List>,
    /// Current span: its start in `buf`, its body-length slot, whether it is kept.
    span_start: usize,
    body: Option<List>,
    span_kept: bool,
    /// Deferred tail fields.
    res_dropped: u32,
    res_schema: String,
    scope_dropped: u32,
    scope_schema: String,
    span_dropped: (u32, u32, u32),
    status_message: String,
    item_tail: (u32, Option<u32>),
    accepted: u64,
    rejected: u64,
    errors: Vec<String>,
}

impl Default for SpanBatchEncoder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl SpanBatchEncoder {
    /// An encoder whose record buffer starts with room for `bytes` bytes (about 1.1× the
    /// protobuf size of the request is typical).
    pub fn with_capacity(bytes: usize) -> SpanBatchEncoder {
        let mut buf = pooled_buffer(RESERVE + bytes);
        buf.resize(RESERVE, 0);
        SpanBatchEncoder {
            buf,
            res: Vec::new(),
            scope: Vec::new(),
            stage: Stage::Start,
            broken: None,
            batches: 0,
            batch: None,
            attrs: None,
            nested: Vec::new(),
            events: None,
            links: None,
            span_start: 0,
            body: None,
            span_kept: false,
            res_dropped: 0,
            res_schema: String::new(),
            scope_dropped: 0,
            scope_schema: String::new(),
            span_dropped: (0, 0, 0),
            status_message: String::new(),
            item_tail: (0, None),
            accepted: 0,
            rejected: 0,
            errors: Vec::new(),
        }
    }

    fn fail(&mut self, why: &'static str) {
        if self.broken.is_none() {
            self.broken = Some(why);
        }
        self.stage = Stage::Start;
    }

    fn ok(&self) -> bool {
        self.broken.is_none()
    }

    /// The buffer the current stage writes attributes into.
    fn target(&mut self) -> &mut Vec<u8> {
        match self.stage {
            Stage::Resource => &mut self.res,
            Stage::Scope => &mut self.scope,
            _ => &mut self.buf,
        }
    }

    /// Closes the current attribute list (which must have no open nested value).
    fn close_attrs(&mut self) -> bool {
        if !self.nested.is_empty() {
            self.fail("attribute list closed with an open nested value");
            return false;
        }
        match self.attrs.take() {
            Some(l) => {
                close_list(self.target(), l);
                true
            }
            None => {
                self.fail("no attribute list open");
                false
            }
        }
    }

    /// Finishes whatever resource / scope / batch is open, for a new resource or scope.
    fn close_scope_level(&mut self) -> bool {
        match self.stage {
            Stage::Resource => {
                if !self.close_attrs() {
                    return false;
                }
                write_uvarint(&mut self.res, u64::from(self.res_dropped));
                put_str(&mut self.res, &self.res_schema);
                self.stage = Stage::Start;
                true
            }
            Stage::Scope => {
                if !self.close_attrs() {
                    return false;
                }
                // A scope without spans: nothing to write.
                self.stage = Stage::Start;
                true
            }
            Stage::Spans => {
                self.close_batch();
                self.stage = Stage::Start;
                true
            }
            Stage::Start => self.ok(),
            Stage::SpanAttrs | Stage::Event | Stage::Link => {
                self.fail("span not ended");
                false
            }
        }
    }

    fn close_batch(&mut self) {
        if let Some((at, l)) = self.batch.take() {
            if l.count == 0 {
                self.buf.truncate(at);
            } else {
                close_list(&mut self.buf, l);
                self.batches += 1;
            }
        }
    }

    /// Starts a resource (`ResourceSpans`): its attributes follow.
    pub fn begin_resource(&mut self, dropped_attributes_count: u32, schema_url: &str) {
        if !self.close_scope_level() {
            return;
        }
        self.res.clear();
        self.attrs = Some(open_list(&mut self.res, 1, false));
        self.res_dropped = dropped_attributes_count;
        self.res_schema.clear();
        self.res_schema.push_str(schema_url);
        self.stage = Stage::Resource;
    }

    /// Starts an instrumentation scope of the current resource: its attributes follow, then
    /// its spans.
    pub fn begin_scope(
        &mut self,
        name: &str,
        version: &str,
        dropped_attributes_count: u32,
        schema_url: &str,
    ) {
        if !self.close_scope_level() {
            return;
        }
        if self.res.is_empty() {
            self.fail("scope before any resource");
            return;
        }
        self.scope.clear();
        put_str(&mut self.scope, name);
        put_str(&mut self.scope, version);
        self.attrs = Some(open_list(&mut self.scope, 1, false));
        self.scope_dropped = dropped_attributes_count;
        self.scope_schema.clear();
        self.scope_schema.push_str(schema_url);
        self.stage = Stage::Scope;
    }

    /// Starts a span of the current scope; its attributes follow. Returns `false` when the
    /// span is rejected for an all-zero trace or span id (later calls for it are accepted and
    /// discarded) or the encoder is broken.
    pub fn begin_span(&mut self, h: &SpanHeader<'_>) -> bool {
        match self.stage {
            Stage::Scope => {
                if !self.close_attrs() {
                    return false;
                }
                write_uvarint(&mut self.scope, u64::from(self.scope_dropped));
                put_str(&mut self.scope, &self.scope_schema);
                self.stage = Stage::Spans;
            }
            Stage::Spans => {}
            _ => {
                self.fail("span outside a scope or inside another span");
                return false;
            }
        }
        if self.batch.is_none() {
            let at = self.buf.len();
            put_bytes(&mut self.buf, &self.res);
            put_bytes(&mut self.buf, &self.scope);
            let l = open_list(&mut self.buf, 2, false);
            self.batch = Some((at, l));
        }
        self.span_kept = !(h.trace_id.is_zero() || h.span_id == [0; 8]);
        if !self.span_kept {
            self.rejected += 1;
            if self.errors.len() < 5 {
                self.errors.push(ZERO_ID_REASON.into());
            }
        }
        let b = &mut self.buf;
        self.span_start = b.len();
        b.extend_from_slice(&h.trace_id.0);
        write_uvarint(b, h.start_unix_nano);
        write_uvarint(b, h.end_unix_nano);
        self.body = Some(open_list(b, 2, false));
        b.extend_from_slice(&h.span_id);
        match h.parent_span_id {
            None => b.push(0),
            Some(p) => {
                b.push(1);
                b.extend_from_slice(&p);
            }
        }
        put_str(b, h.trace_state);
        write_uvarint(b, u64::from(h.flags));
        put_str(b, h.name);
        b.push(kind_status_byte(h.kind, h.status_code));
        write_uvarint(b, h.start_unix_nano);
        write_varint(b, h.end_unix_nano.wrapping_sub(h.start_unix_nano) as i64);
        self.attrs = Some(open_list(b, 1, false));
        self.span_dropped = (
            h.dropped_attributes_count,
            h.dropped_events_count,
            h.dropped_links_count,
        );
        self.status_message.clear();
        self.status_message.push_str(h.status_message);
        self.stage = Stage::SpanAttrs;
        self.span_kept
    }

    /// Closes the open event or link (attributes and tail fields).
    fn close_item(&mut self) -> bool {
        if !self.close_attrs() {
            return false;
        }
        let (dropped, flags) = self.item_tail;
        write_uvarint(&mut self.buf, u64::from(dropped));
        if let Some(f) = flags {
            write_uvarint(&mut self.buf, u64::from(f));
        }
        true
    }

    /// Closes the span attributes (from `SpanAttrs`) and writes what follows them.
    fn close_span_attrs(&mut self) -> bool {
        if !self.close_attrs() {
            return false;
        }
        write_uvarint(&mut self.buf, u64::from(self.span_dropped.0));
        true
    }

    /// Moves the span to its events section (no-op when already there).
    fn enter_events(&mut self) -> bool {
        match self.stage {
            Stage::SpanAttrs => {
                if !self.close_span_attrs() {
                    return false;
                }
                self.events = Some(open_list(&mut self.buf, 1, false));
                true
            }
            Stage::Event => self.close_item(),
            _ => {
                self.fail("event outside a span, or after a link");
                false
            }
        }
    }

    /// Moves the span to its links section (no-op when already there).
    fn enter_links(&mut self) -> bool {
        match self.stage {
            Stage::SpanAttrs => {
                if !self.close_span_attrs() {
                    return false;
                }
                write_uvarint(&mut self.buf, 0);
            }
            Stage::Event => {
                if !self.close_item() {
                    return false;
                }
                if let Some(l) = self.events.take() {
                    close_list(&mut self.buf, l);
                }
            }
            Stage::Link => return self.close_item(),
            _ => {
                self.fail("link outside a span");
                return false;
            }
        }
        write_uvarint(&mut self.buf, u64::from(self.span_dropped.1));
        self.links = Some(open_list(&mut self.buf, 1, false));
        true
    }

    /// Adds an event to the current span (after its attributes, before any link); the
    /// event's attributes follow.
    pub fn begin_event(&mut self, time_unix_nano: u64, name: &str, dropped_attributes_count: u32) {
        if !self.enter_events() {
            return;
        }
        if let Some(l) = self.events.as_mut() {
            l.count += 1;
        }
        write_uvarint(&mut self.buf, time_unix_nano);
        put_str(&mut self.buf, name);
        self.attrs = Some(open_list(&mut self.buf, 1, false));
        self.item_tail = (dropped_attributes_count, None);
        self.stage = Stage::Event;
    }

    /// Adds a link to the current span (after its events); the link's attributes follow.
    pub fn begin_link(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        trace_state: &str,
        dropped_attributes_count: u32,
        flags: u32,
    ) {
        if !self.enter_links() {
            return;
        }
        if let Some(l) = self.links.as_mut() {
            l.count += 1;
        }
        self.buf.extend_from_slice(&trace_id.0);
        self.buf.extend_from_slice(&span_id);
        put_str(&mut self.buf, trace_state);
        self.attrs = Some(open_list(&mut self.buf, 1, false));
        self.item_tail = (dropped_attributes_count, Some(flags));
        self.stage = Stage::Link;
    }

    /// Ends the current span.
    pub fn end_span(&mut self) {
        match self.stage {
            Stage::SpanAttrs | Stage::Event => {
                if !self.enter_links() {
                    return;
                }
                if !self.close_links() {
                    return;
                }
            }
            Stage::Link => {
                if !self.close_item() || !self.close_links() {
                    return;
                }
            }
            _ => {
                self.fail("end_span without a span");
                return;
            }
        }
        put_str(&mut self.buf, &self.status_message);
        let Some(body) = self.body.take() else {
            self.fail("span body not open");
            return;
        };
        if self.span_kept {
            let len = self.buf.len() - body.pos - body.reserved;
            patch_uvarint(&mut self.buf, body.pos, body.reserved, len as u64);
            if let Some((_, l)) = self.batch.as_mut() {
                l.count += 1;
            }
            self.accepted += 1;
        } else {
            self.buf.truncate(self.span_start);
        }
        self.stage = Stage::Spans;
    }

    fn close_links(&mut self) -> bool {
        match self.links.take() {
            Some(l) => {
                close_list(&mut self.buf, l);
                write_uvarint(&mut self.buf, u64::from(self.span_dropped.2));
                true
            }
            None => {
                self.fail("links not open");
                false
            }
        }
    }

    /// Starts one value: checks the context (`key` given exactly in key/value lists), counts
    /// it and writes the key. `false` when the call is out of place.
    fn start_value(&mut self, key: Option<Utf8Bytes<'_>>) -> bool {
        if !self.ok() {
            return false;
        }
        let in_attrs = matches!(
            self.stage,
            Stage::Resource | Stage::Scope | Stage::SpanAttrs | Stage::Event | Stage::Link
        );
        let list = match self.nested.last_mut() {
            Some(l) => Some(l),
            None if in_attrs => self.attrs.as_mut(),
            None => None,
        };
        let Some(list) = list else {
            self.fail("attribute outside an attribute list");
            return false;
        };
        if list.array != key.is_none() {
            self.fail("keyed value in an array, or unkeyed value in a key/value list");
            return false;
        }
        list.count += 1;
        if let Some(k) = key {
            put_bytes(self.target(), k.0);
        }
        true
    }

    fn scalar(&mut self, key: Option<Utf8Bytes<'_>>, write: impl FnOnce(&mut Vec<u8>)) {
        if self.start_value(key) {
            write(self.target());
        }
    }

    fn open_nested(&mut self, key: Option<Utf8Bytes<'_>>, array: bool) {
        if self.nested.len() >= MAX_DEPTH as usize {
            self.fail("values nested too deeply");
            return;
        }
        if self.start_value(key) {
            let t = self.target();
            t.push(if array { TAG_ARRAY } else { TAG_KVLIST });
            let l = open_list(t, 1, array);
            self.nested.push(l);
        }
    }

    /// Closes the innermost array or key/value list value.
    pub fn end_nested(&mut self) {
        match self.nested.pop() {
            Some(l) => close_list(self.target(), l),
            None => self.fail("end_nested without an open nested value"),
        }
    }

    /// Encodes a decoded value: an attribute named `key`, or an item of the innermost open
    /// array (`key` = `None`); arrays and key/value lists recurse.
    pub fn value(&mut self, key: Option<&str>, v: &super::AttrValue) {
        use super::AttrValue as V;
        match (key, v) {
            (Some(k), V::Empty) => self.attr_empty(k),
            (Some(k), V::Str(s)) => self.attr_str(k, s),
            (Some(k), V::Bool(b)) => self.attr_bool(k, *b),
            (Some(k), V::Int(i)) => self.attr_int(k, *i),
            (Some(k), V::Double(d)) => self.attr_double(k, *d),
            (Some(k), V::Bytes(b)) => self.attr_bytes(k, b),
            (None, V::Empty) => self.item_empty(),
            (None, V::Str(s)) => self.item_str(s),
            (None, V::Bool(b)) => self.item_bool(*b),
            (None, V::Int(i)) => self.item_int(*i),
            (None, V::Double(d)) => self.item_double(*d),
            (None, V::Bytes(b)) => self.item_bytes(b),
            (k, V::Array(items)) => {
                match k {
                    Some(k) => self.attr_array(k),
                    None => self.item_array(),
                }
                for it in items {
                    self.value(None, it);
                }
                self.end_nested();
            }
            (k, V::KvList(kvs)) => {
                match k {
                    Some(k) => self.attr_kvlist(k),
                    None => self.item_kvlist(),
                }
                for kv in kvs {
                    self.value(Some(&kv.key), &kv.value);
                }
                self.end_nested();
            }
        }
    }

    pub fn attr_str<'k, 'v>(&mut self, key: impl Into<Utf8Bytes<'k>>, v: impl Into<Utf8Bytes<'v>>) {
        let v = v.into();
        self.scalar(Some(key.into()), |t| {
            t.push(TAG_STR);
            put_bytes(t, v.0);
        });
    }
    pub fn attr_int<'k>(&mut self, key: impl Into<Utf8Bytes<'k>>, v: i64) {
        self.scalar(Some(key.into()), |t| {
            t.push(TAG_INT);
            write_varint(t, v);
        });
    }
    pub fn attr_double<'k>(&mut self, key: impl Into<Utf8Bytes<'k>>, v: f64) {
        self.scalar(Some(key.into()), |t| {
            t.push(TAG_DOUBLE);
            t.extend_from_slice(&v.to_bits().to_le_bytes());
        });
    }
    pub fn attr_bool<'k>(&mut self, key: impl Into<Utf8Bytes<'k>>, v: bool) {
        self.scalar(Some(key.into()), |t| {
            t.push(if v { TAG_TRUE } else { TAG_FALSE })
        });
    }
    pub fn attr_bytes<'k>(&mut self, key: impl Into<Utf8Bytes<'k>>, v: &[u8]) {
        self.scalar(Some(key.into()), |t| {
            t.push(TAG_BYTES);
            put_bytes(t, v);
        });
    }
    /// An attribute whose `AnyValue` has no value set.
    pub fn attr_empty<'k>(&mut self, key: impl Into<Utf8Bytes<'k>>) {
        self.scalar(Some(key.into()), |t| t.push(TAG_EMPTY));
    }
    /// Opens an array-valued attribute; add items with `item_*`, close with `end_nested`.
    pub fn attr_array<'k>(&mut self, key: impl Into<Utf8Bytes<'k>>) {
        self.open_nested(Some(key.into()), true);
    }
    /// Opens a key/value-list attribute; add entries with `attr_*`, close with `end_nested`.
    pub fn attr_kvlist<'k>(&mut self, key: impl Into<Utf8Bytes<'k>>) {
        self.open_nested(Some(key.into()), false);
    }

    pub fn item_str<'v>(&mut self, v: impl Into<Utf8Bytes<'v>>) {
        let v = v.into();
        self.scalar(None, |t| {
            t.push(TAG_STR);
            put_bytes(t, v.0);
        });
    }
    pub fn item_int(&mut self, v: i64) {
        self.scalar(None, |t| {
            t.push(TAG_INT);
            write_varint(t, v);
        });
    }
    pub fn item_double(&mut self, v: f64) {
        self.scalar(None, |t| {
            t.push(TAG_DOUBLE);
            t.extend_from_slice(&v.to_bits().to_le_bytes());
        });
    }
    pub fn item_bool(&mut self, v: bool) {
        self.scalar(None, |t| t.push(if v { TAG_TRUE } else { TAG_FALSE }));
    }
    pub fn item_bytes(&mut self, v: &[u8]) {
        self.scalar(None, |t| {
            t.push(TAG_BYTES);
            put_bytes(t, v);
        });
    }
    pub fn item_empty(&mut self) {
        self.scalar(None, |t| t.push(TAG_EMPTY));
    }
    pub fn item_array(&mut self) {
        self.open_nested(None, true);
    }
    pub fn item_kvlist(&mut self) {
        self.open_nested(None, false);
    }

    /// Spans accepted so far (ended, non-zero ids).
    pub fn accepted_spans(&self) -> u64 {
        self.accepted
    }

    /// Ends the record. Fails when any call was out of order or a span / nested value is
    /// still open.
    pub fn finish(mut self) -> Result<EncodedSpans, EncodeError> {
        if self.close_scope_level() && !self.nested.is_empty() {
            self.fail("nested value left open");
        }
        if let Some(why) = self.broken {
            return Err(EncodeError(why));
        }
        let mut count = Vec::with_capacity(10);
        write_uvarint(&mut count, self.batches);
        let start = RESERVE - FRAME_HEADER - count.len();
        self.buf[start + FRAME_HEADER..RESERVE].copy_from_slice(&count);
        let len = (self.buf.len() - start - FRAME_HEADER) as u32;
        let crc = crc32fast::hash(&self.buf[start + FRAME_HEADER..]);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(EncodedSpans {
            buf: self.buf,
            start,
            accepted: self.accepted,
            rejected: self.rejected,
            errors: self.errors,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Borrowed views: what per-span consumers (the head summary, span metrics, the service graph)
// read from a record, without building `Span`s.

/// An attribute value borrowed from a record or a decoded [`super::AttrValue`]. Arrays and
/// key/value lists are opaque ([`ValueRef::Nested`]): no consumer of views looks inside them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An array or key/value list.
    Nested,
}

impl<'a> ValueRef<'a> {
    /// The view of a decoded value.
    pub fn of(v: &'a super::AttrValue) -> ValueRef<'a> {
        use super::AttrValue as V;
        match v {
            V::Empty => ValueRef::Empty,
            V::Str(s) => ValueRef::Str(s),
            V::Bool(b) => ValueRef::Bool(*b),
            V::Int(i) => ValueRef::Int(*i),
            V::Double(d) => ValueRef::Double(*d),
            V::Bytes(b) => ValueRef::Bytes(b),
            V::Array(_) | V::KvList(_) => ValueRef::Nested,
        }
    }
}

/// An attribute list: encoded (count-prefixed, as the record holds it) or decoded.
#[derive(Clone, Copy, Debug)]
pub struct AttrsRef<'a>(AttrsRepr<'a>);

#[derive(Clone, Copy, Debug)]
enum AttrsRepr<'a> {
    /// The list's entries (after the count) and how many there are.
    Encoded(&'a [u8], usize),
    Decoded(&'a [super::Attr]),
}

impl<'a> AttrsRef<'a> {
    /// The view of decoded attributes.
    pub fn of(attrs: &'a [super::Attr]) -> AttrsRef<'a> {
        AttrsRef(AttrsRepr::Decoded(attrs))
    }

    /// The value of the first attribute named `key` (as [`super::find_attr`]).
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        match self.0 {
            AttrsRepr::Decoded(a) => super::find_attr(a, key).map(ValueRef::of),
            AttrsRepr::Encoded(..) => self
                .raw()
                .find(|(k, _)| *k == key.as_bytes())
                .and_then(|(_, mut v)| get_value_ref(&mut v, 0)),
        }
    }

    /// `[self.get(keys[0]), self.get(keys[1]), …]` in one walk of the list (for consumers
    /// that look up several keys of every span).
    pub fn get_many<const N: usize>(&self, keys: [&str; N]) -> [Option<ValueRef<'a>>; N] {
        let mut out = [None; N];
        match self.0 {
            AttrsRepr::Decoded(a) => {
                for (o, k) in out.iter_mut().zip(keys) {
                    *o = super::find_attr(a, k).map(ValueRef::of);
                }
            }
            AttrsRepr::Encoded(..) => {
                let mut done = [false; N];
                let mut left = N;
                for (k, v) in self.raw() {
                    for (i, key) in keys.iter().enumerate() {
                        if !done[i] && k == key.as_bytes() {
                            done[i] = true;
                            left -= 1;
                            out[i] = get_value_ref(&mut &v[..], 0);
                        }
                    }
                    if left == 0 {
                        break;
                    }
                }
            }
        }
        out
    }

    /// `(key, value)` in order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, ValueRef<'a>)> + 'a {
        let decoded = match self.0 {
            AttrsRepr::Decoded(a) => a,
            AttrsRepr::Encoded(..) => &[],
        };
        let encoded = match self.0 {
            AttrsRepr::Decoded(_) => RawAttrs { buf: &[], left: 0 },
            AttrsRepr::Encoded(..) => self.raw(),
        };
        decoded
            .iter()
            .map(|a| (a.key.as_str(), ValueRef::of(&a.value)))
            .chain(encoded.filter_map(|(k, mut v)| {
                Some((std::str::from_utf8(k).ok()?, get_value_ref(&mut v, 0)?))
            }))
    }

    /// How many attributes (duplicates included).
    pub fn len(&self) -> usize {
        match self.0 {
            AttrsRepr::Decoded(a) => a.len(),
            AttrsRepr::Encoded(_, n) => n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(key, value)` for each attribute in order (duplicates included) without
    /// UTF-8-checking keys or reading values: for the head summary, whose callers decide per
    /// key whether the value is needed ([`UncheckedValue::read`]). Record strings were checked
    /// when the request was decoded; a malformed entry ends the walk as in [`AttrsRef::iter`].
    pub(crate) fn for_each_unchecked(&self, mut f: impl FnMut(&'a [u8], UncheckedValue<'a>)) {
        match self.0 {
            AttrsRepr::Decoded(a) => a
                .iter()
                .for_each(|a| f(a.key.as_bytes(), UncheckedValue::Decoded(&a.value))),
            AttrsRepr::Encoded(..) => self
                .raw()
                .for_each(|(k, v)| f(k, UncheckedValue::Encoded(v))),
        }
    }

    fn raw(&self) -> RawAttrs<'a> {
        match self.0 {
            AttrsRepr::Encoded(buf, left) => RawAttrs { buf, left },
            AttrsRepr::Decoded(_) => RawAttrs { buf: &[], left: 0 },
        }
    }
}

/// An attribute value handed out by [`AttrsRef::for_each_unchecked`], read on demand.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UncheckedValue<'a> {
    /// The value's encoding (tag first).
    Encoded(&'a [u8]),
    Decoded(&'a super::AttrValue),
}

/// What the head summary keeps of a value: strings as bytes (not UTF-8-checked again), the
/// scalars, and `Other` for empty, bytes, arrays and key/value lists (or a malformed value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SummaryValue<'a> {
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
    Bool(bool),
    Other,
}

impl<'a> UncheckedValue<'a> {
    pub(crate) fn read(self) -> SummaryValue<'a> {
        use super::AttrValue as V;
        match self {
            UncheckedValue::Decoded(v) => match v {
                V::Str(s) => SummaryValue::Str(s.as_bytes()),
                V::Int(i) => SummaryValue::Int(*i),
                V::Double(d) => SummaryValue::Double(*d),
                V::Bool(b) => SummaryValue::Bool(*b),
                _ => SummaryValue::Other,
            },
            UncheckedValue::Encoded(enc) => {
                let b = &mut &enc[..];
                let v = match get_u8(b) {
                    Some(TAG_STR) => get_bytes(b).map(SummaryValue::Str),
                    Some(TAG_INT) => get_i(b).map(SummaryValue::Int),
                    Some(TAG_DOUBLE) => get_fixed(b)
                        .map(|x| SummaryValue::Double(f64::from_bits(u64::from_le_bytes(x)))),
                    Some(TAG_TRUE) => Some(SummaryValue::Bool(true)),
                    Some(TAG_FALSE) => Some(SummaryValue::Bool(false)),
                    _ => None,
                };
                v.unwrap_or(SummaryValue::Other)
            }
        }
    }
}

/// Walks encoded `(key, value)` entries; stops at the first malformed one (records come from
/// [`SpanBatchEncoder`] or the CRC-checked WAL, so that does not happen).
struct RawAttrs<'a> {
    buf: &'a [u8],
    left: usize,
}

impl<'a> Iterator for RawAttrs<'a> {
    /// The key and the value's encoding (read with [`get_value_ref`] when wanted, so lookups
    /// do not UTF-8-check the values they pass over).
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut b = self.buf;
        let entry = get_bytes(&mut b).and_then(|k| {
            let start = b;
            skip_value(&mut b, 0)?;
            Some((k, &start[..start.len() - b.len()]))
        });
        match entry {
            Some(e) => {
                self.buf = b;
                self.left -= 1;
                Some(e)
            }
            None => {
                self.left = 0;
                None
            }
        }
    }
}

/// Reads one tagged value as a view (nested values are skipped over).
fn get_value_ref<'a>(b: &mut &'a [u8], depth: u32) -> Option<ValueRef<'a>> {
    Some(match get_u8(b)? {
        TAG_EMPTY => ValueRef::Empty,
        TAG_STR => ValueRef::Str(std::str::from_utf8(get_bytes(b)?).ok()?),
        TAG_FALSE => ValueRef::Bool(false),
        TAG_TRUE => ValueRef::Bool(true),
        TAG_INT => ValueRef::Int(get_i(b)?),
        TAG_DOUBLE => ValueRef::Double(f64::from_bits(u64::from_le_bytes(get_fixed(b)?))),
        TAG_BYTES => ValueRef::Bytes(get_bytes(b)?),
        TAG_ARRAY if depth < MAX_DEPTH => {
            for _ in 0..get_count(b)? {
                skip_value(b, depth + 1)?;
            }
            ValueRef::Nested
        }
        TAG_KVLIST if depth < MAX_DEPTH => {
            skip_attrs(b, depth + 1)?;
            ValueRef::Nested
        }
        _ => return None,
    })
}

/// Skips one tagged value without UTF-8-checking its strings (records hold strings that were
/// checked when encoded; values handed out are checked again by [`get_value_ref`]).
fn skip_value(b: &mut &[u8], depth: u32) -> Option<()> {
    match get_u8(b)? {
        TAG_EMPTY | TAG_FALSE | TAG_TRUE => {}
        TAG_STR | TAG_BYTES => drop(get_bytes(b)?),
        TAG_INT => drop(get_i(b)?),
        TAG_DOUBLE => drop(get_fixed::<8>(b)?),
        TAG_ARRAY if depth < MAX_DEPTH => {
            for _ in 0..get_count(b)? {
                skip_value(b, depth + 1)?;
            }
        }
        TAG_KVLIST if depth < MAX_DEPTH => drop(skip_attrs(b, depth + 1)?),
        _ => return None,
    }
    Some(())
}

/// Skips a count-prefixed attribute list, returning its entries and count.
fn skip_attrs<'a>(b: &mut &'a [u8], depth: u32) -> Option<(&'a [u8], usize)> {
    let n = get_count(b)?;
    let start = *b;
    for _ in 0..n {
        get_bytes(b)?;
        skip_value(b, depth)?;
    }
    Some((&start[..start.len() - b.len()], n))
}

/// The fields of one span that per-span consumers read, borrowed from a record (or a decoded
/// [`super::Span`] via [`SpanRef::of`]). Times are Unix nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct SpanRef<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: &'a str,
    pub kind: SpanKind,
    pub status_code: StatusCode,
    pub status_message: &'a str,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: AttrsRef<'a>,
}

impl<'a> SpanRef<'a> {
    /// The view of a decoded span.
    pub fn of(s: &'a super::Span) -> SpanRef<'a> {
        SpanRef {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            name: &s.name,
            kind: s.kind,
            status_code: s.status_code,
            status_message: &s.status_message,
            start_unix_nano: s.start_unix_nano,
            end_unix_nano: s.end_unix_nano,
            attributes: AttrsRef::of(&s.attributes),
        }
    }

    /// End minus start, 0 when negative (as [`super::Span::duration_nanos`]).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// Reads a span body ([`super::codec::put_span_body`]'s layout) through [`RawSpan::parse`],
    /// checking the name and status message as UTF-8; `None` if malformed.
    pub(crate) fn parse(trace_id: TraceId, body: &'a [u8]) -> Option<SpanRef<'a>> {
        let raw = RawSpan::parse(body)?;
        Some(SpanRef {
            trace_id,
            span_id: raw.span_id,
            parent_span_id: raw.parent_span_id,
            name: std::str::from_utf8(raw.name).ok()?,
            kind: raw.kind,
            status_code: raw.status_code,
            status_message: std::str::from_utf8(raw.status_message).ok()?,
            start_unix_nano: raw.start_unix_nano,
            end_unix_nano: raw.end_unix_nano,
            attributes: AttrsRef(AttrsRepr::Encoded(raw.attrs.0, raw.attrs.1)),
        })
    }
}

/// A span body's fields as slices of the body, nothing decoded or UTF-8-checked (bodies come
/// from [`SpanBatchEncoder`] or the CRC-checked WAL, whose strings were checked when encoded):
/// what the block writer copies into its columns without building a [`super::Span`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawSpan<'a> {
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: &'a [u8],
    pub flags: u32,
    pub name: &'a [u8],
    pub kind: SpanKind,
    pub status_code: StatusCode,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// The attribute entries (after their count) and the count.
    attrs: (&'a [u8], usize),
    pub dropped_attributes_count: u32,
    /// The events, count-prefixed, exactly as [`super::codec::put_events`] writes them.
    pub events: &'a [u8],
    pub dropped_events_count: u32,
    /// The links, count-prefixed, exactly as [`super::codec::put_links`] writes them.
    pub links: &'a [u8],
    pub dropped_links_count: u32,
    pub status_message: &'a [u8],
}

impl<'a> RawSpan<'a> {
    /// Splits a span body ([`super::codec::put_span_body`]'s layout); `None` if malformed.
    pub(crate) fn parse(body: &'a [u8]) -> Option<RawSpan<'a>> {
        let b = &mut &body[..];
        let (span_id, parent_span_id) = get_span_ids(b)?;
        let trace_state = get_bytes(b)?;
        let flags = u32::try_from(get_u(b)?).ok()?;
        let name = get_bytes(b)?;
        let (kind, status_code) = split_kind_status(get_u8(b)?)?;
        let start = get_u(b)?;
        let end = start.wrapping_add(get_i(b)? as u64);
        let attrs = skip_attrs(b, 0)?;
        let dropped_attributes_count = u32::try_from(get_u(b)?).ok()?;
        let events_at = *b;
        for _ in 0..get_count(b)? {
            get_u(b)?; // time
            get_bytes(b)?; // name
            skip_attrs(b, 0)?;
            get_u(b)?; // dropped attributes
        }
        let events = &events_at[..events_at.len() - b.len()];
        let dropped_events_count = u32::try_from(get_u(b)?).ok()?;
        let links_at = *b;
        for _ in 0..get_count(b)? {
            get_fixed::<24>(b)?; // trace id, span id
            get_bytes(b)?; // trace state
            skip_attrs(b, 0)?;
            get_u(b)?; // dropped attributes
            get_u(b)?; // flags
        }
        let links = &links_at[..links_at.len() - b.len()];
        let dropped_links_count = u32::try_from(get_u(b)?).ok()?;
        let status_message = get_bytes(b)?;
        b.is_empty().then_some(RawSpan {
            span_id,
            parent_span_id,
            trace_state,
            flags,
            name,
            kind,
            status_code,
            start_unix_nano: start,
            end_unix_nano: end,
            attrs,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links,
            dropped_links_count,
            status_message,
        })
    }

    /// How many attributes (duplicates included).
    pub(crate) fn attr_count(&self) -> usize {
        self.attrs.1
    }

    /// `(key, value encoding)` of each attribute in order (the value's tag byte first, as
    /// [`super::codec::put_value`] writes it).
    pub(crate) fn attrs(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        RawAttrs {
            buf: self.attrs.0,
            left: self.attrs.1,
        }
    }
}

/// The view of an encoded resource's attributes ([`super::codec::put_resource`]'s layout).
pub(crate) fn resource_attrs(enc: &[u8]) -> Option<AttrsRef<'_>> {
    let b = &mut &enc[..];
    let (attrs, n) = skip_attrs(b, 0)?;
    Some(AttrsRef(AttrsRepr::Encoded(attrs, n)))
}

/// One batch of a record as views: the resource's attributes and the spans.
#[derive(Clone, Debug)]
pub struct BatchRef<'a> {
    pub resource: AttrsRef<'a>,
    pub spans: Vec<SpanRef<'a>>,
}

impl<'a> BatchRef<'a> {
    /// The view of a decoded batch.
    pub fn of(b: &'a SpanBatch) -> BatchRef<'a> {
        BatchRef {
            resource: AttrsRef::of(&b.resource.attributes),
            spans: b.spans.iter().map(SpanRef::of).collect(),
        }
    }

    /// The resource's `service.name` when it is a string.
    pub fn service_name(&self) -> Option<&'a str> {
        match self.resource.get("service.name") {
            Some(ValueRef::Str(s)) => Some(s),
            _ => None,
        }
    }
}

impl EncodedSpans {
    /// The record's batches as views (no decoding of attribute values, events or links).
    pub fn views(&self) -> Result<Vec<BatchRef<'_>>, StorageError> {
        let corrupt = || StorageError::Corruption {
            path: "<encoded spans>".into(),
            offset: 0,
            reason: "encoded span record does not parse".into(),
        };
        if self.accepted == 0 {
            return Ok(Vec::new());
        }
        let payload = &self.frame()[FRAME_HEADER..];
        let rec = parse_record(payload).ok_or_else(corrupt)?;
        rec.iter()
            .map(|b| {
                let resource = resource_attrs(&payload[b.resource.clone()]).ok_or_else(corrupt)?;
                let spans = b
                    .spans
                    .iter()
                    .map(|s| SpanRef::parse(s.trace_id, &payload[s.body.clone()]))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(corrupt)?;
                Ok(BatchRef { resource, spans })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::{
        wal, Attr, AttrValue, Resource, Scope, Span, SpanEvent, SpanLink, TraceAppender,
        TraceSource, TraceStore,
    };

    fn attrs(enc: &mut SpanBatchEncoder, a: &[Attr]) {
        for kv in a {
            enc.value(Some(&kv.key), &kv.value);
        }
    }

    /// Drives the encoder from span batches (one resource and scope per batch).
    fn encode(batches: &[SpanBatch]) -> Result<EncodedSpans, EncodeError> {
        let mut enc = SpanBatchEncoder::default();
        for b in batches {
            enc.begin_resource(b.resource.dropped_attributes_count, &b.resource.schema_url);
            attrs(&mut enc, &b.resource.attributes);
            let sc = &b.scope;
            enc.begin_scope(
                &sc.name,
                &sc.version,
                sc.dropped_attributes_count,
                &sc.schema_url,
            );
            attrs(&mut enc, &sc.attributes);
            for s in &b.spans {
                enc.begin_span(&SpanHeader {
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent_span_id: s.parent_span_id,
                    trace_state: &s.trace_state,
                    flags: s.flags,
                    name: &s.name,
                    kind: s.kind,
                    start_unix_nano: s.start_unix_nano,
                    end_unix_nano: s.end_unix_nano,
                    dropped_attributes_count: s.dropped_attributes_count,
                    dropped_events_count: s.dropped_events_count,
                    dropped_links_count: s.dropped_links_count,
                    status_code: s.status_code,
                    status_message: &s.status_message,
                });
                attrs(&mut enc, &s.attributes);
                for e in &s.events {
                    enc.begin_event(e.time_unix_nano, &e.name, e.dropped_attributes_count);
                    attrs(&mut enc, &e.attributes);
                }
                for l in &s.links {
                    enc.begin_link(
                        l.trace_id,
                        l.span_id,
                        &l.trace_state,
                        l.dropped_attributes_count,
                        l.flags,
                    );
                    attrs(&mut enc, &l.attributes);
                }
                enc.end_span();
            }
        }
        enc.finish()
    }

    /// What `TraceStore::append` writes for the same batches.
    fn reference_frame(batches: &[SpanBatch]) -> Vec<u8> {
        let keeps: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| {
                (0..b.spans.len())
                    .filter(|&i| !b.spans[i].trace_id.is_zero() && b.spans[i].span_id != [0; 8])
                    .collect()
            })
            .collect();
        let mut buf = Vec::new();
        let mut tmp = Vec::new();
        wal::begin_record(&mut buf, keeps.iter().filter(|k| !k.is_empty()).count());
        for (b, k) in batches.iter().zip(&keeps) {
            if !k.is_empty() {
                wal::encode_batch(&mut buf, b, k, &mut tmp);
            }
        }
        wal::seal_record(&mut buf);
        buf
    }

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

    fn rand_value(rng: &mut Rng, depth: u32) -> AttrValue {
        match rng.below(if depth < 3 { 9 } else { 7 }) {
            0 => AttrValue::Empty,
            1 => AttrValue::Str("x".repeat(rng.below(300) as usize)),
            2 => AttrValue::Bool(rng.below(2) == 1),
            3 => AttrValue::Int(rng.next() as i64),
            4 => AttrValue::Double(rng.below(1000) as f64 / 3.0),
            5 => AttrValue::Bytes(vec![7; rng.below(20) as usize]),
            6 => AttrValue::Str(format!("v{}", rng.below(10))),
            7 => AttrValue::Array(
                (0..rng.below(6))
                    .map(|_| rand_value(rng, depth + 1))
                    .collect(),
            ),
            _ => AttrValue::KvList(rand_attrs(rng, depth + 1, 4)),
        }
    }

    fn rand_attrs(rng: &mut Rng, depth: u32, max: u64) -> Vec<Attr> {
        (0..rng.below(max))
            .map(|i| Attr::new(format!("k{i}.{}", rng.below(5)), rand_value(rng, depth)))
            .collect()
    }

    fn rand_batches(rng: &mut Rng) -> Vec<SpanBatch> {
        (0..1 + rng.below(4))
            .map(|_| {
                let resource = Arc::new(Resource {
                    attributes: rand_attrs(rng, 0, 6),
                    dropped_attributes_count: rng.below(3) as u32,
                    schema_url: format!("s{}", rng.below(3)),
                });
                let scope = Arc::new(Scope {
                    name: format!("lib{}", rng.below(3)),
                    version: "1".into(),
                    attributes: rand_attrs(rng, 0, 3),
                    dropped_attributes_count: rng.below(2) as u32,
                    schema_url: String::new(),
                });
                let spans = (0..rng.below(40))
                    .map(|_| {
                        let zero = rng.below(10) == 0;
                        let mut tid = [0u8; 16];
                        if !zero {
                            tid[..8].copy_from_slice(&rng.next().to_le_bytes());
                        }
                        let start = rng.next() >> 2;
                        Span {
                            trace_id: TraceId(tid),
                            span_id: (rng.next() | 1).to_le_bytes(),
                            parent_span_id: (rng.below(2) == 0).then(|| rng.next().to_le_bytes()),
                            trace_state: "a=b".repeat(rng.below(2) as usize),
                            flags: rng.below(1000) as u32,
                            name: format!("op{}", rng.below(50)),
                            kind: SpanKind::from_i32(rng.below(6) as i32),
                            start_unix_nano: start,
                            end_unix_nano: start.wrapping_add(rng.next() >> 30),
                            attributes: rand_attrs(rng, 0, 20),
                            dropped_attributes_count: rng.below(3) as u32,
                            events: (0..rng.below(3))
                                .map(|_| SpanEvent {
                                    time_unix_nano: rng.next(),
                                    name: "ev".into(),
                                    attributes: rand_attrs(rng, 0, 3),
                                    dropped_attributes_count: rng.below(2) as u32,
                                })
                                .collect(),
                            dropped_events_count: rng.below(2) as u32,
                            links: (0..rng.below(3))
                                .map(|_| SpanLink {
                                    trace_id: TraceId([rng.below(256) as u8; 16]),
                                    span_id: rng.next().to_le_bytes(),
                                    trace_state: "t".into(),
                                    attributes: rand_attrs(rng, 0, 3),
                                    dropped_attributes_count: rng.below(2) as u32,
                                    flags: rng.below(300) as u32,
                                })
                                .collect(),
                            dropped_links_count: rng.below(2) as u32,
                            status_code: StatusCode::from_i32(rng.below(3) as i32),
                            status_message: "m".repeat(rng.below(3) as usize),
                        }
                    })
                    .collect();
                SpanBatch {
                    resource,
                    scope,
                    spans,
                }
            })
            .collect()
    }

    #[test]
    fn encoder_bytes_equal_wal_encoding_of_span_batches() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..200 {
            let batches = rand_batches(&mut rng);
            let enc = encode(&batches).unwrap();
            let want = reference_frame(&batches);
            assert_eq!(enc.frame(), &want[..], "round {round}");
            let zero = batches
                .iter()
                .flat_map(|b| &b.spans)
                .filter(|s| s.trace_id.is_zero())
                .count() as u64;
            assert_eq!(enc.rejected_spans(), zero);
            let total: u64 = batches.iter().map(|b| b.spans.len() as u64).sum();
            assert_eq!(enc.accepted_spans(), total - zero);
        }
    }

    #[test]
    fn append_encoded_matches_append_and_default_impl() {
        let mut rng = Rng(77);
        let direct = TraceStore::in_memory();
        let old = TraceStore::in_memory();
        let naive = crate::traces::NaiveTraceStore::default();
        let mut ids = Vec::new();
        for _ in 0..30 {
            let batches = rand_batches(&mut rng);
            ids.extend(
                batches
                    .iter()
                    .flat_map(|b| b.spans.iter().map(|s| s.trace_id)),
            );
            let a = direct.append_encoded(encode(&batches).unwrap()).unwrap();
            let b = naive.append_encoded(encode(&batches).unwrap()).unwrap();
            let c = old.append(batches).unwrap();
            assert_eq!(a, c);
            assert_eq!(b, c);
        }
        for id in ids.iter().filter(|id| !id.is_zero()) {
            let a = direct.trace(id, None).unwrap();
            assert!(a.is_some());
            assert_eq!(a, old.trace(id, None).unwrap());
            assert_eq!(a, naive.trace(id, None).unwrap());
        }
        assert_eq!(direct.trace(&TraceId([0; 16]), None).unwrap(), None);
    }

    #[test]
    fn misuse_never_yields_a_record() {
        let span = SpanHeader {
            trace_id: TraceId([1; 16]),
            span_id: [2; 8],
            ..SpanHeader::default()
        };
        type Case<'a> = (&'a str, Box<dyn Fn(&mut SpanBatchEncoder) + 'a>);
        let cases: Vec<Case<'_>> = vec![
            (
                "span without scope",
                Box::new(|e| {
                    e.begin_span(&span);
                    e.end_span();
                }),
            ),
            (
                "scope without resource",
                Box::new(|e| {
                    e.begin_scope("a", "b", 0, "");
                }),
            ),
            (
                "unended span",
                Box::new(|e| {
                    e.begin_resource(0, "");
                    e.begin_scope("a", "b", 0, "");
                    e.begin_span(&span);
                }),
            ),
            (
                "item in attribute list",
                Box::new(|e| {
                    e.begin_resource(0, "");
                    e.item_str("x");
                }),
            ),
            (
                "keyed value in array",
                Box::new(|e| {
                    e.begin_resource(0, "");
                    e.attr_array("a");
                    e.attr_str("k", "v");
                    e.end_nested();
                }),
            ),
            (
                "open nested value",
                Box::new(|e| {
                    e.begin_resource(0, "");
                    e.attr_kvlist("a");
                }),
            ),
            (
                "event after link",
                Box::new(|e| {
                    e.begin_resource(0, "");
                    e.begin_scope("a", "b", 0, "");
                    e.begin_span(&span);
                    e.begin_link(TraceId([1; 16]), [1; 8], "", 0, 0);
                    e.begin_event(1, "e", 0);
                    e.end_span();
                }),
            ),
            (
                "extra end_nested",
                Box::new(|e| {
                    e.begin_resource(0, "");
                    e.end_nested();
                }),
            ),
        ];
        for (name, f) in cases {
            let mut e = SpanBatchEncoder::default();
            f(&mut e);
            assert!(e.finish().is_err(), "{name}");
        }
        let mut e = SpanBatchEncoder::default();
        e.begin_resource(0, "");
        e.attr_array("deep");
        for _ in 0..MAX_DEPTH {
            e.item_array();
        }
        assert!(e.finish().is_err());
    }
}
