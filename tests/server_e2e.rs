//! End-to-end tests of the `sextant` binary: remote write in, the HTTP API out, acknowledged
//! writes surviving `kill -9`, graceful shutdown on SIGTERM, and configuration errors.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use sextant_ingest::remote_write::{ProtoLabel, ProtoSample, TimeSeries, WriteRequest};

/// A running server, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(data_dir: &Path) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sextant");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{}/-/ready", server.base)).send().await {
            if r.status() == 200 {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "sextant did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> TimeSeries {
    let label = |n: &str, v: &str| ProtoLabel {
        name: n.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    };
    TimeSeries {
        labels: vec![label("__name__", name), label("job", job)],
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

async fn remote_write(base: &str, timeseries: Vec<TimeSeries>) -> reqwest::StatusCode {
    let body = WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    let compressed = snap::raw::Encoder::new().compress_vec(&body).unwrap();
    reqwest::Client::new()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(compressed)
        .send()
        .await
        .unwrap()
        .status()
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The values of every series matching `selector` in [0, end], via a PromQL range selector.
async fn stored_values(
    base: &str,
    selector: &str,
    end_s: i64,
) -> Vec<(String, Vec<(f64, String)>)> {
    let url = format!(
        "{base}/api/v1/query?query={}&time={end_s}",
        // Ranges are left-open: one extra second keeps a sample at t=0 inside.
        urlencode(&format!("{selector}[{}s]", end_s + 1))
    );
    let body = get_json(&url).await;
    assert_eq!(body["status"], "success", "{body}");
    let mut out: Vec<(String, Vec<(f64, String)>)> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_string()))
                .collect();
            (
                s["metric"]["job"].as_str().unwrap_or("").to_string(),
                values,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut expected: Vec<(i64, f64)> = Vec::new();
    {
        let server = start(tmp.path()).await;
        for batch in 0..20i64 {
            let samples: Vec<(i64, f64)> = (0..50)
                .map(|i| ((batch * 50 + i) * 1000, (batch * 50 + i) as f64 * 0.5))
                .collect();
            let status =
                remote_write(&server.base, vec![series("e2e_metric", "a", &samples)]).await;
            assert_eq!(status, 204);
            expected.extend(samples);
        }
        // A stale marker must come back with its exact bit pattern (as the string "NaN").
        assert_eq!(
            remote_write(
                &server.base,
                vec![series("e2e_metric", "b", &[(5000, 7.0)])]
            )
            .await,
            204
        );
        let metrics = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("sextant_samples_appended_total 1001"),
            "{metrics}"
        );
        // `server` drops here: SIGKILL, no chance to flush anything.
    }
    let server = start(tmp.path()).await;
    let got = stored_values(&server.base, "e2e_metric", 1000).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let a: Vec<(i64, f64)> = got[0]
        .1
        .iter()
        .map(|(t, v)| ((t * 1000.0).round() as i64, v.parse().unwrap()))
        .collect();
    assert_eq!(a.len(), expected.len());
    let first_diff = a.iter().zip(&expected).position(|(x, y)| x != y);
    assert_eq!(first_diff, None, "first differing sample");
    assert_eq!(got[1].1, vec![(5.0, "7".to_string())]);

    // Writing after the restart continues the same series; older samples are refused per sample.
    let status = remote_write(
        &server.base,
        vec![series("e2e_metric", "a", &[(0, 1.0), (2_000_000, 2.0)])],
    )
    .await;
    assert_eq!(status, 400);
    let after = stored_values(&server.base, "e2e_metric{job=\"a\"}", 2000).await;
    assert_eq!(after[0].1.len(), expected.len() + 1);
}

#[tokio::test]
async fn series_and_labels_endpoints_see_remote_written_data() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path()).await;
    let status = remote_write(
        &server.base,
        vec![
            series("up", "node", &[(1000, 1.0)]),
            series("up", "api", &[(1000, 0.0)]),
            series("other", "node", &[(1000, 3.0)]),
        ],
    )
    .await;
    assert_eq!(status, 204);
    let body = get_json(&format!(
        "{}/api/v1/series?match[]=up&start=0&end=10",
        server.base
    ))
    .await;
    let mut jobs: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["job"].as_str().unwrap())
        .collect();
    jobs.sort();
    assert_eq!(jobs, vec!["api", "node"]);
    let body = get_json(&format!("{}/api/v1/label/__name__/values", server.base)).await;
    assert_eq!(body["data"], serde_json::json!(["other", "up"]));
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start(tmp.path()).await;
    assert_eq!(
        remote_write(&server.base, vec![series("m", "a", &[(1, 1.0)])]).await,
        204
    );
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sextant did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn unknown_config_keys_are_an_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sextant.yml");
    std::fs::write(&config, "storage:\n  data_dir: /tmp/x\n  retension: 15d\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retension"), "{stderr}");
}
