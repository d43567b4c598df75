//! Maintenance end to end on a real directory: every step must leave queries answering exactly
//! the acknowledged samples, before and after a restart.

use super::*;
use crate::db::test_fixtures::{dump, lbl as labels, opts};
use crate::{DbOptions, Sample};

const H: i64 = 3_600_000;

/// Appends `[from, to)` at 15s for `n` series with decimal and awkward values.
fn ingest(db: &Db, n: usize, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let batch: Vec<(Labels, Vec<Sample>)> = (0..n)
            .map(|i| {
                let v = if i == 0 && t % (37 * 15_000) == 0 {
                    f64::from_bits(crate::STALE_NAN_BITS)
                } else {
                    (t / 1000) as f64 * 0.25 + i as f64
                };
                (labels(i), vec![Sample { t, v }])
            })
            .collect();
        db.append(&batch).unwrap();
        t += 15_000;
    }
}

#[test]
fn cut_truncates_head_and_checkpoints_wal_without_changing_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 5, 0, 4 * H);
    let before = dump(&db);
    assert_eq!(before[0].1.len(), 960);
    let report = db.maintain().unwrap();
    assert_eq!(report.blocks_cut, 1);
    let blocks = db.blocks();
    assert_eq!((blocks[0].min_time, blocks[0].max_time), (0, 2 * H));
    assert_eq!(blocks[0].stats.num_samples, 5 * 480);
    assert_eq!(db.head_stats().num_samples, 5 * 480);
    assert_eq!(dump(&db), before);
    // Samples for the persisted range are refused now.
    let out = db
        .append(&[(labels(0), vec![Sample { t: H, v: 1.0 }])])
        .unwrap();
    assert_eq!(out.rejected.get(&crate::RejectReason::TooOld), Some(&1));
    let wal_files: Vec<String> = std::fs::read_dir(tmp.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        wal_files.iter().any(|f| f.starts_with("checkpoint.")),
        "{wal_files:?}"
    );
    assert!(
        !wal_files.contains(&"00000000".to_string()),
        "{wal_files:?}"
    );
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), before);
    assert_eq!(db.head_stats().num_samples, 5 * 480);
}

#[test]
fn flush_persists_everything_and_leaves_a_small_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 20, 0, 3 * H);
    let before = dump(&db);
    db.flush().unwrap();
    // One block for the whole head, not one per aligned window.
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1, "{blocks:#?}");
    assert_eq!(
        (blocks[0].min_time, blocks[0].max_time),
        (0, 3 * H - 15_000 + 1)
    );
    assert_eq!(db.head_stats().num_series, 0);
    assert_eq!(dump(&db), before);
    let wal_bytes = dir_size(&tmp.path().join("wal"));
    assert!(wal_bytes < 1024, "wal still holds {wal_bytes} bytes");
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), before);
    // New samples after the flushed range create fresh head series that merge with blocks.
    ingest(&db, 20, 3 * H, 3 * H + 60_000);
    let after = dump(&db);
    assert_eq!(after[3].1.len(), before[3].1.len() + 4);
}

#[test]
fn compaction_merges_levels_and_overlaps_and_keeps_every_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 4, 0, H / 2);
    db.flush().unwrap();
    ingest(&db, 4, H / 2, 9 * H);
    let before = dump(&db);
    let report = db.maintain().unwrap();
    assert!(report.blocks_cut >= 3, "{report:?}");
    assert!(report.blocks_compacted >= 3, "{report:?}");
    let blocks = db.blocks();
    assert!(
        blocks
            .iter()
            .any(|b| b.compaction.level >= 2 && b.max_time - b.min_time == 6 * H),
        "{blocks:#?}"
    );
    for w in blocks.windows(2) {
        assert!(
            w[0].max_time <= w[1].min_time,
            "overlapping blocks remain: {blocks:#?}"
        );
    }
    assert_eq!(dump(&db), before);
    // Obsolete block directories are gone once nothing references them.
    let dirs = std::fs::read_dir(tmp.path().join("blocks"))
        .unwrap()
        .count();
    assert_eq!(dirs, blocks.len());
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), before);
}

#[test]
fn retention_deletes_old_blocks_by_time_and_size() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(
        tmp.path(),
        DbOptions {
            retention_ms: 5 * H,
            max_block_range_ms: 2 * H,
            ..opts()
        },
    )
    .unwrap();
    ingest(&db, 3, 0, 10 * H);
    db.maintain().unwrap();
    let blocks = db.blocks();
    assert!(
        blocks.iter().all(|b| b.max_time > 10 * H - 15_000 - 5 * H),
        "{blocks:#?}"
    );
    let oldest = dump(&db)[0].1[0].0;
    assert!(oldest >= 2 * H, "{oldest}");
    drop(db);

    let db = Db::open(
        tmp.path(),
        DbOptions {
            retention_bytes: 1,
            ..opts()
        },
    )
    .unwrap();
    db.maintain().unwrap();
    assert!(db.blocks().is_empty());
}

#[test]
fn corrupt_block_is_quarantined_and_the_rest_stays_queryable() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = Db::open(
            tmp.path(),
            DbOptions {
                max_block_range_ms: 2 * H,
                ..opts()
            },
        )
        .unwrap();
        ingest(&db, 3, 0, 6 * H);
        db.flush().unwrap();
        assert_eq!(db.blocks().len(), 3);
    }
    let victim = std::fs::read_dir(tmp.path().join("blocks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let index = victim.join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&index, bytes).unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(db.blocks().len(), 2);
    assert!(tmp
        .path()
        .join("quarantine")
        .join(victim.file_name().unwrap())
        .exists());
    assert_eq!(db.metrics().blocks_quarantined.get(), 1);
    assert_eq!(dump(&db)[0].1.len(), 2 * 480);
}
