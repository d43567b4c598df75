//! OTLP metrics → Prometheus series (float samples and native histograms), per the
//! OpenTelemetry "Prometheus and OpenMetrics compatibility" specification.
//!
//! * gauge → gauge; cumulative monotonic sum → counter (`_total`); cumulative non-monotonic sum
//!   → gauge; delta sums → cumulative (see [`DeltaTracker`]), then as above;
//! * explicit-bucket histogram → classic `_bucket{le}` / `_sum` / `_count`;
//! * exponential histogram → native histogram (OTLP scale = schema, scales above 8 are
//!   downscaled, below -4 rejected; OTLP bucket `i` covers `(base^i, base^(i+1)]`, Prometheus
//!   bucket `i` covers `(base^(i-1), base^i]`, so indexes shift by one);
//! * summary → `{quantile}` series plus `_sum` / `_count`;
//! * `job` / `instance` from `service.namespace`/`service.name` and `service.instance.id`;
//!   the other resource attributes go on a `target_info` series, and the configured ones are
//!   also promoted onto every series;
//! * data points flagged "no recorded value" become staleness markers;
//! * exemplars (as Prometheus' OTLP translator does) carry `trace_id` / `span_id` as lowercase
//!   hex and the filtered attributes as labels (attributes are left out when they would make
//!   the labels longer than 128 characters); sums attach them to their series, explicit-bucket
//!   histograms to the first `_bucket` series whose bound is at or above the exemplar's value,
//!   exponential histograms to the native histogram series. An exemplar without a value is
//!   dropped and counted in `Converted::invalid_exemplars`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Deref;
use std::time::{Duration, Instant};

use bumpalo::Bump;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint,
};
use parking_lot::Mutex;
use sextant_storage::labels::{hash_pairs, SeriesHasher};
use sextant_storage::{
    CounterResetHint, Exemplar, FloatHistogram, HistogramSample, Labels, MetricMetadata, Sample,
    SeriesLabels, Span, MAX_EXEMPLAR_LABEL_CHARS, METRIC_NAME, STALE_NAN_BITS,
};

use super::translate::{
    format_float, label_name, metric_name, needs_translation, unit_words, NameKind, NameTranslation,
};
use super::view::{
    Attr, AttrValue, BucketsView, DataView, ExemplarView, ExpPoint, HistogramPoint, MetricView,
    NumberPoint, RequestView,
};
use super::OtlpOptions;

const FLAG_NO_RECORDED_VALUE: u32 = 1;
const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// Why a data point was not converted (also the `reason` label of
/// `sextant_samples_rejected_total`).
pub mod reason {
    pub const INVALID_METRIC: &str = "otlp_invalid_metric";
    pub const UNSPECIFIED_TEMPORALITY: &str = "otlp_unspecified_temporality";
    pub const MISSING_VALUE: &str = "otlp_missing_value";
    pub const INVALID_HISTOGRAM: &str = "otlp_invalid_histogram";
    pub const SCALE_TOO_LOW: &str = "otlp_histogram_scale_too_low";
    pub const DELTA_OUT_OF_ORDER: &str = "otlp_delta_out_of_order";
}

/// Memory for one request's converted label sets and the strings made for them (translated
/// names, suffixed metric names, `le` values): [`Converted`] borrows from it, so label pairs
/// are plain `&str` copies with nothing to free per series. Reset it between requests to reuse
/// its memory.
#[derive(Debug, Default)]
pub struct Arena(Bump);

impl Arena {
    pub fn new() -> Arena {
        Arena::default()
    }

    /// Frees everything allocated, keeping the largest chunk for the next request.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Bytes held (chunks allocated).
    pub fn allocated_bytes(&self) -> usize {
        self.0.allocated_bytes()
    }

    fn str(&self, s: &str) -> &str {
        self.0.alloc_str(s)
    }

    fn pairs<'a>(&'a self, pairs: &[(&'a str, &'a str)]) -> &'a [(&'a str, &'a str)] {
        self.0.alloc_slice_copy(pairs)
    }
}

/// One series' samples in a request: one kept inline (a request usually carries one point
/// per series), more in a vector.
#[derive(Clone, Debug)]
pub struct Samples<T> {
    first: T,
    /// Empty, or every sample (`first` included).
    more: Vec<T>,
}

impl<T: Clone> Samples<T> {
    fn new(x: T) -> Samples<T> {
        Samples {
            first: x,
            more: Vec::new(),
        }
    }

    fn push(&mut self, x: T) {
        if self.more.is_empty() {
            self.more.reserve(4);
            self.more.push(self.first.clone());
        }
        self.more.push(x);
    }

    /// Sorts by time (points may arrive in any order).
    fn sort_by_time(&mut self, t: impl Fn(&T) -> i64) {
        if !self.more.is_sorted_by_key(&t) {
            self.more.sort_by_key(t);
        }
    }
}

impl<T> Deref for Samples<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        if self.more.is_empty() {
            std::slice::from_ref(&self.first)
        } else {
            &self.more
        }
    }
}

/// A request turned into storage batches.
#[derive(Debug)]
pub struct Converted<'a> {
    pub floats: Vec<(OtlpLabels<'a>, Samples<Sample>)>,
    pub histograms: Vec<(OtlpLabels<'a>, Samples<HistogramSample>)>,
    /// Exemplars by series, each list sorted by time.
    pub exemplars: Vec<(OtlpLabels<'a>, Vec<Exemplar>)>,
    /// Exemplars dropped during conversion (no value).
    pub invalid_exemplars: usize,
    /// Metadata by family, in request order (a later entry for a family replaces an earlier
    /// one); an entry equal to the family's previous one is left out.
    pub metadata: Vec<(String, MetricMetadata)>,
    /// Data points seen.
    pub points: usize,
    /// Data points refused during conversion, by reason.
    pub rejected: BTreeMap<&'static str, usize>,
    /// Series position by label hash (collisions fall back to a scan).
    float_index: HashIndex,
    hist_index: HashIndex,
    exemplar_index: HashIndex,
    scratch: LabelScratch<'a>,
    arena: &'a Arena,
}

/// Hashes a `u64` key by identity: series hashes are already avalanche-mixed
/// ([`sextant_storage::SeriesHasher`]), so hashing them again only costs time.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Series position by series hash.
type HashIndex = HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>;

impl<'a> Converted<'a> {
    fn new(arena: &'a Arena, series_hint: usize) -> Converted<'a> {
        let hint = series_hint.min(1 << 16);
        Converted {
            floats: Vec::with_capacity(hint),
            histograms: Vec::new(),
            exemplars: Vec::new(),
            invalid_exemplars: 0,
            metadata: Vec::new(),
            points: 0,
            rejected: BTreeMap::new(),
            float_index: HashIndex::with_capacity_and_hasher(hint, Default::default()),
            hist_index: HashIndex::default(),
            exemplar_index: HashIndex::default(),
            scratch: LabelScratch::default(),
            arena,
        }
    }

    pub fn rejected_points(&self) -> usize {
        self.rejected.values().sum()
    }

    /// Float samples plus histogram samples.
    pub fn num_samples(&self) -> usize {
        self.floats.iter().map(|(_, s)| s.len()).sum::<usize>()
            + self.histograms.iter().map(|(_, s)| s.len()).sum::<usize>()
    }

    fn reject(&mut self, reason: &'static str, n: usize) {
        if n > 0 {
            *self.rejected.entry(reason).or_default() += n;
        }
    }

    fn push_float(&mut self, labels: OtlpLabels<'a>, t: i64, v: f64) {
        let sample = Sample { t, v };
        match find_series(&self.float_index, &self.floats, &labels) {
            Some(i) => self.floats[i].1.push(sample),
            None => {
                self.float_index
                    .entry(labels.hash64())
                    .or_insert(self.floats.len());
                self.floats.push((labels, Samples::new(sample)));
            }
        }
    }

    fn push_histogram(&mut self, labels: OtlpLabels<'a>, t: i64, h: FloatHistogram) {
        let sample = HistogramSample { t, h };
        match find_series(&self.hist_index, &self.histograms, &labels) {
            Some(i) => self.histograms[i].1.push(sample),
            None => {
                self.hist_index
                    .entry(labels.hash64())
                    .or_insert(self.histograms.len());
                self.histograms.push((labels, Samples::new(sample)));
            }
        }
    }

    fn push_exemplar(&mut self, labels: OtlpLabels<'a>, e: Exemplar) {
        match find_series(&self.exemplar_index, &self.exemplars, &labels) {
            Some(i) => self.exemplars[i].1.push(e),
            None => {
                self.exemplar_index
                    .entry(labels.hash64())
                    .or_insert(self.exemplars.len());
                self.exemplars.push((labels, vec![e]));
            }
        }
    }

    /// Converts a point's exemplars, counting the ones without a value.
    fn convert_exemplars(&mut self, list: &[ExemplarView<'_>]) -> Vec<Exemplar> {
        let mut out = Vec::with_capacity(list.len());
        for e in list {
            match to_exemplar(e) {
                Some(e) => out.push(e),
                None => self.invalid_exemplars += 1,
            }
        }
        out
    }

    /// Sorts each series' samples by time (points may arrive in any order).
    fn finish(&mut self) {
        for (_, e) in &mut self.exemplars {
            if !e.is_sorted_by_key(|x| x.t) {
                e.sort_by_key(|x| x.t);
            }
        }
        self.exemplar_index = HashIndex::default();
        for (_, s) in &mut self.floats {
            s.sort_by_time(|x| x.t);
        }
        for (_, s) in &mut self.histograms {
            s.sort_by_time(|x| x.t);
        }
        self.float_index = HashIndex::default();
        self.hist_index = HashIndex::default();
    }
}

/// An OTLP exemplar in Prometheus' form; `None` when it has no value.
fn to_exemplar(e: &ExemplarView<'_>) -> Option<Exemplar> {
    let value = e.value?;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !e.trace_id.is_empty() && e.trace_id.iter().any(|&b| b != 0) {
        pairs.push(("trace_id".into(), hex(e.trace_id)));
    }
    if !e.span_id.is_empty() && e.span_id.iter().any(|&b| b != 0) {
        pairs.push(("span_id".into(), hex(e.span_id)));
    }
    let mut chars: usize = pairs
        .iter()
        .map(|(n, v)| n.chars().count() + v.chars().count())
        .sum();
    let attrs: Vec<(String, String)> = e
        .filtered_attributes
        .iter()
        .map(|kv| (kv.key.to_string(), attr_string(&kv.value)))
        .collect();
    chars += attrs
        .iter()
        .map(|(n, v)| n.chars().count() + v.chars().count())
        .sum::<usize>();
    if chars <= MAX_EXEMPLAR_LABEL_CHARS {
        pairs.extend(attrs);
    }
    Some(Exemplar {
        labels: Labels::from_pairs(pairs),
        value,
        t: ns_to_ms(e.time_unix_nano),
    })
}

/// The position of `labels` in `series`, found by hash (a hash collision scans).
fn find_series<T>(
    index: &HashIndex,
    series: &[(OtlpLabels<'_>, T)],
    labels: &OtlpLabels<'_>,
) -> Option<usize> {
    let &i = index.get(&labels.hash64())?;
    if series.get(i).is_some_and(|(l, _)| l == labels) {
        return Some(i);
    }
    series.iter().position(|(l, _)| l == labels)
}

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

fn ns_to_ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

/// An attribute value as a label value (`AnyValue.AsString` semantics).
pub fn any_value_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => format_float(*d),
        Some(any_value::Value::BytesValue(b)) => base64(b),
        Some(other) => any_to_json(other).to_string(),
    }
}

/// An attribute value of a [`RequestView`] as a label value (as [`any_value_string`]).
pub fn attr_string(v: &AttrValue<'_>) -> String {
    match v {
        AttrValue::Absent => String::new(),
        AttrValue::Str(s) => s.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Double(d) => format_float(*d),
        AttrValue::Bytes(b) => base64(b),
        AttrValue::Complex(c) => any_to_json(c).to_string(),
    }
}

fn any_to_json(v: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => J::from(*d),
        any_value::Value::BytesValue(b) => J::String(base64(b)),
        any_value::Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map_or(J::Null, any_to_json))
                .collect(),
        ),
        any_value::Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|x| {
                    (
                        x.key.clone(),
                        x.value
                            .as_ref()
                            .and_then(|v| v.value.as_ref())
                            .map_or(J::Null, any_to_json),
                    )
                })
                .collect(),
        ),
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
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

/// One output series' labels, sorted by name, borrowing from the request or the request's
/// [`Arena`] (so storage finds existing series without allocating, as with remote write),
/// with their series hash computed once (storage and the request's de-duplication both use
/// it).
#[derive(Clone, Copy, Debug)]
pub struct OtlpLabels<'a> {
    pairs: &'a [(&'a str, &'a str)],
    /// `hash_pairs` of `pairs`.
    hash: u64,
}

impl PartialEq for OtlpLabels<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.pairs == other.pairs
    }
}

impl<'a> OtlpLabels<'a> {
    /// Copies sorted `pairs` into `arena`.
    fn new(arena: &'a Arena, pairs: &[(&'a str, &'a str)]) -> OtlpLabels<'a> {
        OtlpLabels {
            hash: hash_pairs(pairs.iter().copied()),
            pairs: arena.pairs(pairs),
        }
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

impl SeriesLabels for OtlpLabels<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().copied()
    }

    fn hash64(&self) -> u64 {
        self.hash
    }
}

/// An attribute value as a label value, borrowed when it is a string.
fn value_str<'a>(v: &AttrValue<'a>, arena: &'a Arena) -> &'a str {
    match v {
        AttrValue::Str(s) => s,
        other => arena.str(&attr_string(other)),
    }
}

/// (name, value, priority, original key) of a label before sorting; see [`LabelSet::new`].
type Entry<'a> = (&'a str, &'a str, u8, &'a str);

/// Reused buffers for building label sets, and translated attribute names of this request.
#[derive(Debug, Default)]
struct LabelScratch<'a> {
    entries: Vec<Entry<'a>>,
    /// One label set being built.
    pairs: Vec<(&'a str, &'a str)>,
    /// Attribute keys that need translation, with their label names (a short list: requests
    /// repeat a few keys on every point).
    names: Vec<(&'a str, &'a str)>,
}

/// Translated names remembered per request; more distinct keys than this are translated
/// each time.
const NAME_CACHE_ENTRIES: usize = 64;

impl<'a> LabelScratch<'a> {
    /// The label name of attribute key `key`, borrowed when it needs no change.
    fn label_name(
        names: &mut Vec<(&'a str, &'a str)>,
        key: &'a str,
        mode: NameTranslation,
        arena: &'a Arena,
    ) -> &'a str {
        if !needs_translation(key, mode) {
            return key;
        }
        if let Some((_, n)) = names.iter().find(|(k, _)| *k == key) {
            return n;
        }
        let n = arena.str(&label_name(key, mode));
        if names.len() < NAME_CACHE_ENTRIES {
            names.push((key, n));
        }
        n
    }
}

/// The labels of one data point (without the metric name): sorted by name, unique.
#[derive(Clone, Copy, Default)]
struct LabelSet<'a> {
    pairs: &'a [(&'a str, &'a str)],
}

impl<'a> LabelSet<'a> {
    /// `base` (promoted resource attributes) first, then the attributes (which win over
    /// `base`; attributes whose names collide after translation are joined with `;` in key
    /// order), then `job` and `instance` (which win over both). Empty values are dropped.
    #[allow(clippy::too_many_arguments)]
    fn new<'v>(
        base: LabelSet<'a>,
        attrs: impl Iterator<Item = &'v Attr<'a>>,
        job: &'a str,
        instance: &'a str,
        opts: &OtlpOptions,
        scratch: &mut LabelScratch<'a>,
        arena: &'a Arena,
    ) -> LabelSet<'a>
    where
        'a: 'v,
    {
        let LabelScratch {
            entries: e,
            names,
            pairs,
        } = scratch;
        e.clear();
        for &(n, v) in base.pairs {
            e.push((n, v, 0, ""));
        }
        for kv in attrs {
            let v = value_str(&kv.value, arena);
            if !v.is_empty() {
                let n = LabelScratch::label_name(names, kv.key, opts.translation, arena);
                e.push((n, v, 1, kv.key));
            }
        }
        for (n, v) in [("job", job), ("instance", instance)] {
            if !v.is_empty() {
                e.push((n, v, 2, ""));
            }
        }
        let order = |a: &Entry<'a>, b: &Entry<'a>| {
            cmp_str(a.0, b.0)
                .then(a.2.cmp(&b.2))
                .then_with(|| cmp_str(a.3, b.3))
        };
        e.sort_unstable_by(order);
        pairs.clear();
        let mut last_prio = 0;
        for &(n, v, prio, _) in e.iter() {
            match pairs.last_mut() {
                Some(last) if last.0 == n => {
                    last.1 = if prio == 1 && last_prio == 1 {
                        arena.str(&format!("{};{}", last.1, v))
                    } else {
                        v
                    };
                }
                _ => pairs.push((n, v)),
            }
            last_prio = prio;
        }
        LabelSet {
            pairs: arena.pairs(pairs),
        }
    }

    /// The series labels: these pairs plus the metric name and an optional extra pair (`le`,
    /// `quantile`), which replace pairs of the same name; `buf` is scratch space.
    fn build(
        &self,
        name: &'a str,
        extra: Option<(&'static str, &'a str)>,
        buf: &mut Vec<(&'a str, &'a str)>,
        arena: &'a Arena,
    ) -> OtlpLabels<'a> {
        buf.clear();
        let extra_name = extra.map(|e| e.0);
        let mut name = Some(name);
        let mut extra = extra;
        for &(n, val) in self.pairs {
            if let Some(m) = name.take_if(|_| n >= METRIC_NAME) {
                buf.push((METRIC_NAME, m));
            }
            if let Some((en, ev)) = extra.take_if(|(en, _)| n >= *en) {
                buf.push((en, ev));
            }
            if n != METRIC_NAME && Some(n) != extra_name {
                buf.push((n, val));
            }
        }
        if let Some(m) = name {
            buf.push((METRIC_NAME, m));
        }
        if let Some((en, ev)) = extra {
            buf.push((en, ev));
        }
        OtlpLabels::new(arena, buf)
    }

    /// The series of metric `name` that differ only in their `le` label (a classic
    /// histogram's buckets): the pairs around `le` and the series hash of the pairs before it
    /// are computed once, not per bucket.
    fn le_family(
        &self,
        name: &'a str,
        buf: &mut Vec<(&'a str, &'a str)>,
        arena: &'a Arena,
    ) -> LeFamily<'a> {
        let pairs = self.build(name, Some(("le", "")), buf, arena).pairs;
        let at = pairs
            .iter()
            .position(|(n, _)| *n == "le")
            .unwrap_or(pairs.len());
        let prefix = &pairs[..at];
        let suffix = &pairs[at.saturating_add(1).min(pairs.len())..];
        let mut prefix_hash = SeriesHasher::default();
        for (n, v) in prefix {
            prefix_hash.add(n);
            prefix_hash.add(v);
        }
        LeFamily {
            prefix,
            suffix,
            prefix_hash,
            arena,
        }
    }
}

/// Series that differ only in their `le` value; see [`LabelSet::le_family`].
struct LeFamily<'a> {
    /// Pairs before `le`, and their series hash state.
    prefix: &'a [(&'a str, &'a str)],
    prefix_hash: SeriesHasher,
    /// Pairs after `le`.
    suffix: &'a [(&'a str, &'a str)],
    arena: &'a Arena,
}

impl<'a> LeFamily<'a> {
    /// The series with `le="{le}"`; equal to `LabelSet::build(name, Some(("le", le)))`.
    fn labels(&self, le: &'a str) -> OtlpLabels<'a> {
        let mut hash = self.prefix_hash;
        hash.add("le");
        hash.add(le);
        for (n, v) in self.suffix {
            hash.add(n);
            hash.add(v);
        }
        let p = self.prefix.len();
        let pairs = self
            .arena
            .0
            .alloc_slice_fill_with(p + 1 + self.suffix.len(), |i| {
                if i < p {
                    self.prefix[i]
                } else if i == p {
                    ("le", le)
                } else {
                    self.suffix[i - p - 1]
                }
            });
        OtlpLabels {
            pairs,
            hash: hash.finish(),
        }
    }
}

/// The first 8 bytes of `s` as a big-endian number, zero-padded.
#[inline]
fn prefix8(s: &[u8]) -> u64 {
    match s.first_chunk::<8>() {
        Some(w) => u64::from_be_bytes(*w),
        None => {
            let mut w = 0u64;
            for (i, &b) in s.iter().enumerate() {
                w |= u64::from(b) << (56 - 8 * i);
            }
            w
        }
    }
}

/// `a.cmp(b)`, deciding on the first 8 bytes without a `memcmp` call when they differ (label
/// names mostly differ there). Zero padding orders a proper prefix first, as `str` does; equal
/// padded prefixes (including a real NUL against padding) fall back to the full comparison.
#[inline]
fn cmp_str(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (prefix8(a.as_bytes()), prefix8(b.as_bytes()));
    if x != y {
        return x.cmp(&y);
    }
    a.cmp(b)
}

/// Per-stream running totals that turn delta temporality into cumulative.
///
/// A stream is one output series (labels after translation), keyed by its 64-bit label hash. For each delta point with start
/// time `s` and time `t`:
/// * no state (first point, or the stream was idle past the TTL, or Sextant restarted): the
///   total starts at this delta — a new counter that began at `s`;
/// * `t` not after the previous point's time: refused (`otlp_delta_out_of_order`), the total is
///   unchanged;
/// * `s` before the previous point's time (overlapping windows: the sender restarted or
///   re-sent differently): treated as a counter reset, the total restarts from this delta;
/// * otherwise (contiguous, or a gap where the sender lost data): the delta is added. Data lost
///   in a gap is lost; the total stays monotonic, so `rate()` is unaffected apart from the gap.
///
/// State lives in memory only; after a restart totals start again from zero, which PromQL
/// sees as a counter reset.
pub struct DeltaTracker {
    streams: Mutex<HashMap<u64, Stream>>,
    ttl: Duration,
    last_sweep: Mutex<Instant>,
}

struct Stream {
    last_time: u64,
    seen: Instant,
    value: Running,
}

enum Running {
    Float(f64),
    Buckets {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
    Native(Box<FloatHistogram>),
}

enum Accepted {
    /// Continue the running total.
    Add,
    /// Start a new total (first point or reset).
    Start { reset: bool },
}

impl DeltaTracker {
    pub fn new(ttl: Duration) -> DeltaTracker {
        DeltaTracker {
            streams: Mutex::new(HashMap::new()),
            ttl,
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Number of streams tracked.
    pub fn len(&self) -> usize {
        self.streams.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sweep(&self) {
        let now = Instant::now();
        {
            let mut last = self.last_sweep.lock();
            if now.duration_since(*last) < self.ttl / 4 {
                return;
            }
            *last = now;
        }
        let ttl = self.ttl;
        self.streams
            .lock()
            .retain(|_, s| now.duration_since(s.seen) < ttl);
    }

    fn classify(&self, stream: Option<&Stream>, start: u64, time: u64) -> Option<Accepted> {
        match stream {
            None => Some(Accepted::Start { reset: false }),
            Some(s) if s.seen.elapsed() >= self.ttl => Some(Accepted::Start { reset: false }),
            Some(s) if time <= s.last_time => None,
            Some(s) if start != 0 && start < s.last_time => Some(Accepted::Start { reset: true }),
            Some(_) => Some(Accepted::Add),
        }
    }

    fn float(&self, key: u64, start: u64, time: u64, delta: f64) -> Option<f64> {
        let mut map = self.streams.lock();
        let stream = map.get(&key);
        let total = match (self.classify(stream, start, time)?, stream) {
            (
                Accepted::Add,
                Some(Stream {
                    value: Running::Float(v),
                    ..
                }),
            ) => v + delta,
            _ => delta,
        };
        map.insert(
            key,
            Stream {
                last_time: time,
                seen: Instant::now(),
                value: Running::Float(total),
            },
        );
        Some(total)
    }

    /// Adds a delta classic histogram; returns the cumulative `(counts, sum, count)`.
    fn buckets(&self, key: u64, dp: &HistogramPoint<'_>, sum: f64) -> Option<(Vec<u64>, f64, u64)> {
        let mut map = self.streams.lock();
        let stream = map.get(&key);
        let mut out = (dp.bucket_counts.to_vec(), sum, dp.count);
        if let (
            Accepted::Add,
            Some(Stream {
                value:
                    Running::Buckets {
                        bounds,
                        counts,
                        sum: s,
                        count,
                    },
                ..
            }),
        ) = (
            self.classify(stream, dp.start_time_unix_nano, dp.time_unix_nano)?,
            stream,
        ) {
            // A change of bucket layout restarts the total.
            if **bounds == *dp.explicit_bounds && counts.len() == out.0.len() {
                for (o, c) in out.0.iter_mut().zip(counts) {
                    *o = o.saturating_add(*c);
                }
                out.1 += s;
                out.2 = out.2.saturating_add(*count);
            }
        }
        map.insert(
            key,
            Stream {
                last_time: dp.time_unix_nano,
                seen: Instant::now(),
                value: Running::Buckets {
                    bounds: dp.explicit_bounds.to_vec(),
                    counts: out.0.clone(),
                    sum: out.1,
                    count: out.2,
                },
            },
        );
        Some(out)
    }

    fn native(
        &self,
        key: u64,
        start: u64,
        time: u64,
        mut h: FloatHistogram,
    ) -> Option<FloatHistogram> {
        let mut map = self.streams.lock();
        let stream = map.get(&key);
        match (self.classify(stream, start, time)?, stream) {
            (
                Accepted::Add,
                Some(Stream {
                    value: Running::Native(prev),
                    ..
                }),
            ) => {
                let mut total = (**prev).clone();
                if total.add(&h).is_ok() {
                    total.counter_reset_hint = CounterResetHint::NotCounterReset;
                    total.compact(0);
                    h = total;
                } else {
                    h.counter_reset_hint = CounterResetHint::CounterReset;
                }
            }
            (Accepted::Start { reset: true }, _) => {
                h.counter_reset_hint = CounterResetHint::CounterReset
            }
            _ => {}
        }
        map.insert(
            key,
            Stream {
                last_time: time,
                seen: Instant::now(),
                value: Running::Native(Box::new(h.clone())),
            },
        );
        Some(h)
    }

    fn forget(&self, key: u64) {
        self.streams.lock().remove(&key);
    }
}

fn is_delta(temporality: i32) -> Option<bool> {
    match AggregationTemporality::try_from(temporality) {
        Ok(AggregationTemporality::Delta) => Some(true),
        Ok(AggregationTemporality::Cumulative) => Some(false),
        _ => None,
    }
}

/// Converts a decoded request, allocating its labels in `arena`. Delta streams update
/// `deltas`.
pub fn convert<'a>(
    req: &'a ExportMetricsServiceRequest,
    arena: &'a Arena,
    opts: &OtlpOptions,
    deltas: &DeltaTracker,
) -> Converted<'a> {
    convert_view(&RequestView::from_proto(req), arena, opts, deltas)
}

/// Output series a request will have at most, roughly (to size buffers once).
fn series_hint(req: &RequestView<'_>) -> usize {
    let mut n = 0usize;
    for rm in &req.resources {
        n += 1;
        for m in &rm.metrics {
            n += match &m.data {
                Some(DataView::Histogram { points, .. }) => {
                    points.len() * (points.first().map_or(0, |p| p.explicit_bounds.len()) + 3)
                }
                Some(DataView::Summary(points)) => {
                    points.len() * (points.first().map_or(0, |p| p.quantiles.len()) + 2)
                }
                Some(d) => d.len(),
                None => 0,
            };
        }
    }
    n
}

/// Converts a request view (see [`super::wire::decode`]), allocating its labels in `arena`;
/// the result borrows what the view borrows and the arena, not the view. Delta streams update
/// `deltas`.
pub fn convert_view<'a>(
    req: &RequestView<'a>,
    arena: &'a Arena,
    opts: &OtlpOptions,
    deltas: &DeltaTracker,
) -> Converted<'a> {
    deltas.sweep();
    let mut out = Converted::new(arena, series_hint(req));
    let mut caches = Caches::default();
    for rm in &req.resources {
        let attrs: &[Attr<'a>] = &rm.attributes;
        let find = |k: &str| attrs.iter().find(|kv| kv.key == k);
        // Promoted resource attributes; data point attributes win over them.
        let base = LabelSet::new(
            LabelSet::default(),
            attrs
                .iter()
                .filter(|kv| opts.promote_resource_attributes.iter().any(|p| p == kv.key)),
            "",
            "",
            opts,
            &mut out.scratch,
            arena,
        );
        let job = match (find(SERVICE_NAME), find(SERVICE_NAMESPACE)) {
            (Some(name), Some(ns)) => arena.str(&format!(
                "{}/{}",
                attr_string(&ns.value),
                attr_string(&name.value)
            )),
            (Some(name), None) => value_str(&name.value, arena),
            _ => "",
        };
        let instance = find(SERVICE_INSTANCE_ID)
            .map(|kv| value_str(&kv.value, arena))
            .unwrap_or("");
        let resource = Resource {
            base,
            job,
            instance,
        };

        let mut newest: Option<i64> = None;
        for metric in &rm.metrics {
            let t = convert_metric(metric, &resource, opts, deltas, &mut caches, &mut out);
            newest = newest.max(t);
        }

        // target_info: the non-identifying resource attributes, at the resource's newest time.
        let mut info_attrs = attrs.iter().filter(|kv| {
            !matches!(
                kv.key,
                SERVICE_NAME | SERVICE_NAMESPACE | SERVICE_INSTANCE_ID
            )
        });
        if let (Some(t), true) = (newest, info_attrs.clone().next().is_some()) {
            let set = LabelSet::new(
                LabelSet::default(),
                &mut info_attrs,
                resource.job,
                resource.instance,
                opts,
                &mut out.scratch,
                arena,
            );
            let labels = set.build("target_info", None, &mut out.scratch.pairs, arena);
            out.push_float(labels, t, 1.0);
        }
    }
    out.finish();
    out
}

/// What every series of one resource shares.
struct Resource<'a> {
    base: LabelSet<'a>,
    job: &'a str,
    instance: &'a str,
}

/// Per-request caches: metric names and `le` values repeat across a request's resources.
#[derive(Default)]
struct Caches<'a> {
    names: NameCache<'a>,
    les: LeCache<'a>,
}

/// `le` label values for one bucket layout, reused while points share it.
#[derive(Default)]
struct LeCache<'a> {
    bounds: Vec<f64>,
    les: &'a [&'a str],
}

impl<'a> LeCache<'a> {
    fn get(&mut self, bounds: &[f64], arena: &'a Arena) -> &'a [&'a str] {
        if self.bounds.as_slice() != bounds || self.les.len() != bounds.len() + 1 {
            self.bounds = bounds.to_vec();
            self.les = arena.0.alloc_slice_fill_with(bounds.len() + 1, |i| {
                let bound = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                arena.str(&format_float(bound))
            });
        }
        self.les
    }
}

/// A metric's output names.
#[derive(Clone, Copy)]
struct Names<'a> {
    base: &'a str,
    bucket: &'a str,
    sum: &'a str,
    count: &'a str,
}

/// Output names by (OTLP name, unit, Prometheus type) within one request, with the help text
/// last recorded in the request's metadata for them.
#[derive(Default)]
struct NameCache<'a> {
    entries: HashMap<(&'a str, &'a str, &'static str), (Names<'a>, &'a str)>,
    families: HashSet<&'a str>,
    /// Two entries translate to one family name: metadata is then recorded for every
    /// metric, so that the last one still wins.
    shared_family: bool,
}

/// Converts one metric; returns the newest timestamp (ms) it produced samples for.
fn convert_metric<'a>(
    metric: &MetricView<'a>,
    res: &Resource<'a>,
    opts: &OtlpOptions,
    deltas: &DeltaTracker,
    caches: &mut Caches<'a>,
    out: &mut Converted<'a>,
) -> Option<i64> {
    let Some(data) = &metric.data else {
        return None;
    };
    let points = data.len();
    out.points += points;
    if metric.name.is_empty() {
        out.reject(reason::INVALID_METRIC, points);
        return None;
    }
    let (kind, prom_type, temporality) = match data {
        DataView::Gauge(_) => (NameKind::Gauge, "gauge", Some(false)),
        DataView::Sum {
            monotonic: true,
            temporality,
            ..
        } => (NameKind::Counter, "counter", is_delta(*temporality)),
        DataView::Sum { temporality, .. } => (NameKind::Gauge, "gauge", is_delta(*temporality)),
        DataView::Histogram { temporality, .. } | DataView::Exponential { temporality, .. } => {
            (NameKind::Other, "histogram", is_delta(*temporality))
        }
        DataView::Summary(_) => (NameKind::Other, "summary", Some(false)),
    };
    let Some(delta) = temporality else {
        out.reject(reason::UNSPECIFIED_TEMPORALITY, points);
        return None;
    };
    let arena = out.arena;
    let cache = &mut caches.names;
    let key = (metric.name, metric.unit, prom_type);
    let (names, record) = match cache.entries.get_mut(&key) {
        Some((names, help)) => {
            let record = cache.shared_family || *help != metric.description;
            *help = metric.description;
            (*names, record)
        }
        None => {
            let name = arena.str(&metric_name(
                metric.name,
                metric.unit,
                kind,
                opts.translation,
            ));
            let suffixed = |suffix: &str| -> &'a str { arena.str(&format!("{name}{suffix}")) };
            let names = Names {
                bucket: suffixed("_bucket"),
                sum: suffixed("_sum"),
                count: suffixed("_count"),
                base: name,
            };
            if !cache.families.insert(name) {
                cache.shared_family = true;
            }
            cache.entries.insert(key, (names, metric.description));
            (names, true)
        }
    };
    if record {
        out.metadata.push((
            names.base.to_string(),
            MetricMetadata {
                metric_type: prom_type.to_string(),
                help: metric.description.to_string(),
                unit: unit_words(metric.unit).0,
            },
        ));
    }

    let labels_for = |attrs: &[Attr<'a>], out: &mut Converted<'a>| -> LabelSet<'a> {
        LabelSet::new(
            res.base,
            attrs.iter(),
            res.job,
            res.instance,
            opts,
            &mut out.scratch,
            arena,
        )
    };
    let build =
        |set: LabelSet<'a>,
         name: &'a str,
         extra: Option<(&'static str, &'a str)>,
         out: &mut Converted<'a>| { set.build(name, extra, &mut out.scratch.pairs, arena) };
    let mut newest: Option<i64> = None;
    match data {
        DataView::Gauge(points) => {
            for dp in points {
                let set = labels_for(&dp.attributes, out);
                let labels = build(set, names.base, None, out);
                newest = newest.max(number_point(dp, labels, false, deltas, out));
            }
        }
        DataView::Sum { points, .. } => {
            for dp in points {
                let set = labels_for(&dp.attributes, out);
                let labels = build(set, names.base, None, out);
                let t = number_point(dp, labels, delta, deltas, out);
                if t.is_some() && !dp.exemplars.is_empty() {
                    for e in out.convert_exemplars(&dp.exemplars) {
                        out.push_exemplar(labels, e);
                    }
                }
                newest = newest.max(t);
            }
        }
        DataView::Histogram { points, .. } => {
            for dp in points {
                let set = labels_for(&dp.attributes, out);
                let les = caches.les.get(&dp.explicit_bounds, arena);
                let t = classic_point(dp, set, &names, les, delta, deltas, out);
                if t.is_some() && !dp.exemplars.is_empty() {
                    bucket_exemplars(dp, set, &names, les, out);
                }
                newest = newest.max(t);
            }
        }
        DataView::Exponential { points, .. } => {
            for dp in points {
                let set = labels_for(&dp.attributes, out);
                let labels = build(set, names.base, None, out);
                let t = native_point(dp, labels, delta, deltas, out);
                if t.is_some() && !dp.exemplars.is_empty() {
                    for e in out.convert_exemplars(&dp.exemplars) {
                        out.push_exemplar(labels, e);
                    }
                }
                newest = newest.max(t);
            }
        }
        DataView::Summary(points) => {
            for dp in points {
                let set = labels_for(&dp.attributes, out);
                let t = ns_to_ms(dp.time_unix_nano);
                let no_value = dp.flags & FLAG_NO_RECORDED_VALUE != 0;
                let val = |v: f64| if no_value { stale() } else { v };
                for &(quantile, value) in &dp.quantiles {
                    let qs = arena.str(&format_float(quantile));
                    let labels = build(set, names.base, Some(("quantile", qs)), out);
                    out.push_float(labels, t, val(value));
                }
                let labels = build(set, names.sum, None, out);
                out.push_float(labels, t, val(dp.sum));
                let labels = build(set, names.count, None, out);
                out.push_float(labels, t, val(dp.count as f64));
                newest = newest.max(Some(t));
            }
        }
    }
    newest
}

/// A point flagged "no recorded value": a staleness marker for its series, and its delta
/// stream (if any) forgotten so the next point starts a new running total.
fn no_recorded_value<'a>(
    labels: OtlpLabels<'a>,
    t: i64,
    delta: bool,
    deltas: &DeltaTracker,
    out: &mut Converted<'a>,
) -> i64 {
    if delta {
        deltas.forget(labels.hash64());
    }
    out.push_float(labels, t, stale());
    t
}

fn number_point<'a>(
    dp: &NumberPoint<'_>,
    labels: OtlpLabels<'a>,
    delta: bool,
    deltas: &DeltaTracker,
    out: &mut Converted<'a>,
) -> Option<i64> {
    let t = ns_to_ms(dp.time_unix_nano);
    if dp.flags & FLAG_NO_RECORDED_VALUE != 0 {
        return Some(no_recorded_value(labels, t, delta, deltas, out));
    }
    let Some(v) = dp.value else {
        out.reject(reason::MISSING_VALUE, 1);
        return None;
    };
    let v = if delta {
        let key = labels.hash64();
        match deltas.float(key, dp.start_time_unix_nano, dp.time_unix_nano, v) {
            Some(total) => total,
            None => {
                out.reject(reason::DELTA_OUT_OF_ORDER, 1);
                return None;
            }
        }
    } else {
        v
    };
    out.push_float(labels, t, v);
    Some(t)
}

fn classic_point<'a>(
    dp: &HistogramPoint<'_>,
    set: LabelSet<'a>,
    names: &Names<'a>,
    le_values: &'a [&'a str],
    delta: bool,
    deltas: &DeltaTracker,
    out: &mut Converted<'a>,
) -> Option<i64> {
    let arena = out.arena;
    let t = ns_to_ms(dp.time_unix_nano);
    let buckets = set.le_family(names.bucket, &mut out.scratch.pairs, arena);
    let le = |i: usize| buckets.labels(le_values[i]);
    let build = |name: &'a str, out: &mut Converted<'a>| {
        set.build(name, None, &mut out.scratch.pairs, arena)
    };
    if dp.flags & FLAG_NO_RECORDED_VALUE != 0 {
        if delta {
            deltas.forget(build(names.base, out).hash64());
        }
        for i in 0..le_values.len() {
            out.push_float(le(i), t, stale());
        }
        let labels = build(names.sum, out);
        out.push_float(labels, t, stale());
        let labels = build(names.count, out);
        out.push_float(labels, t, stale());
        return Some(t);
    }
    let layout_ok = (dp.bucket_counts.is_empty()
        || dp.bucket_counts.len() == dp.explicit_bounds.len() + 1)
        && dp.explicit_bounds.windows(2).all(|w| w[0] < w[1]);
    if !layout_ok {
        out.reject(reason::INVALID_HISTOGRAM, 1);
        return None;
    }
    let sum = dp.sum.unwrap_or(0.0);
    let delta_totals;
    let (counts, sum, count) = if delta {
        let key = build(names.base, out).hash64();
        match deltas.buckets(key, dp, sum) {
            Some(x) => {
                delta_totals = x;
                (delta_totals.0.as_slice(), delta_totals.1, delta_totals.2)
            }
            None => {
                out.reject(reason::DELTA_OUT_OF_ORDER, 1);
                return None;
            }
        }
    } else {
        (&dp.bucket_counts[..], sum, dp.count)
    };
    if !counts.is_empty() {
        let mut cumulative: u64 = 0;
        for (i, c) in counts.iter().take(dp.explicit_bounds.len()).enumerate() {
            cumulative = cumulative.saturating_add(*c);
            out.push_float(le(i), t, cumulative as f64);
        }
    }
    out.push_float(le(dp.explicit_bounds.len()), t, count as f64);
    if dp.sum.is_some() {
        let labels = build(names.sum, out);
        out.push_float(labels, t, sum);
    }
    let labels = build(names.count, out);
    out.push_float(labels, t, count as f64);
    Some(t)
}

/// Attaches a classic histogram point's exemplars to the first `_bucket` series (by bound,
/// `+Inf` last) whose bound is at or above the exemplar's value; NaN values match no bucket
/// and are dropped as invalid, as Prometheus' translator drops them.
fn bucket_exemplars<'a>(
    dp: &HistogramPoint<'_>,
    set: LabelSet<'a>,
    names: &Names<'a>,
    le_values: &'a [&'a str],
    out: &mut Converted<'a>,
) {
    let arena = out.arena;
    // Only buckets that got a sample (the explicit ones need bucket counts).
    let explicit = if dp.bucket_counts.is_empty() {
        0
    } else {
        dp.explicit_bounds.len()
    };
    for e in out.convert_exemplars(&dp.exemplars) {
        let bucket = dp
            .explicit_bounds
            .iter()
            .take(explicit)
            .position(|&b| e.value <= b)
            .or_else(|| (e.value <= f64::INFINITY).then_some(dp.explicit_bounds.len()));
        match bucket.and_then(|i| le_values.get(i).copied()) {
            Some(le) => {
                let labels = set.build(
                    names.bucket,
                    Some(("le", le)),
                    &mut out.scratch.pairs,
                    arena,
                );
                out.push_exemplar(labels, e)
            }
            None => out.invalid_exemplars += 1,
        }
    }
}

fn native_point<'a>(
    dp: &ExpPoint<'_>,
    labels: OtlpLabels<'a>,
    delta: bool,
    deltas: &DeltaTracker,
    out: &mut Converted<'a>,
) -> Option<i64> {
    let t = ns_to_ms(dp.time_unix_nano);
    if dp.flags & FLAG_NO_RECORDED_VALUE != 0 {
        return Some(no_recorded_value(labels, t, delta, deltas, out));
    }
    let h = match native_histogram(dp) {
        Ok(h) => h,
        Err(r) => {
            out.reject(r, 1);
            return None;
        }
    };
    let h = if delta {
        let key = labels.hash64();
        match deltas.native(key, dp.start_time_unix_nano, dp.time_unix_nano, h) {
            Some(h) => h,
            None => {
                out.reject(reason::DELTA_OUT_OF_ORDER, 1);
                return None;
            }
        }
    } else {
        h
    };
    out.push_histogram(labels, t, h);
    Some(t)
}

/// An OTLP exponential histogram point as a native histogram.
pub fn exponential_to_native(
    dp: &ExponentialHistogramDataPoint,
) -> Result<FloatHistogram, &'static str> {
    native_histogram(&ExpPoint::from_proto(dp))
}

fn native_histogram(dp: &ExpPoint<'_>) -> Result<FloatHistogram, &'static str> {
    const MAX_SCALE: i32 = 8;
    const MIN_SCALE: i32 = -4;
    if dp.scale < MIN_SCALE {
        return Err(reason::SCALE_TOO_LOW);
    }
    let shift = (dp.scale - MAX_SCALE).max(0) as u32;
    if dp.zero_threshold.is_nan() || dp.zero_threshold < 0.0 || dp.zero_threshold.is_infinite() {
        return Err(reason::INVALID_HISTOGRAM);
    }
    let (positive_spans, positive_buckets) = buckets_to_spans(dp.positive.as_ref(), shift)?;
    let (negative_spans, negative_buckets) = buckets_to_spans(dp.negative.as_ref(), shift)?;
    let h = FloatHistogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: dp.scale.min(MAX_SCALE),
        zero_threshold: dp.zero_threshold,
        zero_count: dp.zero_count as f64,
        count: dp.count as f64,
        sum: dp.sum.unwrap_or(0.0),
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values: Vec::new(),
    };
    let in_buckets: f64 = h.zero_count
        + h.positive_buckets.iter().sum::<f64>()
        + h.negative_buckets.iter().sum::<f64>();
    if in_buckets > h.count || h.validate().is_err() {
        return Err(reason::INVALID_HISTOGRAM);
    }
    Ok(h)
}

/// Dense OTLP buckets (offset + counts) → Prometheus spans and absolute counts, merging
/// `2^shift` neighbouring buckets when downscaling. Runs of more than two empty buckets
/// split spans.
fn buckets_to_spans(
    b: Option<&BucketsView<'_>>,
    shift: u32,
) -> Result<(Vec<Span>, Vec<f64>), &'static str> {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts: Vec<f64> = Vec::new();
    let Some(b) = b else {
        return Ok((spans, counts));
    };
    // (Prometheus index, count) with indexes strictly increasing.
    let mut merged: Vec<(i32, u64)> = Vec::with_capacity(b.bucket_counts.len());
    for (i, &c) in b.bucket_counts.iter().enumerate() {
        let otlp_index = i32::try_from(i)
            .ok()
            .and_then(|i| b.offset.checked_add(i))
            .ok_or(reason::INVALID_HISTOGRAM)?;
        let index = (otlp_index >> shift)
            .checked_add(1)
            .ok_or(reason::INVALID_HISTOGRAM)?;
        match merged.last_mut() {
            Some(last) if last.0 == index => last.1 = last.1.saturating_add(c),
            _ => merged.push((index, c)),
        }
    }
    let mut prev_end: Option<i32> = None; // index of the last bucket in the current span
    for (index, c) in merged {
        if c == 0 {
            continue;
        }
        match prev_end {
            Some(end) if index - end - 1 <= 2 => {
                // Fill the short gap with empty buckets inside the current span.
                counts.extend(std::iter::repeat_n(0.0, (index - end - 1) as usize));
                if let Some(s) = spans.last_mut() {
                    s.length += (index - end) as u32;
                }
            }
            Some(end) => spans.push(Span {
                offset: index - end - 1,
                length: 1,
            }),
            None => spans.push(Span {
                offset: index,
                length: 1,
            }),
        }
        counts.push(c as f64);
        prev_end = Some(index);
    }
    Ok((spans, counts))
}

#[cfg(test)]
mod tests;
