//! OTLP ingest cost per sample: protobuf decode + conversion to the Prometheus model + append
//! (`a_decode` / `a2` / `a3`: prost decode and conversion, the OTLP/gRPC path; `a1` and the
//! ingest benches: the borrowed decode of the OTLP/HTTP path),
//! comparable with `benches/remote_write.rs` (throughput in samples: float samples plus native
//! histogram samples the request turns into).
//!
//! The request: 10 resources (hosts) with service and host attributes; per host, CPU time
//! counters (8 CPUs × 8 modes), network counters, filesystem gauges, an HTTP latency histogram
//! with 10 explicit buckets (4 routes × 2 methods) and an exponential size histogram. Each
//! round moves every point 15 s forward, so appends measure the steady state.

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use sextant_ingest::otlp::{convert, export_protobuf, wire, Arena, DeltaTracker};
use sextant_ingest::OtlpOptions;
use sextant_storage::{Db, DbOptions, FsyncPolicy};

const HOSTS: usize = 10;
const STEP_NS: u64 = 15_000_000_000;
const START_NS: u64 = 1_714_557_600_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(AV::StringValue(v.into())),
        }),
    }
}

fn number(attrs: Vec<KeyValue>, t: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: START_NS - STEP_NS,
        time_unix_nano: t,
        exemplars: vec![],
        flags: 0,
        value: Some(number_data_point::Value::AsDouble(v)),
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: unit.into(),
        metadata: vec![],
        data: Some(data),
    }
}

fn counter(points: Vec<NumberDataPoint>) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
        is_monotonic: true,
    })
}

fn request(round: u64) -> ExportMetricsServiceRequest {
    let t = START_NS + round * STEP_NS;
    let v = |i: usize| (round as f64) * 100.0 + i as f64 * 0.25;
    let mut resource_metrics = Vec::new();
    for host in 0..HOSTS {
        let mut metrics = Vec::new();
        let mut cpu = Vec::new();
        for c in 0..8 {
            for mode in [
                "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
            ] {
                cpu.push(number(
                    vec![kv("cpu", &c.to_string()), kv("state", mode)],
                    t,
                    v(cpu.len()),
                ));
            }
        }
        metrics.push(metric("system.cpu.time", "s", counter(cpu)));
        let mut net = Vec::new();
        for dev in ["eth0", "eth1", "lo"] {
            for dir in ["receive", "transmit"] {
                net.push(number(
                    vec![kv("device", dev), kv("direction", dir)],
                    t,
                    v(net.len()),
                ));
            }
        }
        metrics.push(metric("system.network.io", "By", counter(net)));
        let mut fs = Vec::new();
        for (dev, mp) in [
            ("/dev/sda1", "/"),
            ("/dev/sdb1", "/data"),
            ("tmpfs", "/run"),
        ] {
            for state in ["used", "free", "reserved"] {
                fs.push(number(
                    vec![
                        kv("device", dev),
                        kv("mountpoint", mp),
                        kv("state", state),
                        kv("type", "ext4"),
                    ],
                    t,
                    v(fs.len()),
                ));
            }
        }
        metrics.push(metric(
            "system.filesystem.usage",
            "By",
            Data::Gauge(Gauge { data_points: fs }),
        ));
        let bounds = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let mut hist = Vec::new();
        let mut exp = Vec::new();
        for route in ["/api/orders", "/api/users", "/api/cart", "/healthz"] {
            for method in ["GET", "POST"] {
                let attrs = vec![kv("http.request.method", method), kv("http.route", route)];
                let counts: Vec<u64> = (0..=bounds.len() as u64).map(|i| round * 3 + i).collect();
                hist.push(HistogramDataPoint {
                    attributes: attrs.clone(),
                    start_time_unix_nano: START_NS - STEP_NS,
                    time_unix_nano: t,
                    count: counts.iter().sum(),
                    sum: Some(round as f64 * 12.5),
                    bucket_counts: counts,
                    explicit_bounds: bounds.clone(),
                    exemplars: vec![],
                    flags: 0,
                    min: None,
                    max: None,
                });
                let counts: Vec<u64> = (0..20u64).map(|i| round + i % 5).collect();
                exp.push(ExponentialHistogramDataPoint {
                    attributes: attrs,
                    start_time_unix_nano: START_NS - STEP_NS,
                    time_unix_nano: t,
                    count: counts.iter().sum::<u64>() + round,
                    sum: Some(round as f64 * 1000.0),
                    scale: 3,
                    zero_count: round,
                    positive: Some(Buckets {
                        offset: 10,
                        bucket_counts: counts,
                    }),
                    negative: None,
                    flags: 0,
                    exemplars: vec![],
                    min: None,
                    max: None,
                    zero_threshold: 0.0,
                });
            }
        }
        metrics.push(metric(
            "http.server.request.duration",
            "s",
            Data::Histogram(Histogram {
                data_points: hist,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ));
        metrics.push(metric(
            "http.server.response.body.size",
            "By",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: exp,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ));
        resource_metrics.push(ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", &format!("host-{host:03}:8080")),
                    kv("host.name", &format!("host-{host:03}")),
                    kv("os.type", "linux"),
                ],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    }
    ExportMetricsServiceRequest { resource_metrics }
}

/// Times decode + convert + append of fresh rounds through the OTLP/HTTP protobuf entry point
/// (borrowed decode); encoding is not timed.
fn time_exports(
    db: &Db,
    opts: &OtlpOptions,
    deltas: &DeltaTracker,
    round: &mut u64,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        *round += 1;
        let body = request(*round).encode_to_vec();
        let start = Instant::now();
        let resp = export_protobuf(db, opts, deltas, black_box(body.as_slice())).expect("export");
        total += start.elapsed();
        assert!(resp.partial_success.is_none(), "{:?}", resp.partial_success);
    }
    total
}

fn bench(c: &mut Criterion) {
    let opts = OtlpOptions::default();
    let deltas = DeltaTracker::new(Duration::from_secs(3600));
    let body = request(1).encode_to_vec();
    let first = request(1);
    let mut arena = Arena::new();
    let samples = convert(&first, &arena, &opts, &deltas).num_samples() as u64;
    let mut g = c.benchmark_group("otlp");
    g.throughput(Throughput::Elements(samples));

    g.bench_function("a_decode", |b| {
        b.iter(|| ExportMetricsServiceRequest::decode(black_box(body.as_slice())).expect("decode"))
    });
    g.bench_function("a1_decode_borrowed", |b| {
        b.iter(|| wire::decode(black_box(body.as_slice())).expect("decode"))
    });
    let req = request(1);
    g.bench_function("a2_decode_convert", |b| {
        b.iter(|| {
            let req =
                ExportMetricsServiceRequest::decode(black_box(body.as_slice())).expect("decode");
            arena.reset();
            convert(&req, &arena, &opts, &deltas).num_samples()
        })
    });
    g.bench_function("a3_convert", |b| {
        b.iter(|| {
            arena.reset();
            convert(black_box(&req), &arena, &opts, &deltas).num_samples()
        })
    });

    let mut round = 1;
    let mem = Db::in_memory();
    time_exports(&mem, &opts, &deltas, &mut round, 1);
    g.bench_function("b_ingest_in_memory", |b| {
        b.iter_custom(|iters| time_exports(&mem, &opts, &deltas, &mut round, iters))
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let wal_db = Db::open(
        dir.path(),
        DbOptions {
            fsync: FsyncPolicy::Never,
            ..Default::default()
        },
    )
    .expect("open db");
    time_exports(&wal_db, &opts, &deltas, &mut round, 1);
    g.bench_function("c_ingest_wal", |b| {
        b.iter_custom(|iters| time_exports(&wal_db, &opts, &deltas, &mut round, iters))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
