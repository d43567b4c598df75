//! `POST /api/v1/write`: Prometheus remote write 1.0 (snappy-compressed protobuf).
//!
//! Answers 204 when every sample was stored. A request that is partly bad stores the good part
//! and answers 400 with the count of rejected samples by reason, so senders do not retry it;
//! storage failures answer 500, which senders do retry.

mod decode;
mod histogram;
mod proto;
mod report;
mod validate;
mod wire;

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sextant_storage::{AppendOutcome, Db, MetricMetadata, StorageError};

use decode::Scratch;

pub use decode::{decode_with, Decoded, MetadataRef, SeriesRef};
pub use histogram::{HistogramError, RawHistogram};
pub use proto::{
    histogram as proto_histogram, BucketSpan as ProtoBucketSpan, Histogram as ProtoHistogram,
    Label as ProtoLabel, Sample as ProtoSample, TimeSeries, WriteRequest,
};
pub use validate::RemoteWriteLimits;
pub use wire::WireError;

pub struct RemoteWriteState {
    pub db: Arc<Db>,
    pub limits: RemoteWriteLimits,
}

/// The remote-write route, with a body limit derived from the decompressed-size limit.
pub fn router(state: Arc<RemoteWriteState>) -> Router {
    // Snappy's worst case expands incompressible input by about a sixth.
    let max = state.limits.max_decompressed_bytes;
    let compressed_limit = max.saturating_add(max / 6).saturating_add(64);
    Router::new()
        .route("/api/v1/write", post(write))
        .layer(DefaultBodyLimit::max(compressed_limit))
        .with_state(state)
}

/// A refused request: status and a one-line message in the body, as Prometheus answers.
#[derive(Debug)]
pub struct WriteError {
    status: StatusCode,
    message: String,
}

impl WriteError {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for WriteError {}

impl IntoResponse for WriteError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message + "\n",
        )
            .into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> WriteError {
    WriteError {
        status,
        message: message.into(),
    }
}

async fn write(
    State(state): State<Arc<RemoteWriteState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&state, &headers, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::warn!(status = e.status.as_u16(), error = %e.message, "remote write request refused");
            e.into_response()
        }
    }
}

async fn handle(
    state: &Arc<RemoteWriteState>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(), WriteError> {
    check_content_type(headers)?;
    // Decompressing, decoding and appending are CPU work: keep them off the async workers.
    let state = state.clone();
    tokio::task::spawn_blocking(move || ingest_body(&state.db, &state.limits, &body))
        .await
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("append task failed: {e}"),
            )
        })??
        .into_result()
}

/// What one request did.
#[derive(Debug)]
pub struct Ingested {
    /// Samples stored.
    pub appended: usize,
    /// The 400 to answer when some samples were refused (the others were stored).
    partial: Option<WriteError>,
}

impl Ingested {
    /// True when nothing was refused (the request answers 204).
    pub fn is_complete(&self) -> bool {
        self.partial.is_none()
    }

    fn into_result(self) -> Result<(), WriteError> {
        self.partial.map_or(Ok(()), Err)
    }
}

/// The handler's work after the HTTP layer: decompresses a snappy body, decodes and validates
/// it, records metadata, appends the valid series and counts what was refused.
pub fn ingest_body(
    db: &Db,
    limits: &RemoteWriteLimits,
    body: &[u8],
) -> Result<Ingested, WriteError> {
    let mut scratch = Scratch::take();
    let result = decompress(body, limits.max_decompressed_bytes, &mut scratch.raw).and_then(|n| {
        let raw = scratch.raw.get(..n).unwrap_or_default();
        decode::decode_in(&mut scratch.bufs, raw, limits, |d| store(db, d)).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("body is not a protobuf WriteRequest: {e}"),
            )
        })?
    });
    scratch.put();
    result
}

/// Decodes and validates an uncompressed `WriteRequest`; returns the samples it would store.
pub fn decode_validate_count(raw: &[u8], limits: &RemoteWriteLimits) -> Result<usize, WireError> {
    decode_with(raw, limits, |d| d.num_samples())
}

fn store(db: &Db, d: &mut Decoded<'_>) -> Result<Ingested, WriteError> {
    for m in d.metadata() {
        if !m.family.is_empty() {
            db.set_metadata(
                m.family,
                MetricMetadata {
                    metric_type: proto::metric_type_name(m.metric_type).to_string(),
                    help: m.help.to_string(),
                    unit: m.unit.to_string(),
                },
            );
        }
    }
    let storage_error = |e: StorageError| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storage error: {e}"),
        )
    };
    let mut outcome = d.append(db).map_err(storage_error)?;
    let mut report = d.take_report();
    match d.append_histograms(db) {
        Ok(h) => merge(&mut outcome, h),
        // A storage without native histogram support: the histograms are refused and counted,
        // the float samples stay stored.
        Err(StorageError::Unsupported(_)) => {
            report.add("native_histograms_unsupported", d.num_histograms())
        }
        Err(e) => return Err(storage_error(e)),
    }
    for (reason, n) in &outcome.rejected {
        *report.by_reason.entry(reason.as_str()).or_default() += n;
    }
    for (reason, n) in &report.edge_only {
        db.metrics().reject(reason, *n as u64);
    }
    let total = outcome.appended + outcome.duplicates_ignored + report.total();
    let partial =
        (report.total() > 0).then(|| error(StatusCode::BAD_REQUEST, report.message(total)));
    Ok(Ingested {
        appended: outcome.appended,
        partial,
    })
}

fn merge(into: &mut AppendOutcome, other: AppendOutcome) {
    into.appended += other.appended;
    into.duplicates_ignored += other.duplicates_ignored;
    for (reason, n) in other.rejected {
        *into.rejected.entry(reason).or_default() += n;
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), WriteError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim();
    if media != "application/x-protobuf" {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {ct:?}: remote write expects application/x-protobuf"),
        ));
    }
    if let Some(proto) = ct
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("proto="))
    {
        if proto != "prometheus.writerequest" {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported remote write message {proto:?}: this server accepts remote write 1.0 (prometheus.WriteRequest)"),
            ));
        }
    }
    Ok(())
}

/// Decompresses a snappy block body into `out`, reusing its allocation; returns the length.
fn decompress(
    body: &[u8],
    max_decompressed: usize,
    out: &mut Vec<u8>,
) -> Result<usize, WriteError> {
    let not_snappy = |e: snap::Error| {
        error(
            StatusCode::BAD_REQUEST,
            format!("body is not snappy-compressed: {e}"),
        )
    };
    let len = snap::raw::decompress_len(body).map_err(not_snappy)?;
    if len > max_decompressed {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "decompressed body of {len} bytes exceeds the limit of {max_decompressed} bytes"
            ),
        ));
    }
    // Only growth is zero-filled; the buffer keeps its largest length between requests.
    if out.len() < len {
        out.resize(len, 0);
    }
    let dst = out.get_mut(..len).unwrap_or_default();
    snap::raw::Decoder::new()
        .decompress(body, dst)
        .map_err(not_snappy)
}

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod tests;
