//! End-to-end tests of the `sextant` binary: remote write in, the HTTP API out, acknowledged
//! writes surviving `kill -9`, graceful shutdown on SIGTERM, and configuration errors.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{remote_write, series, urlencode, write_config, Server};

async fn start(dir: &Path) -> Server {
    let config = write_config(dir, &["wal_fsync: always"]);
    Server::start(&config, &dir.join("data"), &dir.join("sextant.log")).await
}

async fn write(base: &str, timeseries: Vec<sextant_ingest::remote_write::TimeSeries>) -> u16 {
    remote_write(&reqwest::Client::new(), base, timeseries)
        .await
        .expect("a response")
        .as_u16()
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The values of every series matching `selector` in [0, end], via a PromQL range selector,
/// keyed by the `job` label.
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
            let status = write(
                &server.base,
                vec![series(
                    &[("__name__", "e2e_metric"), ("job", "a")],
                    &samples,
                )],
            )
            .await;
            assert_eq!(status, 204);
            expected.extend(samples);
        }
        assert_eq!(
            write(
                &server.base,
                vec![series(
                    &[("__name__", "e2e_metric"), ("job", "b")],
                    &[(5000, 7.0)]
                )]
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
    let status = write(
        &server.base,
        vec![series(
            &[("__name__", "e2e_metric"), ("job", "a")],
            &[(0, 1.0), (2_000_000, 2.0)],
        )],
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
    let status = write(
        &server.base,
        vec![
            series(&[("__name__", "up"), ("job", "node")], &[(1000, 1.0)]),
            series(&[("__name__", "up"), ("job", "api")], &[(1000, 0.0)]),
            series(&[("__name__", "other"), ("job", "node")], &[(1000, 3.0)]),
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
        write(
            &server.base,
            vec![series(&[("__name__", "m"), ("job", "a")], &[(1, 1.0)])]
        )
        .await,
        204
    );
    // Asserts a zero exit status within a deadline.
    server.terminate().await;
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
