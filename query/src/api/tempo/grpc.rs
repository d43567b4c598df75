//! Tempo's `tempopb.StreamingQuerier/Search` gRPC service, which Grafana's Tempo data source
//! calls on the HTTP port when search streaming is on.
//!
//! The messages are hand-written prost types with Tempo's field numbers (`tempo.proto`). The
//! whole search runs, then one `SearchResponse` carrying every match and the final metrics is
//! streamed (Grafana merges streamed responses, so one complete message is a valid stream).
//! Serving it next to the HTTP API needs HTTP/2 (h2c) on that port: merge
//! [`streaming_querier_router`] into the app and enable axum's `http2` feature.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use sextant_storage::traces::{hex, AttrValue, TraceSource};
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::{Request, Response, Status};

use super::search_trace_id;
use crate::traceql::{
    self, SearchRequest as EngineRequest, SearchResult, ROOT_SPAN_NOT_YET_RECEIVED,
};

/// `tempopb.SearchRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchRequest {
    #[prost(map = "string, string", tag = "1")]
    pub tags: HashMap<String, String>,
    #[prost(uint32, tag = "2")]
    pub min_duration_ms: u32,
    #[prost(uint32, tag = "3")]
    pub max_duration_ms: u32,
    #[prost(uint32, tag = "4")]
    pub limit: u32,
    /// Unix seconds.
    #[prost(uint32, tag = "5")]
    pub start: u32,
    #[prost(uint32, tag = "6")]
    pub end: u32,
    #[prost(string, tag = "8")]
    pub query: String,
    #[prost(uint32, tag = "9")]
    pub spans_per_span_set: u32,
}

/// `tempopb.SearchResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchResponse {
    #[prost(message, repeated, tag = "1")]
    pub traces: Vec<TraceSearchMetadata>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<SearchMetrics>,
}

/// `tempopb.TraceSearchMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceSearchMetadata {
    #[prost(string, tag = "1")]
    pub trace_id: String,
    #[prost(string, tag = "2")]
    pub root_service_name: String,
    #[prost(string, tag = "3")]
    pub root_trace_name: String,
    #[prost(uint64, tag = "4")]
    pub start_time_unix_nano: u64,
    #[prost(uint32, tag = "5")]
    pub duration_ms: u32,
    /// Deprecated by Tempo in favour of `span_sets`; set to the first spanset.
    #[prost(message, optional, tag = "6")]
    pub span_set: Option<SpanSet>,
    #[prost(message, repeated, tag = "7")]
    pub span_sets: Vec<SpanSet>,
}

/// `tempopb.SpanSet`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanSet {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<SearchSpan>,
    #[prost(uint32, tag = "2")]
    pub matched: u32,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.Span` (a span in search results).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchSpan {
    #[prost(string, tag = "1")]
    pub span_id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(uint64, tag = "3")]
    pub start_time_unix_nano: u64,
    #[prost(uint64, tag = "4")]
    pub duration_nanos: u64,
    #[prost(message, repeated, tag = "5")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.SearchMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchMetrics {
    #[prost(uint32, tag = "1")]
    pub inspected_traces: u32,
    #[prost(uint64, tag = "2")]
    pub inspected_bytes: u64,
    #[prost(uint32, tag = "3")]
    pub total_blocks: u32,
    #[prost(uint32, tag = "4")]
    pub completed_jobs: u32,
    #[prost(uint32, tag = "5")]
    pub total_jobs: u32,
}

/// The gRPC method path Grafana calls.
pub const SEARCH_PATH: &str = "/tempopb.StreamingQuerier/Search";

fn key_values(attrs: &[(String, AttrValue)]) -> Vec<KeyValue> {
    attrs.iter().map(|(k, v)| encode_kv(k, v)).collect()
}

fn encode_kv(key: &str, v: &AttrValue) -> KeyValue {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    let value = match v {
        AttrValue::Str(s) => Some(any_value::Value::StringValue(s.clone())),
        AttrValue::Int(i) => Some(any_value::Value::IntValue(*i)),
        AttrValue::Double(d) => Some(any_value::Value::DoubleValue(*d)),
        AttrValue::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        _ => None,
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value }),
    }
}

/// The engine's result as a `tempopb.SearchResponse`.
pub fn search_response(r: &SearchResult) -> SearchResponse {
    let traces = r
        .traces
        .iter()
        .map(|t| {
            let span_sets: Vec<SpanSet> = t
                .spansets
                .iter()
                .map(|s| SpanSet {
                    spans: s
                        .spans
                        .iter()
                        .map(|sp| SearchSpan {
                            span_id: hex(&sp.span_id),
                            name: sp.name.clone(),
                            start_time_unix_nano: sp.start_ns,
                            duration_nanos: sp.duration_ns,
                            attributes: key_values(&sp.attributes),
                        })
                        .collect(),
                    matched: u32::try_from(s.matched).unwrap_or(u32::MAX),
                    attributes: key_values(&s.attributes),
                })
                .collect();
            TraceSearchMetadata {
                trace_id: search_trace_id(&t.trace_id),
                root_service_name: t
                    .root_service_name
                    .clone()
                    .unwrap_or_else(|| ROOT_SPAN_NOT_YET_RECEIVED.to_string()),
                root_trace_name: t.root_trace_name.clone().unwrap_or_default(),
                start_time_unix_nano: t.start_ns,
                duration_ms: u32::try_from(t.duration_ns / 1_000_000).unwrap_or(u32::MAX),
                span_set: span_sets.first().cloned(),
                span_sets,
            }
        })
        .collect();
    SearchResponse {
        traces,
        metrics: Some(SearchMetrics {
            inspected_traces: u32::try_from(r.inspected_traces).unwrap_or(u32::MAX),
            inspected_bytes: 0,
            total_blocks: 0,
            completed_jobs: 1,
            total_jobs: 1,
        }),
    }
}

/// Runs one streamed search request (parameters as Tempo's `SearchRequest`).
async fn run(source: Arc<dyn TraceSource>, req: SearchRequest) -> Result<SearchResponse, Status> {
    let text = if !req.query.trim().is_empty() {
        req.query.clone()
    } else {
        let tags: Vec<String> = {
            let mut pairs: Vec<(&String, &String)> = req.tags.iter().collect();
            pairs.sort();
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={}", super::quote(v)))
                .collect()
        };
        super::tags_to_traceql(&tags.join(" ")).map_err(|e| Status::invalid_argument(e.message))?
    };
    let query = traceql::parse(&text)
        .map_err(|e| Status::invalid_argument(format!("invalid TraceQL query: {e}")))?;
    let compiled = traceql::compile(&query)
        .map_err(|e| Status::invalid_argument(format!("invalid TraceQL query: {e}")))?;
    let start_ns = u64::from(req.start) * 1_000_000_000;
    let end_ns = if req.end == 0 {
        u64::MAX
    } else {
        u64::from(req.end) * 1_000_000_000 + 999_999_999
    };
    if end_ns < start_ns {
        return Err(Status::invalid_argument(
            "invalid start and end: end must be after start",
        ));
    }
    let ms = |v: u32| (v > 0).then(|| u64::from(v) * 1_000_000);
    let ereq = EngineRequest {
        start_ns,
        end_ns,
        limit: if req.limit == 0 {
            20
        } else {
            req.limit as usize
        },
        spss: if req.spans_per_span_set == 0 {
            3
        } else {
            req.spans_per_span_set as usize
        },
        min_trace_duration_ns: ms(req.min_duration_ms),
        max_trace_duration_ns: ms(req.max_duration_ms),
    };
    let result = tokio::task::spawn_blocking(move || traceql::search(&*source, &compiled, &ereq))
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(search_response(&result))
}

type ResponseStream =
    futures_util::stream::Iter<std::vec::IntoIter<Result<SearchResponse, Status>>>;

struct SearchSvc(Arc<dyn TraceSource>);

impl tonic::server::ServerStreamingService<SearchRequest> for SearchSvc {
    type Response = SearchResponse;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<Response<ResponseStream>, Status>;

    fn call(&mut self, request: Request<SearchRequest>) -> Self::Future {
        let source = self.0.clone();
        Box::pin(async move {
            let resp = run(source, request.into_inner()).await?;
            Ok(Response::new(futures_util::stream::iter(vec![Ok(resp)])))
        })
    }
}

/// The `tempopb.StreamingQuerier` service (only `Search`).
#[derive(Clone)]
pub struct StreamingQuerierServer {
    source: Arc<dyn TraceSource>,
}

impl StreamingQuerierServer {
    pub fn new(source: Arc<dyn TraceSource>) -> StreamingQuerierServer {
        StreamingQuerierServer { source }
    }
}

impl tonic::server::NamedService for StreamingQuerierServer {
    const NAME: &'static str = "tempopb.StreamingQuerier";
}

impl<B> Service<http::Request<B>> for StreamingQuerierServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == SEARCH_PATH {
            let svc = SearchSvc(self.source.clone());
            return Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic::codec::ProstCodec::default());
                Ok(grpc.server_streaming(svc, req).await)
            });
        }
        Box::pin(async move {
            let mut response = http::Response::new(tonic::body::Body::default());
            let headers = response.headers_mut();
            headers.insert(
                tonic::Status::GRPC_STATUS,
                (tonic::Code::Unimplemented as i32).into(),
            );
            headers.insert(
                http::header::CONTENT_TYPE,
                tonic::metadata::GRPC_CONTENT_TYPE,
            );
            Ok(response)
        })
    }
}

/// An axum router serving `/tempopb.StreamingQuerier/*` (merge it into the HTTP app; the
/// listener must accept HTTP/2 without TLS for gRPC clients).
pub fn streaming_querier_router(source: Arc<dyn TraceSource>) -> axum::Router {
    tonic::service::Routes::new(StreamingQuerierServer::new(source)).into_axum_router()
}
