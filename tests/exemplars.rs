//! Exemplars end to end through the binary: the same remote-write requests (1.0, with
//! exemplars, duplicates and out-of-order ones) go to Sextant and to Debian's Prometheus
//! (`--enable-feature=exemplar-storage`); `/api/v1/query_exemplars` must answer the same JSON
//! on both, and Sextant must answer it again after `kill -9` and a restart (the WAL replays the
//! exemplars). A second Sextant with `max_exemplars: 3` keeps only the newest three.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::Value;
use sextant_ingest::remote_write::{ProtoExemplar, ProtoLabel, TimeSeries, WriteRequest};
use support::{api_get, metric_value, metrics_text, series, write_config, Prometheus, Server};

fn label(n: &str, v: &str) -> ProtoLabel {
    ProtoLabel {
        name: n.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    }
}

/// An encoded 1.0 exemplar.
fn exemplar(labels: &[(&str, &str)], value: f64, t: i64) -> Vec<u8> {
    ProtoExemplar {
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        value,
        timestamp: t,
    }
    .encode_to_vec()
}

fn with_exemplars(mut ts: TimeSeries, exemplars: Vec<Vec<u8>>) -> TimeSeries {
    ts.exemplars = exemplars;
    ts
}

/// Posts a remote write 1.0 request and returns the status.
async fn write(client: &reqwest::Client, base: &str, timeseries: Vec<TimeSeries>) -> u16 {
    let body = WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&body)
        .expect("snappy");
    let resp = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(compressed)
        .send()
        .await
        .expect("remote write");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!(status == 204 || status == 200, "{base}: {status} {text}");
    status
}

/// Two requests: the second resends one exemplar (duplicate), sends one older than the
/// newest of its series (out of order) and adds new ones. Timestamps are recent, as
/// Prometheus' head requires.
fn requests(now: i64) -> Vec<Vec<TimeSeries>> {
    let t0 = now - 60_000;
    fn req(job: &str) -> Vec<(&str, &str)> {
        vec![
            ("__name__", "http_requests_total"),
            ("code", "200"),
            ("job", job),
        ]
    }
    let bucket = |le: &'static str| {
        vec![
            ("__name__", "rpc_duration_seconds_bucket"),
            ("job", "api"),
            ("le", le),
        ]
    };
    let trace = |id: &str| vec![("trace_id", id.to_string())];
    let ex = |id: &str, v: f64, t: i64| {
        let l = trace(id);
        let pairs: Vec<(&str, &str)> = l.iter().map(|(n, v)| (*n, v.as_str())).collect();
        exemplar(&pairs, v, t)
    };
    let first = vec![
        with_exemplars(
            series(&req("api"), &[(t0, 1.0), (t0 + 15_000, 3.0)]),
            vec![ex("aaaa", 1.0, t0 - 500), ex("bbbb", 2.0, t0 + 14_000)],
        ),
        with_exemplars(
            series(&req("web"), &[(t0, 5.0)]),
            vec![exemplar(
                &[("span_id", "00f067aa0ba902b7"), ("trace_id", "cccc")],
                0.125,
                t0,
            )],
        ),
        with_exemplars(
            series(&bucket("0.5"), &[(t0, 2.0)]),
            vec![ex("dddd", 0.31, t0 - 100)],
        ),
        with_exemplars(
            series(&bucket("+Inf"), &[(t0, 4.0)]),
            vec![ex("eeee", 7.5, t0 - 50)],
        ),
        // A series without exemplars.
        series(&[("__name__", "up"), ("job", "api")], &[(t0, 1.0)]),
    ];
    let second = vec![with_exemplars(
        series(&req("api"), &[(t0 + 30_000, 4.0)]),
        vec![
            ex("bbbb", 2.0, t0 + 14_000),
            ex("late", 9.0, t0 + 1_000),
            ex("ffff", 1e-7, t0 + 29_001),
        ],
    )];
    vec![first, second]
}

/// The queries both servers answer: `(query, start, end)` in seconds (as text).
fn queries(now: i64) -> Vec<(String, String, String)> {
    let s = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let (from, to) = (s(now - 120_000), s(now));
    vec![
        ("http_requests_total".into(), from.clone(), to.clone()),
        (
            "sum(rate(http_requests_total{job=~\"a.*\"}[5m])) / on() group_left histogram_quantile(0.9, rpc_duration_seconds_bucket)".into(),
            from.clone(),
            to.clone(),
        ),
        ("{job=\"api\"}".into(), from.clone(), to.clone()),
        // Part of the range only (inclusive bounds).
        (
            "http_requests_total".into(),
            s(now - 60_000 + 14_000),
            s(now - 60_000 + 29_000),
        ),
        ("up".into(), from.clone(), to.clone()),
        ("nothing_here".into(), from, to),
    ]
}

async fn exemplars_of(client: &reqwest::Client, base: &str, q: &(String, String, String)) -> Value {
    api_get(
        client,
        base,
        "/api/v1/query_exemplars",
        &[
            ("query", q.0.clone()),
            ("start", q.1.clone()),
            ("end", q.2.clone()),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{base} {q:?}: {e}"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn query_exemplars_matches_prometheus_and_survives_kill_9() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::new();
    let prometheus =
        Prometheus::start_with_args(tmp.path(), &["--enable-feature=exemplar-storage"]).await;
    let config = write_config(tmp.path(), &["wal_fsync: always"]);
    let data = tmp.path().join("sextant-data");
    let log = tmp.path().join("sextant.log");
    let mut sextant = Server::start(&config, &data, &log).await;

    let now = now_ms();
    for req in requests(now) {
        write(&client, &prometheus.base, req.clone()).await;
        write(&client, &sextant.base, req).await;
    }

    let mut answers = Vec::new();
    for q in queries(now) {
        let theirs = exemplars_of(&client, &prometheus.base, &q).await;
        let ours = exemplars_of(&client, &sextant.base, &q).await;
        assert_eq!(ours, theirs, "query {q:?}");
        answers.push(ours);
    }
    // The answers are not trivially empty: 3 + 1 exemplars on http_requests_total (one
    // duplicate and one out-of-order refused); the expression's selectors together pick
    // job="api"'s 3 and the two buckets' ones.
    let count = |v: &Value| -> usize {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["exemplars"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(0)
    };
    assert_eq!(count(&answers[0]), 4, "{}", answers[0]);
    assert_eq!(count(&answers[1]), 5, "{}", answers[1]);
    assert_eq!(count(&answers[2]), 5, "{}", answers[2]);
    assert_eq!(count(&answers[3]), 1, "{}", answers[3]);
    assert_eq!(answers[4], Value::Array(vec![]));
    let text = metrics_text(&client, &sextant.base).await;
    assert_eq!(
        metric_value(&text, "sextant_tsdb_exemplar_exemplars_appended_total"),
        Some(6.0)
    );
    assert_eq!(
        metric_value(&text, "sextant_tsdb_exemplar_out_of_order_exemplars_total"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "sextant_tsdb_exemplar_exemplars_in_storage"),
        Some(6.0)
    );

    // kill -9, restart: the WAL brings every acknowledged exemplar back.
    sextant.kill();
    let sextant = Server::start(&config, &data, &log).await;
    for (q, before) in queries(now).iter().zip(&answers) {
        let after = exemplars_of(&client, &sextant.base, q).await;
        assert_eq!(&after, before, "after restart, query {q:?}");
    }
    // Refusals are still judged against the replayed exemplars.
    write(
        &client,
        &sextant.base,
        vec![with_exemplars(
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("code", "200"),
                    ("job", "api"),
                ],
                &[],
            ),
            vec![exemplar(&[("trace_id", "old")], 1.0, now - 60_000)],
        )],
    )
    .await;
    let text = metrics_text(&client, &sextant.base).await;
    assert_eq!(
        metric_value(&text, "sextant_tsdb_exemplar_out_of_order_exemplars_total"),
        Some(1.0)
    );
    drop(sextant);

    // A small ring keeps the newest exemplars across all series.
    let small = tmp.path().join("small");
    std::fs::create_dir_all(&small).expect("dir");
    let config = write_config(&small, &["max_exemplars: 3"]);
    let sextant = Server::start(&config, &data, &log).await;
    let all = exemplars_of(
        &client,
        &sextant.base,
        &(
            "{__name__=~\".+\"}".into(),
            "0".into(),
            format!("{}", now / 1000 + 1),
        ),
    )
    .await;
    let mut kept: Vec<String> = all
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .map(|e| e["labels"]["trace_id"].as_str().unwrap_or("").to_string())
        .collect();
    kept.sort();
    // Replay follows append order: the last three stored were the first request's bucket
    // exemplars and the second request's new one.
    assert_eq!(kept, ["dddd", "eeee", "ffff"], "{all}");
}
