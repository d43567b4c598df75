//! Scraping end to end: test HTTP servers (started here) expose a node-exporter-like text
//! exposition and an OpenMetrics one; a `sextant` started with `scrape_configs` scrapes them,
//! and what it stored is checked through `/api/v1/query`, `/api/v1/targets` and
//! `/api/v1/targets/metadata`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use support::{api_get, poll, Server};

/// What a test server exposes, changeable while it runs.
#[derive(Clone, Default)]
struct Exposed {
    body: Arc<Mutex<String>>,
    content_type: Arc<Mutex<String>>,
    /// When non-empty, requests need one of these `Authorization` values (else 401).
    allowed_auth: Arc<Vec<String>>,
    /// Path and query of the last request.
    last_uri: Arc<Mutex<String>>,
}

impl Exposed {
    fn new(body: &str, content_type: &str) -> Exposed {
        Exposed {
            body: Arc::new(Mutex::new(body.to_string())),
            content_type: Arc::new(Mutex::new(content_type.to_string())),
            ..Exposed::default()
        }
    }

    fn set_body(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }
}

async fn expose(State(ex): State<Exposed>, req: Request) -> Response {
    *ex.last_uri.lock().unwrap() = req.uri().to_string();
    if !ex.allowed_auth.is_empty() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ex.allowed_auth.iter().any(|a| a == given) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let ct = ex.content_type.lock().unwrap().clone();
    let body = ex.body.lock().unwrap().clone();
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

/// Serves `ex` on a fresh loopback port until the test ends.
async fn serve(ex: Exposed) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(expose).with_state(ex);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A captured node-exporter-like exposition (trimmed): 13 samples.
const NODE_EXPORTER: &str = r##"# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 362812.71
node_cpu_seconds_total{cpu="0",mode="user"} 9135.52
node_cpu_seconds_total{cpu="1",mode="idle"} 363001.4
node_cpu_seconds_total{cpu="1",mode="user"} 9001.06
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 1.8932318208e+10
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 8.26687488e+08
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.21
# HELP node_scrape_collector_duration_seconds node_exporter: Duration of a collector scrape.
# TYPE node_scrape_collector_duration_seconds gauge
node_scrape_collector_duration_seconds{collector="cpu"} 0.000241
node_scrape_collector_duration_seconds{collector="filesystem"} 0.000693
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="cpu"} 1
node_scrape_collector_success{collector="filesystem"} 1
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{domainname="(none)",machine="x86_64",nodename="host-1",release="6.1.0-18-amd64",sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"} 1
"##;

/// An OpenMetrics exposition: 5 samples.
const OPENMETRICS_BODY: &str = r#"# TYPE app_requests counter
# HELP app_requests Requests handled.
app_requests_total{code="200"} 1027.0
app_requests_total{code="500"} 3.0 # {trace_id="abc"} 1.0
# TYPE app_latency_seconds histogram
# UNIT app_latency_seconds seconds
app_latency_seconds_bucket{le="0.1"} 5.0
app_latency_seconds_bucket{le="+Inf"} 7.0
# TYPE app_info info
app_info{version="1.2.3"} 1
# EOF
"#;

fn write_config(dir: &Path, scrape: &str) -> std::path::PathBuf {
    let text = format!(
        "storage:\n  wal_fsync: never\nglobal:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n{scrape}"
    );
    let path = dir.join("sextant.yml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(dir: &Path, scrape: &str) -> Server {
    let config = write_config(dir, scrape);
    Server::start(&config, &dir.join("data"), &dir.join("sextant.log")).await
}

/// An instant query at the server's now: each series' labels and value.
async fn query(server: &Server, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let data = api_get(
        &reqwest::Client::new(),
        &server.base,
        "/api/v1/query",
        &[("query", q.to_string())],
    )
    .await
    .unwrap_or_else(|e| panic!("{q}: {e}"));
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let v: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
            (labels, v)
        })
        .collect()
}

/// Waits until `q` returns exactly `n` series, and returns them.
async fn wait_for(server: &Server, q: &str, n: usize) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut last = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            last = query(server, q).await;
            if last.len() == n {
                return last.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "{q}: wanted {n} series, last saw {last:?}; log:\n{}",
            support::tail_of(&server.log)
        )
    })
}

async fn targets(server: &Server, state: &str) -> Value {
    api_get(
        &reqwest::Client::new(),
        &server.base,
        "/api/v1/targets",
        &[("state", state.to_string())],
    )
    .await
    .unwrap()
}

/// Waits until `q` returns one series with value `v` (a slow machine may time a scrape out
/// now and then; the next one sets things right).
async fn wait_value(server: &Server, q: &str, v: f64) {
    let wanted = format!("{q} == {v}");
    wait_for(server, &wanted, 1).await;
}

fn single_value(rows: &[(BTreeMap<String, String>, f64)]) -> f64 {
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].1
}

#[tokio::test]
async fn scrapes_text_and_openmetrics_with_relabelling() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Exposed::new(NODE_EXPORTER, TEXT);
    let om = Exposed::new(OPENMETRICS_BODY, OPENMETRICS);
    let node_addr = serve(node.clone()).await;
    let om_addr = serve(om.clone()).await;
    let scrape = format!(
        r#"  - job_name: node
    params: {{collect: [cpu, filesystem]}}
    static_configs:
      - targets: ['{node_addr}']
        labels: {{__tmp_team: infra, env: PROD}}
      - targets: ['127.0.0.1:1']
        labels: {{skip: 'yes'}}
    relabel_configs:
      - {{source_labels: [skip], regex: 'yes', action: drop}}
      - {{regex: '__tmp_(.*)', action: labelmap}}
      - {{source_labels: [env], target_label: env, action: lowercase}}
      - {{source_labels: [env], target_label: env_upper, action: uppercase}}
      - {{source_labels: [__address__], modulus: 8, target_label: shard, action: hashmod}}
      - {{source_labels: [__address__], regex: '(.*):(\d+)', target_label: port, replacement: 'p$2'}}
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'node_scrape_collector_.*', action: drop}}
      - {{regex: 'fstype', action: labeldrop}}
  - job_name: om
    scrape_interval: 300ms
    static_configs: [{{targets: ['{om_addr}']}}]
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'app_info', action: drop}}
"#
    );
    let server = start(tmp.path(), &scrape).await;

    let up = wait_for(&server, "up == 1", 2).await;
    assert_eq!(up.len(), 2, "{up:?}");
    let cpu = wait_for(&server, r#"node_cpu_seconds_total{cpu="0",mode="idle"}"#, 1).await;
    let (labels, value) = &cpu[0];
    assert_eq!(*value, 362812.71);
    assert_eq!(labels["job"], "node");
    assert_eq!(labels["instance"], node_addr.to_string());
    assert_eq!(labels["team"], "infra", "labelmap");
    assert_eq!(labels["env"], "prod", "lowercase");
    assert_eq!(labels["env_upper"], "PROD", "uppercase");
    assert_eq!(labels["port"], format!("p{}", node_addr.port()), "replace");
    let shard: u64 = labels["shard"].parse().unwrap();
    assert!(shard < 8, "hashmod");
    assert!(!labels.contains_key("__tmp_team"));
    // The job's params reach the target.
    let uri = node.last_uri.lock().unwrap().clone();
    assert_eq!(uri, "/metrics?collect=cpu&collect=filesystem");

    // metric_relabel_configs: dropped series and a dropped label.
    assert!(query(&server, "node_scrape_collector_success")
        .await
        .is_empty());
    let fs = query(&server, "node_filesystem_avail_bytes").await;
    assert_eq!(fs.len(), 2);
    assert!(fs.iter().all(|(l, _)| !l.contains_key("fstype")), "{fs:?}");
    let uname = query(&server, "node_uname_info").await;
    assert_eq!(
        uname[0].0["version"],
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
    );

    // Report series.
    wait_value(&server, r#"scrape_samples_scraped{job="node"}"#, 13.0).await;
    wait_value(
        &server,
        r#"scrape_samples_post_metric_relabeling{job="node"}"#,
        9.0,
    )
    .await;
    wait_value(&server, r#"scrape_samples_scraped{job="om"}"#, 5.0).await;
    let duration = single_value(&query(&server, r#"scrape_duration_seconds{job="om"}"#).await);
    assert!(duration > 0.0 && duration < 1.0, "{duration}");
    assert!(!query(&server, "scrape_series_added").await.is_empty());

    // OpenMetrics samples (app_info dropped by metric relabelling) and the exemplar, which
    // has no timestamp and so takes each scrape's time, as in Prometheus.
    let reqs = query(&server, r#"app_requests_total{code="500"}"#).await;
    assert_eq!(single_value(&reqs), 3.0);
    assert_eq!(reqs[0].0["job"], "om");
    let ex = api_get(
        &reqwest::Client::new(),
        &server.base,
        "/api/v1/query_exemplars",
        &[("query", "app_requests_total".to_string())],
    )
    .await
    .unwrap();
    let ex = ex.as_array().unwrap();
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!(ex[0]["seriesLabels"]["code"], "500");
    assert_eq!(ex[0]["seriesLabels"]["job"], "om");
    let list = ex[0]["exemplars"].as_array().unwrap();
    assert!(!list.is_empty());
    for e in list {
        assert_eq!(e["labels"], serde_json::json!({"trace_id": "abc"}));
        assert_eq!(e["value"], "1");
        assert!(e["timestamp"].as_f64().unwrap() > 1.6e9, "{e}");
    }
    assert_eq!(query(&server, "app_latency_seconds_bucket").await.len(), 2);
    assert!(query(&server, "app_info").await.is_empty());

    // /api/v1/targets
    let t = poll(Duration::from_secs(20), "both targets up", || async {
        let t = targets(&server, "any").await;
        let active = t["activeTargets"].as_array()?;
        active
            .iter()
            .all(|a| a["health"] == "up")
            .then_some(t.clone())
    })
    .await;
    let active = t["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 2, "{t}");
    let n = active.iter().find(|a| a["scrapePool"] == "node").unwrap();
    assert_eq!(n["health"], "up");
    assert_eq!(n["lastError"], "");
    assert_eq!(n["scrapeInterval"], "200ms");
    assert_eq!(n["scrapeTimeout"], "150ms");
    assert_eq!(
        n["scrapeUrl"],
        format!("http://{node_addr}/metrics?collect=cpu&collect=filesystem")
    );
    assert_eq!(n["globalUrl"], n["scrapeUrl"]);
    assert_eq!(n["labels"]["team"], "infra");
    assert_eq!(n["labels"]["shard"], labels["shard"].as_str());
    assert_eq!(n["discoveredLabels"]["__tmp_team"], "infra");
    assert_eq!(n["discoveredLabels"]["__address__"], node_addr.to_string());
    assert!(n["lastScrape"].as_str().unwrap().ends_with('Z'));
    assert!(n["lastScrapeDuration"].as_f64().unwrap() > 0.0);
    let o = active.iter().find(|a| a["scrapePool"] == "om").unwrap();
    assert_eq!(o["scrapeInterval"], "300ms");
    let dropped = t["droppedTargets"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{t}");
    assert_eq!(dropped[0]["discoveredLabels"]["skip"], "yes");
    assert_eq!(dropped[0]["scrapePool"], "node");
    assert_eq!(t["droppedTargetCounts"]["node"], 1);
    let only_active = targets(&server, "active").await;
    assert_eq!(only_active["activeTargets"].as_array().unwrap().len(), 2);
    assert!(only_active["droppedTargets"].as_array().unwrap().is_empty());
    let only_dropped = targets(&server, "dropped").await;
    assert!(only_dropped["activeTargets"].as_array().unwrap().is_empty());
    assert_eq!(only_dropped["droppedTargets"].as_array().unwrap().len(), 1);

    // /api/v1/targets/metadata
    let client = reqwest::Client::new();
    let md = api_get(
        &client,
        &server.base,
        "/api/v1/targets/metadata",
        &[
            ("match_target", r#"{job="om"}"#.to_string()),
            ("metric", "app_latency_seconds".to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(md.as_array().unwrap().len(), 1, "{md}");
    assert_eq!(md[0]["type"], "histogram");
    assert_eq!(md[0]["unit"], "seconds");
    assert_eq!(md[0]["target"]["job"], "om");
    let md = api_get(
        &client,
        &server.base,
        "/api/v1/targets/metadata",
        &[("match_target", r#"{job="node"}"#.to_string())],
    )
    .await
    .unwrap();
    let cpu_md = md
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "node_cpu_seconds_total")
        .unwrap();
    assert_eq!(cpu_md["type"], "counter");
    assert_eq!(cpu_md["help"], "Seconds the CPUs spent in each mode.");
    let missing = api_get(
        &client,
        &server.base,
        "/api/v1/targets/metadata",
        &[("metric", "nope".to_string())],
    )
    .await
    .unwrap_err();
    assert!(missing.starts_with("404 not_found"), "{missing}");
}

#[tokio::test]
async fn staleness_honor_labels_and_sample_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "conflict_metric{job=\"exported\",instance=\"x\"} 1\ngone_soon 5\nsteady 1\n";
    let ex = Exposed::new(body, TEXT);
    let addr = serve(ex.clone()).await;
    let scrape = format!(
        r#"  - job_name: honor
    honor_labels: true
    static_configs: [{{targets: ['{addr}']}}]
  - job_name: plain
    static_configs: [{{targets: ['{addr}']}}]
  - job_name: limited
    sample_limit: 2
    static_configs: [{{targets: ['{addr}']}}]
"#
    );
    let server = start(tmp.path(), &scrape).await;

    // honor_labels: true keeps the exposed job and instance.
    let honored = wait_for(&server, r#"conflict_metric{job="exported"}"#, 1).await;
    assert_eq!(honored[0].0["instance"], "x");
    assert!(!honored[0].0.contains_key("exported_job"));
    // honor_labels: false renames them exported_*.
    let plain = wait_for(&server, r#"conflict_metric{job="plain"}"#, 1).await;
    assert_eq!(plain[0].0["exported_job"], "exported");
    assert_eq!(plain[0].0["exported_instance"], "x");
    assert_eq!(plain[0].0["instance"], addr.to_string());

    // sample_limit exceeded: the scrape fails and stores nothing.
    let up = wait_for(&server, r#"up{job="limited"}"#, 1).await;
    assert_eq!(single_value(&up), 0.0);
    assert!(query(&server, r#"steady{job="limited"}"#).await.is_empty());
    let limited = poll(
        Duration::from_secs(20),
        "limited target's error",
        || async {
            let t = targets(&server, "active").await;
            let l = t["activeTargets"]
                .as_array()?
                .iter()
                .find(|a| a["scrapePool"] == "limited")?
                .clone();
            (l["lastError"] == "sample limit exceeded").then_some(l)
        },
    )
    .await;
    assert_eq!(limited["health"], "down");
    wait_value(&server, r#"scrape_samples_scraped{job="limited"}"#, 3.0).await;
    wait_value(&server, r#"up{job="plain"}"#, 1.0).await;

    // A series that leaves the exposition is marked stale: gone at once, not after the 5m
    // lookback, while the others go on.
    wait_for(&server, r#"gone_soon{job="plain"}"#, 1).await;
    ex.set_body("conflict_metric{job=\"exported\",instance=\"x\"} 1\nsteady 2\n");
    wait_for(&server, r#"gone_soon{job="plain"}"#, 0).await;
    let steady = wait_for(&server, r#"steady{job="plain"} == 2"#, 1).await;
    assert_eq!(steady[0].1, 2.0);
    // Within the limit again: the limited job comes up.
    let up = poll(Duration::from_secs(20), "limited job up", || async {
        let rows = query(&server, r#"up{job="limited"} == 1"#).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(up.len(), 1);
    // The data was in storage in between: the range still holds gone_soon's samples.
    let range = query(&server, r#"count_over_time(gone_soon{job="plain"}[5m])"#).await;
    assert!(single_value(&range) >= 1.0);
}

#[tokio::test]
async fn basic_auth_bearer_and_file_sd_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let mut secured = Exposed::new("secured_metric 42\n", TEXT);
    secured.allowed_auth = Arc::new(vec![
        // scraper:s3cret
        "Basic c2NyYXBlcjpzM2NyZXQ=".to_string(),
        "Bearer tok-123".to_string(),
    ]);
    let secured_addr = serve(secured).await;
    let a = serve(Exposed::new("fsd_metric 1\n", TEXT)).await;
    let b = serve(Exposed::new("fsd_metric 2\n", TEXT)).await;
    let sd_dir = tmp.path().join("sd");
    std::fs::create_dir_all(&sd_dir).unwrap();
    let sd_file = sd_dir.join("targets.yml");
    std::fs::write(
        &sd_file,
        format!("- targets: ['{a}']\n  labels: {{group: a}}\n"),
    )
    .unwrap();
    let password_file = tmp.path().join("password");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let scrape = format!(
        r#"  - job_name: auth_ok
    basic_auth: {{username: scraper, password_file: '{pw}'}}
    static_configs: [{{targets: ['{secured_addr}']}}]
  - job_name: auth_bad
    basic_auth: {{username: scraper, password: wrong}}
    static_configs: [{{targets: ['{secured_addr}']}}]
  - job_name: bearer
    authorization: {{credentials: tok-123}}
    static_configs: [{{targets: ['{secured_addr}']}}]
  - job_name: filesd
    file_sd_configs: [{{files: ['{dir}/*.yml']}}]
    relabel_configs:
      - {{source_labels: [__meta_filepath], regex: '.*/(.*)', target_label: sd_file}}
"#,
        pw = password_file.display(),
        dir = sd_dir.display(),
    );
    let server = start(tmp.path(), &scrape).await;

    let ok = wait_for(&server, r#"secured_metric{job="auth_ok"}"#, 1).await;
    assert_eq!(ok[0].1, 42.0);
    wait_for(&server, r#"secured_metric{job="bearer"}"#, 1).await;
    let bad = wait_for(&server, r#"up{job="auth_bad"}"#, 1).await;
    assert_eq!(single_value(&bad), 0.0);
    assert!(query(&server, r#"secured_metric{job="auth_bad"}"#)
        .await
        .is_empty());
    // The target is down with Prometheus' error text.
    let bad_target = poll(
        Duration::from_secs(20),
        "auth_bad target's error",
        || async {
            let t = targets(&server, "active").await;
            let x = t["activeTargets"]
                .as_array()?
                .iter()
                .find(|x| x["scrapePool"] == "auth_bad")?
                .clone();
            (x["lastError"] == "server returned HTTP status 401 Unauthorized").then_some(x)
        },
    )
    .await;
    assert_eq!(bad_target["health"], "down");

    // file_sd: the first file's target, with __meta_filepath available to relabelling.
    let first = wait_for(&server, r#"fsd_metric{job="filesd"}"#, 1).await;
    assert_eq!(first[0].0["group"], "a");
    assert_eq!(first[0].0["sd_file"], "targets.yml");
    assert_eq!(first[0].0["instance"], a.to_string());
    // Rewritten file: the old target goes (its series marked stale), the new one comes.
    std::fs::write(
        &sd_file,
        format!("- targets: ['{b}']\n  labels: {{group: b}}\n"),
    )
    .unwrap();
    let second = wait_for(&server, r#"fsd_metric{job="filesd"} == 2"#, 1).await;
    assert_eq!(second[0].0["group"], "b");
    wait_for(&server, r#"fsd_metric{job="filesd",group="a"}"#, 0).await;
    wait_for(&server, r#"up{job="filesd",group="a"}"#, 0).await;
    let t = targets(&server, "active").await;
    let fsd: Vec<&Value> = t["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["scrapePool"] == "filesd")
        .collect();
    assert_eq!(fsd.len(), 1, "{t}");
    assert_eq!(fsd[0]["labels"]["group"], "b");
    assert!(fsd[0]["discoveredLabels"]["__meta_filepath"]
        .as_str()
        .unwrap()
        .ends_with("targets.yml"));
    // A file the pattern does not match is ignored.
    std::fs::write(
        sd_dir.join("more.json"),
        format!(r#"[{{"targets": ["{a}"], "labels": {{"group": "json"}}}}]"#),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(query(&server, r#"up{job="filesd",group="json"}"#)
        .await
        .is_empty());
}

const NODE_EXPORTER_BIN: &str = "/usr/bin/prometheus-node-exporter";

/// A node exporter started by a test, killed when dropped.
struct NodeExporter(std::process::Child);

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's node exporter (installed by `scripts/install-test-deps.sh`) on a free loopback
/// port, with a few collectors whose answers the test can check against `/proc`.
async fn node_exporter() -> (NodeExporter, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = std::process::Command::new(NODE_EXPORTER_BIN)
        .args([
            &format!("--web.listen-address={addr}"),
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.loadavg",
            "--collector.uname",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{NODE_EXPORTER_BIN}: {e} (run scripts/install-test-deps.sh)"));
    let exporter = NodeExporter(child);
    poll(
        Duration::from_secs(20),
        "node exporter to listen",
        || async {
            reqwest::get(format!("http://{addr}/metrics"))
                .await
                .ok()
                .filter(|r| r.status().is_success())
        },
    )
    .await;
    (exporter, addr)
}

#[tokio::test]
async fn debian_node_exporter_is_scraped() {
    let tmp = tempfile::tempdir().unwrap();
    let (_exporter, addr) = node_exporter().await;
    let scrape = format!(
        r#"  - job_name: node
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs: [{{targets: ['{addr}'], labels: {{env: test}}}}]
    relabel_configs:
      - {{source_labels: [__address__], regex: '127\.0\.0\.1:(\d+)', target_label: port}}
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'go_.*|process_.*|promhttp_.*', action: drop}}
"#
    );
    let server = start(tmp.path(), &scrape).await;

    // A generous timeout: on a loaded machine a 150 ms one fails scrapes, which marks every
    // series of the target stale until the next success.
    let up = wait_for(&server, r#"up{job="node"} == 1"#, 1).await;
    assert_eq!(single_value(&up), 1.0);
    assert_eq!(up[0].0["instance"], addr.to_string());
    assert_eq!(up[0].0["env"], "test");
    assert_eq!(up[0].0["port"], addr.port().to_string());

    // MemTotal as /proc/meminfo reports it (kB), in bytes.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let mem = wait_for(
        &server,
        r#"node_memory_MemTotal_bytes{job="node",env="test"}"#,
        1,
    )
    .await;
    assert_eq!(single_value(&mem), mem_kb * 1024.0);

    // One idle counter per CPU line of /proc/stat, with the relabelled target labels.
    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let idle = wait_for(
        &server,
        r#"node_cpu_seconds_total{job="node",mode="idle"}"#,
        cpus,
    )
    .await;
    assert!(idle
        .iter()
        .all(|(l, v)| l["port"] == addr.port().to_string() && *v > 0.0));

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let uname = wait_for(&server, r#"node_uname_info{job="node"}"#, 1).await;
    assert_eq!(uname[0].0["nodename"], hostname.trim());
    assert_eq!(uname[0].0["sysname"], "Linux");
    wait_for(&server, r#"node_exporter_build_info{job="node"}"#, 1).await;
    wait_for(&server, r#"node_load1{job="node"} >= 0"#, 1).await;

    // Dropped by metric relabelling, while the exporter does expose them.
    let exposition = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(exposition.contains("\ngo_goroutines "));
    assert!(query(&server, r#"{__name__=~"go_.*|process_.*"}"#)
        .await
        .is_empty());
    let scraped = wait_for(&server, r#"scrape_samples_scraped{job="node"} > 0"#, 1).await;
    let stored = query(&server, r#"count({job="node",__name__!~"up|scrape_.*"})"#).await;
    assert!(single_value(&stored) <= single_value(&scraped));
}
