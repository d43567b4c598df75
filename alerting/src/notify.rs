//! Notifications: an Alertmanager-compatible routing tree, grouping, inhibition, silences and
//! receivers, and forwarding to external Alertmanagers.
//!
//! - [`config`]: `notifications:` (Alertmanager's format) and `alerting:` (Prometheus').
//! - [`Notifier`] (in `dispatch`): the [`AlertSink`](crate::AlertSink) rule evaluation hands
//!   alerts to; alert store, aggregation groups, the notification pipeline (time intervals,
//!   inhibition, silences, dedup against the notification log) and delivery.
//! - [`route`], [`matchers`], [`inhibit`], [`silence`], [`timeinterval`]: the pieces of that
//!   pipeline; [`nflog`]: the persisted notification log; [`receivers`]: webhook, PagerDuty and
//!   Slack payloads; [`template`]: route label templates; [`http`]: POST with retries;
//!   [`forward`]: external Alertmanagers; [`api`]: Alertmanager's API v2 (alerts, groups,
//!   silences, status, receivers).
//!
//! State lives in `<data dir>/notify/` (`nflog.json`, `silences.json`, `alerts.json`).

pub mod api;
pub mod config;
pub mod dispatch;
#[cfg(test)]
mod dispatch_tests;
pub mod forward;
pub mod http;
pub mod inhibit;
pub mod matchers;
pub mod nflog;
pub mod receivers;
pub mod route;
pub mod silence;
pub mod template;
pub mod timeinterval;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

pub use config::{AlertingConfig, NotifyConfig};
pub use dispatch::{Notifier, NotifierOptions};

/// Checks both configuration sections as [`Notifier::new`] would, without touching disk:
/// the error names the offending setting.
pub fn validate(cfg: &NotifyConfig, alerting: &AlertingConfig) -> Result<(), String> {
    Notifier::new(cfg, alerting, NotifierOptions::default()).map(|_| ())
}

/// Where the notifier reads the time; tests substitute a [`ManualClock`].
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(ms))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst)
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Alertmanager's alert fingerprint (Prometheus `LabelSet.Fingerprint`): FNV-1a 64 over the
/// sorted names and values, each followed by a 0xff separator.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    h
}

/// A fingerprint as Alertmanager prints it: 16 hex digits.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// RFC 3339 in UTC with milliseconds (`2024-05-01T10:00:00.000Z`); Go's zero time for 0 and
/// below, as Alertmanager prints an unset `endsAt`.
pub fn rfc3339(ms: i64) -> String {
    if ms <= 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    if s == "0001-01-01T00:00:00Z" {
        return Ok(0);
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("invalid time {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_alertmanager() {
        let l: BTreeMap<String, String> = [
            ("alertname", "HighLatency"),
            ("job", "api"),
            ("severity", "ticket"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // From the webhook example (/work/shared/conformance/alertmanager/webhook/resolved.json).
        assert_eq!(fingerprint_hex(fingerprint(&l)), "0ec33622b23349b8");
    }

    #[test]
    fn times_format_and_parse() {
        let ms = parse_rfc3339("2024-05-01T09:42:15.5Z").unwrap();
        assert_eq!(rfc3339(ms), "2024-05-01T09:42:15.500Z");
        assert_eq!(rfc3339(0), "0001-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Ok(0));
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
