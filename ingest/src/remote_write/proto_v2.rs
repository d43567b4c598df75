//! Remote write 2.0 wire types (`io.prometheus.write.v2.Request`), as hand-written prost
//! messages for tests and clients that build requests. The server decodes with its own
//! zero-copy reader (`decode_v2.rs`).

use prost::Message;

pub use super::proto::BucketSpan;

/// The message for `Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request`.
/// `symbols[0]` must be `""`; every `*_ref(s)` is an index into `symbols`.
#[derive(Clone, PartialEq, Message)]
pub struct Request {
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Name/value pairs of symbol indexes, sorted by name.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<Histogram>,
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<Exemplar>,
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<Metadata>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

#[derive(Clone, Copy, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    /// Accepted and ignored (0 = not set).
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

/// `type` is the `MetricType` enum: 0 unspecified, 1 counter, 2 gauge, 3 histogram,
/// 4 gaugehistogram, 5 summary, 6 info, 7 stateset.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Metadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

/// The same message as remote write 1.0's [`super::proto::Histogram`] plus `start_timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(oneof = "super::proto::histogram::Count", tags = "1, 2")]
    pub count: Option<super::proto::histogram::Count>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "super::proto::histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<super::proto::histogram::ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
    /// Accepted and ignored (0 = not set).
    #[prost(int64, tag = "17")]
    pub start_timestamp: i64,
}

impl Histogram {
    /// The same histogram as a remote write 1.0 message (`start_timestamp` dropped).
    pub fn to_v1(&self) -> super::proto::Histogram {
        super::proto::Histogram {
            count: self.count,
            sum: self.sum,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            negative_spans: self.negative_spans.clone(),
            negative_deltas: self.negative_deltas.clone(),
            negative_counts: self.negative_counts.clone(),
            positive_spans: self.positive_spans.clone(),
            positive_deltas: self.positive_deltas.clone(),
            positive_counts: self.positive_counts.clone(),
            reset_hint: self.reset_hint,
            timestamp: self.timestamp,
            custom_values: self.custom_values.clone(),
        }
    }
}
