//! Loki's JSON: the query envelope (`{"status":"success","data":{"resultType",…,"result",
//! "stats"}}`), streams with nanosecond-string timestamps (and, with `categorize-labels`,
//! 3-tuples carrying structured metadata and parsed labels), Prometheus-style matrices and
//! vectors with float-second timestamps, the `stats` block, and Loki's error body.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sextant_storage::logs::Direction;
use sextant_storage::Labels;

use super::super::response::format_value;

/// A query answer in Loki's model, independent of the engine's own types.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryData {
    Streams(Vec<LokiStream>),
    Matrix(Vec<LokiSeries>),
    Vector(Vec<LokiSample>),
    /// `(ts_ns, value)`.
    Scalar(i64, f64),
}

/// Entries sharing a full label set (stream labels, structured metadata, parsed labels).
#[derive(Clone, Debug, PartialEq)]
pub struct LokiStream {
    /// Everything together: the `stream` object without `categorize-labels`.
    pub labels: Labels,
    /// Only the stream's own labels: the `stream` object with `categorize-labels`.
    pub stream_labels: Labels,
    /// In the query's direction.
    pub entries: Vec<LokiEntry>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LokiEntry {
    pub ts_ns: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
    pub parsed: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LokiSeries {
    pub labels: Labels,
    /// `(ts_ns, value)`.
    pub points: Vec<(i64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LokiSample {
    pub labels: Labels,
    pub ts_ns: i64,
    pub value: f64,
}

/// Figures for the `stats` block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryStats {
    pub bytes_processed: u64,
    pub lines_processed: u64,
    pub entries_returned: u64,
    pub chunks: u64,
    pub exec_time_s: f64,
}

/// Loki's error body `{"code":…,"status":"error","message":…}`.
pub fn error_body(code: u16, message: &str) -> Value {
    json!({"code": code, "status": "error", "message": message})
}

pub fn labels_object(labels: &Labels) -> Value {
    let mut m = Map::new();
    for l in labels {
        m.insert(l.name.clone(), Value::String(l.value.clone()));
    }
    Value::Object(m)
}

fn pairs_object(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Seconds as a JSON number with up to nanosecond precision (Loki/Prometheus sample times).
pub fn seconds(ts_ns: i64) -> Value {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let nanos = ts_ns.rem_euclid(1_000_000_000);
    let text = if nanos == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{nanos:09}")
            .trim_end_matches('0')
            .to_string()
    };
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn sample(ts_ns: i64, v: f64) -> Value {
    json!([seconds(ts_ns), format_value(v)])
}

/// The `data` object of a query response.
pub fn query_data(
    data: &QueryData,
    stats: &QueryStats,
    categorize: bool,
    direction: Direction,
) -> Value {
    let (kind, result) = match data {
        QueryData::Streams(streams) => ("streams", streams_json(streams, categorize, direction)),
        QueryData::Matrix(series) => (
            "matrix",
            Value::Array(
                series
                    .iter()
                    .map(|s| {
                        json!({
                            "metric": labels_object(&s.labels),
                            "values": s.points.iter().map(|&(t, v)| sample(t, v)).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            ),
        ),
        QueryData::Vector(samples) => (
            "vector",
            Value::Array(
                samples
                    .iter()
                    .map(|s| json!({"metric": labels_object(&s.labels), "value": sample(s.ts_ns, s.value)}))
                    .collect(),
            ),
        ),
        QueryData::Scalar(t, v) => ("scalar", sample(*t, *v)),
    };
    let mut data = json!({"resultType": kind, "result": result, "stats": stats_json(stats)});
    if categorize && matches!(kind, "streams") {
        data["encodingFlags"] = json!(["categorize-labels"]);
    }
    data
}

fn streams_json(streams: &[LokiStream], categorize: bool, direction: Direction) -> Value {
    if !categorize {
        return Value::Array(
            streams
                .iter()
                .map(|s| {
                    json!({
                        "stream": labels_object(&s.labels),
                        "values": s.entries.iter().map(|e| json!([e.ts_ns.to_string(), e.line])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        );
    }
    // With categorize-labels, Loki groups by the stream's own labels; entries of result
    // streams that differ only in metadata or parsed labels are merged in query order.
    let mut groups: BTreeMap<&Labels, Vec<&LokiEntry>> = BTreeMap::new();
    for s in streams {
        groups
            .entry(&s.stream_labels)
            .or_default()
            .extend(&s.entries);
    }
    Value::Array(
        groups
            .into_iter()
            .map(|(labels, mut entries)| {
                match direction {
                    Direction::Forward => entries.sort_by_key(|e| e.ts_ns),
                    Direction::Backward => entries.sort_by_key(|e| std::cmp::Reverse(e.ts_ns)),
                }
                let values: Vec<Value> = entries
                    .iter()
                    .map(|e| {
                        let mut cat = Map::new();
                        if !e.metadata.is_empty() {
                            cat.insert("structuredMetadata".into(), pairs_object(&e.metadata));
                        }
                        if !e.parsed.is_empty() {
                            cat.insert("parsed".into(), pairs_object(&e.parsed));
                        }
                        json!([e.ts_ns.to_string(), e.line, Value::Object(cat)])
                    })
                    .collect();
                json!({"stream": labels_object(labels), "values": values})
            })
            .collect(),
    )
}

fn cache_stats() -> Value {
    json!({
        "entriesFound": 0, "entriesRequested": 0, "entriesStored": 0, "bytesReceived": 0,
        "bytesSent": 0, "requests": 0, "downloadTime": 0, "queryLengthServed": 0
    })
}

fn store_stats(s: &QueryStats) -> Value {
    json!({
        "totalChunksRef": s.chunks,
        "totalChunksDownloaded": s.chunks,
        "chunksDownloadTime": 0,
        "queryReferencedStructuredMetadata": false,
        "chunk": {
            "headChunkBytes": 0,
            "headChunkLines": 0,
            "decompressedBytes": s.bytes_processed,
            "decompressedLines": s.lines_processed,
            "compressedBytes": 0,
            "totalDuplicates": 0,
            "postFilterLines": s.entries_returned,
            "headChunkStructuredMetadataBytes": 0,
            "decompressedStructuredMetadataBytes": 0
        },
        "chunkRefsFetchTime": 0,
        "congestionControlLatency": 0,
        "pipelineWrapperFilteredLines": 0
    })
}

/// Loki's `stats` block; our figures go where the querier's store would report them.
pub fn stats_json(s: &QueryStats) -> Value {
    let per_sec = |n: u64| {
        if s.exec_time_s > 0.0 {
            (n as f64 / s.exec_time_s) as u64
        } else {
            0
        }
    };
    let empty = QueryStats::default();
    json!({
        "summary": {
            "bytesProcessedPerSecond": per_sec(s.bytes_processed),
            "linesProcessedPerSecond": per_sec(s.lines_processed),
            "totalBytesProcessed": s.bytes_processed,
            "totalLinesProcessed": s.lines_processed,
            "execTime": s.exec_time_s,
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": s.entries_returned,
            "splits": 0,
            "shards": 0,
            "totalPostFilterLines": s.entries_returned,
            "totalChunksRef": s.chunks,
            "totalChunksDownloaded": s.chunks,
            "totalStructuredMetadataBytesProcessed": 0
        },
        "querier": {"store": store_stats(s)},
        "ingester": {
            "totalReached": 0, "totalChunksMatched": 0, "totalBatches": 0, "totalLinesSent": 0,
            "store": store_stats(&empty)
        },
        "cache": {
            "chunk": cache_stats(), "index": cache_stats(), "result": cache_stats(),
            "statsResult": cache_stats(), "volumeResult": cache_stats(),
            "seriesResult": cache_stats(), "labelResult": cache_stats(),
            "instantMetricResult": cache_stats()
        },
        "index": {"totalChunks": 0, "postFilterChunks": 0, "shardsDuration": 0}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64, line: &str, meta: &[(&str, &str)]) -> LokiEntry {
        LokiEntry {
            ts_ns: ts,
            line: line.into(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            parsed: Vec::new(),
        }
    }

    fn two_streams() -> Vec<LokiStream> {
        let stream = Labels::from_pairs([("job", "a")]);
        vec![
            LokiStream {
                labels: Labels::from_pairs([("job", "a"), ("trace_id", "t1")]),
                stream_labels: stream.clone(),
                entries: vec![entry(3, "third", &[("trace_id", "t1")])],
            },
            LokiStream {
                labels: stream.clone(),
                stream_labels: stream,
                entries: vec![entry(2, "second", &[]), entry(1, "first", &[])],
            },
        ]
    }

    #[test]
    fn streams_plain_use_full_labels_and_string_nanoseconds() {
        let d = query_data(
            &QueryData::Streams(two_streams()),
            &QueryStats::default(),
            false,
            Direction::Backward,
        );
        assert_eq!(d["resultType"], "streams");
        assert!(d.get("encodingFlags").is_none());
        assert_eq!(
            d["result"][0]["stream"],
            json!({"job": "a", "trace_id": "t1"})
        );
        assert_eq!(d["result"][0]["values"], json!([["3", "third"]]));
        assert_eq!(d["result"][1]["values"][1], json!(["1", "first"]));
        assert_eq!(d["stats"]["summary"]["totalEntriesReturned"], 0);
    }

    #[test]
    fn categorize_labels_groups_by_stream_and_adds_3_tuples() {
        let d = query_data(
            &QueryData::Streams(two_streams()),
            &QueryStats::default(),
            true,
            Direction::Backward,
        );
        assert_eq!(d["encodingFlags"], json!(["categorize-labels"]));
        let result = d["result"].as_array().unwrap();
        assert_eq!(result.len(), 1);
        assert_eq!(result[0]["stream"], json!({"job": "a"}));
        assert_eq!(
            result[0]["values"],
            json!([
                ["3", "third", {"structuredMetadata": {"trace_id": "t1"}}],
                ["2", "second", {}],
                ["1", "first", {}]
            ])
        );
    }

    #[test]
    fn metric_shapes_use_float_seconds_and_string_values() {
        let labels = Labels::from_pairs([("level", "info")]);
        let d = query_data(
            &QueryData::Matrix(vec![LokiSeries {
                labels: labels.clone(),
                points: vec![(1_500_000_000, 2.0), (3_000_000_000, 0.25)],
            }]),
            &QueryStats::default(),
            true,
            Direction::Backward,
        );
        assert_eq!(d["resultType"], "matrix");
        assert!(d.get("encodingFlags").is_none());
        assert_eq!(
            d["result"][0],
            json!({"metric": {"level": "info"}, "values": [[1.5, "2"], [3, "0.25"]]})
        );
        let v = query_data(
            &QueryData::Vector(vec![LokiSample {
                labels: Labels::empty(),
                ts_ns: 1_714_557_600_123_000_000,
                value: 2.0,
            }]),
            &QueryStats::default(),
            false,
            Direction::Backward,
        );
        assert_eq!(v["result"][0]["value"], json!([1714557600.123, "2"]));
        let s = query_data(
            &QueryData::Scalar(0, f64::NAN),
            &QueryStats::default(),
            false,
            Direction::Backward,
        );
        assert_eq!(s["result"], json!([0, "NaN"]));
    }

    #[test]
    fn stats_summary_rates() {
        let s = stats_json(&QueryStats {
            bytes_processed: 1000,
            lines_processed: 10,
            entries_returned: 3,
            chunks: 2,
            exec_time_s: 0.5,
        });
        assert_eq!(s["summary"]["bytesProcessedPerSecond"], 2000);
        assert_eq!(s["summary"]["totalLinesProcessed"], 10);
        assert_eq!(s["querier"]["store"]["totalChunksRef"], 2);
    }
}
