//! Loki push through the binary: protobuf+snappy, gzip JSON and the legacy JSON shape are
//! stored; Loki's refusals (400 naming the stream, 429 past the rate limit) leave the rest
//! stored; every acknowledged line is still there after `kill -9` and a restart, and after a
//! SIGTERM (which flushes the log head into a segment).

mod support;

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::{json, Value};
use sextant_ingest::loki::proto::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};
use support::{urlencode, Server};

const S: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn push(base: &str, ct: &str, encoding: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/loki/api/v1/push"))
        .header("content-type", ct)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Every line of `{job="push"}` in the last hour, oldest first.
async fn lines(base: &str) -> Vec<String> {
    let now = now_ns();
    let url = format!(
        "{base}/loki/api/v1/query_range?query={}&start={}&end={}&limit=5000&direction=forward",
        urlencode(r#"{job="push"}"#),
        now - 3600 * S,
        now + 60 * S
    );
    let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let mut out: Vec<(i64, String)> = v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|e| {
            (
                e[0].as_str().unwrap().parse().unwrap(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, l)| l).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_stored_refused_as_loki_and_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sextant.yml");
    std::fs::write(
        &config,
        "storage:\n  wal_fsync: always\nlogs:\n  max_line_bytes: 100\n  ingestion_rate_bytes: 2000\n  ingestion_burst_bytes: 2000\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("sextant.log");
    let mut server = Server::start(&config, &data, &log).await;
    let base = now_ns() - 60 * S;
    let mut expected: Vec<String> = Vec::new();

    // Protobuf + snappy (what Promtail and Alloy send).
    let req = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{job="push", via="proto"}"#.into(),
            entries: (0..5)
                .map(|i| EntryAdapter {
                    timestamp: Some(Timestamp::from_ns(base + i * S)),
                    line: format!("proto line {i}"),
                    structured_metadata: vec![],
                    parsed: vec![],
                })
                .collect(),
            hash: 0,
        }],
        format: String::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (status, text) = push(&server.base, "application/x-protobuf", None, body).await;
    assert_eq!(status, 204, "{text}");
    expected.extend((0..5).map(|i| format!("proto line {i}")));

    // Gzip JSON (v1) with one line too long for the limit: 400, the others stored.
    let v1 = json!({"streams": [{"stream": {"job": "push", "via": "json"}, "values": [
        [(base + 10 * S).to_string(), "json line"],
        [(base + 11 * S).to_string(), "x".repeat(150)]
    ]}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(v1.to_string().as_bytes()).unwrap();
    let (status, text) = push(
        &server.base,
        "application/json",
        Some("gzip"),
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        text.trim(),
        "Max entry size '100' bytes exceeded for stream '{job=\"push\", via=\"json\"}' while adding an entry with length '150' bytes"
    );
    expected.push("json line".into());

    // Legacy JSON with RFC 3339 times.
    let t = sextant_ingest::loki::validate::rfc3339(base + 20 * S);
    let legacy = json!({"streams": [{"labels": "{job=\"push\", via=\"legacy\"}", "entries": [
        {"ts": t.to_string(), "line": "legacy line"}
    ]}]});
    let (status, text) = push(
        &server.base,
        "application/json",
        None,
        legacy.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    expected.push("legacy line".into());

    // Bad labels: 400 naming them; past the rate limit: 429, nothing stored.
    let bad = json!({"streams": [{"labels": "{job=push}", "entries": [{"ts": t.to_string(), "line": "never"}]}]});
    let (status, text) = push(
        &server.base,
        "application/json",
        None,
        bad.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        text.starts_with("error parsing labels '{job=push}' with error:"),
        "{text}"
    );
    let flood = json!({"streams": [{"stream": {"job": "push"}, "values": (0..30)
        .map(|i| json!([(base + 30 * S + i).to_string(), "y".repeat(90)]))
        .collect::<Vec<_>>()}]});
    let (status, text) = push(
        &server.base,
        "application/json",
        None,
        flood.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 429);
    assert!(text.starts_with("Ingestion rate limit exceeded"), "{text}");

    assert_eq!(lines(&server.base).await, expected);
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sextant_log_lines_discarded_total{reason=\"rate_limited\"} 30"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sextant_log_lines_received_total 7"),
        "{metrics}"
    );

    // kill -9, restart: every acknowledged line is back.
    server.kill();
    let mut server = Server::start(&config, &data, &log).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = lines(&server.base).await;
        if got == expected || std::time::Instant::now() > deadline {
            assert_eq!(got, expected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM flushes the head into a segment; the lines are still there after a restart.
    server.terminate().await;
    let segments = std::fs::read_dir(data.join("logs/segments"))
        .unwrap()
        .count();
    assert!(segments > 0, "no segment written at shutdown");
    let server = Server::start(&config, &data, &log).await;
    assert_eq!(lines(&server.base).await, expected);
}
