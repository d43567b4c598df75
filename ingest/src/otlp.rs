//! OTLP metrics ingest: OTLP/gRPC (`opentelemetry.proto.collector.metrics.v1.MetricsService`)
//! and OTLP/HTTP (`POST /v1/metrics`, also under Prometheus' `/api/v1/otlp/v1/metrics`), with
//! protobuf or JSON bodies, optionally gzip-compressed.
//!
//! Answers per the OTLP specification: success (with `partial_success` when some data points
//! were refused; the others are stored); 400 for undecodable bodies; 415 for other content
//! types or encodings; 413 for oversized bodies; 503 (gRPC `UNAVAILABLE`) with `Retry-After`
//! until storage is open; 429 (gRPC `RESOURCE_EXHAUSTED`) with `Retry-After` when too many
//! requests are in flight. Logs (`/v1/logs`, gRPC `LogsService`) are stored once a log store is
//! attached ([`OtlpState::set_logs`]; mapping in [`logs`]) and answer 501 / `UNIMPLEMENTED`
//! without one; traces likewise (`/v1/traces`, gRPC `TraceService`, [`OtlpState::set_traces`];
//! decoding in [`traces`]).
//!
//! The conversion to the Prometheus model is in [`convert`], names in [`translate`].

pub mod convert;
pub mod grpc_raw;
pub mod json;
pub mod logs;
pub mod traces;
pub mod translate;
pub mod view;
pub mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use sextant_storage::Db;

use crate::loki::{LokiPushState, PushError};
pub use logs::OtlpLogsOptions;
use tokio::sync::Semaphore;

pub use convert::{convert, Arena, Converted, DeltaTracker, Samples};
pub use opentelemetry_proto::tonic::collector::metrics::v1 as proto_collector;
pub use opentelemetry_proto::tonic::metrics::v1 as proto_metrics;
pub use translate::NameTranslation;

/// OTLP settings.
#[derive(Clone, Debug)]
pub struct OtlpOptions {
    pub translation: NameTranslation,
    /// Resource attributes copied onto every series (besides `target_info`).
    pub promote_resource_attributes: Vec<String>,
    /// Largest accepted request body, after decompression (and largest gRPC message).
    pub max_body_bytes: usize,
    /// Requests processed at once; more answer 429 / `RESOURCE_EXHAUSTED`.
    pub max_concurrent_requests: usize,
    /// Delta streams idle this long are forgotten (their next point starts a new total).
    pub delta_stream_ttl: Duration,
}

impl Default for OtlpOptions {
    fn default() -> Self {
        OtlpOptions {
            translation: NameTranslation::default(),
            promote_resource_attributes: Vec::new(),
            max_body_bytes: 32 << 20,
            max_concurrent_requests: 64,
            delta_stream_ttl: Duration::from_secs(3600),
        }
    }
}

/// Seconds a client is asked to wait in `Retry-After`.
const RETRY_AFTER_SECONDS: u64 = 1;

/// Shared by the HTTP and gRPC endpoints. Storage is attached once it is open; until then
/// requests answer 503 / `UNAVAILABLE`.
pub struct OtlpState {
    db: OnceLock<Arc<Db>>,
    options: OtlpOptions,
    deltas: DeltaTracker,
    inflight: Semaphore,
    logs: OnceLock<LogsBackend>,
    traces: OnceLock<traces::TracesBackend>,
}

/// Where OTLP logs go: through the Loki push path (same validation, rate limit and store).
struct LogsBackend {
    push: Arc<LokiPushState>,
    options: OtlpLogsOptions,
}

impl OtlpState {
    pub fn new(options: OtlpOptions) -> Arc<OtlpState> {
        Arc::new(OtlpState {
            db: OnceLock::new(),
            deltas: DeltaTracker::new(options.delta_stream_ttl),
            inflight: Semaphore::new(options.max_concurrent_requests.max(1)),
            logs: OnceLock::new(),
            traces: OnceLock::new(),
            options,
        })
    }

    /// A state whose storage is already open.
    pub fn with_db(db: Arc<Db>, options: OtlpOptions) -> Arc<OtlpState> {
        let state = OtlpState::new(options);
        state.set_db(db);
        state
    }

    /// Attaches storage; requests are served from now on.
    pub fn set_db(&self, db: Arc<Db>) {
        let _ = self.db.set(db);
    }

    /// Attaches the log store (through the Loki push state, whose validation and rate limit
    /// OTLP logs share); `/v1/logs` and the gRPC logs service are served from now on.
    pub fn set_logs(&self, push: Arc<LokiPushState>, options: OtlpLogsOptions) {
        let _ = self.logs.set(LogsBackend { push, options });
    }

    /// Converts and stores decoded logs. Blocking (WAL I/O).
    pub fn export_logs_blocking(
        &self,
        req: &ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, OtlpError> {
        let backend = self.logs_backend()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
        let (streams, records) = logs::convert_logs(req, &backend.options, now);
        let refusals = backend.push.push_blocking(streams).map_err(|e| match e {
            PushError::NotReady => OtlpError::NotReady,
            PushError::RateLimited(m) => OtlpError::RateLimited(m),
            PushError::BadRequest(m) | PushError::UnsupportedEncoding(m) => {
                OtlpError::BadRequest(m)
            }
            PushError::TooLarge(m) => OtlpError::TooLarge(m),
            PushError::Internal(m) => OtlpError::Internal(m),
        })?;
        if refusals.is_empty() {
            return Ok(ExportLogsServiceResponse {
                partial_success: None,
            });
        }
        let rejected: usize = refusals.iter().map(|r| r.entries).sum();
        let reasons: Vec<String> = refusals
            .iter()
            .map(|r| format!("{}: {} ({})", r.reason, r.entries, r.message))
            .collect();
        Ok(ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: rejected.min(records) as i64,
                error_message: format!(
                    "rejected {rejected} of {records} log records: {}; the others were stored",
                    reasons.join("; ")
                ),
            }),
        })
    }

    fn logs_backend(&self) -> Result<&LogsBackend, OtlpError> {
        match self.logs.get() {
            Some(b) => Ok(b),
            None if self.db.get().is_none() => Err(OtlpError::NotReady),
            None => Err(OtlpError::Unimplemented(
                "Sextant has no log store configured; logs are not accepted".into(),
            )),
        }
    }

    pub fn options(&self) -> &OtlpOptions {
        &self.options
    }

    /// Decodes nothing: converts and stores an already decoded request (what both transports
    /// do after decoding). Blocking (CPU and WAL I/O).
    pub fn export_blocking(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse, OtlpError> {
        let db = self.db.get().ok_or(OtlpError::NotReady)?;
        export(db, &self.options, &self.deltas, req)
    }
}

/// Why a request was refused as a whole.
#[derive(Debug)]
pub enum OtlpError {
    NotReady,
    Overloaded,
    /// The log ingestion rate limit (shared with Loki push) was hit.
    RateLimited(String),
    /// The signal has no store.
    Unimplemented(String),
    BadRequest(String),
    UnsupportedMediaType(String),
    TooLarge(String),
    Internal(String),
}

impl OtlpError {
    pub fn http_status(&self) -> StatusCode {
        match self {
            OtlpError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            OtlpError::Overloaded | OtlpError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            OtlpError::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            OtlpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OtlpError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OtlpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OtlpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            OtlpError::NotReady => "storage is not ready yet; retry later".into(),
            OtlpError::Overloaded => "too many OTLP requests in flight; retry later".into(),
            OtlpError::BadRequest(m)
            | OtlpError::RateLimited(m)
            | OtlpError::Unimplemented(m)
            | OtlpError::UnsupportedMediaType(m)
            | OtlpError::TooLarge(m)
            | OtlpError::Internal(m) => m.clone(),
        }
    }

    fn grpc_status(&self) -> tonic::Status {
        let m = self.message();
        match self {
            OtlpError::NotReady => tonic::Status::unavailable(m),
            OtlpError::Overloaded | OtlpError::RateLimited(_) => {
                tonic::Status::resource_exhausted(m)
            }
            OtlpError::Unimplemented(_) => tonic::Status::unimplemented(m),
            OtlpError::BadRequest(_) | OtlpError::UnsupportedMediaType(_) => {
                tonic::Status::invalid_argument(m)
            }
            OtlpError::TooLarge(_) => tonic::Status::resource_exhausted(m),
            OtlpError::Internal(_) => tonic::Status::internal(m),
        }
    }

    fn grpc_code(&self) -> i32 {
        self.grpc_status().code() as i32
    }
}

/// Converts and stores a decoded request; the response carries `partial_success` when data
/// points were refused.
pub fn export(
    db: &Db,
    options: &OtlpOptions,
    deltas: &DeltaTracker,
    req: &ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, OtlpError> {
    with_arena(|arena| store(db, &convert(req, arena, options, deltas)))
}

thread_local! {
    /// This thread's conversion arena, kept between requests (see [`with_arena`]).
    static ARENA: std::cell::Cell<Option<Arena>> = const { std::cell::Cell::new(None) };
}

/// Arenas larger than this after a request are freed rather than kept for the next one.
const MAX_KEPT_ARENA_BYTES: usize = 16 << 20;

/// Runs `f` with this thread's conversion arena, then resets it for the next request: a
/// request's labels cost no allocation per series and no page faults once the thread has
/// converted a request of that size.
fn with_arena<R>(f: impl FnOnce(&Arena) -> R) -> R {
    let mut arena = ARENA.take().unwrap_or_default();
    let result = f(&arena);
    if arena.allocated_bytes() <= MAX_KEPT_ARENA_BYTES {
        arena.reset();
        ARENA.set(Some(arena));
    }
    result
}

/// Decodes a protobuf `ExportMetricsServiceRequest` body (borrowing from it, see [`wire`]),
/// converts and stores it: the work of an OTLP/HTTP protobuf request after decompression.
pub fn export_protobuf(
    db: &Db,
    options: &OtlpOptions,
    deltas: &DeltaTracker,
    raw: &[u8],
) -> Result<ExportMetricsServiceResponse, OtlpError> {
    let view = wire::decode(raw).map_err(|e| {
        OtlpError::BadRequest(format!(
            "body is not a protobuf ExportMetricsServiceRequest: {e}"
        ))
    })?;
    with_arena(|arena| store(db, &convert::convert_view(&view, arena, options, deltas)))
}

/// Appends converted series and metadata to storage and builds the response.
pub fn store(db: &Db, c: &Converted) -> Result<ExportMetricsServiceResponse, OtlpError> {
    for (family, meta) in &c.metadata {
        db.set_metadata(family, meta.clone());
    }
    let storage_err =
        |e: sextant_storage::StorageError| OtlpError::Internal(format!("storage error: {e}"));
    let floats = db
        .append_series(c.floats.iter().map(|(l, s)| (l, &s[..])))
        .map_err(storage_err)?;
    let hists = if c.histograms.is_empty() {
        Default::default()
    } else {
        db.append_histogram_series(c.histograms.iter().map(|(l, s)| (l, &s[..])))
            .map_err(storage_err)?
    };
    // Exemplars never refuse a request: drops are counted by reason, as for remote write.
    if !c.exemplars.is_empty() || c.invalid_exemplars > 0 {
        let ex = db
            .append_exemplars(c.exemplars.iter().map(|(l, e)| (l, e.as_slice())))
            .map_err(storage_err)?;
        crate::remote_write::count_exemplar_refusals(db, &ex, c.invalid_exemplars);
    }
    for (reason, n) in &c.rejected {
        db.metrics().reject(reason, *n as u64);
    }
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (r, n) in floats.rejected.iter().chain(&hists.rejected) {
        *by_reason.entry(r.as_str()).or_default() += n;
    }
    let storage_rejected: usize = by_reason.values().sum();
    let converted_rejected = c.rejected_points();
    if storage_rejected == 0 && converted_rejected == 0 {
        return Ok(ExportMetricsServiceResponse {
            partial_success: None,
        });
    }
    let mut parts: Vec<String> = Vec::new();
    if converted_rejected > 0 {
        let reasons: Vec<String> = c
            .rejected
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        parts.push(format!(
            "rejected {converted_rejected} of {} data points ({})",
            c.points,
            reasons.join(", ")
        ));
    }
    if storage_rejected > 0 {
        let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        parts.push(format!(
            "storage refused {storage_rejected} of {} samples ({})",
            c.num_samples(),
            reasons.join(", ")
        ));
    }
    Ok(ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            // A refused sample is counted as one refused data point (a classic histogram point
            // is several samples, so this may over-count such points).
            rejected_data_points: (converted_rejected + storage_rejected.min(c.points)) as i64,
            error_message: parts.join("; ") + "; the others were stored",
        }),
    })
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The OTLP/HTTP routes: `/v1/metrics` and `/api/v1/otlp/v1/metrics`, `/v1/logs` (501 without
/// a log store), `/v1/traces` (501 without a trace store).
pub fn http_router(state: Arc<OtlpState>) -> Router {
    // Compressed bodies are never larger than the decompressed limit allows (plus framing).
    let limit = state.options.max_body_bytes.saturating_add(1024);
    Router::new()
        .route("/v1/metrics", post(http_metrics))
        .route("/api/v1/otlp/v1/metrics", post(http_metrics))
        .route("/v1/logs", post(http_logs))
        .route("/v1/traces", post(traces::http_traces))
        .route("/api/v1/otlp/v1/logs", post(http_logs))
        .route("/api/v1/otlp/v1/traces", post(traces::http_traces))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn content_format(headers: &HeaderMap) -> Result<Format, OtlpError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ct.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        other => Err(OtlpError::UnsupportedMediaType(format!(
            "unsupported content type {other:?}: OTLP/HTTP expects application/x-protobuf or application/json"
        ))),
    }
}

fn status_response(status: StatusCode, format: Format, code: i32, message: &str) -> Response {
    let mut resp = match format {
        Format::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            RpcStatus {
                code,
                message: message.to_string(),
            }
            .encode_to_vec(),
        )
            .into_response(),
        Format::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "code": code, "message": message }).to_string(),
        )
            .into_response(),
    };
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    resp
}

fn error_response(e: &OtlpError, format: Format) -> Response {
    tracing::warn!(status = e.http_status().as_u16(), error = %e.message(), "OTLP request refused");
    status_response(e.http_status(), format, e.grpc_code(), &e.message())
}

async fn http_metrics(
    State(state): State<Arc<OtlpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match content_format(&headers) {
        Ok(f) => f,
        Err(e) => return error_response(&e, Format::Json),
    };
    match handle_http(&state, &headers, format, body).await {
        Ok(resp) => {
            let (ct, bytes) = match format {
                Format::Protobuf => ("application/x-protobuf", resp.encode_to_vec()),
                Format::Json => ("application/json", response_json(&resp).into_bytes()),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, ct)], bytes).into_response()
        }
        Err(e) => error_response(&e, format),
    }
}

fn response_json(resp: &ExportMetricsServiceResponse) -> String {
    match &resp.partial_success {
        None => "{}".to_string(),
        Some(p) => serde_json::json!({
            "partialSuccess": {
                "rejectedDataPoints": p.rejected_data_points.to_string(),
                "errorMessage": p.error_message,
            }
        })
        .to_string(),
    }
}

async fn handle_http(
    state: &Arc<OtlpState>,
    headers: &HeaderMap,
    format: Format,
    body: Bytes,
) -> Result<ExportMetricsServiceResponse, OtlpError> {
    if state.db.get().is_none() {
        return Err(OtlpError::NotReady);
    }
    let permit = state
        .inflight
        .try_acquire()
        .map_err(|_| OtlpError::Overloaded)?;
    let gzip = is_gzip(headers)?;
    let state = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let raw = decompress(body, gzip, state.options.max_body_bytes)?;
        match format {
            // Protobuf bodies are decoded borrowed (`wire.rs`), without building prost messages.
            Format::Protobuf => {
                let db = state.db.get().ok_or(OtlpError::NotReady)?;
                export_protobuf(db, &state.options, &state.deltas, &raw)
            }
            Format::Json => state.export_blocking(&decode_body(&raw, format)?),
        }
    })
    .await
    .map_err(|e| OtlpError::Internal(format!("OTLP task failed: {e}")))?;
    drop(permit);
    result
}

fn decompress(body: Bytes, gzip: bool, max: usize) -> Result<Bytes, OtlpError> {
    if gzip {
        Ok(Bytes::from(gunzip(&body, max)?))
    } else if body.len() > max {
        Err(too_large(max))
    } else {
        Ok(body)
    }
}

async fn http_logs(
    State(state): State<Arc<OtlpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match content_format(&headers) {
        Ok(f) => f,
        Err(e) => return error_response(&e, Format::Json),
    };
    let result = async {
        state.logs_backend()?;
        let permit = state
            .inflight
            .try_acquire()
            .map_err(|_| OtlpError::Overloaded)?;
        let gzip = is_gzip(&headers)?;
        let state = state.clone();
        let result = tokio::task::spawn_blocking(move || {
            let raw = decompress(body, gzip, state.options.max_body_bytes)?;
            let req = match format {
                Format::Protobuf => {
                    ExportLogsServiceRequest::decode(raw.as_ref()).map_err(|e| {
                        OtlpError::BadRequest(format!(
                            "body is not a protobuf ExportLogsServiceRequest: {e}"
                        ))
                    })?
                }
                Format::Json => json::decode_logs(&raw).map_err(|e| {
                    OtlpError::BadRequest(format!(
                        "body is not a JSON ExportLogsServiceRequest: {e}"
                    ))
                })?,
            };
            state.export_logs_blocking(&req)
        })
        .await
        .map_err(|e| OtlpError::Internal(format!("OTLP task failed: {e}")))?;
        drop(permit);
        result
    }
    .await;
    match result {
        Ok(resp) => {
            let (ct, bytes) = match format {
                Format::Protobuf => ("application/x-protobuf", resp.encode_to_vec()),
                Format::Json => {
                    let json = match &resp.partial_success {
                        None => "{}".to_string(),
                        Some(p) => serde_json::json!({
                            "partialSuccess": {
                                "rejectedLogRecords": p.rejected_log_records.to_string(),
                                "errorMessage": p.error_message,
                            }
                        })
                        .to_string(),
                    };
                    ("application/json", json.into_bytes())
                }
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, ct)], bytes).into_response()
        }
        Err(e) => error_response(&e, format),
    }
}

fn is_gzip(headers: &HeaderMap) -> Result<bool, OtlpError> {
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(OtlpError::UnsupportedMediaType(format!(
                "unsupported content encoding {other:?}: OTLP/HTTP accepts gzip or none"
            )))
        }
    };
    Ok(gzip)
}

fn too_large(max: usize) -> OtlpError {
    OtlpError::TooLarge(format!(
        "request body exceeds the limit of {max} bytes (otlp.max_body_bytes)"
    ))
}

/// Inflates a gzip body, refusing more than `max` bytes of output.
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, OtlpError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let mut reader = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| OtlpError::BadRequest(format!("body is not valid gzip: {e}")))?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

fn decode_body(raw: &[u8], format: Format) -> Result<ExportMetricsServiceRequest, OtlpError> {
    match format {
        Format::Protobuf => ExportMetricsServiceRequest::decode(raw).map_err(|e| {
            OtlpError::BadRequest(format!(
                "body is not a protobuf ExportMetricsServiceRequest: {e}"
            ))
        }),
        Format::Json => json::decode(raw).map_err(|e| {
            OtlpError::BadRequest(format!(
                "body is not a JSON ExportMetricsServiceRequest: {e}"
            ))
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP/gRPC

struct GrpcLogs {
    state: Arc<OtlpState>,
}

#[tonic::async_trait]
impl LogsService for GrpcLogs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let fail = |e: OtlpError| {
            tracing::warn!(error = %e.message(), "OTLP/gRPC logs request refused");
            e.grpc_status()
        };
        self.state.logs_backend().map_err(fail)?;
        let permit = self
            .state
            .inflight
            .try_acquire()
            .map_err(|_| fail(OtlpError::Overloaded))?;
        let state = self.state.clone();
        let req = request.into_inner();
        let result = tokio::task::spawn_blocking(move || state.export_logs_blocking(&req))
            .await
            .map_err(|e| fail(OtlpError::Internal(format!("OTLP task failed: {e}"))))?;
        drop(permit);
        result.map(tonic::Response::new).map_err(fail)
    }
}

/// The gRPC logs service; answers `UNIMPLEMENTED` while no log store is attached.
pub fn grpc_logs_service(state: Arc<OtlpState>) -> LogsServiceServer<impl LogsService> {
    let max = state.options.max_body_bytes;
    LogsServiceServer::new(GrpcLogs { state })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

/// The gRPC metrics service (gzip accepted, messages up to `max_body_bytes`); requests are
/// decoded borrowed from their bytes, as OTLP/HTTP bodies are (see [`grpc_raw`]).
pub fn grpc_service(state: Arc<OtlpState>) -> grpc_raw::RawMetricsService {
    grpc_raw::RawMetricsService::new(state)
}

/// Answers an oversized message with `RESOURCE_EXHAUSTED`, as the OTLP specification asks,
/// instead of the `OUT_OF_RANGE` tonic gives when a message exceeds the decoding limit (before
/// our service runs; our service never answers `OUT_OF_RANGE` itself). The message is kept.
fn oversized_is_resource_exhausted<B>(
    mut response: axum::http::Response<B>,
) -> axum::http::Response<B> {
    const OUT_OF_RANGE: &str = "11";
    const RESOURCE_EXHAUSTED: &str = "8";
    let headers = response.headers_mut();
    if headers
        .get(tonic::Status::GRPC_STATUS)
        .is_some_and(|v| v == OUT_OF_RANGE)
    {
        headers.insert(
            tonic::Status::GRPC_STATUS,
            HeaderValue::from_static(RESOURCE_EXHAUSTED),
        );
        response.extensions_mut().remove::<tonic::Status>();
    }
    response
}

/// HTTP/2 flow-control windows and largest frame of the OTLP/gRPC server (bytes).
const GRPC_STREAM_WINDOW: u32 = 4 << 20;
const GRPC_CONNECTION_WINDOW: u32 = 16 << 20;
const GRPC_MAX_FRAME: u32 = 256 << 10;

/// Serves OTLP/gRPC on `listener` until `shutdown` completes: metrics, logs and traces (logs
/// and traces answer `UNIMPLEMENTED` without their store).
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    state: Arc<OtlpState>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        // Exporters send batches of hundreds of KiB: windows of a few such messages per
        // stream and connection, and frames larger than h2's 16 KiB default, cut the
        // WINDOW_UPDATE round trips and the per-frame work of receiving one.
        .initial_stream_window_size(Some(GRPC_STREAM_WINDOW))
        .initial_connection_window_size(Some(GRPC_CONNECTION_WINDOW))
        .max_frame_size(Some(GRPC_MAX_FRAME))
        .layer(tower::util::MapResponseLayer::new(
            oversized_is_resource_exhausted,
        ))
        .add_service(grpc_service(state.clone()))
        .add_service(grpc_logs_service(state.clone()))
        .add_service(traces::grpc_traces_service(state))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests;
