//! Sextant's time-series storage.
//!
//! Writers hand batches of samples to [`Db::append`], which makes them durable in the
//! write-ahead log before they reach the in-memory head. Readers see the data through the
//! narrow [`SeriesSource`] trait, so the query engine never learns where samples live (head
//! today; memory-mapped blocks and remote block stores later).
//!
//! This crate knows nothing of HTTP, protobuf or PromQL.

#![deny(unsafe_code)]

mod block;
mod chunk;
mod db;
pub mod exemplar;
mod head;

pub mod histogram;

pub mod labels;
pub mod logs;
pub mod matcher;
mod metrics;
mod mmap;
mod postings;
mod series_data;
pub mod traces;
mod varint;
mod wal;

pub use block::{BlockMeta, BlockStats, Compaction};

/// The block column codec, exposed for benchmarks and tools: `encode` appends one chunk's bytes,
/// `decode` appends its samples and returns `None` for bytes that are not a valid chunk.
pub mod encoding {
    pub use crate::block::codec::{decode, encode};
}
pub use db::{
    AppendOutcome, Db, DbOptions, FsyncPolicy, HeadStats, LazySeries, LoadScratch,
    MaintenanceReport, MetricMetadata, RejectReason, TsdbStatus,
};
pub use exemplar::{Exemplar, ExemplarOutcome, ExemplarSeries, MAX_EXEMPLAR_LABEL_CHARS};
pub use histogram::{CounterResetHint, FloatHistogram, Span};
pub use labels::{Label, Labels, SeriesLabels, METRIC_NAME};
pub use matcher::{MatchOp, Matcher};
pub use metrics::StorageMetrics;

/// The bit pattern Prometheus uses to mark a series as stale: a NaN that no computation produces.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is the staleness marker (and not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: milliseconds since the Unix epoch and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// One native histogram sample: milliseconds since the Unix epoch and a histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSample {
    pub t: i64,
    pub h: FloatHistogram,
}

/// A series and its samples inside a queried time range, sorted by time.
///
/// A series may switch between float and histogram samples over time; the two lists never
/// share a timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramSample>,
}

/// The read side of storage as the query engine and HTTP API see it.
///
/// Time bounds are inclusive milliseconds. Implementations return series sorted by labels.
pub trait SeriesSource: Send + Sync {
    /// Series matching every matcher, with their samples in `[mint, maxt]`. Series that have
    /// no sample in the range are left out.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError>;

    /// [`SeriesSource::select`] with the samples left undecoded: matching series that may have
    /// samples in the range, sorted by labels, each decoded on demand by [`LazySeries::load`]
    /// (which may find none). `None` when this source only reads eagerly.
    fn select_lazy(
        &self,
        _matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Option<Vec<LazySeries>>, StorageError> {
        Ok(None)
    }

    /// Sorted label names of series that match (all series when `matchers` is empty) and have
    /// data in the range.
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Sorted distinct values of label `name` over matching series with data in the range.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Label sets of matching series with data in the range, sorted.
    fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, StorageError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corruption {
        path: std::path::PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("storage is closed")]
    Closed,
    /// The operation needs a writable on-disk database (in-memory or read-only here).
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl StorageError {
    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}
