//! Instruction-count driver for OTLP vs remote-write ingest cost per sample (run under
//! `valgrind --tool=callgrind --toggle-collect='*measure*'`).
//!
//! `otlp_cost otlp|grpc|rw [hosts] [rounds]` (`grpc`: prost decode + `otlp::export`, what the
//! gRPC service does after tonic): builds node_exporter-like OTLP requests (CPU time
//! counters, network counters, filesystem gauges, an explicit-bucket latency histogram per
//! host), converts round 0 once to learn the Prometheus series, and encodes the same series and
//! values as snappy remote write 1.0 bodies. Both paths then ingest round 0 (series creation,
//! not measured) and `rounds` further rounds through the handlers' entry points
//! (`otlp::export_protobuf`, `remote_write::ingest_body`) into a `Db` with a WAL in a temp dir;
//! only `measure_*` is counted.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use sextant_ingest::otlp::{convert, export, export_protobuf, Arena, DeltaTracker};
use sextant_ingest::remote_write::ingest_body;
use sextant_ingest::{OtlpOptions, RemoteWriteLimits};
use sextant_storage::{Db, DbOptions, FsyncPolicy, SeriesLabels};

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
        description: "what it measures".into(),
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

fn request(hosts: usize, round: u64) -> ExportMetricsServiceRequest {
    let t = START_NS + round * STEP_NS;
    let v = |i: usize| (round as f64) * 100.0 + i as f64 * 0.25;
    let mut resource_metrics = Vec::new();
    for host in 0..hosts {
        let mut cpu = Vec::new();
        for c in 0..8 {
            for mode in [
                "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
            ] {
                let attrs = vec![kv("cpu", &c.to_string()), kv("state", mode)];
                cpu.push(number(attrs, t, v(cpu.len())));
            }
        }
        let mut net = Vec::new();
        for dev in ["eth0", "eth1", "lo"] {
            for dir in ["receive", "transmit"] {
                let attrs = vec![kv("device", dev), kv("direction", dir)];
                net.push(number(attrs, t, v(net.len())));
            }
        }
        let mut fs = Vec::new();
        for (dev, mp) in [
            ("/dev/sda1", "/"),
            ("/dev/sdb1", "/data"),
            ("tmpfs", "/run"),
        ] {
            for state in ["used", "free", "reserved"] {
                let attrs = vec![
                    kv("device", dev),
                    kv("mountpoint", mp),
                    kv("state", state),
                    kv("type", "ext4"),
                ];
                fs.push(number(attrs, t, v(fs.len())));
            }
        }
        let bounds = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let mut hist = Vec::new();
        for route in ["/api/orders", "/api/users", "/api/cart", "/healthz"] {
            for method in ["GET", "POST"] {
                let counts: Vec<u64> = (0..=bounds.len() as u64).map(|i| round * 3 + i).collect();
                hist.push(HistogramDataPoint {
                    attributes: vec![kv("http.request.method", method), kv("http.route", route)],
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
            }
        }
        let metrics = vec![
            metric("system.cpu.time", "s", counter(cpu)),
            metric("system.network.io", "By", counter(net)),
            metric(
                "system.filesystem.usage",
                "By",
                Data::Gauge(Gauge { data_points: fs }),
            ),
            metric(
                "http.server.request.duration",
                "s",
                Data::Histogram(Histogram {
                    data_points: hist,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
        ];
        resource_metrics.push(ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "node"),
                    kv("service.instance.id", &format!("host-{host:03}:9100")),
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

/// The same series and samples as a snappy-compressed remote write 1.0 body.
fn remote_write_body(req: &ExportMetricsServiceRequest) -> (Vec<u8>, usize) {
    let deltas = DeltaTracker::new(Duration::from_secs(3600));
    let arena = Arena::new();
    let c = convert(req, &arena, &OtlpOptions::default(), &deltas);
    // Hand-encoded `prometheus.WriteRequest`: TimeSeries{labels=1{name=1,value=2}, samples=2{value=1,timestamp=2}}.
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
        out.push(tag);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    let mut raw = Vec::new();
    for (l, samples) in &c.floats {
        let mut ts = Vec::new();
        for (n, v) in l.pairs() {
            let mut label = Vec::new();
            field(&mut label, 0x0a, n.as_bytes());
            field(&mut label, 0x12, v.as_bytes());
            field(&mut ts, 0x0a, &label);
        }
        for s in samples.iter() {
            let mut sample = vec![0x09];
            sample.extend_from_slice(&s.v.to_le_bytes());
            sample.push(0x10);
            varint(&mut sample, s.t as u64);
            field(&mut ts, 0x12, &sample);
        }
        field(&mut raw, 0x0a, &ts);
    }
    let body = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default();
    (body, c.num_samples())
}

#[inline(never)]
fn measure_otlp(db: &Db, opts: &OtlpOptions, deltas: &DeltaTracker, bodies: &[Vec<u8>]) -> usize {
    run_otlp(db, opts, deltas, bodies)
}

#[inline(never)]
fn measure_grpc(db: &Db, opts: &OtlpOptions, deltas: &DeltaTracker, bodies: &[Vec<u8>]) -> usize {
    run_grpc(db, opts, deltas, bodies)
}

/// What the gRPC service does after tonic: prost decode, then `export`.
#[inline(never)]
fn run_grpc(db: &Db, opts: &OtlpOptions, deltas: &DeltaTracker, bodies: &[Vec<u8>]) -> usize {
    let mut refused = 0;
    for b in bodies {
        let Ok(req) = ExportMetricsServiceRequest::decode(b.as_slice()) else {
            refused += 1;
            continue;
        };
        match export(db, opts, deltas, &req) {
            Ok(r) => refused += usize::from(r.partial_success.is_some()),
            Err(_) => refused += 1,
        }
    }
    refused
}

#[inline(never)]
fn measure_rw(db: &Db, limits: &RemoteWriteLimits, bodies: &[Vec<u8>]) -> usize {
    run_rw(db, limits, bodies)
}

#[inline(never)]
fn run_otlp(db: &Db, opts: &OtlpOptions, deltas: &DeltaTracker, bodies: &[Vec<u8>]) -> usize {
    let mut refused = 0;
    for b in bodies {
        match export_protobuf(db, opts, deltas, b) {
            Ok(r) => refused += usize::from(r.partial_success.is_some()),
            Err(_) => refused += 1,
        }
    }
    refused
}

#[inline(never)]
fn run_rw(db: &Db, limits: &RemoteWriteLimits, bodies: &[Vec<u8>]) -> usize {
    let mut refused = 0;
    for b in bodies {
        match ingest_body(db, limits, b) {
            Ok(i) => refused += usize::from(!i.is_complete()),
            Err(_) => refused += 1,
        }
    }
    refused
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("otlp");
    let hosts: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let rounds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = Db::open(
        dir.path(),
        DbOptions {
            fsync: FsyncPolicy::Never,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("open db: {e}"));
    let reqs: Vec<ExportMetricsServiceRequest> = (0..=rounds).map(|r| request(hosts, r)).collect();
    let samples = remote_write_body(&reqs[0]).1;
    let total = samples as u64 * rounds;
    let refused = match mode {
        "otlp" => {
            let opts = OtlpOptions::default();
            let deltas = DeltaTracker::new(Duration::from_secs(3600));
            let bodies: Vec<Vec<u8>> = reqs.iter().map(|r| r.encode_to_vec()).collect();
            let bytes: usize = bodies[1..].iter().map(Vec::len).sum();
            eprintln!("otlp: {} bytes per round", bytes / rounds as usize);
            run_otlp(&db, &opts, &deltas, &bodies[..1]);
            measure_otlp(&db, &opts, &deltas, &bodies[1..])
        }
        "grpc" => {
            let opts = OtlpOptions::default();
            let deltas = DeltaTracker::new(Duration::from_secs(3600));
            let bodies: Vec<Vec<u8>> = reqs.iter().map(|r| r.encode_to_vec()).collect();
            run_grpc(&db, &opts, &deltas, &bodies[..1]);
            measure_grpc(&db, &opts, &deltas, &bodies[1..])
        }
        _ => {
            let limits = RemoteWriteLimits::default();
            let bodies: Vec<Vec<u8>> = reqs.iter().map(|r| remote_write_body(r).0).collect();
            let bytes: usize = bodies[1..].iter().map(Vec::len).sum();
            eprintln!("rw: {} snappy bytes per round", bytes / rounds as usize);
            run_rw(&db, &limits, &bodies[..1]);
            measure_rw(&db, &limits, &bodies[1..])
        }
    };
    assert_eq!(refused, 0, "some requests were refused");
    let stats = db.head_stats();
    eprintln!(
        "{mode}: {hosts} hosts, {rounds} rounds, {samples} samples per round, {total} measured; head: {} series, {} samples",
        stats.num_series, stats.num_samples
    );
}
