//! `POST /api/v1/write`: Prometheus remote write 1.0 and 2.0 (snappy-compressed protobuf),
//! told apart by the content type: `application/x-protobuf` with no `proto` parameter or
//! `proto=prometheus.WriteRequest` is 1.0, `proto=io.prometheus.write.v2.Request` is 2.0, and
//! anything else answers 415.
//!
//! Answers 204 when every sample was stored. A request that is partly bad stores the good part
//! and answers 400 with the count of rejected samples by reason, so senders do not retry it;
//! storage failures answer 500, which senders do retry. 2.0 answers also carry
//! `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` (on 204 and on 400; zeros
//! when nothing was stored).
//!
//! Exemplars (1.0 and 2.0) are stored through `Db::append_exemplars` after the samples. As in
//! Prometheus' 1.0 handler, they never make a request fail: duplicates of a series' newest
//! exemplar count as written, out-of-order ones, labels over 128 characters, invalid labels and
//! exemplars sent while exemplar storage is disabled are dropped and counted in
//! `sextant_exemplars_rejected_total{reason}` (out-of-order ones also in
//! `sextant_tsdb_exemplar_out_of_order_exemplars_total`).

mod decode;
mod decode_v2;
mod exemplars;
mod histogram;
mod proto;
pub mod proto_v2;
mod report;
mod validate;
mod wire;

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sextant_storage::{AppendOutcome, Db, ExemplarOutcome, MetricMetadata, StorageError};

use decode::Scratch;

pub use decode::{decode_with, Decoded, MetadataRef, SeriesRef};
pub use decode_v2::{decode_v2_with, RequestError};
pub use histogram::{HistogramError, RawHistogram};
pub use proto::{
    histogram as proto_histogram, BucketSpan as ProtoBucketSpan, Exemplar as ProtoExemplar,
    Histogram as ProtoHistogram, Label as ProtoLabel, Sample as ProtoSample, TimeSeries,
    WriteRequest,
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

/// The remote write message a request carries, from its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

/// Response headers of remote write 2.0: how many of the request's samples were stored.
pub const SAMPLES_WRITTEN: &str = "x-prometheus-remote-write-samples-written";
pub const HISTOGRAMS_WRITTEN: &str = "x-prometheus-remote-write-histograms-written";
pub const EXEMPLARS_WRITTEN: &str = "x-prometheus-remote-write-exemplars-written";

async fn write(
    State(state): State<Arc<RemoteWriteState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let protocol = match protocol(&headers) {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    // Decompressing, decoding and appending are CPU work: keep them off the async workers.
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || match protocol {
        Protocol::V1 => ingest_body(&st.db, &st.limits, &body),
        Protocol::V2 => ingest_body_v2(&st.db, &st.limits, &body),
    })
    .await
    .unwrap_or_else(|e| {
        Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("append task failed: {e}"),
        ))
    });
    let (mut response, written) = match result {
        Ok(ingested) => {
            let written = (
                ingested.samples_written,
                ingested.histograms_written,
                ingested.exemplars_written,
            );
            match ingested.partial {
                None => (StatusCode::NO_CONTENT.into_response(), written),
                Some(e) => (refused(e), written),
            }
        }
        // Refused before storing, or a 500 the sender retries whole: zeros, as Prometheus does.
        Err(e) => (refused(e), (0, 0, 0)),
    };
    if protocol == Protocol::V2 {
        let h = response.headers_mut();
        for (name, n) in [
            (SAMPLES_WRITTEN, written.0),
            (HISTOGRAMS_WRITTEN, written.1),
            (EXEMPLARS_WRITTEN, written.2),
        ] {
            h.insert(HeaderName::from_static(name), HeaderValue::from(n));
        }
    }
    response
}

fn refused(e: WriteError) -> Response {
    tracing::warn!(status = e.status.as_u16(), error = %e.message, "remote write request refused");
    e.into_response()
}

/// What one request did.
#[derive(Debug)]
pub struct Ingested {
    /// Samples stored (float samples and native histograms).
    pub appended: usize,
    /// Float samples written: stored, or identical to one already stored (a resend).
    pub samples_written: usize,
    /// Native histogram samples written, counted the same way.
    pub histograms_written: usize,
    /// Exemplars written: stored, or identical to the series' newest one (a resend).
    pub exemplars_written: usize,
    /// Exemplars dropped (invalid, out of order, too long, storage disabled); never a 400.
    pub exemplars_refused: usize,
    /// The 400 to answer when some samples were refused (the others were stored).
    partial: Option<WriteError>,
}

impl Ingested {
    /// True when nothing was refused (the request answers 204).
    pub fn is_complete(&self) -> bool {
        self.partial.is_none()
    }

    /// The 400 message when some samples were refused.
    pub fn partial_message(&self) -> Option<&str> {
        self.partial.as_ref().map(WriteError::message)
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

/// [`ingest_body`] for a remote write 2.0 body (`io.prometheus.write.v2.Request`).
pub fn ingest_body_v2(
    db: &Db,
    limits: &RemoteWriteLimits,
    body: &[u8],
) -> Result<Ingested, WriteError> {
    let mut scratch = Scratch::take();
    let result = decompress(body, limits.max_decompressed_bytes, &mut scratch.raw).and_then(|n| {
        let raw = scratch.raw.get(..n).unwrap_or_default();
        decode_v2::decode_v2_in(&mut scratch.bufs, raw, limits, |d| store(db, d)).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("body is not a valid io.prometheus.write.v2.Request: {e}"),
            )
        })?
    });
    scratch.put();
    result
}

/// Decodes and validates an uncompressed 2.0 `Request`; returns the samples it would store.
pub fn decode_validate_count_v2(
    raw: &[u8],
    limits: &RemoteWriteLimits,
) -> Result<usize, RequestError> {
    decode_v2_with(raw, limits, |d| d.num_samples())
}

/// Decodes and validates an uncompressed `WriteRequest`; returns the samples it would store.
pub fn decode_validate_count(raw: &[u8], limits: &RemoteWriteLimits) -> Result<usize, WireError> {
    decode_with(raw, limits, |d| d.num_samples())
}

fn store(db: &Db, d: &mut Decoded<'_>) -> Result<Ingested, WriteError> {
    // 2.0 sends metadata with every series: runs of one family (a classic histogram's
    // buckets) are recorded once.
    let mut previous = None;
    for m in d.metadata() {
        if !m.family.is_empty() && previous != Some(m) {
            previous = Some(m);
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
    let samples_written = outcome.appended + outcome.duplicates_ignored;
    let mut histograms_written = 0;
    let mut report = d.take_report();
    match d.append_histograms(db) {
        Ok(h) => {
            histograms_written = h.appended + h.duplicates_ignored;
            merge(&mut outcome, h);
        }
        // A storage without native histogram support: the histograms are refused and counted,
        // the float samples stay stored.
        Err(StorageError::Unsupported(_)) => {
            report.add("native_histograms_unsupported", d.num_histograms())
        }
        Err(e) => return Err(storage_error(e)),
    }
    let exemplars = d.append_exemplars(db).map_err(storage_error)?;
    let exemplars_refused = count_exemplar_refusals(db, &exemplars, d.invalid_exemplars());
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
        samples_written,
        histograms_written,
        exemplars_written: exemplars.appended + exemplars.duplicates,
        exemplars_refused,
        partial,
    })
}

/// Counts dropped exemplars by reason in `sextant_exemplars_rejected_total` and returns their
/// total.
pub(crate) fn count_exemplar_refusals(db: &Db, out: &ExemplarOutcome, invalid: usize) -> usize {
    let m = db.metrics();
    for (reason, n) in [
        ("out_of_order", out.out_of_order),
        ("labels_too_long", out.labels_too_long),
        ("disabled", out.disabled),
        ("invalid", invalid),
    ] {
        if n > 0 {
            m.reject_exemplars(reason, n as u64);
        }
    }
    let total = out.refused() + invalid;
    if total > 0 {
        tracing::debug!(
            out_of_order = out.out_of_order,
            labels_too_long = out.labels_too_long,
            disabled = out.disabled,
            invalid,
            "exemplars dropped"
        );
    }
    total
}

fn merge(into: &mut AppendOutcome, other: AppendOutcome) {
    into.appended += other.appended;
    into.duplicates_ignored += other.duplicates_ignored;
    for (reason, n) in other.rejected {
        *into.rejected.entry(reason).or_default() += n;
    }
}

/// The message type of a request from its content type (1.0 when there is none).
fn protocol(headers: &HeaderMap) -> Result<Protocol, WriteError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Protocol::V1);
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
        return match proto.trim_matches('"') {
            "prometheus.writerequest" => Ok(Protocol::V1),
            "io.prometheus.write.v2.request" => Ok(Protocol::V2),
            _ => Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported remote write message {proto:?}: this server accepts prometheus.WriteRequest (remote write 1.0) and io.prometheus.write.v2.Request (remote write 2.0)"),
            )),
        };
    }
    Ok(Protocol::V1)
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
mod decode_v2_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;
