//! PromQL range queries over an in-memory `Db` of node_exporter-like and HTTP-histogram
//! series (about 100k by default; `SEXTANT_BENCH_HOSTS` scales it), one hour at 15 s steps,
//! with the columnar fast path ("fast") and with it disabled ("reference"). Every query's
//! answer is checked once to be non-empty and identical on both paths before measuring (that
//! one run of each is timed and printed); criterion measures the reference too when
//! `SEXTANT_BENCH_REFERENCE` is set (it takes minutes per query at full scale).

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sextant_query::promql::{parse, Engine, EngineOptions, Value};
use sextant_storage::{Db, Labels, Sample};

const START_MS: i64 = 1_714_557_600_000;
const SCRAPE_MS: i64 = 15_000;
/// Data span: the hour queried plus the longest range (10m) before it.
const SPAN_MS: i64 = 70 * 60 * 1000;
const MODES: [&str; 8] = [
    "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
];
const CPUS: usize = 8;
const LES: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn counter(rng: &mut Rng, rate: f64) -> Vec<Sample> {
    let mut v = rng.unit() * 1e4;
    let mut t = START_MS + (rng.next() % 1000) as i64;
    let mut out = Vec::new();
    while t < START_MS + SPAN_MS {
        v += rng.unit() * rate;
        out.push(Sample { t, v: v.round() });
        t += SCRAPE_MS;
    }
    out
}

fn gauge(rng: &mut Rng, scale: f64) -> Vec<Sample> {
    let mut t = START_MS + (rng.next() % 1000) as i64;
    let mut out = Vec::new();
    while t < START_MS + SPAN_MS {
        out.push(Sample {
            t,
            v: (rng.unit() * scale).round(),
        });
        t += SCRAPE_MS;
    }
    out
}

/// `hosts` hosts × (64 CPU counters + memory, load, up) and `hosts / 2` HTTP targets ×
/// (10 buckets + sum + count + 4 request counters).
fn build(hosts: usize) -> (Db, usize) {
    let db = Db::in_memory();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut n = 0;
    for h in 0..hosts {
        let instance = format!("host-{h:04}:9100");
        let job = format!("job-{}", h % 10);
        let mut batch: Vec<(Labels, Vec<Sample>)> = Vec::new();
        for mode in MODES {
            for cpu in 0..CPUS {
                let c = cpu.to_string();
                batch.push((
                    labels(&[
                        ("__name__", "node_cpu_seconds_total"),
                        ("cpu", &c),
                        ("instance", &instance),
                        ("mode", mode),
                    ]),
                    counter(&mut rng, 15.0),
                ));
            }
        }
        for (name, scale) in [
            ("node_memory_MemAvailable_bytes", 4e9),
            ("node_memory_MemTotal_bytes", 8e9),
            ("node_load1", 8.0),
        ] {
            batch.push((
                labels(&[("__name__", name), ("instance", &instance)]),
                gauge(&mut rng, scale),
            ));
        }
        batch.push((
            labels(&[("__name__", "up"), ("instance", &instance), ("job", "node")]),
            gauge(&mut rng, 1.0),
        ));
        if h % 2 == 0 {
            for le in LES {
                batch.push((
                    labels(&[
                        ("__name__", "http_request_duration_seconds_bucket"),
                        ("instance", &instance),
                        ("job", &job),
                        ("le", le),
                    ]),
                    counter(&mut rng, 100.0),
                ));
            }
            for code in ["200", "404", "500", "503"] {
                batch.push((
                    labels(&[
                        ("__name__", "http_requests_total"),
                        ("code", code),
                        ("instance", &instance),
                        ("job", &job),
                    ]),
                    counter(&mut rng, 50.0),
                ));
            }
        }
        n += batch.len();
        if let Err(e) = db.append(&batch) {
            panic!("append: {e}");
        }
    }
    (db, n)
}

const QUERIES: &[(&str, &str)] = &[
    (
        "cpu_busy_by_instance",
        r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
    ),
    (
        "mem_used_ratio",
        "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    ),
    ("load1_avg_10m", "avg_over_time(node_load1[10m])"),
    (
        "max_mem_ratio_by_instance",
        "max by (instance) (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    ),
    (
        "topk5_cpu",
        r#"topk(5, sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m])))"#,
    ),
    ("http_rps_by_job", "sum by (job) (rate(http_requests_total[5m]))"),
    (
        "http_error_ratio_by_job",
        r#"sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m]))"#,
    ),
    (
        "http_p99_by_job",
        "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    ("up_count_by_job", "count by (job) (up)"),
    (
        "raw_cpu_one_host",
        r#"node_cpu_seconds_total{instance="host-0001:9100"}"#,
    ),
];

fn bench(c: &mut Criterion) {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` each benchmark runs once
    // as a smoke test, on a small dataset so an unoptimised build finishes quickly.
    let measuring = std::env::args().any(|a| a == "--bench");
    let hosts = std::env::var("SEXTANT_BENCH_HOSTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if measuring { 1400 } else { 10 });
    let with_reference = std::env::var_os("SEXTANT_BENCH_REFERENCE").is_some();
    let (db, n) = build(hosts);
    eprintln!("promql_range: {n} series");
    let start = START_MS + 10 * 60 * 1000;
    let end = START_MS + SPAN_MS;
    let fast = Engine::new(EngineOptions::default());
    let reference = Engine::new(EngineOptions {
        columnar: false,
        ..EngineOptions::default()
    });
    let mut g = c.benchmark_group("promql_range");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.warm_up_time(Duration::from_millis(500));
    for (name, q) in QUERIES {
        let expr = match parse(q) {
            Ok(e) => e,
            Err(e) => panic!("{q}: {e}"),
        };
        let run = |e: &Engine| match e.range_query(&db, q, &expr, start, end, SCRAPE_MS) {
            Ok(r) => r,
            Err(err) => panic!("{q}: {err}"),
        };
        let t0 = Instant::now();
        let a = run(&fast);
        let t1 = Instant::now();
        let b = run(&reference);
        let t2 = Instant::now();
        eprintln!(
            "promql_range/{name}: one run: fast {:.3} s, reference {:.3} s",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64()
        );
        match &a.value {
            Value::Matrix(m) if !m.is_empty() => {}
            _ => panic!("{q}: empty result"),
        }
        // Debug output prints floats exactly (and NaN equal to NaN).
        // (Statistics differ by design: only the reference counts samples.)
        assert_eq!(
            format!("{:?}", (&a.value, &a.warnings, &a.infos)),
            format!("{:?}", (&b.value, &b.warnings, &b.infos)),
            "{q}: fast path and reference differ"
        );
        g.bench_function(format!("{name}/fast"), |bch| {
            bch.iter(|| black_box(run(&fast)))
        });
        // The reference is ~40x slower at this scale: measured only on request.
        if with_reference {
            g.bench_function(format!("{name}/reference"), |bch| {
                bch.iter(|| black_box(run(&reference)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
