//! The log store's boundary: streams of timestamped lines keyed by label set, and the read
//! interface LogQL evaluates over. A tenant id or a remote segment store is threaded through by
//! implementing [`LogSource`] per tenant / per store, as [`crate::SeriesSource`] is for metrics.
//!
//! Times are nanoseconds since the Unix epoch (Loki's unit).

use crate::{Labels, Matcher, StorageError};

/// One log line with its structured metadata (Loki's non-indexed key/value pairs: trace and span
/// ids, OTLP attributes, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub ts_ns: i64,
    pub line: String,
    /// Sorted by name, names unique.
    pub metadata: Vec<(String, String)>,
}

/// Entries of one stream as pushed (not necessarily sorted by time).
#[derive(Clone, Debug, PartialEq)]
pub struct LogStreamBatch {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

/// Order in which [`LogSource::scan`] yields entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// A literal every line the caller keeps must contain: a pruning hint the store answers from
/// its inverted index. The store may return lines without it (the caller filters again); it
/// must never drop a line that contains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needle {
    pub text: String,
    /// Match ignoring ASCII/Unicode case (from `(?i)` regexes).
    pub case_insensitive: bool,
}

/// What to read: the streams matching every matcher, entries with `start_ns <= ts < end_ns`,
/// in `direction` order across all selected streams, pre-filtered by `needles` (all of them).
#[derive(Clone, Debug)]
pub struct LogQuery<'a> {
    pub matchers: &'a [Matcher],
    pub start_ns: i64,
    pub end_ns: i64,
    pub direction: Direction,
    pub needles: &'a [Needle],
}

/// The read side of the log store.
pub trait LogSource: Send + Sync {
    /// Label sets of the streams matching every matcher with entries in `[start_ns, end_ns)`,
    /// sorted.
    fn streams(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, StorageError>;

    /// Calls `visit` for every entry of the query in `direction` order (ties broken by stream
    /// labels, then arrival order) until it returns `false`.
    fn scan(
        &self,
        query: &LogQuery<'_>,
        visit: &mut dyn FnMut(&Labels, &LogEntry) -> bool,
    ) -> Result<(), StorageError>;

    /// Sorted label names of streams with entries in the range (matching `matchers`, all when
    /// empty).
    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Sorted values of label `name` over such streams.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, StorageError>;
}

mod bloom;
mod codec;
mod dictionary;
mod segment;
mod store;
#[cfg(test)]
mod tests;
mod tokens;
mod wal;
mod words;

pub use store::{
    LogAppendOutcome, LogRejectReason, LogRejection, LogStats, LogStore, LogStoreOptions,
    LogStoreSizes,
};
