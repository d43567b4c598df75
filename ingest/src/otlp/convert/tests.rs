use super::*;
use crate::otlp::translate::NameTranslation;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar as OtlpExemplar, ExponentialHistogram, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sextant_storage::Labels;

const SEC: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(AV::StringValue(v.into())),
        }),
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn svc() -> Vec<KeyValue> {
    vec![
        kv("service.name", "api"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "i-1"),
    ]
}

fn num(t_s: u64, start_s: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start_s * SEC,
        time_unix_nano: t_s * SEC,
        exemplars: vec![],
        flags: 0,
        value: Some(number_data_point::Value::AsDouble(v)),
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        description: "help text".into(),
        unit: unit.into(),
        metadata: vec![],
        data: Some(data),
    }
}

fn sum(points: Vec<NumberDataPoint>, monotonic: bool, temporality: AggregationTemporality) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: temporality as i32,
        is_monotonic: monotonic,
    })
}

/// A [`Converted`] with owned labels, so it can outlive its request.
struct Owned {
    floats: Vec<(Labels, Vec<Sample>)>,
    histograms: Vec<(Labels, Vec<HistogramSample>)>,
    metadata: Vec<(String, MetricMetadata)>,
    points: usize,
    rejected: BTreeMap<&'static str, usize>,
}

impl Owned {
    fn rejected_points(&self) -> usize {
        self.rejected.values().sum()
    }
}

fn run(req: &ExportMetricsServiceRequest, opts: &OtlpOptions, d: &DeltaTracker) -> Owned {
    let arena = Arena::new();
    let c = convert(req, &arena, opts, d);
    Owned {
        floats: c
            .floats
            .iter()
            .map(|(l, s)| (l.to_labels(), s.to_vec()))
            .collect(),
        histograms: c
            .histograms
            .iter()
            .map(|(l, s)| (l.to_labels(), s.to_vec()))
            .collect(),
        metadata: c.metadata.clone(),
        points: c.points,
        rejected: c.rejected.clone(),
    }
}

fn find<'a>(c: &'a Owned, text: &str) -> &'a [Sample] {
    c.floats
        .iter()
        .find(|(l, _)| l.to_labels().to_string() == text)
        .map(|(_, s)| s.as_slice())
        .unwrap_or_else(|| {
            let names: Vec<String> = c
                .floats
                .iter()
                .map(|(l, _)| l.to_labels().to_string())
                .collect();
            panic!("no series {text}; have {names:#?}")
        })
}

fn values(s: &[Sample]) -> Vec<(i64, f64)> {
    s.iter().map(|s| (s.t, s.v)).collect()
}

#[test]
fn counter_gets_suffixes_job_instance_and_target_info() {
    let mut res = svc();
    res.push(kv("host.name", "h1"));
    res.push(kv("cloud.region", "eu"));
    let req = request(
        res,
        vec![metric(
            "http.requests",
            "{request}",
            sum(
                vec![num(10, 1, 5.0, vec![kv("http.method", "GET")])],
                true,
                AggregationTemporality::Cumulative,
            ),
        )],
    );
    let opts = OtlpOptions {
        promote_resource_attributes: vec!["cloud.region".into()],
        ..OtlpOptions::default()
    };
    let c = run(&req, &opts, &DeltaTracker::new(Duration::from_secs(60)));
    assert_eq!(
        values(find(
            &c,
            r#"http_requests_total{cloud_region="eu", http_method="GET", instance="i-1", job="shop/api"}"#
        )),
        vec![(10_000, 5.0)]
    );
    assert_eq!(
        values(find(
            &c,
            r#"target_info{cloud_region="eu", host_name="h1", instance="i-1", job="shop/api"}"#
        )),
        vec![(10_000, 1.0)]
    );
    assert_eq!(c.metadata[0].0, "http_requests_total");
    assert_eq!(c.metadata[0].1.metric_type, "counter");
    assert_eq!(c.metadata[0].1.help, "help text");
    assert_eq!(c.points, 1);
    assert_eq!(c.rejected_points(), 0);
}

#[test]
fn no_target_info_without_extra_resource_attributes_and_untranslated_names() {
    let req = request(
        svc(),
        vec![metric(
            "queue.depth",
            "1",
            Data::Gauge(Gauge {
                data_points: vec![num(3, 0, 2.5, vec![kv("a.b", "x")])],
            }),
        )],
    );
    let d = DeltaTracker::new(Duration::from_secs(60));
    let c = run(&req, &OtlpOptions::default(), &d);
    assert_eq!(c.floats.len(), 1);
    find(
        &c,
        r#"queue_depth_ratio{a_b="x", instance="i-1", job="shop/api"}"#,
    );
    let raw = OtlpOptions {
        translation: NameTranslation::NoTranslation,
        ..OtlpOptions::default()
    };
    let c = run(&req, &raw, &d);
    assert_eq!(c.floats[0].0.get("__name__"), Some("queue.depth"));
    assert_eq!(c.floats[0].0.get("a.b"), Some("x"));
}

#[test]
fn colliding_attribute_names_are_joined() {
    let req = request(
        vec![],
        vec![metric(
            "g",
            "",
            Data::Gauge(Gauge {
                data_points: vec![num(1, 0, 1.0, vec![kv("a.b", "2"), kv("a_b", "1")])],
            }),
        )],
    );
    let c = run(
        &req,
        &OtlpOptions::default(),
        &DeltaTracker::new(Duration::from_secs(60)),
    );
    find(&c, r#"g{a_b="2;1"}"#);
}

#[test]
fn delta_sums_accumulate_and_restart_on_overlap() {
    let d = DeltaTracker::new(Duration::from_secs(600));
    let opts = OtlpOptions::default();
    let send = |points: Vec<NumberDataPoint>| {
        let req = request(
            svc(),
            vec![metric(
                "jobs",
                "",
                sum(points, true, AggregationTemporality::Delta),
            )],
        );
        run(&req, &opts, &d)
    };
    let key = r#"jobs_total{instance="i-1", job="shop/api"}"#;
    let c = send(vec![num(10, 0, 3.0, vec![]), num(20, 10, 4.0, vec![])]);
    assert_eq!(values(find(&c, key)), vec![(10_000, 3.0), (20_000, 7.0)]);
    // A gap (start after the previous end) still adds.
    let c = send(vec![num(40, 30, 1.0, vec![])]);
    assert_eq!(values(find(&c, key)), vec![(40_000, 8.0)]);
    // Out of order: refused, total unchanged.
    let c = send(vec![num(35, 30, 100.0, vec![])]);
    assert_eq!(c.rejected.get(reason::DELTA_OUT_OF_ORDER), Some(&1));
    assert!(c.floats.is_empty());
    // Overlapping window: a restart, the total starts again.
    let c = send(vec![num(50, 5, 2.0, vec![])]);
    assert_eq!(values(find(&c, key)), vec![(50_000, 2.0)]);
    let c = send(vec![num(60, 50, 2.0, vec![])]);
    assert_eq!(values(find(&c, key)), vec![(60_000, 4.0)]);
    assert_eq!(d.len(), 1);
}

#[test]
fn non_monotonic_sums_are_gauges_and_unspecified_temporality_is_refused() {
    let req = request(
        vec![],
        vec![
            metric(
                "active",
                "",
                sum(
                    vec![num(1, 0, -3.0, vec![])],
                    false,
                    AggregationTemporality::Cumulative,
                ),
            ),
            metric(
                "bad",
                "",
                sum(
                    vec![num(1, 0, 1.0, vec![])],
                    true,
                    AggregationTemporality::Unspecified,
                ),
            ),
        ],
    );
    let c = run(
        &req,
        &OtlpOptions::default(),
        &DeltaTracker::new(Duration::from_secs(60)),
    );
    assert_eq!(values(find(&c, "active")), vec![(1000, -3.0)]);
    assert_eq!(c.metadata[0].1.metric_type, "gauge");
    assert_eq!(c.rejected.get(reason::UNSPECIFIED_TEMPORALITY), Some(&1));
    assert_eq!(c.floats.len(), 1);
}

fn hist_point(
    t_s: u64,
    start_s: u64,
    counts: Vec<u64>,
    bounds: Vec<f64>,
    sum: f64,
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: start_s * SEC,
        time_unix_nano: t_s * SEC,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: bounds,
        exemplars: vec![],
        flags: 0,
        min: None,
        max: None,
    }
}

#[test]
fn explicit_histograms_become_classic_buckets() {
    let d = DeltaTracker::new(Duration::from_secs(600));
    let req = request(
        vec![],
        vec![metric(
            "latency",
            "s",
            Data::Histogram(Histogram {
                data_points: vec![
                    hist_point(5, 0, vec![1, 2, 3], vec![0.5, 1.0], 9.0),
                    hist_point(6, 0, vec![1, 2], vec![0.5, 1.0], 1.0),
                ],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        )],
    );
    let c = run(&req, &OtlpOptions::default(), &d);
    assert_eq!(
        values(find(&c, r#"latency_seconds_bucket{le="0.5"}"#)),
        vec![(5000, 1.0)]
    );
    assert_eq!(
        values(find(&c, r#"latency_seconds_bucket{le="1"}"#)),
        vec![(5000, 3.0)]
    );
    assert_eq!(
        values(find(&c, r#"latency_seconds_bucket{le="+Inf"}"#)),
        vec![(5000, 6.0)]
    );
    assert_eq!(values(find(&c, "latency_seconds_sum")), vec![(5000, 9.0)]);
    assert_eq!(values(find(&c, "latency_seconds_count")), vec![(5000, 6.0)]);
    // The second point has one bucket count too few.
    assert_eq!(c.rejected.get(reason::INVALID_HISTOGRAM), Some(&1));

    // Delta: bucket counts accumulate.
    let delta = |t, start, counts: Vec<u64>| {
        request(
            vec![],
            vec![metric(
                "latency",
                "s",
                Data::Histogram(Histogram {
                    data_points: vec![hist_point(t, start, counts, vec![1.0], 2.0)],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            )],
        )
    };
    run(&delta(10, 0, vec![1, 1]), &OtlpOptions::default(), &d);
    let c = run(&delta(20, 10, vec![2, 0]), &OtlpOptions::default(), &d);
    assert_eq!(
        values(find(&c, r#"latency_seconds_bucket{le="1"}"#)),
        vec![(20_000, 3.0)]
    );
    assert_eq!(
        values(find(&c, r#"latency_seconds_bucket{le="+Inf"}"#)),
        vec![(20_000, 4.0)]
    );
    assert_eq!(values(find(&c, "latency_seconds_sum")), vec![(20_000, 4.0)]);
}

fn exp_point(
    t_s: u64,
    start_s: u64,
    scale: i32,
    offset: i32,
    counts: Vec<u64>,
    zero: u64,
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: start_s * SEC,
        time_unix_nano: t_s * SEC,
        count: counts.iter().sum::<u64>() + zero,
        sum: Some(10.0),
        scale,
        zero_count: zero,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts,
        }),
        negative: None,
        flags: 0,
        exemplars: vec![],
        min: None,
        max: None,
        zero_threshold: 0.001,
    }
}

#[test]
fn exponential_histograms_shift_indexes_and_build_spans() {
    // OTLP index 0 at scale 0 is (1, 2]; Prometheus' index 1 is (1, 2].
    let h = exponential_to_native(&exp_point(1, 0, 0, 0, vec![3, 0, 0, 0, 2, 0, 1], 1)).unwrap();
    assert_eq!(h.schema, 0);
    assert_eq!(h.count, 7.0);
    assert_eq!(h.zero_count, 1.0);
    assert_eq!(h.zero_threshold, 0.001);
    assert_eq!(
        h.positive_spans,
        vec![
            Span {
                offset: 1,
                length: 1
            },
            Span {
                offset: 3,
                length: 3
            }
        ]
    );
    assert_eq!(h.positive_buckets, vec![3.0, 2.0, 0.0, 1.0]);
    assert_eq!(sextant_storage::histogram::bucket_bound(1, 0, &[]), 2.0);

    // Scale 10 is downscaled to 8: four OTLP buckets become one.
    let h = exponential_to_native(&exp_point(1, 0, 10, -2, vec![1, 1, 1, 1, 1, 1], 0)).unwrap();
    assert_eq!(h.schema, 8);
    // OTLP indexes -2..=3 at scale 10 → -1, -1, 0, 0, 0, 0 at scale 8 → Prometheus 0 and 1.
    assert_eq!(
        h.positive_spans,
        vec![Span {
            offset: 0,
            length: 2
        }]
    );
    assert_eq!(h.positive_buckets, vec![2.0, 4.0]);

    assert_eq!(
        exponential_to_native(&exp_point(1, 0, -5, 0, vec![1], 0)).unwrap_err(),
        reason::SCALE_TOO_LOW
    );
    let mut bad = exp_point(1, 0, 0, 0, vec![5], 0);
    bad.count = 2;
    assert_eq!(
        exponential_to_native(&bad).unwrap_err(),
        reason::INVALID_HISTOGRAM
    );
}

#[test]
fn delta_exponential_histograms_accumulate() {
    let d = DeltaTracker::new(Duration::from_secs(600));
    let send = |p| {
        let req = request(
            vec![],
            vec![metric(
                "size",
                "By",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![p],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            )],
        );
        run(&req, &OtlpOptions::default(), &d)
    };
    send(exp_point(10, 0, 1, 0, vec![1, 2], 0));
    let c = send(exp_point(20, 10, 1, 1, vec![4], 1));
    let (labels, samples) = &c.histograms[0];
    assert_eq!(labels.to_labels().to_string(), "size_bytes");
    let h = &samples[0].h;
    assert_eq!(samples[0].t, 20_000);
    assert_eq!(h.count, 8.0);
    assert_eq!(h.sum, 20.0);
    assert_eq!(h.zero_count, 1.0);
    assert_eq!(
        h.positive_spans,
        vec![Span {
            offset: 1,
            length: 2
        }]
    );
    assert_eq!(h.positive_buckets, vec![1.0, 6.0]);
    assert_eq!(h.counter_reset_hint, CounterResetHint::NotCounterReset);
}

#[test]
fn summaries_and_staleness() {
    let stale_point = NumberDataPoint {
        flags: FLAG_NO_RECORDED_VALUE,
        value: None,
        ..num(7, 0, 0.0, vec![])
    };
    let req = request(
        vec![],
        vec![
            metric(
                "rpc",
                "ms",
                Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        attributes: vec![],
                        start_time_unix_nano: 0,
                        time_unix_nano: 2 * SEC,
                        count: 4,
                        sum: 8.5,
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
                        flags: 0,
                    }],
                }),
            ),
            metric(
                "temp",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![stale_point],
                }),
            ),
            metric(
                "missing",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        value: None,
                        ..num(7, 0, 0.0, vec![])
                    }],
                }),
            ),
        ],
    );
    let c = run(
        &req,
        &OtlpOptions::default(),
        &DeltaTracker::new(Duration::from_secs(60)),
    );
    assert_eq!(
        values(find(&c, r#"rpc_milliseconds{quantile="0.99"}"#)),
        vec![(2000, 3.0)]
    );
    assert_eq!(
        values(find(&c, r#"rpc_milliseconds{quantile="0.5"}"#)),
        vec![(2000, 2.0)]
    );
    assert_eq!(values(find(&c, "rpc_milliseconds_sum")), vec![(2000, 8.5)]);
    assert_eq!(
        values(find(&c, "rpc_milliseconds_count")),
        vec![(2000, 4.0)]
    );
    let s = find(&c, "temp");
    assert_eq!(s[0].v.to_bits(), sextant_storage::STALE_NAN_BITS);
    assert_eq!(c.rejected.get(reason::MISSING_VALUE), Some(&1));
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

fn otlp_exemplar(t_ms: u64, value: f64, trace: bool, attrs: Vec<KeyValue>) -> OtlpExemplar {
    OtlpExemplar {
        filtered_attributes: attrs,
        time_unix_nano: t_ms * 1_000_000,
        span_id: if trace {
            vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        } else {
            vec![]
        },
        trace_id: if trace {
            (0u8..16).map(|i| i * 17).collect()
        } else {
            vec![]
        },
        value: Some(exemplar::Value::AsDouble(value)),
    }
}

/// One series' exemplars as `(series, [(labels, value, t)])`.
type ExemplarsText = (String, Vec<(String, f64, i64)>);

/// Exemplars read back from storage, as text.
fn stored_exemplars(db: &sextant_storage::Db) -> Vec<ExemplarsText> {
    db.select_exemplars(&[vec![]], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.series_labels.to_string(),
                s.exemplars
                    .iter()
                    .map(|e| (e.labels.to_string(), e.value, e.t))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn exemplars_go_to_sums_and_to_the_bucket_holding_their_value() {
    let mut counter = num(10, 0, 5.0, vec![]);
    counter.exemplars = vec![
        otlp_exemplar(9_500, 1.0, true, vec![kv("user", "u1")]),
        // An integer value and no trace context; recorded before the first one.
        OtlpExemplar {
            value: Some(exemplar::Value::AsInt(3)),
            ..otlp_exemplar(9_000, 0.0, false, vec![])
        },
        // No value: dropped and counted.
        OtlpExemplar {
            value: None,
            ..otlp_exemplar(9_700, 0.0, false, vec![])
        },
        // Attributes that would exceed 128 characters are left out.
        otlp_exemplar(9_800, 2.0, true, vec![kv("note", &"n".repeat(70))]),
    ];
    let mut hist = hist_point(10, 0, vec![1, 2, 3], vec![0.5, 1.0], 9.0);
    hist.exemplars = vec![
        otlp_exemplar(9_100, 0.5, false, vec![]),
        otlp_exemplar(9_200, 0.75, false, vec![]),
        otlp_exemplar(9_300, 7.0, false, vec![]),
    ];
    let req = request(
        svc(),
        vec![
            metric(
                "requests",
                "",
                sum(vec![counter], true, AggregationTemporality::Cumulative),
            ),
            metric(
                "latency",
                "s",
                Data::Histogram(Histogram {
                    data_points: vec![hist],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
        ],
    );
    let d = DeltaTracker::new(Duration::from_secs(60));
    let arena = Arena::new();
    let c = convert(&req, &arena, &OtlpOptions::default(), &d);
    assert_eq!(c.invalid_exemplars, 1);
    let db = sextant_storage::Db::in_memory();
    let resp = crate::otlp::store(&db, &c).unwrap();
    assert_eq!(
        resp.partial_success, None,
        "exemplars never refuse a request"
    );
    let trace = "00112233445566778899aabbccddeeff";
    let bucket = |le: &str| {
        format!(r#"latency_seconds_bucket{{instance="i-1", job="shop/api", le="{le}"}}"#)
    };
    assert_eq!(
        stored_exemplars(&db),
        vec![
            // Sorted by series labels: "+Inf" sorts before digits.
            (bucket("+Inf"), vec![("{}".to_string(), 7.0, 9_300)]),
            (bucket("0.5"), vec![("{}".to_string(), 0.5, 9_100)]),
            (bucket("1"), vec![("{}".to_string(), 0.75, 9_200)]),
            (
                r#"requests_total{instance="i-1", job="shop/api"}"#.to_string(),
                vec![
                    ("{}".to_string(), 3.0, 9_000),
                    (
                        format!(r#"{{span_id="00f067aa0ba902b7", trace_id="{trace}", user="u1"}}"#),
                        1.0,
                        9_500
                    ),
                    (
                        format!(r#"{{span_id="00f067aa0ba902b7", trace_id="{trace}"}}"#),
                        2.0,
                        9_800
                    ),
                ]
            ),
        ]
    );
    let key = vec![("reason".to_string(), "invalid".to_string())];
    assert_eq!(db.metrics().exemplars_rejected.get_or_create(&key).get(), 1);
}

#[test]
fn cached_series_hashes_are_storage_hashes() {
    // Translated, promoted and colliding names, classic buckets: every output label set's
    // cached hash must be the one storage computes from the labels, or storage would create a
    // second series for labels it already has (from remote write, say).
    let mut res = svc();
    res.push(kv("cloud.region", "eu"));
    let attrs = vec![kv("http.method", "GET"), kv("http_method", "POST")];
    let req = request(
        res,
        vec![
            metric(
                "http.requests",
                "{request}",
                sum(
                    vec![num(10, 1, 5.0, attrs.clone())],
                    true,
                    AggregationTemporality::Cumulative,
                ),
            ),
            metric(
                "latency",
                "s",
                Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: attrs,
                        ..hist_point(10, 1, vec![1, 2, 3], vec![0.1, 1.0], 4.5)
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
        ],
    );
    let opts = OtlpOptions {
        promote_resource_attributes: vec!["cloud.region".into()],
        ..OtlpOptions::default()
    };
    let d = DeltaTracker::new(Duration::from_secs(60));
    let arena = Arena::new();
    let c = convert(&req, &arena, &opts, &d);
    assert!(c.floats.len() >= 7, "{}", c.floats.len());
    for (l, _) in &c.floats {
        assert_eq!(l.hash64(), l.to_labels().hash64(), "{:?}", l.to_labels());
    }
    let body = prost::Message::encode_to_vec(&req);
    let view = crate::otlp::wire::decode(&body).unwrap();
    let w = convert_view(
        &view,
        &arena,
        &opts,
        &DeltaTracker::new(Duration::from_secs(60)),
    );
    let labels = |c: &Converted<'_>| -> Vec<String> {
        c.floats
            .iter()
            .map(|(l, _)| l.to_labels().to_string())
            .collect()
    };
    assert_eq!(labels(&w), labels(&c));
}

#[test]
fn le_family_matches_build_and_storage_hash() {
    // Names before and after `le`, one sorting before `__name__`, and an attribute named `le`
    // (replaced by the bucket bound).
    let sets: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("job", "j"), ("zone", "z")],
        vec![
            ("Upper", "u"),
            ("instance", "i"),
            ("le", "attr"),
            ("method", "GET"),
        ],
        vec![
            ("a_rather_long_label_name", "and a rather long value"),
            ("lf", "x"),
        ],
    ];
    let arena = Arena::new();
    for pairs in &sets {
        let mut buf = Vec::new();
        let set = LabelSet { pairs };
        let name = arena.str("http_duration_seconds_bucket");
        let family = set.le_family(name, &mut buf, &arena);
        for le in ["0.5", "+Inf"] {
            let le = arena.str(le);
            let want = set.build(name, Some(("le", le)), &mut buf, &arena);
            let got = family.labels(le);
            assert_eq!(got, want, "{pairs:?}");
            assert_eq!(got.hash64(), want.hash64());
            let labels = Labels::from_pairs(got.pairs());
            assert_eq!(got.hash64(), labels.hash64(), "{pairs:?}");
        }
    }
}

#[test]
fn cmp_str_orders_as_str() {
    let words = [
        "", "a", "ab", "b", "B", "__name__", "le", "lf", "l", "é", "job", "jobs",
    ];
    for a in words {
        for b in words {
            assert_eq!(cmp_str(a, b), a.cmp(b), "{a:?} {b:?}");
        }
    }
}

#[test]
fn repeated_series_are_merged_and_sorted_by_time() {
    // One series three times in one request, out of time order, and a second series: one
    // entry per series, its samples in time order.
    let points = vec![
        num(30, 0, 3.0, vec![]),
        num(10, 0, 1.0, vec![]),
        num(20, 0, 2.0, vec![kv("a", "x")]),
        num(20, 0, 2.0, vec![]),
    ];
    let req = request(
        svc(),
        vec![metric(
            "temp",
            "",
            Data::Gauge(Gauge {
                data_points: points,
            }),
        )],
    );
    let c = run(
        &req,
        &OtlpOptions::default(),
        &DeltaTracker::new(Duration::from_secs(60)),
    );
    assert_eq!(c.floats.len(), 2);
    assert_eq!(
        values(find(&c, r#"temp{instance="i-1", job="shop/api"}"#)),
        vec![(10_000, 1.0), (20_000, 2.0), (30_000, 3.0)]
    );
    assert_eq!(
        values(find(&c, r#"temp{a="x", instance="i-1", job="shop/api"}"#)),
        vec![(20_000, 2.0)]
    );
}

#[test]
fn metadata_is_recorded_once_per_family_and_the_last_description_wins() {
    let gauge = |name: &str, unit: &str, help: &str| Metric {
        description: help.into(),
        ..metric(
            name,
            unit,
            Data::Gauge(Gauge {
                data_points: vec![num(10, 0, 1.0, vec![])],
            }),
        )
    };
    // One resource per metric; `lat` in seconds and `lat_seconds` share a family name.
    let resources = [
        gauge("temp", "", "A"),
        gauge("temp", "", "A"),
        gauge("lat", "s", "X"),
        gauge("temp", "", "B"),
        gauge("lat_seconds", "", "Y"),
        gauge("temp", "", "A"),
        gauge("lat", "s", "X"),
    ];
    let req = ExportMetricsServiceRequest {
        resource_metrics: resources
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let mut r = request(
                    vec![
                        kv("service.name", "api"),
                        kv("service.instance.id", &i.to_string()),
                    ],
                    vec![m],
                );
                r.resource_metrics.remove(0)
            })
            .collect(),
    };
    let arena = Arena::new();
    let c = convert(
        &req,
        &arena,
        &OtlpOptions::default(),
        &DeltaTracker::new(Duration::from_secs(60)),
    );
    let recorded: Vec<(&str, &str)> = c
        .metadata
        .iter()
        .map(|(n, m)| (n.as_str(), m.help.as_str()))
        .collect();
    // The repeated "A" right after "A" is left out; once two metrics share a family, every
    // entry is kept.
    assert_eq!(
        recorded[..3],
        [("temp", "A"), ("lat_seconds", "X"), ("temp", "B")]
    );
    assert_eq!(recorded.len(), 6, "{recorded:?}");
    let db = sextant_storage::Db::in_memory();
    crate::otlp::store(&db, &c).unwrap();
    let help = |family: &str| db.metadata(Some(family), None)[family].help.clone();
    assert_eq!(help("temp"), "A");
    assert_eq!(help("lat_seconds"), "X");
    assert_eq!(c.floats.len(), 7, "one series per resource");
}
