//! Values produced by evaluating PromQL, and the errors and annotations a query can return.

use sextant_storage::{FloatHistogram, Labels};

/// One point of a vector: labels, timestamp (ms) and value.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: i64,
    /// The float value (0 for histogram samples).
    pub v: f64,
    /// Set for native histogram samples.
    pub h: Option<FloatHistogram>,
}

/// One series of a matrix: labels and its points sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    /// `(timestamp ms, value)`.
    pub points: Vec<(i64, f64)>,
    /// `(timestamp ms, histogram)`, sorted by time.
    pub histograms: Vec<(i64, FloatHistogram)>,
}

/// A query's result, shaped as Prometheus's `resultType`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `(timestamp ms, value)`.
    Scalar(i64, f64),
    /// `(timestamp ms, string)`.
    String(i64, String),
    Vector(Vec<VectorSample>),
    /// Range query results, and instant queries whose expression is a range vector. Sorted by
    /// labels.
    Matrix(Vec<RangeSeries>),
}

/// The outcome of a query: its value and the annotations raised while evaluating it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    /// Each formatted as `PromQL warning: <message> (<line>:<col>)`.
    pub warnings: Vec<String>,
    /// Each formatted as `PromQL info: <message> (<line>:<col>)`.
    pub infos: Vec<String>,
    /// Sample counts and timings, reported by the HTTP API with `stats=…`.
    pub stats: QueryStats,
}

/// Statistics of one evaluation, counted by Prometheus' rules (`util/stats`): every float
/// sample a selector loads counts 1 and every native histogram counts its size in float
/// samples ([`histogram_size`]), attributed to the step that loaded it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// Prometheus' `totalQueryableSamples`.
    pub total_samples: i64,
    /// Prometheus' `totalQueryableSamplesPerStep`: `(step timestamp ms, samples)` for every
    /// step of the query (one for instant queries).
    pub per_step: Vec<(i64, i64)>,
    /// The most samples held in memory at once (`peakSamples`), the figure the
    /// `max_samples` limit applies to.
    pub peak_samples: usize,
    /// Fetching selector data from storage (`queryPreparationTime`).
    pub prepare_time: std::time::Duration,
    /// Evaluating the expression (`innerEvalTime`).
    pub inner_eval_time: std::time::Duration,
    /// Assembling and sorting the result (`resultSortTime`).
    pub result_sort_time: std::time::Duration,
    /// Waiting for an evaluation thread (`execQueueTime`), set by whoever queued the query.
    pub exec_queue_time: std::time::Duration,
}

/// The weight of one native histogram sample in sample counts and limits, as Prometheus
/// computes it for a 64-bit `FloatHistogram` plus its timestamp: a fixed 168-byte struct and 8
/// bytes per span, bucket and custom bound, plus 8 bytes of timestamp, in units of the
/// 16 bytes of a float sample (rounded down).
pub fn histogram_size(h: &FloatHistogram) -> usize {
    let elems = h.positive_spans.len()
        + h.negative_spans.len()
        + h.positive_buckets.len()
        + h.negative_buckets.len()
        + h.custom_values.len();
    (168 + 8 * elems + 8) / 16
}

/// Why a query failed. Each kind maps to one Prometheus `errorType` at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Syntax or type errors: `bad_data`, 400.
    #[error("{0}")]
    Parse(#[from] super::ParseError),
    /// Invalid arguments found while evaluating (e.g. a bad `label_replace` regex): `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// The query ran past its deadline: `timeout`, 503.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// A limit such as the maximum number of samples: `execution`, 422.
    #[error("{0}")]
    Limit(String),
    /// Other evaluation failures (many-to-many matching, duplicate series): `execution`, 422.
    #[error("{0}")]
    Execution(String),
    #[error("{0}")]
    Storage(#[from] sextant_storage::StorageError),
}
