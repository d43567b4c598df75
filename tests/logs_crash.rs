//! Crash safety of the log store: a child process (this test binary, running the ignored
//! `logs_crash_child` test) appends batches to a `LogStore`, flushing, compacting and
//! acknowledging each append on stdout, and is SIGKILLed at random moments. After each kill the
//! store is reopened: every acknowledged entry must come back exactly once, the batch in flight
//! may be there entirely or not at all, and nothing else may appear.
//!
//! `SEXTANT_LOGS_CRASH_SEED` overrides the random seed (printed at the start).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sextant_storage::logs::{
    Direction, LogEntry, LogQuery, LogSource, LogStore, LogStoreOptions, LogStreamBatch,
};
use sextant_storage::{FsyncPolicy, Labels};

const STREAMS: usize = 3;
const ENTRIES: usize = 20;
const ITERATIONS: usize = 8;
const DIR_ENV: &str = "SEXTANT_LOGS_CRASH_DIR";
const START_ENV: &str = "SEXTANT_LOGS_CRASH_START";

fn options() -> LogStoreOptions {
    LogStoreOptions {
        fsync: FsyncPolicy::Always,
        head_max_bytes: 48 * 1024,
        block_bytes: 4096,
        compact_small_bytes: 256 * 1024,
        compact_min_segments: 3,
        ..LogStoreOptions::permissive()
    }
}

fn stream_labels(s: usize) -> Labels {
    Labels::from_pairs([("app", format!("svc{s}")), ("job", "crash".to_string())])
}

/// Batch `k`'s entries: unique lines, some timestamps shared across batches (ties).
fn batch(k: u64) -> Vec<LogStreamBatch> {
    (0..STREAMS)
        .map(|s| LogStreamBatch {
            labels: stream_labels(s),
            entries: (0..ENTRIES)
                .map(|j| LogEntry {
                    ts_ns: (k as i64 / 2) * 1000 + j as i64,
                    line: format!(
                        "batch={k} stream={s} entry={j} id={:016x}",
                        k * 7919 + j as u64
                    ),
                    metadata: vec![("k".to_string(), k.to_string())],
                })
                .collect(),
        })
        .collect()
}

/// Run by the parent in a child process: append forever, acknowledging on stdout.
#[test]
#[ignore = "child process of logs_crash_kill9_keeps_every_acknowledged_entry"]
fn logs_crash_child() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_ENV), std::env::var(START_ENV)) else {
        panic!("run by logs_crash_kill9_keeps_every_acknowledged_entry only");
    };
    let start: u64 = start.parse().unwrap();
    let store = LogStore::open(Path::new(&dir), options()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPEN").unwrap();
    out.flush().unwrap();
    for k in start.. {
        writeln!(out, "SEND {k}").unwrap();
        out.flush().unwrap();
        let outcome = store.append(&batch(k)).unwrap();
        assert_eq!(outcome.accepted_entries, (STREAMS * ENTRIES) as u64);
        writeln!(out, "ACK {k}").unwrap();
        out.flush().unwrap();
        if k % 5 == 0 {
            store.maintain().unwrap();
        }
    }
}

/// Count of each (labels, ts, line, metadata) in the store.
fn contents(dir: &Path) -> BTreeMap<(String, i64, String, String), usize> {
    let store = LogStore::open(dir, options()).unwrap();
    let mut got = BTreeMap::new();
    let q = LogQuery {
        matchers: &[],
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        direction: Direction::Forward,
        needles: &[],
    };
    store
        .scan(&q, &mut |l, e| {
            let meta = format!("{:?}", e.metadata);
            *got.entry((l.to_string(), e.ts_ns, e.line.clone(), meta))
                .or_insert(0) += 1;
            true
        })
        .unwrap();
    got
}

fn expected(k: u64) -> Vec<(String, i64, String, String)> {
    batch(k)
        .into_iter()
        .flat_map(|b| {
            let l = b.labels.to_string();
            b.entries
                .into_iter()
                .map(move |e| (l.clone(), e.ts_ns, e.line, format!("{:?}", e.metadata)))
        })
        .collect()
}

#[test]
fn logs_crash_kill9_keeps_every_acknowledged_entry() {
    let seed: u64 = std::env::var("SEXTANT_LOGS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("SEXTANT_LOGS_CRASH_SEED={seed}");
    let mut rng = seed.max(1);
    let mut next_rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let mut maybe: Vec<u64> = Vec::new();
    let mut start = 0u64;
    for it in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "logs_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .env(START_ENV, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the store is open (replay done), then kill at a random moment.
        // libtest may print "test logs_crash_child ... " before the child's first line.
        let opened = rx.iter().any(|l| l.ends_with("OPEN"));
        assert!(opened, "child never opened the store (iteration {it})");
        std::thread::sleep(Duration::from_millis(30 + next_rand() % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let mut last_sent = None;
        for line in rx.try_iter() {
            let Some((kind, k)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(k) = k.parse::<u64>() else { continue };
            if kind.ends_with("ACK") {
                acked.push(k);
            } else if kind.ends_with("SEND") {
                last_sent = Some(k);
            }
        }
        if let Some(k) = last_sent.filter(|k| !acked.contains(k)) {
            maybe.push(k);
        }
        start = last_sent.map_or(start, |k| k + 1);

        let got = contents(dir.path());
        let mut want: BTreeMap<(String, i64, String, String), usize> = BTreeMap::new();
        for &k in &acked {
            for e in expected(k) {
                *want.entry(e).or_insert(0) += 1;
            }
        }
        for &k in &maybe {
            let entries = expected(k);
            let present = entries.iter().filter(|e| got.contains_key(*e)).count();
            assert!(
                present == 0 || present == entries.len(),
                "batch {k} in flight at a kill is partly stored ({present} of {})",
                entries.len()
            );
            for e in entries.into_iter().filter(|_| present > 0) {
                *want.entry(e).or_insert(0) += 1;
            }
        }
        assert_eq!(
            got.len(),
            want.len(),
            "iteration {it}: stored entries differ from acknowledged ones (seed {seed})"
        );
        assert_eq!(got, want, "iteration {it} (seed {seed})");
    }
    eprintln!(
        "{} batches acknowledged, {} in flight at kills",
        acked.len(),
        maybe.len()
    );
    assert!(
        acked.len() >= ITERATIONS,
        "too few acknowledged batches: {}",
        acked.len()
    );
    // Flushes and compactions happened along the way.
    assert!(
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count()
            >= 1
    );
}
