//! Forwarding to external Alertmanagers, as Prometheus' notifier does: every alert handed to the
//! sink (firing ones re-sent by rule evaluation, resolved ones included) is queued, and batches
//! of up to 64 are POSTed as `postableAlerts` to `<scheme>://<target><path_prefix>/api/v2/alerts`
//! of every configured Alertmanager. The queue holds at most 10000 alerts; when full the oldest
//! are dropped (counted as failures).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::config::{parse_duration_ms, AlertingConfig, HttpClientConfig};
use super::dispatch::NotifyMetrics;
use super::http::{post_json, RetryPolicy};
use super::rfc3339;
use crate::Alert;

/// Prometheus' defaults.
pub const QUEUE_CAPACITY: usize = 10_000;
pub const MAX_BATCH: usize = 64;

#[derive(Clone, Debug)]
struct Target {
    url: String,
    timeout: Duration,
    auth: HttpClientConfig,
}

pub struct Forwarder {
    targets: Vec<Target>,
    /// Set when a reload replaced this forwarder: its loop ends.
    stopped: std::sync::atomic::AtomicBool,
    queue: Mutex<VecDeque<Alert>>,
    wake: tokio::sync::Notify,
    client: reqwest::Client,
    metrics: NotifyMetrics,
    retry: RetryPolicy,
}

impl Forwarder {
    /// `None` when no Alertmanager is configured.
    pub fn new(
        cfg: &AlertingConfig,
        client: reqwest::Client,
        metrics: NotifyMetrics,
        retry: RetryPolicy,
    ) -> Result<Option<Arc<Forwarder>>, String> {
        let mut targets = Vec::new();
        for (i, am) in cfg.alertmanagers.iter().enumerate() {
            if am.api_version != "v2" {
                return Err(format!(
                    "alerting.alertmanagers[{i}]: api_version {:?} is not supported (only v2)",
                    am.api_version
                ));
            }
            if am.scheme != "http" && am.scheme != "https" {
                return Err(format!(
                    "alerting.alertmanagers[{i}]: scheme must be http or https"
                ));
            }
            let timeout = parse_duration_ms(&am.timeout)
                .map_err(|e| format!("alerting.alertmanagers[{i}].timeout: {e}"))?;
            let prefix = am.path_prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() || prefix.starts_with('/') {
                prefix.to_string()
            } else {
                format!("/{prefix}")
            };
            for sc in &am.static_configs {
                for t in &sc.targets {
                    if t.is_empty() || t.contains('/') {
                        return Err(format!(
                            "alerting.alertmanagers[{i}]: invalid target {t:?} (want host:port)"
                        ));
                    }
                    targets.push(Target {
                        url: format!("{}://{t}{prefix}/api/v2/alerts", am.scheme),
                        timeout: Duration::from_millis(timeout.max(1) as u64),
                        auth: HttpClientConfig {
                            basic_auth: am.basic_auth.clone(),
                            authorization: am.authorization.clone(),
                            bearer_token: am.bearer_token.clone(),
                        },
                    });
                }
            }
        }
        if targets.is_empty() {
            return Ok(None);
        }
        Ok(Some(Arc::new(Forwarder {
            targets,
            stopped: std::sync::atomic::AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            client,
            metrics,
            retry,
        })))
    }

    /// The `/api/v2/alerts` URLs alerts are sent to.
    pub fn urls(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.url.clone()).collect()
    }

    /// Queues alerts; never blocks.
    pub fn enqueue(&self, alerts: Vec<Alert>) {
        let mut q = self.queue.lock();
        q.extend(alerts);
        let over = q.len().saturating_sub(QUEUE_CAPACITY);
        if over > 0 {
            q.drain(..over);
            self.metrics.failed("alertmanager", over as u64);
            tracing::warn!(
                dropped = over,
                "alert forwarding queue full; dropped the oldest alerts"
            );
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Sends everything queued, batch by batch. Returns how many batches failed on some target.
    pub async fn flush(&self) -> usize {
        let mut failed = 0;
        loop {
            let batch: Vec<Alert> = {
                let mut q = self.queue.lock();
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return failed;
            }
            let body = Value::Array(batch.iter().map(postable).collect());
            let sends = self.targets.iter().map(|t| {
                let body = &body;
                async move {
                    let r = post_json(&self.client, &t.url, body, t.timeout, &t.auth, &self.retry)
                        .await;
                    (t, r)
                }
            });
            for (t, r) in futures_util::future::join_all(sends).await {
                match r {
                    Ok(()) => self.metrics.sent("alertmanager"),
                    Err(e) => {
                        failed += 1;
                        self.metrics.failed("alertmanager", 1);
                        tracing::error!(url = %t.url, error = %e, alerts = batch.len(), "forwarding alerts to Alertmanager failed");
                    }
                }
            }
        }
    }

    /// Ends the sending loop (what is still queued is dropped).
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Runs the sending loop on the current tokio runtime until the process exits.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.wake.notified().await;
                if me.stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                me.flush().await;
            }
        });
    }
}

/// Alertmanager's `postableAlert`.
pub fn postable(a: &Alert) -> Value {
    let mut v = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339(a.starts_at_ms),
        "endsAt": rfc3339(a.ends_at_ms),
    });
    if !a.generator_url.is_empty() {
        v["generatorURL"] = json!(a.generator_url);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_v2_urls() {
        let cfg: AlertingConfig = serde_yaml::from_str(
            "alertmanagers:\n  - static_configs: [{targets: ['am1:9093', 'am2:9093']}]\n    path_prefix: /am/\n  - scheme: https\n    static_configs: [{targets: ['am3']}]\n",
        )
        .unwrap();
        let f = Forwarder::new(
            &cfg,
            reqwest::Client::new(),
            NotifyMetrics::default(),
            RetryPolicy::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            f.urls(),
            vec![
                "http://am1:9093/am/api/v2/alerts",
                "http://am2:9093/am/api/v2/alerts",
                "https://am3/api/v2/alerts"
            ]
        );
        let bad: AlertingConfig = serde_yaml::from_str(
            "alertmanagers: [{api_version: v1, static_configs: [{targets: [a:1]}]}]\n",
        )
        .unwrap();
        assert!(Forwarder::new(
            &bad,
            reqwest::Client::new(),
            NotifyMetrics::default(),
            RetryPolicy::default()
        )
        .is_err());
        assert!(Forwarder::new(
            &AlertingConfig::default(),
            reqwest::Client::new(),
            NotifyMetrics::default(),
            RetryPolicy::default()
        )
        .unwrap()
        .is_none());
    }
}
