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

/// An integer native histogram of schema 0: zero bucket `zero`, buckets (0.5,1] and (1,2].
fn native_histogram(
    t: i64,
    zero: u64,
    b1: u64,
    b2: u64,
    sum: f64,
) -> sextant_ingest::remote_write::ProtoHistogram {
    use sextant_ingest::remote_write::{proto_histogram, ProtoBucketSpan, ProtoHistogram};
    ProtoHistogram {
        count: Some(proto_histogram::Count::CountInt(zero + b1 + b2)),
        sum,
        schema: 0,
        zero_threshold: 0.001,
        zero_count: Some(proto_histogram::ZeroCount::ZeroCountInt(zero)),
        positive_spans: vec![ProtoBucketSpan {
            offset: 0,
            length: 2,
        }],
        // Integer histograms carry bucket counts as deltas from the previous bucket.
        positive_deltas: vec![b1 as i64, b2 as i64 - b1 as i64],
        timestamp: t,
        ..Default::default()
    }
}

#[tokio::test]
async fn native_histograms_round_trip_through_remote_write_promql_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |body: Value| {
        assert_eq!(body["status"], "success", "{body}");
        body["data"]["result"].clone()
    };
    {
        let server = start(tmp.path()).await;
        let mut ts = series(&[("__name__", "rpc_duration_seconds"), ("job", "api")], &[]);
        ts.histograms = vec![
            native_histogram(0, 1, 2, 3, 7.5),
            native_histogram(60_000, 2, 3, 5, 12.0),
        ];
        assert_eq!(write(&server.base, vec![ts]).await, 204);
        // `server` drops here: SIGKILL; the histograms must come back from the WAL.
    }
    let server = start(tmp.path()).await;
    let q = |expr: &str, time: &str| {
        format!(
            "{}/api/v1/query?query={}&time={time}",
            server.base,
            urlencode(expr)
        )
    };
    let result = check(get_json(&q("rpc_duration_seconds", "60")).await);
    assert_eq!(
        result[0]["histogram"],
        serde_json::json!([60, {
            "count": "10",
            "sum": "12",
            // Boundary rules: 3 = both ends closed (the zero bucket), 0 = open left.
            "buckets": [[3, "-0.001", "0.001", "2"], [0, "0.5", "1", "3"], [0, "1", "2", "5"]]
        }]),
        "{result}"
    );
    assert!(result[0].get("value").is_none(), "{result}");

    // Rank 5 of 10 ends exactly at the upper bound of (0.5,1].
    let result = check(get_json(&q("histogram_quantile(0.5, rpc_duration_seconds)", "60")).await);
    assert_eq!(result[0]["value"][1], "1", "{result}");
    let result = check(get_json(&q("histogram_count(rpc_duration_seconds)", "0")).await);
    assert_eq!(result[0]["value"][1], "6", "{result}");
    // The difference of the two histograms as a gauge histogram: 4 observations more.
    let result = check(
        get_json(&q(
            "histogram_count(rpc_duration_seconds - rpc_duration_seconds offset 1m)",
            "60",
        ))
        .await,
    );
    assert_eq!(result[0]["value"][1], "4", "{result}");

    let range = get_json(&format!(
        "{}/api/v1/query_range?query={}&start=0&end=60&step=60",
        server.base,
        urlencode("rpc_duration_seconds")
    ))
    .await;
    let result = check(range);
    let points = result[0]["histograms"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{result}");
    assert_eq!(points[0][0], 0);
    assert_eq!(points[0][1]["count"], "6");
    assert_eq!(points[1][1]["sum"], "12");
}
