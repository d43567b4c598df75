//! In-process figures for the log store on the logs-bench TSV (`../shared/bench/logs/`):
//! append + flush CPU, segment and index bytes, and per-needle scan cost (CPU and wall, median).
//!
//! `cargo run --release -p sextant-storage --example log_store_bench -- logs.tsv [MiB] [runs] [needle…]`
//!
//! Lines are appended in batches of about 1 MiB grouped by stream (as pushes arrive), to a
//! store in a temporary directory (fsync off), then flushed. Needles are searched with the
//! selector `{service_name=~".+"}` over the whole range, as the harness does. `BLOCK_BYTES`
//! (environment) overrides the block size; `STORE_DIR` keeps the store there, and a later run
//! with the same `STORE_DIR` skips the ingest and only queries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sextant_storage::logs::{
    Direction, LogEntry, LogQuery, LogSource, LogStore, LogStoreOptions, LogStreamBatch, Needle,
};
use sextant_storage::{FsyncPolicy, Label, Labels, MatchOp, Matcher};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn parse_labels(s: &str) -> Labels {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut v = Vec::new();
    for part in inner.split("\",") {
        if let Some((k, val)) = part.split_once('=') {
            v.push(Label::new(k, val.trim_matches('"')));
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Labels::from_sorted(v)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: log_store_bench logs.tsv [MiB] [runs] [needle…]")?;
    let limit_mib: u64 = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX >> 20);
    let runs: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(5);
    let needles: Vec<String> = args.iter().skip(4).cloned().collect();
    let dir = tempfile::tempdir()?;
    let kept = std::env::var_os("STORE_DIR").map(std::path::PathBuf::from);
    let reuse = kept.as_ref().is_some_and(|d| d.join("segments").is_dir());
    let text = if reuse {
        String::new()
    } else {
        std::fs::read_to_string(path)?
    };
    let store = LogStore::open(
        kept.as_deref().unwrap_or(dir.path()),
        LogStoreOptions {
            fsync: FsyncPolicy::Never,
            block_bytes: std::env::var("BLOCK_BYTES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(LogStoreOptions::default().block_bytes),
            ..LogStoreOptions::permissive()
        },
    )?;
    let mut raw = 0u64;
    let mut lines = 0u64;
    let mut pending: HashMap<Labels, Vec<LogEntry>> = HashMap::new();
    let mut pending_bytes = 0usize;
    let mut label_cache: HashMap<&str, Labels> = HashMap::new();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut append_cpu = 0.0;
    for row in text.lines() {
        let mut it = row.splitn(3, '\t');
        let (Some(ts), Some(ls), Some(line)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(ts_ns) = ts.parse::<i64>() else {
            continue;
        };
        let labels = label_cache
            .entry(ls)
            .or_insert_with(|| parse_labels(ls))
            .clone();
        raw += line.len() as u64 + 1;
        lines += 1;
        pending_bytes += line.len();
        pending.entry(labels).or_default().push(LogEntry {
            ts_ns,
            line: line.to_string(),
            metadata: Vec::new(),
        });
        if pending_bytes >= 1 << 20 || raw >= limit_mib << 20 {
            let batch: Vec<LogStreamBatch> = pending
                .drain()
                .map(|(labels, entries)| LogStreamBatch { labels, entries })
                .collect();
            let c = cpu_seconds();
            store.append(&batch)?;
            append_cpu += cpu_seconds() - c;
            pending_bytes = 0;
        }
        if raw >= limit_mib << 20 {
            break;
        }
    }
    let batch: Vec<LogStreamBatch> = pending
        .drain()
        .map(|(labels, entries)| LogStreamBatch { labels, entries })
        .collect();
    let c = cpu_seconds();
    store.append(&batch)?;
    store.flush()?;
    append_cpu += cpu_seconds() - c;
    let total_cpu = cpu_seconds() - cpu0;
    let sizes = store.sizes();
    let mib = raw as f64 / (1 << 20) as f64;
    println!(
        "lines {lines} raw {mib:.1} MiB; store append+flush CPU {append_cpu:.2} s = {:.1} MiB/CPU-s (whole loop incl. TSV parsing {total_cpu:.2} s, wall {:.1} s)",
        mib / append_cpu,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "segments {} bytes {} ({:.2} MiB), index {} ({:.2} MiB, {:.2}%)",
        sizes.segments,
        sizes.segment_bytes,
        sizes.segment_bytes as f64 / (1 << 20) as f64,
        sizes.index_bytes,
        sizes.index_bytes as f64 / (1 << 20) as f64,
        100.0 * sizes.index_bytes as f64 / sizes.segment_bytes.max(1) as f64
    );
    let matchers = [Matcher::new(MatchOp::Regex, "service_name", ".+")?];
    for n in &needles {
        let nd = [Needle {
            text: n.clone(),
            case_insensitive: false,
        }];
        let q = LogQuery {
            matchers: &matchers,
            start_ns: i64::MIN,
            end_ns: i64::MAX,
            direction: Direction::Backward,
            needles: &nd,
        };
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut count = 0;
        for r in 0..=runs {
            let c = cpu_seconds();
            let t = Instant::now();
            let mut k = 0usize;
            store.scan(&q, &mut |_, e| {
                if e.line.contains(n.as_str()) {
                    k += 1;
                }
                k < 1000
            })?;
            if r > 0 {
                walls.push(t.elapsed());
                cpus.push(cpu_seconds() - c);
            }
            count = k;
        }
        walls.sort();
        cpus.sort_by(f64::total_cmp);
        let med = walls
            .get(walls.len() / 2)
            .copied()
            .unwrap_or(Duration::ZERO);
        let cpu_total: f64 = cpus.iter().sum();
        println!(
            "needle {n:?}: {count} lines, wall median {:.2} ms, CPU mean {:.2} ms",
            med.as_secs_f64() * 1e3,
            cpu_total * 1e3 / cpus.len().max(1) as f64
        );
    }
    Ok(())
}
