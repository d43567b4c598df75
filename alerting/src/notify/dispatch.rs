//! The notifier: Alertmanager's dispatcher and notification pipeline in one place.
//!
//! Alerts handed to [`Notifier::receive`] (the [`AlertSink`]) are merged into an alert store
//! keyed by label fingerprint (a re-sent alert keeps the earliest `startsAt`; an alert counts
//! as resolved once its `endsAt` has passed) and placed, per matching route, into an
//! aggregation group keyed by the route and its `group_by` labels. A group first flushes
//! `group_wait` after it was created (at once if its alert started longer ago than that and
//! the group has not flushed yet), then every `group_interval`. A flush runs the pipeline per
//! receiver integration: time intervals (`mute_time_intervals`, `active_time_intervals`),
//! inhibition and silences remove alerts (except resolves the integration still owes: a
//! resolved alert it was last told is firing), then the notification log decides whether
//! anything changed or `repeat_interval` elapsed; what goes out is logged (and persisted) only
//! once delivered. After a fully successful flush, resolved alerts leave the group; an empty
//! group is dropped.
//!
//! Time comes from an injectable [`Clock`]; [`Notifier::plan`] / [`Notifier::complete`] are
//! the synchronous halves that tests drive directly, [`Notifier::flush_due`] delivers over
//! HTTP, and [`Notifier::spawn`] runs it all in the background.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::{parse_duration_ms, AlertingConfig, GlobalConfig, NotifyConfig};
use super::forward::Forwarder;
use super::http::{post_json, RetryPolicy};
use super::inhibit::{inhibited_by, InhibitRule};
use super::nflog::{self, read_json, write_json_atomic, Entry, NotificationLog};
use super::receivers::{sort_alerts, AlertView, Integration, NotificationData};
use super::route::RouteTree;
use super::silence::Silences;
use super::template;
use super::timeinterval::TimeIntervals;
use super::{fingerprint, fingerprint_hex, rfc3339, Clock, SystemClock};
use crate::{Alert, AlertSink};

/// How the notifier runs (not part of the configuration file).
#[derive(Clone)]
pub struct NotifierOptions {
    /// Where the notification log, silences and alerts are persisted (`<data dir>/notify`);
    /// `None` keeps them in memory.
    pub data_dir: Option<PathBuf>,
    pub clock: Arc<dyn Clock>,
    pub retry: RetryPolicy,
    /// How often the background loop looks for groups due to flush.
    pub tick: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            data_dir: None,
            clock: Arc::new(SystemClock),
            retry: RetryPolicy::default(),
            tick: Duration::from_millis(200),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationLabel {
    integration: String,
}

/// Self-metrics: `sextant_notifications_total` and `sextant_notifications_failed_total` by
/// `integration` (`webhook`, `pagerduty`, `slack`, `alertmanager`), and
/// `sextant_notifier_group_flushes_total` (aggregation group flushes, whether or not they sent
/// anything).
#[derive(Clone, Debug, Default)]
pub struct NotifyMetrics {
    sent: Family<IntegrationLabel, Counter>,
    failed: Family<IntegrationLabel, Counter>,
    flushes: Counter,
}

impl NotifyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sextant_notifications",
            "Notifications delivered, by integration",
            self.sent.clone(),
        );
        registry.register(
            "sextant_notifications_failed",
            "Notifications that failed for good (after retries), by integration",
            self.failed.clone(),
        );
        registry.register(
            "sextant_notifier_group_flushes",
            "Aggregation group flushes (each runs the notification pipeline)",
            self.flushes.clone(),
        );
    }
    pub(crate) fn sent(&self, integration: &str) {
        self.sent
            .get_or_create(&IntegrationLabel {
                integration: integration.to_string(),
            })
            .inc();
    }
    pub(crate) fn failed(&self, integration: &str, n: u64) {
        self.failed
            .get_or_create(&IntegrationLabel {
                integration: integration.to_string(),
            })
            .inc_by(n);
    }
    /// Current value of the delivered counter for `integration`.
    pub fn sent_count(&self, integration: &str) -> u64 {
        self.sent
            .get_or_create(&IntegrationLabel {
                integration: integration.to_string(),
            })
            .get()
    }
    /// Current value of the failure counter for `integration`.
    pub fn failed_count(&self, integration: &str) -> u64 {
        self.failed
            .get_or_create(&IntegrationLabel {
                integration: integration.to_string(),
            })
            .get()
    }
}

/// An alert in the store. Times in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
struct StoredAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at_ms: i64,
    ends_at_ms: i64,
    generator_url: String,
    updated_at_ms: i64,
    /// `endsAt` was not given and was set from `resolve_timeout`.
    timeout: bool,
}

impl StoredAlert {
    fn resolved_at(&self, now: i64) -> bool {
        self.ends_at_ms > 0 && self.ends_at_ms <= now
    }

    /// Alertmanager's `Alert.Merge`: `newer` wins, keeping the earliest start; an explicit
    /// later end is kept over a timeout-derived one.
    fn merge(&self, newer: StoredAlert) -> StoredAlert {
        let (old, new) = if newer.updated_at_ms < self.updated_at_ms {
            (newer, self.clone())
        } else {
            (self.clone(), newer)
        };
        let mut res = new.clone();
        res.starts_at_ms = old.starts_at_ms.min(new.starts_at_ms);
        let now_ref = new.updated_at_ms;
        if new.resolved_at(now_ref) {
            if old.resolved_at(now_ref) && old.ends_at_ms > new.ends_at_ms {
                res.ends_at_ms = old.ends_at_ms;
            }
        } else if old.ends_at_ms > new.ends_at_ms && !old.timeout {
            res.ends_at_ms = old.ends_at_ms;
        }
        res
    }

    fn view(&self, fp: u64, now: i64) -> AlertView {
        let resolved = self.resolved_at(now);
        AlertView {
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at_ms: self.starts_at_ms,
            ends_at_ms: if resolved { self.ends_at_ms } else { 0 },
            generator_url: self.generator_url.clone(),
            fingerprint: fp,
            resolved,
        }
    }
}

struct Group {
    route: usize,
    key: String,
    labels: BTreeMap<String, String>,
    alerts: BTreeMap<u64, StoredAlert>,
    next_flush_ms: i64,
    has_flushed: bool,
    /// A flush is being delivered: the next one waits for it (one flush per group at a time,
    /// as Alertmanager's per-group loop).
    in_flight: bool,
}

#[derive(Default)]
struct State {
    alerts: HashMap<u64, StoredAlert>,
    /// By (route index, group key).
    groups: BTreeMap<(usize, String), Group>,
    alerts_dirty: bool,
}

/// One notification the pipeline decided to send (or, with no alerts, only to log).
#[derive(Clone, Debug)]
pub struct Planned {
    pub integration: usize,
    /// `<receiver>/<integration name>/<index>`: the notification log's receiver key.
    pub receiver_key: String,
    pub integration_name: &'static str,
    pub data: NotificationData,
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
}

/// A group's flush: its notifications, and the resolved alerts to drop once all succeed.
#[derive(Clone, Debug)]
pub struct GroupFlush {
    route: usize,
    pub group_key: String,
    resolved_snapshot: Vec<(u64, i64)>,
    pub notifications: Vec<Planned>,
}

/// The built-in notifier (see the module docs). Also forwards every alert to the external
/// Alertmanagers of `alerting:`.
pub struct Notifier {
    /// Everything derived from the configuration; replaced as a whole by [`Notifier::reload`].
    compiled: RwLock<Arc<Compiled>>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    nflog: NotificationLog,
    silences: Silences,
    client: reqwest::Client,
    metrics: NotifyMetrics,
    retry: RetryPolicy,
    tick: Duration,
    alerts_path: Option<PathBuf>,
    started_ms: i64,
    /// Set once [`Notifier::spawn`] ran: reloaded forwarders are started too.
    spawned: AtomicBool,
}

/// The configuration, checked and compiled.
struct Compiled {
    routes: Option<RouteTree>,
    receivers: BTreeMap<String, Vec<Integration>>,
    inhibit: Vec<InhibitRule>,
    intervals: BTreeMap<String, TimeIntervals>,
    global: GlobalConfig,
    external_url: String,
    resolve_timeout_ms: i64,
    forwarder: Option<Arc<Forwarder>>,
    /// The `notifications:` section as YAML (`/api/v2/status`).
    config_yaml: String,
}

impl Compiled {
    fn new(
        cfg: &NotifyConfig,
        alerting: &AlertingConfig,
        client: &reqwest::Client,
        metrics: &NotifyMetrics,
        retry: &RetryPolicy,
    ) -> Result<Compiled, String> {
        let mut intervals = BTreeMap::new();
        for ti in cfg.time_intervals.iter().chain(&cfg.mute_time_intervals) {
            if intervals.contains_key(&ti.name) {
                return Err(format!("time interval {:?} is defined twice", ti.name));
            }
            intervals.insert(ti.name.clone(), TimeIntervals::compile(ti)?);
        }
        let mut receivers = BTreeMap::new();
        for r in &cfg.receivers {
            if r.name.is_empty() {
                return Err("receivers: missing name".into());
            }
            if receivers
                .insert(r.name.clone(), Integration::from_receiver(r, &cfg.global)?)
                .is_some()
            {
                return Err(format!("receivers: name {:?} is not unique", r.name));
            }
        }
        let routes = match &cfg.route {
            Some(root) => Some(RouteTree::build(
                root,
                &receivers.keys().cloned().collect(),
                &intervals.keys().cloned().collect(),
            )?),
            None if !cfg.receivers.is_empty() => {
                return Err("notifications: receivers are configured but no route".into())
            }
            None => None,
        };
        let inhibit = cfg
            .inhibit_rules
            .iter()
            .map(InhibitRule::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let resolve_timeout_ms = parse_duration_ms(&cfg.global.resolve_timeout)
            .map_err(|e| format!("global.resolve_timeout: {e}"))?;
        parse_duration_ms(&cfg.global.notification_log_retention)
            .map_err(|e| format!("global.notification_log_retention: {e}"))?;
        let forwarder = Forwarder::new(alerting, client.clone(), metrics.clone(), retry.clone())?;
        Ok(Compiled {
            routes,
            receivers,
            inhibit,
            intervals,
            global: cfg.global.clone(),
            external_url: cfg.external_url.trim_end_matches('/').to_string(),
            resolve_timeout_ms,
            forwarder,
            config_yaml: super::config::redacted_yaml(cfg),
        })
    }
}

impl Notifier {
    /// Builds the notifier from the two configuration sections and loads its persisted state.
    /// Errors name the offending setting.
    pub fn new(
        cfg: &NotifyConfig,
        alerting: &AlertingConfig,
        opts: NotifierOptions,
    ) -> Result<Arc<Notifier>, String> {
        let now = opts.clock.now_ms();
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let metrics = NotifyMetrics::default();
        let compiled = Compiled::new(cfg, alerting, &client, &metrics, &opts.retry)?;
        let retention_ms = parse_duration_ms(&cfg.global.notification_log_retention)
            .map_err(|e| format!("global.notification_log_retention: {e}"))?;
        let dir = opts.data_dir.as_deref();
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        let notifier = Notifier {
            compiled: RwLock::new(Arc::new(compiled)),
            nflog: NotificationLog::open(dir, retention_ms, now)?,
            silences: Silences::open(dir, retention_ms)?,
            clock: opts.clock,
            state: Mutex::new(State::default()),
            client,
            metrics,
            retry: opts.retry,
            tick: opts.tick,
            alerts_path: dir.map(|d| d.join("alerts.json")),
            started_ms: now,
            spawned: AtomicBool::new(false),
        };
        if let Some(p) = &notifier.alerts_path {
            let saved: Vec<StoredAlert> = read_json(p)?.unwrap_or_default();
            let mut state = notifier.state.lock();
            for a in saved {
                notifier.insert(&mut state, a, now);
            }
        }
        Ok(Arc::new(notifier))
    }

    fn compiled(&self) -> Arc<Compiled> {
        self.compiled.read().clone()
    }

    /// Applies a new configuration (SIGHUP, `/-/reload`), as Alertmanager does: aggregation
    /// groups are rebuilt from the alert store under the new routes (the notification log
    /// keeps them from re-notifying what was already sent); silences and the log stay. On
    /// error the old configuration stays in force.
    pub fn reload(&self, cfg: &NotifyConfig, alerting: &AlertingConfig) -> Result<(), String> {
        let new = Arc::new(Compiled::new(
            cfg,
            alerting,
            &self.client,
            &self.metrics,
            &self.retry,
        )?);
        let old = std::mem::replace(&mut *self.compiled.write(), new.clone());
        if let Some(f) = &old.forwarder {
            f.stop();
        }
        if self.spawned.load(Ordering::SeqCst) {
            if let Some(f) = &new.forwarder {
                f.spawn();
            }
        }
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        state.groups.clear();
        let alerts: Vec<StoredAlert> = state.alerts.drain().map(|(_, a)| a).collect();
        for a in alerts {
            self.insert(&mut state, a, now);
        }
        Ok(())
    }

    /// Whether a routing tree is configured (otherwise alerts are only forwarded).
    pub fn enabled(&self) -> bool {
        let c = self.compiled();
        c.routes.is_some()
    }

    pub fn metrics(&self) -> &NotifyMetrics {
        &self.metrics
    }

    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The forwarder to external Alertmanagers, if configured.
    pub fn forwarder(&self) -> Option<Arc<Forwarder>> {
        self.compiled().forwarder.clone()
    }

    /// Takes alerts in: forwards them, and merges them into the store and their groups.
    /// Alerts without labels are dropped with a warning.
    pub fn receive(&self, alerts: Vec<Alert>) {
        let c = self.compiled();
        if let Some(f) = &c.forwarder {
            f.enqueue(alerts.clone());
        }
        if c.routes.is_none() {
            return;
        }
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        for a in alerts {
            if a.labels.is_empty() {
                tracing::warn!("dropping an alert without labels");
                continue;
            }
            let timeout = a.ends_at_ms <= 0;
            let stored = StoredAlert {
                labels: a.labels,
                annotations: a.annotations,
                starts_at_ms: if a.starts_at_ms > 0 {
                    a.starts_at_ms
                } else {
                    now
                },
                ends_at_ms: if timeout {
                    now + c.resolve_timeout_ms
                } else {
                    a.ends_at_ms
                },
                generator_url: a.generator_url,
                updated_at_ms: now,
                timeout,
            };
            self.insert(&mut state, stored, now);
        }
    }

    fn insert(&self, state: &mut State, alert: StoredAlert, now: i64) {
        let c = self.compiled();
        let Some(routes) = &c.routes else {
            return;
        };
        let fp = fingerprint(&alert.labels);
        let merged = match state.alerts.get(&fp) {
            // Merge when the activity ranges overlap; otherwise the new alert replaces the
            // old one (a new incident after a resolve).
            Some(old)
                if (alert.ends_at_ms > old.starts_at_ms && alert.ends_at_ms < old.ends_at_ms)
                    || (alert.starts_at_ms >= old.starts_at_ms
                        && alert.starts_at_ms < old.ends_at_ms) =>
            {
                old.merge(alert)
            }
            _ => alert,
        };
        state.alerts.insert(fp, merged.clone());
        state.alerts_dirty = true;
        for idx in routes.match_labels(&merged.labels) {
            let route = &routes.routes[idx];
            let labels = route.group_labels(&merged.labels);
            let key = route.group_key(&labels);
            let group = state
                .groups
                .entry((idx, key.clone()))
                .or_insert_with(|| Group {
                    route: idx,
                    key,
                    labels,
                    alerts: BTreeMap::new(),
                    next_flush_ms: now + route.group_wait_ms,
                    has_flushed: false,
                    in_flight: false,
                });
            group.alerts.insert(fp, merged.clone());
            if !group.has_flushed && merged.starts_at_ms + route.group_wait_ms < now {
                group.next_flush_ms = group.next_flush_ms.min(now);
            }
        }
    }

    /// The earliest time a group is due, if any.
    pub fn next_flush_ms(&self) -> Option<i64> {
        self.state
            .lock()
            .groups
            .values()
            .map(|g| g.next_flush_ms)
            .min()
    }

    /// Flushes the groups due now: runs the pipeline and returns what to deliver. Each group's
    /// next flush moves `group_interval` ahead.
    pub fn plan(&self) -> Vec<GroupFlush> {
        let c = self.compiled();
        let Some(routes) = &c.routes else {
            return Vec::new();
        };
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        let firing_sources = firing_sources(&state, now);
        let mut out = Vec::new();
        for group in state.groups.values_mut() {
            if group.next_flush_ms > now || group.in_flight {
                continue;
            }
            group.in_flight = true;
            let route = &routes.routes[group.route];
            group.next_flush_ms = now + route.group_interval_ms;
            group.has_flushed = true;
            self.metrics.flushes.inc();
            let mut views: Vec<AlertView> = group
                .alerts
                .iter()
                .map(|(fp, a)| a.view(*fp, now))
                .collect();
            sort_alerts(&mut views);
            let resolved_snapshot = group
                .alerts
                .iter()
                .filter(|(_, a)| a.resolved_at(now))
                .map(|(fp, a)| (*fp, a.updated_at_ms))
                .collect();
            let mut flush = GroupFlush {
                route: group.route,
                group_key: group.key.clone(),
                resolved_snapshot,
                notifications: Vec::new(),
            };
            if self.time_muted(route, now) {
                out.push(flush);
                continue;
            }
            let muted: BTreeSet<u64> = views
                .iter()
                .filter(|v| {
                    !self.silences.muting(&v.labels, now).is_empty()
                        || inhibited_by(
                            &c.inhibit,
                            &v.labels,
                            v.fingerprint,
                            firing_sources.iter().map(|(f, l)| (*f, l)),
                        )
                        .is_some()
                })
                .map(|v| v.fingerprint)
                .collect();
            let integrations = c
                .receivers
                .get(&route.receiver)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for (i, integ) in integrations.iter().enumerate() {
                let receiver_key = format!("{}/{}/{i}", route.receiver, integ.name());
                let entry = self.nflog.get(&nflog::key(&group.key, &receiver_key));
                // A muted alert stays out, unless it is a resolve this integration is owed.
                let alerts: Vec<AlertView> = views
                    .iter()
                    .filter(|v| {
                        !muted.contains(&v.fingerprint)
                            || (v.resolved
                                && entry
                                    .as_ref()
                                    .is_some_and(|e| e.firing.contains(&v.fingerprint)))
                    })
                    .cloned()
                    .collect();
                if alerts.is_empty() {
                    continue;
                }
                let firing: BTreeSet<u64> = alerts
                    .iter()
                    .filter(|a| !a.resolved)
                    .map(|a| a.fingerprint)
                    .collect();
                let resolved: BTreeSet<u64> = if integ.send_resolved() {
                    alerts
                        .iter()
                        .filter(|a| a.resolved)
                        .map(|a| a.fingerprint)
                        .collect()
                } else {
                    BTreeSet::new()
                };
                let Some(reason) = Entry::needs_update(
                    entry.as_ref(),
                    &firing,
                    &resolved,
                    integ.send_resolved(),
                    route.repeat_interval_ms,
                    now,
                ) else {
                    continue;
                };
                let alerts = if integ.send_resolved() {
                    alerts
                } else {
                    alerts.into_iter().filter(|a| !a.resolved).collect()
                };
                let mut data = NotificationData {
                    receiver: route.receiver.clone(),
                    group_key: group.key.clone(),
                    group_labels: group.labels.clone(),
                    alerts,
                    external_url: c.external_url.clone(),
                    reason: reason.to_string(),
                    route_labels: BTreeMap::new(),
                };
                if !route.labels.is_empty() {
                    data.route_labels = template::render_all(&template::Context {
                        group_labels: &data.group_labels,
                        common_labels: &data.common_labels(),
                        common_annotations: &data.common_annotations(),
                        receiver: &data.receiver,
                        status: data.status(),
                        route_labels: &route.labels,
                    });
                }
                flush.notifications.push(Planned {
                    integration: i,
                    receiver_key,
                    integration_name: integ.name(),
                    data,
                    firing,
                    resolved,
                });
            }
            out.push(flush);
        }
        out
    }

    fn time_muted(&self, route: &super::route::Route, now: i64) -> bool {
        let c = self.compiled();
        let muted = route
            .mute_time_intervals
            .iter()
            .filter_map(|n| c.intervals.get(n))
            .any(|t| t.contains(now));
        let inactive = !route.active_time_intervals.is_empty()
            && !route
                .active_time_intervals
                .iter()
                .filter_map(|n| c.intervals.get(n))
                .any(|t| t.contains(now));
        muted || inactive
    }

    /// Records the outcome of a flush: delivered notifications go to the notification log;
    /// when all succeeded, the group's resolved alerts (unchanged since the plan) leave it.
    /// `delivered[i]` is the outcome of `flush.notifications[i]`.
    pub fn complete(&self, flush: &GroupFlush, delivered: &[bool]) {
        let now = self.clock.now_ms();
        let sent = flush
            .notifications
            .iter()
            .zip(delivered)
            .filter(|(_, ok)| **ok)
            .map(|(n, _)| {
                (
                    nflog::key(&flush.group_key, &n.receiver_key),
                    n.firing.clone(),
                    n.resolved.clone(),
                )
            });
        if let Err(e) = self.nflog.log(sent, now) {
            tracing::error!(error = %e, "persisting the notification log failed");
        }
        let mut state = self.state.lock();
        let id = (flush.route, flush.group_key.clone());
        let Some(group) = state.groups.get_mut(&id) else {
            return;
        };
        // Only now (the log written) may the group flush again.
        group.in_flight = false;
        if delivered.iter().any(|ok| !ok) || delivered.len() < flush.notifications.len() {
            return;
        }
        for (fp, updated) in &flush.resolved_snapshot {
            if group
                .alerts
                .get(fp)
                .is_some_and(|a| a.updated_at_ms == *updated && a.resolved_at(now))
            {
                group.alerts.remove(fp);
            }
        }
        if group.alerts.is_empty() {
            state.groups.remove(&id);
        }
    }

    /// Sends one planned notification (with retries); true when delivered or nothing had to
    /// be sent.
    pub async fn deliver(&self, n: &Planned) -> bool {
        let c = self.compiled();
        let Some(integ) = c
            .receivers
            .get(&n.data.receiver)
            .and_then(|v| v.get(n.integration))
        else {
            return false;
        };
        if n.data.alerts.is_empty() {
            return true;
        }
        let req = match integ.request(&n.data, &c.global) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(receiver = %n.data.receiver, error = %e, "cannot build notification");
                self.metrics.failed(integ.name(), 1);
                return false;
            }
        };
        match post_json(
            &self.client,
            &req.url,
            &req.body,
            req.timeout,
            &req.auth,
            &self.retry,
        )
        .await
        {
            Ok(()) => {
                self.metrics.sent(integ.name());
                true
            }
            Err(e) => {
                tracing::error!(receiver = %n.data.receiver, integration = integ.name(), error = %e, "notification failed");
                self.metrics.failed(integ.name(), 1);
                false
            }
        }
    }

    /// Delivers a group's flush (its integrations concurrently) and records the outcome. The
    /// notification log is written (and fsynced) on a blocking thread, not an async worker.
    pub async fn run_flush(self: &Arc<Self>, flush: GroupFlush) -> usize {
        let results =
            futures_util::future::join_all(flush.notifications.iter().map(|n| self.deliver(n)))
                .await;
        let me = self.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            me.complete(&flush, &results);
            (flush, results)
        })
        .await;
        let (flush, results) = match recorded {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "recording a notification outcome failed");
                return 0;
            }
        };
        flush
            .notifications
            .iter()
            .zip(&results)
            .filter(|(n, ok)| **ok && !n.data.alerts.is_empty())
            .count()
    }

    /// Plans and delivers everything due now, waiting for it; returns the number of
    /// notifications delivered. Tests call this after moving the clock.
    pub async fn flush_due(self: &Arc<Self>) -> usize {
        let c = self.compiled();
        let plans = self.plan();
        let mut sent = 0;
        for f in futures_util::future::join_all(plans.into_iter().map(|f| self.run_flush(f))).await
        {
            sent += f;
        }
        if let Some(f) = &c.forwarder {
            f.flush().await;
        }
        sent
    }

    /// Writes the alert store to `alerts.json` if it changed, and drops alerts resolved for
    /// more than 15 minutes that no group holds.
    pub fn persist_alerts(&self) {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        let held: BTreeSet<u64> = state
            .groups
            .values()
            .flat_map(|g| g.alerts.keys().copied())
            .collect();
        let before = state.alerts.len();
        state
            .alerts
            .retain(|fp, a| !a.resolved_at(now - 15 * 60_000) || held.contains(fp));
        if state.alerts.len() != before {
            state.alerts_dirty = true;
        }
        if !state.alerts_dirty {
            return;
        }
        state.alerts_dirty = false;
        if let Some(p) = &self.alerts_path {
            let list: Vec<&StoredAlert> = state.alerts.values().collect();
            if let Err(e) = write_json_atomic(p, &list) {
                tracing::error!(error = %e, "persisting alerts failed");
                state.alerts_dirty = true;
            }
        }
    }

    /// Runs the notifier on the current tokio runtime: group flushes (each group's delivery
    /// in its own task), alert persistence, and forwarding.
    pub fn spawn(self: &Arc<Self>) {
        if self.spawned.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(f) = &self.compiled().forwarder {
            f.spawn();
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(me.tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                for flush in me.plan() {
                    let me = me.clone();
                    tokio::spawn(async move {
                        me.run_flush(flush).await;
                    });
                }
                let me2 = me.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || me2.persist_alerts()).await {
                    tracing::error!(error = %e, "alert persistence task failed");
                }
            }
        });
    }

    /// `gettableAlerts` for `GET /api/v2/alerts`: the store's unresolved alerts with their
    /// receivers and suppression state, sorted by fingerprint.
    pub fn alerts_json(&self, filter: &AlertFilter) -> Vec<Value> {
        let now = self.clock.now_ms();
        let state = self.state.lock();
        let sources = firing_sources(&state, now);
        let mut fps: Vec<&u64> = state.alerts.keys().collect();
        fps.sort();
        fps.into_iter()
            .filter_map(|fp| self.gettable(*fp, &state.alerts[fp], now, &sources, filter))
            .collect()
    }

    /// `alertGroups` for `GET /api/v2/alerts/groups`: each aggregation group with its
    /// unresolved alerts that pass the filter; groups left empty are omitted.
    pub fn groups_json(&self, filter: &AlertFilter) -> Vec<Value> {
        let c = self.compiled();
        let Some(routes) = &c.routes else {
            return Vec::new();
        };
        let now = self.clock.now_ms();
        let state = self.state.lock();
        let sources = firing_sources(&state, now);
        let mut out = Vec::new();
        for g in state.groups.values() {
            let receiver = &routes.routes[g.route].receiver;
            if filter
                .receiver
                .as_ref()
                .is_some_and(|re| !re.is_match(receiver))
            {
                continue;
            }
            let alerts: Vec<Value> = g
                .alerts
                .iter()
                .filter_map(|(fp, a)| self.gettable(*fp, a, now, &sources, filter))
                .collect();
            if alerts.is_empty() {
                continue;
            }
            let route = &routes.routes[g.route];
            let route_labels = template::render_all(&template::Context {
                group_labels: &g.labels,
                common_labels: &BTreeMap::new(),
                common_annotations: &BTreeMap::new(),
                receiver,
                status: "firing",
                route_labels: &route.labels,
            });
            out.push(json!({
                "labels": g.labels,
                "routeLabels": route_labels,
                "receiver": {"name": receiver},
                "alerts": alerts,
            }));
        }
        out
    }

    /// One `gettableAlert`, or `None` when resolved or filtered out.
    fn gettable(
        &self,
        fp: u64,
        a: &StoredAlert,
        now: i64,
        sources: &[(u64, BTreeMap<String, String>)],
        filter: &AlertFilter,
    ) -> Option<Value> {
        let c = self.compiled();
        if a.resolved_at(now) || !filter.matchers.matches(&a.labels) {
            return None;
        }
        let silenced_by = self.silences.muting(&a.labels, now);
        let inhibited_by: Vec<String> = inhibited_by(
            &c.inhibit,
            &a.labels,
            fp,
            sources.iter().map(|(f, l)| (*f, l)),
        )
        .map(fingerprint_hex)
        .into_iter()
        .collect();
        let routes: Vec<&super::route::Route> = c
            .routes
            .as_ref()
            .map(|r| {
                r.match_labels(&a.labels)
                    .into_iter()
                    .map(|i| &r.routes[i])
                    .collect()
            })
            .unwrap_or_default();
        let muted_by: Vec<String> = routes
            .iter()
            .filter(|r| self.time_muted(r, now))
            .flat_map(|r| r.mute_time_intervals.iter().chain(&r.active_time_intervals))
            .filter(|n| c.intervals.contains_key(*n))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let receivers: BTreeSet<&String> = routes.iter().map(|r| &r.receiver).collect();
        let suppressed =
            !silenced_by.is_empty() || !inhibited_by.is_empty() || !muted_by.is_empty();
        if (!silenced_by.is_empty() && !filter.silenced)
            || (!inhibited_by.is_empty() && !filter.inhibited)
            || (!suppressed && !filter.active)
        {
            return None;
        }
        if let Some(re) = &filter.receiver {
            if !receivers.iter().any(|r| re.is_match(r)) {
                return None;
            }
        }
        Some(json!({
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.starts_at_ms),
            "endsAt": rfc3339(a.ends_at_ms),
            "updatedAt": rfc3339(a.updated_at_ms),
            "generatorURL": a.generator_url,
            "fingerprint": fingerprint_hex(fp),
            "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
            "status": {
                "state": if suppressed { "suppressed" } else { "active" },
                "silencedBy": silenced_by,
                "inhibitedBy": inhibited_by,
                "mutedBy": muted_by,
            },
        }))
    }

    /// `alertmanagerStatus` for `GET /api/v2/status` (clustering is not supported: disabled).
    pub fn status_json(&self) -> Value {
        let c = self.compiled();
        json!({
            "cluster": {"status": "disabled", "peers": []},
            "versionInfo": {
                "version": env!("CARGO_PKG_VERSION"),
                "revision": format!("sextant-{}", env!("CARGO_PKG_VERSION")),
                "branch": "main",
                "buildUser": "sextant",
                "buildDate": "",
                "goVersion": "rust",
            },
            "config": {"original": c.config_yaml},
            "uptime": rfc3339(self.started_ms),
        })
    }

    /// The configured receiver names (`GET /api/v2/receivers`).
    pub fn receiver_names(&self) -> Vec<String> {
        let c = self.compiled();
        c.receivers.keys().cloned().collect()
    }
}

/// The firing alerts of the store, as inhibition sources.
fn firing_sources(state: &State, now: i64) -> Vec<(u64, BTreeMap<String, String>)> {
    state
        .alerts
        .iter()
        .filter(|(_, a)| !a.resolved_at(now))
        .map(|(fp, a)| (*fp, a.labels.clone()))
        .collect()
}

/// Filters of `GET /api/v2/alerts`.
pub struct AlertFilter {
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    pub matchers: super::matchers::Matchers,
    /// Anchored regex on receiver names.
    pub receiver: Option<regex::Regex>,
}

impl Default for AlertFilter {
    fn default() -> Self {
        AlertFilter {
            active: true,
            silenced: true,
            inhibited: true,
            matchers: super::matchers::Matchers::default(),
            receiver: None,
        }
    }
}

impl AlertSink for Notifier {
    fn send(&self, alerts: Vec<Alert>) {
        self.receive(alerts)
    }
}
