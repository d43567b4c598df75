//! Rules, SLOs and notifications together in `sextant serve`: an alerting rule fed by remote
//! write fires, its templated annotation reaches a webhook through the built-in notifier, and
//! it resolves there when the data recovers; the SLO file's generated groups are evaluated
//! and listed by `/api/v1/rules`, `/api/v1/slos` reports the SLO, and `POST /-/reload` picks up
//! an SLO added to the file.

mod notify_support;
mod support;

use std::time::Duration;

use notify_support::Sink;
use serde_json::Value;
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
    receiver: hook
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs: [{url: 'SINK/hook'}]
"#;

const RULES: &str = r#"
groups:
  - name: api
    rules:
      - alert: QueueTooLong
        expr: queue_length > 5
        labels: {severity: page}
        annotations:
          summary: '{{ $labels.job }} queue is {{ $value }} long'
"#;

const SLO: &str = r#"
version: "prometheus/v1"
service: "api"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="api",code="500"}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="api"}[{{.window}}]))
    alerting:
      name: ApiBudgetBurn
"#;

const SECOND_SLO: &str = r#"
  - name: "latency"
    objective: 99
    sli:
      latency:
        histogram: http_request_duration_seconds
        selector: '{job="api"}'
        threshold: 0.3
    alerting:
      name: ApiSlow
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> Value {
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    r.json().await.unwrap()
}

async fn push_queue(client: &reqwest::Client, base: &str, v: f64) {
    let s = series(
        &[("__name__", "queue_length"), ("job", "api")],
        &[(now_ms(), v)],
    );
    assert_eq!(remote_write(client, base, vec![s]).await.unwrap(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_the_webhook_and_slos_are_evaluated_served_and_reloaded() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(&config, CONFIG.replace("SINK", &sink.base)).unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    std::fs::write(dir.path().join("slos.yml"), SLO).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("sextant.log");
    let client = reqwest::Client::new();
    let server = Server::start(&config, &data, &log).await;
    let base = server.base.clone();

    // Firing: the webhook gets the alert with its annotation expanded.
    push_queue(&client, &base, 12.0).await;
    let firing: Value = poll(Duration::from_secs(30), "the firing webhook", || {
        let b = sink.bodies("/hook");
        async move { b.into_iter().find(|b| b["status"] == "firing") }
    })
    .await;
    let alert = &firing["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "QueueTooLong");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["job"], "api");
    assert_eq!(alert["annotations"]["summary"], "api queue is 12 long");
    assert!(alert["generatorURL"]
        .as_str()
        .is_some_and(|u| u.contains("/graph?g0.expr=")));

    // Resolved: the data recovers, the rule resolves, the webhook hears it.
    push_queue(&client, &base, 1.0).await;
    let resolved: Value = poll(Duration::from_secs(30), "the resolved webhook", || {
        let b = sink.bodies("/hook");
        async move { b.into_iter().find(|b| b["status"] == "resolved") }
    })
    .await;
    assert_eq!(resolved["alerts"][0]["labels"]["alertname"], "QueueTooLong");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // The SLO's generated groups are evaluated like rule-file groups.
    let rules: Value = poll(Duration::from_secs(30), "evaluated SLO groups", || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let v = get(&client, &base, "/api/v1/rules?type=record").await;
            let groups = v["data"]["groups"].as_array()?.clone();
            let slo: Vec<&Value> = groups
                .iter()
                .filter(|g| g["file"].as_str().is_some_and(|f| f.ends_with("slos.yml")))
                .collect();
            (!slo.is_empty()
                && slo
                    .iter()
                    .all(|g| g["lastEvaluation"] != "0001-01-01T00:00:00Z"))
            .then_some(v)
        }
    })
    .await;
    let names: Vec<String> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "slo:sli_error:ratio_rate5m",
        "slo:sli_error:ratio_rate30d",
        "slo:objective:ratio",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let alerts = get(&client, &base, "/api/v1/rules?type=alert").await;
    let alert_rules: Vec<&str> = alerts["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        alert_rules
            .iter()
            .filter(|n| **n == "ApiBudgetBurn")
            .count(),
        2,
        "page and ticket alerts: {alert_rules:?}"
    );

    let slos = get(&client, &base, "/api/v1/slos").await;
    assert_eq!(slos["status"], "success");
    let list = slos["data"].as_array().expect("a list of SLOs");
    assert_eq!(list.len(), 1, "{slos}");
    assert_eq!(list[0]["objective"], 0.999);

    // Reload picks up a second SLO in the same file.
    std::fs::write(dir.path().join("slos.yml"), format!("{SLO}{SECOND_SLO}")).unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let slos = get(&client, &base, "/api/v1/slos").await;
    assert_eq!(slos["data"].as_array().map(Vec::len), Some(2), "{slos}");
    let alerts = get(&client, &base, "/api/v1/rules?type=alert").await;
    assert!(alerts.to_string().contains("ApiSlow"), "{alerts}");
}
