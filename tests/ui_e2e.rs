//! The web console in real browsers: `sextant serve` is started with a rule file, an SLO file
//! and the built-in notifier, seeded over its own ingest paths (remote write: request counters
//! that burn the SLO's budget and a queue gauge that fires an alert; Loki push: log lines with
//! trace ids in structured metadata), and `ui/tests/console.mjs` runs one step list over every
//! page in each browser: Debian's chromium through playwright-core, Debian's firefox-esr through
//! puppeteer-core (WebDriver BiDi). The script checks each page against the API's answers
//! (chart points, table rows, log counts, silences muting alerts in the notifier), light and
//! dark, at 1280×800 and phone width, and that no page logged a console error; these tests
//! assert that every step passed.
//!
//! Needs the browser (`/usr/bin/chromium` or `$CHROMIUM`, `/usr/bin/firefox-esr` or `$FIREFOX`),
//! `node` and `ui/node_modules` (all installed by `scripts/install-test-deps.sh`). Without the
//! browser its test is skipped with a loud message; anything else missing fails it. The two
//! tests seed their own servers in parallel but take turns with the browsers (2 cores).
//! Screenshots and `results.json` go to `$UI_ARTIFACTS/<browser>/`, by default
//! `<target dir>/ui-artifacts/<browser>/`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::{poll, remote_write, series, Server};

const CONFIG: &str = r#"
otlp:
  grpc_addr: "off"
  http_addr: "off"
global:
  evaluation_interval: 1s
rule_files: [rules.yml]
slo_files: [slos.yml]
notifications:
  route:
    receiver: console
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: console
"#;

const RULES: &str = r#"
groups:
  - name: checkout
    rules:
      - alert: QueueTooLong
        expr: queue_length{job="checkout"} > 5
        labels: {severity: ticket}
        annotations:
          summary: '{{ $labels.job }} queue is {{ $value }} long'
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
"#;

const SLOS: &str = r#"
version: "prometheus/v1"
service: "checkout"
slos:
  - name: "availability"
    objective: 99.9
    description: "Checkout requests that do not fail."
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="checkout",code="500"}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
    alerting:
      name: CheckoutBudgetBurn
"#;

const SLO_ID: &str = "checkout-availability";
const ALERT: &str = "QueueTooLong";
const LOG_QUERY: &str = r#"{service_name="checkout"}"#;
/// Requests per second of the checkout service.
const RPS: f64 = 10.0;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Counters of `http_requests_total{job="checkout"}` by code, advanced sample by sample at
/// [`RPS`] requests per second.
#[derive(Default)]
struct Traffic {
    ok: f64,
    errors: f64,
    last: Option<i64>,
}

impl Traffic {
    /// Remote-writes one sample per time (ascending) with `error_fraction` of the requests
    /// since the previous sample failing, and `queue_length` 12 at each.
    async fn push(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        times: &[i64],
        error_fraction: f64,
    ) {
        let (mut ok, mut err, mut queue) = (Vec::new(), Vec::new(), Vec::new());
        for &t in times {
            let requests = self.last.map_or(0.0, |l| RPS * (t - l) as f64 / 1000.0);
            self.last = Some(t);
            self.errors += requests * error_fraction;
            self.ok += requests * (1.0 - error_fraction);
            ok.push((t, self.ok));
            err.push((t, self.errors));
            queue.push((t, 12.0));
        }
        let labels = |code| {
            [
                ("__name__", "http_requests_total"),
                ("code", code),
                ("job", "checkout"),
            ]
        };
        let body = vec![
            series(&labels("200"), &ok),
            series(&labels("500"), &err),
            series(&[("__name__", "queue_length"), ("job", "checkout")], &queue),
        ];
        let status = remote_write(client, base, body).await;
        assert_eq!(
            status.ok().map(|s| s.as_u16()),
            Some(204),
            "remote write refused"
        );
    }
}

/// Thirty log lines of the last 20 minutes; error lines carry a trace id as structured metadata.
async fn push_logs(client: &reqwest::Client, base: &str, now: i64) {
    let mut info = Vec::new();
    let mut errors = Vec::new();
    for i in 0..30i64 {
        let ts = ((now - (30 - i) * 40_000) * 1_000_000).to_string();
        if i % 3 == 0 {
            let trace = format!("4bf92f3577b34da6a3ce929d0e0e{:04x}", 0x4736 + i);
            errors.push(json!([ts, format!("level=error msg=\"payment failed\" order={i}"), {"trace_id": trace}]));
        } else {
            info.push(json!([
                ts,
                format!("level=info msg=\"order paid\" order={i} took={}ms", 10 + i)
            ]));
        }
    }
    let body = json!({"streams": [
        {"stream": {"service_name": "checkout", "level": "info"}, "values": info},
        {"stream": {"service_name": "checkout", "level": "error"}, "values": errors},
    ]});
    let r = client
        .post(format!("{base}/loki/api/v1/push"))
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(r.ok(), Some(204), "Loki push refused");
}

/// The trace of the first error log line (its `trace_id`): checkout → payments → a query.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Sends one three-span trace over OTLP/HTTP JSON; `true` when the server stored it (`false`
/// while this build has no trace store: the traces step is then skipped).
async fn push_trace(client: &reqwest::Client, base: &str, now: i64) -> bool {
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    let t0 = now - 20 * 40_000;
    let span = |id: &str, parent: &str, name: &str, kind: u8, from: i64, to: i64, attrs: Value| {
        json!({"traceId": TRACE_ID, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
               "startTimeUnixNano": ns(from), "endTimeUnixNano": ns(to), "attributes": attrs,
               "status": if name == "charge" { json!({"code": 2, "message": "card declined"}) } else { json!({}) }})
    };
    let resource = |service: &str| json!({"attributes": [{"key": "service.name", "value": {"stringValue": service}}]});
    let body = json!({"resourceSpans": [
        {"resource": resource("checkout"), "scopeSpans": [{"spans": [
            span("a1b2c3d4e5f60718", "", "POST /checkout", 2, t0, t0 + 180,
                 json!([{"key": "http.route", "value": {"stringValue": "/checkout"}}])),
        ]}]},
        {"resource": resource("payments"), "scopeSpans": [{"spans": [
            span("1122334455667788", "a1b2c3d4e5f60718", "charge", 2, t0 + 20, t0 + 150,
                 json!([{"key": "payment.provider", "value": {"stringValue": "acme"}}])),
            span("99aabbccddeeff00", "1122334455667788", "SELECT cards", 3, t0 + 30, t0 + 60,
                 json!([{"key": "db.system", "value": {"stringValue": "postgresql"}}])),
        ]}]},
    ]});
    let r = client
        .post(format!("{base}/v1/traces"))
        .json(&body)
        .send()
        .await;
    matches!(r, Ok(r) if r.status().is_success())
}

async fn get(client: &reqwest::Client, url: String) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// A browser the console test runs in, and what `ui/tests/drivers.mjs` drives it with.
struct Browser {
    /// `$BROWSER` for console.mjs, and the artifacts subfolder.
    name: &'static str,
    /// Environment variable overriding the executable (also passed on to console.mjs).
    env: &'static str,
    default_path: &'static str,
    /// The Debian package providing `default_path`.
    package: &'static str,
    /// The npm package (in ui/node_modules) that drives it.
    driver: &'static str,
}

const CHROMIUM: Browser = Browser {
    name: "chromium",
    env: "CHROMIUM",
    default_path: "/usr/bin/chromium",
    package: "chromium",
    driver: "playwright-core",
};

const FIREFOX: Browser = Browser {
    name: "firefox",
    env: "FIREFOX",
    default_path: "/usr/bin/firefox-esr",
    package: "firefox-esr",
    driver: "puppeteer-core",
};

/// Held while a browser runs, so the two tests' browsers take turns on the machine's cores.
static BROWSER_TURN: Mutex<()> = Mutex::new(());

fn artifacts_dir() -> PathBuf {
    match std::env::var_os("UI_ARTIFACTS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap_or(Path::new("target"))
            .join("ui-artifacts"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pages_work_in_chromium_against_a_seeded_server() {
    console_pages_work_in(&CHROMIUM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pages_work_in_firefox_against_a_seeded_server() {
    console_pages_work_in(&FIREFOX).await;
}

/// Seeds a server, runs `ui/tests/console.mjs` in `browser` and asserts every step passed.
async fn console_pages_work_in(browser: &Browser) {
    let executable = std::env::var(browser.env).unwrap_or_else(|_| browser.default_path.into());
    if !Path::new(&executable).exists() {
        eprintln!(
            "\n!!!!!!!! ui_e2e SKIPPED: {executable} not found. The web console's browser test in \
             {} did NOT run. Install it with scripts/install-test-deps.sh (Debian's {}). !!!!!!!!\n",
            browser.name, browser.package
        );
        return;
    }
    let ui = repo().join("ui");
    assert!(
        ui.join("node_modules").join(browser.driver).exists(),
        "ui/node_modules/{} is missing: run scripts/install-test-deps.sh (npm ci in ui/)",
        browser.driver
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    std::fs::write(dir.path().join("slos.yml"), SLOS).unwrap();
    let log = dir.path().join("sextant.log");
    let server = Server::start(&config, &dir.path().join("data"), &log).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();

    // Three days of clean traffic (one sample a minute), then 5 % errors (50× the budget)
    // for the last 30 minutes, sampled every 15 s: the SLO pages and about a third of its
    // 30-day budget is spent.
    let now = now_ms();
    let mut traffic = Traffic::default();
    let clean: Vec<i64> = (0..=3 * 1440 - 30)
        .map(|k| now - 3 * 86_400_000 + k * 60_000)
        .collect();
    let burning: Vec<i64> = (1..=120).map(|k| now - 1_800_000 + k * 15_000).collect();
    for chunk in clean.chunks(1440) {
        traffic.push(&client, &base, chunk, 0.0).await;
    }
    traffic.push(&client, &base, &burning, 0.05).await;
    push_logs(&client, &base, now).await;
    // The traces page is checked once this build both stores traces and serves Tempo's API.
    let search = client
        .get(format!("{base}/api/search?q=%7B%7D"))
        .send()
        .await;
    let tempo_api = matches!(&search, Ok(r) if r.status() != 404);
    let traces = push_trace(&client, &base, now).await && tempo_api;
    if !traces {
        eprintln!(
            "ui_e2e: this build stores no traces or serves no Tempo API; the traces step is skipped"
        );
    }

    // Keep the traffic going while the browser looks, so windows ending "now" stay full.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last = now;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let t = now_ms();
                if t - last >= 15_000 {
                    traffic.push(&client, &base, &[t], 0.05).await;
                    last = t;
                }
            }
        })
    };

    // Ready when the SLO's page alert and the queue alert fire and the burndown is recorded.
    let burndown = format!("{base}/api/v1/query?query=slo:period_error_budget_remaining:ratio%7Bsloth_id%3D%22{SLO_ID}%22%7D");
    poll(
        Duration::from_secs(90),
        "the SLO page alert, QueueTooLong and the burndown",
        || {
            let (client, base, burndown) = (client.clone(), base.clone(), burndown.clone());
            async move {
                let slo = get(&client, format!("{base}/api/v1/slos/{SLO_ID}")).await?;
                let paging = slo["data"]["alerts"]
                    .as_array()?
                    .iter()
                    .any(|a| a["severity"] == "page" && a["state"] == "firing");
                let am = get(&client, format!("{base}/api/v2/alerts")).await?;
                let queue = am
                    .as_array()?
                    .iter()
                    .any(|a| a["labels"]["alertname"] == ALERT);
                let recorded = get(&client, burndown).await?["data"]["result"]
                    .as_array()?
                    .len()
                    == 1;
                (paging && queue && recorded).then_some(())
            }
        },
    )
    .await;

    let artifacts = artifacts_dir().join(browser.name);
    let _ = std::fs::remove_dir_all(&artifacts);
    let script = ui.join("tests/console.mjs");
    let (base2, artifacts2) = (base.clone(), artifacts.clone());
    let (name, env) = (browser.name, browser.env);
    let out = tokio::task::spawn_blocking(move || {
        let _turn = BROWSER_TURN.lock().unwrap_or_else(|e| e.into_inner());
        std::process::Command::new("node")
            .arg(script)
            .env("SEXTANT_URL", &base2)
            .env("BROWSER", name)
            .env(env, &executable)
            .env("UI_ARTIFACTS", &artifacts2)
            .env("SLO_ID", SLO_ID)
            .env("ALERT_NAME", ALERT)
            .env("LOG_QUERY", LOG_QUERY)
            .env("TRACE_ID", TRACE_ID)
            .env("REQUIRE_TRACES", if traces { "1" } else { "0" })
            .current_dir(repo())
            .output()
    })
    .await
    .unwrap()
    .expect("run node (installed by scripts/install-test-deps.sh)");
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let results: Value = std::fs::read_to_string(artifacts.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no results.json from the browser test\n{stdout}\n{stderr}"));
    let steps = results["results"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&Value> = steps.iter().filter(|s| s["status"] == "failed").collect();
    assert!(
        failed.is_empty() && out.status.success(),
        "{} steps failed: {}\nstderr: {stderr}\nserver log:\n{}",
        browser.name,
        serde_json::to_string_pretty(&failed).unwrap_or_default(),
        support::tail_of(&server.log)
    );
    if traces {
        let s = steps.iter().find(|s| s["name"] == "traces");
        assert_eq!(
            s.map(|s| s["status"].clone()),
            Some(json!("passed")),
            "{}: traces: {s:?}",
            browser.name
        );
    }
    // Every page was exercised (only the traces page may be skipped, while the Tempo API is
    // not served).
    for name in [
        "slo-overview",
        "slo-page-to-explore",
        "explore-chart-matches-api",
        "explore-autocomplete",
        "explore-error",
        "alerts-silence",
        "logs",
        "status",
        "dark-phone",
        "keyboard-navigation",
        "same-origin-only",
    ] {
        let s = steps.iter().find(|s| s["name"] == name);
        assert_eq!(
            s.map(|s| s["status"].clone()),
            Some(json!("passed")),
            "{}: step {name}: {s:?}",
            browser.name
        );
    }
    let shots = std::fs::read_dir(&artifacts)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                .count()
        })
        .unwrap_or(0);
    assert!(
        shots >= 11,
        "{}: only {shots} screenshots in {}",
        browser.name,
        artifacts.display()
    );
}
