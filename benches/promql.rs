//! PromQL engine end to end over a synthetic 100k-series dataset: storage select, decode and
//! merge plus evaluation, through `sextant_query::promql::Engine` exactly as the HTTP API calls
//! it.
//!
//! The dataset has 100 hosts of about 1,000 series each (node-exporter-like counters and gauges,
//! an HTTP service per host with request counters and classic `le` histograms), 65 minutes of
//! samples at 15 s. Each query is a range query over the last hour at 15 s steps (241 steps).
//!
//! Two storage layouts are measured:
//! - `head`: everything in an in-memory head (XOR chunks), as right after ingest;
//! - `block`: everything in one flushed, memory-mapped block (zstd pages of column chunks), the
//!   usual case for data older than the head. The block directory is generated once and cached
//!   under the target directory (`sextant-bench-promql-<version>`), so later runs open it in
//!   milliseconds.
//!
//! Every query's answer is checked once before measuring, so no benchmark can silently
//! measure an empty or wrong-shaped result.
//!
//! `PROMQL_BENCH_ONLY=head|block` restricts the run to one layout (useful when profiling).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sextant_query::promql::{parse, Engine, EngineOptions, Value};
use sextant_storage::{Db, DbOptions, FsyncPolicy, Labels, MatchOp, Matcher, Sample, SeriesSource};

const HOSTS: usize = 100;
const SCRAPE_MS: i64 = 15_000;
/// 2024-05-01T10:00:00Z, aligned to the scrape interval.
const DATA_START_MS: i64 = 1_714_557_600_000;
/// 65 minutes: one hour of query range plus the 5 minute rate window before it.
const SCRAPES: usize = 261;
const QUERY_START_MS: i64 = DATA_START_MS + 5 * 60_000;
const QUERY_END_MS: i64 = QUERY_START_MS + 3_600_000;
const STEP_MS: i64 = 15_000;
/// Bump when the dataset changes, so a stale cached block is not reused.
const DATASET_VERSION: u32 = 1;

const JOBS: [&str; 5] = ["api-gateway", "checkout", "search", "auth", "catalog"];
const HANDLERS: [&str; 4] = ["/users", "/orders", "/products", "/sessions"];
const METHODS: [&str; 2] = ["GET", "POST"];
const CODES: [&str; 6] = ["200", "201", "400", "404", "500", "503"];
const LE: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];
const CPU_MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
const NET_DEVICES: [&str; 4] = ["lo", "eth0", "eth1", "docker0"];
const MOUNTS: [(&str, &str, &str); 6] = [
    ("/dev/sda1", "/", "ext4"),
    ("/dev/sda2", "/var", "ext4"),
    ("/dev/sdb1", "/data", "xfs"),
    ("tmpfs", "/run", "tmpfs"),
    ("tmpfs", "/dev/shm", "tmpfs"),
    ("overlay", "/var/lib/docker/overlay2", "overlay"),
];
const DISKS: [&str; 4] = ["sda", "sdb", "nvme0n1", "dm-0"];

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How a series' values evolve from scrape to scrape.
#[derive(Clone, Copy)]
enum Shape {
    /// Increments of whole units, mean `rate` per scrape.
    Counter { rate: f64 },
    /// Increments at centisecond resolution (CPU seconds).
    CentiCounter { rate: f64 },
    /// A full-precision float counter (`_sum` of durations).
    FloatCounter { rate: f64 },
    /// A whole-number gauge wandering by up to `step` around `base`.
    Gauge { base: f64, step: f64 },
    /// A constant (sizes, totals).
    Constant(f64),
}

fn values(shape: Shape, rng: &mut Rng) -> Vec<Sample> {
    let mut v = match shape {
        Shape::Counter { rate } | Shape::CentiCounter { rate } | Shape::FloatCounter { rate } => {
            (rate * 1000.0 * rng.unit()).round()
        }
        Shape::Gauge { base, .. } => base,
        Shape::Constant(c) => c,
    };
    (0..SCRAPES)
        .map(|i| {
            let t = DATA_START_MS + i as i64 * SCRAPE_MS;
            v = match shape {
                Shape::Counter { rate } => v + (rate * 2.0 * rng.unit()).round(),
                Shape::CentiCounter { rate } => {
                    ((v * 100.0).round() + (rate * 200.0 * rng.unit()).round()) / 100.0
                }
                Shape::FloatCounter { rate } => v + rate * 2.0 * rng.unit(),
                Shape::Gauge { base, step } => {
                    (v + ((rng.unit() - 0.5) * 2.0 * step).round()).clamp(0.0, base * 2.0)
                }
                Shape::Constant(c) => c,
            };
            Sample { t, v }
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// The series of host `h`, about 1,000 of them, with their samples.
fn host_series(h: usize) -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((h as u64 + 1) << 20));
    let node = format!("host-{h:03}:9100");
    let svc = format!("host-{h:03}:8080");
    let job = JOBS[h % JOBS.len()];
    let mut out: Vec<(Labels, Vec<Sample>)> = Vec::with_capacity(1024);
    fn push_to(out: &mut Vec<(Labels, Vec<Sample>)>, l: Labels, shape: Shape, rng: &mut Rng) {
        out.push((l, values(shape, rng)));
    }
    macro_rules! push {
        ($l:expr, $shape:expr, $rng:expr $(,)?) => {
            push_to(&mut out, $l, $shape, $rng)
        };
    }

    push!(
        labels(&[("__name__", "up"), ("job", "node"), ("instance", &node)]),
        Shape::Constant(1.0),
        &mut rng,
    );
    push!(
        labels(&[("__name__", "up"), ("job", job), ("instance", &svc)]),
        Shape::Constant(1.0),
        &mut rng,
    );
    // HTTP service: counters by handler/method/code, a classic histogram by handler/method.
    for handler in HANDLERS {
        for method in METHODS {
            let base = [
                ("job", job),
                ("instance", svc.as_str()),
                ("handler", handler),
                ("method", method),
            ];
            for (i, code) in CODES.iter().enumerate() {
                let mut l = vec![("__name__", "http_requests_total"), ("code", code)];
                l.extend_from_slice(&base);
                let rate = [200.0, 20.0, 5.0, 3.0, 1.0, 0.5][i];
                push!(labels(&l), Shape::Counter { rate }, &mut rng);
            }
            // Buckets: cumulative counts, consistent across le.
            let total = 50.0 + 200.0 * rng.unit();
            let mut bucket_rates = Vec::with_capacity(LE.len());
            let mut acc = 0.0;
            for i in 0..LE.len() {
                acc += total / LE.len() as f64 * (0.5 + rng.unit());
                bucket_rates.push(if i + 1 == LE.len() {
                    acc.max(total)
                } else {
                    acc
                });
            }
            let mut increments: Vec<Vec<f64>> = vec![Vec::with_capacity(SCRAPES); LE.len()];
            for _ in 0..SCRAPES {
                let mut c = 0.0;
                for (i, r) in bucket_rates.iter().enumerate() {
                    // Non-decreasing in le at every scrape.
                    let step = if i == 0 { *r } else { r - bucket_rates[i - 1] };
                    c += (step * 2.0 * rng.unit()).round();
                    increments[i].push(c);
                }
            }
            for (i, le) in LE.iter().enumerate() {
                let mut l = vec![
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("le", le),
                ];
                l.extend_from_slice(&base);
                let mut v = 0.0;
                let samples = increments[i]
                    .iter()
                    .enumerate()
                    .map(|(k, inc)| {
                        v += inc;
                        Sample {
                            t: DATA_START_MS + k as i64 * SCRAPE_MS,
                            v,
                        }
                    })
                    .collect();
                out.push((labels(&l), samples));
            }
            let mut l = vec![("__name__", "http_request_duration_seconds_count")];
            l.extend_from_slice(&base);
            push!(labels(&l), Shape::Counter { rate: total }, &mut rng);
            let mut l = vec![("__name__", "http_request_duration_seconds_sum")];
            l.extend_from_slice(&base);
            push!(
                labels(&l),
                Shape::FloatCounter { rate: total * 0.2 },
                &mut rng,
            );
        }
    }
    let node_base = [("job", "node"), ("instance", node.as_str())];
    let with = |name: &str, extra: &[(&str, &str)]| {
        let mut l = vec![("__name__", name)];
        l.extend_from_slice(&node_base);
        l.extend_from_slice(extra);
        labels(&l)
    };
    for cpu in 0..8 {
        let cpu = cpu.to_string();
        for (m, mode) in CPU_MODES.iter().enumerate() {
            let rate = if m == 0 { 12.0 } else { 1.0 + m as f64 / 4.0 };
            push!(
                with("node_cpu_seconds_total", &[("cpu", &cpu), ("mode", mode)]),
                Shape::CentiCounter { rate },
                &mut rng,
            );
        }
        // Interrupt counters: the high-cardinality node-exporter family.
        for irq in 0..78 {
            let irq = irq.to_string();
            push!(
                with(
                    "node_interrupts_total",
                    &[("cpu", &cpu), ("devices", "pci"), ("type", &irq)],
                ),
                Shape::Counter { rate: 30.0 },
                &mut rng,
            );
        }
    }
    for dev in NET_DEVICES {
        for dir in ["receive", "transmit"] {
            for (what, rate) in [
                ("bytes", 1e5),
                ("packets", 200.0),
                ("errs", 0.01),
                ("drop", 0.1),
            ] {
                let name = format!("node_network_{dir}_{what}_total");
                push!(
                    with(&name, &[("device", dev)]),
                    Shape::Counter { rate },
                    &mut rng,
                );
            }
        }
    }
    for (device, mountpoint, fstype) in MOUNTS {
        let size = 1e11 * (1.0 + rng.unit()).round();
        for (what, shape) in [
            ("size_bytes", Shape::Constant(size)),
            (
                "avail_bytes",
                Shape::Gauge {
                    base: size * 0.4,
                    step: 1e6,
                },
            ),
            (
                "free_bytes",
                Shape::Gauge {
                    base: size * 0.45,
                    step: 1e6,
                },
            ),
            ("files", Shape::Constant(6_553_600.0)),
            (
                "files_free",
                Shape::Gauge {
                    base: 5e6,
                    step: 100.0,
                },
            ),
        ] {
            let name = format!("node_filesystem_{what}");
            push!(
                with(
                    &name,
                    &[
                        ("device", device),
                        ("fstype", fstype),
                        ("mountpoint", mountpoint),
                    ],
                ),
                shape,
                &mut rng,
            );
        }
    }
    for disk in DISKS {
        for (i, what) in [
            "reads_completed",
            "writes_completed",
            "read_bytes",
            "written_bytes",
            "read_time_seconds",
            "write_time_seconds",
            "io_time_seconds",
            "reads_merged",
            "writes_merged",
            "discards_completed",
        ]
        .iter()
        .enumerate()
        {
            let name = format!("node_disk_{what}_total");
            push!(
                with(&name, &[("device", disk)]),
                Shape::Counter {
                    rate: 10.0 * (i + 1) as f64,
                },
                &mut rng,
            );
        }
    }
    let mem_total = 16.0 * 1024.0 * 1024.0 * 1024.0;
    push!(
        with("node_memory_MemTotal_bytes", &[]),
        Shape::Constant(mem_total),
        &mut rng,
    );
    push!(
        with("node_memory_MemAvailable_bytes", &[]),
        Shape::Gauge {
            base: mem_total * 0.5,
            step: 4096.0 * 200.0,
        },
        &mut rng,
    );
    for i in 0..48 {
        let name = format!("node_memory_Misc{i:02}_bytes");
        push!(
            with(&name, &[]),
            Shape::Gauge {
                base: 1e8 * (1.0 + i as f64),
                step: 4096.0 * 10.0,
            },
            &mut rng,
        );
    }
    push!(
        with("node_load1", &[]),
        Shape::Gauge {
            base: 4.0,
            step: 1.0,
        },
        &mut rng,
    );
    out
}

/// Appends every host's series in host-sized batches (bounded memory).
fn fill(db: &Db) -> usize {
    let mut n = 0;
    for h in 0..HOSTS {
        let batch = host_series(h);
        n += batch.len();
        let outcome = db.append(&batch).expect("append");
        assert_eq!(outcome.rejected_total(), 0, "host {h}: samples rejected");
    }
    n
}

fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join(format!("sextant-bench-promql-v{DATASET_VERSION}"))
}

/// The block-backed database: opened from the cached directory, or generated and flushed into
/// it first.
fn block_db() -> Db {
    let dir = cache_dir();
    let opts = DbOptions {
        fsync: FsyncPolicy::Never,
        // Keep everything; the data is old relative to the clock.
        retention_ms: 0,
        ..DbOptions::default()
    };
    let complete = dir.join("complete");
    if !complete.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create cache dir");
        let db = Db::open(&dir, opts.clone()).expect("open bench db");
        let t = Instant::now();
        let n = fill(&db);
        db.flush().expect("flush");
        eprintln!(
            "generated {n} series into a block in {:.1?} ({})",
            t.elapsed(),
            dir.display()
        );
        drop(db);
        std::fs::write(&complete, b"ok").expect("mark cache complete");
    }
    let db = Db::open(&dir, opts).expect("open cached bench db");
    assert_eq!(
        db.blocks().len(),
        1,
        "expected one block in {}",
        dir.display()
    );
    assert_eq!(db.head_stats().num_series, 0, "expected an empty head");
    db
}

fn head_db() -> Db {
    let db = Db::in_memory();
    let t = Instant::now();
    let n = fill(&db);
    eprintln!(
        "appended {n} series to an in-memory head in {:.1?}",
        t.elapsed()
    );
    assert!(n >= 100_000, "only {n} series");
    db
}

struct Query {
    name: &'static str,
    text: &'static str,
    /// Expected number of result series.
    series: usize,
}

const QUERIES: [Query; 3] = [
    Query {
        name: "sum_by_rate",
        text: "sum by (job) (rate(http_requests_total[5m]))",
        series: JOBS.len(),
    },
    Query {
        name: "histogram_quantile",
        text: "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
        series: JOBS.len(),
    },
    Query {
        // A regex on the metric name and negative regexes on labels: scans postings values.
        name: "regex_select",
        text: r#"{__name__=~"node_network_.+_bytes_total", device!~"lo|docker.*", instance=~"host-0[0-4].*"}"#,
        // 2 names x 2 devices x 50 hosts.
        series: 200,
    },
];

fn run(engine: &Engine, db: &Db, text: &str) -> Value {
    let expr = parse(text).expect("query parses");
    engine
        .range_query(db, text, &expr, QUERY_START_MS, QUERY_END_MS, STEP_MS)
        .expect("query runs")
        .value
}

fn check(engine: &Engine, db: &Db, q: &Query) {
    let Value::Matrix(m) = run(engine, db, q.text) else {
        panic!("{}: not a matrix", q.name);
    };
    assert_eq!(m.len(), q.series, "{}: result series", q.name);
    let steps = ((QUERY_END_MS - QUERY_START_MS) / STEP_MS + 1) as usize;
    for s in &m {
        assert_eq!(s.points.len(), steps, "{}: points of {}", q.name, s.labels);
        assert!(
            s.points.iter().all(|p| p.1.is_finite() && p.1 > 0.0),
            "{}: non-positive or non-finite value in {}",
            q.name,
            s.labels
        );
    }
}

fn bench_layout(c: &mut Criterion, layout: &str, db: &Db) {
    let engine = Engine::new(EngineOptions::default());
    let mut group = c.benchmark_group(format!("promql_{layout}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    for q in &QUERIES {
        // Checked inside the routine so that filtered-out benchmarks cost nothing.
        let mut checked = false;
        group.bench_function(q.name, |b| {
            if !std::mem::replace(&mut checked, true) {
                check(&engine, db, q);
            }
            b.iter(|| black_box(run(&engine, db, q.text)))
        });
    }
    group.finish();
}

/// The storage part alone: `SeriesSource::select` of each query's selector over the span the
/// engine prefetches (the query range plus the 5m window), with the expected series count.
fn selectors() -> Vec<(&'static str, Vec<Matcher>, usize)> {
    let m = |op, name: &str, value: &str| Matcher::new(op, name, value).expect("valid matcher");
    vec![
        (
            "http_requests_total",
            vec![m(MatchOp::Equal, "__name__", "http_requests_total")],
            HOSTS * HANDLERS.len() * METHODS.len() * CODES.len(),
        ),
        (
            "http_request_duration_seconds_bucket",
            vec![m(
                MatchOp::Equal,
                "__name__",
                "http_request_duration_seconds_bucket",
            )],
            HOSTS * HANDLERS.len() * METHODS.len() * LE.len(),
        ),
        (
            "regex",
            vec![
                m(MatchOp::Regex, "__name__", "node_network_.+_bytes_total"),
                m(MatchOp::NotRegex, "device", "lo|docker.*"),
                m(MatchOp::Regex, "instance", "host-0[0-4].*"),
            ],
            200,
        ),
    ]
}

fn bench_select(c: &mut Criterion, layout: &str, db: &Db) {
    let mut group = c.benchmark_group(format!("select_{layout}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let (mint, maxt) = (QUERY_START_MS - 5 * 60_000, QUERY_END_MS);
    for (name, matchers, expected) in selectors() {
        let mut checked = false;
        group.bench_function(name, |b| {
            if !std::mem::replace(&mut checked, true) {
                let got = db.select(&matchers, mint, maxt).expect("select");
                assert_eq!(got.len(), expected, "select {name}: series");
                assert!(
                    got.iter().all(|s| s.samples.len() >= SCRAPES - 1),
                    "select {name}: missing samples"
                );
            }
            b.iter(|| black_box(db.select(&matchers, mint, maxt).expect("select")))
        });
    }
    group.finish();
}

fn promql(c: &mut Criterion) {
    let only = std::env::var("PROMQL_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "block" {
        let db = block_db();
        bench_select(c, "block", &db);
        bench_layout(c, "block", &db);
    }
    if only.is_empty() || only == "head" {
        let db = head_db();
        bench_select(c, "head", &db);
        bench_layout(c, "head", &db);
    }
}

criterion_group!(benches, promql);
criterion_main!(benches);
