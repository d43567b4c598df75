//! Interop with a real Prometheus: it scrapes itself every second and remote-writes into a
//! Sextant started by the test; then both servers answer the same queries for a fixed past
//! time and must agree on series, timestamps and values.
//!
//! Needs Debian's `prometheus` package (`scripts/install-test-deps.sh` installs it).

mod support;

use support::free_port;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
/// Relative tolerance for values: both sides compute with the same float formulas.
const VALUE_TOLERANCE: f64 = 1e-9;
/// Window of `rate()` and length of the range queries, in seconds. With 1s scrapes the test
/// needs twice this much history before the query time.
const WINDOW_SECS: i64 = 10;
/// Scrapes Prometheus must hold before the query time is chosen.
const SCRAPES_NEEDED: usize = 2 * WINDOW_SECS as usize + 6;

#[test]
fn sextant_answers_like_prometheus_for_remote_written_data() {
    assert!(
        Path::new(PROMETHEUS_BIN).exists(),
        "{PROMETHEUS_BIN} is missing: run scripts/install-test-deps.sh (it installs Debian's \
         prometheus package) and rerun the tests"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let http = Http::new();

    let sextant_port = free_port();
    let mut sextant = Server::start(
        "sextant",
        Command::new(env!("CARGO_BIN_EXE_sextant")).args([
            "serve".to_string(),
            "--data-dir".to_string(),
            tmp.path().join("sextant").display().to_string(),
            "--http-addr".to_string(),
            format!("127.0.0.1:{sextant_port}"),
        ]),
        tmp.path(),
        sextant_port,
    );
    sextant.wait_ready(&http, Duration::from_secs(60));

    let prometheus_port = free_port();
    let config_path = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config_path,
        prometheus_config(prometheus_port, sextant_port),
    )
    .expect("write config");
    let mut prometheus = Server::start(
        "prometheus",
        Command::new(PROMETHEUS_BIN).args([
            format!("--config.file={}", config_path.display()),
            format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prometheus-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ]),
        tmp.path(),
        prometheus_port,
    );
    prometheus.wait_ready(&http, Duration::from_secs(60));

    // Let Prometheus collect enough scrapes, then fix the query time well inside them: every
    // window used below starts a few seconds after the first scrape (whose samples remote
    // write may skip) and ends before the newest ones (which may still be in flight).
    let first_scrape_ms = wait_for_scrapes(&http, &mut prometheus, &mut sextant, SCRAPES_NEEDED);
    // Half a scrape interval off the scrape times: Prometheus 2.x range selectors include a
    // sample exactly at the window's start and 3.x (which Sextant follows) does not, so no
    // window may begin on a sample.
    let t_ms = first_scrape_ms + (2 * WINDOW_SECS + 3) * 1000 + 500;
    let checks = comparisons(t_ms);

    // Sextant may lag by the remote-write batch deadline; compare until the answers agree.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mismatches: Vec<String> = checks
            .iter()
            .filter_map(|check| check.run(&http, &prometheus, &sextant).err())
            .collect();
        if mismatches.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "Sextant and Prometheus still disagree at t={t_ms}ms after 60s:\n{}\n\n{}\n{}",
                mismatches.join("\n"),
                sextant.log_tail(),
                prometheus.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The queries both servers must answer identically at `t_ms`.
fn comparisons(t_ms: i64) -> Vec<Check> {
    let t = format_time(t_ms);
    let start = format_time(t_ms - WINDOW_SECS * 1000);
    let rate = format!("rate(prometheus_http_requests_total[{WINDOW_SECS}s])");
    let sum_rate =
        format!("sum by (job) (rate(prometheus_tsdb_head_samples_appended_total[{WINDOW_SECS}s]))");
    let instant = |query: &str| Check {
        path: "/api/v1/query",
        params: vec![("query", query.to_string()), ("time", t.clone())],
    };
    let range = |query: &str| Check {
        path: "/api/v1/query_range",
        params: vec![
            ("query", query.to_string()),
            ("start", start.clone()),
            ("end", t.clone()),
            ("step", "1".to_string()),
        ],
    };
    let job_selector = r#"{job="prometheus"}"#.to_string();
    vec![
        instant("up"),
        instant(&rate),
        instant(&sum_rate),
        instant(r#"count by (__name__) ({job="prometheus"})"#),
        instant("prometheus_tsdb_head_series"),
        instant("scrape_samples_scraped"),
        instant(&format!("up[{WINDOW_SECS}s]")),
        range("up"),
        range(&rate),
        range(&sum_rate),
        Check {
            path: "/api/v1/series",
            params: vec![
                ("match[]", job_selector.clone()),
                ("start", start.clone()),
                ("end", t.clone()),
            ],
        },
        Check {
            path: "/api/v1/labels",
            params: vec![
                ("match[]", job_selector.clone()),
                ("start", start.clone()),
                ("end", t.clone()),
            ],
        },
        Check {
            path: "/api/v1/label/job/values",
            params: vec![("start", start.clone()), ("end", t.clone())],
        },
        Check {
            path: "/api/v1/label/__name__/values",
            params: vec![("match[]", job_selector), ("start", start), ("end", t)],
        },
    ]
}

/// One API request sent to both servers.
struct Check {
    path: &'static str,
    params: Vec<(&'static str, String)>,
}

impl Check {
    fn run(&self, http: &Http, prometheus: &Server, sextant: &Server) -> Result<(), String> {
        let want = http.api(&prometheus.url(self.path), &self.params)?;
        let got = http.api(&sextant.url(self.path), &self.params)?;
        let want = normalize(&want).map_err(|e| format!("{self}: Prometheus answer: {e}"))?;
        let got = normalize(&got).map_err(|e| format!("{self}: Sextant answer: {e}"))?;
        if want.is_empty() {
            // Every check asks for data that exists; an empty answer would prove nothing.
            return Err(format!("{self}: Prometheus returned no data"));
        }
        if want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| w.matches(g)) {
            return Ok(());
        }
        Err(format!("{self}:\n{}", describe_difference(&want, &got)))
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{} {}", self.path, params.join("&"))
    }
}

/// A comparable piece of an API answer: a series with its points, or a plain string.
#[derive(Debug, PartialEq)]
enum Item {
    Series {
        labels: BTreeMap<String, String>,
        /// `(timestamp ms, value)`.
        points: Vec<(i64, f64)>,
    },
    Text(String),
}

impl Item {
    fn matches(&self, other: &Item) -> bool {
        match (self, other) {
            (
                Item::Series {
                    labels: l1,
                    points: p1,
                },
                Item::Series {
                    labels: l2,
                    points: p2,
                },
            ) => {
                l1 == l2
                    && p1.len() == p2.len()
                    && p1
                        .iter()
                        .zip(p2)
                        .all(|(a, b)| a.0 == b.0 && close(a.1, b.1))
            }
            (Item::Text(a), Item::Text(b)) => a == b,
            _ => false,
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= VALUE_TOLERANCE * a.abs().max(b.abs())
}

/// Turns a `data` field (query result, series list or string list) into sorted items.
fn normalize(data: &Json) -> Result<Vec<Item>, String> {
    let mut items = match data {
        Json::Object(obj) if obj.contains_key("resultType") => {
            let result_type = obj["resultType"].as_str().unwrap_or("");
            let result = &obj["result"];
            match result_type {
                "vector" | "matrix" => result
                    .as_array()
                    .ok_or("result is not an array")?
                    .iter()
                    .map(series_item)
                    .collect::<Result<Vec<_>, _>>()?,
                "scalar" | "string" => vec![Item::Text(result.to_string())],
                other => return Err(format!("unknown resultType {other:?}")),
            }
        }
        Json::Array(entries) => entries
            .iter()
            .map(|e| match e {
                Json::String(s) => Ok(Item::Text(s.clone())),
                Json::Object(_) => Ok(Item::Series {
                    labels: labels_of(e)?,
                    points: Vec::new(),
                }),
                other => Err(format!("unexpected list entry {other}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(format!("unexpected data {other}")),
    };
    items.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    Ok(items)
}

fn series_item(entry: &Json) -> Result<Item, String> {
    let labels = labels_of(&entry["metric"])?;
    let points = match (entry.get("value"), entry.get("values")) {
        (Some(value), None) => vec![point(value)?],
        (None, Some(values)) => values
            .as_array()
            .ok_or("values is not an array")?
            .iter()
            .map(point)
            .collect::<Result<_, _>>()?,
        _ => return Err(format!("series without value(s): {entry}")),
    };
    Ok(Item::Series { labels, points })
}

fn labels_of(metric: &Json) -> Result<BTreeMap<String, String>, String> {
    metric
        .as_object()
        .ok_or_else(|| format!("labels are not an object: {metric}"))?
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(v) => Ok((k.clone(), v.to_string())),
            None => Err(format!("label {k} is not a string: {v}")),
        })
        .collect()
}

/// `[<unix seconds>, "<value>"]` → `(ms, value)`.
fn point(pair: &Json) -> Result<(i64, f64), String> {
    let (Some(t), Some(v)) = (pair[0].as_f64(), pair[1].as_str()) else {
        return Err(format!("malformed point {pair}"));
    };
    let v: f64 = v
        .parse()
        .map_err(|_| format!("malformed value in {pair}"))?;
    Ok(((t * 1000.0).round() as i64, v))
}

fn describe_difference(want: &[Item], got: &[Item]) -> String {
    const SHOWN: usize = 5;
    let missing: Vec<&Item> = want
        .iter()
        .filter(|w| !got.iter().any(|g| w.matches(g)))
        .collect();
    let extra: Vec<&Item> = got
        .iter()
        .filter(|g| !want.iter().any(|w| w.matches(g)))
        .collect();
    let mut out = format!(
        "  Prometheus has {} items, Sextant {}; {} only in Prometheus, {} only in Sextant",
        want.len(),
        got.len(),
        missing.len(),
        extra.len()
    );
    for item in missing.iter().take(SHOWN) {
        out.push_str(&format!("\n  only in Prometheus: {item:?}"));
    }
    for item in extra.iter().take(SHOWN) {
        out.push_str(&format!("\n  only in Sextant:    {item:?}"));
    }
    out
}

/// Polls until Prometheus holds `needed` scrapes of itself and Sextant has received some of
/// them; returns the timestamp of Prometheus's first scrape.
fn wait_for_scrapes(
    http: &Http,
    prometheus: &mut Server,
    sextant: &mut Server,
    needed: usize,
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    let params = [("query", "up[5m]".to_string())];
    loop {
        prometheus.assert_running();
        sextant.assert_running();
        let prom_points = http
            .api(&prometheus.url("/api/v1/query"), &params)
            .and_then(|d| normalize(&d))
            .map(|items| first_series_points(&items));
        let sextant_points = http
            .api(&sextant.url("/api/v1/query"), &params)
            .and_then(|d| normalize(&d))
            .map(|items| first_series_points(&items));
        match (&prom_points, &sextant_points) {
            (Ok(p), Ok(s)) if p.len() >= needed && !s.is_empty() => return p[0].0,
            _ => {}
        }
        let state = format!(
            "Prometheus up[5m]: {:?} points, Sextant up[5m]: {:?} points",
            prom_points.map(|p| p.len()),
            sextant_points.map(|p| p.len())
        );
        if Instant::now() > deadline {
            panic!(
                "no data after 120s ({state})\n\n{}\n{}",
                sextant.log_tail(),
                prometheus.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn first_series_points(items: &[Item]) -> Vec<(i64, f64)> {
    match items.first() {
        Some(Item::Series { points, .. }) => points.clone(),
        _ => Vec::new(),
    }
}

fn prometheus_config(prometheus_port: u16, sextant_port: u16) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{prometheus_port}"]
remote_write:
  - url: http://127.0.0.1:{sextant_port}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_shards: 1
      max_shards: 1
      min_backoff: 100ms
      max_backoff: 1s
"#
    )
}

/// `<seconds>.<milliseconds>`, the API's time format.
fn format_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A child process that is killed when the guard is dropped; its output goes to a log file.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl Server {
    fn start(name: &'static str, command: &mut Command, dir: &Path, port: u16) -> Server {
        let log_path = dir.join(format!("{name}.log"));
        let log = File::create(&log_path).expect("create log file");
        let log_err = log.try_clone().expect("clone log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Server {
            name,
            child,
            port,
            log_path,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status})\n{}", self.name, self.log_tail());
        }
    }

    fn wait_ready(&mut self, http: &Http, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            if http.status(&self.url("/-/ready")) == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after {timeout:?}\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of the process's output, for failure messages.
    fn log_tail(&self) -> String {
        const LINES: usize = 30;
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
        format!("--- last lines of {} output ---\n{tail}", self.name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small blocking HTTP client over reqwest's async one.
struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    fn status(&self, url: &str) -> Option<u16> {
        self.runtime.block_on(async {
            let response = self.client.get(url).send().await.ok()?;
            Some(response.status().as_u16())
        })
    }

    /// GETs a Prometheus API endpoint and returns its `data` field.
    fn api(&self, url: &str, params: &[(&str, String)]) -> Result<Json, String> {
        self.runtime.block_on(async {
            let response = self
                .client
                .get(url)
                .query(params)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status();
            let body = response
                .text()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let json: Json = serde_json::from_str(&body)
                .map_err(|e| format!("GET {url}: {status}, not JSON ({e}): {body}"))?;
            if json["status"] != "success" {
                return Err(format!("GET {url} {params:?}: {status}: {body}"));
            }
            Ok(json["data"].clone())
        })
    }
}
