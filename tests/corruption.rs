//! Damaged data directories: on blocks and WAL segments written by a real server, flip bytes and
//! cut files, restart, and check that the server starts, says what it dropped, and serves
//! everything the damage did not touch, bit for bit.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{metric_value, metrics_text, remote_write, scan_blocks, series, BlockInfo, Server};

const METRIC: &str = "corrupt_metric";
/// A minute boundary, so one-minute blocks start at `T0`.
const T0: i64 = 1_700_000_040_000;
const SERIES: usize = 4;

fn series_name(i: usize) -> String {
    format!("s{i}")
}

/// Unique per sample and exact in decimal.
fn value(i: usize, t: i64) -> f64 {
    ((t - T0) / 1000 * SERIES as i64 + i as i64) as f64 * 0.25
}

/// Samples of every series in `[from, to)` every `step` ms, as (series, t, value).
fn samples(from: i64, to: i64, step: i64) -> Vec<(usize, i64, f64)> {
    (0..SERIES)
        .flat_map(|i| {
            (from..to)
                .step_by(step as usize)
                .map(move |t| (i, t, value(i, t)))
        })
        .collect()
}

async fn write(client: &reqwest::Client, base: &str, batch: &[(usize, i64, f64)]) {
    let timeseries = (0..SERIES)
        .map(|i| {
            let name = series_name(i);
            let s: Vec<(i64, f64)> = batch
                .iter()
                .filter(|x| x.0 == i)
                .map(|x| (x.1, x.2))
                .collect();
            series(&[("__name__", METRIC), ("series", &name)], &s)
        })
        .filter(|ts| !ts.samples.is_empty())
        .collect();
    let status = remote_write(client, base, timeseries).await.unwrap();
    assert_eq!(status, 204);
}

fn expected(batch: &[(usize, i64, f64)]) -> support::Stored {
    let mut out = support::Stored::new();
    for &(i, t, v) in batch {
        out.entry(series_name(i))
            .or_default()
            .insert(t, v.to_bits());
    }
    out
}

/// Samples of `all` with timestamps in `[from, to]`.
fn window(all: &support::Stored, from: i64, to: i64) -> support::Stored {
    all.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.range(from..=to).map(|(t, b)| (*t, *b)).collect(),
            )
        })
        .filter(|(_, v): &(String, std::collections::BTreeMap<i64, u64>)| !v.is_empty())
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    logs: PathBuf,
    client: reqwest::Client,
    /// Everything written.
    all: support::Stored,
    /// The complete blocks on disk, by time.
    blocks: Vec<BlockInfo>,
}

impl Fixture {
    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    async fn start(&self, name: &str) -> Server {
        Server::start(&self.config, &self.data, &self.log(name)).await
    }
}

/// A data directory holding at least three one-minute blocks written by a real server (which
/// is stopped again). Blocks come from `POST /api/v1/admin/tsdb/flush` where the server has it;
/// otherwise from maintenance cutting the head once it spans 1.5 block ranges.
async fn with_blocks() -> Fixture {
    with_blocks_spanning(6).await
}

/// [`with_blocks`] with `minutes` minutes of data.
async fn with_blocks_spanning(minutes: i64) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = support::write_config(
        tmp.path(),
        &[
            "block_range: 1m",
            // No compaction: every block stays a one-minute level-1 block.
            "max_block_range: 1m",
            "maintenance_interval: 100ms",
            "retention_time: 0s",
        ],
    );
    let data = tmp.path().join("data");
    let client = reqwest::Client::new();
    let mut fx = Fixture {
        _tmp: tmp,
        config,
        data,
        logs,
        client,
        all: support::Stored::new(),
        blocks: Vec::new(),
    };
    let mut server = fx.start("setup").await;
    // Samples every 5 s, one request per minute.
    let mut written = Vec::new();
    for minute in 0..minutes {
        let batch = samples(T0 + minute * 60_000, T0 + (minute + 1) * 60_000, 5000);
        write(&fx.client, &server.base, &batch).await;
        written.extend(batch);
    }
    fx.all = expected(&written);
    let flushed = fx
        .client
        .post(format!("{}/api/v1/admin/tsdb/flush", server.base))
        .send()
        .await
        .unwrap()
        .status()
        .is_success();
    if !flushed {
        // Maintenance cuts every minute but the last, which stays in the head.
        let (client, base) = (fx.client.clone(), server.base.clone());
        let want = (minutes - 1) as f64;
        support::poll(Duration::from_secs(60), "blocks to be cut", || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let m = metrics_text(&client, &base).await;
                (metric_value(&m, "sextant_blocks") == Some(want)).then_some(())
            }
        })
        .await;
    }
    server.terminate().await;
    let (blocks, _, broken) = scan_blocks(&fx.data);
    assert!(broken.is_empty(), "{broken:?}");
    assert!(blocks.len() >= 3, "{blocks:?}");
    fx.blocks = blocks;
    fx
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn end_of(all: &support::Stored) -> i64 {
    all.values()
        .filter_map(|s| s.keys().next_back())
        .max()
        .copied()
        .unwrap()
}

#[tokio::test]
async fn a_block_with_a_corrupt_index_is_quarantined_and_the_rest_stays_queryable() {
    let fx = with_blocks().await;
    let victim = fx.blocks[fx.blocks.len() / 2].clone();
    let index = victim.dir.join("index");
    flip_byte(&index, file_len(&index) as usize / 2);

    let server = fx.start("restart").await;
    assert!(
        !victim.dir.exists(),
        "the corrupt block is still in blocks/"
    );
    assert!(
        fx.data.join("quarantine").join(&victim.ulid).is_dir(),
        "the corrupt block is not in quarantine/"
    );
    let m = metrics_text(&fx.client, &server.base).await;
    assert_eq!(
        metric_value(&m, "sextant_blocks_quarantined_total"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "sextant_blocks"),
        Some((fx.blocks.len() - 1) as f64)
    );

    // Every sample outside the quarantined block's range is there, exactly; its own range is
    // gone (the WAL was checkpointed past it when the block was cut).
    let end = end_of(&fx.all);
    let got = support::stored(&fx.client, &server.base, METRIC, "series", T0, end).await;
    let mut want = support::Stored::new();
    for (name, s) in &fx.all {
        let kept: std::collections::BTreeMap<i64, u64> = s
            .iter()
            .filter(|(t, _)| **t < victim.min_time || **t >= victim.max_time)
            .map(|(t, b)| (*t, *b))
            .collect();
        want.insert(name.clone(), kept);
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_block_with_truncated_chunks_fails_the_query_that_finds_it_and_is_moved_aside() {
    let fx = with_blocks().await;
    let victim = fx.blocks[fx.blocks.len() / 2].clone();
    let chunks = victim.dir.join("chunks");
    let len = file_len(&chunks);
    assert!(len > 16, "chunks file too small to cut: {len}");
    truncate(&chunks, len / 2);

    // The chunk file keeps its magic, so the block opens (sample pages are only read and
    // checked when queried) and nothing is quarantined.
    let mut server = fx.start("restart").await;
    let m = metrics_text(&fx.client, &server.base).await;
    assert_eq!(
        metric_value(&m, "sextant_blocks_quarantined_total"),
        Some(0.0)
    );
    assert!(victim.dir.is_dir());

    // Its index is intact: series lookups work without reading sample pages.
    let series: serde_json::Value = fx
        .client
        .get(format!(
            "{}/api/v1/series?match[]={METRIC}&start={}&end={}",
            server.base,
            victim.min_time / 1000,
            (victim.max_time - 1) / 1000
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(series["status"], "success", "{series}");
    assert_eq!(series["data"].as_array().unwrap().len(), SERIES, "{series}");
    // A query reading the damaged block fails with a storage error naming the file.
    let end = end_of(&fx.all);
    let (status, body) = support::range_select(
        &fx.client,
        &server.base,
        METRIC,
        victim.min_time,
        victim.max_time - 1,
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], "internal", "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("corrupt data") && error.contains(&chunks.display().to_string()),
        "{error}"
    );
    // Finding the damage moved the block aside: it is counted, out of `blocks/`, and queries
    // over the whole range now answer from the other blocks.
    let m = metrics_text(&fx.client, &server.base).await;
    assert_eq!(
        metric_value(&m, "sextant_blocks_quarantined_total"),
        Some(1.0),
        "{m}"
    );
    assert!(!victim.dir.exists());
    let (status, body) = support::range_select(&fx.client, &server.base, METRIC, T0, end).await;
    assert_eq!(status, 200, "{body}");
    assert!(server.is_running());

    let before = victim.min_time - 1000;
    if before >= T0 {
        let got = support::stored(&fx.client, &server.base, METRIC, "series", T0, before).await;
        assert_eq!(got, window(&fx.all, T0, before));
    }
    let after = victim.max_time + 1000;
    let got = support::stored(&fx.client, &server.base, METRIC, "series", after, end).await;
    assert_eq!(got, window(&fx.all, after, end));
}

/// Frames of a WAL segment as `(start, end, record type)`; the layout is
/// `[u32 LE length][u32 LE crc32][payload]`, the payload's first byte being the record type.
fn wal_frames(bytes: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let end = pos + 8 + len;
        if len == 0 || end > bytes.len() {
            break;
        }
        out.push((pos, end, bytes[pos + 8]));
        pos = end;
    }
    out
}

const WAL_SAMPLES: u8 = 2;

#[tokio::test]
async fn a_damaged_wal_is_truncated_at_the_damage_and_everything_before_it_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::write_config(tmp.path(), &["wal_fsync: always"]);
    let data = tmp.path().join("data");
    let log = |n: &str| tmp.path().join(format!("{n}.log"));
    let client = reqwest::Client::new();
    // Ten requests per process; each is one samples record in the WAL, and each process start
    // begins a new segment.
    let request = |r: i64| samples(T0 + r * 10_000, T0 + (r + 1) * 10_000, 1000);
    for process in 0..2 {
        let mut server = Server::start(&config, &data, &log(&format!("p{process}"))).await;
        for r in process * 10..(process + 1) * 10 {
            write(&client, &server.base, &request(r)).await;
        }
        server.kill();
    }
    let wal = data.join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<u32>().is_ok())
                && file_len(p) > 0
        })
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 2, "{segments:?}");
    let (first, last) = (&segments[0], &segments[1]);

    // Cut the first segment in the middle of its last frame, flip a byte mid-way through the
    // last; each keeps the frames wholly before its damage.
    let first_frames = wal_frames(&std::fs::read(first).unwrap());
    let first_len = file_len(first);
    let cut_at = first_len - 7;
    truncate(first, cut_at);
    let last_bytes = std::fs::read(last).unwrap();
    let last_frames = wal_frames(&last_bytes);
    let flip_at = last_bytes.len() / 2;
    flip_byte(last, flip_at);
    let intact = |frames: &[(usize, usize, u8)], limit: usize| {
        let kept: Vec<_> = frames.iter().filter(|f| f.1 <= limit).collect();
        let samples = kept.iter().filter(|f| f.2 == WAL_SAMPLES).count() as i64;
        (samples, kept.last().map_or(0, |f| f.1) as u64)
    };
    let (kept_first, good_first) = intact(&first_frames, cut_at as usize);
    let (kept_last, good_last) = intact(&last_frames, flip_at);
    assert_eq!(kept_first, 9);
    assert!(kept_last < 10);
    let dropped = (cut_at - good_first) + (last_bytes.len() as u64 - good_last);

    let mut want = Vec::new();
    for r in (0..kept_first).chain(10..10 + kept_last) {
        want.extend(request(r));
    }
    let want = expected(&want);
    let end = T0 + 20 * 10_000;

    let mut server = Server::start(&config, &data, &log("damaged")).await;
    let got = support::stored(&client, &server.base, METRIC, "series", T0, end).await;
    assert_eq!(
        got, want,
        "replay must keep exactly the frames before the damage"
    );
    let m = metrics_text(&client, &server.base).await;
    assert_eq!(
        metric_value(&m, "sextant_wal_truncated_bytes_total"),
        Some(dropped as f64)
    );
    assert!(dropped > 0);
    // The truncation is on disk: the next start finds nothing to drop and the same data, and
    // writing continues.
    server.terminate().await;
    let server = Server::start(&config, &data, &log("after")).await;
    let got = support::stored(&client, &server.base, METRIC, "series", T0, end).await;
    assert_eq!(got, want);
    let m = metrics_text(&client, &server.base).await;
    assert_eq!(
        metric_value(&m, "sextant_wal_truncated_bytes_total"),
        Some(0.0)
    );
    write(&client, &server.base, &request(30)).await;
}

/// A kill while compaction deletes a superseded block (`Block::drop` → `remove_dir_all`, which
/// unlinks file by file) leaves a directory with some of the block's files gone. The compacted
/// block lists it as a parent, so the restart must finish deleting it, not report it as
/// corrupt.
#[tokio::test]
async fn a_half_deleted_superseded_block_is_removed_not_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let config = support::write_config(
        tmp.path(),
        &[
            "block_range: 1m",
            "max_block_range: 3m",
            "maintenance_interval: 100ms",
            "retention_time: 0s",
        ],
    );
    let data = tmp.path().join("data");
    let log = |n: &str| tmp.path().join(format!("{n}.log"));
    let client = reqwest::Client::new();
    let mut server = Server::start(&config, &data, &log("setup")).await;
    // Nine minutes of data: once cut, at least two aligned three-minute windows are full.
    let batch = samples(T0, T0 + 9 * 60_000, 5000);
    write(&client, &server.base, &batch).await;
    let all = expected(&batch);
    let flushed = client
        .post(format!("{}/api/v1/admin/tsdb/flush", server.base))
        .send()
        .await
        .unwrap()
        .status()
        .is_success();
    let base = server.base.clone();
    support::poll(Duration::from_secs(60), "a compaction", || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let m = metrics_text(&client, &base).await;
            (metric_value(&m, "sextant_compactions_total").unwrap_or(0.0) >= 1.0).then_some(())
        }
    })
    .await;
    server.terminate().await;
    let (blocks, _, broken) = scan_blocks(&data);
    assert!(broken.is_empty(), "{broken:?}");
    let compacted = blocks
        .iter()
        .find(|b| !b.parents.is_empty())
        .unwrap_or_else(|| panic!("no compacted block (flushed: {flushed}): {blocks:?}"));
    let parent = data.join("blocks").join(&compacted.parents[0]);
    assert!(!parent.exists(), "the superseded block was not deleted");
    // What the kill leaves: `meta.json` already unlinked, `index` and `chunks` not yet.
    std::fs::create_dir_all(&parent).unwrap();
    for f in ["index", "chunks"] {
        std::fs::copy(compacted.dir.join(f), parent.join(f)).unwrap();
    }

    let server = Server::start(&config, &data, &log("restart")).await;
    let m = metrics_text(&client, &server.base).await;
    assert_eq!(
        metric_value(&m, "sextant_blocks_quarantined_total"),
        Some(0.0),
        "a crash during a routine deletion is reported as block corruption; log:\n{}",
        support::tail_of(&log("restart"))
    );
    assert!(!data.join("quarantine").exists());
    assert!(!parent.exists(), "the half-deleted block is still there");
    let got = support::stored(&client, &server.base, METRIC, "series", T0, end_of(&all)).await;
    assert_eq!(got, all);
}

/// A block whose chunks are damaged cannot be compacted. That must not stop maintenance: other
/// windows are still compacted (and retention still runs, which `maintain` only reaches after
/// compaction).
#[tokio::test]
async fn a_block_that_cannot_be_compacted_does_not_stop_compaction_of_other_blocks() {
    // Level-1 blocks only while the data is written.
    let fx = with_blocks_spanning(9).await;
    const WINDOW: i64 = 3 * 60_000;
    let mut windows: std::collections::BTreeMap<i64, Vec<&BlockInfo>> = Default::default();
    for b in &fx.blocks {
        windows
            .entry(b.min_time.div_euclid(WINDOW))
            .or_default()
            .push(b);
    }
    let full: Vec<&Vec<&BlockInfo>> = windows.values().filter(|w| w.len() >= 2).collect();
    assert!(full.len() >= 2, "{:?}", fx.blocks);
    // Damage a block of the earliest window that compaction will pick.
    let chunks = full[0][0].dir.join("chunks");
    truncate(&chunks, file_len(&chunks) / 2);

    support::write_config(
        fx._tmp.path(),
        &[
            "block_range: 1m",
            "max_block_range: 3m",
            "maintenance_interval: 100ms",
            "retention_time: 0s",
        ],
    );
    let server = fx.start("restart").await;
    let (client, base) = (fx.client.clone(), server.base.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics_text(&client, &base).await;
        if metric_value(&m, "sextant_compactions_total").unwrap_or(0.0) >= 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction in 10 s although later windows hold 2+ blocks: the group with the \
             damaged block is retried every pass and blocks everything behind it; log:\n{}",
            support::tail_of(&fx.log("restart"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
