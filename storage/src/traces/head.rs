//! The trace head: recent spans kept compactly in memory, one append-only byte buffer per trace.
//!
//! Each buffer entry is `uvarint resource index`, `uvarint scope index`, `uvarint body length`,
//! span body ([`codec::put_span_body`], the same bytes the WAL holds). Resources and scopes are
//! interned by their encoding. Spans are decoded only when read or cut into a block, so a
//! span costs about its encoded size (~150–300 bytes) rather than a `Span` struct with heap
//! strings.

use std::collections::HashMap;
use std::sync::Arc;

use super::codec::{self, get_bytes, get_u32, FastMap};
use super::{Resource, Scope, Span, TraceId};
use crate::varint::write_uvarint;

/// One trace's spans in the head.
pub(crate) struct HeadTrace {
    pub buf: Vec<u8>,
    pub spans: u32,
    pub min_start: u64,
    pub max_end: u64,
    /// Milliseconds since the store opened of the last append to this trace.
    pub last_ms: u64,
}

/// A decoded head span: resource index, scope index, span.
pub(crate) type HeadSpan = (u32, u32, Span);

#[derive(Default)]
pub(crate) struct Head {
    pub resources: Vec<Arc<Resource>>,
    res_ids: HashMap<Vec<u8>, u32>,
    pub scopes: Vec<Arc<Scope>>,
    scope_ids: HashMap<Vec<u8>, u32>,
    pub traces: FastMap<TraceId, HeadTrace>,
    /// Bytes of all trace buffers.
    pub bytes: usize,
    pub spans: u64,
}

impl Head {
    /// The index of the resource encoded as `enc`, adding it (built by `make`) when new.
    pub(crate) fn intern_resource(
        &mut self,
        enc: &[u8],
        make: impl FnOnce() -> Option<Arc<Resource>>,
    ) -> Option<u32> {
        if let Some(&i) = self.res_ids.get(enc) {
            return Some(i);
        }
        let i = self.resources.len() as u32;
        self.resources.push(make()?);
        self.res_ids.insert(enc.to_vec(), i);
        Some(i)
    }

    pub(crate) fn intern_scope(
        &mut self,
        enc: &[u8],
        make: impl FnOnce() -> Option<Arc<Scope>>,
    ) -> Option<u32> {
        if let Some(&i) = self.scope_ids.get(enc) {
            return Some(i);
        }
        let i = self.scopes.len() as u32;
        self.scopes.push(make()?);
        self.scope_ids.insert(enc.to_vec(), i);
        Some(i)
    }

    /// Appends one encoded span body to its trace.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        id: TraceId,
        res: u32,
        scope: u32,
        body: &[u8],
        start: u64,
        end: u64,
        now_ms: u64,
    ) {
        let t = self.traces.entry(id).or_insert_with(|| HeadTrace {
            buf: Vec::new(),
            spans: 0,
            min_start: u64::MAX,
            max_end: 0,
            last_ms: now_ms,
        });
        let before = t.buf.len();
        write_uvarint(&mut t.buf, u64::from(res));
        write_uvarint(&mut t.buf, u64::from(scope));
        write_uvarint(&mut t.buf, body.len() as u64);
        t.buf.extend_from_slice(body);
        t.spans += 1;
        t.min_start = t.min_start.min(start);
        t.max_end = t.max_end.max(end);
        t.last_ms = now_ms;
        self.bytes += t.buf.len() - before;
        self.spans += 1;
    }

    /// Moves the traces selected by `pick` into a new, read-only head sharing the intern tables.
    pub(crate) fn take(&mut self, mut pick: impl FnMut(&HeadTrace) -> bool) -> Head {
        let ids: Vec<TraceId> = self
            .traces
            .iter()
            .filter(|(_, t)| pick(t))
            .map(|(id, _)| *id)
            .collect();
        let mut out = Head {
            resources: self.resources.clone(),
            scopes: self.scopes.clone(),
            ..Head::default()
        };
        for id in ids {
            if let Some(t) = self.traces.remove(&id) {
                self.bytes -= t.buf.len();
                self.spans -= u64::from(t.spans);
                out.bytes += t.buf.len();
                out.spans += u64::from(t.spans);
                out.traces.insert(id, t);
            }
        }
        if self.traces.is_empty() {
            // Forget resources and scopes nobody refers to any more.
            self.resources.clear();
            self.res_ids.clear();
            self.scopes.clear();
            self.scope_ids.clear();
            self.traces.shrink_to_fit();
        }
        out
    }
}

/// Calls `f(resource, scope, body)` for each entry of a trace buffer; `None` if malformed.
pub(crate) fn for_each_entry<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u32, u32, &'a [u8]),
) -> Option<()> {
    let mut b = buf;
    while !b.is_empty() {
        let res = get_u32(&mut b)?;
        let scope = get_u32(&mut b)?;
        let body = get_bytes(&mut b)?;
        f(res, scope, body);
    }
    Some(())
}

/// Decodes every span of a head trace.
pub(crate) fn decode_trace(id: TraceId, t: &HeadTrace) -> Option<Vec<HeadSpan>> {
    let mut out = Vec::with_capacity(t.spans as usize);
    let mut ok = true;
    for_each_entry(&t.buf, |res, scope, body| {
        let mut b = body;
        match codec::get_span_body(&mut b, id) {
            Some(span) if b.is_empty() => out.push((res, scope, span)),
            _ => ok = false,
        }
    })?;
    ok.then_some(out)
}
