//! The trace head: recent spans kept compactly in memory, one append-only byte buffer per trace.
//!
//! Each buffer entry is `uvarint resource index`, `uvarint scope index`, `uvarint body length`,
//! span body ([`codec::put_span_body`], the same bytes the WAL holds). Resources and scopes are
//! interned by their encoding. Spans are decoded only when read or cut into a block, so a
//! span costs about its encoded size (~150–300 bytes) rather than a `Span` struct with heap
//! strings. A [`Summary`] of keys and values answers autocomplete; it reads the spans appended
//! since it was last asked (traces are listed when they get unsummarised bytes), so ingest
//! pays nothing for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::codec::{self, get_bytes, get_u32, FastMap, FastSet};
use super::encoder::SummaryValue;
use super::wal::RecBatch;
use super::{AttrValue, Resource, Scope, Span, SpanRef, TraceId};
use crate::varint::{uvarint_len, write_uvarint};

/// One trace's spans in the head.
pub(crate) struct HeadTrace {
    pub buf: Vec<u8>,
    pub spans: u32,
    pub min_start: u64,
    pub max_end: u64,
    /// Milliseconds since the store opened of the last append to this trace.
    pub last_ms: u64,
    /// Length of the prefix of `buf` the head's [`Summary`] has read. Changed only with the
    /// head locked for writing or the summary's mutex held.
    summarized: AtomicUsize,
}

impl HeadTrace {
    fn new(now_ms: u64) -> HeadTrace {
        HeadTrace {
            buf: Vec::new(),
            spans: 0,
            min_start: u64::MAX,
            max_end: 0,
            last_ms: now_ms,
            summarized: AtomicUsize::new(0),
        }
    }
}

/// A decoded head span: resource index, scope index, span.
pub(crate) type HeadSpan = (u32, u32, Span);

pub(crate) struct Head {
    pub resources: Vec<Arc<Resource>>,
    res_ids: FastMap<Vec<u8>, u32>,
    pub scopes: Vec<Arc<Scope>>,
    scope_ids: FastMap<Vec<u8>, u32>,
    pub traces: FastMap<TraceId, HeadTrace>,
    /// Bytes of all trace buffers.
    pub bytes: usize,
    pub spans: u64,
    /// Autocomplete summary; appends update it in place, reads may rebuild it.
    pub summary: parking_lot::Mutex<Summary>,
}

impl Default for Head {
    fn default() -> Head {
        Head {
            resources: Vec::new(),
            res_ids: FastMap::default(),
            scopes: Vec::new(),
            scope_ids: FastMap::default(),
            traces: FastMap::default(),
            bytes: 0,
            spans: 0,
            summary: parking_lot::Mutex::new(Summary::new()),
        }
    }
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

    /// Appends the spans of a record (`payload` and its parsed batches); `pairs[i]` holds
    /// batch `i`'s resource and scope indices. Each trace's buffer grows once for all of its
    /// spans in the record rather than doubling along the way.
    pub(crate) fn push_record(
        &mut self,
        payload: &[u8],
        rec: &[RecBatch],
        pairs: &[(u32, u32)],
        now_ms: u64,
    ) {
        let spans = rec.iter().map(|b| b.spans.len()).sum::<usize>();
        let mut need: FastMap<TraceId, usize> =
            FastMap::with_capacity_and_hasher(spans / 4 + 1, Default::default());
        for (b, &(r, s)) in rec.iter().zip(pairs) {
            let ids = uvarint_len(u64::from(r)) + uvarint_len(u64::from(s));
            for sp in &b.spans {
                let n = sp.body.len();
                *need.entry(sp.trace_id).or_default() += ids + uvarint_len(n as u64) + n;
            }
        }
        for (id, n) in need {
            self.traces
                .entry(id)
                .or_insert_with(|| HeadTrace::new(now_ms))
                .buf
                .reserve(n);
        }
        for (b, &(r, s)) in rec.iter().zip(pairs) {
            for sp in &b.spans {
                let body = payload.get(sp.body.clone()).unwrap_or_default();
                self.push(sp.trace_id, r, s, body, sp.start, sp.end, now_ms);
            }
        }
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
        let t = self
            .traces
            .entry(id)
            .or_insert_with(|| HeadTrace::new(now_ms));
        let before = t.buf.len();
        let summary = self.summary.get_mut();
        if summary.valid && *t.summarized.get_mut() == before {
            // Fully summarised until now: listed for the summary to read what follows.
            summary.pending.push(id);
        }
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
        // Neither part's summary is known without decoding: rebuilt when first needed.
        out.summary.get_mut().valid = false;
        for id in ids {
            if let Some(t) = self.traces.remove(&id) {
                self.bytes -= t.buf.len();
                self.spans -= u64::from(t.spans);
                out.bytes += t.buf.len();
                out.spans += u64::from(t.spans);
                out.traces.insert(id, t);
            }
        }
        if out.traces.is_empty() {
            out.summary = parking_lot::Mutex::new(Summary::new());
        } else if self.traces.is_empty() {
            *self.summary.get_mut() = Summary::new();
        } else {
            self.summary.get_mut().invalidate();
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

/// Distinct values of one field in the head, for `tag_values` without decoding spans.
/// Strings are kept as the record's bytes (checked as UTF-8 when the request was decoded, so
/// not again on every append) and turned into `String`s when read.
#[derive(Default, Clone)]
pub(crate) struct ValueSet {
    strs: FastSet<Box<[u8]>>,
    /// Ints, doubles (as bits) and bools.
    others: FastSet<ScalarKey>,
    /// More than [`SUMMARY_VALUES_CAP`] values were seen: the set is incomplete.
    pub overflow: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ScalarKey {
    Int(i64),
    Double(u64),
    Bool(bool),
}

/// Values kept per key (beyond this, `tag_values` decodes the head's spans).
pub(crate) const SUMMARY_VALUES_CAP: usize = 1000;
/// Distinct span attribute keys kept (beyond this the summary is abandoned until rebuilt).
pub(crate) const SUMMARY_KEYS_CAP: usize = 10_000;

impl ValueSet {
    fn len(&self) -> usize {
        self.strs.len() + self.others.len()
    }

    fn add_str(&mut self, s: &[u8]) {
        if !self.overflow && !self.strs.contains(s) {
            if self.len() >= SUMMARY_VALUES_CAP {
                self.overflow = true;
            } else {
                self.strs.insert(s.into());
            }
        }
    }

    fn add(&mut self, v: SummaryValue<'_>) {
        let k = match v {
            SummaryValue::Str(s) => return self.add_str(s),
            SummaryValue::Int(i) => ScalarKey::Int(i),
            SummaryValue::Double(d) => ScalarKey::Double(d.to_bits()),
            SummaryValue::Bool(b) => ScalarKey::Bool(b),
            SummaryValue::Other => return,
        };
        if !self.overflow && !self.others.contains(&k) {
            if self.len() >= SUMMARY_VALUES_CAP {
                self.overflow = true;
            } else {
                self.others.insert(k);
            }
        }
    }

    /// The values (strings first, unordered).
    pub(crate) fn values(&self) -> impl Iterator<Item = AttrValue> + '_ {
        self.strs
            .iter()
            .map(|s| AttrValue::Str(String::from_utf8_lossy(s).into_owned()))
            .chain(self.others.iter().map(|k| match k {
                ScalarKey::Int(i) => AttrValue::Int(*i),
                ScalarKey::Double(d) => AttrValue::Double(f64::from_bits(*d)),
                ScalarKey::Bool(b) => AttrValue::Bool(*b),
            }))
    }
}

/// A span attribute key's entry in the [`Summary`]: the values of its first occurrence per
/// span, and per resource index how many spans of that resource carry the key.
#[derive(Default, Clone)]
pub(crate) struct KeyStats {
    pub values: ValueSet,
    pub per_resource: Vec<u64>,
}

/// What autocomplete needs from the head, brought up to date when read: attribute keys and their
/// (capped) value sets, span names and status messages, and per resource how many spans use it
/// and how many of those carry each span key (to tell whether an unscoped `.key` falls back to
/// the resource). Answers only for ranges that hold every head span (see [`Summary::covers`]).
#[derive(Default, Clone)]
pub(crate) struct Summary {
    /// False when the head holds spans the summary has not seen (after WAL replay or a
    /// partial cut); it is then rebuilt by decoding the head.
    pub valid: bool,
    /// Traces with spans appended since the summary last read them (see
    /// [`Summary::catch_up`]).
    pending: Vec<TraceId>,
    /// Latest span start and earliest span end (ns).
    max_start: u64,
    min_end: u64,
    spans: u64,
    /// Span attribute key (bytes) → its position in `key_names` / `key_stats`.
    key_ids: FastMap<Box<[u8]>, u32>,
    key_names: Vec<String>,
    key_stats: Vec<KeyStats>,
    pub names: ValueSet,
    pub status_messages: ValueSet,
    /// By resource index: spans using it.
    pub res_spans: Vec<u64>,
}

impl Summary {
    pub(crate) fn new() -> Summary {
        Summary {
            valid: true,
            min_end: u64::MAX,
            ..Summary::default()
        }
    }

    /// The span attribute keys seen.
    pub(crate) fn key_names(&self) -> impl Iterator<Item = &String> + '_ {
        self.key_names.iter()
    }

    /// What is known of span attribute `key`.
    pub(crate) fn key(&self, key: &str) -> Option<&KeyStats> {
        let &i = self.key_ids.get(key.as_bytes())?;
        self.key_stats.get(i as usize)
    }

    /// Adds one span (with its resource index). Per attribute: one lookup of the key's bytes,
    /// then (unless its value set is full) one of the value; keys and string values are not
    /// UTF-8-checked again (see [`ValueSet`]).
    pub(crate) fn add(&mut self, res: u32, s: &SpanRef<'_>) {
        if !self.valid {
            return;
        }
        self.spans += 1;
        self.max_start = self.max_start.max(s.start_unix_nano);
        self.min_end = self.min_end.min(s.end_unix_nano);
        self.names.add_str(s.name.as_bytes());
        self.status_messages.add_str(s.status_message.as_bytes());
        let r = res as usize;
        if self.res_spans.len() <= r {
            self.res_spans.resize(r + 1, 0);
        }
        self.res_spans[r] += 1;
        // Keys (by position) already counted for this span: only the first attribute with a
        // key counts. The first few on the stack, the rest in a vector.
        let mut seen = [0u32; 32];
        let mut n_seen = 0usize;
        let mut seen_more: Vec<u32> = Vec::new();
        s.attributes.for_each_unchecked(|key, value| {
            if !self.valid {
                return;
            }
            let id = match self.key_ids.get(key) {
                Some(&id) => id,
                None => {
                    if self.key_names.len() >= SUMMARY_KEYS_CAP {
                        self.valid = false;
                        return;
                    }
                    let Ok(name) = std::str::from_utf8(key) else {
                        return; // Never in a record (keys are checked when decoded).
                    };
                    let id = self.key_names.len() as u32;
                    self.key_ids.insert(key.into(), id);
                    self.key_names.push(name.to_owned());
                    self.key_stats.push(KeyStats::default());
                    id
                }
            };
            if seen[..n_seen].contains(&id) || seen_more.contains(&id) {
                return;
            }
            if n_seen < seen.len() {
                seen[n_seen] = id;
                n_seen += 1;
            } else {
                seen_more.push(id);
            }
            let Some(k) = self.key_stats.get_mut(id as usize) else {
                return;
            };
            if !k.values.overflow {
                k.values.add(value.read());
            }
            if k.per_resource.len() <= r {
                k.per_resource.resize(r + 1, 0);
            }
            k.per_resource[r] += 1;
        });
    }

    /// Whether every span of the head overlaps `[start_ns, end_ns]` (so the summary is exact
    /// for that range).
    pub(crate) fn covers(&self, start_ns: u64, end_ns: u64) -> bool {
        self.valid && (self.spans == 0 || (self.max_start <= end_ns && self.min_end >= start_ns))
    }

    /// Marks the summary stale (rebuilt when next read) and drops its list of traces to read.
    fn invalidate(&mut self) {
        self.valid = false;
        self.pending = Vec::new();
    }

    /// Reads the spans appended since the last call (or, when invalid, rebuilds the summary
    /// from every span of `head`). Call with `head` locked at least for reading.
    pub(crate) fn catch_up(&mut self, head: &Head) {
        if !self.valid {
            *self = Summary::new();
            for (id, t) in &head.traces {
                self.read_new(*id, t, 0);
            }
            return;
        }
        for id in std::mem::take(&mut self.pending) {
            if let Some(t) = head.traces.get(&id) {
                self.read_new(id, t, t.summarized.load(Ordering::Relaxed));
            }
        }
    }

    /// Adds the spans of `t.buf[from..]` and marks the whole buffer summarised.
    fn read_new(&mut self, id: TraceId, t: &HeadTrace, from: usize) {
        let ok = t.buf.get(from..).and_then(|new| {
            for_each_entry(new, |res, _, body| match SpanRef::parse(id, body) {
                Some(v) => self.add(res, &v),
                None => self.valid = false,
            })
        });
        if ok.is_none() {
            self.valid = false;
        }
        t.summarized.store(t.buf.len(), Ordering::Relaxed);
    }
}
