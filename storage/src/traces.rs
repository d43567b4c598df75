//! The trace store's boundary: the span data model, the write trait ingest calls, and the read
//! trait the TraceQL engine and the Tempo/Jaeger APIs call.
//!
//! The model is OTLP's (resource → scope → spans) without protobuf: ingest decodes OTLP into
//! [`SpanBatch`]es; readers get whole [`Trace`]s back. Searches push a conservative
//! [`TraceFilter`] down to the store, which returns every trace that *may* match; the engine then
//! evaluates the full query on the materialised trace.

use std::sync::Arc;

use crate::StorageError;

/// A 16-byte OTLP trace id. All zeros is invalid on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte OTLP span id.
pub type SpanId = [u8; 8];

impl TraceId {
    /// Parses 1–32 hex digits (either case), left-padding with zeros as Tempo does for ids whose
    /// leading zeros were stripped. `None` for anything else.
    pub fn from_hex(s: &str) -> Option<TraceId> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let padded = format!("{s:0>32}");
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TraceId(id))
    }

    /// 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Lower-case hex of any byte string (span ids, trace ids).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// An OTLP `AnyValue`. `Empty` is an `AnyValue` with no value set.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum AttrValue {
    #[default]
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    KvList(Vec<Attr>),
}

/// One attribute (OTLP `KeyValue`).
#[derive(Clone, Debug, PartialEq)]
pub struct Attr {
    pub key: String,
    pub value: AttrValue,
}

impl Attr {
    pub fn new(key: impl Into<String>, value: AttrValue) -> Attr {
        Attr {
            key: key.into(),
            value,
        }
    }
}

/// The first attribute named `key` in `attrs`.
pub fn find_attr<'a>(attrs: &'a [Attr], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|a| a.key == key).map(|a| &a.value)
}

/// An OTLP `Resource`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Resource {
    pub attributes: Vec<Attr>,
    pub dropped_attributes_count: u32,
    /// `ResourceSpans.schema_url`.
    pub schema_url: String,
}

impl Resource {
    /// The `service.name` attribute as a string, if any.
    pub fn service_name(&self) -> Option<&str> {
        match find_attr(&self.attributes, "service.name") {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// An OTLP `InstrumentationScope` (with `ScopeSpans.schema_url`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<Attr>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

/// OTLP span kinds, with their wire numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum SpanKind {
    #[default]
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    /// The kind for a wire number; unknown numbers map to `Unspecified`.
    pub fn from_i32(v: i32) -> SpanKind {
        match v {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

/// OTLP status codes, with their wire numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum StatusCode {
    #[default]
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    /// The code for a wire number; unknown numbers map to `Unset`.
    pub fn from_i32(v: i32) -> StatusCode {
        match v {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

/// An OTLP `Span.Event`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<Attr>,
    pub dropped_attributes_count: u32,
}

/// An OTLP `Span.Link`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Vec<Attr>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// An OTLP `Span`. Every field round-trips through the store unchanged.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span (empty `parent_span_id` on the wire).
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Vec<Attr>,
    pub dropped_attributes_count: u32,
    pub events: Vec<SpanEvent>,
    pub dropped_events_count: u32,
    pub links: Vec<SpanLink>,
    pub dropped_links_count: u32,
    pub status_code: StatusCode,
    pub status_message: String,
}

impl Span {
    /// `end - start` in nanoseconds (0 when end precedes start).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }
}

/// Spans sharing one resource and one instrumentation scope: the unit of ingest and of read.
/// Spans of a batch may belong to different traces on write; on read (inside a [`Trace`]) they
/// all carry the trace's id.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SpanBatch {
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
    pub spans: Vec<Span>,
}

/// Every stored span of one trace, grouped by resource and scope. Spans received twice (same
/// span id, identical content) appear once.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Trace {
    pub id: TraceId,
    pub batches: Vec<SpanBatch>,
}

impl Trace {
    pub fn span_count(&self) -> usize {
        self.batches.iter().map(|b| b.spans.len()).sum()
    }

    /// Earliest span start and latest span end, in Unix nanoseconds (`(0, 0)` when empty).
    pub fn time_range(&self) -> (u64, u64) {
        let mut spans = self.batches.iter().flat_map(|b| b.spans.iter());
        let Some(first) = spans.next() else {
            return (0, 0);
        };
        spans.fold(
            (first.start_unix_nano, first.end_unix_nano),
            |(s, e), sp| (s.min(sp.start_unix_nano), e.max(sp.end_unix_nano)),
        )
    }
}

/// Where an attribute is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrScope {
    Span,
    Resource,
    /// TraceQL's unscoped `.key`: the span's attribute if the span has one with that key,
    /// otherwise the resource's.
    Any,
}

/// A per-span value a filter can test.
#[derive(Clone, Debug, PartialEq)]
pub enum SpanField {
    Name,
    Kind,
    Status,
    StatusMessage,
    /// `end - start`, nanoseconds.
    Duration,
    Attr {
        scope: AttrScope,
        key: String,
    },
}

/// A constant a field is compared with.
#[derive(Clone, Debug)]
pub enum FilterValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Nanoseconds; compares with [`SpanField::Duration`] (and with numeric attributes as a
    /// number of nanoseconds).
    Duration(u64),
    Kind(SpanKind),
    Status(StatusCode),
    /// Matched against string values; the engine decides anchoring.
    Regex(regex::Regex),
}

/// Comparison operators. `Regex`/`NotRegex` take a [`FilterValue::Regex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Regex,
    NotRegex,
    /// The field is present (the value is ignored). Intrinsics are always present.
    Exists,
}

/// A predicate on one span (with its resource).
///
/// Comparisons follow TraceQL: a missing attribute never matches (not even `!=`); ints and
/// doubles compare numerically; a string never equals a number; `<`/`>` on strings compare
/// lexicographically; anything else (bool ordering, mismatched kinds) is false.
#[derive(Clone, Debug)]
pub enum SpanFilter {
    True,
    Cond {
        field: SpanField,
        op: FilterOp,
        value: FilterValue,
    },
    And(Vec<SpanFilter>),
    Or(Vec<SpanFilter>),
}

/// A trace matches when, for every filter in the list, at least one of its spans satisfies it
/// (an empty list matches every trace). Searches pass a *necessary* condition of the query, so
/// the store may prune with it and the engine re-checks the exact query.
pub type TraceFilter = Vec<SpanFilter>;

/// One search: traces overlapping `[start_ns, end_ns]` (Unix ns) that may satisfy `filter`.
#[derive(Clone, Debug)]
pub struct TraceSearch<'a> {
    pub start_ns: u64,
    pub end_ns: u64,
    pub filter: &'a [SpanFilter],
}

impl SpanFilter {
    /// The exact semantics every implementation of [`TraceSource`] must honour.
    pub fn matches(&self, resource: &Resource, span: &Span) -> bool {
        self.matches_view(&(resource, span))
    }

    /// [`SpanFilter::matches`] over any [`SpanView`] (e.g. a row of decoded block columns).
    pub(crate) fn matches_view(&self, v: &dyn SpanView) -> bool {
        match self {
            SpanFilter::True => true,
            SpanFilter::And(parts) => parts.iter().all(|p| p.matches_view(v)),
            SpanFilter::Or(parts) => parts.iter().any(|p| p.matches_view(v)),
            SpanFilter::Cond { field, op, value } => {
                let found = match field {
                    SpanField::Name => Some(Operand::Str(v.name())),
                    SpanField::StatusMessage => Some(Operand::Str(v.status_message())),
                    SpanField::Kind => Some(Operand::Kind(v.kind())),
                    SpanField::Status => Some(Operand::Status(v.status())),
                    SpanField::Duration => Some(Operand::Duration(v.duration_nanos())),
                    SpanField::Attr { scope, key } => {
                        let found = match scope {
                            AttrScope::Span => v.span_attr(key),
                            AttrScope::Resource => v.resource_attr(key),
                            AttrScope::Any => v.span_attr(key).or_else(|| v.resource_attr(key)),
                        };
                        found.map(Operand::Value)
                    }
                };
                match found {
                    None => false,
                    Some(_) if *op == FilterOp::Exists => true,
                    Some(operand) => compare(&operand, *op, value),
                }
            }
        }
    }
}

/// What a [`SpanFilter`] reads from a span: lets stores evaluate filters on columnar data
/// without materialising [`Span`]s. Attribute lookups return the first attribute with the key.
pub(crate) trait SpanView {
    fn name(&self) -> &str;
    fn status_message(&self) -> &str;
    fn kind(&self) -> SpanKind;
    fn status(&self) -> StatusCode;
    fn duration_nanos(&self) -> u64;
    fn span_attr(&self, key: &str) -> Option<&AttrValue>;
    fn resource_attr(&self, key: &str) -> Option<&AttrValue>;
}

impl SpanView for (&Resource, &Span) {
    fn name(&self) -> &str {
        &self.1.name
    }
    fn status_message(&self) -> &str {
        &self.1.status_message
    }
    fn kind(&self) -> SpanKind {
        self.1.kind
    }
    fn status(&self) -> StatusCode {
        self.1.status_code
    }
    fn duration_nanos(&self) -> u64 {
        self.1.duration_nanos()
    }
    fn span_attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.1.attributes, key)
    }
    fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        find_attr(&self.0.attributes, key)
    }
}

enum Operand<'a> {
    Str(&'a str),
    Kind(SpanKind),
    Status(StatusCode),
    Duration(u64),
    Value(&'a AttrValue),
}

fn compare(left: &Operand<'_>, op: FilterOp, right: &FilterValue) -> bool {
    use std::cmp::Ordering;
    if let FilterValue::Regex(re) = right {
        let s = match left {
            Operand::Str(s) => *s,
            Operand::Value(AttrValue::Str(s)) => s.as_str(),
            _ => return false,
        };
        return match op {
            FilterOp::Regex => re.is_match(s),
            FilterOp::NotRegex => !re.is_match(s),
            _ => false,
        };
    }
    if matches!(op, FilterOp::Regex | FilterOp::NotRegex) {
        return false;
    }
    let ord: Option<Ordering> = match (left, right) {
        (Operand::Str(s), FilterValue::Str(r)) => Some((*s).cmp(r.as_str())),
        (Operand::Value(AttrValue::Str(s)), FilterValue::Str(r)) => Some(s.as_str().cmp(r)),
        (Operand::Kind(k), FilterValue::Kind(r)) => return eq_only(op, k == r),
        (Operand::Status(s), FilterValue::Status(r)) => return eq_only(op, s == r),
        (Operand::Value(AttrValue::Bool(b)), FilterValue::Bool(r)) => return eq_only(op, b == r),
        (Operand::Duration(d), FilterValue::Duration(r)) => Some(d.cmp(r)),
        (Operand::Duration(d), FilterValue::Int(r)) => Some((*d as i128).cmp(&(*r as i128))),
        (Operand::Duration(d), FilterValue::Double(r)) => (*d as f64).partial_cmp(r),
        (Operand::Value(AttrValue::Int(i)), FilterValue::Int(r)) => Some(i.cmp(r)),
        (Operand::Value(AttrValue::Int(i)), FilterValue::Double(r)) => (*i as f64).partial_cmp(r),
        (Operand::Value(AttrValue::Int(i)), FilterValue::Duration(r)) => {
            Some((*i as i128).cmp(&(*r as i128)))
        }
        (Operand::Value(AttrValue::Double(d)), FilterValue::Int(r)) => d.partial_cmp(&(*r as f64)),
        (Operand::Value(AttrValue::Double(d)), FilterValue::Double(r)) => d.partial_cmp(r),
        (Operand::Value(AttrValue::Double(d)), FilterValue::Duration(r)) => {
            d.partial_cmp(&(*r as f64))
        }
        _ => None,
    };
    let Some(ord) = ord else {
        return false;
    };
    match op {
        FilterOp::Eq => ord == Ordering::Equal,
        FilterOp::Ne => ord != Ordering::Equal,
        FilterOp::Lt => ord == Ordering::Less,
        FilterOp::Le => ord != Ordering::Greater,
        FilterOp::Gt => ord == Ordering::Greater,
        FilterOp::Ge => ord != Ordering::Less,
        FilterOp::Regex | FilterOp::NotRegex | FilterOp::Exists => false,
    }
}

fn eq_only(op: FilterOp, equal: bool) -> bool {
    match op {
        FilterOp::Eq => equal,
        FilterOp::Ne => !equal,
        _ => false,
    }
}

/// True when some span of `trace` satisfies each filter of `filter` (see [`TraceFilter`]).
pub fn trace_matches(trace: &Trace, filter: &[SpanFilter]) -> bool {
    filter.iter().all(|f| {
        trace
            .batches
            .iter()
            .any(|b| b.spans.iter().any(|s| f.matches(&b.resource, s)))
    })
}

/// How much of a write was stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceAppendOutcome {
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    /// Why spans were rejected (first few reasons), for OTLP partial success messages.
    pub errors: Vec<String>,
}

/// The write side: ingest hands decoded spans here. On `Ok`, accepted spans are durable (in the
/// WAL) and visible to [`TraceSource`] reads. Spans with an all-zero trace id or span id are
/// rejected (counted, with a reason), never stored.
pub trait TraceAppender: Send + Sync {
    fn append(&self, batches: Vec<SpanBatch>) -> Result<TraceAppendOutcome, StorageError>;

    /// Appends spans already in the store's encoding (see [`SpanBatchEncoder`]), with the
    /// same durability and visibility as [`TraceAppender::append`]. The outcome includes the
    /// encoder's rejections. The default decodes into [`SpanBatch`]es and calls `append`.
    fn append_encoded(&self, spans: EncodedSpans) -> Result<TraceAppendOutcome, StorageError> {
        let batches = spans.to_batches()?;
        let mut out = if batches.is_empty() {
            TraceAppendOutcome::default()
        } else {
            self.append(batches)?
        };
        out.rejected_spans += spans.rejected_spans();
        let mut errors = spans.outcome().errors;
        errors.append(&mut out.errors);
        errors.truncate(5);
        out.errors = errors;
        Ok(out)
    }

    /// [`TraceAppender::append_encoded`], first calling `observe` with the record's views
    /// (only when it holds spans), so a caller that also reads the spans (the span-metrics
    /// generator) and the store parse the record once. `observe` runs before the spans are
    /// written. The default parses the views with [`EncodedSpans::views`].
    fn append_encoded_observed(
        &self,
        spans: EncodedSpans,
        observe: &mut dyn FnMut(&[BatchRef<'_>]),
    ) -> Result<TraceAppendOutcome, StorageError> {
        if spans.accepted_spans() > 0 {
            observe(&spans.views()?);
        }
        self.append_encoded(spans)
    }
}

/// The read side of the trace store.
pub trait TraceSource: Send + Sync {
    /// Every stored span of the trace (head and all blocks merged, duplicates removed), or `None`
    /// when no span of it is stored. `range` (Unix ns, inclusive) is a hint only: a store may
    /// skip blocks that do not overlap it.
    fn trace(&self, id: &TraceId, range: Option<(u64, u64)>)
        -> Result<Option<Trace>, StorageError>;

    /// Calls `visit` once per trace that overlaps the search's range and satisfies its filter
    /// (see [`TraceFilter`]), with the *whole* trace (as [`TraceSource::trace`] returns it),
    /// until `visit` returns `false`. Order: most recent trace start first, as far as the store
    /// can cheaply tell; callers must not rely on it.
    fn search(
        &self,
        search: &TraceSearch<'_>,
        visit: &mut dyn FnMut(Trace) -> bool,
    ) -> Result<(), StorageError>;

    /// [`TraceSource::search`] for a caller that reads only some of each span: its ids, parent,
    /// name, kind, status, status message, times and resource, and the span attributes whose
    /// key is in `span_keys` (plus those the filter tests). A store may then leave other span
    /// attributes, events, links, trace state, flags and dropped counts out of the traces it
    /// passes to `visit` (their parts from blocks; the answer set is the same). The default
    /// passes whole traces.
    fn search_projected(
        &self,
        search: &TraceSearch<'_>,
        span_keys: &[String],
        visit: &mut dyn FnMut(Trace) -> bool,
    ) -> Result<(), StorageError> {
        let _ = span_keys;
        self.search(search, visit)
    }

    /// Distinct attribute keys in `scope` (`Any` = span and resource) of spans in the range,
    /// sorted, at most `limit`.
    fn tag_names(
        &self,
        scope: AttrScope,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<String>, StorageError>;

    /// Distinct scalar values (string, int, double, bool) of `field` over spans in the range
    /// that satisfy `filter` (a span-level condition; `SpanFilter::True` for all), at most
    /// `limit`, sorted by their display form. `SpanField::Name` lists span names.
    fn tag_values(
        &self,
        field: &SpanField,
        filter: &SpanFilter,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<AttrValue>, StorageError>;
}

mod block;
mod codec;
mod encoder;
mod head;
mod index;
mod naive;
mod store;
#[cfg(test)]
mod tests;
mod wal;

pub use codec::{FastHasher, FastState};
pub use encoder::{
    AttrsRef, BatchRef, EncodeError, EncodedSpans, SpanBatchEncoder, SpanHeader, SpanRef,
    Utf8Bytes, ValueRef,
};
pub use naive::NaiveTraceStore;
pub use store::{TraceStore, TraceStoreOptions, TraceStoreStats};
