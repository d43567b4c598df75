//! Sealed head chunks spilled to memory-mapped files (`head/spill.rs`): reads are unchanged,
//! later appends, deletions, flushes and restarts behave as before, and the files go away
//! with the chunks that point into them.

use super::*;
use crate::chunk::ChunkBytes;
use crate::db::test_fixtures::{dump, lbl, opts};
use crate::{DbOptions, Matcher};

const STEP: i64 = 15_000;

/// Values with every kind of float the chunks must keep bit-exact.
fn value(i: usize, step: i64) -> f64 {
    match step % 11 {
        0 => f64::from_bits(0x7ff0_0000_0000_0001 + i as u64), // NaN with a payload
        1 => -0.0,
        2 => f64::INFINITY,
        3 => f64::from_bits(crate::STALE_NAN_BITS),
        _ => (step as f64).sin() * 1e3 + i as f64,
    }
}

fn ingest(db: &Db, series: usize, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let batch: Vec<(Labels, Vec<Sample>)> = (0..series)
            .map(|i| {
                (
                    lbl(i),
                    vec![Sample {
                        t,
                        v: value(i, t / STEP),
                    }],
                )
            })
            .collect();
        let out = db.append(&batch).unwrap();
        assert_eq!(out.appended, series);
        t += STEP;
    }
}

fn spill_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(crate::head::spill::SPILL_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// (chunks in memory, chunks in spill files) over the whole head.
fn where_chunks_are(db: &Db) -> (usize, usize) {
    let (mut mem, mut spilled) = (0, 0);
    for (_, s) in db.head.all_series() {
        for c in s.lock().sealed_chunks() {
            match c.data {
                ChunkBytes::Mem(_) => mem += 1,
                ChunkBytes::Spilled { .. } => spilled += 1,
            }
        }
    }
    (mem, spilled)
}

#[test]
fn spilled_chunks_read_back_bit_exact_and_later_appends_still_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    // 600 samples per series: 5 chunks, 4 of them sealed.
    ingest(&db, 20, 0, 600 * STEP);
    let before = dump(&db);
    assert_eq!(before.len(), 20);
    assert!(before.iter().all(|(_, s)| s.len() == 600));
    assert_eq!(where_chunks_are(&db), (80, 0));
    assert!(db.head.sealed_in_memory() > 0);

    db.spill_over(0);
    assert_eq!(where_chunks_are(&db), (0, 80));
    assert_eq!(db.head.sealed_in_memory(), 0);
    assert_eq!(spill_files(tmp.path()).len(), 1);
    assert!(db.metrics().head_chunk_bytes_spilled.get() > 0);
    assert_eq!(
        dump(&db),
        before,
        "reads from the spill file equal reads from memory"
    );

    // New chunks seal in memory; a second pass writes a second file and leaves the first alone.
    ingest(&db, 20, 600 * STEP, 1000 * STEP);
    let (mem, spilled) = where_chunks_are(&db);
    assert_eq!((mem, spilled), (80, 80));
    let all = dump(&db);
    assert!(all.iter().all(|(_, s)| s.len() == 1000));
    assert_eq!(all[0].1[..600], before[0].1[..]);
    db.spill_over(0);
    assert_eq!(where_chunks_are(&db), (0, 160));
    assert_eq!(spill_files(tmp.path()).len(), 2);
    assert_eq!(dump(&db), all);
    // Nothing sealed since: a pass writes no file.
    db.spill_over(0);
    assert_eq!(spill_files(tmp.path()).len(), 2);
}

#[test]
fn deletion_flush_and_restart_drop_spill_files_and_keep_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 10, 0, 500 * STEP);
    db.spill_over(0);
    assert_eq!(spill_files(tmp.path()).len(), 1);

    // A deletion re-encodes the series it touches in memory; the others keep their spilled
    // chunks, and reads see the deletion.
    db.delete_series(&[Matcher::equal("i", "3")], 100 * STEP, 200 * STEP)
        .unwrap();
    let after_delete = dump(&db);
    let three = after_delete
        .iter()
        .find(|(l, _)| l.contains("i=\"3\""))
        .unwrap();
    assert_eq!(three.1.len(), 500 - 101);
    assert!(three
        .1
        .iter()
        .all(|(t, _)| *t < 100 * STEP || *t > 200 * STEP));
    assert!(after_delete
        .iter()
        .filter(|(l, _)| !l.contains("i=\"3\""))
        .all(|(_, s)| s.len() == 500));

    // A restart empties the spill directory and rebuilds the head from the WAL.
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert!(spill_files(tmp.path()).is_empty());
    assert_eq!(dump(&db), after_delete);
    db.spill_over(0);
    assert_eq!(spill_files(tmp.path()).len(), 1);
    assert_eq!(dump(&db), after_delete);

    // Flushing persists the head into a block and truncates it: the last chunk pointing into
    // the spill file goes, and so does the file.
    db.flush().unwrap();
    assert_eq!(where_chunks_are(&db), (0, 0));
    assert!(spill_files(tmp.path()).is_empty());
    assert_eq!(dump(&db), after_delete);
}

#[test]
fn in_memory_and_read_only_databases_never_spill() {
    let db = Db::in_memory();
    ingest(&db, 5, 0, 300 * STEP);
    db.spill_over(0);
    assert_eq!(where_chunks_are(&db).1, 0);

    let tmp = tempfile::tempdir().unwrap();
    {
        let db = Db::open(tmp.path(), opts()).unwrap();
        ingest(&db, 5, 0, 300 * STEP);
    }
    let ro = Db::open(
        tmp.path(),
        DbOptions {
            read_only: true,
            ..opts()
        },
    )
    .unwrap();
    ro.spill_over(0);
    assert_eq!(where_chunks_are(&ro).1, 0);
    assert_eq!(dump(&ro).len(), 5);
}
