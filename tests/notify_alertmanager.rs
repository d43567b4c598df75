//! Against Debian's real Alertmanager (`/usr/bin/prometheus-alertmanager`, installed by
//! `scripts/install-test-deps.sh`): alerts forwarded as Prometheus forwards them arrive in its
//! `GET /api/v2/alerts` (and their resolve removes them); Alertmanager's own webhook for the
//! same alerts equals ours (up to the time format and our extra `notification_reason`); and
//! the silence API answers in the same shape.

mod support;

use support::free_port;

mod notify_support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use notify_support::Sink;
use serde_json::{json, Value};
use sextant_alerting::notify::http::RetryPolicy;
use sextant_alerting::notify::{
    parse_rfc3339, AlertingConfig, Notifier, NotifierOptions, NotifyConfig,
};
use sextant_alerting::Alert;

const AM_BIN: &str = "/usr/bin/prometheus-alertmanager";

struct Alertmanager {
    child: Child,
    base: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    async fn start(config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("am.log")).unwrap();
        let child = Command::new(AM_BIN)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.external-url=http://am.example:9093")
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager (run scripts/install-test-deps.sh)");
        let am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", am.base)).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            let log = std::fs::read_to_string(am._dir.path().join("am.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "alertmanager did not become ready:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        am
    }
}

async fn poll<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Makes two webhook bodies comparable: times to milliseconds (Go trims zero fractions), and
/// our `notification_reason` and `routeLabels` (newer Alertmanagers only) removed.
fn normalise(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("notification_reason");
        o.remove("routeLabels");
    }
    if let Some(alerts) = v["alerts"].as_array_mut() {
        for a in alerts {
            for k in ["startsAt", "endsAt"] {
                let t = a[k].as_str().unwrap_or_default().to_string();
                a[k] = json!(parse_rfc3339(&t).unwrap());
            }
        }
    }
    v
}

fn alert(instance: &str, starts_s: i64, ends_s: i64) -> Alert {
    let l = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Alert {
        labels: l(&[
            ("alertname", "SextantForwarded"),
            ("instance", instance),
            ("severity", "page"),
        ]),
        annotations: l(&[("summary", "forwarded from Sextant")]),
        starts_at_ms: starts_s * 1000,
        ends_at_ms: ends_s * 1000,
        generator_url: "http://sextant.example:9090/graph?g0.expr=up".into(),
    }
}

#[tokio::test]
async fn forwarded_alerts_reach_alertmanager_and_its_webhook_matches_ours() {
    if !std::path::Path::new(AM_BIN).exists() {
        panic!("{AM_BIN} missing: run scripts/install-test-deps.sh");
    }
    let sink = Sink::start().await;
    let route = r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{url: 'SINK', send_resolved: true}]
"#;
    let am = Alertmanager::start(&route.replace("SINK", &format!("{}/am", sink.base))).await;
    let notify_cfg: NotifyConfig = serde_yaml::from_str(&format!(
        "external_url: http://am.example:9093\n{}",
        route.replace("SINK", &format!("{}/ours", sink.base))
    ))
    .unwrap();
    let alerting: AlertingConfig = serde_yaml::from_str(&format!(
        "alertmanagers:\n  - static_configs: [{{targets: ['127.0.0.1:{}']}}]\n    timeout: 5s\n",
        am.port
    ))
    .unwrap();
    let n = Notifier::new(
        &notify_cfg,
        &alerting,
        NotifierOptions {
            retry: RetryPolicy {
                initial: Duration::from_millis(20),
                deadline: Duration::from_secs(5),
                ..RetryPolicy::default()
            },
            ..NotifierOptions::default()
        },
    )
    .unwrap();

    let t0 = now_s() - 10;
    n.receive(vec![alert("a", t0, t0 + 300), alert("b", t0 + 1, t0 + 300)]);
    n.flush_due().await;
    let client = reqwest::Client::new();
    let listed: Vec<Value> = poll("alerts in Alertmanager", || {
        let client = client.clone();
        let url = format!("{}/api/v2/alerts", am.base);
        async move {
            let v: Vec<Value> = client.get(url).send().await.ok()?.json().await.ok()?;
            (v.len() == 2).then_some(v)
        }
    })
    .await;
    let ours = n.alerts_json(&Default::default());
    for (theirs, mine) in listed.iter().zip(&ours) {
        assert_eq!(theirs["labels"], mine["labels"]);
        assert_eq!(theirs["annotations"], mine["annotations"]);
        assert_eq!(
            theirs["fingerprint"], mine["fingerprint"],
            "same fingerprint function"
        );
        assert_eq!(theirs["generatorURL"], mine["generatorURL"]);
        assert_eq!(theirs["status"]["state"], "active");
        assert_eq!(theirs["receivers"], mine["receivers"]);
        assert_eq!(
            parse_rfc3339(theirs["startsAt"].as_str().unwrap()).unwrap(),
            parse_rfc3339(mine["startsAt"].as_str().unwrap()).unwrap()
        );
    }
    // Alertmanager's webhook for the group equals ours.
    let theirs = poll("Alertmanager's webhook", || {
        let b = sink.bodies("/am");
        async move { b.into_iter().next() }
    })
    .await;
    let mine = sink.bodies("/ours");
    assert_eq!(
        mine.len(),
        1,
        "our notifier flushed at once (alerts older than group_wait)"
    );
    assert_eq!(normalise(mine[0].clone()), normalise(theirs));

    // Resolve both: forwarded with endsAt now, they leave Alertmanager's active list, and both
    // send the same resolved notification.
    let t1 = now_s();
    n.receive(vec![alert("a", t0, t1), alert("b", t0 + 1, t1)]);
    n.flush_due().await;
    poll("alerts resolved in Alertmanager", || {
        let client = client.clone();
        let url = format!("{}/api/v2/alerts?active=true", am.base);
        async move {
            let v: Vec<Value> = client.get(url).send().await.ok()?.json().await.ok()?;
            v.is_empty().then_some(())
        }
    })
    .await;
    let theirs = poll("Alertmanager's resolved webhook", || {
        let b = sink.bodies("/am");
        async move { b.into_iter().find(|v| v["status"] == "resolved") }
    })
    .await;
    let mine = poll("our resolved webhook", || {
        let n = n.clone();
        let sink = sink.clone();
        async move {
            n.flush_due().await;
            sink.bodies("/ours")
                .into_iter()
                .find(|v| v["status"] == "resolved")
        }
    })
    .await;
    assert_eq!(normalise(mine), normalise(theirs));
}

#[tokio::test]
async fn silence_api_answers_like_alertmanager() {
    let am = Alertmanager::start("route: {receiver: x}\nreceivers: [{name: x}]\n").await;
    let server = {
        let cfg: NotifyConfig =
            serde_yaml::from_str("route: {receiver: x}\nreceivers: [{name: x}]\n").unwrap();
        let n =
            Notifier::new(&cfg, &AlertingConfig::default(), NotifierOptions::default()).unwrap();
        let app = sextant_alerting::notify::api::router(n);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    };
    let client = reqwest::Client::new();
    let now = now_s();
    let body = json!({
        "matchers": [{"name": "alertname", "value": "Down", "isRegex": false, "isEqual": true},
                     {"name": "instance", "value": "db-.*", "isRegex": true}],
        "startsAt": sextant_alerting::notify::rfc3339((now - 5) * 1000),
        "endsAt": sextant_alerting::notify::rfc3339((now + 3600) * 1000),
        "createdBy": "tester",
        "comment": "maintenance window",
    });
    let mut answers = Vec::new();
    for base in [&am.base, &server] {
        let r = client
            .post(format!("{base}/api/v2/silences"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{base}");
        let id = r.json::<Value>().await.unwrap()["silenceID"]
            .as_str()
            .unwrap()
            .to_string();
        let one: Value = client
            .get(format!("{base}/api/v2/silence/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let filtered: Vec<Value> = client
            .get(format!(
                "{base}/api/v2/silences?filter=alertname%3D%22Down%22"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let none: Vec<Value> = client
            .get(format!(
                "{base}/api/v2/silences?filter=alertname%3D%22Up%22"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let del = client
            .delete(format!("{base}/api/v2/silence/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), 200);
        let after: Value = client
            .get(format!("{base}/api/v2/silence/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let missing = client
            .get(format!(
                "{base}/api/v2/silence/00000000-0000-4000-8000-000000000000"
            ))
            .send()
            .await
            .unwrap()
            .status();
        let bad = client
            .post(format!("{base}/api/v2/silences"))
            .json(&json!({"matchers": [], "startsAt": body["startsAt"], "endsAt": body["endsAt"], "createdBy": "x", "comment": "y"}))
            .send()
            .await
            .unwrap()
            .status();
        answers.push((one, filtered.len(), none.len(), after, missing, bad));
    }
    let (am_one, am_f, am_n, am_after, am_missing, am_bad) = &answers[0];
    let (my_one, my_f, my_n, my_after, my_missing, my_bad) = &answers[1];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(my_one), keys(am_one));
    for k in ["status", "comment", "createdBy", "matchers"] {
        assert_eq!(my_one[k], am_one[k], "{k}");
    }
    assert_eq!((my_f, my_n), (am_f, am_n));
    assert_eq!(my_after["status"], am_after["status"]);
    assert_eq!(my_after["status"]["state"], "expired");
    assert_eq!((my_missing, my_bad), (am_missing, am_bad));
}

/// Runs Debian's `amtool` against `base`; returns stdout, panicking with stderr on failure.
async fn amtool(base: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("/usr/bin/amtool");
    cmd.arg(format!("--alertmanager.url={base}")).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run amtool (installed with prometheus-alertmanager)");
    assert!(
        out.status.success(),
        "amtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_drives_alerts_silences_and_status() {
    let cfg: NotifyConfig = serde_yaml::from_str(
        "route: {receiver: hook, group_by: [alertname]}\nreceivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:9/'}]}]\n",
    )
    .unwrap();
    let n = Notifier::new(&cfg, &AlertingConfig::default(), NotifierOptions::default()).unwrap();
    let app = sextant_alerting::notify::api::router(n.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    amtool(
        &base,
        &[
            "alert",
            "add",
            "alertname=AmtoolTest",
            "severity=warning",
            "--annotation=summary=from amtool",
        ],
    )
    .await;
    let listed: Vec<Value> =
        serde_json::from_str(&amtool(&base, &["alert", "query", "-o", "json"]).await).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["labels"]["alertname"], "AmtoolTest");
    assert_eq!(listed[0]["annotations"]["summary"], "from amtool");
    assert_eq!(listed[0]["receivers"], json!([{"name": "hook"}]));

    let id = amtool(
        &base,
        &[
            "silence",
            "add",
            "alertname=AmtoolTest",
            "--comment=quiet",
            "--author=tester",
            "--duration=1h",
        ],
    )
    .await
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "a UUID: {id:?}");
    let silences: Vec<Value> =
        serde_json::from_str(&amtool(&base, &["silence", "query", "-o", "json"]).await).unwrap();
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0]["id"], id.as_str());
    assert_eq!(silences[0]["createdBy"], "tester");
    assert_eq!(silences[0]["status"]["state"], "active");
    let active: Vec<Value> =
        serde_json::from_str(&amtool(&base, &["alert", "query", "-o", "json"]).await).unwrap();
    assert!(
        active.is_empty(),
        "the silenced alert is not listed as active: {active:?}"
    );
    let ours = n.alerts_json(&Default::default());
    assert_eq!(ours[0]["status"]["state"], "suppressed");
    assert_eq!(ours[0]["status"]["silencedBy"], json!([id]));

    amtool(&base, &["silence", "expire", &id]).await;
    let silences: Vec<Value> =
        serde_json::from_str(&amtool(&base, &["silence", "query", "-o", "json"]).await).unwrap();
    assert!(
        silences.is_empty(),
        "expired silences are not listed by default: {silences:?}"
    );
    let expired: Vec<Value> = serde_json::from_str(
        &amtool(&base, &["silence", "query", "--expired", "-o", "json"]).await,
    )
    .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["status"]["state"], "expired");

    let config = amtool(&base, &["config", "show"]).await;
    assert!(config.contains("receiver: hook"), "{config}");
}
