//! The OTLP/gRPC metrics service without prost decoding of requests: tonic hands over the
//! message bytes (after gRPC framing and gzip), which are decoded borrowed by [`super::wire`]
//! like OTLP/HTTP bodies, instead of building the owned `ExportMetricsServiceRequest` tree (one
//! allocation per string, attribute and point). Responses are prost messages.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use bytes::Buf;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, StdError};
use tonic::server::NamedService;
use tonic::Status;

use super::{export_protobuf, OtlpError, OtlpState};

/// The metrics service's gRPC name and its one method's path.
const SERVICE: &str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Requests are the raw message bytes; responses are encoded with prost.
#[derive(Clone, Copy, Default)]
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = ExportMetricsServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportMetricsServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// `MetricsService/Export` served from raw request bytes (see the module documentation); other
/// methods answer `UNIMPLEMENTED`. Accepts and sends gzip; messages over `max` bytes (after
/// decompression) are refused by tonic before decoding.
#[derive(Clone)]
pub struct RawMetricsService {
    state: Arc<OtlpState>,
}

impl RawMetricsService {
    pub fn new(state: Arc<OtlpState>) -> RawMetricsService {
        RawMetricsService { state }
    }
}

impl NamedService for RawMetricsService {
    const NAME: &'static str = SERVICE;
}

/// Decodes, converts and stores one request's bytes.
pub(super) async fn export(
    state: Arc<OtlpState>,
    request: tonic::Request<Bytes>,
) -> Result<tonic::Response<ExportMetricsServiceResponse>, Status> {
    let fail = |e: OtlpError| {
        tracing::warn!(error = %e.message(), "OTLP/gRPC request refused");
        e.grpc_status()
    };
    if state.db.get().is_none() {
        return Err(fail(OtlpError::NotReady));
    }
    let permit = state
        .inflight
        .try_acquire()
        .map_err(|_| fail(OtlpError::Overloaded))?;
    let body = request.into_inner();
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let db = st.db.get().ok_or(OtlpError::NotReady)?;
        export_protobuf(db, &st.options, &st.deltas, &body)
    })
    .await
    .map_err(|e| fail(OtlpError::Internal(format!("OTLP task failed: {e}"))))?;
    drop(permit);
    result.map(tonic::Response::new).map_err(fail)
}

impl<B> tower::Service<http::Request<B>> for RawMetricsService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let state = self.state.clone();
        let max = state.options.max_body_bytes;
        Box::pin(async move {
            let method = tower::service_fn(move |r| export(state.clone(), r));
            let mut grpc = tonic::server::Grpc::new(RawRequestCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max);
            Ok(grpc.unary(method, req).await)
        })
    }
}
