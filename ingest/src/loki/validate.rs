//! Push validation as Loki's distributor does it: per-stream label checks, per-entry line
//! size and time window, and the per-tenant ingestion rate (a token bucket over line bytes).
//! Refusals carry Loki's reason names (the `reason` label of `loki_discarded_samples_total`)
//! and message texts.

use std::time::Instant;

use sextant_storage::logs::LogStreamBatch;

use super::decode::PushStream;
use super::LokiPushOptions;

/// Entries refused for one reason, with the message a client sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Loki's reason name, e.g. `line_too_long`.
    pub reason: String,
    /// Entries refused.
    pub entries: usize,
    /// Line bytes refused.
    pub bytes: usize,
    /// Loki's message text for the first refused entry.
    pub message: String,
}

/// The valid part of a request and what was refused.
#[derive(Debug, Default)]
pub struct Validated {
    pub batches: Vec<LogStreamBatch>,
    pub refusals: Vec<Refusal>,
    pub entries: usize,
    pub bytes: usize,
}

/// Splits decoded streams into what may be stored and what is refused, with `now_ns` as the
/// reference for the time window.
pub fn validate(streams: Vec<PushStream>, opts: &LokiPushOptions, now_ns: i64) -> Validated {
    let mut out = Validated::default();
    for stream in streams {
        let n = stream.entries.len();
        let bytes: usize = stream.entries.iter().map(|e| e.line.len()).sum();
        if n == 0 {
            continue;
        }
        let labels = match stream.labels {
            Ok(l) => l,
            Err(e) => {
                out.refuse(
                    "invalid_labels",
                    n,
                    bytes,
                    format!(
                        "error parsing labels '{}' with error: {e}",
                        stream.labels_text
                    ),
                );
                continue;
            }
        };
        let shown = labels.to_string();
        if labels.is_empty() {
            out.refuse(
                "missing_labels",
                n,
                bytes,
                "error at least one label pair is required per stream".into(),
            );
            continue;
        }
        if opts.max_label_names_per_series > 0 && labels.len() > opts.max_label_names_per_series {
            out.refuse(
                "max_label_names_per_series",
                n,
                bytes,
                format!(
                    "entry for stream '{shown}' has {} label names; limit {}",
                    labels.len(),
                    opts.max_label_names_per_series
                ),
            );
            continue;
        }
        if let Some(l) = labels
            .iter()
            .find(|l| l.name.len() > opts.max_label_name_length)
        {
            out.refuse(
                "label_name_too_long",
                n,
                bytes,
                format!("stream '{shown}' has label name too long: '{}'", l.name),
            );
            continue;
        }
        if let Some(l) = labels
            .iter()
            .find(|l| l.value.len() > opts.max_label_value_length)
        {
            out.refuse(
                "label_value_too_long",
                n,
                bytes,
                format!("stream '{shown}' has label value too long: '{}'", l.value),
            );
            continue;
        }
        let oldest = opts
            .reject_old_samples_max_age
            .map(|d| now_ns.saturating_sub(d.as_nanos().min(i64::MAX as u128) as i64));
        let newest = now_ns
            .saturating_add(opts.creation_grace_period.as_nanos().min(i64::MAX as u128) as i64);
        let mut kept = Vec::with_capacity(n);
        for entry in stream.entries {
            let len = entry.line.len();
            if opts.max_line_bytes > 0 && len > opts.max_line_bytes {
                out.refuse(
                    "line_too_long",
                    1,
                    len,
                    format!(
                        "Max entry size '{}' bytes exceeded for stream '{shown}' while adding an entry with length '{len}' bytes",
                        opts.max_line_bytes
                    ),
                );
            } else if oldest.is_some_and(|o| entry.ts_ns < o) {
                out.refuse(
                    "greater_than_max_sample_age",
                    1,
                    len,
                    format!(
                        "entry for stream '{shown}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                        rfc3339(entry.ts_ns),
                        rfc3339(oldest.unwrap_or_default())
                    ),
                );
            } else if entry.ts_ns > newest {
                out.refuse(
                    "too_far_in_future",
                    1,
                    len,
                    format!(
                        "entry for stream '{shown}' has timestamp too new: {}",
                        rfc3339(entry.ts_ns)
                    ),
                );
            } else {
                out.entries += 1;
                out.bytes += len;
                kept.push(entry);
            }
        }
        if !kept.is_empty() {
            out.batches.push(LogStreamBatch {
                labels,
                entries: kept,
            });
        }
    }
    out
}

impl Validated {
    fn refuse(&mut self, reason: &str, entries: usize, bytes: usize, message: String) {
        if let Some(r) = self.refusals.iter_mut().find(|r| r.reason == reason) {
            r.entries += entries;
            r.bytes += bytes;
            return;
        }
        self.refusals.push(Refusal {
            reason: reason.to_string(),
            entries,
            bytes,
            message,
        });
    }
}

/// Formats nanoseconds as RFC 3339 (UTC, fraction as needed).
pub fn rfc3339(ts_ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ts_ns)) {
        Ok(t) => t.to_string(),
        Err(_) => ts_ns.to_string(),
    }
}

/// A token bucket over bytes: `rate` bytes per second refill, at most `burst` stored.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` ≤ 0 disables limiting.
    pub fn new(rate_bytes_per_sec: f64, burst_bytes: f64) -> RateLimiter {
        RateLimiter {
            rate: rate_bytes_per_sec,
            burst: burst_bytes.max(rate_bytes_per_sec),
            tokens: burst_bytes.max(rate_bytes_per_sec),
            last: Instant::now(),
        }
    }

    /// Takes `bytes` tokens if available at `now`; false (and nothing taken) otherwise.
    pub fn allow_at(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        let need = bytes as f64;
        if need <= self.tokens {
            self.tokens -= need;
            true
        } else {
            false
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::decode::parse_labels;
    use sextant_storage::logs::LogEntry;
    use std::time::Duration;

    const NOW: i64 = 1_714_557_600_000_000_000;

    fn entry(ts_ns: i64, line: &str) -> LogEntry {
        LogEntry {
            ts_ns,
            line: line.into(),
            metadata: Vec::new(),
        }
    }

    fn stream(labels: &str, entries: Vec<LogEntry>) -> PushStream {
        PushStream {
            labels_text: labels.into(),
            labels: parse_labels(labels),
            entries,
        }
    }

    #[test]
    fn refuses_per_entry_and_keeps_the_rest() {
        let opts = LokiPushOptions {
            max_line_bytes: 10,
            ..LokiPushOptions::default()
        };
        let v = validate(
            vec![stream(
                r#"{job="a"}"#,
                vec![
                    entry(NOW, "short"),
                    entry(NOW, "this line is too long"),
                    entry(NOW - 8 * 24 * 3600 * 1_000_000_000, "old"),
                    entry(NOW + 3600 * 1_000_000_000, "future"),
                    entry(NOW + 1, "ok"),
                ],
            )],
            &opts,
            NOW,
        );
        assert_eq!(v.batches.len(), 1);
        let lines: Vec<&str> = v.batches[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(lines, ["short", "ok"]);
        assert_eq!(v.entries, 2);
        let reasons: Vec<(&str, usize)> = v
            .refusals
            .iter()
            .map(|r| (r.reason.as_str(), r.entries))
            .collect();
        assert_eq!(
            reasons,
            [
                ("line_too_long", 1),
                ("greater_than_max_sample_age", 1),
                ("too_far_in_future", 1)
            ]
        );
        assert_eq!(
            v.refusals[0].message,
            "Max entry size '10' bytes exceeded for stream '{job=\"a\"}' while adding an entry with length '21' bytes"
        );
        assert!(v.refusals[1]
            .message
            .starts_with("entry for stream '{job=\"a\"}' has timestamp too old: 2024-04-23T10:00:00Z, oldest acceptable timestamp is: 2024-04-24T10:00:00Z"),
            "{}", v.refusals[1].message);
    }

    #[test]
    fn refuses_whole_streams_for_label_problems() {
        let opts = LokiPushOptions {
            max_label_names_per_series: 2,
            reject_old_samples_max_age: None,
            ..LokiPushOptions::default()
        };
        let v = validate(
            vec![
                stream("{job=}", vec![entry(NOW, "a")]),
                stream("{}", vec![entry(NOW, "b")]),
                stream(r#"{a="1",b="2",c="3"}"#, vec![entry(NOW, "c")]),
                stream(r#"{job="fine"}"#, vec![entry(1, "d")]),
            ],
            &opts,
            NOW,
        );
        assert_eq!(v.batches.len(), 1);
        assert_eq!(v.batches[0].labels.get("job"), Some("fine"));
        let reasons: Vec<&str> = v.refusals.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "invalid_labels",
                "missing_labels",
                "max_label_names_per_series"
            ]
        );
        assert!(v.refusals[0]
            .message
            .starts_with("error parsing labels '{job=}' with error: parse error"));
        assert_eq!(
            v.refusals[2].message,
            "entry for stream '{a=\"1\", b=\"2\", c=\"3\"}' has 3 label names; limit 2"
        );
    }

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(100.0, 150.0);
        r.last = t0;
        assert!(r.allow_at(150, t0));
        assert!(!r.allow_at(1, t0));
        assert!(!r.allow_at(60, t0 + Duration::from_millis(500)));
        assert!(r.allow_at(50, t0 + Duration::from_millis(500)));
        assert!(RateLimiter::new(0.0, 0.0).allow_at(usize::MAX, t0));
    }
}
