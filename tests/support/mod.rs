//! Helpers shared by the crash and corruption tests: a `sextant serve` child that is killed on
//! drop, remote write, PromQL range reads with exact sample values, `/metrics` scraping, and a
//! look at the on-disk layout.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use sextant_ingest::remote_write::{ProtoLabel, ProtoSample, TimeSeries, WriteRequest};

/// A running `sextant serve`, SIGKILLed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now and that this test process has not handed out before:
/// a port is picked by binding port 0 and closing the socket, and the system may pick the same
/// one again for the next call (a server then fails to bind its second listener).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Writes `storage` (YAML lines under `storage:`, without indentation) as a config file.
pub fn write_config(dir: &Path, storage: &[&str]) -> PathBuf {
    let mut text = String::from("storage:\n");
    for line in storage {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    let path = dir.join("sextant.yml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Server {
    /// Starts the binary on a fresh loopback port; its logs go to `log` (appended). Does not
    /// wait for readiness.
    pub fn spawn(config: &Path, data_dir: &Path, log: &Path) -> Server {
        let port = free_port();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn sextant");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        }
    }

    /// [`Server::spawn`], then waits until `/-/ready` answers 200.
    pub async fn start(config: &Path, data_dir: &Path, log: &Path) -> Server {
        let mut server = Server::spawn(config, data_dir, log);
        server.wait_ready(Duration::from_secs(60)).await;
        server
    }

    /// Polls `/-/ready`; panics (with the server log) if the process exits or the deadline
    /// passes.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "sextant exited with {status} before becoming ready; log:\n{}",
                    tail_of(&self.log)
                );
            }
            if let Ok(r) = client.get(format!("{}/-/ready", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sextant did not become ready; log:\n{}",
                tail_of(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a successful exit.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "sextant did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit status {status}");
    }

    /// The child's process id (for sending signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// The last lines (about 8 KiB) of a log file, for failure messages.
pub fn tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let from = text.len().saturating_sub(8192);
    let start = match text.as_bytes()[from..].iter().position(|&b| b == b'\n') {
        Some(n) if from > 0 => from + n + 1,
        _ => 0,
    };
    text[start..].to_string()
}

/// A series for remote write from `(name, value)` label pairs (sorted by the caller).
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| ProtoLabel {
                name: n.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            })
            .collect(),
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

/// Sends one remote-write request; `Err` when no response arrived.
pub async fn remote_write(
    client: &reqwest::Client,
    base: &str,
    timeseries: Vec<TimeSeries>,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    let body = WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    let compressed = snap::raw::Encoder::new().compress_vec(&body).unwrap();
    let resp = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .timeout(Duration::from_secs(30))
        .body(compressed)
        .send()
        .await?;
    let status = resp.status();
    // Read the body so the answer is complete before it counts as one.
    resp.bytes().await?;
    Ok(status)
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every stored sample, by the value of label `key`, then timestamp (ms) → value bits.
pub type Stored = BTreeMap<String, BTreeMap<i64, u64>>;

/// The HTTP status and JSON body of an instant query of `selector[..]` at `to_ms` whose
/// (left-open) range covers exactly `[from_ms, to_ms]`.
pub async fn range_select(
    client: &reqwest::Client,
    base: &str,
    selector: &str,
    from_ms: i64,
    to_ms: i64,
) -> (reqwest::StatusCode, Value) {
    let url = format!(
        "{base}/api/v1/query?query={}&time={}.{:03}",
        urlencode(&format!("{selector}[{}ms]", to_ms - from_ms + 1)),
        to_ms.div_euclid(1000),
        to_ms.rem_euclid(1000)
    );
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// [`range_select`] that must succeed, parsed into [`Stored`] keyed by label `key`. Every
/// value string is parsed back to `f64`; the caller compares bits.
pub async fn stored(
    client: &reqwest::Client,
    base: &str,
    selector: &str,
    key: &str,
    from_ms: i64,
    to_ms: i64,
) -> Stored {
    let (status, body) = range_select(client, base, selector, from_ms, to_ms).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["data"]["resultType"], "matrix", "{body}");
    let mut out = Stored::new();
    for s in body["data"]["result"].as_array().unwrap() {
        let name = s["metric"][key]
            .as_str()
            .unwrap_or_else(|| panic!("series without {key}: {s}"))
            .to_string();
        let mut samples = BTreeMap::new();
        for p in s["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            let text = p[1].as_str().unwrap();
            let v: f64 = text
                .parse()
                .unwrap_or_else(|e| panic!("value {text:?} of {name} at {t}: {e}"));
            assert!(
                samples.insert(t, v.to_bits()).is_none(),
                "{name} has two samples at {t}"
            );
        }
        assert!(
            out.insert(name.clone(), samples).is_none(),
            "series {name} returned twice"
        );
    }
    out
}

/// `/metrics` as text.
pub async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    let resp = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The value of an unlabelled metric line `name value` in `/metrics`.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A block directory's `meta.json` fields the tests need.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    pub dir: PathBuf,
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    pub parents: Vec<String>,
}

/// Directories under `<data>/blocks/`, split into complete blocks (readable `meta.json`,
/// `index` and `chunks`), unfinished `*.tmp` directories, and anything else (incomplete).
pub fn scan_blocks(data: &Path) -> (Vec<BlockInfo>, Vec<PathBuf>, Vec<PathBuf>) {
    let (mut complete, mut tmp, mut broken) = (Vec::new(), Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(data.join("blocks")) else {
        return (complete, tmp, broken);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.extension().is_some_and(|e| e == "tmp") {
            tmp.push(path);
            continue;
        }
        match read_block_info(&path) {
            Some(info) => complete.push(info),
            None => broken.push(path),
        }
    }
    complete.sort_by_key(|b| (b.min_time, b.max_time));
    (complete, tmp, broken)
}

fn read_block_info(dir: &Path) -> Option<BlockInfo> {
    let meta: Value = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
    let nonempty = |f: &str| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0);
    if !nonempty("index") || !nonempty("chunks") {
        return None;
    }
    Some(BlockInfo {
        dir: dir.to_path_buf(),
        ulid: meta["ulid"].as_str()?.to_string(),
        min_time: meta["minTime"].as_i64()?,
        max_time: meta["maxTime"].as_i64()?,
        parents: meta["compaction"]["parents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` at the deadline.
pub async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Debian's Prometheus binary (installed by `scripts/install-test-deps.sh`).
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// A running Debian `prometheus` that accepts remote write and scrapes nothing, SIGKILLed
/// when dropped.
pub struct Prometheus {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus with its data and log under `dir` and waits until `/-/ready` answers
    /// 200. Panics with a hint when the binary is missing.
    pub async fn start(dir: &Path) -> Prometheus {
        Prometheus::start_with_args(dir, &[]).await
    }

    /// [`Prometheus::start`] with extra command-line flags (e.g.
    /// `--enable-feature=exemplar-storage`).
    pub async fn start_with_args(dir: &Path, extra: &[&str]) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS_BIN).exists(),
            "{PROMETHEUS_BIN} is missing: run scripts/install-test-deps.sh (it installs \
             Debian's prometheus package) and rerun the tests"
        );
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("prometheus exited with {status}; log:\n{}", tail_of(&p.log));
            }
            if let Ok(r) = client.get(format!("{}/-/ready", p.base)).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready; log:\n{}",
                tail_of(&p.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p
    }
}

/// GETs a Prometheus-style API endpoint; `Ok(data)` on `"status":"success"`, otherwise
/// `Err("<http status> <errorType>: <error>")`.
pub async fn api_get(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    params: &[(&str, String)],
) -> Result<Value, String> {
    let resp = client
        .get(format!("{base}{path}"))
        .query(params)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("GET {path}: {e}"))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{status}, body is not JSON ({e}): {text}"))?;
    if json["status"] == "success" {
        Ok(json["data"].clone())
    } else {
        Err(format!(
            "{} {}: {}",
            status.as_u16(),
            json["errorType"].as_str().unwrap_or("?"),
            json["error"].as_str().unwrap_or("?")
        ))
    }
}

/// The Python interpreter of the venv `scripts/install-test-deps.sh` creates (with the
/// OpenTelemetry SDK); fails with the fix when it is missing.
pub fn venv_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        });
    let python = cache.join("sextant-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-deps.sh and rerun the tests",
        python.display()
    );
    python
}
