//! Storage hot paths: the block chunk codec (encode and decode, samples/s), postings
//! intersection when selecting among 100k node_exporter-like series, and finding existing
//! series when appending one sample to each of 10k of them. Every benchmark checks its answer
//! once before measuring, so none can silently measure an empty result.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sextant_storage::encoding::{decode, encode};
use sextant_storage::{Db, Labels, MatchOp, Matcher, Sample, SeriesSource};

const START_MS: i64 = 1_714_557_600_000;
const SCRAPE_MS: i64 = 15_000;
/// A two-hour block at a 15 s scrape interval: one chunk per series.
const CHUNK_SAMPLES: usize = 480;
const CHUNKS: usize = 200;

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

/// Scrape timestamps: 15 s apart with a few milliseconds of jitter.
fn timestamps(rng: &mut Rng, n: usize) -> Vec<i64> {
    let mut t = START_MS + (rng.next() % 1000) as i64;
    (0..n)
        .map(|_| {
            t += SCRAPE_MS + (rng.next() % 11) as i64 - 5;
            t
        })
        .collect()
}

/// `CHUNKS` chunks of one kind of series.
fn chunks_of(kind: &str) -> Vec<Vec<Sample>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ kind.len() as u64);
    (0..CHUNKS)
        .map(|_| {
            let ts = timestamps(&mut rng, CHUNK_SAMPLES);
            let mut v = rng.unit() * 1e6;
            ts.into_iter()
                .map(|t| {
                    v = match kind {
                        // CPU seconds counters: centisecond resolution, small increments.
                        "counter_centiseconds" => {
                            ((v * 100.0).round() + (rng.next() % 1500) as f64) / 100.0
                        }
                        // Byte gauges wandering up and down by whole bytes.
                        "gauge_random_walk" => {
                            (v.round() + (rng.next() % 20_001) as f64 - 10_000.0).max(0.0)
                        }
                        // Computed ratios and rates: every mantissa bit in use.
                        _ => rng.unit() * 1000.0 / 3.0,
                    };
                    Sample { t, v }
                })
                .collect()
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_codec");
    for kind in [
        "counter_centiseconds",
        "gauge_random_walk",
        "full_precision",
    ] {
        let chunks = chunks_of(kind);
        let total = (CHUNKS * CHUNK_SAMPLES) as u64;
        let encoded: Vec<Vec<u8>> = chunks
            .iter()
            .map(|c| {
                let mut out = Vec::new();
                encode(c, &mut out);
                out
            })
            .collect();
        // Round trip, bit for bit, before timing anything.
        for (c, bytes) in chunks.iter().zip(&encoded) {
            let mut back = Vec::new();
            decode(bytes, &mut back).expect("decodes");
            assert_eq!(back.len(), c.len());
            assert!(back
                .iter()
                .zip(c)
                .all(|(a, b)| a.t == b.t && a.v.to_bits() == b.v.to_bits()));
        }
        let bytes: usize = encoded.iter().map(Vec::len).sum();
        println!(
            "chunk_codec/{kind}: {:.2} bytes/sample before zstd",
            bytes as f64 / total as f64
        );
        group.throughput(Throughput::Elements(total));
        group.bench_with_input(BenchmarkId::new("encode", kind), &chunks, |b, chunks| {
            let mut out = Vec::with_capacity(bytes);
            b.iter(|| {
                out.clear();
                for c in chunks {
                    encode(c, &mut out);
                }
                assert!(out.len() == bytes);
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("decode", kind), &encoded, |b, encoded| {
            let mut out = Vec::with_capacity(CHUNK_SAMPLES);
            b.iter(|| {
                let mut n = 0;
                for bytes in encoded {
                    out.clear();
                    decode(bytes, &mut out).expect("decodes");
                    n += out.len();
                }
                assert!(n as u64 == total);
                black_box(n)
            })
        });
    }
    group.finish();
}

/// node_exporter-like label sets: per host, CPU modes, network, filesystem, disk and memory
/// series, until there are `n`.
fn node_series(n: usize) -> Vec<Labels> {
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    let mut out = Vec::with_capacity(n);
    let mut host = 0;
    'hosts: loop {
        let instance = format!("host-{host:04}:9100");
        let dc = ["eu-west", "us-east", "ap-south"][host % 3];
        let mut push = |name: &str, extra: &[(&str, &str)]| -> bool {
            let mut pairs = vec![
                ("__name__", name.to_string()),
                ("instance", instance.clone()),
                ("job", "node".to_string()),
                ("dc", dc.to_string()),
            ];
            pairs.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            out.push(Labels::from_pairs(pairs));
            out.len() < n
        };
        for cpu in 0..16 {
            for mode in modes {
                if !push(
                    "node_cpu_seconds_total",
                    &[("cpu", &cpu.to_string()), ("mode", mode)],
                ) {
                    break 'hosts;
                }
            }
        }
        for dev in ["eth0", "eth1", "lo", "docker0"] {
            for m in [
                "receive_bytes",
                "transmit_bytes",
                "receive_packets",
                "transmit_packets",
                "receive_drop",
                "transmit_errs",
            ] {
                if !push(&format!("node_network_{m}_total"), &[("device", dev)]) {
                    break 'hosts;
                }
            }
        }
        for (dev, mp, fs) in [
            ("/dev/sda1", "/", "ext4"),
            ("/dev/sdb1", "/data", "xfs"),
            ("tmpfs", "/run", "tmpfs"),
            ("/dev/sdc1", "/var/lib/docker", "ext4"),
        ] {
            for m in ["avail_bytes", "size_bytes", "free_bytes", "files_free"] {
                if !push(
                    &format!("node_filesystem_{m}"),
                    &[("device", dev), ("fstype", fs), ("mountpoint", mp)],
                ) {
                    break 'hosts;
                }
            }
        }
        for dev in ["sda", "sdb", "sdc", "nvme0n1"] {
            for m in [
                "reads_completed",
                "writes_completed",
                "read_bytes",
                "written_bytes",
                "io_time_seconds",
            ] {
                if !push(&format!("node_disk_{m}_total"), &[("device", dev)]) {
                    break 'hosts;
                }
            }
        }
        for m in [
            "MemTotal",
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "SwapTotal",
            "SwapFree",
            "Active",
            "Inactive",
            "Dirty",
        ] {
            if !push(&format!("node_memory_{m}_bytes"), &[]) {
                break 'hosts;
            }
        }
        host += 1;
    }
    out
}

struct Selection {
    name: &'static str,
    matchers: Vec<Matcher>,
    expected: usize,
}

fn selections(all: &[Labels]) -> Vec<Selection> {
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    let defs: Vec<(&'static str, Vec<Matcher>)> = vec![
        (
            "eq+alternation+neq",
            vec![
                Matcher::equal("__name__", "node_cpu_seconds_total"),
                m(MatchOp::Regex, "mode", "user|system|iowait"),
                m(MatchOp::NotEqual, "dc", "ap-south"),
            ],
        ),
        (
            "regex+eq+nregex",
            vec![
                m(MatchOp::Regex, "__name__", "node_network_.*_bytes_total"),
                Matcher::equal("job", "node"),
                m(MatchOp::NotRegex, "device", "lo|docker.*"),
            ],
        ),
        (
            "eq+eq",
            vec![
                Matcher::equal("__name__", "node_filesystem_avail_bytes"),
                Matcher::equal("instance", "host-0042:9100"),
            ],
        ),
    ];
    defs.into_iter()
        .map(|(name, matchers)| {
            let expected = all
                .iter()
                .filter(|l| matchers.iter().all(|m| m.matches_labels(l)))
                .count();
            assert!(expected > 0, "{name} selects nothing");
            Selection {
                name,
                matchers,
                expected,
            }
        })
        .collect()
}

fn postings(c: &mut Criterion) {
    const N: usize = 100_000;
    let all = node_series(N);
    assert_eq!(all.len(), N);
    let db = Db::in_memory();
    let batch: Vec<(Labels, Vec<Sample>)> = all
        .iter()
        .map(|l| {
            (
                l.clone(),
                vec![Sample {
                    t: START_MS,
                    v: 1.0,
                }],
            )
        })
        .collect();
    assert_eq!(db.append(&batch).unwrap().appended, N);
    drop(batch);
    let mut group = c.benchmark_group("postings_100k_series");
    for sel in selections(&all) {
        // One sample per series: `select` is dominated by finding the series, not decoding.
        let got = db.select(&sel.matchers, START_MS, START_MS).unwrap();
        assert_eq!(got.len(), sel.expected, "{}", sel.name);
        assert!(got
            .iter()
            .all(|s| sel.matchers.iter().all(|m| m.matches_labels(&s.labels))));
        println!("postings_100k_series/{}: {} series", sel.name, sel.expected);
        group.bench_function(BenchmarkId::new("series", sel.name), |b| {
            b.iter(|| {
                let got = db.series(&sel.matchers, START_MS, START_MS).unwrap();
                assert!(got.len() == sel.expected);
                black_box(got.len())
            })
        });
        group.bench_function(BenchmarkId::new("select", sel.name), |b| {
            b.iter(|| {
                let got = db.select(&sel.matchers, START_MS, START_MS).unwrap();
                assert!(got.len() == sel.expected);
                black_box(got.len())
            })
        });
    }
    group.finish();
}

fn append_existing(c: &mut Criterion) {
    const N: usize = 10_000;
    let db = Db::in_memory();
    let mut batch: Vec<(Labels, Vec<Sample>)> = node_series(N)
        .into_iter()
        .map(|l| (l, vec![Sample { t: 0, v: 0.0 }]))
        .collect();
    let mut round: i64 = 0;
    let mut next_round = |batch: &mut Vec<(Labels, Vec<Sample>)>| {
        round += 1;
        for (i, (_, s)) in batch.iter_mut().enumerate() {
            s[0] = Sample {
                t: START_MS + round * SCRAPE_MS,
                v: (round * 100 + i as i64) as f64 * 0.25,
            };
        }
    };
    // Create every series, so the measured appends only find existing ones.
    next_round(&mut batch);
    let out = db.append(&batch).unwrap();
    assert_eq!(out.appended, N);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("one_sample_to_each_of_10k_existing_series", |b| {
        b.iter(|| {
            next_round(&mut batch);
            let out = db.append(&batch).unwrap();
            assert!(out.appended == N && out.rejected_total() == 0);
            black_box(out.appended)
        })
    });
    group.finish();
    assert_eq!(db.head_stats().num_series, N);
}

criterion_group!(benches, codec, postings, append_existing);
criterion_main!(benches);
