//! The rule manager: one tokio task per group evaluating it at aligned times, alerts handed to
//! an [`AlertSink`], `for` state restored after a start, reloads that keep the state of
//! unchanged rules, and the rule self-metrics.
//!
//! Scheduling follows Prometheus' `rules/group.go`: a group's evaluations happen at
//! `offset + k × interval`, where the offset within the interval comes from a hash of its file
//! and name (so groups spread out but keep their phase across restarts); when the task falls
//! behind, the skipped ticks are counted as missed iterations and evaluation resumes at the
//! latest due time.

pub mod load;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sextant_query::promql::Engine;
use sextant_storage::Db;
use tokio::sync::watch;

use super::eval::{duration_ms, EvalOptions, GroupEvaluator, GroupStatus, RuleStatus};
use super::model::RuleGroup;
use crate::AlertSink;

/// Produces the current rule groups (reads and validates the rule files); called at start and
/// on every reload.
pub type RuleLoader = Arc<dyn Fn() -> Result<Vec<RuleGroup>, String> + Send + Sync>;

/// Manager settings.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    pub eval: EvalOptions,
    /// `ALERTS_FOR_STATE` older than this is not restored (Prometheus'
    /// `--rules.alert.for-outage-tolerance`, default 1h).
    pub outage_tolerance: Duration,
    /// Least time a restored pending alert waits before firing; rules with a shorter `for`
    /// are not restored (`--rules.alert.for-grace-period`, default 10m).
    pub for_grace_period: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            eval: EvalOptions::default(),
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
        }
    }
}

/// Rule self-metrics, labelled by `rule_group` = `<file>;<group name>` as Prometheus does.
#[derive(Clone, Debug, Default)]
pub struct RuleMetrics {
    pub evaluations: Family<Vec<(String, String)>, Counter>,
    pub evaluation_failures: Family<Vec<(String, String)>, Counter>,
    pub iterations: Family<Vec<(String, String)>, Counter>,
    pub iterations_missed: Family<Vec<(String, String)>, Counter>,
    pub last_duration_seconds:
        Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub last_evaluation_timestamp_seconds:
        Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub interval_seconds: Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub rules: Family<Vec<(String, String)>, Gauge>,
    pub notifications_sent: Counter,
    pub reloads: Counter,
    pub reload_failures: Counter,
}

impl RuleMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sextant_rule_evaluations",
            "Rule evaluations, by group",
            self.evaluations.clone(),
        );
        registry.register(
            "sextant_rule_evaluation_failures",
            "Rule evaluations that failed, by group",
            self.evaluation_failures.clone(),
        );
        registry.register(
            "sextant_rule_group_iterations",
            "Scheduled evaluations of a group (evaluated or missed)",
            self.iterations.clone(),
        );
        registry.register(
            "sextant_rule_group_iterations_missed",
            "Group evaluations skipped because the previous one was too slow",
            self.iterations_missed.clone(),
        );
        registry.register(
            "sextant_rule_group_last_duration_seconds",
            "Duration of the group's last evaluation",
            self.last_duration_seconds.clone(),
        );
        registry.register(
            "sextant_rule_group_last_evaluation_timestamp_seconds",
            "Time of the group's last evaluation",
            self.last_evaluation_timestamp_seconds.clone(),
        );
        registry.register(
            "sextant_rule_group_interval_seconds",
            "The group's evaluation interval",
            self.interval_seconds.clone(),
        );
        registry.register(
            "sextant_rule_group_rules",
            "Rules in the group",
            self.rules.clone(),
        );
        registry.register(
            "sextant_rule_alerts_sent",
            "Alerts handed to the notifier by rule evaluation",
            self.notifications_sent.clone(),
        );
        registry.register(
            "sextant_rule_reloads",
            "Rule reloads attempted",
            self.reloads.clone(),
        );
        registry.register(
            "sextant_rule_reload_failures",
            "Rule reloads that failed (the previous rules stay active)",
            self.reload_failures.clone(),
        );
    }
}

/// A group's evaluator, shared between its task and readers (the API).
pub struct GroupSlot {
    file: String,
    name: String,
    evaluator: Mutex<Option<GroupEvaluator>>,
}

impl GroupSlot {
    /// The group's status and its rules' status, or `None` while a reload swaps it out.
    pub fn snapshot(&self) -> Option<(GroupStatus, Vec<RuleStatus>)> {
        let g = self.evaluator.lock();
        g.as_ref().map(|g| (g.group_status(), g.rule_states()))
    }
}

struct Running {
    def: RuleGroup,
    slot: Arc<GroupSlot>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    db: Arc<Db>,
    engine: Arc<Engine>,
    sink: Arc<dyn AlertSink>,
    opts: ManagerOptions,
    loader: RuleLoader,
    metrics: RuleMetrics,
}

/// Runs every rule group; see the module docs.
pub struct RuleManager {
    inner: Arc<Inner>,
    /// Serialises reloads; sorted by (file, name).
    groups: tokio::sync::Mutex<Vec<Running>>,
    /// What readers see, in (file, name) order.
    slots: parking_lot::RwLock<Vec<Arc<GroupSlot>>>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The group's phase within its interval: a stable hash of file and name, modulo the interval.
pub fn group_offset_ms(file: &str, name: &str, interval_ms: i64) -> i64 {
    // FNV-1a over file, a separator and name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file.bytes().chain([0xff]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if interval_ms <= 0 {
        return 0;
    }
    (h % interval_ms as u64) as i64
}

/// The latest evaluation time at or before `now_ms`:
/// `floor((now - offset) / interval) × interval + offset`.
pub fn aligned_eval_ts(now_ms: i64, interval_ms: i64, offset_ms: i64) -> i64 {
    let adj = now_ms - offset_ms;
    adj - adj.rem_euclid(interval_ms.max(1)) + offset_ms
}

/// For an evaluation due at `due_ms` and started at `now_ms`: the latest due time on the
/// group's grid not after `now_ms`, and how many grid points before it were skipped.
pub fn skip_missed(due_ms: i64, now_ms: i64, interval_ms: i64) -> (i64, u64) {
    let behind = (now_ms - due_ms).max(0) / interval_ms.max(1);
    (due_ms + behind * interval_ms, behind as u64)
}

fn group_key(file: &str, name: &str) -> Vec<(String, String)> {
    vec![("rule_group".to_string(), format!("{file};{name}"))]
}

impl RuleManager {
    /// Loads the rules and starts one task per group (each restoring `for` state after its
    /// second evaluation). Must be called inside a tokio runtime.
    pub fn start(
        db: Arc<Db>,
        engine: Arc<Engine>,
        sink: Arc<dyn AlertSink>,
        opts: ManagerOptions,
        loader: RuleLoader,
        metrics: RuleMetrics,
    ) -> Result<Arc<RuleManager>, String> {
        let defs = (loader)()?;
        let inner = Arc::new(Inner {
            db,
            engine,
            sink,
            opts,
            loader,
            metrics,
        });
        let mut running = Vec::new();
        for def in sorted(defs) {
            let ev = GroupEvaluator::new(def.clone(), inner.opts.eval.clone())?;
            running.push(spawn_group(&inner, def, ev, true));
        }
        let slots = running.iter().map(|r| r.slot.clone()).collect();
        Ok(Arc::new(RuleManager {
            inner,
            groups: tokio::sync::Mutex::new(running),
            slots: parking_lot::RwLock::new(slots),
        }))
    }

    /// Re-reads the rules. Unchanged groups keep running untouched; changed groups restart
    /// with the state of their unchanged rules; removed groups stop and their series are
    /// marked stale. On error nothing changes.
    pub async fn reload(&self) -> Result<(), String> {
        self.inner.metrics.reloads.inc();
        let result = self.reload_inner().await;
        if let Err(e) = &result {
            self.inner.metrics.reload_failures.inc();
            tracing::error!(error = %e, "reloading rules failed; keeping the previous rules");
        }
        result
    }

    async fn reload_inner(&self) -> Result<(), String> {
        let loader = self.inner.loader.clone();
        let defs = tokio::task::spawn_blocking(move || (loader)())
            .await
            .map_err(|e| format!("rule loading task: {e}"))??;
        let defs = sorted(defs);
        // Build every new evaluator first, so an invalid rule changes nothing.
        let mut fresh = Vec::with_capacity(defs.len());
        for def in &defs {
            fresh.push(GroupEvaluator::new(
                def.clone(),
                self.inner.opts.eval.clone(),
            )?);
        }
        let mut groups = self.groups.lock().await;
        let mut old: Vec<Option<Running>> =
            std::mem::take(&mut *groups).into_iter().map(Some).collect();
        let mut next = Vec::with_capacity(defs.len());
        for (def, ev) in defs.into_iter().zip(fresh) {
            let found = old.iter().position(|o| {
                o.as_ref()
                    .is_some_and(|o| o.def.file == def.file && o.def.name == def.name)
            });
            match found.and_then(|i| old[i].take()) {
                Some(o) if o.def == def => next.push(o),
                Some(o) => {
                    let mut ev = ev;
                    if let Some(prev) = stop_group(o).await {
                        ev.copy_state_from(prev);
                    }
                    next.push(spawn_group(&self.inner, def, ev, false));
                }
                None => next.push(spawn_group(&self.inner, def, ev, false)),
            }
        }
        for o in old.into_iter().flatten() {
            let labels = group_key(&o.def.file, &o.def.name);
            if let Some(mut prev) = stop_group(o).await {
                let db = self.inner.db.clone();
                let _ =
                    tokio::task::spawn_blocking(move || prev.mark_all_stale(&db, now_ms())).await;
            }
            self.inner.metrics.rules.get_or_create(&labels).set(0);
        }
        *self.slots.write() = next.iter().map(|r| r.slot.clone()).collect();
        *groups = next;
        tracing::info!(groups = groups.len(), "rules reloaded");
        Ok(())
    }

    /// Every group's slot, sorted by file then name.
    pub fn groups(&self) -> Vec<Arc<GroupSlot>> {
        self.slots.read().clone()
    }

    /// Status of every group and its rules, sorted by file then name.
    pub fn snapshot(&self) -> Vec<(GroupStatus, Vec<RuleStatus>)> {
        self.groups().iter().filter_map(|s| s.snapshot()).collect()
    }

    pub fn metrics(&self) -> &RuleMetrics {
        &self.inner.metrics
    }
}

fn sorted(mut defs: Vec<RuleGroup>) -> Vec<RuleGroup> {
    defs.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
    defs
}

/// Stops a group's task and returns its evaluator.
async fn stop_group(r: Running) -> Option<GroupEvaluator> {
    let _ = r.stop.send(true);
    if let Err(e) = r.task.await {
        tracing::error!(group = %r.def.name, error = %e, "rule group task failed");
    }
    r.slot.evaluator.lock().take()
}

fn spawn_group(
    inner: &Arc<Inner>,
    def: RuleGroup,
    mut ev: GroupEvaluator,
    restore: bool,
) -> Running {
    if restore {
        ev.require_restore();
    }
    let labels = group_key(&def.file, &def.name);
    inner
        .metrics
        .interval_seconds
        .get_or_create(&labels)
        .set(ev.interval().as_secs_f64());
    inner
        .metrics
        .rules
        .get_or_create(&labels)
        .set(def.rules.len() as i64);
    let slot = Arc::new(GroupSlot {
        file: def.file.clone(),
        name: def.name.clone(),
        evaluator: Mutex::new(Some(ev)),
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_group(inner.clone(), slot.clone(), stop_rx, restore));
    Running {
        def,
        slot,
        stop,
        task,
    }
}

/// Sleeps until wall time `at_ms`; false if asked to stop first.
async fn sleep_until(at_ms: i64, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = Duration::from_millis(u64::try_from(at_ms - now_ms()).unwrap_or(0));
    let stopped = tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stop.wait_for(|v| *v) => true,
    };
    !stopped && !*stop.borrow()
}

async fn run_group(
    inner: Arc<Inner>,
    slot: Arc<GroupSlot>,
    mut stop: watch::Receiver<bool>,
    mut restore: bool,
) {
    let labels = group_key(&slot.file, &slot.name);
    let interval_ms = {
        let g = slot.evaluator.lock();
        match g.as_ref() {
            Some(g) => duration_ms(g.interval()).max(1),
            None => return,
        }
    };
    let offset = group_offset_ms(&slot.file, &slot.name, interval_ms);
    let mut ts = aligned_eval_ts(now_ms(), interval_ms, offset) + interval_ms;
    let mut evaluations = 0u64;
    loop {
        if !sleep_until(ts, &mut stop).await {
            return;
        }
        // Ticks that passed while the previous evaluation ran are skipped and counted.
        let (due, missed) = skip_missed(ts, now_ms(), interval_ms);
        if missed > 0 {
            let m = &inner.metrics;
            m.iterations_missed.get_or_create(&labels).inc_by(missed);
            m.iterations.get_or_create(&labels).inc_by(missed);
            tracing::warn!(group = %slot.name, missed, "rule group evaluation missed iterations");
        }
        ts = due;
        let (inner2, slot2) = (inner.clone(), slot.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let mut g = slot2.evaluator.lock();
            g.as_mut()
                .map(|g| g.evaluate(&inner2.engine, &inner2.db, ts))
        })
        .await;
        let outcome = match outcome {
            Ok(Some(o)) => o,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(group = %slot.name, error = %e, "rule evaluation task failed");
                ts += interval_ms;
                continue;
            }
        };
        let m = &inner.metrics;
        m.iterations.get_or_create(&labels).inc();
        m.evaluations.get_or_create(&labels).inc();
        if outcome.failed_rules > 0 {
            m.evaluation_failures
                .get_or_create(&labels)
                .inc_by(outcome.failed_rules as u64);
        }
        m.last_duration_seconds
            .get_or_create(&labels)
            .set(outcome.duration.as_secs_f64());
        m.last_evaluation_timestamp_seconds
            .get_or_create(&labels)
            .set(ts as f64 / 1000.0);
        if !outcome.alerts.is_empty() {
            m.notifications_sent.inc_by(outcome.alerts.len() as u64);
            inner.sink.send(outcome.alerts);
        }
        evaluations += 1;
        // As Prometheus: restore after the second evaluation, so recording rules and fresh
        // data had a chance to produce what the alerts depend on.
        if restore && evaluations >= 2 {
            restore = false;
            let (inner2, slot2) = (inner.clone(), slot.clone());
            let _ = tokio::task::spawn_blocking(move || {
                let mut g = slot2.evaluator.lock();
                if let Some(g) = g.as_mut() {
                    g.restore_for_state(
                        inner2.db.as_ref(),
                        now_ms(),
                        inner2.opts.outage_tolerance,
                        inner2.opts.for_grace_period,
                    );
                }
            })
            .await;
        }
        ts += interval_ms;
    }
}

/// An [`AlertSink`] that logs alerts at debug level (used until a notifier is connected).
pub struct LogSink;

impl AlertSink for LogSink {
    fn send(&self, alerts: Vec<crate::Alert>) {
        for a in alerts {
            tracing::debug!(labels = ?a.labels, starts_at_ms = a.starts_at_ms, ends_at_ms = a.ends_at_ms, "alert");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_stable_and_within_interval() {
        let iv = 60_000;
        let off = group_offset_ms("rules.yml", "g", iv);
        assert!((0..iv).contains(&off));
        assert_eq!(off, group_offset_ms("rules.yml", "g", iv));
        assert_ne!(off, group_offset_ms("rules.yml", "h", iv));
        let now = 1_700_000_012_345;
        let ts = aligned_eval_ts(now, iv, off);
        assert!(ts <= now && now - ts < iv);
        assert_eq!((ts - off).rem_euclid(iv), 0);
        assert_eq!(aligned_eval_ts(125_000, 60_000, 10_000), 70_000);
    }

    #[test]
    fn late_evaluations_skip_and_count_missed_ticks() {
        assert_eq!(skip_missed(10_000, 10_005, 1000), (10_000, 0));
        assert_eq!(skip_missed(10_000, 12_500, 1000), (12_000, 2));
        assert_eq!(skip_missed(10_000, 9_000, 1000), (10_000, 0));
    }

    struct Collect(Mutex<Vec<crate::Alert>>);
    impl AlertSink for Collect {
        fn send(&self, alerts: Vec<crate::Alert>) {
            self.0.lock().extend(alerts);
        }
    }

    fn group(name: &str, expr: &str, for_s: u64) -> RuleGroup {
        RuleGroup {
            name: name.into(),
            file: "mem".into(),
            interval: Some(Duration::from_millis(100)),
            limit: 0,
            query_offset: None,
            labels: Default::default(),
            rules: vec![crate::rules::RuleDef {
                kind: crate::rules::RuleKind::Alert("A".into()),
                expr: expr.into(),
                for_: Duration::from_secs(for_s),
                keep_firing_for: Duration::ZERO,
                labels: Default::default(),
                annotations: Default::default(),
                line: 0,
            }],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_run_send_alerts_and_reload_keeps_state() {
        let db = Arc::new(Db::in_memory());
        let engine = Arc::new(Engine::new(Default::default()));
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let defs = Arc::new(Mutex::new(vec![
            group("firing", "vector(1)", 0),
            group("pending", "vector(1)", 3600),
        ]));
        let loader: RuleLoader = {
            let defs = defs.clone();
            Arc::new(move || Ok(defs.lock().clone()))
        };
        let metrics = RuleMetrics::default();
        let m = RuleManager::start(
            db.clone(),
            engine,
            sink.clone(),
            ManagerOptions::default(),
            loader,
            metrics.clone(),
        )
        .expect("start");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let sent = sink.0.lock().clone();
        assert!(!sent.is_empty(), "the firing group sent its alert");
        assert!(sent.iter().all(|a| a.labels["alertname"] == "A"));
        let snap = m.snapshot();
        assert_eq!(snap.len(), 2);
        let pending_since = snap[1].1[0].alerts[0].active_at_ms;
        assert!(
            metrics
                .evaluations
                .get_or_create(&group_key("mem", "firing"))
                .get()
                >= 2
        );

        // Change the firing group only; the pending group keeps running with its state.
        defs.lock()[0].rules[0].expr = "vector(2)".into();
        m.reload().await.expect("reload");
        let snap = m.snapshot();
        assert_eq!(snap[1].1[0].alerts[0].active_at_ms, pending_since);
        // A broken reload changes nothing.
        defs.lock()[1].rules[0].expr = "sum(".into();
        assert!(m.reload().await.is_err());
        assert_eq!(m.snapshot().len(), 2);
        // Removing a group stops it.
        defs.lock().truncate(1);
        m.reload().await.expect("reload");
        assert_eq!(m.snapshot().len(), 1);
    }
}
