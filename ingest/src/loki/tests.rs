//! Handler tests over a recording sink: status codes, body shapes and what reaches storage.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use parking_lot::Mutex;
use sextant_storage::logs::LogStreamBatch;
use tower::ServiceExt;

use super::*;

#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<LogStreamBatch>>,
}

impl LogSink for Recorder {
    fn append_logs(&self, batches: &[LogStreamBatch]) -> Result<Vec<Refusal>, String> {
        self.batches.lock().extend_from_slice(batches);
        Ok(Vec::new())
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/conformance/loki/push/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn setup(opts: LokiPushOptions) -> (Router, Arc<Recorder>) {
    let state = LokiPushState::new(opts);
    let rec = Arc::new(Recorder::default());
    state.set_sink(rec.clone());
    (router(state), rec)
}

fn no_age_limit() -> LokiPushOptions {
    LokiPushOptions {
        reject_old_samples_max_age: None,
        ..LokiPushOptions::default()
    }
}

async fn send(app: &Router, headers: &[(&str, &str)], body: Vec<u8>) -> (StatusCode, String) {
    let mut req = Request::post("/loki/api/v1/push");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn lines(rec: &Recorder) -> Vec<String> {
    rec.batches
        .lock()
        .iter()
        .flat_map(|b| b.entries.iter().map(|e| e.line.clone()))
        .collect()
}

#[tokio::test]
async fn protobuf_snappy_push_is_stored_and_answers_204() {
    let (app, rec) = setup(no_age_limit());
    let (status, body) = send(
        &app,
        &[("content-type", "application/x-protobuf")],
        fixture("push-request.pb.snappy"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        lines(&rec),
        [
            "order 1001 accepted",
            "order 1002 accepted",
            "payment for order 1001 captured",
            "payment for order 1002 declined: insufficient funds"
        ]
    );
    let batches = rec.batches.lock();
    assert_eq!(batches[0].labels.get("service_name"), Some("checkout"));
    assert_eq!(batches[0].entries[2].metadata[0].0, "trace_id");
}

#[tokio::test]
async fn gzip_json_push_is_stored() {
    use std::io::Write;
    let (app, rec) = setup(no_age_limit());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&fixture("v1-structured-metadata.json"))
        .unwrap();
    let (status, _) = send(
        &app,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(lines(&rec).len(), 3);
    assert_eq!(rec.batches.lock()[0].entries[0].metadata.len(), 2);
}

#[tokio::test]
async fn snappy_content_encoding_and_uncompressed_protobuf_are_accepted() {
    let (app, rec) = setup(no_age_limit());
    let (status, _) = send(
        &app,
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "snappy"),
        ],
        fixture("push-request.pb.snappy"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&app, &[], fixture("push-request.pb")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(lines(&rec).len(), 8);
}

#[tokio::test]
async fn bad_bodies_answer_400_with_a_message_and_store_nothing() {
    let (app, rec) = setup(no_age_limit());
    let (status, body) = send(
        &app,
        &[("content-type", "application/json")],
        b"{\"streams\": [".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("invalid JSON"), "{body}");
    let (status, body) = send(
        &app,
        &[("content-type", "application/x-protobuf")],
        b"\xff\xff\xff garbage".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("snappy"), "{body}");
    let (status, _) = send(&app, &[("content-encoding", "br")], b"x".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(lines(&rec).is_empty());
}

#[tokio::test]
async fn partial_refusal_stores_the_valid_streams_and_answers_400() {
    let (app, rec) = setup(LokiPushOptions::default());
    let now = now_ns();
    let body = format!(
        r#"{{"streams":[
            {{"stream":{{"job":"ok"}},"values":[["{now}","kept"],["1000","ancient"]]}},
            {{"stream":{{"bad-name":"x"}},"values":[["{now}","refused"]]}}
        ]}}"#
    );
    let (status, text) = send(
        &app,
        &[("content-type", "application/json")],
        body.into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(lines(&rec), ["kept"]);
    let msgs: Vec<&str> = text.lines().collect();
    assert_eq!(msgs.len(), 2, "{text}");
    assert!(
        msgs[0].starts_with(
            "entry for stream '{job=\"ok\"}' has timestamp too old: 1970-01-01T00:00:00.000001Z"
        ),
        "{text}"
    );
    assert!(
        msgs[1]
            .starts_with("error parsing labels '{bad-name=\"x\"}' with error: invalid label name"),
        "{text}"
    );
}

#[tokio::test]
async fn rate_limit_answers_429_and_stores_nothing() {
    let (app, rec) = setup(LokiPushOptions {
        ingestion_rate_bytes: 10.0,
        ingestion_burst_bytes: 10.0,
        reject_old_samples_max_age: None,
        ..LokiPushOptions::default()
    });
    let (status, text) = send(
        &app,
        &[("content-type", "application/json")],
        fixture("v1-basic.json"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        text.starts_with("Ingestion rate limit exceeded for user fake (limit: 10 bytes/sec) while attempting to ingest '4' lines totaling '"),
        "{text}"
    );
    assert!(lines(&rec).is_empty());
}

#[tokio::test]
async fn push_before_storage_is_open_answers_503() {
    let app = router(LokiPushState::new(LokiPushOptions::default()));
    let (status, _) = send(
        &app,
        &[("content-type", "application/json")],
        fixture("v1-basic.json"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn pushes_reach_the_log_store_and_its_refusals_come_back() {
    use sextant_storage::logs::{Direction, LogQuery, LogSource, LogStore, LogStoreOptions};
    let store = Arc::new(LogStore::in_memory_with(LogStoreOptions {
        reject_old_max_age: None,
        creation_grace: None,
        out_of_order_window: Some(std::time::Duration::from_secs(60)),
        ..LogStoreOptions::permissive()
    }));
    let state = LokiPushState::new(no_age_limit());
    state.set_sink(store.clone());
    let app = router(state);
    let (status, _) = send(
        &app,
        &[("content-type", "application/x-protobuf")],
        fixture("push-request.pb.snappy"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let matchers = [sextant_storage::Matcher::equal("service_name", "checkout")];
    let mut seen: Vec<(String, Vec<(String, String)>)> = Vec::new();
    store
        .scan(
            &LogQuery {
                matchers: &matchers,
                start_ns: 0,
                end_ns: i64::MAX,
                direction: Direction::Forward,
                needles: &[],
            },
            &mut |_, e| {
                seen.push((e.line.clone(), e.metadata.clone()));
                true
            },
        )
        .unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2].1[0].1, "4bf92f3577b34da6a3ce929d0e0e4736");
    // An entry two hours behind its stream's newest is outside the store's window.
    let body = r#"{"streams":[{"stream":{"job":"conformance","level":"info","service_name":"checkout"},"values":[["1714550000000000000","late"]]}]}"#;
    let (status, text) = send(&app, &[("content-type", "application/json")], body.into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.contains("too far behind")
            || text.contains("too_far_behind")
            || text.contains("out of order"),
        "{text}"
    );
}

#[test]
fn counters_follow_accepted_and_refused_lines() {
    let state = LokiPushState::new(LokiPushOptions {
        max_line_bytes: 4,
        reject_old_samples_max_age: None,
        ..LokiPushOptions::default()
    });
    state.set_sink(Arc::new(Recorder::default()));
    let streams = decode_json(
        br#"{"streams":[{"stream":{"a":"b"},"values":[["1","ok"],["2","too long"]]}]}"#,
    )
    .unwrap();
    let refusals = state.push_blocking(streams).unwrap();
    assert_eq!(refusals.len(), 1);
    let m = state.metrics();
    assert_eq!(m.lines_received.get(), 1);
    let key = vec![("reason".to_string(), "line_too_long".to_string())];
    assert_eq!(m.lines_discarded.get_or_create(&key).get(), 1);
    assert_eq!(m.bytes_discarded.get_or_create(&key).get(), 8);
}
