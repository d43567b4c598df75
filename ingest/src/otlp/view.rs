//! A borrowed view of an `ExportMetricsServiceRequest`: only the fields the conversion uses,
//! with strings and byte fields borrowed from wherever the request lives — the raw protobuf
//! body ([`super::wire::decode`], no per-string allocation) or decoded prost messages
//! ([`RequestView::from_proto`], for OTLP/gRPC and OTLP/JSON). Scopes are flattened: a
//! resource's metrics are those of all its scopes, in order.

use std::borrow::Cow;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point, Exemplar,
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
};

/// The request's resources, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestView<'a> {
    pub resources: Vec<ResourceView<'a>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceView<'a> {
    pub attributes: Vec<Attr<'a>>,
    /// The metrics of every scope of the resource.
    pub metrics: Vec<MetricView<'a>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricView<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub unit: &'a str,
    pub data: Option<DataView<'a>>,
}

/// A metric's data; `temporality` is the raw `AggregationTemporality` number.
#[derive(Clone, Debug, PartialEq)]
pub enum DataView<'a> {
    Gauge(Vec<NumberPoint<'a>>),
    Sum {
        points: Vec<NumberPoint<'a>>,
        temporality: i32,
        monotonic: bool,
    },
    Histogram {
        points: Vec<HistogramPoint<'a>>,
        temporality: i32,
    },
    Exponential {
        points: Vec<ExpPoint<'a>>,
        temporality: i32,
    },
    Summary(Vec<SummaryPoint<'a>>),
}

impl DataView<'_> {
    /// Number of data points.
    pub fn len(&self) -> usize {
        match self {
            DataView::Gauge(p) | DataView::Sum { points: p, .. } => p.len(),
            DataView::Histogram { points, .. } => points.len(),
            DataView::Exponential { points, .. } => points.len(),
            DataView::Summary(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An attribute (`KeyValue`).
#[derive(Clone, Debug, PartialEq)]
pub struct Attr<'a> {
    pub key: &'a str,
    pub value: AttrValue<'a>,
}

/// An attribute value (`AnyValue`); arrays and key-value lists are kept as prost values.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue<'a> {
    Absent,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Complex(Cow<'a, any_value::Value>),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NumberPoint<'a> {
    pub attributes: Vec<Attr<'a>>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    /// `as_double`, or `as_int` as a float; `None` when neither is set.
    pub value: Option<f64>,
    pub flags: u32,
    pub exemplars: Vec<ExemplarView<'a>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramPoint<'a> {
    pub attributes: Vec<Attr<'a>>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: Option<f64>,
    pub bucket_counts: Cow<'a, [u64]>,
    pub explicit_bounds: Cow<'a, [f64]>,
    pub flags: u32,
    pub exemplars: Vec<ExemplarView<'a>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExpPoint<'a> {
    pub attributes: Vec<Attr<'a>>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: Option<f64>,
    pub scale: i32,
    pub zero_count: u64,
    pub zero_threshold: f64,
    pub positive: Option<BucketsView<'a>>,
    pub negative: Option<BucketsView<'a>>,
    pub flags: u32,
    pub exemplars: Vec<ExemplarView<'a>>,
}

/// Dense exponential buckets: `offset` and one count per bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketsView<'a> {
    pub offset: i32,
    pub bucket_counts: Cow<'a, [u64]>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SummaryPoint<'a> {
    pub attributes: Vec<Attr<'a>>,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: f64,
    /// (quantile, value) pairs.
    pub quantiles: Vec<(f64, f64)>,
    pub flags: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExemplarView<'a> {
    pub filtered_attributes: Vec<Attr<'a>>,
    pub time_unix_nano: u64,
    /// `as_double`, or `as_int` as a float; `None` when neither is set.
    pub value: Option<f64>,
    pub span_id: &'a [u8],
    pub trace_id: &'a [u8],
}

impl<'a> RequestView<'a> {
    /// A view of decoded prost messages (allocates the view's vectors, copies no strings).
    pub fn from_proto(req: &'a ExportMetricsServiceRequest) -> RequestView<'a> {
        RequestView {
            resources: req
                .resource_metrics
                .iter()
                .map(|rm| ResourceView {
                    attributes: rm
                        .resource
                        .as_ref()
                        .map_or_else(Vec::new, |r| attrs(&r.attributes)),
                    metrics: rm
                        .scope_metrics
                        .iter()
                        .flat_map(|sm| &sm.metrics)
                        .map(metric)
                        .collect(),
                })
                .collect(),
        }
    }
}

fn attrs(kvs: &[KeyValue]) -> Vec<Attr<'_>> {
    kvs.iter()
        .map(|kv| Attr {
            key: &kv.key,
            value: match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                None => AttrValue::Absent,
                Some(any_value::Value::StringValue(s)) => AttrValue::Str(s),
                Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
                Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
                Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
                Some(any_value::Value::BytesValue(b)) => AttrValue::Bytes(b),
                Some(other) => AttrValue::Complex(Cow::Borrowed(other)),
            },
        })
        .collect()
}

fn metric(m: &Metric) -> MetricView<'_> {
    MetricView {
        name: &m.name,
        description: &m.description,
        unit: &m.unit,
        data: m.data.as_ref().map(|d| match d {
            Data::Gauge(g) => DataView::Gauge(g.data_points.iter().map(number).collect()),
            Data::Sum(s) => DataView::Sum {
                points: s.data_points.iter().map(number).collect(),
                temporality: s.aggregation_temporality,
                monotonic: s.is_monotonic,
            },
            Data::Histogram(h) => DataView::Histogram {
                points: h.data_points.iter().map(histogram).collect(),
                temporality: h.aggregation_temporality,
            },
            Data::ExponentialHistogram(h) => DataView::Exponential {
                points: h.data_points.iter().map(ExpPoint::from_proto).collect(),
                temporality: h.aggregation_temporality,
            },
            Data::Summary(s) => DataView::Summary(s.data_points.iter().map(summary).collect()),
        }),
    }
}

fn number(dp: &NumberDataPoint) -> NumberPoint<'_> {
    NumberPoint {
        attributes: attrs(&dp.attributes),
        start_time_unix_nano: dp.start_time_unix_nano,
        time_unix_nano: dp.time_unix_nano,
        value: dp.value.map(|v| match v {
            number_data_point::Value::AsDouble(v) => v,
            number_data_point::Value::AsInt(v) => v as f64,
        }),
        flags: dp.flags,
        exemplars: dp.exemplars.iter().map(exemplar_view).collect(),
    }
}

fn histogram(dp: &HistogramDataPoint) -> HistogramPoint<'_> {
    HistogramPoint {
        attributes: attrs(&dp.attributes),
        start_time_unix_nano: dp.start_time_unix_nano,
        time_unix_nano: dp.time_unix_nano,
        count: dp.count,
        sum: dp.sum,
        bucket_counts: Cow::Borrowed(&dp.bucket_counts),
        explicit_bounds: Cow::Borrowed(&dp.explicit_bounds),
        flags: dp.flags,
        exemplars: dp.exemplars.iter().map(exemplar_view).collect(),
    }
}

impl<'a> ExpPoint<'a> {
    pub fn from_proto(dp: &'a ExponentialHistogramDataPoint) -> ExpPoint<'a> {
        let buckets = |b: &'a Buckets| BucketsView {
            offset: b.offset,
            bucket_counts: Cow::Borrowed(&b.bucket_counts),
        };
        ExpPoint {
            attributes: attrs(&dp.attributes),
            start_time_unix_nano: dp.start_time_unix_nano,
            time_unix_nano: dp.time_unix_nano,
            count: dp.count,
            sum: dp.sum,
            scale: dp.scale,
            zero_count: dp.zero_count,
            zero_threshold: dp.zero_threshold,
            positive: dp.positive.as_ref().map(buckets),
            negative: dp.negative.as_ref().map(buckets),
            flags: dp.flags,
            exemplars: dp.exemplars.iter().map(exemplar_view).collect(),
        }
    }
}

fn summary(dp: &SummaryDataPoint) -> SummaryPoint<'_> {
    SummaryPoint {
        attributes: attrs(&dp.attributes),
        time_unix_nano: dp.time_unix_nano,
        count: dp.count,
        sum: dp.sum,
        quantiles: dp
            .quantile_values
            .iter()
            .map(|q| (q.quantile, q.value))
            .collect(),
        flags: dp.flags,
    }
}

fn exemplar_view(e: &Exemplar) -> ExemplarView<'_> {
    ExemplarView {
        filtered_attributes: attrs(&e.filtered_attributes),
        time_unix_nano: e.time_unix_nano,
        value: e.value.map(|v| match v {
            exemplar::Value::AsDouble(v) => v,
            exemplar::Value::AsInt(v) => v as f64,
        }),
        span_id: &e.span_id,
        trace_id: &e.trace_id,
    }
}
