//! Unit tests of group evaluation against an in-memory database.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_query::promql::{Engine, EngineOptions};
use sextant_storage::{is_stale_nan, Db, Labels, Matcher, Sample, SeriesSource};

use super::*;

const MIN: i64 = 60_000;

fn rule(kind: RuleKind, expr: &str) -> RuleDef {
    RuleDef {
        kind,
        expr: expr.to_string(),
        for_: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        line: 0,
    }
}

fn record(name: &str, expr: &str) -> RuleDef {
    rule(RuleKind::Record(name.into()), expr)
}

fn alert(name: &str, expr: &str, for_: Duration) -> RuleDef {
    RuleDef {
        for_,
        ..rule(RuleKind::Alert(name.into()), expr)
    }
}

fn group(rules: Vec<RuleDef>) -> RuleGroup {
    RuleGroup {
        name: "g".into(),
        file: "f.yml".into(),
        interval: Some(Duration::from_secs(60)),
        limit: 0,
        query_offset: None,
        labels: BTreeMap::new(),
        rules,
    }
}

fn put(db: &Db, labels: &[(&str, &str)], t: i64, v: f64) {
    let out = db
        .append(&[(
            Labels::from_pairs(labels.iter().copied()),
            vec![Sample { t, v }],
        )])
        .expect("append");
    assert_eq!(out.appended, 1, "test sample not stored");
}

/// Every stored sample of series named `name`, by label set.
fn stored(db: &Db, name: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    db.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
        .expect("select")
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.iter().map(|x| (x.t, x.v)).collect(),
            )
        })
        .collect()
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

#[test]
fn recording_rules_rename_label_and_chain() {
    let db = Db::in_memory();
    let e = engine();
    put(&db, &[("__name__", "x"), ("job", "a")], 0, 2.0);
    put(&db, &[("__name__", "x"), ("job", "b")], 0, 3.0);
    let mut r1 = record("job:x:double", "x * 2");
    r1.labels.insert("team".into(), "core".into());
    let r2 = record("total", "sum(job:x:double)");
    let mut g = group(vec![r1, r2]);
    g.labels.insert("team".into(), "group-level".into());
    g.labels.insert("env".into(), "prod".into());
    let mut ev = GroupEvaluator::new(g, EvalOptions::default()).expect("group");
    let out = ev.evaluate(&e, &db, MIN);
    assert_eq!(out.failed_rules, 0);
    assert_eq!(out.samples_written, 3);
    assert_eq!(
        stored(&db, "job:x:double"),
        vec![
            (
                r#"job:x:double{env="prod", job="a", team="core"}"#.to_string(),
                vec![(MIN, 4.0)]
            ),
            (
                r#"job:x:double{env="prod", job="b", team="core"}"#.to_string(),
                vec![(MIN, 6.0)]
            ),
        ]
    );
    // The second rule saw the first one's output of the same evaluation.
    assert_eq!(
        stored(&db, "total"),
        vec![(
            r#"total{env="prod", team="group-level"}"#.to_string(),
            vec![(MIN, 10.0)]
        )]
    );
    let states = ev.rule_states();
    assert_eq!(states[0].health, RuleHealth::Ok);
    assert_eq!(states[0].query, "x * 2");
    assert_eq!(states[1].last_evaluation_ms, Some(MIN));
}

#[test]
fn series_that_disappear_get_staleness_markers() {
    let db = Db::in_memory();
    let e = engine();
    put(&db, &[("__name__", "up"), ("job", "a")], 0, 1.0);
    put(&db, &[("__name__", "up"), ("job", "b")], 0, 1.0);
    put(&db, &[("__name__", "up"), ("job", "a")], MIN, 1.0);
    put(&db, &[("__name__", "up"), ("job", "b")], MIN, 0.0);
    let mut ev = GroupEvaluator::new(
        group(vec![record("up:ok", "up == 1")]),
        EvalOptions::default(),
    )
    .expect("group");
    ev.evaluate(&e, &db, 0);
    ev.evaluate(&e, &db, MIN);
    let got = stored(&db, "up:ok");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, vec![(0, 1.0), (MIN, 1.0)]);
    let b = &got[1].1;
    assert_eq!(b.len(), 2, "job b: {b:?}");
    assert_eq!(b[1].0, MIN);
    assert!(
        is_stale_nan(b[1].1),
        "second sample of job b is a staleness marker"
    );
}

#[test]
fn duplicate_output_and_limit_are_errors() {
    let db = Db::in_memory();
    let e = engine();
    put(&db, &[("__name__", "x"), ("job", "a")], 0, 1.0);
    put(&db, &[("__name__", "y"), ("job", "a")], 0, 1.0);
    let mut g = group(vec![
        record("dup", r#"{__name__=~"x|y"}"#),
        record("ok", r#"{__name__=~"x|y"}"#),
    ]);
    g.rules[1].expr = "x".into();
    let mut ev = GroupEvaluator::new(g, EvalOptions::default()).expect("group");
    let out = ev.evaluate(&e, &db, MIN);
    assert_eq!(out.failed_rules, 1);
    let st = ev.rule_states();
    assert_eq!(st[0].health, RuleHealth::Err);
    assert_eq!(
        st[0].last_error.as_deref(),
        Some("vector contains metrics with the same labelset after applying rule labels")
    );
    assert_eq!(st[1].health, RuleHealth::Ok);
    assert!(stored(&db, "dup").is_empty());

    let mut g = group(vec![
        record("two", "x"),
        alert("TwoAlerts", "x", Duration::ZERO),
    ]);
    g.rules[0].labels.insert("n".into(), "v".into());
    g.limit = 1;
    let mut ev = GroupEvaluator::new(g, EvalOptions::default()).expect("group");
    put(&db, &[("__name__", "x"), ("job", "b")], 0, 1.0);
    let out = ev.evaluate(&e, &db, MIN);
    assert_eq!(out.failed_rules, 2);
    let st = ev.rule_states();
    assert!(st[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("exceeded limit of 1 with")));
    assert!(st[1]
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("exceeded limit of 1 with")));
    assert!(ev.active_alerts().is_empty());
    assert!(out.alerts.is_empty());
}

#[test]
fn alert_goes_pending_then_firing_then_resolves() {
    let db = Db::in_memory();
    let e = engine();
    let opts = EvalOptions {
        external_labels: BTreeMap::from([("cluster".into(), "eu".into())]),
        external_url: "http://sx:9090".into(),
        ..EvalOptions::default()
    };
    let mut a = alert("HighErrors", "errors > 5", Duration::from_secs(120));
    a.labels.insert("severity".into(), "page".into());
    a.annotations
        .insert("summary".into(), "{{ $labels.job }} at {{ $value }}".into());
    let mut ev = GroupEvaluator::new(group(vec![a]), opts).expect("group");
    for i in 0..=3 {
        put(
            &db,
            &[("__name__", "errors"), ("job", "api")],
            i * MIN,
            10.0,
        );
    }
    // t=0: pending, not sent.
    let out = ev.evaluate(&e, &db, 0);
    assert!(out.alerts.is_empty());
    let act = ev.active_alerts();
    assert_eq!(act.len(), 1);
    assert_eq!(act[0].state, AlertState::Pending);
    assert_eq!(act[0].annotations["summary"], "api at 10");
    assert_eq!(
        act[0].labels,
        BTreeMap::from([
            ("alertname".to_string(), "HighErrors".to_string()),
            ("job".to_string(), "api".to_string()),
            ("severity".to_string(), "page".to_string()),
        ])
    );
    // t=1m: still pending (1m < 2m).
    assert!(ev.evaluate(&e, &db, MIN).alerts.is_empty());
    assert_eq!(ev.active_alerts()[0].state, AlertState::Pending);
    // t=2m: firing, sent with ends_at = ts + 4 × max(1m resend, 1m interval).
    let out = ev.evaluate(&e, &db, 2 * MIN);
    assert_eq!(out.alerts.len(), 1);
    let sent = &out.alerts[0];
    assert_eq!(sent.starts_at_ms, 2 * MIN);
    assert_eq!(sent.ends_at_ms, 6 * MIN);
    assert_eq!(sent.labels.get("cluster").map(String::as_str), Some("eu"));
    assert_eq!(
        sent.generator_url,
        "http://sx:9090/graph?g0.expr=errors+%3E+5&g0.tab=1"
    );
    assert_eq!(ev.rule_states()[0].state, AlertState::Firing);
    // t=3m: sent 1m ago, resend delay 1m not exceeded (strictly) → not re-sent.
    assert!(ev.evaluate(&e, &db, 3 * MIN).alerts.is_empty());

    // ALERTS: pending at 0 and 1m, firing at 2m and 3m; ALERTS_FOR_STATE = 0 (active at 0s).
    let alerts = stored(&db, "ALERTS");
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[0].0,
        r#"ALERTS{alertname="HighErrors", alertstate="firing", job="api", severity="page"}"#
    );
    assert_eq!(alerts[0].1, vec![(2 * MIN, 1.0), (3 * MIN, 1.0)]);
    assert_eq!(alerts[1].1[..2], [(0, 1.0), (MIN, 1.0)]);
    assert!(
        is_stale_nan(alerts[1].1[2].1),
        "pending series ends when firing"
    );
    let fs = stored(&db, "ALERTS_FOR_STATE");
    assert_eq!(fs.len(), 1);
    assert!(fs[0].1.iter().all(|&(_, v)| v == 0.0));

    // t=10m: no data in lookback (last sample 3m, lookback 5m → gone at 8m+) → resolved.
    let out = ev.evaluate(&e, &db, 10 * MIN);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].ends_at_ms, 10 * MIN);
    assert!(ev.active_alerts().is_empty());
    let firing = &stored(&db, "ALERTS")[0].1;
    assert!(is_stale_nan(firing[firing.len() - 1].1));
    // Resolved alerts are re-sent every resend delay while retained, then dropped after 15m.
    assert!(ev.evaluate(&e, &db, 11 * MIN).alerts.is_empty());
    assert_eq!(ev.evaluate(&e, &db, 12 * MIN).alerts.len(), 1);
    ev.evaluate(&e, &db, 25 * MIN);
    assert_eq!(ev.evaluate(&e, &db, 26 * MIN).alerts.len(), 0);
}

#[test]
fn firing_alert_is_resent_after_resend_delay() {
    let db = Db::in_memory();
    let e = engine();
    let mut ev = GroupEvaluator::new(
        group(vec![alert("Up", "vector(1)", Duration::ZERO)]),
        EvalOptions::default(),
    )
    .expect("group");
    let sent: Vec<usize> = (0..5)
        .map(|i| ev.evaluate(&e, &db, i * 30_000).alerts.len())
        .collect();
    // Sent at 0s (fires at once: for 0), then when more than 60s have passed: 90s.
    assert_eq!(sent, vec![1, 0, 0, 1, 0]);
}

#[test]
fn keep_firing_for_holds_the_alert() {
    let db = Db::in_memory();
    let e = engine();
    let mut a = alert("Flappy", "x > 0", Duration::ZERO);
    a.keep_firing_for = Duration::from_secs(120);
    let mut ev = GroupEvaluator::new(group(vec![a]), EvalOptions::default()).expect("group");
    put(&db, &[("__name__", "x")], 0, 1.0);
    put(&db, &[("__name__", "x")], MIN, 0.0);
    ev.evaluate(&e, &db, 0);
    assert_eq!(ev.active_alerts()[0].state, AlertState::Firing);
    ev.evaluate(&e, &db, MIN);
    let a = &ev.active_alerts()[0];
    assert_eq!(a.state, AlertState::Firing);
    assert_eq!(a.keep_firing_since_ms, Some(MIN));
    ev.evaluate(&e, &db, 2 * MIN);
    assert_eq!(ev.active_alerts().len(), 1, "still within keep_firing_for");
    let out = ev.evaluate(&e, &db, 3 * MIN);
    assert!(
        ev.active_alerts().is_empty(),
        "2m after the condition cleared"
    );
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].ends_at_ms, 3 * MIN);
}

#[test]
fn query_offset_shifts_query_and_output_time() {
    let db = Db::in_memory();
    let e = engine();
    put(&db, &[("__name__", "x")], 0, 1.0);
    put(&db, &[("__name__", "x")], MIN, 2.0);
    let mut g = group(vec![record("x:copy", "x")]);
    g.query_offset = Some(Duration::from_secs(60));
    let mut ev = GroupEvaluator::new(g, EvalOptions::default()).expect("group");
    ev.evaluate(&e, &db, MIN);
    assert_eq!(
        stored(&db, "x:copy"),
        vec![("x:copy".to_string(), vec![(0, 1.0)])]
    );
}

#[test]
fn bad_expression_is_rejected_with_rule_name() {
    let err = GroupEvaluator::new(group(vec![record("r", "sum(")]), EvalOptions::default())
        .err()
        .unwrap_or_default();
    assert!(err.starts_with("group \"g\", rule 1 (\"r\"): "), "{err}");
}

#[test]
fn restore_keeps_firing_and_pending_progress() {
    let db = Db::in_memory();
    let e = engine();
    let for_ = Duration::from_secs(30 * 60);
    let rules = || {
        group(vec![
            alert("Firing", "x > 0", for_),
            alert("Pending", "y > 0", for_),
        ])
    };
    // Before the restart: Firing became active at 0 and fired at 30m; Pending became active at
    // 20m. Both wrote ALERTS_FOR_STATE until 40m.
    let mut before = GroupEvaluator::new(rules(), EvalOptions::default()).expect("group");
    for i in 0..=60 {
        put(&db, &[("__name__", "x")], i * MIN, 1.0);
        if i >= 20 {
            put(&db, &[("__name__", "y")], i * MIN, 1.0);
        }
    }
    for i in 0..=40 {
        before.evaluate(&e, &db, i * MIN);
    }
    assert_eq!(before.active_alerts()[0].state, AlertState::Firing);
    drop(before);
    // Down from 40m to 50m. After the restart two evaluations run before restoring.
    let mut after = GroupEvaluator::new(rules(), EvalOptions::default()).expect("group");
    after.require_restore();
    after.evaluate(&e, &db, 50 * MIN);
    after.evaluate(&e, &db, 51 * MIN);
    assert!(
        stored(&db, "ALERTS_FOR_STATE")
            .iter()
            .all(|(_, s)| s.last().is_some_and(|l| l.0 <= 40 * MIN)),
        "nothing written before restore"
    );
    after.restore_for_state(
        &db,
        51 * MIN,
        Duration::from_secs(3600),
        Duration::from_secs(600),
    );
    let act = after.active_alerts();
    let firing = act.iter().find(|a| a.labels["alertname"] == "Firing");
    let pending = act.iter().find(|a| a.labels["alertname"] == "Pending");
    assert_eq!(firing.map(|a| a.active_at_ms), Some(0));
    // Pending had 20m of 30m (down at 40m); shifted by the 11m outage: active at 31m.
    assert_eq!(pending.map(|a| a.active_at_ms), Some(31 * MIN));
    let out = after.evaluate(&e, &db, 52 * MIN);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].labels["alertname"], "Firing");
    let st = after.active_alerts();
    assert_eq!(st[1].state, AlertState::Pending);
    // 31m + 30m: fires at 61m, not at 50m + 30m.
    after.evaluate(&e, &db, 60 * MIN);
    assert_eq!(after.active_alerts()[1].state, AlertState::Pending);
}

#[test]
fn restore_gives_grace_period_to_nearly_done_alerts() {
    let db = Db::in_memory();
    let e = engine();
    let for_ = Duration::from_secs(15 * 60);
    let mut before = GroupEvaluator::new(
        group(vec![alert("A", "vector(1)", for_)]),
        EvalOptions::default(),
    )
    .expect("group");
    for i in 0..=12 {
        before.evaluate(&e, &db, i * MIN);
    }
    let mut after = GroupEvaluator::new(
        group(vec![alert("A", "vector(1)", for_)]),
        EvalOptions::default(),
    )
    .expect("group");
    after.require_restore();
    after.evaluate(&e, &db, 14 * MIN);
    after.restore_for_state(
        &db,
        14 * MIN,
        Duration::from_secs(3600),
        Duration::from_secs(600),
    );
    // 3m were left (< 10m grace): active_at = now + grace − for = 14m + 10m − 15m = 9m.
    assert_eq!(after.active_alerts()[0].active_at_ms, 9 * MIN);
}

#[test]
fn reload_keeps_state_of_unchanged_rules_and_stales_removed_ones() {
    let db = Db::in_memory();
    let e = engine();
    let mut ev = GroupEvaluator::new(
        group(vec![
            alert("Keep", "vector(1)", Duration::from_secs(120)),
            record("gone", "vector(2)"),
        ]),
        EvalOptions::default(),
    )
    .expect("group");
    ev.evaluate(&e, &db, 0);
    ev.evaluate(&e, &db, MIN);
    let mut new = GroupEvaluator::new(
        group(vec![alert("Keep", "vector(1)", Duration::from_secs(120))]),
        EvalOptions::default(),
    )
    .expect("group");
    new.copy_state_from(ev);
    assert_eq!(new.active_alerts()[0].active_at_ms, 0);
    let out = new.evaluate(&e, &db, 2 * MIN);
    assert_eq!(
        out.alerts.len(),
        1,
        "fires 2m after the original active time"
    );
    let gone = stored(&db, "gone");
    let last = gone[0].1.last().copied().unwrap_or((0, 0.0));
    assert_eq!(last.0, 2 * MIN);
    assert!(is_stale_nan(last.1));
}
