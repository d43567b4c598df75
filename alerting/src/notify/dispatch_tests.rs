//! Dispatcher behaviour with a manual clock: grouping and timers, dedup, resolves, restarts,
//! silences, inhibition and time intervals. Deliveries are simulated with
//! `plan` + `complete` (no HTTP).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::{AlertingConfig, NotifyConfig};
use super::dispatch::{AlertFilter, Notifier, NotifierOptions, Planned};
use super::silence::{ApiMatcher, PostableSilence};
use super::{rfc3339, ManualClock};
use crate::Alert;

const T0: i64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z, a Wednesday
const S: i64 = 1000;
const M: i64 = 60 * S;

const CONFIG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: [team="db"]
      receiver: dba
      group_by: [alertname, database]
      continue: true
    - matchers: [team="db"]
      receiver: quiet
      group_by: ['...']
    - matchers: [team="ops"]
      receiver: default
      mute_time_intervals: [lunch]
receivers:
  - name: default
    webhook_configs: [{url: 'http://127.0.0.1:9/default'}]
  - name: dba
    webhook_configs: [{url: 'http://127.0.0.1:9/dba'}]
  - name: quiet
    webhook_configs: [{url: 'http://127.0.0.1:9/quiet', send_resolved: false}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
time_intervals:
  - name: lunch
    time_intervals: [{times: [{start_time: '12:00', end_time: '13:00'}]}]
"#;

fn notifier(clock: &Arc<ManualClock>, dir: Option<&std::path::Path>) -> Arc<Notifier> {
    let cfg: NotifyConfig = serde_yaml::from_str(CONFIG).unwrap();
    Notifier::new(
        &cfg,
        &AlertingConfig::default(),
        NotifierOptions {
            data_dir: dir.map(|d| d.to_path_buf()),
            clock: clock.clone(),
            ..NotifierOptions::default()
        },
    )
    .unwrap()
}

fn alert(pairs: &[(&str, &str)], starts: i64, ends: i64) -> Alert {
    Alert {
        labels: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: BTreeMap::new(),
        starts_at_ms: starts,
        ends_at_ms: ends,
        generator_url: String::new(),
    }
}

/// Flushes what is due, pretending every delivery succeeded; returns what was sent.
fn run(n: &Notifier) -> Vec<Planned> {
    let mut sent = Vec::new();
    for flush in n.plan() {
        let ok = vec![true; flush.notifications.len()];
        n.complete(&flush, &ok);
        sent.extend(
            flush
                .notifications
                .into_iter()
                .filter(|p| !p.data.alerts.is_empty()),
        );
    }
    sent
}

fn names(sent: &[Planned]) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<_> = sent
        .iter()
        .map(|p| {
            (
                p.data.receiver.clone(),
                p.data.status().to_string(),
                p.data
                    .alerts
                    .iter()
                    .map(|a| a.labels.get("instance").cloned().unwrap_or_default())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn group_wait_then_group_interval_then_repeat() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 4 * M,
    )]);
    clock.set(T0 + 29 * S);
    assert!(run(&n).is_empty(), "nothing before group_wait");
    clock.set(T0 + 30 * S);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [("default".into(), "firing".into(), vec!["1".into()])]
    );
    assert_eq!(sent[0].data.reason, "first notification");
    assert_eq!(sent[0].data.group_key, r#"{}:{alertname="A"}"#);

    // A second alert of the group waits for group_interval after the first flush.
    clock.set(T0 + 40 * S);
    n.receive(vec![
        alert(
            &[("alertname", "A"), ("instance", "1")],
            T0,
            T0 + 4 * M + 40 * S,
        ),
        alert(
            &[("alertname", "A"), ("instance", "2")],
            T0 + 40 * S,
            T0 + 5 * M,
        ),
    ]);
    clock.set(T0 + 5 * M + 29 * S);
    assert!(run(&n).is_empty());
    clock.set(T0 + 5 * M + 30 * S);
    n.receive(vec![
        alert(&[("alertname", "A"), ("instance", "1")], T0, T0 + 10 * M),
        alert(
            &[("alertname", "A"), ("instance", "2")],
            T0 + 40 * S,
            T0 + 10 * M,
        ),
    ]);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [(
            "default".into(),
            "firing".into(),
            vec!["1".into(), "2".into()]
        )]
    );
    assert_eq!(sent[0].data.reason, "new alerts added");

    // Unchanged: nothing at the next intervals, until repeat_interval (4h) has passed.
    let mut t = T0 + 5 * M + 30 * S;
    let mut repeats = Vec::new();
    while t < T0 + 5 * M + 30 * S + 4 * 60 * M + 10 * M {
        t += 5 * M;
        clock.set(t);
        n.receive(vec![
            alert(&[("alertname", "A"), ("instance", "1")], T0, t + 4 * M),
            alert(
                &[("alertname", "A"), ("instance", "2")],
                T0 + 40 * S,
                t + 4 * M,
            ),
        ]);
        if !run(&n).is_empty() {
            repeats.push(t);
        }
    }
    assert_eq!(repeats, vec![T0 + 5 * M + 30 * S + 4 * 60 * M]);
}

#[test]
fn resolve_is_notified_and_group_goes_away() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 4 * M,
    )]);
    clock.set(T0 + 30 * S);
    assert_eq!(run(&n).len(), 1);
    clock.set(T0 + 2 * M);
    // Resolved: ends_at is the resolve time.
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 2 * M,
    )]);
    clock.set(T0 + 5 * M + 30 * S);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [("default".into(), "resolved".into(), vec!["1".into()])]
    );
    assert_eq!(sent[0].data.reason, "all alerts resolved");
    assert_eq!(sent[0].data.alerts[0].ends_at_ms, T0 + 2 * M);
    assert_eq!(n.next_flush_ms(), None, "the emptied group is dropped");
    // The store keeps the re-sent start time: the first start wins.
    assert!(
        n.alerts_json(&AlertFilter::default()).is_empty(),
        "resolved alerts are not listed"
    );
}

#[test]
fn a_firing_alert_that_times_out_resolves() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 4 * M,
    )]);
    clock.set(T0 + 30 * S);
    run(&n);
    // Never re-sent: ends_at (T0+4m) passes, so the next flush resolves it.
    clock.set(T0 + 5 * M + 30 * S);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [("default".into(), "resolved".into(), vec!["1".into()])]
    );
}

#[test]
fn old_alert_in_new_group_flushes_at_once_and_starts_are_kept() {
    let clock = Arc::new(ManualClock::new(T0 + 10 * M));
    let n = notifier(&clock, None);
    n.receive(vec![alert(&[("alertname", "B")], T0, T0 + 14 * M)]);
    let sent = run(&n);
    assert_eq!(sent.len(), 1, "started long before group_wait: no waiting");
    clock.set(T0 + 11 * M);
    n.receive(vec![alert(&[("alertname", "B")], T0 + 11 * M, T0 + 15 * M)]);
    let listed = n.alerts_json(&AlertFilter::default());
    assert_eq!(
        listed[0]["startsAt"],
        rfc3339(T0),
        "a re-sent alert keeps its first start"
    );
    assert_eq!(listed[0]["endsAt"], rfc3339(T0 + 15 * M));
}

#[test]
fn continue_routes_and_send_resolved_false() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    let db = [
        ("alertname", "Disk"),
        ("team", "db"),
        ("database", "orders"),
        ("instance", "d1"),
    ];
    n.receive(vec![alert(&db, T0, T0 + 4 * M)]);
    clock.set(T0 + 30 * S);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [
            ("dba".into(), "firing".into(), vec!["d1".into()]),
            ("quiet".into(), "firing".into(), vec!["d1".into()])
        ]
    );
    let dba = sent.iter().find(|p| p.data.receiver == "dba").unwrap();
    assert_eq!(
        dba.data.group_key,
        r#"{}/{team="db"}:{alertname="Disk", database="orders"}"#
    );
    clock.set(T0 + M);
    n.receive(vec![alert(&db, T0, T0 + M)]);
    clock.set(T0 + 5 * M + 30 * S);
    // `quiet` has send_resolved: false: only dba hears of the resolve.
    assert_eq!(
        names(&run(&n)),
        [("dba".into(), "resolved".into(), vec!["d1".into()])]
    );
    clock.set(T0 + 10 * M + 30 * S);
    assert!(run(&n).is_empty());
}

#[test]
fn restart_neither_resends_nor_loses_a_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    {
        let n = notifier(&clock, Some(dir.path()));
        n.receive(vec![
            alert(&[("alertname", "A"), ("instance", "1")], T0, T0 + 4 * M),
            alert(&[("alertname", "C"), ("instance", "9")], T0, T0 + 4 * M),
        ]);
        clock.set(T0 + 30 * S);
        assert_eq!(run(&n).len(), 2);
        n.persist_alerts();
    }
    // Restart: A is re-sent as still firing; C is never sent again (it resolved while down).
    clock.set(T0 + 2 * M);
    let n = notifier(&clock, Some(dir.path()));
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 6 * M,
    )]);
    assert!(run(&n).is_empty(), "no re-send after a restart");
    clock.set(T0 + 7 * M);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 11 * M,
    )]);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [("default".into(), "resolved".into(), vec!["9".into()])]
    );
    assert_eq!(sent[0].data.group_key, r#"{}:{alertname="C"}"#);
}

fn silence(n: &Notifier, alertname: &str, until: i64) -> String {
    n.silences()
        .upsert(
            PostableSilence {
                id: None,
                matchers: vec![ApiMatcher {
                    name: "alertname".into(),
                    value: alertname.into(),
                    is_regex: false,
                    is_equal: true,
                }],
                starts_at: rfc3339(n.now_ms()),
                ends_at: rfc3339(until),
                created_by: "test".into(),
                comment: "quiet please".into(),
            },
            n.now_ms(),
        )
        .unwrap()
}

#[test]
fn silences_mute_but_owed_resolves_are_sent() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 60 * M,
    )]);
    clock.set(T0 + 30 * S);
    assert_eq!(run(&n).len(), 1);
    let id = silence(&n, "A", T0 + 24 * 60 * M);
    // New alert in the silenced group: not notified.
    clock.set(T0 + M);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "2")],
        T0 + M,
        T0 + 60 * M,
    )]);
    clock.set(T0 + 5 * M + 30 * S);
    assert!(run(&n).is_empty());
    let listed = n.alerts_json(&AlertFilter::default());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["status"]["state"], "suppressed");
    assert_eq!(listed[0]["status"]["silencedBy"][0], id.as_str());
    // Both resolve under the silence: only the one notified before is resolved to receivers.
    clock.set(T0 + 6 * M);
    n.receive(vec![
        alert(&[("alertname", "A"), ("instance", "1")], T0, T0 + 6 * M),
        alert(&[("alertname", "A"), ("instance", "2")], T0 + M, T0 + 6 * M),
    ]);
    clock.set(T0 + 10 * M + 30 * S);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [("default".into(), "resolved".into(), vec!["1".into()])]
    );
}

#[test]
fn inhibition_mutes_warnings_while_critical_fires() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    n.receive(vec![
        alert(
            &[
                ("alertname", "Lat"),
                ("severity", "critical"),
                ("instance", "c"),
            ],
            T0,
            T0 + 60 * M,
        ),
        alert(
            &[
                ("alertname", "Lat"),
                ("severity", "warning"),
                ("instance", "w"),
            ],
            T0,
            T0 + 60 * M,
        ),
        alert(
            &[
                ("alertname", "Other"),
                ("severity", "warning"),
                ("instance", "o"),
            ],
            T0,
            T0 + 60 * M,
        ),
    ]);
    clock.set(T0 + 30 * S);
    assert_eq!(
        names(&run(&n)),
        [
            ("default".into(), "firing".into(), vec!["c".into()]),
            ("default".into(), "firing".into(), vec!["o".into()])
        ]
    );
    let f = AlertFilter {
        inhibited: false,
        ..AlertFilter::default()
    };
    assert_eq!(
        n.alerts_json(&f).len(),
        2,
        "the inhibited warning is filtered out"
    );
    // The critical one resolves: the warning is notified at the next interval.
    clock.set(T0 + M);
    n.receive(vec![alert(
        &[
            ("alertname", "Lat"),
            ("severity", "critical"),
            ("instance", "c"),
        ],
        T0,
        T0 + M,
    )]);
    clock.set(T0 + 5 * M + 30 * S);
    let sent = run(&n);
    assert_eq!(sent.len(), 1);
    let instances: Vec<_> = sent[0]
        .data
        .alerts
        .iter()
        .map(|a| (a.labels["instance"].clone(), a.resolved))
        .collect();
    assert_eq!(
        instances,
        [("c".to_string(), true), ("w".to_string(), false)]
    );
}

#[test]
fn mute_time_intervals_hold_notifications() {
    // 12:10 UTC: inside `lunch`.
    let lunch = T0 + 2 * 60 * M + 10 * M;
    let clock = Arc::new(ManualClock::new(lunch));
    let n = notifier(&clock, None);
    n.receive(vec![alert(
        &[("alertname", "Ops"), ("team", "ops"), ("instance", "x")],
        lunch,
        lunch + 120 * M,
    )]);
    clock.set(lunch + 30 * S);
    assert!(run(&n).is_empty());
    assert_eq!(
        n.alerts_json(&AlertFilter::default())[0]["status"]["mutedBy"][0],
        "lunch"
    );
    let mut t = lunch + 30 * S;
    let mut first = None;
    while first.is_none() && t < lunch + 90 * M {
        t += 5 * M;
        clock.set(t);
        if !run(&n).is_empty() {
            first = Some(t);
        }
    }
    let first = first.unwrap();
    assert!(
        (T0 + 3 * 60 * M..T0 + 3 * 60 * M + 5 * M).contains(&first),
        "sent at the first flush after 13:00"
    );
}

#[test]
fn reload_regroups_without_renotifying() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    n.receive(vec![
        alert(&[("alertname", "A"), ("instance", "1")], T0, T0 + 60 * M),
        alert(
            &[("alertname", "Moved"), ("instance", "2")],
            T0,
            T0 + 60 * M,
        ),
    ]);
    clock.set(T0 + 30 * S);
    assert_eq!(run(&n).len(), 2);

    let bad: NotifyConfig = serde_yaml::from_str("route: {receiver: nobody}\n").unwrap();
    assert!(n.reload(&bad, &AlertingConfig::default()).is_err());

    // Same tree plus a route sending `Moved` to `dba`.
    let text = CONFIG.replace(
        "  routes:\n",
        "  routes:\n    - matchers: [alertname=\"Moved\"]\n      receiver: dba\n",
    );
    let cfg: NotifyConfig = serde_yaml::from_str(&text).unwrap();
    n.reload(&cfg, &AlertingConfig::default()).unwrap();
    clock.set(T0 + M);
    // Regrouped alerts started long ago: flushed at once; only the moved one is news.
    assert_eq!(
        names(&run(&n)),
        [("dba".into(), "firing".into(), vec!["2".into()])]
    );
    clock.set(T0 + 6 * M);
    assert!(run(&n).is_empty());
}

#[test]
fn a_group_flushes_one_at_a_time() {
    let clock = Arc::new(ManualClock::new(T0));
    let n = notifier(&clock, None);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "1")],
        T0,
        T0 + 60 * M,
    )]);
    clock.set(T0 + 30 * S);
    let slow = n.plan();
    assert_eq!(slow.len(), 1);
    // Still being delivered (retrying) when the next interval comes: no second flush.
    clock.set(T0 + 10 * M);
    n.receive(vec![alert(
        &[("alertname", "A"), ("instance", "2")],
        T0 + 10 * M,
        T0 + 60 * M,
    )]);
    assert!(n.plan().is_empty());
    n.complete(&slow[0], &[true]);
    let sent = run(&n);
    assert_eq!(
        names(&sent),
        [(
            "default".into(),
            "firing".into(),
            vec!["1".into(), "2".into()]
        )]
    );
    assert_eq!(sent[0].data.reason, "new alerts added");
}
