//! OTLP load generator: pushes node_exporter-like hosts as OTLP/HTTP protobuf to a running
//! Sextant (`:4318/v1/metrics` by default) and reports data points and Prometheus samples per
//! second, and per server CPU-second when given the server's pid.
//!
//! ```sh
//! cargo run --release --example otlp_load -- --url http://127.0.0.1:4318/v1/metrics \
//!     --hosts 20 --span 1h --pid "$(pgrep -n sextant)"
//! ```
//!
//! Per host (one OTLP resource: `service.name=node`, `service.instance.id=host-NNN:9100`,
//! `host.name`): CPU time counters (8 CPUs × 8 states), memory usage gauges, network and disk
//! I/O counters, filesystem usage gauges, load averages, and an HTTP latency histogram with
//! 11 explicit bounds over routes × methods × status codes — 309 Prometheus series plus
//! `target_info`. Steps go
//! from `now - span` to now at `--interval`; hosts are split among `--concurrency` workers,
//! each sending its hosts' steps in time order, `--batch` hosts per request. `--delta` sends
//! sums and histograms with delta temporality (Sextant turns them cumulative); `--gzip`
//! compresses bodies. `--grpc` sends the same requests over OTLP/gRPC instead (`--url` is then
//! the gRPC endpoint, e.g. `http://127.0.0.1:4317`; one HTTP/2 connection per worker). Refused points (`partial_success`) and failed requests are counted and
//! make the exit status non-zero (a second run into the same data directory overlaps the first
//! in time, so its points are refused as out of order: start from an empty one).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value as AV, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const CPU_STATES: [&str; 8] = [
    "idle",
    "interrupt",
    "iowait",
    "nice",
    "softirq",
    "steal",
    "system",
    "user",
];
const BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const ROUTES: [&str; 4] = ["/api/orders", "/api/users", "/api/cart", "/healthz"];

#[derive(Clone, Debug)]
struct Opts {
    url: String,
    hosts: usize,
    span: Duration,
    interval: Duration,
    batch: usize,
    concurrency: usize,
    delta: bool,
    gzip: bool,
    grpc: bool,
    pid: Option<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage: otlp_load [--url URL] [--hosts N] [--span 1h] [--interval 15s] [--batch HOSTS] \
         [--concurrency N] [--delta] [--gzip] [--grpc] [--pid SERVER_PID]"
    );
    std::process::exit(2)
}

fn duration(s: &str) -> Duration {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().unwrap_or_else(|_| usage());
    Duration::from_secs(match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => usage(),
    })
}

fn parse_args() -> Opts {
    let mut o = Opts {
        url: "http://127.0.0.1:4318/v1/metrics".into(),
        hosts: 20,
        span: Duration::from_secs(3600),
        interval: Duration::from_secs(15),
        batch: 5,
        concurrency: 4,
        delta: false,
        gzip: false,
        grpc: false,
        pid: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--url" => o.url = value(),
            "--hosts" => o.hosts = value().parse().unwrap_or_else(|_| usage()),
            "--span" => o.span = duration(&value()),
            "--interval" => o.interval = duration(&value()),
            "--batch" => o.batch = value().parse().unwrap_or_else(|_| usage()),
            "--concurrency" => o.concurrency = value().parse().unwrap_or_else(|_| usage()),
            "--pid" => o.pid = Some(value().parse().unwrap_or_else(|_| usage())),
            "--delta" => o.delta = true,
            "--gzip" => o.gzip = true,
            "--grpc" => o.grpc = true,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    o.batch = o.batch.max(1);
    o.concurrency = o.concurrency.max(1);
    o
}

/// SplitMix64: deterministic values per host.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One simulated host: running totals for its counters and histograms.
struct Host {
    index: usize,
    rng: Rng,
    cpu: Vec<[f64; 8]>,
    net: [[f64; 2]; 3],
    disk: [[f64; 2]; 2],
    /// Per route × method × status: bucket counts (BOUNDS.len() + 1), sum.
    http: Vec<(Vec<u64>, f64)>,
}

impl Host {
    fn new(index: usize) -> Host {
        Host {
            index,
            rng: Rng(0x5EED ^ (index as u64).wrapping_mul(0x9E37_79B9)),
            cpu: vec![[0.0; 8]; 8],
            net: [[0.0; 2]; 3],
            disk: [[0.0; 2]; 2],
            http: vec![(vec![0; BOUNDS.len() + 1], 0.0); ROUTES.len() * 2 * 2],
        }
    }

    /// Advances one interval and returns the host's resource with this step's points.
    fn step(&mut self, t_ns: u64, start_ns: u64, dt: f64, delta: bool) -> ResourceMetrics {
        let temporality = if delta {
            AggregationTemporality::Delta
        } else {
            AggregationTemporality::Cumulative
        } as i32;
        let point_start = if delta {
            t_ns - (dt * 1e9) as u64
        } else {
            start_ns
        };
        let num = |attrs: Vec<KeyValue>, v: f64| NumberDataPoint {
            attributes: attrs,
            start_time_unix_nano: point_start,
            time_unix_nano: t_ns,
            exemplars: vec![],
            flags: 0,
            value: Some(number_data_point::Value::AsDouble(v)),
        };
        let mut metrics = Vec::new();

        let mut cpu = Vec::new();
        for (c, states) in self.cpu.iter_mut().enumerate() {
            let busy = 0.1 + 0.5 * self.rng.unit();
            for (s, state) in CPU_STATES.iter().enumerate() {
                let share = if *state == "idle" {
                    1.0 - busy
                } else {
                    busy / 7.0
                };
                let inc = (share * dt * 100.0).round() / 100.0;
                states[s] += inc;
                let v = if delta { inc } else { states[s] };
                cpu.push(num(
                    vec![kv("cpu", &format!("cpu{c}")), kv("state", state)],
                    v,
                ));
            }
        }
        metrics.push(sum("system.cpu.time", "s", cpu, temporality, true));

        let total = 16.0 * 1024.0 * 1024.0 * 1024.0;
        let used = (0.3 + 0.4 * self.rng.unit()) * total;
        let mem = [("used", used), ("free", total - used)]
            .iter()
            .map(|(state, v)| num(vec![kv("state", state)], v.round()))
            .collect();
        metrics.push(gauge("system.memory.usage", "By", mem));

        let mut net = Vec::new();
        for (d, dev) in ["eth0", "eth1", "lo"].iter().enumerate() {
            for (i, dir) in ["receive", "transmit"].iter().enumerate() {
                let inc = (self.rng.unit() * 1e6 * dt).round();
                self.net[d][i] += inc;
                let v = if delta { inc } else { self.net[d][i] };
                net.push(num(vec![kv("device", dev), kv("direction", dir)], v));
            }
        }
        metrics.push(sum("system.network.io", "By", net, temporality, true));

        let mut disk = Vec::new();
        for (d, dev) in ["sda", "sdb"].iter().enumerate() {
            for (i, dir) in ["read", "write"].iter().enumerate() {
                let inc = (self.rng.unit() * 4e5 * dt).round();
                self.disk[d][i] += inc;
                let v = if delta { inc } else { self.disk[d][i] };
                disk.push(num(vec![kv("device", dev), kv("direction", dir)], v));
            }
        }
        metrics.push(sum("system.disk.io", "By", disk, temporality, true));

        let mut fs = Vec::new();
        for (dev, mp, size) in [
            ("/dev/sda1", "/", 100e9),
            ("/dev/sdb1", "/data", 1e12),
            ("tmpfs", "/run", 1.6e9),
        ] {
            let used = (size * (0.2 + 0.1 * self.rng.unit())).round();
            for (state, v) in [("used", used), ("free", size - used)] {
                let attrs = vec![
                    kv("device", dev),
                    kv("mountpoint", mp),
                    kv("state", state),
                    kv("type", "ext4"),
                ];
                fs.push(num(attrs, v));
            }
        }
        metrics.push(gauge("system.filesystem.usage", "By", fs));

        for m in ["1m", "5m", "15m"] {
            let v = (self.rng.unit() * 400.0).round() / 100.0;
            metrics.push(gauge(
                &format!("system.cpu.load_average.{m}"),
                "{thread}",
                vec![num(vec![], v)],
            ));
        }

        let mut hist = Vec::new();
        let mut i = 0;
        for route in ROUTES {
            for method in ["GET", "POST"] {
                for status in ["200", "500"] {
                    let requests = if status == "200" { 50.0 } else { 1.0 } * dt;
                    let mut step_counts = vec![0u64; BOUNDS.len() + 1];
                    let mut step_sum = 0.0;
                    for _ in 0..(requests * self.rng.unit()) as usize {
                        let latency = 0.002 / (1.0 - self.rng.unit() * 0.999);
                        let b = BOUNDS.partition_point(|&b| b < latency);
                        step_counts[b] += 1;
                        step_sum += latency;
                    }
                    let (counts, total_sum) = &mut self.http[i];
                    for (c, s) in counts.iter_mut().zip(&step_counts) {
                        *c += s;
                    }
                    *total_sum += step_sum;
                    let (counts, s) = if delta {
                        (step_counts, step_sum)
                    } else {
                        (counts.clone(), *total_sum)
                    };
                    hist.push(HistogramDataPoint {
                        attributes: vec![
                            kv("http.request.method", method),
                            kv("http.response.status_code", status),
                            kv("http.route", route),
                        ],
                        start_time_unix_nano: point_start,
                        time_unix_nano: t_ns,
                        count: counts.iter().sum(),
                        sum: Some(s),
                        bucket_counts: counts,
                        explicit_bounds: BOUNDS.to_vec(),
                        exemplars: vec![],
                        flags: 0,
                        min: None,
                        max: None,
                    });
                    i += 1;
                }
            }
        }
        metrics.push(Metric {
            name: "http.server.request.duration".into(),
            description: "Duration of HTTP server requests.".into(),
            unit: "s".into(),
            metadata: vec![],
            data: Some(Data::Histogram(Histogram {
                data_points: hist,
                aggregation_temporality: temporality,
            })),
        });

        ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "node"),
                    kv(
                        "service.instance.id",
                        &format!("host-{:03}:9100", self.index),
                    ),
                    kv("host.name", &format!("host-{:03}", self.index)),
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
        }
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(AV::StringValue(v.into())),
        }),
    }
}

fn sum(
    name: &str,
    unit: &str,
    points: Vec<NumberDataPoint>,
    temporality: i32,
    monotonic: bool,
) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: unit.into(),
        metadata: vec![],
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        })),
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: unit.into(),
        metadata: vec![],
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
    }
}

/// Data points and the Prometheus samples they become (a classic histogram point is one
/// sample per bucket plus `_sum` and `_count`).
fn count(req: &ExportMetricsServiceRequest) -> (u64, u64) {
    let (mut points, mut samples) = (0u64, 0u64);
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        match &m.data {
            Some(Data::Gauge(g)) => {
                points += g.data_points.len() as u64;
                samples += g.data_points.len() as u64;
            }
            Some(Data::Sum(s)) => {
                points += s.data_points.len() as u64;
                samples += s.data_points.len() as u64;
            }
            Some(Data::Histogram(h)) => {
                points += h.data_points.len() as u64;
                samples += h
                    .data_points
                    .iter()
                    .map(|p| p.explicit_bounds.len() as u64 + 3)
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (points, samples)
}

/// The server's user + system CPU time, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0) // USER_HZ is 100 on Linux
}

#[derive(Default)]
struct Totals {
    points: AtomicU64,
    samples: AtomicU64,
    requests: AtomicU64,
    refused_points: AtomicU64,
    failed_requests: AtomicU64,
}

/// Where a worker sends its requests.
enum Sender {
    Http(reqwest::Client),
    Grpc(MetricsServiceClient<tonic::transport::Channel>),
}

impl Sender {
    async fn new(opts: &Opts) -> Result<Sender, String> {
        if !opts.grpc {
            return Ok(Sender::Http(reqwest::Client::new()));
        }
        let client = MetricsServiceClient::connect(opts.url.clone())
            .await
            .map_err(|e| format!("connecting to {}: {e}", opts.url))?
            .max_encoding_message_size(usize::MAX);
        Ok(Sender::Grpc(if opts.gzip {
            client.send_compressed(tonic::codec::CompressionEncoding::Gzip)
        } else {
            client
        }))
    }

    /// Sends one request; the refused points it reports, or why it failed.
    async fn send(&mut self, opts: &Opts, req: ExportMetricsServiceRequest) -> Result<u64, String> {
        let client = match self {
            Sender::Grpc(client) => {
                let resp = client.export(req).await.map_err(|e| e.to_string())?;
                return Ok(resp
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_data_points as u64));
            }
            Sender::Http(client) => client,
        };
        let mut body = req.encode_to_vec();
        let mut builder = client
            .post(&opts.url)
            .header("Content-Type", "application/x-protobuf");
        if opts.gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if enc.write_all(&body).is_ok() {
                if let Ok(z) = enc.finish() {
                    body = z;
                    builder = builder.header("Content-Encoding", "gzip");
                }
            }
        }
        let resp = builder.body(body).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        Ok(ExportMetricsServiceResponse::decode(bytes.as_ref())
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| p.rejected_data_points as u64))
    }
}

async fn worker(opts: Arc<Opts>, hosts: Vec<usize>, totals: Arc<Totals>, end_ns: u64) {
    let mut sender = match Sender::new(&opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            totals.failed_requests.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let steps = (opts.span.as_secs() / opts.interval.as_secs().max(1)).max(1);
    let start_ns = end_ns - steps * opts.interval.as_nanos() as u64;
    let dt = opts.interval.as_secs_f64();
    let mut sims: Vec<Host> = hosts.into_iter().map(Host::new).collect();
    for step in 1..=steps {
        let t_ns = start_ns + step * opts.interval.as_nanos() as u64;
        for chunk in sims.chunks_mut(opts.batch) {
            let req = ExportMetricsServiceRequest {
                resource_metrics: chunk
                    .iter_mut()
                    .map(|h| h.step(t_ns, start_ns, dt, opts.delta))
                    .collect(),
            };
            let (points, samples) = count(&req);
            totals.requests.fetch_add(1, Ordering::Relaxed);
            match sender.send(&opts, req).await {
                Ok(refused) => {
                    totals.points.fetch_add(points, Ordering::Relaxed);
                    totals.samples.fetch_add(samples, Ordering::Relaxed);
                    totals.refused_points.fetch_add(refused, Ordering::Relaxed);
                }
                Err(e) => {
                    totals.failed_requests.fetch_add(1, Ordering::Relaxed);
                    eprintln!("request failed: {e}");
                }
            }
        }
    }
}

fn main() {
    let opts = Arc::new(parse_args());
    let end_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let totals = Arc::new(Totals::default());
    let cpu_before = opts.pid.and_then(cpu_seconds);
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..opts.concurrency {
            let hosts: Vec<usize> = (0..opts.hosts)
                .filter(|h| h % opts.concurrency == w)
                .collect();
            if !hosts.is_empty() {
                tasks.push(tokio::spawn(worker(
                    opts.clone(),
                    hosts,
                    totals.clone(),
                    end_ns,
                )));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, opts.pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let points = totals.points.load(Ordering::Relaxed);
    let samples = totals.samples.load(Ordering::Relaxed);
    let refused = totals.refused_points.load(Ordering::Relaxed);
    let failed = totals.failed_requests.load(Ordering::Relaxed);
    println!(
        "otlp_load: {} hosts, {} requests, {points} data points ({samples} samples) in {wall:.2} s: {:.0} points/s, {:.0} samples/s",
        opts.hosts,
        totals.requests.load(Ordering::Relaxed),
        points as f64 / wall,
        samples as f64 / wall,
    );
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        println!(
            "server CPU {cpu:.2} s: {:.0} points per server CPU-second, {:.0} samples per server CPU-second",
            points as f64 / cpu,
            samples as f64 / cpu
        );
    }
    if refused > 0 || failed > 0 {
        eprintln!("refused data points: {refused}, failed requests: {failed}");
        std::process::exit(1);
    }
}
