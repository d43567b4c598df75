//! The fast path against the reference evaluator on a generated dataset, for every
//! supported node type.

use std::time::{Duration, Instant};

use sextant_storage::{Db, Labels, STALE_NAN_BITS};

use super::{try_instant, try_range};
use crate::promql::engine::prefetch;
use crate::promql::engine::tests::{db, l};
use crate::promql::engine::{Engine, EngineOptions};
use crate::promql::parse;
use crate::promql::value::{QueryResult, Value, VectorSample};

const T0: i64 = 1_000_000;

/// xorshift64: deterministic data without a dependency.
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

fn dataset() -> Db {
    db(&dataset_series())
}

/// The same series in a directory-backed database: samples before `T0 + 1_200_000` in a block,
/// the rest in the head (series spanning both read from two sources).
fn dataset_in_block_and_head() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let d = Db::open(dir.path(), sextant_storage::DbOptions::default()).unwrap();
    let split = |early: bool| -> Vec<(Labels, Vec<sextant_storage::Sample>)> {
        dataset_series()
            .into_iter()
            .map(|(l, pts)| {
                let pts = pts
                    .into_iter()
                    .filter(|&(t, _)| (t < T0 + 1_200_000) == early)
                    .map(|(t, v)| sextant_storage::Sample { t, v })
                    .collect();
                (l, pts)
            })
            .collect()
    };
    d.append(&split(true)).unwrap();
    d.flush().unwrap();
    d.append(&split(false)).unwrap();
    (dir, d)
}

/// Counters with resets, gaps and staleness markers, gauges, classic histogram buckets.
fn dataset_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut series: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    let samples = |rng: &mut Rng, counter: bool, scale: f64| -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        let mut v = rng.unit() * scale;
        let mut t = T0 + (rng.next() % 5000) as i64;
        for _ in 0..160 {
            t += 15_000 + (rng.next() % 200) as i64 - 100;
            let r = rng.next() % 100;
            if r < 3 {
                // A gap longer than the lookback delta now and then.
                t += 400_000;
                continue;
            }
            if r < 5 {
                out.push((t, f64::from_bits(STALE_NAN_BITS)));
                continue;
            }
            if counter {
                if r < 7 {
                    v = rng.unit() * 10.0; // counter reset
                } else {
                    v += rng.unit() * scale / 100.0;
                }
            } else {
                v = rng.unit() * scale;
            }
            out.push((t, v));
        }
        out
    };
    for host in 0..6 {
        let instance = format!("host-{host}:9100");
        for mode in ["idle", "user", "system"] {
            for cpu in 0..3 {
                let c = cpu.to_string();
                let lb = l(&[
                    ("__name__", "node_cpu_seconds_total"),
                    ("instance", &instance),
                    ("mode", mode),
                    ("cpu", &c),
                ]);
                series.push((lb, samples(&mut rng, true, 1000.0)));
            }
        }
        for (name, scale) in [
            ("node_memory_MemAvailable_bytes", 1e9),
            ("node_memory_MemTotal_bytes", 4e9),
            ("node_load1", 4.0),
        ] {
            let lb = l(&[("__name__", name), ("instance", &instance)]);
            series.push((lb, samples(&mut rng, false, scale)));
        }
        let lb = l(&[("__name__", "up"), ("instance", &instance), ("job", "node")]);
        series.push((lb, samples(&mut rng, false, 1.0)));
    }
    for job in ["api", "web"] {
        for inst in 0..3 {
            let i = inst.to_string();
            for code in ["200", "500"] {
                let lb = l(&[
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", &i),
                    ("code", code),
                ]);
                series.push((lb, samples(&mut rng, true, 500.0)));
            }
            for le in ["0.1", "0.5", "1", "+Inf"] {
                let lb = l(&[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", job),
                    ("instance", &i),
                    ("le", le),
                ]);
                series.push((lb, samples(&mut rng, true, 300.0)));
            }
        }
    }
    series
}

/// Every supported node type, alone and combined.
const QUERIES: &[&str] = &[
    "42",
    "1 + 2 * 3",
    "node_load1",
    "node_load1 offset 2m",
    "(node_cpu_seconds_total)",
    "-node_load1",
    "rate(node_cpu_seconds_total[5m])",
    "increase(node_cpu_seconds_total[5m] offset 1m)",
    "delta(node_load1[5m])",
    "irate(node_cpu_seconds_total[1m])",
    "idelta(node_load1[2m])",
    "avg_over_time(node_load1[10m])",
    "sum_over_time(node_load1[10m])",
    "count_over_time(node_load1[10m])",
    "min_over_time(node_load1[10m])",
    "max_over_time(node_load1[10m])",
    "last_over_time(node_load1[3m])",
    "first_over_time(node_load1[3m])",
    "stddev_over_time(node_load1[10m])",
    "stdvar_over_time(node_load1[10m])",
    "present_over_time(node_load1[1m])",
    "changes(node_load1[10m])",
    "resets(node_cpu_seconds_total[10m])",
    "deriv(node_load1[10m])",
    "ts_of_max_over_time(node_load1[10m])",
    "mad_over_time(node_load1[10m])",
    "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m]))",
    "sum without (cpu) (rate(node_cpu_seconds_total[5m]))",
    "avg by (mode) (node_cpu_seconds_total)",
    "min by (instance) (node_cpu_seconds_total)",
    "max(node_load1)",
    "count(node_cpu_seconds_total)",
    "sum((node_cpu_seconds_total))",
    "avg by () (node_load1)",
    "group(up) + count without () (up)",
    "min(node_load1) - max(http_requests_total)",
    "count by (job) (up)",
    "group by (instance) (node_cpu_seconds_total)",
    "sum by (__name__) (node_load1)",
    "topk(2, node_load1)",
    "bottomk(2, sum by (instance) (rate(node_cpu_seconds_total[5m])))",
    "topk(5, sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m])))",
    "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    "max by (instance) (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    "node_load1 > 2",
    "node_load1 > bool 2",
    "2 < node_load1",
    "node_load1 * 2 + 1",
    "node_memory_MemAvailable_bytes > on (instance) node_memory_MemTotal_bytes * 0.2",
    "node_memory_MemAvailable_bytes / ignoring (x) node_memory_MemTotal_bytes",
    "node_memory_MemAvailable_bytes < bool node_memory_MemTotal_bytes",
    "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.9, http_request_duration_seconds_bucket)",
    "histogram_quantile(1.5, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
];

fn opts(delayed: bool, columnar: bool) -> EngineOptions {
    EngineOptions {
        delayed_name_removal: delayed,
        columnar,
        ..EngineOptions::default()
    }
}

/// Float-exact comparison (bit patterns), labels and annotations included.
fn assert_same(q: &str, fast: &QueryResult, slow: &QueryResult) {
    assert_eq!(fast.warnings, slow.warnings, "{q}: warnings");
    assert_eq!(fast.infos, slow.infos, "{q}: infos");
    let (Value::Matrix(f), Value::Matrix(s)) = (&fast.value, &slow.value) else {
        panic!("{q}: not matrices");
    };
    assert_eq!(f.len(), s.len(), "{q}: series count");
    for (a, b) in f.iter().zip(s) {
        assert_eq!(a.labels, b.labels, "{q}");
        assert_eq!(a.points.len(), b.points.len(), "{q}: {}", a.labels);
        for (x, y) in a.points.iter().zip(&b.points) {
            assert_eq!(x.0, y.0, "{q}: {}", a.labels);
            assert_eq!(x.1.to_bits(), y.1.to_bits(), "{q}: {} at {}", a.labels, x.0);
        }
        assert!(a.histograms.is_empty() && b.histograms.is_empty());
    }
}

#[test]
fn fast_path_matches_reference_for_every_supported_node() {
    let d = dataset();
    let (start, end) = (T0 + 120_000, T0 + 160 * 15_000);
    for delayed in [false, true] {
        for step in [15_000, 60_000, 7_000] {
            for q in QUERIES {
                let expr = parse(q).unwrap();
                let slow = Engine::new(opts(delayed, false))
                    .range_query(&d, q, &expr, start, end, step)
                    .unwrap();
                let o = opts(delayed, true);
                let data = prefetch::load(&d, &expr, start, end, &o).unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                let fast = try_range(&data, None, &o, q, &expr, start, end, step, deadline)
                    .unwrap_or_else(|| panic!("{q}: fell back (delayed={delayed})"))
                    .unwrap();
                assert_same(q, &fast, &slow);
                let via_engine = Engine::new(o)
                    .range_query(&d, q, &expr, start, end, step)
                    .unwrap();
                assert_same(q, &via_engine, &slow);
            }
        }
    }
}

#[test]
fn deferred_decoding_matches_reference_over_blocks_and_head() {
    let (_dir, d) = dataset_in_block_and_head();
    let (start, end) = (T0 + 120_000, T0 + 160 * 15_000);
    let none = prefetch::Data::new();
    for delayed in [false, true] {
        let o = opts(delayed, true);
        for q in QUERIES {
            let expr = parse(q).unwrap();
            let lazy = prefetch::load_lazy(&d, &expr, start, end, &o)
                .unwrap()
                .expect("a database defers decoding");
            for step in [15_000, 60_000] {
                let slow = Engine::new(opts(delayed, false))
                    .range_query(&d, q, &expr, start, end, step)
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                let fast = try_range(&none, Some(&lazy), &o, q, &expr, start, end, step, deadline)
                    .unwrap_or_else(|| panic!("{q}: fell back (delayed={delayed})"))
                    .unwrap();
                assert_same(q, &fast, &slow);
            }
            for t in [T0 + 1_000_000, T0 + 1_234_567, T0 + 160 * 15_000] {
                if q.contains("topk") || q.contains("bottomk") {
                    continue;
                }
                let lazy = prefetch::load_lazy(&d, &expr, t, t, &o).unwrap().unwrap();
                let slow = Engine::new(opts(delayed, false))
                    .instant_query(&d, q, &expr, t)
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                let fast = try_instant(&none, Some(&lazy), &o, q, &expr, t, deadline)
                    .unwrap_or_else(|| panic!("{q}: instant fell back (delayed={delayed})"))
                    .unwrap();
                assert_eq!(instant_rows(q, &fast), instant_rows(q, &slow), "{q} at {t}");
            }
        }
    }
}

#[test]
fn fast_path_has_some_output() {
    // Guards the comparison above against comparing empty results.
    let d = dataset();
    let q = "sum by (instance) (rate(node_cpu_seconds_total[5m]))";
    let expr = parse(q).unwrap();
    let r = Engine::new(opts(false, true))
        .range_query(&d, q, &expr, T0 + 120_000, T0 + 2_000_000, 15_000)
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("not a matrix")
    };
    assert_eq!(m.len(), 6);
    assert!(m.iter().all(|s| s.points.len() > 50));
}

#[test]
fn unsupported_or_risky_queries_fall_back() {
    let d = dataset();
    let (start, end) = (T0 + 120_000, T0 + 2_000_000);
    for q in [
        // rate of a name that doesn't look like a counter raises an info
        "rate(node_load1[5m])",
        "node_load1 @ 1000",
        "max_over_time(node_load1[10m:1m])",
        "label_replace(node_load1, \"a\", \"b\", \"c\", \"d\")",
        "node_load1 and up",
        "quantile(0.5, node_load1)",
        // duplicate match signatures on the right-hand side
        "node_load1 / ignoring (instance) node_load1",
        // name removal makes the series collide
        "-{__name__=~\"node_memory_.*\"}",
    ] {
        let expr = parse(q).unwrap();
        let o = opts(false, true);
        let data = prefetch::load(&d, &expr, start, end, &o).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        assert!(
            try_range(&data, None, &o, q, &expr, start, end, 15_000, deadline).is_none(),
            "{q} should fall back"
        );
    }
}

#[test]
fn sample_limit_falls_back_to_the_reference_error() {
    let d = dataset();
    let q = "sum(rate(node_cpu_seconds_total[5m]))";
    let expr = parse(q).unwrap();
    let o = EngineOptions {
        max_samples: 100,
        ..EngineOptions::default()
    };
    let err = Engine::new(o)
        .range_query(&d, q, &expr, T0 + 120_000, T0 + 2_000_000, 15_000)
        .unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
}

/// Instant results as label-sorted `(labels, t, value bits)`: the reference's vector order is
/// not specified, the fast path's is by labels.
fn instant_rows(q: &str, r: &QueryResult) -> Vec<(String, i64, u64)> {
    match &r.value {
        Value::Vector(v) => {
            let mut rows: Vec<(String, i64, u64)> = v
                .iter()
                .map(|s: &VectorSample| {
                    assert!(s.h.is_none(), "{q}: histogram sample");
                    (s.labels.to_string(), s.t, s.v.to_bits())
                })
                .collect();
            rows.sort();
            rows
        }
        Value::Scalar(t, v) => vec![(String::new(), *t, v.to_bits())],
        other => panic!("{q}: unexpected {other:?}"),
    }
}

#[test]
fn instant_fast_path_matches_reference() {
    let d = dataset();
    let mut compared_rows = 0usize;
    let mut ordered_rows = 0usize;
    for delayed in [false, true] {
        for t in [
            T0 + 120_000,
            T0 + 1_000_000,
            T0 + 1_234_567,
            T0 + 160 * 15_000,
        ] {
            for q in QUERIES {
                let expr = parse(q).unwrap();
                let slow = Engine::new(opts(delayed, false))
                    .instant_query(&d, q, &expr, t)
                    .unwrap();
                let o = opts(delayed, true);
                let data = prefetch::load(&d, &expr, t, t, &o).unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                let fast = try_instant(&data, None, &o, q, &expr, t, deadline);
                if q.contains("topk") || q.contains("bottomk") {
                    // Ordered results: the fast path answers ungrouped ones at the top, in
                    // the reference's order (by value) — the rows are compared as returned.
                    let Some(fast) = fast else {
                        continue;
                    };
                    let fast = fast.unwrap();
                    let ordered = |r: &QueryResult| -> Vec<(String, u64)> {
                        match &r.value {
                            Value::Vector(v) => v
                                .iter()
                                .map(|s| (s.labels.to_string(), s.v.to_bits()))
                                .collect(),
                            other => panic!("{q}: unexpected {other:?}"),
                        }
                    };
                    assert_eq!(ordered(&fast), ordered(&slow), "{q} at {t}");
                    let via_engine = Engine::new(o).instant_query(&d, q, &expr, t).unwrap();
                    assert_eq!(ordered(&via_engine), ordered(&slow), "{q} at {t}");
                    ordered_rows += ordered(&slow).len();
                    continue;
                }
                let fast = fast
                    .unwrap_or_else(|| panic!("{q}: fell back (delayed={delayed})"))
                    .unwrap();
                assert_eq!(fast.warnings, slow.warnings, "{q}: warnings");
                assert_eq!(fast.infos, slow.infos, "{q}: infos");
                let want = instant_rows(q, &slow);
                assert_eq!(instant_rows(q, &fast), want, "{q} at {t}");
                let via_engine = Engine::new(o).instant_query(&d, q, &expr, t).unwrap();
                assert_eq!(instant_rows(q, &via_engine), want, "{q} at {t}");
                compared_rows += want.len();
            }
        }
    }
    assert!(
        compared_rows > 1000,
        "too little output compared: {compared_rows}"
    );
    assert!(
        ordered_rows > 30,
        "too few topk/bottomk rows on the fast path: {ordered_rows}"
    );
}

#[test]
fn instant_topk_with_grouping_or_ties_falls_back() {
    let d = dataset();
    let t = T0 + 1_000_000;
    let o = opts(false, true);
    for (q, fast_ok) in [
        ("topk(3, node_load1)", true),
        ("(bottomk(3, node_load1))", true),
        ("topk by (instance) (1, node_cpu_seconds_total)", false),
        ("topk without (cpu) (1, node_cpu_seconds_total)", false),
        // Every input is 1: ties are the reference's to break.
        ("topk(2, node_load1 > bool -1)", false),
        ("topk(2, node_load1) + 1", false),
    ] {
        let expr = parse(q).unwrap();
        let data = prefetch::load(&d, &expr, t, t, &o).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let fast = try_instant(&data, None, &o, q, &expr, t, deadline);
        assert_eq!(fast.is_some(), fast_ok, "{q}");
    }
}

#[test]
fn instant_stats_query_uses_the_reference_accounting() {
    let d = dataset();
    let q = "sum(rate(node_cpu_seconds_total[5m]))";
    let expr = parse(q).unwrap();
    let t = T0 + 1_000_000;
    let e = Engine::new(opts(false, true));
    let with_stats = e.instant_query_with_stats(&d, q, &expr, t).unwrap();
    let fast = e.instant_query(&d, q, &expr, t).unwrap();
    assert!(with_stats.stats.total_samples > 0);
    assert_eq!(instant_rows(q, &fast), instant_rows(q, &with_stats));
}

/// Counters without staleness markers take the in-place rate path; with and without resets.
#[test]
fn rate_without_staleness_markers_matches_reference() {
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    let mut series = Vec::new();
    for i in 0..8 {
        let mut v = 0.0;
        let mut t = T0;
        let mut samples = Vec::new();
        for _ in 0..200 {
            t += 15_000 + (rng.next() % 300) as i64;
            if i % 2 == 1 && rng.next().is_multiple_of(40) {
                v = rng.unit(); // reset
            } else {
                v += rng.unit() * 10.0;
            }
            samples.push((t, v));
        }
        let inst = i.to_string();
        series.push((l(&[("__name__", "c_total"), ("instance", &inst)]), samples));
    }
    let d = db(&series);
    let (start, end) = (T0 + 60_000, T0 + 200 * 15_000);
    for q in [
        "rate(c_total[5m])",
        "increase(c_total[2m])",
        "sum(rate(c_total[1m] offset 30s))",
    ] {
        let expr = parse(q).unwrap();
        let slow = Engine::new(opts(false, false))
            .range_query(&d, q, &expr, start, end, 10_000)
            .unwrap();
        let fast = Engine::new(opts(false, true))
            .range_query(&d, q, &expr, start, end, 10_000)
            .unwrap();
        assert_same(q, &fast, &slow);
        let Value::Matrix(m) = &fast.value else {
            panic!("{q}: not a matrix")
        };
        assert!(m.iter().map(|s| s.points.len()).sum::<usize>() > 100, "{q}");
    }
}
