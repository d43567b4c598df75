//! [`LogqlRunner`] over the LogQL engine: its results and statistics in the API's model.

use sextant_storage::logs::{Direction, LogSource};

use super::shape::{LokiEntry, LokiSample, LokiSeries, LokiStream, QueryData, QueryStats};
use super::{LogqlRunner, LokiError, RangeRequest};
use crate::logql::{LogqlEngine, LogqlError, LogqlResult, LogqlStats};

fn error(e: LogqlError) -> LokiError {
    LokiError {
        status: e.http_status(),
        message: e.to_string(),
    }
}

fn stats(s: &LogqlStats) -> QueryStats {
    QueryStats {
        bytes_processed: s.bytes_processed,
        lines_processed: s.lines_processed,
        entries_returned: s.entries_returned,
        chunks: s.streams_touched,
        exec_time_s: s.exec_time_s,
    }
}

fn data(r: LogqlResult) -> QueryData {
    match r {
        LogqlResult::Streams(streams) => QueryData::Streams(
            streams
                .into_iter()
                .map(|s| LokiStream {
                    labels: s.labels,
                    stream_labels: s.stream_labels,
                    entries: s
                        .entries
                        .into_iter()
                        .map(|e| LokiEntry {
                            ts_ns: e.ts_ns,
                            line: e.line,
                            metadata: e.metadata,
                            parsed: e.parsed,
                        })
                        .collect(),
                })
                .collect(),
        ),
        LogqlResult::Matrix(series) => QueryData::Matrix(
            series
                .into_iter()
                .map(|s| LokiSeries {
                    labels: s.labels,
                    points: s.points,
                })
                .collect(),
        ),
        LogqlResult::Vector(samples) => QueryData::Vector(
            samples
                .into_iter()
                .map(|s| LokiSample {
                    labels: s.labels,
                    ts_ns: s.ts_ns,
                    value: s.value,
                })
                .collect(),
        ),
        LogqlResult::Scalar(t, v) => QueryData::Scalar(t, v),
    }
}

impl LogqlRunner for LogqlEngine {
    fn query_range(
        &self,
        src: &dyn LogSource,
        req: &RangeRequest,
    ) -> Result<(QueryData, QueryStats), LokiError> {
        let (r, s) = self
            .query_range_with_stats(
                src,
                &req.query,
                req.start_ns,
                req.end_ns,
                req.step_ns,
                req.interval_ns,
                req.limit,
                req.direction,
            )
            .map_err(error)?;
        Ok((data(r), stats(&s)))
    }

    fn query_instant(
        &self,
        src: &dyn LogSource,
        query: &str,
        ts_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<(QueryData, QueryStats), LokiError> {
        let (r, s) = self
            .query_instant_with_stats(src, query, ts_ns, limit, direction)
            .map_err(error)?;
        Ok((data(r), stats(&s)))
    }

    fn format(&self, query: &str) -> Result<String, LokiError> {
        LogqlEngine::format(query).map_err(error)
    }
}
