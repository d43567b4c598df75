//! A real OpenTelemetry client against a `sextant` started by the test: Python's
//! `opentelemetry-sdk` exports a counter, an up-down counter, a gauge, an explicit-bucket and an
//! exponential histogram, with cumulative and delta temporality, over OTLP/gRPC, OTLP/HTTP on
//! the dedicated port and OTLP/HTTP on the main port (Prometheus' path); PromQL then returns
//! what the SDK recorded.
//!
//! Needs the Python SDK in `${XDG_CACHE_HOME:-$HOME/.cache}/sextant-venv`
//! (`scripts/install-test-deps.sh` installs it).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{free_port, urlencode, Server};

fn venv_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        });
    let python = cache.join("sextant-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-deps.sh (it installs the OpenTelemetry Python \
         SDK into that venv) and rerun the tests",
        python.display()
    );
    python
}

struct Setup {
    _tmp: tempfile::TempDir,
    server: Server,
}

/// Starts sextant with OTLP listeners on free ports and runs the four exports:
/// `gc` gRPC cumulative, `gd` gRPC delta, `hc` HTTP (dedicated port) cumulative, `hd` HTTP
/// (main port, `/api/v1/otlp/v1/metrics`) delta.
async fn start_and_export() -> Setup {
    let python = venv_python();
    let tmp = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let config = tmp.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  wal_fsync: never\notlp:\n  grpc_addr: 127.0.0.1:{grpc}\n  http_addr: 127.0.0.1:{http}\n"
        ),
    )
    .unwrap();
    let log = tmp.path().join("sextant.log");
    let server = Server::start(&config, &tmp.path().join("data"), &log).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/export.py");
    let runs = [
        (
            "grpc",
            format!("http://127.0.0.1:{grpc}"),
            "cumulative",
            "gc",
        ),
        ("grpc", format!("http://127.0.0.1:{grpc}"), "delta", "gd"),
        (
            "http",
            format!("http://127.0.0.1:{http}/v1/metrics"),
            "cumulative",
            "hc",
        ),
        (
            "http",
            format!("{}/api/v1/otlp/v1/metrics", server.base),
            "delta",
            "hd",
        ),
    ];
    for (protocol, endpoint, temporality, prefix) in runs {
        let out = Command::new(&python)
            .arg(script)
            .args([
                protocol,
                &endpoint,
                temporality,
                &format!("svc-{prefix}"),
                prefix,
            ])
            .output()
            .expect("run the Python exporter");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
            "export {prefix} failed: {}\nstdout: {}\nstderr: {}\nsextant log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            support::tail_of(&log)
        );
    }
    Setup { _tmp: tmp, server }
}

/// The result vector of an instant query at the current time.
async fn query(base: &str, q: &str) -> Vec<Value> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/query?query={}", urlencode(q)))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{q}: {body}");
    assert_eq!(body["data"]["resultType"], "vector", "{q}: {body}");
    body["data"]["result"].as_array().unwrap().clone()
}

/// The single value `q` returns.
async fn value(base: &str, q: &str) -> f64 {
    let result = query(base, q).await;
    assert_eq!(result.len(), 1, "{q}: {result:?}");
    result[0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_are_queryable_with_promql() {
    let s = start_and_export().await;
    let base = &s.server.base;
    for p in ["gc", "gd", "hc", "hd"] {
        let sel = format!(r#"{{job="otlptest/svc-{p}",instance="instance-1",route="/checkout"}}"#);
        let v = |name: &str| format!("{p}_{name}{sel}");
        assert_eq!(value(base, &v("requests_total")).await, 7.0, "{p}");
        assert_eq!(value(base, &v("queue")).await, 7.0, "{p}");
        assert_eq!(value(base, &v("temp_celsius")).await, 42.5, "{p}");
        let bucket = |le: &str| {
            format!(
                r#"{p}_latency_seconds_bucket{{job="otlptest/svc-{p}",route="/checkout",le="{le}"}}"#
            )
        };
        assert_eq!(value(base, &bucket("0.25")).await, 1.0, "{p}");
        assert_eq!(value(base, &bucket("1")).await, 2.0, "{p}");
        assert_eq!(value(base, &bucket("+Inf")).await, 3.0, "{p}");
        assert_eq!(value(base, &v("latency_seconds_count")).await, 3.0, "{p}");
        let sum = value(base, &v("latency_seconds_sum")).await;
        assert!((sum - 2.4).abs() < 1e-9, "{p}: sum {sum}");
        // Resource attributes other than service.* are on target_info.
        let info = query(base, &format!(r#"target_info{{job="otlptest/svc-{p}"}}"#)).await;
        assert_eq!(info.len(), 1, "{info:?}");
        assert_eq!(
            info[0]["metric"]["deployment_environment"], "ci",
            "{info:?}"
        );
        assert_eq!(info[0]["metric"]["instance"], "instance-1", "{info:?}");
    }
    // Metadata (type, unit, help) is kept.
    let resp: Value = reqwest::get(format!("{base}/api/v1/metadata?metric=gc_requests_total"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp["data"]["gc_requests_total"][0]["type"], "counter",
        "{resp}"
    );
    assert_eq!(
        resp["data"]["gc_requests_total"][0]["help"], "Requests served",
        "{resp}"
    );
    // The exponential histograms are stored as native histogram series.
    let resp: Value = reqwest::get(format!(
        "{base}/api/v1/series?match[]={}",
        urlencode(r#"{__name__=~"g._size_bytes|h._size_bytes"}"#)
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(resp["data"].as_array().map(Vec::len), Some(4), "{resp}");
}

/// Needs the native-histogram query engine: exponential histograms come back as native
/// histograms with the SDK's count and sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exponential_histograms_are_native_histograms() {
    let s = start_and_export().await;
    let base = &s.server.base;
    for p in ["gc", "gd", "hc", "hd"] {
        let sel = format!(r#"{p}_size_bytes{{job="otlptest/svc-{p}",route="/checkout"}}"#);
        assert_eq!(
            value(base, &format!("histogram_count({sel})")).await,
            4.0,
            "{p}"
        );
        assert_eq!(
            value(base, &format!("histogram_sum({sel})")).await,
            1007.0,
            "{p}"
        );
        // 3 of the 4 observations are at most 4 bytes.
        let below = value(base, &format!("histogram_fraction(0, 4, {sel})")).await;
        assert!((below - 0.75).abs() < 1e-9, "{p}: fraction {below}");
    }
}
