//! `POST /api/v1/write`: Prometheus remote write 1.0 (snappy-compressed protobuf).
//!
//! Answers 204 when every sample was stored. A request that is partly bad stores the good part
//! and answers 400 with the count of rejected samples by reason, so senders do not retry it;
//! storage failures answer 500, which senders do retry.

mod proto;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;
use sextant_storage::{Db, Labels, MetricMetadata, Sample};

pub use proto::{Label as ProtoLabel, Sample as ProtoSample, TimeSeries, WriteRequest};
pub use validate::RemoteWriteLimits;

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

/// A rejected request: status and a one-line message in the body, as Prometheus answers.
#[derive(Debug)]
struct WriteError {
    status: StatusCode,
    message: String,
}

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
    let request = decode(&body, state.limits.max_decompressed_bytes)?;
    let mut report = Rejections::default();
    let batch = to_batch(&request, &state.limits, &mut report);
    for m in &request.metadata {
        if !m.metric_family_name.is_empty() {
            state.db.set_metadata(
                &m.metric_family_name,
                MetricMetadata {
                    metric_type: proto::metric_type_name(m.r#type).to_string(),
                    help: m.help.clone(),
                    unit: m.unit.clone(),
                },
            );
        }
    }
    let db = state.db.clone();
    let outcome = tokio::task::spawn_blocking(move || db.append(&batch))
        .await
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("append task failed: {e}"),
            )
        })?
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("storage error: {e}"),
            )
        })?;
    for (reason, n) in &outcome.rejected {
        *report.by_reason.entry(reason.as_str()).or_default() += n;
    }
    for (reason, n) in &report.edge_only {
        state.db.metrics().reject(reason, *n as u64);
    }
    let total = outcome.appended + outcome.duplicates_ignored + report.total();
    if report.total() == 0 {
        return Ok(());
    }
    Err(error(StatusCode::BAD_REQUEST, report.message(total)))
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

fn decode(body: &[u8], max_decompressed: usize) -> Result<WriteRequest, WriteError> {
    let len = snap::raw::decompress_len(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("body is not snappy-compressed: {e}"),
        )
    })?;
    if len > max_decompressed {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "decompressed body of {len} bytes exceeds the limit of {max_decompressed} bytes"
            ),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("body is not snappy-compressed: {e}"),
            )
        })?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("body is not a protobuf WriteRequest: {e}"),
        )
    })
}

/// Counts of rejected samples by reason, and the first invalid series for the message.
#[derive(Default)]
struct Rejections {
    by_reason: BTreeMap<&'static str, usize>,
    /// Reasons found at this edge (storage counts its own in its metrics).
    edge_only: BTreeMap<&'static str, usize>,
    first_invalid: Option<String>,
}

impl Rejections {
    fn add(&mut self, reason: &'static str, n: usize) {
        if n > 0 {
            *self.by_reason.entry(reason).or_default() += n;
            *self.edge_only.entry(reason).or_default() += n;
        }
    }

    fn total(&self) -> usize {
        self.by_reason.values().sum()
    }

    fn message(&self, total: usize) -> String {
        let reasons: Vec<String> = self
            .by_reason
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        let mut msg = format!(
            "rejected {} of {} samples ({}); the others were stored",
            self.total(),
            total,
            reasons.join(", ")
        );
        if let Some(first) = &self.first_invalid {
            msg.push_str("; first invalid series: ");
            msg.push_str(first);
        }
        msg
    }
}

fn to_batch(
    request: &WriteRequest,
    limits: &RemoteWriteLimits,
    report: &mut Rejections,
) -> Vec<(Labels, Vec<Sample>)> {
    let mut batch = Vec::with_capacity(request.timeseries.len());
    for ts in &request.timeseries {
        report.add("native_histograms_unsupported", ts.histograms.len());
        report.add("exemplars_unsupported", ts.exemplars.len());
        match validate::series_labels(&ts.labels, limits) {
            Ok(labels) => {
                if !ts.samples.is_empty() {
                    let samples = ts
                        .samples
                        .iter()
                        .map(|s| Sample {
                            t: s.timestamp,
                            v: s.value,
                        })
                        .collect();
                    batch.push((labels, samples));
                }
            }
            Err(e) => {
                report.add(e.reason(), ts.samples.len());
                if report.first_invalid.is_none() {
                    report.first_invalid = Some(e.to_string());
                }
            }
        }
    }
    batch
}

#[cfg(test)]
mod tests;
