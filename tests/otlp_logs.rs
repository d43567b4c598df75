//! Python's `opentelemetry-sdk` logging handler exports log records (inside spans) over
//! OTLP/gRPC and OTLP/HTTP to a `sextant` started by the test; each record is then found
//! through the Loki API by its trace id, with `service_name` as stream label, the severity as
//! `detected_level` and the span id as structured metadata.
//!
//! Needs the Python SDK in `${XDG_CACHE_HOME:-$HOME/.cache}/sextant-venv`
//! (`scripts/install-test-deps.sh` installs it).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::{free_port, urlencode, venv_python, Server};

/// One exported record as the script reports it.
struct Sent {
    trace_id: String,
    span_id: String,
    level: String,
    message: String,
}

fn export(
    python: &PathBuf,
    protocol: &str,
    endpoint: &str,
    service: &str,
    marker: &str,
    log: &std::path::Path,
) -> Vec<Sent> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/export_logs.py");
    let out = Command::new(python)
        .args([script, protocol, endpoint, service, marker])
        .output()
        .expect("run the Python exporter");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "export {marker} failed: {}\nstdout: {stdout}\nstderr: {}\nsextant log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        support::tail_of(log)
    );
    stdout
        .lines()
        .filter(|l| *l != "ok")
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let mut next = || parts.next().unwrap_or_default().to_string();
            Sent {
                trace_id: next(),
                span_id: next(),
                level: next(),
                message: next(),
            }
        })
        .collect()
}

async fn find_by_trace(base: &str, service: &str, trace_id: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // The trace id is structured metadata, so a label filter finds it.
    let query = format!(r#"{{service_name="{service}"}} | trace_id="{trace_id}""#);
    let url = format!(
        "{base}/loki/api/v1/query_range?query={}&start={}&end={}&limit=100&direction=forward",
        urlencode(&query),
        now - 3600 * 1_000_000_000,
        now + 60 * 1_000_000_000
    );
    let resp = reqwest::Client::new()
        .get(url)
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_logs_are_found_by_trace_id() {
    let python = venv_python();
    let tmp = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let config = tmp.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!("storage:\n  wal_fsync: never\notlp:\n  grpc_addr: 127.0.0.1:{grpc}\n  http_addr: 127.0.0.1:{http}\n"),
    )
    .unwrap();
    let log = tmp.path().join("sextant.log");
    let server = Server::start(&config, &tmp.path().join("data"), &log).await;

    let runs = [
        ("grpc", format!("http://127.0.0.1:{grpc}"), "py-grpc", "g1"),
        (
            "http",
            format!("http://127.0.0.1:{http}/v1/logs"),
            "py-http",
            "h1",
        ),
        ("http", format!("{}/v1/logs", server.base), "py-main", "m1"),
    ];
    for (protocol, endpoint, service, marker) in runs {
        let sent = export(&python, protocol, &endpoint, service, marker, &log);
        assert_eq!(sent.len(), 3);
        for s in &sent {
            let v = find_by_trace(&server.base, service, &s.trace_id).await;
            let result = v["data"]["result"].as_array().unwrap();
            assert_eq!(result.len(), 1, "{service} {}: {v}", s.trace_id);
            let stream = &result[0]["stream"];
            assert_eq!(stream["service_name"], service);
            assert_eq!(stream["deployment_environment"], "test");
            let values = result[0]["values"].as_array().unwrap();
            assert_eq!(values.len(), 1, "{v}");
            assert_eq!(values[0][1], s.message.as_str());
            let meta = &values[0][2]["structuredMetadata"];
            assert_eq!(meta["trace_id"], s.trace_id.as_str());
            assert_eq!(meta["span_id"], s.span_id.as_str());
            let expected_level = if s.level == "warning" {
                "warn"
            } else {
                s.level.as_str()
            };
            assert_eq!(meta["detected_level"], expected_level, "{v}");
            assert_eq!(meta["host_name"], "py-host");
            assert_eq!(meta["order_id"], "o-17");
        }
    }
    // The volume by detected level over one service, as Grafana's histogram asks.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let q = r#"sum by (detected_level) (count_over_time({service_name="py-http"}[1h]))"#;
    let v: Value = reqwest::Client::new()
        .get(format!(
            "{}/loki/api/v1/query?query={}&time={now}",
            server.base,
            urlencode(q)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut levels: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["detected_level"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    levels.sort();
    assert_eq!(
        levels,
        [
            ("error".to_string(), "1".to_string()),
            ("info".into(), "1".into()),
            ("warn".into(), "1".into())
        ],
        "{}",
        json!(v)
    );
}
