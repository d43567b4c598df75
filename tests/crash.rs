//! Crash safety under load: a `sextant serve` child ingests a fast-moving stream (so blocks are
//! cut and compacted all the time) and is SIGKILLed at random moments, then restarted on the
//! same data directory. After each restart every acknowledged sample must be there with its
//! exact value, unacknowledged ones may be there (exactly) or not, nothing else may appear, and
//! no unfinished block may be left or half-visible.
//!
//! `SEXTANT_CRASH_SEED` and `SEXTANT_CRASH_ITERATIONS` override the random seed (printed at the
//! start) and the number of kills.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{remote_write, scan_blocks, series, stored, Server};

const SERIES: usize = 20;
/// Samples per series per request, 2.5 s apart: each request moves data time by 5 s, so with
/// one-minute blocks a block is cut about every twelve requests.
const SAMPLES_PER_REQUEST: i64 = 2;
const STEP_MS: i64 = 2500;
const T0: i64 = 1_700_000_000_000;
const METRIC: &str = "crash_metric";
const DEFAULT_ITERATIONS: usize = 30;
/// Kills land uniformly in this many milliseconds after the writer starts.
const MAX_KILL_DELAY_MS: u64 = 300;

/// xorshift64*: enough randomness to pick kill moments, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn series_name(i: usize) -> String {
    format!("s{i:02}")
}

/// The value of series `i` at `t`: unique per sample and exact in decimal. Even series use
/// eighths (the block codec stores them as scaled decimals), odd ones multiples of 2^-20 (too
/// many decimal digits for that, so they take the XOR path).
fn value(i: usize, t: i64) -> f64 {
    let k = ((t - T0) / STEP_MS) * SERIES as i64 + i as i64;
    match i % 2 {
        0 => k as f64 / 8.0,
        _ => k as f64 / 1_048_576.0,
    }
}

/// The samples of the request whose first timestamp is `base`.
fn request_samples(base: i64) -> impl Iterator<Item = (usize, i64)> {
    (0..SERIES).flat_map(move |i| (0..SAMPLES_PER_REQUEST).map(move |j| (i, base + j * STEP_MS)))
}

enum Outcome {
    Acked,
    /// The connection broke before an answer: the samples may or may not be stored.
    NoAnswer,
    Refused(reqwest::StatusCode),
}

/// Streams requests until the first one without an answer (the server was killed) or `stop`.
/// Returns each request's first timestamp and outcome.
async fn write_until_killed(
    client: reqwest::Client,
    base_url: String,
    mut next_t: i64,
    stop: Arc<AtomicBool>,
) -> Vec<(i64, Outcome)> {
    let mut out = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let base = next_t;
        next_t += SAMPLES_PER_REQUEST * STEP_MS;
        let timeseries = (0..SERIES)
            .map(|i| {
                let name = series_name(i);
                let samples: Vec<(i64, f64)> = (0..SAMPLES_PER_REQUEST)
                    .map(|j| base + j * STEP_MS)
                    .map(|t| (t, value(i, t)))
                    .collect();
                series(&[("__name__", METRIC), ("series", &name)], &samples)
            })
            .collect();
        match remote_write(&client, &base_url, timeseries).await {
            Ok(status) if status.is_success() => out.push((base, Outcome::Acked)),
            Ok(status) => {
                out.push((base, Outcome::Refused(status)));
                break;
            }
            Err(_) => {
                out.push((base, Outcome::NoAnswer));
                break;
            }
        }
    }
    out
}

/// What the test knows about every sample it sent.
#[derive(Default)]
struct Ledger {
    /// Acknowledged, or seen after a restart: must always be there.
    durable: BTreeMap<(usize, i64), u64>,
    /// Sent without an answer and not yet checked.
    unknown: BTreeMap<(usize, i64), u64>,
    /// Unacknowledged samples that were present after the next restart / that were not.
    kept_unacked: usize,
    lost_unacked: usize,
}

impl Ledger {
    fn record(&mut self, base: i64, durable: bool) {
        for (i, t) in request_samples(base) {
            let bits = value(i, t).to_bits();
            if durable {
                self.durable.insert((i, t), bits);
            } else {
                self.unknown.insert((i, t), bits);
            }
        }
    }

    /// Checks what a restarted server returns against the ledger and settles the unknowns.
    fn check(&mut self, got: &support::Stored, context: &str) {
        let mut seen: BTreeMap<(usize, i64), u64> = BTreeMap::new();
        for (name, samples) in got {
            let i = (0..SERIES)
                .find(|&i| series_name(i) == *name)
                .unwrap_or_else(|| panic!("{context}: unexpected series {name:?}"));
            for (&t, &bits) in samples {
                seen.insert((i, t), bits);
            }
        }
        let mut missing = Vec::new();
        for (&(i, t), &bits) in &self.durable {
            match seen.get(&(i, t)) {
                None => missing.push((series_name(i), t)),
                Some(&got) => assert_eq!(
                    got,
                    bits,
                    "{context}: {} at {t}: got {} want {}",
                    series_name(i),
                    f64::from_bits(got),
                    f64::from_bits(bits)
                ),
            }
        }
        assert!(
            missing.is_empty(),
            "{context}: {} acknowledged samples missing, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        for (&(i, t), &bits) in &seen {
            if self.durable.contains_key(&(i, t)) {
                continue;
            }
            let want = self.unknown.get(&(i, t)).unwrap_or_else(|| {
                panic!(
                    "{context}: {} at {t} = {} was never sent, or was gone after an earlier \
                     restart",
                    series_name(i),
                    f64::from_bits(bits)
                )
            });
            assert_eq!(
                bits,
                *want,
                "{context}: unacknowledged {} at {t} has a wrong value",
                series_name(i)
            );
        }
        // An unacknowledged sample seen now was replayed from the WAL and must stay; one not seen
        // was cut from the WAL's torn tail and must never come back.
        for ((i, t), bits) in std::mem::take(&mut self.unknown) {
            if seen.contains_key(&(i, t)) {
                self.durable.insert((i, t), bits);
                self.kept_unacked += 1;
            } else {
                self.lost_unacked += 1;
            }
        }
    }
}

/// `*.tmp` files and directories under the WAL and blocks directories.
fn leftovers(data: &Path) -> Vec<PathBuf> {
    let mut out = scan_blocks(data).1;
    if let Ok(entries) = std::fs::read_dir(data.join("wal")) {
        out.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "tmp")),
        );
    }
    out
}

/// Every block directory visible after a kill must be complete (blocks appear by rename).
fn assert_no_partial_blocks(data: &Path, context: &str) {
    let (_, _, broken) = scan_blocks(data);
    assert!(
        broken.is_empty(),
        "{context}: incomplete block directories are visible: {broken:?} (contents: {:?})",
        broken
            .iter()
            .map(|b| std::fs::read_dir(b)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default())
            .collect::<Vec<_>>()
    );
}

fn count_in_logs(logs: &Path, needle: &str) -> usize {
    std::fs::read_dir(logs)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .map(|text| text.matches(needle).count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_samples_survive_random_sigkills_during_cuts_and_compactions() {
    let seed: u64 = match std::env::var("SEXTANT_CRASH_SEED") {
        Ok(s) => s.parse().expect("SEXTANT_CRASH_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    let iterations: usize = std::env::var("SEXTANT_CRASH_ITERATIONS")
        .map(|s| {
            s.parse()
                .expect("SEXTANT_CRASH_ITERATIONS must be a number")
        })
        .unwrap_or(DEFAULT_ITERATIONS);
    println!("crash test: SEXTANT_CRASH_SEED={seed} SEXTANT_CRASH_ITERATIONS={iterations}");
    let mut rng = Rng::new(seed);

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = support::write_config(
        tmp.path(),
        &[
            "block_range: 1m",
            "max_block_range: 4m",
            "maintenance_interval: 100ms",
            "wal_fsync: always",
            "retention_time: 0s",
        ],
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut starts = 0usize;
    let log_path = |starts: &mut usize| {
        *starts += 1;
        logs.join(format!("serve-{starts:03}.log"))
    };

    let mut ledger = Ledger::default();
    let mut next_t = T0;
    let mut server = Server::start(&config, &data, &log_path(&mut starts)).await;
    let (mut requests, mut startup_kills, mut leftovers_cleaned) = (0usize, 0usize, 0usize);
    for iteration in 0..iterations {
        let context = format!("seed {seed}, iteration {iteration}");
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_until_killed(
            client.clone(),
            server.base.clone(),
            next_t,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(rng.below(MAX_KILL_DELAY_MS + 1))).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for (base, outcome) in writer.await.unwrap() {
            requests += 1;
            next_t = next_t.max(base + SAMPLES_PER_REQUEST * STEP_MS);
            match outcome {
                Outcome::Acked => ledger.record(base, true),
                Outcome::NoAnswer => ledger.record(base, false),
                Outcome::Refused(status) => {
                    panic!("{context}: write at {base} answered {status}")
                }
            }
        }
        assert_no_partial_blocks(&data, &context);
        let mut left = leftovers(&data);

        // Now and then, also crash the restart itself (WAL replay, cleanup, first maintenance).
        if rng.below(6) == 0 {
            startup_kills += 1;
            let mut early = Server::spawn(&config, &data, &log_path(&mut starts));
            tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
            early.kill();
            assert_no_partial_blocks(&data, &format!("{context} (killed during startup)"));
            left.retain(|p| p.exists());
            left.extend(leftovers(&data));
        }

        server = Server::start(&config, &data, &log_path(&mut starts)).await;
        for p in &left {
            assert!(
                !p.exists(),
                "{context}: {} survived the restart; log:\n{}",
                p.display(),
                support::tail_of(&server.log)
            );
        }
        leftovers_cleaned += left.len();
        assert!(
            !data.join("quarantine").exists(),
            "{context}: a crash made a block look corrupt: {:?}; log:\n{}",
            std::fs::read_dir(data.join("quarantine"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default(),
            support::tail_of(&server.log)
        );

        let got = stored(&client, &server.base, METRIC, "series", T0, next_t).await;
        ledger.check(&got, &context);
        let names: serde_json::Value = client
            .get(format!("{}/api/v1/label/__name__/values", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(names["data"], serde_json::json!([METRIC]), "{context}");
        let metrics = support::metrics_text(&client, &server.base).await;
        assert_eq!(
            support::metric_value(&metrics, "sextant_blocks_quarantined_total"),
            Some(0.0),
            "{context}"
        );
        let status = client
            .get(format!("{}/api/v1/status/tsdb", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(status.status(), 200, "{context}");
    }
    drop(server);

    let cuts = count_in_logs(&logs, "persisted head range as a block");
    let compactions = count_in_logs(&logs, "compacted blocks");
    let torn_wal = count_in_logs(&logs, "torn or corrupt tail");
    let superseded = count_in_logs(&logs, "removing block superseded");
    println!(
        "crash test: {iterations} kills ({startup_kills} more during startup) in {:.1?}; \
         {requests} requests, {} durable samples; unacknowledged samples kept {} / lost {}; \
         {cuts} blocks cut, {compactions} compactions; at restart: {leftovers_cleaned} *.tmp \
         leftovers removed, {torn_wal} torn WAL tails truncated, {superseded} superseded blocks \
         removed",
        started.elapsed(),
        ledger.durable.len(),
        ledger.kept_unacked,
        ledger.lost_unacked,
    );
    assert!(
        cuts > 0 && compactions > 0,
        "the stream must make the server cut and compact blocks (cuts {cuts}, compactions \
         {compactions})"
    );
}
