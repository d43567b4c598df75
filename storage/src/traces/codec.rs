//! Compact binary encoding of the span model, shared by the trace WAL, the head's per-trace
//! buffers and the rarely used block columns (events, links, nested attribute values).
//!
//! `str` is `uvarint len` + UTF-8; `value` is a tag byte (see [`put_value`]) + payload; counts are
//! checked against the bytes left so corrupt input never causes a huge allocation; nesting of
//! arrays/kvlists is limited to [`MAX_DEPTH`]. Decoders return `None` on any malformed input.

use super::{
    Attr, AttrValue, Resource, Scope, Span, SpanEvent, SpanKind, SpanLink, StatusCode, TraceId,
};
use crate::varint::{read_uvarint, read_varint, write_uvarint, write_varint};

/// Deepest nesting of `Array`/`KvList` values accepted when decoding.
pub(crate) const MAX_DEPTH: u32 = 64;

pub(crate) const TAG_EMPTY: u8 = 0;
pub(crate) const TAG_STR: u8 = 1;
pub(crate) const TAG_FALSE: u8 = 2;
pub(crate) const TAG_TRUE: u8 = 3;
pub(crate) const TAG_INT: u8 = 4;
pub(crate) const TAG_DOUBLE: u8 = 5;
pub(crate) const TAG_BYTES: u8 = 6;
pub(crate) const TAG_ARRAY: u8 = 7;
pub(crate) const TAG_KVLIST: u8 = 8;

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    write_uvarint(out, s.len() as u64);
    out.extend_from_slice(s);
}

#[inline]
pub(crate) fn get_u(b: &mut &[u8]) -> Option<u64> {
    read_uvarint(b)
}

#[inline]
pub(crate) fn get_i(b: &mut &[u8]) -> Option<i64> {
    read_varint(b)
}

/// A count of items that each take at least one byte: rejected when larger than what is left.
#[inline]
pub(crate) fn get_count(b: &mut &[u8]) -> Option<usize> {
    let n = read_uvarint(b)?;
    (n <= b.len() as u64).then_some(n as usize)
}

#[inline]
pub(crate) fn get_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = read_uvarint(b)?;
    if n > b.len() as u64 {
        return None;
    }
    let (head, tail) = b.split_at(n as usize);
    *b = tail;
    Some(head)
}

pub(crate) fn get_str(b: &mut &[u8]) -> Option<String> {
    std::str::from_utf8(get_bytes(b)?).ok().map(str::to_owned)
}

#[inline]
pub(crate) fn get_fixed<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
    if b.len() < N {
        return None;
    }
    let (head, tail) = b.split_at(N);
    *b = tail;
    head.try_into().ok()
}

#[inline]
pub(crate) fn get_u8(b: &mut &[u8]) -> Option<u8> {
    let (&v, rest) = b.split_first()?;
    *b = rest;
    Some(v)
}

pub(crate) fn put_value(out: &mut Vec<u8>, v: &AttrValue) {
    match v {
        AttrValue::Empty => out.push(TAG_EMPTY),
        AttrValue::Str(s) => {
            out.push(TAG_STR);
            put_str(out, s);
        }
        AttrValue::Bool(false) => out.push(TAG_FALSE),
        AttrValue::Bool(true) => out.push(TAG_TRUE),
        AttrValue::Int(i) => {
            out.push(TAG_INT);
            write_varint(out, *i);
        }
        AttrValue::Double(d) => {
            out.push(TAG_DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        AttrValue::Bytes(bytes) => {
            out.push(TAG_BYTES);
            put_bytes(out, bytes);
        }
        AttrValue::Array(items) => {
            out.push(TAG_ARRAY);
            write_uvarint(out, items.len() as u64);
            for item in items {
                put_value(out, item);
            }
        }
        AttrValue::KvList(kvs) => {
            out.push(TAG_KVLIST);
            put_attrs(out, kvs);
        }
    }
}

/// Decodes the payload of a value whose tag has been read already.
pub(crate) fn get_value_tagged(b: &mut &[u8], tag: u8, depth: u32) -> Option<AttrValue> {
    Some(match tag {
        TAG_EMPTY => AttrValue::Empty,
        TAG_STR => AttrValue::Str(get_str(b)?),
        TAG_FALSE => AttrValue::Bool(false),
        TAG_TRUE => AttrValue::Bool(true),
        TAG_INT => AttrValue::Int(get_i(b)?),
        TAG_DOUBLE => AttrValue::Double(f64::from_bits(u64::from_le_bytes(get_fixed(b)?))),
        TAG_BYTES => AttrValue::Bytes(get_bytes(b)?.to_vec()),
        TAG_ARRAY if depth < MAX_DEPTH => {
            let n = get_count(b)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(get_value(b, depth + 1)?);
            }
            AttrValue::Array(items)
        }
        TAG_KVLIST if depth < MAX_DEPTH => AttrValue::KvList(get_attrs_depth(b, depth + 1)?),
        _ => return None,
    })
}

pub(crate) fn get_value(b: &mut &[u8], depth: u32) -> Option<AttrValue> {
    let tag = get_u8(b)?;
    get_value_tagged(b, tag, depth)
}

pub(crate) fn put_attrs(out: &mut Vec<u8>, attrs: &[Attr]) {
    write_uvarint(out, attrs.len() as u64);
    for a in attrs {
        put_str(out, &a.key);
        put_value(out, &a.value);
    }
}

pub(crate) fn get_attrs(b: &mut &[u8]) -> Option<Vec<Attr>> {
    get_attrs_depth(b, 0)
}

fn get_attrs_depth(b: &mut &[u8], depth: u32) -> Option<Vec<Attr>> {
    let n = get_count(b)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = get_str(b)?;
        let value = get_value(b, depth)?;
        out.push(Attr { key, value });
    }
    Some(out)
}

pub(crate) fn put_resource(out: &mut Vec<u8>, r: &Resource) {
    put_attrs(out, &r.attributes);
    write_uvarint(out, u64::from(r.dropped_attributes_count));
    put_str(out, &r.schema_url);
}

pub(crate) fn get_resource(b: &mut &[u8]) -> Option<Resource> {
    Some(Resource {
        attributes: get_attrs(b)?,
        dropped_attributes_count: get_u32(b)?,
        schema_url: get_str(b)?,
    })
}

pub(crate) fn put_scope(out: &mut Vec<u8>, s: &Scope) {
    put_str(out, &s.name);
    put_str(out, &s.version);
    put_attrs(out, &s.attributes);
    write_uvarint(out, u64::from(s.dropped_attributes_count));
    put_str(out, &s.schema_url);
}

pub(crate) fn get_scope(b: &mut &[u8]) -> Option<Scope> {
    Some(Scope {
        name: get_str(b)?,
        version: get_str(b)?,
        attributes: get_attrs(b)?,
        dropped_attributes_count: get_u32(b)?,
        schema_url: get_str(b)?,
    })
}

#[inline]
pub(crate) fn get_u32(b: &mut &[u8]) -> Option<u32> {
    u32::try_from(read_uvarint(b)?).ok()
}

pub(crate) fn kind_status_byte(kind: SpanKind, status: StatusCode) -> u8 {
    kind as u8 | (status as u8) << 3
}

pub(crate) fn split_kind_status(b: u8) -> Option<(SpanKind, StatusCode)> {
    let kind = b & 7;
    let status = b >> 3;
    if kind > 5 || status > 2 {
        return None;
    }
    Some((
        SpanKind::from_i32(i32::from(kind)),
        StatusCode::from_i32(i32::from(status)),
    ))
}

pub(crate) fn put_events(out: &mut Vec<u8>, events: &[SpanEvent]) {
    write_uvarint(out, events.len() as u64);
    for e in events {
        write_uvarint(out, e.time_unix_nano);
        put_str(out, &e.name);
        put_attrs(out, &e.attributes);
        write_uvarint(out, u64::from(e.dropped_attributes_count));
    }
}

pub(crate) fn get_events(b: &mut &[u8]) -> Option<Vec<SpanEvent>> {
    let n = get_count(b)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(SpanEvent {
            time_unix_nano: get_u(b)?,
            name: get_str(b)?,
            attributes: get_attrs(b)?,
            dropped_attributes_count: get_u32(b)?,
        });
    }
    Some(out)
}

pub(crate) fn put_links(out: &mut Vec<u8>, links: &[SpanLink]) {
    write_uvarint(out, links.len() as u64);
    for l in links {
        out.extend_from_slice(&l.trace_id.0);
        out.extend_from_slice(&l.span_id);
        put_str(out, &l.trace_state);
        put_attrs(out, &l.attributes);
        write_uvarint(out, u64::from(l.dropped_attributes_count));
        write_uvarint(out, u64::from(l.flags));
    }
}

pub(crate) fn get_links(b: &mut &[u8]) -> Option<Vec<SpanLink>> {
    let n = get_count(b)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(SpanLink {
            trace_id: TraceId(get_fixed(b)?),
            span_id: get_fixed(b)?,
            trace_state: get_str(b)?,
            attributes: get_attrs(b)?,
            dropped_attributes_count: get_u32(b)?,
            flags: get_u32(b)?,
        });
    }
    Some(out)
}

/// Encodes every field of `span` except its trace id (the WAL and head store it once per span
/// or per trace).
pub(crate) fn put_span_body(out: &mut Vec<u8>, s: &Span) {
    out.extend_from_slice(&s.span_id);
    match s.parent_span_id {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p);
        }
    }
    put_str(out, &s.trace_state);
    write_uvarint(out, u64::from(s.flags));
    put_str(out, &s.name);
    out.push(kind_status_byte(s.kind, s.status_code));
    write_uvarint(out, s.start_unix_nano);
    write_varint(out, s.end_unix_nano.wrapping_sub(s.start_unix_nano) as i64);
    put_attrs(out, &s.attributes);
    write_uvarint(out, u64::from(s.dropped_attributes_count));
    put_events(out, &s.events);
    write_uvarint(out, u64::from(s.dropped_events_count));
    put_links(out, &s.links);
    write_uvarint(out, u64::from(s.dropped_links_count));
    put_str(out, &s.status_message);
}

/// The span id and optional parent span id that open a span body.
pub(crate) fn get_span_ids<const N: usize>(b: &mut &[u8]) -> Option<([u8; N], Option<[u8; N]>)> {
    let span_id = get_fixed(b)?;
    let parent_span_id = match get_u8(b)? {
        0 => None,
        1 => Some(get_fixed(b)?),
        _ => return None,
    };
    Some((span_id, parent_span_id))
}

pub(crate) fn get_span_body(b: &mut &[u8], trace_id: TraceId) -> Option<Span> {
    let (span_id, parent_span_id) = get_span_ids(b)?;
    let trace_state = get_str(b)?;
    let flags = get_u32(b)?;
    let name = get_str(b)?;
    let (kind, status_code) = split_kind_status(get_u8(b)?)?;
    let start = get_u(b)?;
    let end = start.wrapping_add(get_i(b)? as u64);
    Some(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        flags,
        name,
        kind,
        start_unix_nano: start,
        end_unix_nano: end,
        attributes: get_attrs(b)?,
        dropped_attributes_count: get_u32(b)?,
        events: get_events(b)?,
        dropped_events_count: get_u32(b)?,
        links: get_links(b)?,
        dropped_links_count: get_u32(b)?,
        status_code,
        status_message: get_str(b)?,
    })
}

/// A fast seeded hasher for the store's hot maps (trace ids, span ids, dictionary strings):
/// SipHash showed up at several percent of ingest and block writing. The per-process random
/// seed and the final avalanche make collisions hard to precompute.
#[derive(Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut x = [0u8; 8];
            x.copy_from_slice(c);
            self.add(u64::from_le_bytes(x));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut x = [0u8; 8];
            x[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(x) ^ (rest.len() as u64) << 59);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // murmur3's 64-bit finaliser.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl FastHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Builds [`FastHasher`]s from one random seed per process.
#[derive(Clone, Copy)]
pub struct FastState(u64);

impl Default for FastState {
    fn default() -> FastState {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        FastState(*SEED.get_or_init(|| {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1
        }))
    }
}

impl std::hash::BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, FastState>;

thread_local! {
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    static BUFS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// zstd-decompresses `src` (at most `cap` bytes) with a per-thread reused context, into a
/// buffer from the per-thread pool (give it back with [`recycle`]).
pub(crate) fn decompress(src: &[u8], cap: usize) -> std::io::Result<Vec<u8>> {
    // The smallest pooled buffer that fits (no realloc), else the largest one.
    let mut out = BUFS
        .with(|b| {
            let mut pool = b.borrow_mut();
            let fit = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= cap)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            let pick = fit.or_else(|| {
                pool.iter()
                    .enumerate()
                    .max_by_key(|(_, v)| v.capacity())
                    .map(|(i, _)| i)
            })?;
            Some(pool.swap_remove(pick))
        })
        .unwrap_or_default();
    out.clear();
    out.reserve(cap);
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress_to_buffer(src, &mut out)
    })?;
    Ok(out)
}

/// Returns decompression buffers to the per-thread pool (bounded in count and size).
pub(crate) fn recycle(bufs: impl IntoIterator<Item = Vec<u8>>) {
    BUFS.with(|b| {
        let mut pool = b.borrow_mut();
        for buf in bufs {
            if pool.len() < 64 && buf.capacity() <= 8 << 20 {
                pool.push(buf);
            }
        }
    });
}
