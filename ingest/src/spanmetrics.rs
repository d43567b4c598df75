//! The span-metrics and service-graph generator: RED metrics from spans, written to the TSDB.
//!
//! Names and semantics follow Tempo's metrics-generator:
//! - `traces_spanmetrics_calls_total` (counter) and `traces_spanmetrics_latency` (histogram in
//!   seconds: classic `_bucket`/`_sum`/`_count`, native, or both) with labels `service`,
//!   `span_name`, `span_kind` (`SPAN_KIND_SERVER`…), `status_code` (`STATUS_CODE_ERROR`…) and
//!   one label per configured dimension (attribute key, span first then resource, sanitised into
//!   a label name);
//! - `traces_service_graph_request_total{client,server,connection_type}`,
//!   `traces_service_graph_request_failed_total`, and the histograms
//!   `traces_service_graph_request_server_seconds` / `_client_seconds` (see [`graph`]).
//!
//! Spans are folded into in-memory cumulative series on the ingest path ([`SpanMetrics::observe`]:
//! one lock per request, a hash of the dimension tuple per span, no allocation when the series
//! exists). Every collection interval ([`SpanMetrics::flush`], and once more on shutdown) the
//! series are appended to [`Db`] at the collection time, with exemplars (`trace_id`, `span_id`)
//! on the calls counter and the latency buckets. A new series is first written as 0 one
//! millisecond earlier, so `increase()` sees its first calls (as Tempo does). Series idle for
//! `stale_after` are forgotten. Past `max_series` new series are dropped: counted in
//! `sextant_spanmetrics_series_dropped_total`, logged once.

pub mod graph;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sextant_storage::histogram::{CounterResetHint, FloatHistogram, Span as HSpan};
use sextant_storage::labels::SeriesHasher;
use sextant_storage::traces::{BatchRef, SpanBatch, SpanKind, StatusCode, TraceId, ValueRef};
use sextant_storage::{Db, Exemplar, HistogramSample, Labels, MetricMetadata, Sample};

pub use graph::ServiceGraphOptions;

/// Which latency histogram is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HistogramMode {
    /// `_bucket`/`_sum`/`_count` series with the configured buckets.
    #[default]
    Classic,
    /// One native (exponential, schema 3 — Tempo's factor 1.1) histogram series.
    Native,
    /// Both.
    Both,
}

/// Tempo's default span-metrics latency buckets (seconds): 0.002 × 2^i, i = 0..14.
pub fn default_latency_buckets() -> Vec<f64> {
    (0..14).map(|i| 0.002 * f64::from(1u32 << i)).collect()
}

/// Generator settings.
#[derive(Clone, Debug)]
pub struct SpanMetricsOptions {
    /// `traces_spanmetrics_*` on (off leaves only the service graph, if enabled).
    pub span_metrics: bool,
    /// Extra dimensions: attribute keys (span attributes first, then resource attributes).
    pub dimensions: Vec<String>,
    pub histogram: HistogramMode,
    /// Classic bucket upper bounds in seconds, ascending (`+Inf` is implied).
    pub buckets: Vec<f64>,
    /// How often series are written to the TSDB.
    pub collection_interval: Duration,
    /// Most series the generator keeps (span metrics and service graph together).
    pub max_series: usize,
    /// Series without new spans for this long are forgotten.
    pub stale_after: Duration,
    pub service_graph: ServiceGraphOptions,
}

impl Default for SpanMetricsOptions {
    fn default() -> Self {
        SpanMetricsOptions {
            span_metrics: true,
            dimensions: Vec::new(),
            histogram: HistogramMode::Classic,
            buckets: default_latency_buckets(),
            collection_interval: Duration::from_secs(15),
            max_series: 100_000,
            stale_after: Duration::from_secs(15 * 60),
            service_graph: ServiceGraphOptions::default(),
        }
    }
}

/// The generator's own health, for Sextant's `/metrics`.
#[derive(Clone, Default)]
pub struct GeneratorMetrics {
    pub spans_received: Counter,
    pub series_dropped: Counter,
    pub active_series: Gauge,
    pub edges_expired: Counter,
    pub edges_dropped: Counter,
    pub write_failures: Counter,
}

impl GeneratorMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sextant_spanmetrics_spans_received",
            "Spans seen by the span-metrics generator",
            self.spans_received.clone(),
        );
        registry.register(
            "sextant_spanmetrics_series_dropped",
            "Span observations dropped because the generator's series limit was reached",
            self.series_dropped.clone(),
        );
        registry.register(
            "sextant_spanmetrics_active_series",
            "Series held by the span-metrics and service-graph generator",
            self.active_series.clone(),
        );
        registry.register(
            "sextant_service_graph_expired_edges",
            "Service-graph edges whose other side never arrived within the wait time",
            self.edges_expired.clone(),
        );
        registry.register(
            "sextant_service_graph_dropped_spans",
            "Spans not paired because the service-graph edge store was full",
            self.edges_dropped.clone(),
        );
        registry.register(
            "sextant_spanmetrics_write_failures",
            "Collections whose write to the TSDB failed",
            self.write_failures.clone(),
        );
    }
}

/// An exemplar candidate: the most recent span that fell into a bucket / series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ex {
    pub trace_id: TraceId,
    pub span_id: [u8; 8],
    pub value: f64,
}

impl Ex {
    fn to_exemplar(self, t: i64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs([
                ("trace_id", self.trace_id.to_hex()),
                ("span_id", sextant_storage::traces::hex(&self.span_id)),
            ]),
            value: self.value,
            t,
        }
    }
}

/// Cumulative classic histogram with an exemplar slot per bucket.
#[derive(Clone, Debug)]
pub(crate) struct Hist {
    /// Per-bucket (not cumulative) counts; the last is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    exemplars: Vec<Option<Ex>>,
}

impl Hist {
    pub(crate) fn new(bounds: &[f64]) -> Hist {
        Hist {
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
            exemplars: vec![None; bounds.len() + 1],
        }
    }

    #[inline]
    pub(crate) fn observe(&mut self, bounds: &[f64], v: f64, ex: Ex) {
        let i = bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
        self.exemplars[i] = Some(ex);
    }

    /// Appends the `_bucket`, `_sum` and `_count` series (and taken exemplars) for `name`.
    pub(crate) fn emit(
        &mut self,
        name: &str,
        base: &[(&str, &str)],
        bounds: &[f64],
        out: &mut Collected,
        first: Option<i64>,
        t: i64,
    ) {
        let mut cumulative = 0u64;
        for (i, n) in self.counts.iter().enumerate() {
            cumulative += n;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_bound(*b));
            let labels = series_labels(&format!("{name}_bucket"), base, Some(&le));
            if let Some(ex) = self.exemplars[i].take() {
                out.exemplars
                    .push((labels.clone(), vec![ex.to_exemplar(t)]));
            }
            out.push(labels, first, t, cumulative as f64);
        }
        out.push(
            series_labels(&format!("{name}_sum"), base, None),
            first,
            t,
            self.sum,
        );
        out.push(
            series_labels(&format!("{name}_count"), base, None),
            first,
            t,
            self.count as f64,
        );
    }
}

/// A bound as Prometheus prints `le` (shortest round-trip form).
fn format_bound(b: f64) -> String {
    if b == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{b}")
    }
}

/// Labels of one output series: `base` pairs plus the name (and `le`).
fn series_labels(name: &str, base: &[(&str, &str)], le: Option<&str>) -> Labels {
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(base.len() + 2);
    pairs.push(("__name__", name));
    pairs.extend_from_slice(base);
    if let Some(le) = le {
        pairs.push(("le", le));
    }
    Labels::from_pairs(pairs)
}

/// Native histogram schema used (Tempo's default bucket factor 1.1 ≈ 2^(2^-3)).
const NATIVE_SCHEMA: i32 = 3;

/// Cumulative native histogram: sparse exponential bucket counts.
#[derive(Clone, Debug, Default)]
struct Native {
    buckets: BTreeMap<i32, u64>,
    zero: u64,
    sum: f64,
    count: u64,
    last: Option<Ex>,
}

impl Native {
    fn observe(&mut self, v: f64, ex: Ex) {
        self.sum += v;
        self.count += 1;
        self.last = Some(ex);
        if v <= 0.0 || !v.is_finite() {
            self.zero += 1;
            return;
        }
        // Bucket i covers (2^((i-1)/2^s), 2^(i/2^s)].
        let scale = f64::from(1u32 << NATIVE_SCHEMA);
        let idx = (v.log2() * scale).ceil() as i32;
        *self.buckets.entry(idx).or_default() += 1;
    }

    fn histogram(&self) -> FloatHistogram {
        let mut spans: Vec<HSpan> = Vec::new();
        let mut counts = Vec::with_capacity(self.buckets.len());
        let mut prev: Option<i32> = None;
        for (&i, &c) in &self.buckets {
            match prev {
                Some(p) if i == p + 1 => {
                    if let Some(last) = spans.last_mut() {
                        last.length += 1;
                    }
                }
                Some(p) => spans.push(HSpan {
                    offset: i - p - 1,
                    length: 1,
                }),
                None => spans.push(HSpan {
                    offset: i,
                    length: 1,
                }),
            }
            counts.push(c as f64);
            prev = Some(i);
        }
        FloatHistogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema: NATIVE_SCHEMA,
            zero_threshold: 0.0,
            zero_count: self.zero as f64,
            count: self.count as f64,
            sum: self.sum,
            positive_spans: spans,
            negative_spans: Vec::new(),
            positive_buckets: counts,
            negative_buckets: Vec::new(),
            custom_values: Vec::new(),
        }
    }
}

/// One span-metrics series (a dimension tuple).
#[derive(Debug)]
struct Red {
    calls: u64,
    calls_ex: Option<Ex>,
    latency: Option<Hist>,
    native: Option<Native>,
}

/// What one collection writes.
#[derive(Default, Debug)]
pub struct Collected {
    pub floats: Vec<(Labels, Vec<Sample>)>,
    pub histograms: Vec<(Labels, Vec<HistogramSample>)>,
    pub exemplars: Vec<(Labels, Vec<Exemplar>)>,
}

impl Collected {
    fn push(&mut self, labels: Labels, first: Option<i64>, t: i64, v: f64) {
        let mut samples = Vec::with_capacity(2);
        if let Some(t0) = first {
            samples.push(Sample { t: t0, v: 0.0 });
        }
        samples.push(Sample { t, v });
        self.floats.push((labels, samples));
    }

    /// Value of the float series whose labels are exactly `pairs` (plus `__name__`), for tests
    /// and debugging.
    pub fn value(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        let want = series_labels(name, pairs, None);
        self.floats
            .iter()
            .find(|(l, _)| *l == want)
            .and_then(|(_, s)| s.last().map(|s| s.v))
    }
}

/// A hash identity for already mixed `u64` keys.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

struct Entry<T> {
    key: Box<[String]>,
    value: T,
    /// Wall-clock ms of the newest observation.
    updated: i64,
    /// Not yet written: the next collection writes a 0 first.
    new: bool,
}

/// Series keyed by a tuple of strings; lookups hash the tuple and compare in place.
pub(crate) struct Table<T> {
    index: IdMap<Vec<u32>>,
    entries: Vec<Entry<T>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            index: IdMap::default(),
            entries: Vec::new(),
        }
    }
}

pub(crate) fn hash_key(key: &[String]) -> u64 {
    let mut h = SeriesHasher::default();
    for k in key {
        h.add(k);
    }
    h.finish()
}

impl<T> Table<T> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The series for `key`, created with `make` unless `room` is false (then `None`).
    pub(crate) fn get_or_insert(
        &mut self,
        key: &[String],
        now: i64,
        room: bool,
        make: impl FnOnce() -> T,
    ) -> Option<&mut T> {
        let h = hash_key(key);
        let slot = self.index.entry(h).or_default();
        let found = slot
            .iter()
            .copied()
            .find(|&i| *self.entries[i as usize].key == *key);
        let i = match found {
            Some(i) => i as usize,
            None => {
                if !room {
                    if slot.is_empty() {
                        self.index.remove(&h);
                    }
                    return None;
                }
                slot.push(self.entries.len() as u32);
                self.entries.push(Entry {
                    key: key.to_vec().into_boxed_slice(),
                    value: make(),
                    updated: now,
                    new: true,
                });
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[i];
        e.updated = now;
        Some(&mut e.value)
    }

    /// Forgets entries not updated since `cutoff`; rebuilds the index when any went.
    pub(crate) fn expire(&mut self, cutoff: i64) {
        let before = self.entries.len();
        self.entries.retain(|e| e.updated >= cutoff);
        if self.entries.len() != before {
            self.index.clear();
            for (i, e) in self.entries.iter().enumerate() {
                self.index
                    .entry(hash_key(&e.key))
                    .or_default()
                    .push(i as u32);
            }
        }
    }
}

struct Inner {
    red: Table<Red>,
    graph: graph::Graph,
    /// Reused dimension tuple of the span being observed.
    scratch: Vec<String>,
}

/// The generator. Shared by the ingest path ([`SpanMetrics::observe`]) and the collector
/// ([`SpanMetrics::flush`], [`spawn_collector`]).
pub struct SpanMetrics {
    db: Arc<Db>,
    options: SpanMetricsOptions,
    /// `(attribute key, label name)` of each configured dimension.
    dimensions: Vec<(String, String)>,
    inner: Mutex<Inner>,
    metrics: GeneratorMetrics,
    limit_logged: AtomicBool,
}

/// Turns an attribute key into a valid label name (`http.method` → `http_method`), as Tempo
/// does: invalid characters become `_`, a leading digit gets a `_` prefix.
pub fn sanitize_label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    for (i, c) in key.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// `SPAN_KIND_…` name of a kind, as Tempo labels it.
pub fn kind_label(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

/// `STATUS_CODE_…` name of a status, as Tempo labels it.
pub fn status_label(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

/// Writes an attribute's scalar value into `out` (arrays, maps and bytes give nothing).
pub(crate) fn write_value(out: &mut String, v: ValueRef<'_>) {
    match v {
        ValueRef::Str(s) => out.push_str(s),
        ValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        ValueRef::Int(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Double(d) => {
            let _ = write!(out, "{d}");
        }
        _ => {}
    }
}

/// Current wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

const FIXED_DIMS: usize = 4;

impl SpanMetrics {
    /// A generator writing to `db`. Invalid bucket lists (not ascending, not finite) are
    /// refused.
    pub fn new(db: Arc<Db>, options: SpanMetricsOptions) -> Result<Arc<SpanMetrics>, String> {
        for (what, b) in [
            ("span metrics", &options.buckets),
            ("service graph", &options.service_graph.buckets),
        ] {
            if b.iter().any(|v| !v.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "{what} histogram buckets must be finite and strictly ascending, got {b:?}"
                ));
            }
        }
        let dimensions: Vec<(String, String)> = options
            .dimensions
            .iter()
            .map(|k| (k.clone(), sanitize_label_name(k)))
            .collect();
        for (_, label) in &dimensions {
            if matches!(
                label.as_str(),
                "service" | "span_name" | "span_kind" | "status_code" | "le" | "__name__"
            ) {
                return Err(format!(
                    "span metrics dimension label {label:?} collides with a built-in label"
                ));
            }
        }
        let scratch = vec![String::new(); FIXED_DIMS + dimensions.len()];
        let graph = graph::Graph::new(options.service_graph.clone());
        Ok(Arc::new(SpanMetrics {
            db,
            dimensions,
            inner: Mutex::new(Inner {
                red: Table::default(),
                graph,
                scratch,
            }),
            metrics: GeneratorMetrics::default(),
            limit_logged: AtomicBool::new(false),
            options,
        }))
    }

    pub fn options(&self) -> &SpanMetricsOptions {
        &self.options
    }

    /// The generator's self-metrics (register them with [`GeneratorMetrics::register`]).
    pub fn metrics(&self) -> &GeneratorMetrics {
        &self.metrics
    }

    /// Folds spans into the series (called on the ingest path, before the spans are stored).
    pub fn observe(&self, batches: &[SpanBatch]) {
        self.observe_at(batches, now_ms());
    }

    /// [`SpanMetrics::observe`] at a given wall-clock time (Unix ms; drives staleness and the
    /// service-graph wait).
    pub fn observe_at(&self, batches: &[SpanBatch], now: i64) {
        let views: Vec<BatchRef<'_>> = batches.iter().map(BatchRef::of).collect();
        self.observe_views_at(&views, now);
    }

    /// Folds spans read as views (e.g. [`sextant_storage::traces::EncodedSpans::views`], so
    /// the protobuf path never builds `Span`s); same series as [`SpanMetrics::observe`].
    pub fn observe_views(&self, batches: &[BatchRef<'_>]) {
        self.observe_views_at(batches, now_ms());
    }

    /// [`SpanMetrics::observe_views`] at a given wall-clock time (Unix ms).
    pub fn observe_views_at(&self, batches: &[BatchRef<'_>], now: i64) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut spans = 0u64;
        let mut dropped = 0u64;
        let classic = self.options.histogram != HistogramMode::Native;
        let native = self.options.histogram != HistogramMode::Classic;
        for batch in batches {
            let service = batch.service_name().unwrap_or("");
            spans += batch.spans.len() as u64;
            let red_spans = if self.options.span_metrics {
                &batch.spans[..]
            } else {
                &[]
            };
            for span in red_spans {
                let key = &mut inner.scratch;
                key[0].clear();
                key[0].push_str(service);
                key[1].clear();
                key[1].push_str(span.name);
                key[2].clear();
                key[2].push_str(kind_label(span.kind));
                key[3].clear();
                key[3].push_str(status_label(span.status_code));
                for (slot, (attr, _)) in key[FIXED_DIMS..].iter_mut().zip(&self.dimensions) {
                    slot.clear();
                    let v = span
                        .attributes
                        .get(attr)
                        .or_else(|| batch.resource.get(attr));
                    if let Some(v) = v {
                        write_value(slot, v);
                    }
                }
                let room = inner.red.len() + inner.graph.series() < self.options.max_series;
                let buckets = &self.options.buckets;
                let Some(red) = inner.red.get_or_insert(key, now, room, || Red {
                    calls: 0,
                    calls_ex: None,
                    latency: classic.then(|| Hist::new(buckets)),
                    native: native.then(Native::default),
                }) else {
                    dropped += 1;
                    continue;
                };
                let secs = span.duration_nanos() as f64 / 1e9;
                let ex = Ex {
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    value: secs,
                };
                red.calls += 1;
                red.calls_ex = Some(Ex { value: 1.0, ..ex });
                if let Some(h) = &mut red.latency {
                    h.observe(buckets, secs, ex);
                }
                if let Some(n) = &mut red.native {
                    n.observe(secs, ex);
                }
            }
            if self.options.service_graph.enabled {
                let room = self.options.max_series.saturating_sub(inner.red.len());
                let g = inner.graph.observe(batch, now, room);
                dropped += g.series_dropped;
                self.metrics.edges_dropped.inc_by(g.store_full);
            }
        }
        if self.options.service_graph.enabled {
            let expired = inner.graph.expire(now, false);
            self.metrics.edges_expired.inc_by(expired);
        }
        self.metrics.spans_received.inc_by(spans);
        if dropped > 0 {
            self.metrics.series_dropped.inc_by(dropped);
            if !self.limit_logged.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    max_series = self.options.max_series,
                    "span metrics series limit reached: new series are dropped \
                     (counted in sextant_spanmetrics_series_dropped_total; raise traces.span_metrics.max_series)"
                );
            }
        }
        self.metrics
            .active_series
            .set((inner.red.len() + inner.graph.series()) as i64);
    }

    /// Builds the samples and exemplars a collection at `t` (Unix ms) writes, forgetting stale
    /// series first. `final_flush` also completes or expires every pending service-graph edge.
    pub fn collect_at(&self, t: i64, final_flush: bool) -> Collected {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let cutoff = t.saturating_sub(self.options.stale_after.as_millis() as i64);
        inner.red.expire(cutoff);
        if self.options.service_graph.enabled {
            let expired = inner.graph.expire(t, final_flush);
            self.metrics.edges_expired.inc_by(expired);
        }
        let mut out = Collected::default();
        let names: Vec<&str> = ["service", "span_name", "span_kind", "status_code"]
            .into_iter()
            .chain(self.dimensions.iter().map(|(_, l)| l.as_str()))
            .collect();
        for e in &mut inner.red.entries {
            let first = e.new.then_some(t - 1);
            e.new = false;
            let base: Vec<(&str, &str)> = names
                .iter()
                .zip(e.key.iter())
                .map(|(n, v)| (*n, v.as_str()))
                .collect();
            let calls = series_labels("traces_spanmetrics_calls_total", &base, None);
            if let Some(ex) = e.value.calls_ex.take() {
                out.exemplars.push((calls.clone(), vec![ex.to_exemplar(t)]));
            }
            out.push(calls, first, t, e.value.calls as f64);
            if let Some(h) = &mut e.value.latency {
                h.emit(
                    "traces_spanmetrics_latency",
                    &base,
                    &self.options.buckets,
                    &mut out,
                    first,
                    t,
                );
            }
            if let Some(n) = &mut e.value.native {
                let labels = series_labels("traces_spanmetrics_latency", &base, None);
                if let Some(ex) = n.last.take() {
                    out.exemplars
                        .push((labels.clone(), vec![ex.to_exemplar(t)]));
                }
                let mut samples = Vec::with_capacity(2);
                if let Some(t0) = first {
                    samples.push(HistogramSample {
                        t: t0,
                        h: Native::default().histogram(),
                    });
                }
                samples.push(HistogramSample {
                    t,
                    h: n.histogram(),
                });
                out.histograms.push((labels, samples));
            }
        }
        if self.options.service_graph.enabled {
            inner.graph.collect(t, cutoff, &mut out);
        }
        self.metrics
            .active_series
            .set((inner.red.len() + inner.graph.series()) as i64);
        out
    }

    /// Writes the current series to the TSDB at the current time. Blocking (WAL I/O).
    pub fn flush(&self) -> Result<(), sextant_storage::StorageError> {
        self.flush_at(now_ms(), false)
    }

    /// Writes a collection at `t` (Unix ms) to the TSDB. Exemplar refusals are not errors.
    pub fn flush_at(&self, t: i64, final_flush: bool) -> Result<(), sextant_storage::StorageError> {
        let c = self.collect_at(t, final_flush);
        let result = self.write(&c);
        if result.is_err() {
            self.metrics.write_failures.inc();
        }
        result
    }

    fn write(&self, c: &Collected) -> Result<(), sextant_storage::StorageError> {
        self.set_metadata();
        if !c.floats.is_empty() {
            let out = self.db.append(&c.floats)?;
            if out.rejected_total() > 0 {
                tracing::warn!(rejected = ?out.rejected, "span metrics samples refused by the TSDB");
            }
        }
        if !c.histograms.is_empty() {
            self.db.append_histograms(&c.histograms)?;
        }
        if !c.exemplars.is_empty() {
            self.db
                .append_exemplars(c.exemplars.iter().map(|(l, e)| (l, e.as_slice())))?;
        }
        Ok(())
    }

    fn set_metadata(&self) {
        let meta = |t: &str, help: &str, unit: &str| MetricMetadata {
            metric_type: t.into(),
            help: help.into(),
            unit: unit.into(),
        };
        for (family, m) in [
            (
                "traces_spanmetrics_calls_total",
                meta("counter", "Spans received, by span dimensions", ""),
            ),
            (
                "traces_spanmetrics_latency",
                meta("histogram", "Span durations, by span dimensions", "seconds"),
            ),
            (
                "traces_service_graph_request_total",
                meta("counter", "Requests between two services", ""),
            ),
            (
                "traces_service_graph_request_failed_total",
                meta("counter", "Failed requests between two services", ""),
            ),
            (
                "traces_service_graph_request_server_seconds",
                meta(
                    "histogram",
                    "Request durations as seen by the server",
                    "seconds",
                ),
            ),
            (
                "traces_service_graph_request_client_seconds",
                meta(
                    "histogram",
                    "Request durations as seen by the client",
                    "seconds",
                ),
            ),
        ] {
            self.db.set_metadata(family, m);
        }
    }
}

/// Flushes `generator` every collection interval on its own thread, until the process exits.
/// Call [`SpanMetrics::flush_at`] with `final_flush = true` on shutdown for the last partial
/// interval.
pub fn spawn_collector(
    generator: Arc<SpanMetrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let every = generator
        .options
        .collection_interval
        .max(Duration::from_millis(100));
    std::thread::Builder::new()
        .name("span-metrics".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            if let Err(e) = generator.flush() {
                tracing::error!(error = %e, "writing span metrics failed; will retry");
            }
        })
}

#[cfg(test)]
mod tests;
