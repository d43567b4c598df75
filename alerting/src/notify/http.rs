//! POSTing JSON to receivers with retries: exponential backoff with jitter for transport
//! errors, 5xx and 429 (honouring `Retry-After` seconds when given), no retry for other 4xx,
//! and an overall deadline.

use std::time::{Duration, Instant};

use super::config::HttpClientConfig;

/// Backoff settings. The n-th retry waits `initial × multiplier^(n-1)`, capped at `max`,
/// scaled by a random factor in `[1 - jitter, 1 + jitter]`.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    pub jitter: f64,
    /// No new attempt starts after this much time since the first.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            deadline: Duration::from_secs(5 * 60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `n` (1-based), jitter included.
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.initial.as_secs_f64() * self.multiplier.powi(n.saturating_sub(1) as i32);
        let capped = base.min(self.max.as_secs_f64());
        let factor = 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        Duration::from_secs_f64((capped * factor).max(0.0))
    }
}

/// Why a delivery failed for good.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{url}: unexpected status {status} (not retried): {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
}

/// POSTs `body` as JSON to `url`; each attempt limited by `timeout`.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
    auth: &HttpClientConfig,
    policy: &RetryPolicy,
) -> Result<(), DeliveryError> {
    let started = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let mut req = client
            .post(url)
            .header(
                reqwest::header::USER_AGENT,
                concat!("Sextant/", env!("CARGO_PKG_VERSION")),
            )
            .json(body)
            .timeout(timeout);
        if let Some(b) = &auth.basic_auth {
            req = req.basic_auth(&b.username, Some(&b.password));
        }
        if let Some(a) = &auth.authorization {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("{} {}", a.kind, a.credentials),
            );
        } else if let Some(t) = &auth.bearer_token {
            req = req.bearer_auth(t);
        }
        let result = req.send().await;
        let (last, retry_after) = match result {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Ok(());
                }
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = resp.text().await.unwrap_or_default();
                let text: String = text.chars().take(512).collect();
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return Err(DeliveryError::Rejected {
                        url: url.to_string(),
                        status: status.as_u16(),
                        body: text,
                    });
                }
                (format!("status {}: {text}", status.as_u16()), retry_after)
            }
            Err(e) => (format!("{e}"), None),
        };
        let wait = retry_after
            .map(|d| d.min(policy.max))
            .unwrap_or_else(|| policy.backoff(attempt));
        if started.elapsed() + wait > policy.deadline {
            return Err(DeliveryError::Exhausted {
                url: url.to_string(),
                attempts: attempt,
                last,
            });
        }
        tracing::debug!(url, attempt, error = %last, wait_ms = wait.as_millis() as u64, "notification attempt failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_bounded_jitter() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 2.0,
            jitter: 0.5,
            deadline: Duration::from_secs(10),
        };
        for _ in 0..50 {
            let first = p.backoff(1).as_millis();
            assert!((50..=150).contains(&first), "{first}");
            let third = p.backoff(3).as_millis();
            assert!((200..=600).contains(&third), "{third}");
            let capped = p.backoff(20).as_millis();
            assert!((500..=1500).contains(&capped), "{capped}");
        }
    }
}
