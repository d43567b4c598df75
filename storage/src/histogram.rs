//! Native histograms: the sparse, exponential-bucket (or custom-bucket) histogram of
//! Prometheus 3.x, in its float form.
//!
//! Integer histograms from remote write are converted to this form on ingest (counts up to
//! 2^53 convert exactly). Bucket counts are absolute, not deltas.

/// A run of consecutive buckets: `offset` empty buckets skipped since the end of the previous
/// span (from bucket index 0 for the first span), then `length` populated buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What the writer said about a counter reset between this histogram and the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// Not known; the reader decides by comparing with the previous histogram.
    #[default]
    Unknown,
    /// A counter reset happened.
    CounterReset,
    /// No counter reset happened.
    NotCounterReset,
    /// The histogram is a gauge: counter resets do not apply.
    Gauge,
}

/// Schema of histograms with custom bucket boundaries (`custom_values`).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A native histogram with float counts.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    /// -4..=8 for exponential buckets (bucket boundaries grow by 2^(2^-schema)), or
    /// [`CUSTOM_BUCKETS_SCHEMA`].
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// Absolute counts, one per bucket covered by `positive_spans`.
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (only with [`CUSTOM_BUCKETS_SCHEMA`]).
    pub custom_values: Vec<f64>,
}

impl FloatHistogram {
    /// True for histograms with custom bucket boundaries.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }
}
