//! The borrowed decoder against prost: the same view for every kind of data, packed and
//! unpacked repeated numbers, unknown fields; the same accept/refuse decision (and the same
//! view when accepted) for every truncation and many single-byte corruptions.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as AV, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::decode;
use crate::otlp::view::RequestView;

fn kv(k: &str, v: AV) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(v: &str) -> AV {
    AV::StringValue(v.into())
}

fn exemplars() -> Vec<Exemplar> {
    vec![
        Exemplar {
            filtered_attributes: vec![kv("user", s("u1"))],
            time_unix_nano: 5,
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            trace_id: vec![9; 16],
            value: Some(exemplar::Value::AsDouble(0.25)),
        },
        Exemplar {
            value: Some(exemplar::Value::AsInt(-7)),
            ..Default::default()
        },
    ]
}

fn number(attrs: Vec<KeyValue>, v: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: 1,
        time_unix_nano: 2_000_000_000,
        exemplars: exemplars(),
        flags: 0,
        value: Some(v),
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} help"),
        unit: unit.into(),
        metadata: vec![kv("ignored", s("x"))],
        data: Some(data),
    }
}

/// A request with every data kind and attribute kind.
fn full_request() -> ExportMetricsServiceRequest {
    let attrs = vec![
        kv("str", s("v")),
        kv("bool", AV::BoolValue(true)),
        kv("int", AV::IntValue(-42)),
        kv("double", AV::DoubleValue(1.5)),
        kv("bytes", AV::BytesValue(vec![0, 255])),
        kv(
            "array",
            AV::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(s("a")),
                }],
            }),
        ),
        kv(
            "kvlist",
            AV::KvlistValue(KeyValueList {
                values: vec![kv("inner", AV::IntValue(1))],
            }),
        ),
        KeyValue {
            key: "absent".into(),
            value: None,
        },
    ];
    let metrics = [
        metric(
            "g",
            "By",
            Data::Gauge(Gauge {
                data_points: vec![
                    number(attrs.clone(), number_data_point::Value::AsDouble(-0.5)),
                    number(vec![], number_data_point::Value::AsInt(-3)),
                    NumberDataPoint {
                        flags: 1,
                        ..Default::default()
                    },
                ],
            }),
        ),
        metric(
            "c",
            "s",
            Data::Sum(Sum {
                data_points: vec![number(
                    vec![kv("k", s("v"))],
                    number_data_point::Value::AsDouble(3.0),
                )],
                aggregation_temporality: 1,
                is_monotonic: true,
            }),
        ),
        metric(
            "h",
            "s",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![kv("route", s("/"))],
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 9,
                    sum: Some(4.5),
                    bucket_counts: vec![1, 3, 5],
                    explicit_bounds: vec![0.1, 1.0],
                    exemplars: exemplars(),
                    flags: 0,
                    min: Some(0.01),
                    max: Some(3.0),
                }],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "e",
            "",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    attributes: vec![kv("a", s("b"))],
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 20,
                    sum: Some(-1.0),
                    scale: -3,
                    zero_count: 2,
                    positive: Some(Buckets {
                        offset: -5,
                        bucket_counts: vec![1, 0, 300, 4],
                    }),
                    negative: Some(Buckets {
                        offset: 7,
                        bucket_counts: vec![2],
                    }),
                    flags: 0,
                    exemplars: exemplars(),
                    min: None,
                    max: None,
                    zero_threshold: 1e-9,
                }],
                aggregation_temporality: 1,
            }),
        ),
        metric(
            "q",
            "ms",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes: vec![kv("x", s("y"))],
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 3,
                    sum: 6.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 3.0,
                        },
                    ],
                    flags: 1,
                }],
            }),
        ),
        Metric {
            name: "nodata".into(),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("svc")),
                        kv("service.instance.id", s("i-1")),
                    ],
                    dropped_attributes_count: 3,
                    entity_refs: vec![],
                }),
                scope_metrics: vec![
                    ScopeMetrics {
                        scope: None,
                        metrics: metrics[..2].to_vec(),
                        schema_url: "https://x".into(),
                    },
                    ScopeMetrics {
                        scope: None,
                        metrics: metrics[2..].to_vec(),
                        schema_url: String::new(),
                    },
                ],
                schema_url: String::new(),
            },
            ResourceMetrics::default(),
        ],
    }
}

#[test]
fn decodes_every_kind_as_prost_does() {
    let req = full_request();
    let body = req.encode_to_vec();
    let view = decode(&body).unwrap();
    assert_eq!(view, RequestView::from_proto(&req));
    assert_eq!(view.resources.len(), 2);
    assert_eq!(view.resources[0].metrics.len(), 6);
}

#[test]
fn unpacked_repeated_numbers_and_unknown_fields_are_accepted() {
    // A histogram point with bucket counts and bounds as unpacked fields, plus unknown fields
    // (varint, fixed32, bytes and a group) at several levels.
    let mut point = Vec::new();
    prost::encoding::fixed64::encode(3, &7u64, &mut point);
    for c in [1u64, 2, 3] {
        prost::encoding::fixed64::encode(6, &c, &mut point);
    }
    for b in [0.5f64, 2.0] {
        prost::encoding::double::encode(7, &b, &mut point);
    }
    prost::encoding::uint64::encode(99, &5, &mut point);
    prost::encoding::fixed32::encode(98, &5, &mut point);
    point.extend_from_slice(&[0xbb, 0x06, 0x08, 0x01, 0xbc, 0x06]); // group 103 { 1: 1 }
    let mut hist = Vec::new();
    prost::encoding::bytes::encode(1, &point, &mut hist);
    prost::encoding::int32::encode(2, &2, &mut hist);
    let mut m = Vec::new();
    prost::encoding::string::encode(1, &"h".to_string(), &mut m);
    prost::encoding::bytes::encode(9, &hist, &mut m);
    prost::encoding::string::encode(77, &"unknown".to_string(), &mut m);
    let mut scope = Vec::new();
    prost::encoding::bytes::encode(2, &m, &mut scope);
    let mut rm = Vec::new();
    prost::encoding::bytes::encode(2, &scope, &mut rm);
    let mut body = Vec::new();
    prost::encoding::bytes::encode(1, &rm, &mut body);
    prost::encoding::uint64::encode(15, &1, &mut body);

    let req = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
    let view = decode(&body).unwrap();
    assert_eq!(view, RequestView::from_proto(&req));
    let super::DataView::Histogram { points, .. } =
        view.resources[0].metrics[0].data.as_ref().unwrap()
    else {
        panic!("not a histogram");
    };
    assert_eq!(&points[0].bucket_counts[..], &[1, 2, 3]);
    assert_eq!(&points[0].explicit_bounds[..], &[0.5, 2.0]);
    assert_eq!(points[0].time_unix_nano, 7);
}

/// Never stricter than prost, and the same view whenever prost accepts. (The decoder may
/// accept a body prost refuses when the fault is in a field the conversion ignores, such as a
/// scope's name or a resource's entity refs: those are skipped without being checked.)
fn agrees_with_prost(body: &[u8]) -> Result<(), String> {
    match (ExportMetricsServiceRequest::decode(body), decode(body)) {
        // Compared as text: a corrupted double may be NaN, which equals nothing.
        (Ok(p), Ok(o)) => {
            let (p, o) = (
                format!("{:?}", RequestView::from_proto(&p)),
                format!("{o:?}"),
            );
            if p == o {
                Ok(())
            } else {
                Err(format!("different views:\nprost {p}\nours  {o}"))
            }
        }
        (Ok(_), Err(e)) => Err(format!("prost accepts, we refuse: {e}")),
        (Err(_), _) => Ok(()),
    }
}

#[test]
fn truncations_and_corruptions_are_judged_as_prost_judges_them() {
    let body = full_request().encode_to_vec();
    for n in 0..body.len() {
        // A cut body is refused by both, or accepted by both when cut between resources.
        let cut = &body[..n];
        assert_eq!(
            decode(cut).is_ok(),
            ExportMetricsServiceRequest::decode(cut).is_ok(),
            "truncated to {n} bytes"
        );
        agrees_with_prost(cut).unwrap_or_else(|e| panic!("truncated to {n} bytes: {e}"));
    }
    for i in 0..body.len() {
        for b in [0x00, 0x01, 0x07, 0x80, 0xff, body[i] ^ 0x01, body[i] ^ 0x08] {
            let mut bad = body.clone();
            bad[i] = b;
            if let Err(e) = agrees_with_prost(&bad) {
                panic!("byte {i} set to {b:#04x}: {e}");
            }
        }
    }
}

#[test]
fn malformed_bodies_are_errors() {
    // Field 1 (resource_metrics) as a varint.
    assert!(decode(&[0x08, 0x01]).is_err());
    // A length past the end.
    assert!(decode(&[0x0a, 0x05, 0x00]).is_err());
    // A metric name that is not UTF-8.
    let mut m = Vec::new();
    prost::encoding::bytes::encode(1, &vec![0xff, 0xfe], &mut m);
    let mut scope = Vec::new();
    prost::encoding::bytes::encode(2, &m, &mut scope);
    let mut rm = Vec::new();
    prost::encoding::bytes::encode(2, &scope, &mut rm);
    let mut body = Vec::new();
    prost::encoding::bytes::encode(1, &rm, &mut body);
    assert_eq!(decode(&body), Err(super::DecodeError::BadUtf8));
    // An unterminated group.
    assert!(decode(&[0x1b]).is_err());
}
