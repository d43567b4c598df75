//! The notifier inside `sextant serve`: alerts POSTed to its `/api/v2/alerts` (as Prometheus
//! or amtool would) are grouped and delivered to a webhook; after `kill -9` and a restart the
//! notification log and silences survive, so a re-sent alert is not notified again while its
//! resolve still is; the self-metrics count deliveries; a bad `notifications:` section stops
//! startup with the setting named.

mod notify_support;
mod support;

use std::time::Duration;

use notify_support::Sink;
use serde_json::{json, Value};
use support::{poll, Server};

const CONFIG: &str = r#"
otlp:
  grpc_addr: "off"
  http_addr: "off"
notifications:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs: [{url: 'SINK/hook'}]
"#;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn t(s: i64) -> String {
    sextant_alerting::notify::rfc3339(s * 1000)
}

async fn post_alert(client: &reqwest::Client, base: &str, starts: i64, ends: i64) {
    let r = client
        .post(format!("{base}/api/v2/alerts"))
        .json(&json!([{
            "labels": {"alertname": "ServerTest", "job": "api"},
            "annotations": {"summary": "posted to sextant"},
            "startsAt": t(starts),
            "endsAt": t(ends),
        }]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifier_in_the_binary_survives_kill_9() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(&config, CONFIG.replace("SINK", &sink.base)).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("sextant.log");
    let client = reqwest::Client::new();

    let mut server = Server::start(&config, &data, &log).await;
    let t0 = now_s() - 60;
    post_alert(&client, &server.base, t0, now_s() + 300).await;
    let first: Value = poll(Duration::from_secs(30), "the firing webhook", || {
        let b = sink.bodies("/hook");
        async move { b.into_iter().next() }
    })
    .await;
    assert_eq!(first["status"], "firing");
    assert_eq!(first["groupKey"], "{}:{alertname=\"ServerTest\"}");
    assert_eq!(first["alerts"][0]["startsAt"], t(t0));
    let listed: Vec<Value> = client
        .get(format!("{}/api/v2/alerts", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["receivers"], json!([{"name": "hook"}]));

    let r = client
        .post(format!("{}/api/v2/silences", server.base))
        .json(&json!({
            "matchers": [{"name": "alertname", "value": "Other", "isRegex": false}],
            "startsAt": t(now_s()),
            "endsAt": t(now_s() + 3600),
            "createdBy": "test",
            "comment": "survives restarts",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();

    poll(
        Duration::from_secs(10),
        "the notification log on disk",
        || {
            let p = data.join("notify/nflog.json");
            async move { p.exists().then_some(()) }
        },
    )
    .await;
    server.kill();

    let server = Server::start(&config, &data, &log).await;
    // Re-sent as still firing (Prometheus re-sends every minute): no second notification,
    // however often the group flushes.
    post_alert(&client, &server.base, t0, now_s() + 300).await;
    poll(
        Duration::from_secs(30),
        "three group flushes after the restart",
        || {
            let client = client.clone();
            let base = server.base.clone();
            async move {
                let m = support::metrics_text(&client, &base).await;
                let flushes = m
                    .lines()
                    .find_map(|l| l.strip_prefix("sextant_notifier_group_flushes_total "))
                    .and_then(|v| v.trim().parse::<f64>().ok())?;
                (flushes >= 3.0).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        sink.bodies("/hook").len(),
        1,
        "no re-send after the restart"
    );
    let silence: Value = client
        .get(format!("{}/api/v2/silence/{id}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(silence["comment"], "survives restarts");
    assert_eq!(silence["status"]["state"], "active");

    // The resolve is delivered; by the time it is, a duplicate firing one would have been too
    // (same group, flushed every second).
    post_alert(&client, &server.base, t0, now_s()).await;
    let resolved: Value = poll(Duration::from_secs(30), "the resolved webhook", || {
        let b = sink.bodies("/hook");
        async move { b.into_iter().find(|v| v["status"] == "resolved") }
    })
    .await;
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    let bodies = sink.bodies("/hook");
    assert_eq!(
        bodies.iter().filter(|v| v["status"] == "firing").count(),
        1,
        "no re-send after the restart: {bodies:?}"
    );
    let metrics = support::metrics_text(&client, &server.base).await;
    assert!(
        metrics.contains("sextant_notifications_total{integration=\"webhook\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_notifications_config_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        "notifications:\n  route:\n    receiver: nobody\n  receivers:\n    - name: hook\n      webhook_configs: [{url: 'http://127.0.0.1:9/'}]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("undefined receiver \"nobody\""), "{stderr}");
}
