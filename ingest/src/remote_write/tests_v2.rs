//! Remote write 2.0 through the real router, against an in-memory database.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{HeaderMap, Request, StatusCode};
use prost::Message;
use sextant_storage::{Db, Matcher, SeriesSource};
use tower::ServiceExt;

use super::proto::histogram as ph;
use super::proto_v2::{self as v2, BucketSpan};
use super::*;

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn state() -> Arc<RemoteWriteState> {
    Arc::new(RemoteWriteState {
        db: Arc::new(Db::in_memory()),
        limits: RemoteWriteLimits::default(),
    })
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    /// The three `X-Prometheus-Remote-Write-*-Written` headers, or `None` when absent.
    fn written(&self) -> Option<(u64, u64, u64)> {
        let get =
            |name: &str| -> Option<u64> { self.headers.get(name)?.to_str().ok()?.parse().ok() };
        Some((
            get(SAMPLES_WRITTEN)?,
            get(HISTOGRAMS_WRITTEN)?,
            get(EXEMPLARS_WRITTEN)?,
        ))
    }
}

async fn post(st: &Arc<RemoteWriteState>, body: Vec<u8>, content_type: Option<&str>) -> Answer {
    let mut req = Request::post("/api/v1/write").header("content-encoding", "snappy");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = router(st.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn post_v2(st: &Arc<RemoteWriteState>, req: &v2::Request) -> Answer {
    post(st, snappy(&req.encode_to_vec()), Some(V2)).await
}

/// A request builder that interns symbols as senders do (`symbols[0]` is `""`).
#[derive(Default)]
struct Builder {
    req: v2::Request,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder::default();
        b.req.symbols.push(String::new());
        b
    }

    fn sym(&mut self, s: &str) -> u32 {
        if let Some(i) = self.req.symbols.iter().position(|x| x == s) {
            return i as u32;
        }
        self.req.symbols.push(s.to_string());
        (self.req.symbols.len() - 1) as u32
    }

    fn refs(&mut self, labels: &[(&str, &str)]) -> Vec<u32> {
        labels
            .iter()
            .flat_map(|&(n, v)| [self.sym(n), self.sym(v)])
            .collect()
    }

    fn floats(&mut self, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> &mut v2::TimeSeries {
        let labels_refs = self.refs(labels);
        self.req.timeseries.push(v2::TimeSeries {
            labels_refs,
            samples: samples
                .iter()
                .map(|&(timestamp, value)| v2::Sample {
                    value,
                    timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        });
        self.req.timeseries.last_mut().unwrap()
    }

    fn histograms(&mut self, labels: &[(&str, &str)], hs: Vec<v2::Histogram>) {
        let labels_refs = self.refs(labels);
        self.req.timeseries.push(v2::TimeSeries {
            labels_refs,
            histograms: hs,
            ..Default::default()
        });
    }
}

fn int_histogram(t: i64, scale: u64) -> v2::Histogram {
    v2::Histogram {
        count: Some(ph::Count::CountInt(4 * scale)),
        sum: 2.5 * scale as f64,
        zero_threshold: 1e-128,
        zero_count: Some(ph::ZeroCount::ZeroCountInt(scale)),
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![scale as i64, scale as i64],
        timestamp: t,
        start_timestamp: t - 60_000,
        ..Default::default()
    }
}

fn floats_of(db: &Db, name: &str) -> Vec<(i64, f64)> {
    db.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| (x.t, x.v)))
        .collect()
}

fn histograms_of(db: &Db, name: &str) -> Vec<sextant_storage::HistogramSample> {
    db.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.histograms)
        .collect()
}

#[tokio::test]
async fn stores_the_shared_conformance_payload_and_answers_the_written_headers() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/remote-write/payloads/rw2-request.pb.snappy"
    );
    let body = std::fs::read(path).expect("shared conformance payload");
    let st = state();
    let a = post(&st, body, Some(V2)).await;
    // Everything is stored, the one exemplar included.
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(a.written(), Some((5, 2, 1)));
    let ex = st
        .db
        .select_exemplars(&[vec![Matcher::equal("job", "api")]], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(ex.len(), 1);
    assert_eq!(
        ex[0].series_labels.metric_name(),
        Some("http_requests_total")
    );
    assert_eq!(
        (
            ex[0].exemplars[0].labels.get("trace_id"),
            ex[0].exemplars[0].t
        ),
        (Some("4bf92f3577b34da6a3ce929d0e0e4736"), 1714557614000)
    );
    assert_eq!(
        floats_of(&st.db, "http_requests_total"),
        [
            (1714557600000, 10.0),
            (1714557615000, 12.0),
            (1714557630000, 15.5)
        ]
    );
    let mem = floats_of(&st.db, "process_resident_memory_bytes");
    assert_eq!(mem.len(), 2);
    assert_eq!(mem[0], (1714557600000, 250000000.0));
    assert!(mem[1].1.is_nan());
    let got = st
        .db
        .select(
            &[Matcher::equal("__name__", "http_requests_total")],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(
        got[0].labels.to_string(),
        r#"http_requests_total{code="200", instance="app-1:8080", job="api", method="GET"}"#
    );
    // Exponential histogram: zero bucket 1, buckets at -2..0 with deltas 1, 1, -1 → 1, 2, 1.
    let h = histograms_of(&st.db, "http_request_duration_seconds");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].t, 1714557600000);
    assert_eq!(
        (h[0].h.count, h[0].h.sum, h[0].h.zero_count),
        (5.0, 2.5, 1.0)
    );
    assert_eq!(h[0].h.positive_buckets, [1.0, 2.0, 1.0]);
    // Custom buckets: deltas 2, 0, -1, -1 → 2, 2, 1, 0.
    let h = histograms_of(&st.db, "rpc_duration_seconds");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].h.positive_buckets, [2.0, 2.0, 1.0, 0.0]);
    assert_eq!(h[0].h.custom_values, [0.1, 0.5, 1.0]);
    // Metadata arrives per series and is recorded per family.
    let md = st.db.metadata(None, None);
    let m = &md["http_requests_total"];
    assert_eq!(
        (m.metric_type.as_str(), m.help.as_str(), m.unit.as_str()),
        ("counter", "Total number of HTTP requests.", "")
    );
    let m = &md["process_resident_memory_bytes"];
    assert_eq!(
        (m.metric_type.as_str(), m.help.as_str(), m.unit.as_str()),
        ("gauge", "Resident memory size in bytes.", "bytes")
    );
    let m = &md["http_request_duration_seconds"];
    assert_eq!(
        (m.metric_type.as_str(), m.help.as_str(), m.unit.as_str()),
        ("histogram", "Request latency.", "seconds")
    );
    assert_eq!(md["rpc_duration_seconds"].unit, "seconds");
}

#[tokio::test]
async fn a_complete_request_answers_204_with_the_written_counts() {
    let st = state();
    let mut b = Builder::new();
    b.floats(
        &[("__name__", "up"), ("job", "a")],
        &[(1000, 1.0), (2000, 1.0)],
    )
    .samples[0]
        .start_timestamp = 500;
    b.histograms(
        &[("__name__", "lat"), ("job", "a")],
        vec![int_histogram(1000, 1), int_histogram(2000, 2)],
    );
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(a.written(), Some((2, 2, 0)));
    assert_eq!(floats_of(&st.db, "up"), [(1000, 1.0), (2000, 1.0)]);
    let h = histograms_of(&st.db, "lat");
    assert_eq!(h.iter().map(|h| h.t).collect::<Vec<_>>(), [1000, 2000]);
    assert_eq!(h[1].h.positive_buckets, [2.0, 4.0]);
    // A resend of the newest samples counts as written (identical duplicates are not errors).
    let mut b = Builder::new();
    b.floats(&[("__name__", "up"), ("job", "a")], &[(2000, 1.0)]);
    b.histograms(
        &[("__name__", "lat"), ("job", "a")],
        vec![int_histogram(2000, 2)],
    );
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(a.written(), Some((1, 1, 0)));
    assert_eq!(floats_of(&st.db, "up").len(), 2);
}

#[tokio::test]
async fn exemplars_are_stored_and_counted_and_refusals_do_not_fail_the_request() {
    let st = state();
    let ex = |b: &mut Builder, trace: &str, value: f64, timestamp: i64| v2::Exemplar {
        labels_refs: b.refs(&[("trace_id", trace)]),
        value,
        timestamp,
    };
    let mut b = Builder::new();
    let e1 = ex(&mut b, "aa", 0.5, 1000);
    let e2 = ex(&mut b, "bb", 0.7, 2000);
    b.floats(&[("__name__", "up"), ("job", "a")], &[(2000, 1.0)])
        .exemplars = vec![e1, e2];
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(a.written(), Some((1, 0, 2)));
    // A resend of the newest exemplar counts as written; an older one, a too long one and one
    // with a ref outside the symbol table are dropped and counted, and the request succeeds.
    let mut b = Builder::new();
    let dup = ex(&mut b, "bb", 0.7, 2000);
    let old = ex(&mut b, "cc", 0.1, 1500);
    let long = ex(&mut b, &"x".repeat(130), 0.1, 3000);
    let bad_ref = v2::Exemplar {
        labels_refs: vec![1, 999],
        value: 1.0,
        timestamp: 4000,
    };
    let fresh = ex(&mut b, "dd", 0.9, 5000);
    b.floats(&[("__name__", "up"), ("job", "a")], &[(3000, 1.0)])
        .exemplars = vec![dup, old, long, bad_ref, fresh];
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(a.written(), Some((1, 0, 2)));
    let got = st
        .db
        .select_exemplars(&[vec![Matcher::equal("job", "a")]], i64::MIN, i64::MAX)
        .unwrap();
    let traces: Vec<(&str, i64)> = got[0]
        .exemplars
        .iter()
        .map(|e| (e.labels.get("trace_id").unwrap_or_default(), e.t))
        .collect();
    assert_eq!(traces, [("aa", 1000), ("bb", 2000), ("dd", 5000)]);
    let m = st.db.metrics();
    assert_eq!(m.exemplars_appended.get(), 3);
    assert_eq!(m.out_of_order_exemplars.get(), 1);
    for (reason, n) in [("out_of_order", 1), ("labels_too_long", 1), ("invalid", 1)] {
        let key = vec![("reason".to_string(), reason.to_string())];
        assert_eq!(
            m.exemplars_rejected.get_or_create(&key).get(),
            n,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn content_types_choose_the_message_and_unknown_ones_answer_415() {
    let st = state();
    let mut b = Builder::new();
    b.floats(&[("__name__", "up")], &[(1000, 1.0)]);
    let body = snappy(&b.req.encode_to_vec());
    for ct in [
        "application/x-protobuf;proto=unknown",
        "application/x-protobuf; proto=io.prometheus.write.v3.Request",
        "application/json",
    ] {
        let a = post(&st, body.clone(), Some(ct)).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        assert!(a.written().is_none(), "{ct}");
    }
    assert!(floats_of(&st.db, "up").is_empty());
    // Parameters are case-insensitive and may be spaced.
    let a = post(
        &st,
        body.clone(),
        Some("application/x-protobuf; proto=io.prometheus.write.v2.request"),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(a.written(), Some((1, 0, 0)));
    // 1.0 answers carry no 2.0 headers; a 2.0 body read as 1.0 is an empty message (its fields
    // are reserved in 1.0's numbering), so nothing more is stored.
    let a = post(&st, body, Some("application/x-protobuf")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert!(a.written().is_none());
    assert_eq!(floats_of(&st.db, "up"), [(1000, 1.0)]);
}

#[tokio::test]
async fn bad_symbol_refs_refuse_their_series_with_a_clear_message() {
    let st = state();
    let mut b = Builder::new();
    b.floats(&[("__name__", "good")], &[(1000, 1.0)]);
    let n = b.req.symbols.len() as u32;
    b.floats(&[("__name__", "bad")], &[(1000, 1.0), (2000, 2.0)])
        .labels_refs[1] = n + 40;
    b.floats(&[("__name__", "odd")], &[(1000, 1.0)])
        .labels_refs
        .push(1);
    b.floats(&[("__name__", "badhelp")], &[(1000, 1.0)])
        .metadata = Some(v2::Metadata {
        r#type: 1,
        help_ref: 999,
        unit_ref: 0,
    });
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(
        a.text
            .contains("rejected 4 of 5 samples (invalid_symbol_ref: 4)"),
        "{}",
        a.text
    );
    let symbols = b.req.symbols.len();
    assert!(
        a.text.contains(&format!(
            "first invalid series: label ref {} is out of range: the request has {symbols} symbols",
            n + 40
        )),
        "{}",
        a.text
    );
    assert_eq!(a.written(), Some((1, 0, 0)));
    assert_eq!(floats_of(&st.db, "good"), [(1000, 1.0)]);
    assert!(st.db.metadata(Some("badhelp"), None).is_empty());
}

#[tokio::test]
async fn a_bad_symbol_table_refuses_the_whole_request() {
    let st = state();
    let mut b = Builder::new();
    b.floats(&[("__name__", "up")], &[(1000, 1.0)]);
    b.req.symbols[0] = "oops".into();
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.text
            .contains("symbols[0] must be the empty string, got \"oops\""),
        "{}",
        a.text
    );
    assert_eq!(a.written(), Some((0, 0, 0)), "headers on refusals too");
    b.req.symbols.clear();
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text.contains("symbols table is empty"), "{}", a.text);
    // Not snappy, or not protobuf: refused, nothing written.
    let a = post(&st, b"not snappy".to_vec(), Some(V2)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.written(), Some((0, 0, 0)));
    let a = post(&st, snappy(&[0x22, 0x05, b'a']), Some(V2)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.text.contains("io.prometheus.write.v2.Request"),
        "{}",
        a.text
    );
    assert!(floats_of(&st.db, "up").is_empty());
}

#[tokio::test]
async fn partial_failures_report_what_was_written() {
    let st = state();
    let mut b = Builder::new();
    // One out-of-order float sample, one invalid histogram, one series without a name.
    b.floats(
        &[("__name__", "up")],
        &[(1000, 1.0), (2000, 2.0), (1500, 9.0)],
    );
    let mut bad = int_histogram(2000, 1);
    bad.count = Some(ph::Count::CountInt(1));
    b.histograms(&[("__name__", "lat")], vec![int_histogram(1000, 1), bad]);
    b.floats(&[("job", "x")], &[(1000, 1.0)]);
    let a = post_v2(&st, &b.req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(a.text.contains("rejected 3 of 6 samples"), "{}", a.text);
    assert!(a.text.contains("histogram_count_mismatch: 1"), "{}", a.text);
    assert!(a.text.contains("missing_metric_name: 1"), "{}", a.text);
    assert_eq!(a.written(), Some((2, 1, 0)));
    assert_eq!(floats_of(&st.db, "up"), [(1000, 1.0), (2000, 2.0)]);
    assert_eq!(histograms_of(&st.db, "lat").len(), 1);
}

#[test]
fn ingest_body_v2_reports_counts_directly() {
    let db = Db::in_memory();
    let mut b = Builder::new();
    b.floats(&[("__name__", "up")], &[(1000, 1.0)]);
    b.histograms(&[("__name__", "lat")], vec![int_histogram(1000, 1)]);
    let body = snappy(&b.req.encode_to_vec());
    let got = ingest_body_v2(&db, &RemoteWriteLimits::default(), &body).unwrap();
    assert!(got.is_complete(), "{:?}", got.partial_message());
    assert_eq!(
        (got.appended, got.samples_written, got.histograms_written),
        (2, 1, 1)
    );
    let raw = b.req.encode_to_vec();
    assert_eq!(
        decode_validate_count_v2(&raw, &RemoteWriteLimits::default()),
        Ok(2)
    );
}
