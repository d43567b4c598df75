//! Crash safety of the trace store: a child process (this test binary, running the ignored
//! `traces_crash_child` test) appends span batches to a `TraceStore` — cutting blocks when the
//! small head fills, flushing, cutting idle traces and compacting along the way — acknowledging
//! each append on stdout, and is SIGKILLed at random moments. After each kill the store is
//! reopened: every acknowledged span must come back exactly once (in the right trace), the batch
//! in flight may be there entirely or not at all, and nothing else may appear.
//!
//! `SEXTANT_TRACES_CRASH_SEED` overrides the random seed (printed at the start).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use sextant_storage::traces::{
    Attr, AttrValue, Resource, Scope, Span, SpanBatch, TraceAppender, TraceId, TraceSearch,
    TraceSource, TraceStore, TraceStoreOptions,
};
use sextant_storage::FsyncPolicy;

const SPANS: u64 = 12;
const ITERATIONS: usize = 8;
const DIR_ENV: &str = "SEXTANT_TRACES_CRASH_DIR";
const START_ENV: &str = "SEXTANT_TRACES_CRASH_START";

fn options() -> TraceStoreOptions {
    TraceStoreOptions {
        fsync: FsyncPolicy::Always,
        retention: None,
        max_head_bytes: 24 * 1024,
        trace_idle: Duration::ZERO,
        max_block_duration: Duration::ZERO,
        row_group_spans: 50,
        compaction_small_bytes: 64 * 1024,
        compaction_max_bytes: 256 * 1024,
        ..TraceStoreOptions::default()
    }
}

/// Span `j` of batch `k`: batch k writes into traces k/3 and k/3+1, so traces collect spans
/// from several batches (late spans) and end up split across head and blocks.
fn batch(k: u64) -> Vec<SpanBatch> {
    let spans = (0..SPANS)
        .map(|j| {
            let t = k / 3 + j % 2;
            let mut tid = [0u8; 16];
            tid[..8].copy_from_slice(&(t + 1).to_be_bytes());
            tid[8..].copy_from_slice(&(t * 0x9e37_79b9).to_le_bytes());
            Span {
                trace_id: TraceId(tid),
                span_id: (k * 1000 + j + 1).to_le_bytes(),
                parent_span_id: (j > 1).then(|| (k * 1000 + j - 1).to_le_bytes()),
                name: format!("op{}", j % 3),
                start_unix_nano: 1_700_000_000_000_000_000 + k * 1_000_000 + j,
                end_unix_nano: 1_700_000_000_000_000_000 + k * 1_000_000 + j + 500,
                attributes: vec![Attr::new("k", AttrValue::Int(k as i64))],
                ..Span::default()
            }
        })
        .collect();
    vec![SpanBatch {
        resource: Arc::new(Resource {
            attributes: vec![Attr::new(
                "service.name",
                AttrValue::Str(format!("svc{}", k % 3)),
            )],
            ..Resource::default()
        }),
        scope: Arc::new(Scope::default()),
        spans,
    }]
}

/// Run by the parent in a child process: append forever, acknowledging on stdout.
#[test]
#[ignore = "child process of traces_crash_kill9_keeps_every_acknowledged_span"]
fn traces_crash_child() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_ENV), std::env::var(START_ENV)) else {
        panic!("run by traces_crash_kill9_keeps_every_acknowledged_span only");
    };
    let start: u64 = start.parse().unwrap();
    let store = TraceStore::open(Path::new(&dir), options()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPEN").unwrap();
    out.flush().unwrap();
    for k in start.. {
        writeln!(out, "SEND {k}").unwrap();
        out.flush().unwrap();
        let outcome = store.append(batch(k)).unwrap();
        assert_eq!(outcome.accepted_spans, SPANS);
        writeln!(out, "ACK {k}").unwrap();
        out.flush().unwrap();
        if k % 7 == 0 {
            store.flush().unwrap();
        } else if k % 3 == 0 {
            store.maintain().unwrap();
        }
    }
}

/// (trace id, span id) → how often it is stored, over every trace the store returns.
fn contents(dir: &Path) -> BTreeMap<(TraceId, [u8; 8]), usize> {
    let store = TraceStore::open(dir, options()).unwrap();
    let mut got = BTreeMap::new();
    let all = Vec::new();
    store
        .search(
            &TraceSearch {
                start_ns: 0,
                end_ns: u64::MAX,
                filter: &all,
            },
            &mut |t| {
                let by_id = store.trace(&t.id, None).unwrap().unwrap();
                assert_eq!(by_id, t, "search and trace-by-id disagree");
                for b in &t.batches {
                    for s in &b.spans {
                        assert_eq!(s.trace_id, t.id);
                        *got.entry((t.id, s.span_id)).or_insert(0) += 1;
                    }
                }
                true
            },
        )
        .unwrap();
    got
}

fn expected(k: u64) -> Vec<(TraceId, [u8; 8])> {
    batch(k)
        .into_iter()
        .flat_map(|b| b.spans.into_iter().map(|s| (s.trace_id, s.span_id)))
        .collect()
}

#[test]
fn traces_crash_kill9_keeps_every_acknowledged_span() {
    let seed: u64 = std::env::var("SEXTANT_TRACES_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("SEXTANT_TRACES_CRASH_SEED={seed}");
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
                "traces_crash_child",
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
        let mut want: BTreeMap<(TraceId, [u8; 8]), usize> = BTreeMap::new();
        for &k in &acked {
            for e in expected(k) {
                *want.entry(e).or_insert(0) += 1;
            }
        }
        for &k in &maybe {
            let spans = expected(k);
            let present = spans.iter().filter(|e| got.contains_key(*e)).count();
            assert!(
                present == 0 || present == spans.len(),
                "batch {k} in flight at a kill is partly stored ({present} of {})",
                spans.len()
            );
            for e in spans.into_iter().filter(|_| present > 0) {
                *want.entry(e).or_insert(0) += 1;
            }
        }
        assert_eq!(
            got.len(),
            want.len(),
            "iteration {it}: stored spans differ from acknowledged ones (seed {seed})"
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
    let blocks = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .count();
    assert!(blocks >= 1, "no block was ever written");
}
