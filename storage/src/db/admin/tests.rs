//! Admin operations on a real directory: deleted samples stay gone for every read, across
//! restarts, cuts, compaction and `clean_tombstones`; snapshots answer like their source;
//! read-only opens change nothing.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::{DbOptions, FsyncPolicy, MatchOp, Sample, SeriesSource};

const H: i64 = 3_600_000;

/// Blocks stay at the 2h block range (a flush writes one block per aligned window) until a
/// test reopens with compaction enabled.
fn opts() -> DbOptions {
    DbOptions {
        fsync: FsyncPolicy::Never,
        max_block_range_ms: 2 * H,
        ..DbOptions::default()
    }
}

fn series(job: &str, i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "m"),
        ("job", job),
        ("i", &i.to_string() as &str),
    ])
}

/// Samples at 15s in `[from, to)` for jobs `a` and `b`, two series each; value = t/1000 + i.
fn ingest(db: &Db, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let batch: Vec<(Labels, Vec<Sample>)> = ["a", "b"]
            .iter()
            .flat_map(|job| (0..2).map(move |i| (series(job, i), i)))
            .map(|(l, i)| {
                let v = (t / 1000) as f64 + i as f64;
                (l, vec![Sample { t, v }])
            })
            .collect();
        db.append(&batch).unwrap();
        t += 15_000;
    }
}

type Dump = BTreeMap<String, Vec<(i64, u64)>>;

fn dump(db: &Db) -> Dump {
    db.select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| {
            let points = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
            (s.labels.to_string(), points)
        })
        .collect()
}

/// What `dump` should return after deleting `[lo, hi]` of job `a` from `full`.
fn without(full: &Dump, job_a_from: i64, job_a_to: i64) -> Dump {
    full.iter()
        .map(|(k, v)| {
            let kept = v
                .iter()
                .copied()
                .filter(|(t, _)| !(k.contains("job=\"a\"") && *t >= job_a_from && *t <= job_a_to))
                .collect::<Vec<_>>();
            (k.clone(), kept)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn job_a() -> Vec<Matcher> {
    vec![Matcher::equal("job", "a")]
}

#[test]
fn deleted_samples_are_gone_from_blocks_and_head_immediately_and_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 0, 4 * H);
    assert_eq!(db.maintain().unwrap().blocks_cut, 1); // [0, 2h) in a block, the rest in the head
    let full = dump(&db);
    // Spans the block and the head.
    let (lo, hi) = (H, 3 * H);
    db.delete_series(&job_a(), lo, hi).unwrap();
    let expected = without(&full, lo, hi);
    assert_ne!(expected, full);
    assert_eq!(dump(&db), expected);
    assert!(tmp.path().join("head_tombstones").exists());
    let block = &db.blocks()[0];
    assert!(tmp
        .path()
        .join("blocks")
        .join(&block.ulid)
        .join("tombstones")
        .exists());
    // Series whose every sample is deleted disappear from the label APIs too.
    let all = [Matcher::new(MatchOp::Regex, "job", ".+").unwrap()];
    db.delete_series(&[Matcher::equal("job", "b")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(
        db.label_values("job", &[], i64::MIN, i64::MAX).unwrap(),
        vec!["a"]
    );
    assert_eq!(db.series(&all, i64::MIN, i64::MAX).unwrap().len(), 2);
    let expected: Dump = expected
        .into_iter()
        .filter(|(k, _)| k.contains("job=\"a\""))
        .collect();
    assert_eq!(dump(&db), expected);
    // A later sample of a deleted series is kept, also after replay.
    let late = Sample { t: 4 * H, v: 7.0 };
    db.append(&[(series("a", 0), vec![late])]).unwrap();
    let mut expected = expected;
    if let Some(points) = expected.get_mut(&series("a", 0).to_string()) {
        points.push((late.t, late.v.to_bits()));
    }
    assert_eq!(dump(&db), expected);
    drop(db);

    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), expected);
    assert_eq!(
        db.label_values("job", &[], i64::MIN, i64::MAX).unwrap(),
        vec!["a"]
    );
    // A cut persists the head without the deleted samples and retires the head tombstones.
    db.flush().unwrap();
    assert!(!tmp.path().join("head_tombstones").exists());
    assert_eq!(dump(&db), expected);
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), expected);
}

#[test]
fn compaction_and_clean_tombstones_drop_deleted_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 0, 6 * H);
    db.flush().unwrap();
    assert_eq!(db.blocks().len(), 3);
    let full = dump(&db);
    db.delete_series(&job_a(), 30 * 60_000, 90 * 60_000)
        .unwrap();
    db.delete_series(&job_a(), 4 * H, 5 * H).unwrap();
    let expected = without(&without(&full, 30 * 60_000, 90 * 60_000), 4 * H, 5 * H);
    assert_eq!(dump(&db), expected);
    let samples_before: u64 = db.blocks().iter().map(|b| b.stats.num_samples).sum();

    db.clean_tombstones().unwrap();
    let blocks = db.blocks();
    let samples_after: u64 = blocks.iter().map(|b| b.stats.num_samples).sum();
    // Two series of job `a`, 241 samples each in each interval, in two blocks.
    assert_eq!(samples_before - samples_after, 2 * 2 * 241);
    for b in &blocks {
        let dir = tmp.path().join("blocks").join(&b.ulid);
        assert!(!dir.join("tombstones").exists(), "{}", b.ulid);
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("blocks"))
            .unwrap()
            .count(),
        3
    );
    assert_eq!(dump(&db), expected);
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), expected);

    // Compaction drops tombstoned samples as well; a later block closes the 6h window.
    ingest(&db, 6 * H, 7 * H);
    db.flush().unwrap();
    let expected = dump(&db);
    db.delete_series(&[Matcher::equal("i", "1")], 0, 6 * H)
        .unwrap();
    let expected: Dump = expected
        .into_iter()
        .map(|(k, v)| {
            let keep = |p: &(i64, u64)| !k.contains("i=\"1\"") || p.0 > 6 * H;
            let v: Vec<(i64, u64)> = v.into_iter().filter(keep).collect();
            (k, v)
        })
        .collect();
    let db = reopen_with_compaction(tmp.path(), db);
    assert!(db.maintain().unwrap().blocks_compacted >= 2);
    assert_eq!(dump(&db), expected);
    let blocks = db.blocks();
    let compacted: Vec<_> = blocks.iter().filter(|b| b.compaction.level > 1).collect();
    assert_eq!(compacted.len(), 1, "{blocks:#?}");
    let c = compacted[0];
    let want = expected
        .values()
        .flatten()
        .filter(|p| p.0 >= c.min_time && p.0 < c.max_time)
        .count();
    assert_eq!(c.stats.num_samples, want as u64);
    let dir = tmp.path().join("blocks").join(&c.ulid);
    assert!(!dir.join("tombstones").exists());
}

fn reopen_with_compaction(dir: &Path, db: Db) -> Db {
    drop(db);
    Db::open(
        dir,
        DbOptions {
            max_block_range_ms: 24 * H,
            ..opts()
        },
    )
    .unwrap()
}

#[test]
fn snapshot_is_an_openable_data_dir_with_identical_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 0, 4 * H);
    db.maintain().unwrap();
    db.delete_series(&job_a(), H, H + 60_000).unwrap();
    let full = dump(&db);
    let head_before = db.head_stats().num_samples;

    let name = db.snapshot(false).unwrap();
    let re = regex::Regex::new(r"^\d{8}T\d{6}Z-[0-9a-f]{16}$").unwrap();
    assert!(re.is_match(&name), "{name}");
    // The live head is untouched.
    assert_eq!(db.head_stats().num_samples, head_before);
    let head_only = db.snapshot(true).unwrap();
    assert_ne!(head_only, name);

    // Later changes to the source do not reach the snapshot.
    db.delete_series(&[Matcher::equal("job", "b")], i64::MIN, i64::MAX)
        .unwrap();
    db.clean_tombstones().unwrap();
    drop(db);

    let snap_dir = tmp.path().join("snapshots").join(&name);
    let snap = Db::open(&snap_dir, opts()).unwrap();
    assert_eq!(dump(&snap), full);
    assert_eq!(snap.blocks().len(), 2);
    let m = [Matcher::equal("__name__", "m")];
    assert_eq!(
        snap.label_values("i", &m, i64::MIN, i64::MAX).unwrap(),
        vec!["0", "1"]
    );
    drop(snap);
    let blocks_only = Db::open(&tmp.path().join("snapshots").join(&head_only), opts()).unwrap();
    let block_end = 2 * H;
    let expected: Dump = full
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.iter().copied().filter(|p| p.0 < block_end).collect(),
            )
        })
        .collect();
    assert_eq!(dump(&blocks_only), expected);
}

#[test]
fn read_only_open_changes_nothing_and_refuses_admin_operations() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = Db::open(tmp.path(), opts()).unwrap();
        ingest(&db, 0, 4 * H);
        db.maintain().unwrap();
        db.delete_series(&job_a(), 3 * H, 4 * H).unwrap();
    }
    let listing = |dir: &Path| {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let meta = e.metadata().unwrap();
                if meta.is_dir() {
                    stack.push(e.path());
                }
                out.push((e.path(), meta.len(), meta.modified().unwrap()));
            }
        }
        out.sort();
        out
    };
    let before = listing(tmp.path());
    let ro = DbOptions {
        read_only: true,
        ..opts()
    };
    let db = Db::open(tmp.path(), ro.clone()).unwrap();
    let got = dump(&db);
    for (k, v) in &got {
        let in_range = v.iter().filter(|p| p.0 >= 3 * H).count();
        assert_eq!(
            in_range,
            if k.contains("job=\"a\"") { 0 } else { 240 },
            "{k}"
        );
    }
    let a0 = &got[&series("a", 0).to_string()];
    assert_eq!(a0.last().map(|p| p.0), Some(3 * H - 15_000));
    assert_eq!(got[&series("b", 0).to_string()].len(), 4 * 240);
    assert!(matches!(
        db.snapshot(true),
        Err(StorageError::Unsupported(_))
    ));
    assert!(matches!(
        db.delete_series(&job_a(), 0, 1),
        Err(StorageError::Unsupported(_))
    ));
    assert!(matches!(
        db.clean_tombstones(),
        Err(StorageError::Unsupported(_))
    ));
    assert_eq!(db.flush().unwrap(), Default::default());
    drop(db);
    assert_eq!(listing(tmp.path()), before);
    assert!(Db::open(&tmp.path().join("missing"), ro).is_err());
}

#[test]
fn in_memory_delete_hides_series_from_label_lookups() {
    let db = Db::in_memory();
    ingest(&db, 0, H);
    db.delete_series(&job_a(), i64::MIN, i64::MAX).unwrap();
    assert_eq!(
        db.label_values("job", &[], i64::MIN, i64::MAX).unwrap(),
        vec!["b"]
    );
    assert_eq!(db.head_stats().num_samples, 2 * 240);
    assert!(matches!(
        db.snapshot(false),
        Err(StorageError::Unsupported(_))
    ));
}

#[test]
fn snapshot_names_use_utc_calendar_time() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_512_940_344);
    assert!(snapshot_name(t).starts_with("20171210T211224Z-"));
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
}
