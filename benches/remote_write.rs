//! Remote-write ingest cost per sample: decode + validate, then append in memory and with a WAL.
//!
//! The request mirrors the metrics benchmark: 5000 `TimeSeries` of node_exporter / HTTP-service
//! shape (5-7 labels), one sample each. The same series are sent again and again with newer
//! timestamps, so appends measure the steady state where every series already exists.
//! Throughput is in samples; with one thread, samples/s is samples per core-second.

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sextant_ingest::remote_write::{decode_validate_count, decode_validate_count_v2, ingest_body};
use sextant_ingest::RemoteWriteLimits;
use sextant_storage::{Db, DbOptions, FsyncPolicy};

const SERIES: usize = 5000;
const STEP_MS: i64 = 15_000;
const START_MS: i64 = 1_714_557_600_000;

/// One uncompressed `WriteRequest`, hand-encoded so each sample's bytes can be patched in place.
struct Request {
    raw: Vec<u8>,
    /// Offsets of each sample's 8 value bytes and 6 timestamp varint bytes.
    value_at: Vec<usize>,
    ts_at: Vec<usize>,
    round: i64,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Writes a timestamp as a varint of exactly six bytes (valid for 2^35..2^42 ms).
fn put_ts6(out: &mut [u8], t: i64) {
    let mut v = t as u64;
    for (i, b) in out.iter_mut().enumerate() {
        *b = (v & 0x7f) as u8 | if i < 5 { 0x80 } else { 0 };
        v >>= 7;
    }
}

/// 5000 realistic label sets, each sorted by name.
fn label_sets() -> Vec<Vec<(String, String)>> {
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    let routes = ["/api/orders", "/api/users", "/api/cart", "/healthz"];
    let les = ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"];
    let mut out = Vec::with_capacity(SERIES);
    let mut host = 0;
    while out.len() < SERIES {
        let inst = format!("host-{host:03}:9100");
        let mk = |name: &str, extra: &[(&str, &str)]| {
            let mut v = vec![
                ("__name__".to_string(), name.to_string()),
                ("instance".to_string(), inst.clone()),
                ("job".to_string(), "node".to_string()),
            ];
            v.extend(extra.iter().map(|(k, x)| (k.to_string(), x.to_string())));
            v.sort();
            v
        };
        for cpu in 0..8 {
            for mode in modes {
                out.push(mk(
                    "node_cpu_seconds_total",
                    &[("cpu", &cpu.to_string()), ("mode", mode)],
                ));
            }
        }
        for dev in ["eth0", "eth1", "lo"] {
            for m in [
                "receive_bytes",
                "transmit_bytes",
                "receive_packets",
                "receive_drop",
            ] {
                out.push(mk(&format!("node_network_{m}_total"), &[("device", dev)]));
            }
        }
        for (dev, mp) in [
            ("/dev/sda1", "/"),
            ("/dev/sdb1", "/data"),
            ("tmpfs", "/run"),
        ] {
            for m in ["avail_bytes", "size_bytes", "files_free"] {
                out.push(mk(
                    &format!("node_filesystem_{m}"),
                    &[("device", dev), ("fstype", "ext4"), ("mountpoint", mp)],
                ));
            }
        }
        for route in routes {
            for method in ["GET", "POST"] {
                for le in les {
                    out.push(mk(
                        "http_request_duration_seconds_bucket",
                        &[("le", le), ("method", method), ("route", route)],
                    ));
                }
            }
        }
        host += 1;
    }
    out.truncate(SERIES);
    out
}

impl Request {
    fn new() -> Request {
        let mut raw = Vec::new();
        let (mut value_at, mut ts_at) = (Vec::new(), Vec::new());
        for labels in label_sets() {
            let mut ts = Vec::new();
            for (n, v) in &labels {
                let mut l = Vec::new();
                put_bytes(&mut l, 0x0a, n.as_bytes());
                put_bytes(&mut l, 0x12, v.as_bytes());
                put_bytes(&mut ts, 0x0a, &l);
            }
            // Sample: 0x09 + 8 value bytes, 0x10 + 6 varint bytes = 16 bytes.
            ts.extend_from_slice(&[0x12, 16, 0x09]);
            let v_off = ts.len();
            ts.extend_from_slice(&[0; 8]);
            ts.push(0x10);
            let t_off = ts.len();
            ts.extend_from_slice(&[0; 6]);
            raw.push(0x0a);
            put_varint(&mut raw, ts.len() as u64);
            value_at.push(raw.len() + v_off);
            ts_at.push(raw.len() + t_off);
            raw.extend_from_slice(&ts);
        }
        let mut r = Request {
            raw,
            value_at,
            ts_at,
            round: 0,
        };
        r.next_round();
        r
    }

    /// Moves every sample one scrape interval forward, with new values.
    fn next_round(&mut self) {
        let t = START_MS + self.round * STEP_MS;
        for (i, (&v, &ts)) in self.value_at.iter().zip(&self.ts_at).enumerate() {
            let value = (self.round * 100 + i as i64) as f64 * 0.25;
            self.raw[v..v + 8].copy_from_slice(&value.to_le_bytes());
            put_ts6(&mut self.raw[ts..ts + 6], t);
        }
        self.round += 1;
    }

    fn snappy(&self) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&self.raw)
            .expect("snappy")
    }
}

/// The same series and one sample each as a remote write 2.0 request (symbols interned).
fn request_v2() -> Vec<u8> {
    use prost::Message;
    use sextant_ingest::remote_write::proto_v2 as v2;
    use std::collections::HashMap;
    let mut symbols = vec![String::new()];
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut sym = |s: &str| -> u32 {
        *index.entry(s.to_string()).or_insert_with(|| {
            symbols.push(s.to_string());
            (symbols.len() - 1) as u32
        })
    };
    let timeseries = label_sets()
        .iter()
        .enumerate()
        .map(|(i, labels)| v2::TimeSeries {
            labels_refs: labels.iter().flat_map(|(n, v)| [sym(n), sym(v)]).collect(),
            samples: vec![v2::Sample {
                value: i as f64 * 0.25,
                timestamp: START_MS,
                start_timestamp: 0,
            }],
            ..Default::default()
        })
        .collect();
    v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec()
}

/// Times `ingest_body` on fresh rounds of the request; building each body is not timed.
fn time_appends(db: &Db, req: &mut Request, iters: u64) -> Duration {
    let limits = RemoteWriteLimits::default();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        req.next_round();
        let body = req.snappy();
        let start = Instant::now();
        let ingested = ingest_body(db, &limits, black_box(&body)).expect("ingest");
        total += start.elapsed();
        assert_eq!(
            ingested.appended, SERIES,
            "every sample of the round is appended"
        );
        assert!(ingested.is_complete(), "nothing is refused");
    }
    total
}

fn bench(c: &mut Criterion) {
    let mut req = Request::new();
    {
        use prost::Message;
        let decoded = sextant_ingest::remote_write::WriteRequest::decode(req.raw.as_slice())
            .expect("the hand-encoded request is valid protobuf");
        assert_eq!(decoded.timeseries.len(), SERIES);
    }
    let limits = RemoteWriteLimits::default();
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements(SERIES as u64));

    g.bench_function("a_decode_validate", |b| {
        b.iter(|| {
            let n = decode_validate_count(black_box(&req.raw), &limits).expect("decode");
            assert_eq!(n, SERIES);
        })
    });

    let raw_v2 = request_v2();
    g.bench_function("a1_decode_validate_v2", |b| {
        b.iter(|| {
            let n = decode_validate_count_v2(black_box(&raw_v2), &limits).expect("decode");
            assert_eq!(n, SERIES);
        })
    });

    let body = req.snappy();
    g.bench_function("a2_snappy_decompress", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let len = snap::raw::decompress_len(&body).expect("len");
            out.resize(len, 0);
            let n = snap::raw::Decoder::new()
                .decompress(black_box(&body), &mut out)
                .expect("snappy");
            assert_eq!(n, req.raw.len());
        })
    });

    let mem = Db::in_memory();
    time_appends(&mem, &mut req, 1);
    g.bench_function("b_ingest_in_memory", |b| {
        b.iter_custom(|iters| time_appends(&mem, &mut req, iters))
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
    time_appends(&wal_db, &mut req, 1);
    g.bench_function("c_ingest_wal", |b| {
        b.iter_custom(|iters| time_appends(&wal_db, &mut req, iters))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
