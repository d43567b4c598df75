//! OTLP traces ingest: OTLP/gRPC `opentelemetry.proto.collector.trace.v1.TraceService/Export`
//! and OTLP/HTTP `POST /v1/traces` (protobuf or JSON, optionally gzip).
//!
//! Request bytes are decoded once, straight into the store's span model ([`wire`] for
//! protobuf on both transports — the gRPC service uses a raw-bytes codec, so no prost messages
//! are built — and [`json`] for OTLP/JSON). Protobuf is encoded straight into the store's
//! record ([`wire::encode`] → [`SpanBatchEncoder`], no `Span` structs); the span-metrics
//! generator ([`crate::spanmetrics`], when attached) reads that record through borrowed views,
//! then it goes to [`TraceAppender::append_encoded`]. JSON takes the `SpanBatch` path. Answers follow the
//! OTLP specification, like metrics and logs ([`super::OtlpError`]): `partial_success` with
//! `rejected_spans` for spans with malformed or all-zero ids, 400 / `INVALID_ARGUMENT` for
//! undecodable bodies, 413 / `RESOURCE_EXHAUSTED` for oversized ones, 501 / `UNIMPLEMENTED`
//! without a trace store.

pub mod json;
pub mod wire;

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Buf;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use sextant_storage::traces::{SpanBatchEncoder, TraceAppender};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, BoxFuture, StdError};

use super::{decompress, error_response, is_gzip, OtlpError, OtlpState};
use crate::spanmetrics::SpanMetrics;
pub use wire::DecodedTraces;

/// The gRPC service name (as in the OTLP protos).
pub const GRPC_SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where decoded spans go: the store and, optionally, the span-metrics generator.
pub(super) struct TracesBackend {
    pub(super) appender: Arc<dyn TraceAppender>,
    pub(super) generator: Option<Arc<SpanMetrics>>,
    /// Largest decompressed request (also capped by `OtlpOptions::max_body_bytes`).
    pub(super) max_request_bytes: usize,
}

impl OtlpState {
    /// Attaches the trace store (and the span-metrics / service-graph generator, which sees
    /// every accepted span before it is stored); `/v1/traces` and the gRPC trace service are
    /// served from now on. Requests above `max_request_bytes` (after decompression; the
    /// transport limit `OtlpOptions::max_body_bytes` applies too) answer 413 /
    /// `RESOURCE_EXHAUSTED`. Later calls are ignored.
    pub fn set_traces(
        &self,
        appender: Arc<dyn TraceAppender>,
        generator: Option<Arc<SpanMetrics>>,
        max_request_bytes: usize,
    ) {
        let _ = self.traces.set(TracesBackend {
            appender,
            generator,
            max_request_bytes,
        });
    }

    fn traces_backend(&self) -> Result<&TracesBackend, OtlpError> {
        match self.traces.get() {
            Some(b) => Ok(b),
            None if self.db.get().is_none() => Err(OtlpError::NotReady),
            None => Err(OtlpError::Unimplemented(
                "Sextant has no trace store configured; traces are not accepted".into(),
            )),
        }
    }

    /// Decodes a protobuf `ExportTraceServiceRequest` (already decompressed) and stores it.
    /// Blocking (CPU and WAL I/O).
    pub fn export_traces_protobuf(
        &self,
        raw: &[u8],
    ) -> Result<ExportTraceServiceResponse, OtlpError> {
        let backend = self.traces_backend()?;
        check_size(backend, raw)?;
        store_traces_encoded(backend, raw)
    }

    /// Decodes an OTLP/JSON traces request and stores it. Blocking.
    pub fn export_traces_json(&self, raw: &[u8]) -> Result<ExportTraceServiceResponse, OtlpError> {
        let backend = self.traces_backend()?;
        check_size(backend, raw)?;
        let decoded = json::decode(raw).map_err(|e| {
            OtlpError::BadRequest(format!("body is not a JSON ExportTraceServiceRequest: {e}"))
        })?;
        store_traces(backend, decoded)
    }
}

fn check_size(backend: &TracesBackend, raw: &[u8]) -> Result<(), OtlpError> {
    if raw.len() > backend.max_request_bytes {
        return Err(OtlpError::TooLarge(format!(
            "request of {} bytes exceeds the limit of {} bytes (traces.max_request_bytes)",
            raw.len(),
            backend.max_request_bytes
        )));
    }
    Ok(())
}

/// Encodes the request straight into the store's record ([`wire::encode`]) and appends it
/// with [`TraceAppender::append_encoded`]; same answers as [`wire::decode`] + [`store_traces`]
/// (on a decoding error, `decode` is re-run for its exact message).
fn store_traces_encoded(
    backend: &TracesBackend,
    raw: &[u8],
) -> Result<ExportTraceServiceResponse, OtlpError> {
    let mut enc = SpanBatchEncoder::with_capacity(raw.len() + raw.len() / 8);
    let counts = match wire::encode(raw, &mut enc) {
        Ok(counts) => counts,
        Err(_) => {
            let decoded = wire::decode(raw).map_err(|e| {
                OtlpError::BadRequest(format!(
                    "body is not a protobuf ExportTraceServiceRequest: {e}"
                ))
            })?;
            return store_traces(backend, decoded);
        }
    };
    let encoded = enc
        .finish()
        .map_err(|e| OtlpError::Internal(format!("trace encoding failed: {e}")))?;
    // The generator sees the spans the encoder accepted, as views of the record (the store
    // refuses nothing more: all-zero ids were already dropped); the store parses the record
    // once for both.
    let outcome = if encoded.accepted_spans() == 0 && encoded.rejected_spans() == 0 {
        Default::default()
    } else {
        let appended = match &backend.generator {
            Some(g) => backend
                .appender
                .append_encoded_observed(encoded, &mut |views| g.observe_views(views)),
            None => backend.appender.append_encoded(encoded),
        };
        appended.map_err(|e| OtlpError::Internal(format!("storage error: {e}")))?
    };
    answer(counts, outcome)
}

/// Feeds the generator, appends, and builds the answer (with `partial_success` when spans were
/// refused by the decoder or the store).
fn store_traces(
    backend: &TracesBackend,
    mut decoded: DecodedTraces,
) -> Result<ExportTraceServiceResponse, OtlpError> {
    if decoded.batches.is_empty() && decoded.rejected == 0 {
        return Ok(ExportTraceServiceResponse {
            partial_success: None,
        });
    }
    // The generator counts what the decoder accepted; the store refuses the same spans the
    // decoder already dropped (all-zero ids), so both see the same spans.
    if let Some(g) = &backend.generator {
        g.observe(&decoded.batches);
    }
    let batches = std::mem::take(&mut decoded.batches);
    let outcome = if batches.is_empty() {
        Default::default()
    } else {
        backend
            .appender
            .append(batches)
            .map_err(|e| OtlpError::Internal(format!("storage error: {e}")))?
    };
    answer(decoded, outcome)
}

/// The export answer: `partial_success` when the decoder or the store refused spans.
fn answer(
    decoded: DecodedTraces,
    outcome: sextant_storage::traces::TraceAppendOutcome,
) -> Result<ExportTraceServiceResponse, OtlpError> {
    let rejected = decoded.rejected as u64 + outcome.rejected_spans;
    if rejected == 0 {
        return Ok(ExportTraceServiceResponse {
            partial_success: None,
        });
    }
    let mut reasons = decoded.reasons;
    for r in outcome.errors {
        if !reasons.contains(&r) && reasons.len() < 2 * wire::MAX_REASONS {
            reasons.push(r);
        }
    }
    Ok(ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: format!(
                "rejected {rejected} of {} spans ({}); the others were stored",
                decoded.spans,
                reasons.join("; ")
            ),
        }),
    })
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP

/// `POST /v1/traces`.
pub(super) async fn http_traces(
    State(state): State<Arc<OtlpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match super::content_format(&headers) {
        Ok(f) => f,
        Err(e) => return error_response(&e, super::Format::Json),
    };
    let result = async {
        state.traces_backend()?;
        let permit = state
            .inflight
            .try_acquire()
            .map_err(|_| OtlpError::Overloaded)?;
        let gzip = is_gzip(&headers)?;
        let state = state.clone();
        let result = tokio::task::spawn_blocking(move || {
            let raw = decompress(body, gzip, state.options.max_body_bytes)?;
            match format {
                super::Format::Protobuf => state.export_traces_protobuf(&raw),
                super::Format::Json => state.export_traces_json(&raw),
            }
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
                super::Format::Protobuf => ("application/x-protobuf", resp.encode_to_vec()),
                super::Format::Json => ("application/json", response_json(&resp).into_bytes()),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, ct)], bytes).into_response()
        }
        Err(e) => error_response(&e, format),
    }
}

/// The OTLP/JSON form of a response (`{}` on full success).
pub fn response_json(resp: &ExportTraceServiceResponse) -> String {
    match &resp.partial_success {
        None => "{}".to_string(),
        Some(p) => serde_json::json!({
            "partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }
        })
        .to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP/gRPC: a hand-written service over a raw-bytes codec, so the request is decoded by
// `wire::decode` in one pass instead of into prost messages first.

/// Encodes the (small) prost response; decodes the request into its raw bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("encoding the response: {e}")))
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// The unary handler: decode, generate, store, on a blocking thread.
#[derive(Clone)]
struct ExportHandler {
    state: Arc<OtlpState>,
}

impl tonic::server::UnaryService<Bytes> for ExportHandler {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<ExportTraceServiceResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let fail = |e: OtlpError| {
                tracing::warn!(error = %e.message(), "OTLP/gRPC traces request refused");
                e.grpc_status()
            };
            state.traces_backend().map_err(fail)?;
            let permit = state
                .inflight
                .try_acquire()
                .map_err(|_| fail(OtlpError::Overloaded))?;
            let raw = request.into_inner();
            let st = state.clone();
            let result = tokio::task::spawn_blocking(move || st.export_traces_protobuf(&raw))
                .await
                .map_err(|e| fail(OtlpError::Internal(format!("OTLP task failed: {e}"))))?;
            drop(permit);
            result.map(tonic::Response::new).map_err(fail)
        })
    }
}

/// The gRPC trace service (gzip accepted, messages up to `max_body_bytes`); answers
/// `UNIMPLEMENTED` while no trace store is attached.
#[derive(Clone)]
pub struct TraceGrpcService {
    state: Arc<OtlpState>,
}

/// Builds the gRPC trace service for [`super::serve_grpc`] (or any tonic router).
pub fn grpc_traces_service(state: Arc<OtlpState>) -> TraceGrpcService {
    TraceGrpcService { state }
}

impl tonic::server::NamedService for TraceGrpcService {
    const NAME: &'static str = GRPC_SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for TraceGrpcService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != GRPC_EXPORT_PATH {
            return Box::pin(async move {
                Ok(
                    tonic::Status::unimplemented("unknown method of the OTLP trace service")
                        .into_http(),
                )
            });
        }
        let max = self.state.options.max_body_bytes;
        let handler = ExportHandler {
            state: self.state.clone(),
        };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(gzip_only(), gzip_only())
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(handler, req).await)
        })
    }
}

fn gzip_only() -> tonic::codec::EnabledCompressionEncodings {
    let mut e = tonic::codec::EnabledCompressionEncodings::default();
    e.enable(tonic::codec::CompressionEncoding::Gzip);
    e
}

#[cfg(test)]
mod tests;
