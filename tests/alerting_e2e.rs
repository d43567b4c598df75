//! Rules, SLOs and notifications together in `sextant serve`: an alerting rule fed by remote
//! write fires, its templated annotation reaches a webhook through the built-in notifier, and
//! it resolves there when the data recovers; the SLO file's generated groups are evaluated
//! and listed by `/api/v1/rules`, `/api/v1/slos` reports the SLO, and `POST /-/reload` picks up
//! an SLO added to the file. A real SLO page reaches Slack, PagerDuty and a webhook with its
//! budget figures and working links, and is not notified again after `kill -9`.

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

const PAGE_CONFIG: &str = r#"
otlp:
  grpc_addr: "off"
  http_addr: "off"
global:
  evaluation_interval: 1s
rules:
  external_url: http://sextant.example:9090/
rule_files: [rules.yml]
slo_files: [slos.yml]
notifications:
  route:
    receiver: hook
    group_by: [alertname, sloth_severity]
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['sloth_severity="page"']
        receiver: oncall
  receivers:
    - name: hook
      webhook_configs: [{url: 'SINK/hook'}]
    - name: oncall
      webhook_configs: [{url: 'SINK/oncall'}]
      pagerduty_configs: [{routing_key: R0UT1NG, url: 'SINK/pd'}]
      slack_configs: [{api_url: 'SINK/slack', send_resolved: true}]
"#;

/// Request counters of job `api` at 10 req/s with `error_fraction` of them failing, one
/// sample each 15 s.
struct Traffic {
    ok: f64,
    errors: f64,
}

impl Traffic {
    async fn push(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        times: &[i64],
        error_fraction: f64,
    ) {
        let (mut ok, mut err) = (Vec::new(), Vec::new());
        for &t in times {
            self.errors += 150.0 * error_fraction;
            self.ok += 150.0 * (1.0 - error_fraction);
            ok.push((t, self.ok));
            err.push((t, self.errors));
        }
        let labels = |code| {
            [
                ("__name__", "http_requests_total"),
                ("code", code),
                ("job", "api"),
            ]
        };
        let body = vec![series(&labels("200"), &ok), series(&labels("500"), &err)];
        write(client, base, body).await;
    }
}

/// Remote-writes `timeseries`; a refusal fails the test with the server's reason.
async fn write(
    client: &reqwest::Client,
    base: &str,
    timeseries: Vec<sextant_ingest::remote_write::TimeSeries>,
) {
    let encoded = prost::Message::encode_to_vec(&sextant_ingest::remote_write::WriteRequest {
        timeseries,
        metadata: vec![],
    });
    let r = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(snap::raw::Encoder::new().compress_vec(&encoded).unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 204, "{}", r.text().await.unwrap_or_default());
}

/// Three days of recorded SLI event rates at a 0 % error ratio, once a minute, as if the
/// SLO had been evaluated all along: the budget is mostly left when the burn starts.
async fn backfill_recorded_history(client: &reqwest::Client, base: &str, now: i64) {
    let times: Vec<i64> = (1..=3 * 1440).rev().map(|m| now - m * 60_000).collect();
    let recorded = |name: &'static str, v: f64| {
        let samples: Vec<(i64, f64)> = times.iter().map(|&t| (t, v)).collect();
        series(
            &[
                ("__name__", name),
                ("sloth_id", "api-availability"),
                ("sloth_service", "api"),
                ("sloth_slo", "availability"),
                ("sloth_window", "5m"),
            ],
            &samples,
        )
    };
    let body = vec![
        recorded("slo:sli_error_events:rate5m", 0.0),
        recorded("slo:sli_total_events:rate5m", 10.0),
    ];
    write(client, base, body).await;
}

fn firing_count(sink: &Sink, path: &str) -> usize {
    sink.bodies(path)
        .iter()
        .filter(|b| {
            // Webhook payloads carry `status`, PagerDuty events `event_action`, Slack
            // messages a `[FIRING:n]` title.
            b["status"] == "firing"
                || b["event_action"] == "trigger"
                || b["text"].as_str().is_some_and(|t| t.starts_with("[FIRING"))
        })
        .count()
}

/// A real SLO page: 2 % errors against a 99.9 % objective burn the budget 20× over both the
/// 5m and 1h windows; the page reaches Slack, PagerDuty and a webhook with the budget figures
/// and links that resolve on this server; after `kill -9` and a restart, re-evaluated alerts
/// are not notified again (the notification log survived), and a resolve owed after the
/// restart is still delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_slo_page_carries_budget_figures_and_is_not_resent_after_kill_9() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(&config, PAGE_CONFIG.replace("SINK", &sink.base)).unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    std::fs::write(dir.path().join("slos.yml"), SLO).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("sextant.log");
    let client = reqwest::Client::new();
    let mut server = Server::start(&config, &data, &log).await;
    let base = server.base.clone();

    let now = now_ms();
    backfill_recorded_history(&client, &base, now).await;
    let mut traffic = Traffic {
        ok: 0.0,
        errors: 0.0,
    };
    let times: Vec<i64> = (0..=300).rev().map(|i| now - i * 15_000).collect();
    traffic.push(&client, &base, &times, 0.02).await;
    push_queue(&client, &base, 12.0).await;

    let slack: Value = poll(Duration::from_secs(60), "the Slack page", || {
        let b = sink.bodies("/slack");
        async move { b.into_iter().next() }
    })
    .await;
    let pd: Value = poll(Duration::from_secs(30), "the PagerDuty event", || {
        let b = sink.bodies("/pd");
        async move { b.into_iter().next() }
    })
    .await;
    let hook: Value = poll(Duration::from_secs(30), "the on-call webhook", || {
        let b = sink.bodies("/oncall");
        async move { b.into_iter().next() }
    })
    .await;

    // The webhook: the budget annotations, expanded; links on the external URL.
    assert_eq!(hook["status"], "firing", "{hook}");
    assert_eq!(hook["externalURL"], "http://sextant.example:9090");
    let alert = &hook["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "ApiBudgetBurn");
    assert_eq!(alert["labels"]["sloth_severity"], "page");
    let ann = &alert["annotations"];
    assert_eq!(ann["objective"], "99.9%");
    assert_eq!(
        ann["burn_rate"], "20.0× over 5m, 20.0× over 1h (alerts above 14.4×)",
        "{ann}"
    );
    let remaining = ann["error_budget_remaining"].as_str().unwrap();
    let pct: f64 = remaining
        .strip_suffix("% of the 30d budget")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("budget remaining: {remaining:?}"));
    // Three days at 0 % then seconds at 2 %: most of the budget is left, not all of it.
    assert!(pct > 0.0 && pct < 100.0, "{remaining}");
    let left = ann["error_budget_remaining_time"].as_str().unwrap();
    assert!(left.ends_with(" of full outage left"), "{left}");
    assert_eq!(
        ann["slo_url"],
        "http://sextant.example:9090/api/v1/slos/api-availability"
    );
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with("http://sextant.example:9090/graph?g0.expr="),
        "{generator}"
    );

    // Slack: a readable message with the figures on the error-budget line.
    let text = slack["attachments"][0]["text"].as_str().unwrap();
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[FIRING:1] ApiBudgetBurn page")),
        "{slack}"
    );
    assert!(
        text.contains(&format!(
            "*Error budget:* Burn rate: 20.0× over 5m, 20.0× over 1h (alerts above 14.4×) · Error budget remaining: {remaining} · Error budget remaining time: {left} · Objective: 99.9%"
        )),
        "{text}"
    );
    assert_eq!(
        slack["attachments"][0]["title_link"],
        "http://sextant.example:9090/api/v1/slos/api-availability"
    );

    // PagerDuty: a trigger whose SLO and query links point at this server's endpoints.
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["payload"]["severity"], "critical");
    let links = pd["links"].as_array().unwrap();
    assert_eq!(
        links[0],
        serde_json::json!({"href": "http://sextant.example:9090/api/v1/slos/api-availability",
                           "text": "SLO availability"})
    );
    assert_eq!(links[1]["text"], "Query");
    assert_eq!(links[1]["href"], generator);
    let details = pd["payload"]["custom_details"]["firing"].as_str().unwrap();
    assert!(
        details.contains(&format!(" - error_budget_remaining = {remaining}\n")),
        "{details}"
    );
    let local = |url: &str| url.replace("http://sextant.example:9090", &base);
    let slo: Value = client
        .get(local(links[0]["href"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(slo["status"], "success", "{slo}");
    assert_eq!(slo["data"]["objective"], 0.999, "{slo}");
    let query: Value = client
        .get(local(
            &generator.replace("/graph?g0.expr=", "/api/v1/query?query="),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(query["status"], "success", "{query}");
    assert_eq!(query["data"]["result"].as_array().map(Vec::len), Some(1));

    // The queue alert and the ticket went to the default receiver.
    poll(
        Duration::from_secs(30),
        "the queue alert and the ticket",
        || {
            let bodies = sink.bodies("/hook");
            async move {
                let has = |key: &str, value: &str| {
                    bodies
                        .iter()
                        .any(|b| b["status"] == "firing" && b["commonLabels"][key] == value)
                };
                (has("alertname", "QueueTooLong") && has("sloth_severity", "ticket")).then_some(())
            }
        },
    )
    .await;

    // kill -9, restart, keep the data burning: the alerts fire again in the ruler but nobody
    // is paged twice.
    let before: Vec<usize> = ["/slack", "/pd", "/oncall", "/hook"]
        .iter()
        .map(|p| firing_count(&sink, p))
        .collect();
    // A receiver has the notification before the notification log records it (at-least-once,
    // as Alertmanager): wait until every notification received is on disk, then kill.
    let sent: usize = before.iter().sum();
    let nflog = data.join("notify/nflog.json");
    poll(
        Duration::from_secs(30),
        "every notification in the notification log on disk",
        || {
            let logged = std::fs::read(&nflog)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v.as_object().map(|m| m.len()))
                .unwrap_or(0);
            async move { (logged >= sent).then_some(()) }
        },
    )
    .await;
    server.kill();
    let mut server = Server::start(&config, &data, &log).await;
    let base = server.base.clone();
    traffic.push(&client, &base, &[now_ms()], 0.02).await;
    push_queue(&client, &base, 12.0).await;
    poll(
        Duration::from_secs(60),
        "both alerts firing after the restart",
        || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let v = get(&client, &base, "/api/v1/alerts").await;
                let alerts = v["data"]["alerts"].as_array()?.clone();
                let firing = |name: &str| {
                    alerts
                        .iter()
                        .any(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
                };
                (firing("ApiBudgetBurn") && firing("QueueTooLong")).then_some(())
            }
        },
    )
    .await;
    // The notifier holds them (sent by the new evaluations) ...
    poll(
        Duration::from_secs(30),
        "the re-sent alerts in the notifier",
        || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let v = get(&client, &base, "/api/v2/alerts?active=true").await;
                let names: Vec<String> = v
                    .as_array()?
                    .iter()
                    .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
                    .collect();
                (names.iter().any(|n| n == "ApiBudgetBurn")
                    && names.iter().any(|n| n == "QueueTooLong"))
                .then_some(())
            }
        },
    )
    .await;
    // ... and several group_wait/group_interval rounds (1s each) pass without a notification.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after: Vec<usize> = ["/slack", "/pd", "/oncall", "/hook"]
        .iter()
        .map(|p| firing_count(&sink, p))
        .collect();
    assert_eq!(after, before, "firing notifications after the restart");

    // A resolve that becomes due after the restart is delivered, once.
    push_queue(&client, &base, 1.0).await;
    let resolved = |sink: &Sink| -> Vec<Value> {
        sink.bodies("/hook")
            .into_iter()
            .filter(|b| b["status"] == "resolved")
            .collect()
    };
    let r: Value = poll(Duration::from_secs(30), "the queue alert's resolve", || {
        let r = resolved(&sink);
        async move { r.into_iter().next() }
    })
    .await;
    assert_eq!(r["alerts"][0]["labels"]["alertname"], "QueueTooLong");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(resolved(&sink).len(), 1, "one resolve");
    server.terminate().await;
}
