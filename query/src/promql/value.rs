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
