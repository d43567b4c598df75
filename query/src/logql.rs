//! LogQL: a `nom` parser and an evaluator over [`sextant_storage::logs::LogSource`], answering
//! log queries (streams) and metric queries (vectors, matrices) as Loki 3 does.
//!
//! Entry points: [`parse`], [`LogqlEngine::query_range`], [`LogqlEngine::query_instant`],
//! [`LogqlEngine::format`]. Times are nanoseconds since the Unix epoch throughout.

pub mod ast;
mod eval;
pub mod needles;
mod parser;
pub mod parsers;
mod pipeline;
mod printer;
pub mod template;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_stages;
#[cfg(test)]
mod tests_store;

use std::time::{Duration, Instant};

use sextant_storage::logs::{Direction, LogSource};
use sextant_storage::{Labels, StorageError};

pub use ast::LogqlExpr;
pub use parser::parse;

/// Why a query failed. [`LogqlError::http_status`] gives the status Loki answers with.
#[derive(Debug, thiserror::Error)]
pub enum LogqlError {
    /// A syntax or type error. `line`/`col` are 1-based; both 0 when the error has no
    /// position (Loki then prints `parse error : msg`).
    #[error("{}", parse_error_text(*line, *col, msg))]
    Parse {
        line: usize,
        col: usize,
        msg: String,
    },
    /// A valid query that cannot run as asked (instant log query, bad step, ...).
    #[error("{0}")]
    BadRequest(String),
    /// A configured limit was hit (entries, series).
    #[error("{0}")]
    Limit(String),
    /// A metric query produced series carrying `__error__`.
    #[error("{0}")]
    Pipeline(String),
    #[error("query timed out")]
    Timeout,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// `11000` → `11,000` (Loki's wording of the resolution limit).
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn parse_error_text(line: usize, col: usize, msg: &str) -> String {
    if line == 0 && col == 0 {
        format!("parse error : {msg}")
    } else {
        format!("parse error at line {line}, col {col}: {msg}")
    }
}

impl LogqlError {
    /// The HTTP status Loki uses for this error (400 for client errors, 504 for timeouts,
    /// 500 for storage failures).
    pub fn http_status(&self) -> u16 {
        match self {
            LogqlError::Parse { .. }
            | LogqlError::BadRequest(_)
            | LogqlError::Limit(_)
            | LogqlError::Pipeline(_) => 400,
            LogqlError::Timeout => 504,
            LogqlError::Storage(_) => 500,
        }
    }
}

/// Engine limits (Loki's defaults).
#[derive(Clone, Debug)]
pub struct LogqlOptions {
    /// Largest `limit` a log query may ask for (`max_entries_limit_per_query`).
    pub max_entries: usize,
    /// Most series a metric query may return (`max_query_series`).
    pub max_series: usize,
    /// Wall-clock budget of one query.
    pub timeout: Duration,
    /// Most steps of a range query (Loki: 11,000 points per series).
    pub max_points: usize,
}

impl Default for LogqlOptions {
    fn default() -> Self {
        LogqlOptions {
            max_entries: 5000,
            max_series: 500,
            timeout: Duration::from_secs(120),
            max_points: 11_000,
        }
    }
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum LogqlResult {
    Streams(Vec<StreamResult>),
    Matrix(Vec<MetricSeries>),
    Vector(Vec<MetricSample>),
    /// `(ts_ns, value)`.
    Scalar(i64, f64),
}

/// One result stream: entries sharing a full label set.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamResult {
    /// Stream labels, structured metadata and parsed labels together (Loki's `stream`
    /// without `categorize-labels`); entries are grouped by this set.
    pub labels: Labels,
    /// Only the stream labels (after `drop`/`keep`/`label_format`).
    pub stream_labels: Labels,
    /// In the query's direction.
    pub entries: Vec<ResultEntry>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResultEntry {
    pub ts_ns: i64,
    /// The line after the pipeline (`line_format` applied).
    pub line: String,
    /// Structured metadata still present after the pipeline, sorted by name.
    pub metadata: Vec<(String, String)>,
    /// Labels added by parsers and formatters (incl. `__error__`), sorted by name.
    pub parsed: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricSeries {
    pub labels: Labels,
    /// `(ts_ns, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricSample {
    pub labels: Labels,
    pub ts_ns: i64,
    pub value: f64,
}

/// Figures for Loki's `stats` block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogqlStats {
    /// Bytes of line text read from the store (before filtering).
    pub bytes_processed: u64,
    /// Lines read from the store (before filtering).
    pub lines_processed: u64,
    /// Entries in the result (log queries).
    pub entries_returned: u64,
    /// Distinct streams the store yielded entries from (our stand-in for chunks touched).
    pub streams_touched: u64,
    /// Series in the result (metric queries).
    pub series_returned: u64,
    /// Wall time of the query, seconds.
    pub exec_time_s: f64,
}

/// Evaluates LogQL over a [`LogSource`]. Cheap to share; holds only limits.
#[derive(Clone, Debug, Default)]
pub struct LogqlEngine {
    opts: LogqlOptions,
}

impl LogqlEngine {
    pub fn new(opts: LogqlOptions) -> Self {
        LogqlEngine { opts }
    }

    pub fn options(&self) -> &LogqlOptions {
        &self.opts
    }

    /// Range query: log queries → Streams (at most `limit` entries in `direction` order
    /// across streams, `start_ns <= ts < end_ns`); metric queries → Matrix evaluated at
    /// start, start+step, … ≤ end. `interval_ns > 0` thins log results per stream.
    #[allow(clippy::too_many_arguments)]
    pub fn query_range(
        &self,
        src: &dyn LogSource,
        q: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        interval_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<LogqlResult, LogqlError> {
        self.query_range_with_stats(
            src,
            q,
            start_ns,
            end_ns,
            step_ns,
            interval_ns,
            limit,
            direction,
        )
        .map(|(r, _)| r)
    }

    /// [`LogqlEngine::query_range`] with the statistics for Loki's `stats` block.
    #[allow(clippy::too_many_arguments)]
    pub fn query_range_with_stats(
        &self,
        src: &dyn LogSource,
        q: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        interval_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<(LogqlResult, LogqlStats), LogqlError> {
        let expr = parse(q)?;
        if end_ns < start_ns {
            return Err(LogqlError::BadRequest(
                "end timestamp must not be before or equal to start time".into(),
            ));
        }
        let mut ev = eval::Evaluator {
            src,
            opts: &self.opts,
            started: Instant::now(),
            stats: LogqlStats::default(),
        };
        let result = match &expr {
            LogqlExpr::Log(log) => {
                self.check_limit(limit)?;
                LogqlResult::Streams(ev.log_query(
                    log,
                    start_ns,
                    end_ns,
                    interval_ns,
                    limit,
                    direction,
                )?)
            }
            LogqlExpr::Metric(m) => {
                if step_ns <= 0 {
                    return Err(LogqlError::BadRequest(
                        "zero or negative query resolution step widths are not accepted. Try a \
                         positive integer"
                            .into(),
                    ));
                }
                let points = (i128::from(end_ns) - i128::from(start_ns)) / i128::from(step_ns) + 1;
                if points > self.opts.max_points as i128 {
                    return Err(LogqlError::BadRequest(format!(
                        "exceeded maximum resolution of {} points per timeseries. Try decreasing \
                         the query resolution (?step=XX)",
                        thousands(self.opts.max_points)
                    )));
                }
                // `points` is at most `max_points`, and every step lies in [start, end].
                let steps: Vec<i64> = (0..points as i64).map(|i| start_ns + i * step_ns).collect();
                let val = ev.metric(m, &steps)?;
                let matrix = eval::to_matrix(&steps, val);
                if matrix.len() > self.opts.max_series {
                    return Err(LogqlError::Limit(format!(
                        "maximum number of series ({}) reached for a single query; consider \
                         reducing query cardinality by adding more filters or aggregations",
                        self.opts.max_series
                    )));
                }
                ev.stats.series_returned = matrix.len() as u64;
                LogqlResult::Matrix(matrix)
            }
        };
        ev.stats.exec_time_s = ev.started.elapsed().as_secs_f64();
        Ok((result, ev.stats))
    }

    /// Instant query: metric queries → Vector/Scalar; log queries → `BadRequest` (Loki
    /// answers 400).
    pub fn query_instant(
        &self,
        src: &dyn LogSource,
        q: &str,
        ts_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<LogqlResult, LogqlError> {
        self.query_instant_with_stats(src, q, ts_ns, limit, direction)
            .map(|(r, _)| r)
    }

    /// [`LogqlEngine::query_instant`] with statistics.
    pub fn query_instant_with_stats(
        &self,
        src: &dyn LogSource,
        q: &str,
        ts_ns: i64,
        _limit: usize,
        _direction: Direction,
    ) -> Result<(LogqlResult, LogqlStats), LogqlError> {
        let expr = parse(q)?;
        let LogqlExpr::Metric(m) = &expr else {
            return Err(LogqlError::BadRequest(
                "log queries are not supported as an instant query type, please change your \
                 query to a range query type"
                    .into(),
            ));
        };
        let mut ev = eval::Evaluator {
            src,
            opts: &self.opts,
            started: Instant::now(),
            stats: LogqlStats::default(),
        };
        let result = match ev.metric(m, &[ts_ns])? {
            eval::Val::Scalar(v) => LogqlResult::Scalar(ts_ns, v),
            eval::Val::Vectors(mut vs) => {
                let vec = vs.pop().unwrap_or_default();
                ev.stats.series_returned = vec.len() as u64;
                LogqlResult::Vector(eval::to_vector(ts_ns, vec))
            }
        };
        ev.stats.exec_time_s = ev.started.elapsed().as_secs_f64();
        Ok((result, ev.stats))
    }

    /// The canonical text of a query (for `/loki/api/v1/format_query`).
    pub fn format(q: &str) -> Result<String, LogqlError> {
        Ok(parse(q)?.to_string())
    }

    fn check_limit(&self, limit: usize) -> Result<(), LogqlError> {
        if limit > self.opts.max_entries {
            return Err(LogqlError::Limit(format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({} > {})",
                limit, self.opts.max_entries
            )));
        }
        Ok(())
    }
}
