//! OTLP/gRPC against a running `sextant`: a valid export is stored, a partly invalid one answers
//! `partial_success`, an oversized message is refused, the traces service answers
//! `UNIMPLEMENTED` when traces are disabled (logs are served: `tests/otlp_logs.rs`, traces:
//! `tests/otlp_traces.rs`), and none of the refusals disturbs data stored before.

mod support;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;
use support::{free_port, urlencode, Server};
use tonic::codegen::http::uri::PathAndQuery;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn point(t: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![],
        start_time_unix_nano: 0,
        time_unix_nano: t,
        exemplars: vec![],
        flags: 0,
        value: Some(number_data_point::Value::AsDouble(v)),
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(AV::StringValue("grpc-test".into())),
                    }),
                }],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn gauge(name: &str, t: u64, v: f64) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: String::new(),
        metadata: vec![],
        data: Some(Data::Gauge(Gauge {
            data_points: vec![point(t, v)],
        })),
    }
}

async fn query_value(base: &str, q: &str) -> Option<f64> {
    let body: Value = reqwest::get(format!("{base}/api/v1/query?query={}", urlencode(q)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = body["data"]["result"].as_array().unwrap().clone();
    assert!(result.len() <= 1, "{body}");
    result
        .first()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exports_errors_and_unimplemented_signals() {
    let tmp = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let config = tmp.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  wal_fsync: never\notlp:\n  grpc_addr: 127.0.0.1:{grpc}\n  http_addr: \"off\"\n  max_body_bytes: 65536\ntraces:\n  enabled: false\n"
        ),
    )
    .unwrap();
    let server = Server::start(&config, &tmp.path().join("data"), &tmp.path().join("log")).await;
    let base = &server.base;
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let mut client = MetricsServiceClient::connect(endpoint.clone())
        .await
        .unwrap();

    let t = now_ns();
    let resp = client
        .export(request(vec![gauge("grpc.kept", t, 4.0)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
    assert_eq!(
        query_value(base, r#"grpc_kept{job="grpc-test"}"#).await,
        Some(4.0)
    );

    // One valid point and one with unspecified temporality: partial success.
    let bad_sum = Metric {
        name: "grpc.bad".into(),
        description: String::new(),
        unit: String::new(),
        metadata: vec![],
        data: Some(Data::Sum(Sum {
            data_points: vec![point(t, 1.0)],
            aggregation_temporality: AggregationTemporality::Unspecified as i32,
            is_monotonic: true,
        })),
    };
    let resp = client
        .export(request(vec![gauge("grpc.other", t, 2.0), bad_sum]))
        .await
        .unwrap()
        .into_inner();
    let p = resp.partial_success.expect("partial success");
    assert_eq!(p.rejected_data_points, 1);
    assert!(
        p.error_message.contains("otlp_unspecified_temporality"),
        "{}",
        p.error_message
    );
    assert_eq!(query_value(base, "grpc_other").await, Some(2.0));
    assert_eq!(query_value(base, "grpc_bad_total").await, None);

    // Larger than max_body_bytes: refused as a whole.
    let big: Vec<Metric> = (0..3000)
        .map(|i| gauge(&format!("grpc.big.metric.with.a.long.name.{i}"), t, 1.0))
        .collect();
    let err = client.export(request(big)).await.unwrap_err();
    // RESOURCE_EXHAUSTED, as the OTLP specification asks (tonic's own answer is OUT_OF_RANGE).
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("too large"), "{err}");
    assert_eq!(
        query_value(base, "grpc_big_metric_with_a_long_name_1").await,
        None
    );

    // Traces are disabled here; logs are (an empty export is accepted).
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let codec = tonic::codec::ProstCodec::<
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
        >::default();
        let ok = grpc
            .unary(
                tonic::Request::new(ExportMetricsServiceRequest::default()),
                PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                ),
                codec,
            )
            .await;
        assert!(ok.is_ok(), "logs export: {ok:?}");
    }
    for path in ["/opentelemetry.proto.collector.trace.v1.TraceService/Export"] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let codec = tonic::codec::ProstCodec::<
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
        >::default();
        let err = grpc
            .unary(
                tonic::Request::new(ExportMetricsServiceRequest::default()),
                PathAndQuery::from_static(path),
                codec,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{path}: {err}");
    }

    // Earlier data is intact.
    assert_eq!(
        query_value(base, r#"grpc_kept{job="grpc-test"}"#).await,
        Some(4.0)
    );
}
