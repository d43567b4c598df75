//! Loki's push API: `POST /loki/api/v1/push` (and the legacy `/api/prom/push`).
//!
//! Bodies: protobuf `logproto.PushRequest`, snappy block-compressed (any content type but
//! `application/json`, as Loki), or JSON (v1 `stream`/`values` or legacy `labels`/`entries`);
//! `Content-Encoding: gzip`/`deflate`/`snappy` accepted. Answers as Loki: 204 when everything
//! was stored; 400 with a plain-text body for undecodable bodies and for refused streams or
//! entries (one line per refusal reason; the valid part is stored anyway); 429 when the
//! ingestion rate limit is hit (nothing stored); 413 past the body limit; 503 until a log store
//! is attached.
//!
//! Decoding is [`decode`], Loki's validation rules and messages [`validate`], wire types
//! [`proto`]. Storing goes through [`LogSink`], so the handler does not depend on the store's
//! types.

pub mod decode;
pub mod proto;
pub mod validate;

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sextant_storage::logs::LogStreamBatch;

pub use decode::{decode_json, decode_protobuf, parse_labels, PushStream};
pub use validate::{RateLimiter, Refusal, Validated};

/// Where validated streams go: the log store (or a test double). Implementations write
/// durably before returning and report entries they refused themselves (e.g. outside their
/// accepted time window) as [`Refusal`]s; everything not refused is stored.
pub trait LogSink: Send + Sync {
    fn append_logs(&self, batches: &[LogStreamBatch]) -> Result<Vec<Refusal>, String>;
}

/// The log store stores what validation let through; its own refusals (e.g. `too_far_behind`
/// for entries older than a stream's out-of-order window) come back as [`Refusal`]s.
impl LogSink for sextant_storage::logs::LogStore {
    fn append_logs(&self, batches: &[LogStreamBatch]) -> Result<Vec<Refusal>, String> {
        let outcome = self
            .append(batches)
            .map_err(|e| format!("log storage error: {e}"))?;
        let mut refusals: Vec<Refusal> = Vec::new();
        for r in outcome.rejected {
            let reason = r.reason.as_str();
            match refusals.iter_mut().find(|x| x.reason == reason) {
                Some(x) => {
                    x.entries += r.entries as usize;
                    x.bytes += r.bytes as usize;
                }
                None => refusals.push(Refusal {
                    reason: reason.to_string(),
                    entries: r.entries as usize,
                    bytes: r.bytes as usize,
                    message: r.message,
                }),
            }
        }
        Ok(refusals)
    }
}

/// Push limits; the defaults are Loki's.
#[derive(Clone, Debug)]
pub struct LokiPushOptions {
    /// Longest accepted line in bytes (`max_line_size`, 256 KB); 0 = unlimited.
    pub max_line_bytes: usize,
    /// Most labels per stream (`max_label_names_per_series`, 15); 0 = unlimited.
    pub max_label_names_per_series: usize,
    /// Longest label name (`max_label_name_length`, 1024).
    pub max_label_name_length: usize,
    /// Longest label value (`max_label_value_length`, 2048).
    pub max_label_value_length: usize,
    /// Entries older than this are refused (`reject_old_samples_max_age`, 1 week); `None`
    /// accepts any age (the store may still refuse).
    pub reject_old_samples_max_age: Option<Duration>,
    /// Entries newer than now plus this are refused (`creation_grace_period`, 10 minutes).
    pub creation_grace_period: Duration,
    /// Ingestion rate in line bytes per second (`ingestion_rate_mb`, 4 MB); 0 = unlimited.
    pub ingestion_rate_bytes: f64,
    /// Burst size in bytes (`ingestion_burst_size_mb`, 6 MB).
    pub ingestion_burst_bytes: f64,
    /// Largest accepted body after decompression.
    pub max_body_bytes: usize,
}

impl Default for LokiPushOptions {
    fn default() -> Self {
        LokiPushOptions {
            max_line_bytes: 256 * 1024,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            creation_grace_period: Duration::from_secs(600),
            ingestion_rate_bytes: 4.0 * 1024.0 * 1024.0,
            ingestion_burst_bytes: 6.0 * 1024.0 * 1024.0,
            max_body_bytes: 64 << 20,
        }
    }
}

/// Shared state of the push handler. The sink is attached once storage is open.
pub struct LokiPushState {
    sink: OnceLock<Arc<dyn LogSink>>,
    options: LokiPushOptions,
    limiter: Mutex<RateLimiter>,
    metrics: PushMetrics,
}

/// Push counters, cheap to clone: lines stored, and lines and bytes refused by reason
/// (Loki's `loki_discarded_samples_total` / `loki_discarded_bytes_total`).
#[derive(Clone, Debug, Default)]
pub struct PushMetrics {
    pub lines_received: Counter,
    pub lines_discarded: Family<Vec<(String, String)>, Counter>,
    pub bytes_discarded: Family<Vec<(String, String)>, Counter>,
}

impl PushMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sextant_log_lines_received",
            "Log lines accepted by validation (Loki push and OTLP logs)",
            self.lines_received.clone(),
        );
        registry.register(
            "sextant_log_lines_discarded",
            "Log lines refused, by Loki's reason name",
            self.lines_discarded.clone(),
        );
        registry.register(
            "sextant_log_bytes_discarded",
            "Line bytes of refused log lines, by Loki's reason name",
            self.bytes_discarded.clone(),
        );
    }

    fn discard(&self, reason: &str, lines: usize, bytes: usize) {
        let key = vec![("reason".to_string(), reason.to_string())];
        self.lines_discarded
            .get_or_create(&key)
            .inc_by(lines as u64);
        self.bytes_discarded
            .get_or_create(&key)
            .inc_by(bytes as u64);
    }
}

impl LokiPushState {
    pub fn new(options: LokiPushOptions) -> Arc<LokiPushState> {
        Arc::new(LokiPushState {
            sink: OnceLock::new(),
            limiter: Mutex::new(RateLimiter::new(
                options.ingestion_rate_bytes,
                options.ingestion_burst_bytes,
            )),
            options,
            metrics: PushMetrics::default(),
        })
    }

    pub fn metrics(&self) -> &PushMetrics {
        &self.metrics
    }

    /// Attaches the store; pushes are served from now on.
    pub fn set_sink(&self, sink: Arc<dyn LogSink>) {
        let _ = self.sink.set(sink);
    }

    pub fn options(&self) -> &LokiPushOptions {
        &self.options
    }

    /// Validates, rate-limits and stores decoded streams (blocking: the sink writes the WAL).
    pub fn push_blocking(&self, streams: Vec<PushStream>) -> Result<Vec<Refusal>, PushError> {
        let sink = self.sink.get().ok_or(PushError::NotReady)?;
        let v = validate::validate(streams, &self.options, now_ns());
        if v.entries > 0 && !self.limiter.lock().allow_at(v.bytes, Instant::now()) {
            self.metrics.discard("rate_limited", v.entries, v.bytes);
            for r in &v.refusals {
                self.metrics.discard(&r.reason, r.entries, r.bytes);
            }
            return Err(PushError::RateLimited(format!(
                "Ingestion rate limit exceeded for user fake (limit: {} bytes/sec) while attempting to ingest '{}' lines totaling '{}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
                self.options.ingestion_rate_bytes as u64, v.entries, v.bytes
            )));
        }
        let mut refusals = v.refusals;
        let mut store_refused = 0;
        if !v.batches.is_empty() {
            let from_store = sink.append_logs(&v.batches).map_err(PushError::Internal)?;
            store_refused = from_store.iter().map(|r| r.entries).sum();
            refusals.extend(from_store);
        }
        for r in &refusals {
            self.metrics.discard(&r.reason, r.entries, r.bytes);
        }
        self.metrics
            .lines_received
            .inc_by(v.entries.saturating_sub(store_refused) as u64);
        Ok(refusals)
    }
}

/// Why a push was refused as a whole.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    NotReady,
    BadRequest(String),
    RateLimited(String),
    TooLarge(String),
    UnsupportedEncoding(String),
    Internal(String),
}

impl PushError {
    pub fn status(&self) -> StatusCode {
        match self {
            PushError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            PushError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PushError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            PushError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PushError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PushError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            PushError::NotReady => "log storage is not ready yet; retry later",
            PushError::BadRequest(m)
            | PushError::RateLimited(m)
            | PushError::TooLarge(m)
            | PushError::UnsupportedEncoding(m)
            | PushError::Internal(m) => m,
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// The push routes: `/loki/api/v1/push` and `/api/prom/push`.
pub fn router(state: Arc<LokiPushState>) -> Router {
    let limit = state.options.max_body_bytes.saturating_add(1024);
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/api/prom/push", post(push))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body + "\n",
    )
        .into_response()
}

async fn push(
    State(state): State<Arc<LokiPushState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state2 = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let streams = decode_request(&headers, &body, state2.options.max_body_bytes)?;
        state2.push_blocking(streams)
    })
    .await
    .unwrap_or_else(|e| Err(PushError::Internal(format!("push task failed: {e}"))));
    match result {
        Ok(refusals) if refusals.is_empty() => StatusCode::NO_CONTENT.into_response(),
        Ok(refusals) => {
            let lines: Vec<String> = refusals
                .iter()
                .map(|r| {
                    if r.entries > 1 {
                        format!(
                            "{} (and {} more entries refused as {})",
                            r.message,
                            r.entries - 1,
                            r.reason
                        )
                    } else {
                        r.message.clone()
                    }
                })
                .collect();
            tracing::debug!(refused = ?refusals, "Loki push partially refused");
            text(StatusCode::BAD_REQUEST, lines.join("\n"))
        }
        Err(e) => {
            tracing::warn!(status = e.status().as_u16(), error = %e.message(), "Loki push refused");
            let mut resp = text(e.status(), e.message().to_string());
            if matches!(e, PushError::NotReady | PushError::RateLimited(_)) {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(1u32));
            }
            resp
        }
    }
}

/// Decompresses and decodes a push body per its `Content-Type` and `Content-Encoding`.
pub fn decode_request(
    headers: &HeaderMap,
    body: &[u8],
    max: usize,
) -> Result<Vec<PushStream>, PushError> {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let is_json = content_type.split(';').next().unwrap_or("").trim() == "application/json";
    let encoding = header_str(header::CONTENT_ENCODING);
    let mut snappy_done = false;
    let raw: Vec<u8> = match encoding.as_str() {
        "" | "identity" => body.to_vec(),
        "gzip" | "x-gzip" => inflate(flate2::read::GzDecoder::new(body), max, "gzip")?,
        "deflate" => inflate(flate2::read::ZlibDecoder::new(body), max, "deflate")?,
        "snappy" => {
            snappy_done = true;
            unsnappy(body, max)?
        }
        other => {
            return Err(PushError::UnsupportedEncoding(format!(
                "Content-Encoding {other:?} not supported"
            )))
        }
    };
    if raw.len() > max {
        return Err(too_large(max));
    }
    if is_json {
        return decode_json(&raw).map_err(PushError::BadRequest);
    }
    if snappy_done {
        return decode_protobuf(&raw).map_err(PushError::BadRequest);
    }
    // Loki's protobuf bodies are always snappy block-compressed; an uncompressed body is
    // accepted too when it is not valid snappy.
    match unsnappy(&raw, max) {
        Ok(inner) => decode_protobuf(&inner).map_err(PushError::BadRequest),
        Err(PushError::TooLarge(m)) => Err(PushError::TooLarge(m)),
        Err(snappy_err) => decode_protobuf(&raw).map_err(|_| snappy_err),
    }
}

fn too_large(max: usize) -> PushError {
    PushError::TooLarge(format!(
        "request body too large: more than {max} bytes after decompression"
    ))
}

fn inflate(reader: impl Read, max: usize, what: &str) -> Result<Vec<u8>, PushError> {
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| PushError::BadRequest(format!("body is not valid {what}: {e}")))?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

fn unsnappy(body: &[u8], max: usize) -> Result<Vec<u8>, PushError> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| PushError::BadRequest(format!("failed to decode snappy body: {e}")))?;
    // Snappy expands at most about 22× (a 3-byte copy of 64 bytes); a larger claimed length
    // means the body is not snappy at all.
    if len > body.len().saturating_mul(32).saturating_add(64) {
        return Err(PushError::BadRequest(format!(
            "failed to decode snappy body: claimed length {len} is impossible for {} bytes",
            body.len()
        )));
    }
    if len > max {
        return Err(too_large(max));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| PushError::BadRequest(format!("failed to decode snappy body: {e}")))
}

#[cfg(test)]
mod tests;
