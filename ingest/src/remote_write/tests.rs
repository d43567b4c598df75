//! Remote-write handler tests through the real router, against an in-memory database.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use prost::Message;
use sextant_storage::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_storage::{Db, Matcher, SeriesSource};
use tower::ServiceExt;

use super::*;

fn label(n: &str, v: &str) -> ProtoLabel {
    ProtoLabel {
        name: n.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    }
}

fn series(labels: Vec<ProtoLabel>, samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels,
        samples: samples
            .iter()
            .map(|&(t, v)| ProtoSample {
                timestamp: t,
                value: v,
            })
            .collect(),
        exemplars: vec![],
        histograms: vec![],
    }
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

async fn post(
    state: Arc<RemoteWriteState>,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::post("/api/v1/write").header("content-encoding", "snappy");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = router(state)
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn state(limits: RemoteWriteLimits) -> Arc<RemoteWriteState> {
    Arc::new(RemoteWriteState {
        db: Arc::new(Db::in_memory()),
        limits,
    })
}

#[tokio::test]
async fn stores_the_shared_conformance_payload() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/remote-write/payloads/rw1-write-request.pb.snappy"
    );
    let body = std::fs::read(path).expect("shared conformance payload");
    let st = state(RemoteWriteLimits::default());
    // The payload's two native histograms are valid.
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let (valid, rejected, exemplars) = decode_with(&raw, &RemoteWriteLimits::default(), |d| {
        (d.num_histograms(), d.rejected_samples(), d.num_exemplars())
    })
    .unwrap();
    assert_eq!((valid, rejected, exemplars), (2, 0, 1));
    let (status, text) = post(st.clone(), body, Some("application/x-protobuf")).await;
    // Samples, histograms and the payload's exemplar are all stored.
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let ex = st
        .db
        .select_exemplars(
            &[vec![Matcher::equal("__name__", "http_requests_total")]],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(ex.len(), 1);
    assert_eq!(
        ex[0].series_labels.to_string(),
        r#"http_requests_total{code="200", instance="app-1:8080", job="api", method="GET"}"#
    );
    assert_eq!(
        ex[0].exemplars,
        vec![sextant_storage::Exemplar {
            labels: sextant_storage::Labels::from_pairs([(
                "trace_id",
                "4bf92f3577b34da6a3ce929d0e0e4736"
            )]),
            value: 1.0,
            t: 1714557614000,
        }]
    );
    let got = st
        .db
        .select(
            &[
                Matcher::equal("__name__", "http_requests_total"),
                Matcher::equal("instance", "app-1:8080"),
            ],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    let values: Vec<(i64, f64)> = got
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| (x.t, x.v)))
        .collect();
    assert!(
        values.starts_with(&[
            (1714557600000, 10.0),
            (1714557615000, 12.0),
            (1714557630000, 15.5)
        ]),
        "{values:?}"
    );
}

/// Whether this tree's storage stores native histograms yet (it is written in parallel).
fn histograms_supported() -> bool {
    Db::in_memory().append_histograms(&[]).is_ok()
}

fn int_histogram(t: i64, scale: u64) -> ProtoHistogram {
    ProtoHistogram {
        count: Some(proto_histogram::Count::CountInt(4 * scale)),
        sum: 2.5 * scale as f64,
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: Some(proto_histogram::ZeroCount::ZeroCountInt(scale)),
        positive_spans: vec![ProtoBucketSpan {
            offset: 0,
            length: 2,
        }],
        // Absolute counts scale, 2*scale.
        positive_deltas: vec![scale as i64, scale as i64],
        timestamp: t,
        ..Default::default()
    }
}

#[tokio::test]
async fn native_histograms_are_validated_and_appended() {
    let st = state(RemoteWriteLimits::default());
    let mut bad = int_histogram(3000, 1);
    bad.schema = 9;
    let mut float_series = series(vec![label("__name__", "gauge"), label("job", "a")], &[]);
    float_series.histograms = vec![
        ProtoHistogram {
            count: Some(proto_histogram::Count::CountFloat(1.5)),
            sum: 0.75,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: vec![ProtoBucketSpan {
                offset: 1,
                length: 1,
            }],
            positive_counts: vec![1.5],
            custom_values: vec![0.5, 1.0],
            reset_hint: 3,
            timestamp: 1000,
            ..Default::default()
        },
        bad,
    ];
    let mut hist_series = series(vec![label("__name__", "lat"), label("job", "a")], &[]);
    hist_series.histograms = vec![int_histogram(1000, 1), int_histogram(2000, 3)];
    let mut bad_labels = series(vec![label("job", "a")], &[(1000, 1.0)]);
    bad_labels.histograms = vec![int_histogram(1000, 1)];
    let req = WriteRequest {
        timeseries: vec![
            hist_series,
            float_series,
            series(vec![label("__name__", "up")], &[(1000, 1.0)]),
            bad_labels,
        ],
        metadata: vec![],
    };
    let (status, text) = post(st.clone(), snappy(&req.encode_to_vec()), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("histogram_invalid_schema: 1"), "{text}");
    assert!(text.contains("missing_metric_name: 2"), "{text}");
    assert!(
        text.contains(
            "first invalid series: invalid native histogram: histogram has an invalid schema"
        ),
        "{text}"
    );
    let select = |name: &str| {
        st.db
            .select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
            .unwrap()
    };
    assert_eq!(
        select("up")[0].samples.len(),
        1,
        "floats are stored either way"
    );
    if histograms_supported() {
        assert!(text.contains("rejected 3 of 7 samples"), "{text}");
        let lat = select("lat");
        assert_eq!(lat.len(), 1);
        let h: Vec<_> = lat[0]
            .histograms
            .iter()
            .map(|s| (s.t, s.h.clone()))
            .collect();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].0, 2000);
        assert_eq!(h[1].1.positive_buckets, vec![3.0, 6.0]);
        assert_eq!((h[1].1.count, h[1].1.zero_count), (12.0, 3.0));
        let gauge = select("gauge");
        assert_eq!(gauge[0].histograms.len(), 1);
        assert!(gauge[0].histograms[0].h.uses_custom_buckets());
    } else {
        assert!(text.contains("native_histograms_unsupported: 3"), "{text}");
        assert!(text.contains("rejected 6 of 7 samples"), "{text}");
        assert!(select("lat").is_empty());
    }
}

#[tokio::test]
async fn partly_bad_request_stores_the_good_part_and_counts_the_rest() {
    let st = state(RemoteWriteLimits::default());
    let req = WriteRequest {
        timeseries: vec![
            series(
                vec![label("__name__", "good"), label("job", "a")],
                &[(1000, 1.0), (2000, 2.0), (1500, 9.0)],
            ),
            series(
                vec![label("job", "a"), label("__name__", "bad")],
                &[(1000, 1.0)],
            ),
            series(
                vec![label("__name__", ""), label("job", "a")],
                &[(1000, 1.0), (2000, 1.0)],
            ),
        ],
        metadata: vec![],
    };
    let (status, text) = post(st.clone(), snappy(&req.encode_to_vec()), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("rejected 4 of 6 samples"), "{text}");
    assert!(text.contains("labels_not_sorted: 1"), "{text}");
    assert!(text.contains("missing_metric_name: 2"), "{text}");
    assert!(text.contains("out_of_order: 1"), "{text}");
    let got = st
        .db
        .select(&[Matcher::equal("__name__", "good")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(got[0].samples.len(), 2);
    assert!(st
        .db
        .select(&[Matcher::equal("__name__", "bad")], i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_reason() {
    let st = state(RemoteWriteLimits::default());
    let (status, text) = post(st.clone(), b"definitely not snappy".to_vec(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("snappy"), "{text}");
    let (status, text) = post(st.clone(), snappy(b"\xff\xff\xff\xff"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("protobuf"), "{text}");
    let bad_utf8 = WriteRequest {
        timeseries: vec![series(
            vec![
                label("__name__", "x"),
                ProtoLabel {
                    name: b"job".to_vec(),
                    value: vec![0xff, 0xfe],
                },
            ],
            &[(1, 1.0)],
        )],
        metadata: vec![],
    };
    let (status, text) = post(st, snappy(&bad_utf8.encode_to_vec()), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.contains("invalid_utf8: 1") && text.contains("not valid UTF-8"),
        "{text}"
    );
}

#[tokio::test]
async fn oversized_and_wrong_type_requests_are_refused() {
    let st = state(RemoteWriteLimits {
        max_decompressed_bytes: 1000,
        ..Default::default()
    });
    let big = WriteRequest {
        timeseries: (0..100)
            .map(|i| series(vec![label("__name__", &format!("metric_{i}"))], &[(1, 1.0)]))
            .collect(),
        metadata: vec![],
    };
    let (status, text) = post(st.clone(), snappy(&big.encode_to_vec()), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let (status, _) = post(
        st.clone(),
        snappy(b""),
        Some("application/x-protobuf;proto=unknown"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = post(st, snappy(b""), Some("application/json")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn metadata_is_recorded() {
    let st = state(RemoteWriteLimits::default());
    let req = WriteRequest {
        timeseries: vec![],
        metadata: vec![proto::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let (status, _) = post(st.clone(), snappy(&req.encode_to_vec()), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let md = st.db.metadata(None, None);
    assert_eq!(md["http_requests_total"].metric_type, "counter");
}
