//! The burn scenarios of the SLO issue, driven through the real ingest path (remote write into
//! the ingest router) with controlled timestamps, and evaluated by the rule evaluator on the
//! rule groups generated from a Sloth spec, one evaluation per simulated minute.
//!
//! The test computes what each alert must do from the counters it wrote: the error ratio over a
//! window `(t - w, t]` is the increase of the error counter over the increase of all requests
//! between the first and last samples in the window (both series are sampled together, so
//! `rate`'s extrapolation cancels out of the ratio). An alert must fire at exactly the
//! evaluations where the multi-window condition holds, and never elsewhere.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prost::Message;
use sextant_alerting::rules::eval::{AlertState, EvalOptions, GroupEvaluator};
use sextant_alerting::slo;
use sextant_ingest::remote_write::WriteRequest;
use sextant_ingest::{RemoteWriteLimits, RemoteWriteState};
use sextant_query::promql::{Engine, EngineOptions};
use sextant_storage::Db;
use support::series;
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Requests per second of the service, all phases.
const RPS: f64 = 100.0;
/// Scrape interval while rules are evaluated; evaluations run every minute.
const SCRAPE: i64 = 30_000;

const SPEC: &str = r#"
version: "prometheus/v1"
service: "checkout"
slos:
  - name: "requests-availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
    alerting:
      name: CheckoutErrorBudgetBurn
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
"#;

/// The error budget as Sloth computes it from a 99.9 objective (so thresholds compare equal).
fn budget() -> f64 {
    (100.0 - 99.9) / 100.0
}

/// Counter samples written so far: `(t, errors, successes)`.
#[derive(Default)]
struct Counters {
    samples: Vec<(i64, f64, f64)>,
}

impl Counters {
    /// Advances both counters to `t` with `fraction` of the requests since the last sample
    /// failing, and returns the new sample.
    fn step(&mut self, t: i64, fraction: f64) -> (i64, f64, f64) {
        let (last_t, e, ok) = self.samples.last().copied().unwrap_or((t, 0.0, 0.0));
        let requests = RPS * (t - last_t) as f64 / 1000.0;
        let s = (t, e + requests * fraction, ok + requests * (1.0 - fraction));
        self.samples.push(s);
        s
    }

    /// The error ratio over `(t - w, t]`, `None` with fewer than two samples in it.
    fn ratio(&self, t: i64, w: i64) -> Option<f64> {
        let first = self.samples.partition_point(|s| s.0 <= t - w);
        let end = self.samples.partition_point(|s| s.0 <= t);
        if end < first + 2 {
            return None;
        }
        let (a, b) = (self.samples[first], self.samples[end - 1]);
        let errors = b.1 - a.1;
        let all = errors + (b.2 - a.2);
        Some(errors / all)
    }

    /// Whether `ratio(t, long) > f·budget` and `ratio(t, short) > f·budget`.
    fn burning(&self, t: i64, factor: f64, long: i64, short: i64) -> bool {
        let th = factor * budget();
        let over = |w| self.ratio(t, w).is_some_and(|r| r > th);
        over(long) && over(short)
    }

    /// The page condition of the SRE workbook (Sloth's defaults for a 30d period).
    fn page(&self, t: i64) -> bool {
        self.burning(t, 14.4, HOUR, 5 * MIN) || self.burning(t, 6.0, 6 * HOUR, 30 * MIN)
    }

    /// The ticket condition.
    fn ticket(&self, t: i64) -> bool {
        self.burning(t, 3.0, DAY, 2 * HOUR) || self.burning(t, 1.0, 3 * DAY, 6 * HOUR)
    }
}

/// One service behind the real remote-write handler, with its SLO's generated rule groups.
struct Scenario {
    db: Arc<Db>,
    ingest: axum::Router,
    engine: Engine,
    groups: Vec<GroupEvaluator>,
    spec: slo::spec::SloSpec,
    counters: Counters,
    /// `(t, page firing, ticket firing)` at every evaluation.
    evaluations: Vec<(i64, bool, bool)>,
    _dir: tempfile::TempDir,
}

impl Scenario {
    fn new() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("checkout.yml");
        std::fs::write(&path, SPEC).unwrap();
        let specs = slo::load_slo_files(&[path]).unwrap();
        assert_eq!(specs.len(), 1);
        let groups = slo::rule_groups(&specs)
            .into_iter()
            .map(|g| GroupEvaluator::new(g, EvalOptions::default()).unwrap())
            .collect();
        let db = Arc::new(Db::in_memory());
        let ingest = sextant_ingest::router(Arc::new(RemoteWriteState {
            db: db.clone(),
            limits: RemoteWriteLimits::default(),
        }));
        Scenario {
            db,
            ingest,
            engine: Engine::new(EngineOptions::default()),
            groups,
            spec: specs.into_iter().next().unwrap(),
            counters: Counters::default(),
            evaluations: Vec::new(),
            _dir: dir,
        }
    }

    /// Writes counter samples at `times` (each interval with `fraction` errors) in one request.
    async fn write(&mut self, times: impl Iterator<Item = i64>, fraction: f64) {
        let (mut errors, mut ok) = (Vec::new(), Vec::new());
        for t in times {
            let (t, e, o) = self.counters.step(t, fraction);
            errors.push((t, e));
            ok.push((t, o));
        }
        let body = WriteRequest {
            timeseries: vec![
                series(
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", "200"),
                        ("job", "checkout"),
                    ],
                    &ok,
                ),
                series(
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", "500"),
                        ("job", "checkout"),
                    ],
                    &errors,
                ),
            ],
            metadata: vec![],
        }
        .encode_to_vec();
        let req = Request::post("/api/v1/write")
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(Body::from(
                snap::raw::Encoder::new().compress_vec(&body).unwrap(),
            ))
            .unwrap();
        let resp = self.ingest.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }

    /// Scrapes every 30s and evaluates every minute from `from` (exclusive) to `to`
    /// (inclusive), with `fraction` of the requests failing.
    async fn run(&mut self, from: i64, to: i64, fraction: f64) {
        let mut t = from + SCRAPE;
        while t <= to {
            self.write(std::iter::once(t), fraction).await;
            if (t - T0) % MIN == 0 {
                self.evaluate(t);
            }
            t += SCRAPE;
        }
    }

    fn evaluate(&mut self, t: i64) {
        let (mut page, mut ticket) = (false, false);
        for g in &mut self.groups {
            let out = g.evaluate(&self.engine, &self.db, t);
            assert_eq!(out.failed_rules, 0, "group {} at {t}", g.group().name);
            for a in g.active_alerts() {
                assert_eq!(a.labels["alertname"], "CheckoutErrorBudgetBurn");
                let firing = a.state == AlertState::Firing;
                match a.labels.get("sloth_severity").map(String::as_str) {
                    Some("page") => page |= firing,
                    Some("ticket") => ticket |= firing,
                    other => panic!("unexpected alert severity {other:?}"),
                }
            }
        }
        self.evaluations.push((t, page, ticket));
    }

    /// Every evaluation since `from` fired exactly when the arithmetic says it must.
    fn check_against_arithmetic(&self, from: i64) {
        for &(t, page, ticket) in self.evaluations.iter().filter(|e| e.0 > from) {
            let at = (t - T0) as f64 / HOUR as f64;
            assert_eq!(page, self.counters.page(t), "page at {at:.3}h");
            assert_eq!(ticket, self.counters.ticket(t), "ticket at {at:.3}h");
        }
    }

    fn first_firing(&self, from: i64, page: bool) -> Option<i64> {
        self.evaluations
            .iter()
            .find(|e| e.0 > from && if page { e.1 } else { e.2 })
            .map(|e| e.0)
    }

    fn last_firing(&self, page: bool) -> Option<i64> {
        self.evaluations
            .iter()
            .rev()
            .find(|e| if page { e.1 } else { e.2 })
            .map(|e| e.0)
    }
}

/// 29 days of quiet history at 0.05% errors (5-minute resolution), then six hours of the same
/// at 30s scrapes: nothing may fire. Then 2% errors (a 20× burn) for one hour: the page must
/// fire at the evaluation where the 1h/5m condition first holds, which the SRE workbook puts at
/// 14.4/20 of the hour after the jump; it must resolve within minutes of recovery. At the end
/// the remaining budget must equal 1 − (errors / requests over the period) / (1 − objective).
#[tokio::test(flavor = "current_thread")]
async fn a_fast_burn_pages_in_the_detection_time_and_resolves_after_recovery() {
    let mut s = Scenario::new();
    let history_end = T0 + 29 * DAY;
    let mut t = T0;
    while t < history_end {
        let until = (t + 12 * HOUR).min(history_end);
        s.write((t..until).step_by(5 * MIN as usize), 0.0005).await;
        t = until;
    }
    let quiet_end = history_end + 6 * HOUR;
    s.run(history_end - 5 * MIN, quiet_end, 0.0005).await;
    assert!(s.evaluations.len() >= 6 * 60);
    assert!(
        s.evaluations.iter().all(|&(_, p, t)| !p && !t),
        "a 0.5× burn raised an alert"
    );

    let burn_end = quiet_end + HOUR;
    s.run(quiet_end, burn_end, 0.02).await;
    let recovered_end = burn_end + 2 * HOUR;
    s.run(burn_end, recovered_end, 0.0005).await;
    s.check_against_arithmetic(T0);

    let paged = s.first_firing(quiet_end, true).expect("the 20× burn paged");
    let detection = (paged - quiet_end) as f64 / MIN as f64;
    // The workbook's detection time for a 20× burn against the 14.4× / 1h condition, less what
    // the 0.05% baseline already contributes, plus at most one evaluation interval.
    let workbook = 60.0 * 14.4 / 20.0;
    let exact = 60.0 * (14.4 * budget() - 0.0005) / (0.02 - 0.0005);
    assert!(
        detection >= exact && detection <= exact + 1.5 && detection <= workbook + 1.0,
        "paged {detection} min after the jump; the 1h/5m windows imply {exact:.2} (workbook {workbook})"
    );
    eprintln!("paged {detection} min after the jump (1h/5m windows imply {exact:.2}, workbook {workbook})");
    let resolved = s.last_firing(true).expect("paged") + MIN;
    assert!(
        resolved > burn_end && resolved <= burn_end + 6 * MIN,
        "the page resolved {} min after recovery",
        (resolved - burn_end) / MIN
    );
    assert!(
        s.evaluations
            .iter()
            .any(|e| e.0 > resolved && !e.1 && e.0 == recovered_end),
        "the page stayed resolved"
    );

    // The budget over the 30-day period, from the SLI's own events.
    let state = slo::budget::slo_state(&s.engine, s.db.as_ref(), &s.spec, recovered_end).unwrap();
    let ratio = s.counters.ratio(recovered_end, 30 * DAY).unwrap();
    let expected_remaining = 1.0 - ratio / budget();
    let remaining = state.budget.remaining.expect("budget remaining");
    assert!(
        (remaining - expected_remaining).abs() < 1e-9,
        "remaining budget {remaining}, arithmetic {expected_remaining}"
    );
    eprintln!(
        "page resolved {} min after recovery; budget remaining {remaining:.6} (arithmetic {expected_remaining:.6})",
        (resolved - burn_end) / MIN
    );
    // 29.4 days at 0.05% and one hour at 2% of the same traffic: about 46% of the budget left.
    assert!((0.40..0.50).contains(&remaining), "{remaining}");
}

/// Six quiet hours, then a 4× burn (0.4% errors) for three hours: only the ticket alert fires,
/// first when the 1×/3d-and-6h condition holds; the page never does.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_burn_raises_only_the_ticket() {
    let mut s = Scenario::new();
    let quiet_end = T0 + 6 * HOUR;
    s.run(T0 - SCRAPE, quiet_end, 0.0005).await;
    let burn_end = quiet_end + 3 * HOUR;
    s.run(quiet_end, burn_end, 0.004).await;
    s.check_against_arithmetic(T0);
    assert!(s.evaluations.iter().all(|e| !e.1), "a 4× burn paged");
    let ticket = s
        .first_firing(quiet_end, false)
        .expect("the 4× burn raised a ticket");
    let after = (ticket - quiet_end) / MIN;
    eprintln!("ticket {after} min into the 4x burn; no page");
    assert!(
        (50..=75).contains(&after),
        "ticket {after} min into the burn"
    );
    assert!(s.evaluations.last().is_some_and(|e| e.2));
}

#[test]
fn the_expected_alert_labels_are_generated() {
    let s = Scenario::new();
    let alerts: BTreeMap<String, BTreeMap<String, String>> = s
        .groups
        .iter()
        .flat_map(|g| g.group().rules.iter())
        .filter_map(|r| match &r.kind {
            sextant_alerting::rules::RuleKind::Alert(name) => {
                Some((r.labels["sloth_severity"].clone(), {
                    let mut l = r.labels.clone();
                    l.insert("alertname".into(), name.clone());
                    l
                }))
            }
            _ => None,
        })
        .collect();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts["page"]["severity"], "page");
    assert_eq!(alerts["ticket"]["severity"], "ticket");
    assert_eq!(alerts["page"]["alertname"], "CheckoutErrorBudgetBurn");
}
