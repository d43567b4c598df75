//! Rules end to end: the binary with a config and a rule file, data in by remote write, and the
//! recording output, `ALERTS`/`ALERTS_FOR_STATE`, `/api/v1/rules`, `/api/v1/alerts`,
//! pending → firing timing, `for` state kept across `kill -9`, and `POST /-/reload`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{remote_write, series, urlencode, Server};

const RULES: &str = r#"groups:
- name: demo
  rules:
  - record: job:errors:sum
    expr: sum by (job) (errors)
  - alert: ErrorsHigh
    expr: job:errors:sum > 5
    for: 4s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.job }} has {{ $value }} errors"
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn setup(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/demo.yml"), RULES).unwrap();
    let config = dir.join("sextant.yml");
    std::fs::write(
        &config,
        "storage:\n  wal_fsync: always\n\
         global:\n  evaluation_interval: 1s\n  external_labels:\n    cluster: test\n\
         rule_files:\n  - rules/*.yml\n\
         rules:\n  for_grace_period: 1s\n",
    )
    .unwrap();
    config
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn query(base: &str, q: &str) -> Value {
    let body = get_json(&format!("{base}/api/v1/query?query={}", urlencode(q))).await;
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"].clone()
}

/// Polls `f` every 100ms until it returns `Some`, or panics after `timeout` with `what`.
async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ErrorsHigh alert from `/api/v1/alerts`, if any.
async fn errors_high(base: &str) -> Option<Value> {
    let body = get_json(&format!("{base}/api/v1/alerts")).await;
    body["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == "ErrorsHigh")
        .cloned()
}

async fn push_errors(base: &str, value: f64) {
    let status = remote_write(
        &reqwest::Client::new(),
        base,
        vec![series(
            &[("__name__", "errors"), ("instance", "i1"), ("job", "api")],
            &[(now_ms() - 500, value)],
        )],
    )
    .await
    .unwrap();
    assert_eq!(status.as_u16(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_evaluate_alert_survive_kill_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let data = dir.path().join("data");
    let log = dir.path().join("sextant.log");
    let mut server = Server::start(&config, &data, &log).await;
    let base = server.base.clone();
    push_errors(&base, 10.0).await;

    // The recording rule's output, renamed and aggregated.
    let rec = wait_for(Duration::from_secs(10), "job:errors:sum", || async {
        let r = query(&base, "job:errors:sum").await;
        (r.as_array().map(Vec::len) == Some(1)).then_some(r)
    })
    .await;
    assert_eq!(
        rec[0]["metric"],
        serde_json::json!({"__name__": "job:errors:sum", "job": "api"})
    );
    assert_eq!(rec[0]["value"][1], "10");

    // Pending first, then firing once 4s have passed since activeAt.
    let pending = wait_for(Duration::from_secs(10), "pending alert", || async {
        errors_high(&base).await
    })
    .await;
    assert_eq!(pending["state"], "pending", "{pending}");
    let firing = wait_for(Duration::from_secs(15), "firing alert", || async {
        errors_high(&base).await.filter(|a| a["state"] == "firing")
    })
    .await;
    let active_at = firing["activeAt"].as_str().unwrap().to_string();
    assert_eq!(active_at, pending["activeAt"].as_str().unwrap());
    assert_eq!(firing["value"], "1e+01");
    assert_eq!(firing["annotations"]["summary"], "api has 10 errors");
    assert_eq!(
        firing["labels"],
        serde_json::json!({"alertname": "ErrorsHigh", "job": "api", "severity": "page"})
    );

    // ALERTS_FOR_STATE holds activeAt (unix seconds); the first firing ALERTS sample comes
    // 4s (the `for`) after it, at the next evaluation on the 1s grid.
    let for_state = query(&base, "ALERTS_FOR_STATE").await;
    let for_value: f64 = for_state[0]["value"][1].as_str().unwrap().parse().unwrap();
    // (The subquery's 100ms grid reaches the newest sample a moment after it is written.)
    let fire_ts = wait_for(Duration::from_secs(5), "firing ALERTS sample", || async {
        let r = query(
            &base,
            r#"min_over_time(timestamp(ALERTS{alertstate="firing"})[1m:100ms])"#,
        )
        .await;
        (r.as_array().map(Vec::len) == Some(1)).then_some(r)
    })
    .await;
    let first_firing: f64 = fire_ts[0]["value"][1].as_str().unwrap().parse().unwrap();
    let waited = first_firing - for_value;
    assert!((4.0..6.0).contains(&waited), "pending for {waited}s");
    let alerts = query(&base, "ALERTS").await;
    assert_eq!(alerts.as_array().map(Vec::len), Some(1), "{alerts}");
    assert_eq!(
        alerts[0]["metric"],
        serde_json::json!({"__name__": "ALERTS", "alertname": "ErrorsHigh",
                           "alertstate": "firing", "job": "api", "severity": "page"})
    );

    // /api/v1/rules as Prometheus shapes it.
    let rules = get_json(&format!("{base}/api/v1/rules")).await;
    assert_eq!(rules["status"], "success");
    let g = &rules["data"]["groups"][0];
    assert_eq!(g["name"], "demo");
    assert!(
        g["file"].as_str().unwrap().ends_with("rules/demo.yml"),
        "{g}"
    );
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["rules"][0]["type"], "recording");
    assert_eq!(g["rules"][0]["health"], "ok");
    assert_eq!(g["rules"][0]["query"], "sum by (job) (errors)");
    let ar = &g["rules"][1];
    assert_eq!(ar["type"], "alerting");
    assert_eq!(ar["state"], "firing");
    assert_eq!(ar["duration"], 4.0);
    assert_eq!(ar["labels"], serde_json::json!({"severity": "page"}));
    assert_eq!(ar["alerts"][0]["activeAt"], active_at.as_str());
    let only_rec = get_json(&format!("{base}/api/v1/rules?type=record")).await;
    assert_eq!(
        only_rec["data"]["groups"][0]["rules"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let bad = reqwest::get(format!("{base}/api/v1/rules?type=nope"))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["errorType"], "bad_data");

    // kill -9 and restart: the alert comes back firing with its original activeAt, sooner
    // than a fresh 4s `for` would allow (restore after the second evaluation).
    server.kill();
    let mut server = Server::start(&config, &data, &log).await;
    let base = server.base.clone();
    let restarted = Instant::now();
    push_errors(&base, 10.0).await;
    let again = wait_for(Duration::from_secs(15), "firing after restart", || async {
        errors_high(&base).await.filter(|a| a["state"] == "firing")
    })
    .await;
    // ALERTS_FOR_STATE keeps whole seconds, as in Prometheus.
    let whole_seconds = |s: &str| s.split(['.', 'Z']).next().unwrap_or("").to_string();
    let restored_at = whole_seconds(again["activeAt"].as_str().unwrap());
    assert_eq!(restored_at, whole_seconds(&active_at), "for state restored");
    assert!(
        restarted.elapsed() < Duration::from_secs(8),
        "fired again {:?} after the restart",
        restarted.elapsed()
    );

    // Reload: a new rule appears; the unchanged alert keeps its state.
    std::fs::write(
        dir.path().join("rules/demo.yml"),
        format!("{RULES}  - record: job:errors:double\n    expr: job:errors:sum * 2\n"),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doubled = wait_for(Duration::from_secs(10), "job:errors:double", || async {
        let r = query(&base, "job:errors:double").await;
        (r.as_array().map(Vec::len) == Some(1)).then_some(r)
    })
    .await;
    assert_eq!(doubled[0]["value"][1], "20");
    let kept = errors_high(&base).await.unwrap();
    assert_eq!(kept["state"], "firing");
    assert_eq!(
        whole_seconds(kept["activeAt"].as_str().unwrap()),
        restored_at
    );

    // SIGHUP reloads too.
    std::fs::write(
        dir.path().join("rules/demo.yml"),
        format!(
            "{RULES}  - record: job:errors:double\n    expr: job:errors:sum * 2\n  - record: job:errors:triple\n    expr: job:errors:sum * 3\n"
        ),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(Duration::from_secs(10), "job:errors:triple", || async {
        let r = query(&base, "job:errors:triple").await;
        (r.as_array().map(Vec::len) == Some(1)).then_some(r)
    })
    .await;

    // A reload re-reads `rule_files` from the configuration file: a second file joins.
    std::fs::write(
        dir.path().join("extra.yml"),
        "groups:\n- name: extra\n  rules:\n  - record: extra:one\n    expr: vector(1)\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("  - rules/*.yml\n", "  - rules/*.yml\n  - extra.yml\n"),
    )
    .unwrap();
    let resp = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rules = get_json(&format!("{base}/api/v1/rules?rule_group[]=extra")).await;
    assert_eq!(
        rules["data"]["groups"].as_array().map(Vec::len),
        Some(1),
        "{rules}"
    );
    assert_eq!(rules["data"]["groups"][0]["rules"][0]["name"], "extra:one");

    // Self-metrics count evaluations per group.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let evals = metrics
        .lines()
        .find(|l| l.starts_with("sextant_rule_evaluations_total{") && l.contains("demo.yml;demo"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(evals >= 3.0, "evaluations counted: {evals}");

    // A broken file is refused and the running rules stay.
    std::fs::write(
        dir.path().join("rules/demo.yml"),
        "groups:\n- name: demo\n  rules:\n  - record: x\n    expr: sum(\n",
    )
    .unwrap();
    let resp = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let rules = get_json(&format!("{base}/api/v1/rules?rule_group[]=demo")).await;
    assert_eq!(
        rules["data"]["groups"][0]["rules"].as_array().map(Vec::len),
        Some(4)
    );
    server.terminate().await;
}
