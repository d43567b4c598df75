//! Native histograms through blocks: cuts, flushes, compaction, snapshots, deletions and
//! retention, with reads merging blocks and head.

use super::histogram_tests::hist;
use super::*;
use crate::block::writer::{write_block, BlockPlan};
use crate::db::test_fixtures::{lbl, opts};
use crate::series_data::SeriesSamples;
use crate::{DbOptions, Matcher, SeriesSource};

const H: i64 = 3_600_000;

/// Appends `[from, to)` at 15s for `n` series: series 0 alternates between floats (first half
/// of each hour) and histograms (second half); the others are histogram-only, with a NaN sum
/// now and then.
fn ingest(db: &Db, n: usize, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        for i in 0..n {
            let step = t / 15_000;
            if i == 0 && t.rem_euclid(H) < H / 2 {
                let v = step as f64 * 0.5;
                db.append(&[(lbl(i), vec![Sample { t, v }])]).unwrap();
                continue;
            }
            let mut h = hist(step + i as i64);
            if step % 29 == 0 {
                h.sum = f64::NAN;
            }
            let out = db
                .append_histograms(&[(lbl(i), vec![HistogramSample { t, h }])])
                .unwrap();
            assert_eq!(out.appended, 1);
        }
        t += 15_000;
    }
}

type Dump = Vec<(String, Vec<(i64, u64)>, Vec<(i64, Vec<u8>)>)>;

fn dump_range(db: &Db, mint: i64, maxt: i64) -> Dump {
    db.select(&[Matcher::equal("__name__", "m")], mint, maxt)
        .unwrap()
        .into_iter()
        .map(|s| {
            let hs = s
                .histograms
                .iter()
                .map(|x| {
                    let mut b = Vec::new();
                    crate::wal::encode_histogram(&x.h, &mut b);
                    (x.t, b)
                })
                .collect();
            (
                s.labels.to_string(),
                s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
                hs,
            )
        })
        .collect()
}

fn dump(db: &Db) -> Dump {
    dump_range(db, i64::MIN, i64::MAX)
}

#[test]
fn cut_and_checkpoint_keep_histograms_and_reads_merge_block_and_head() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 3, 0, 4 * H);
    let before = dump(&db);
    assert_eq!(before[0].1.len(), 480);
    assert_eq!(before[0].2.len(), 480);
    assert_eq!(before[1].2.len(), 960);
    assert_eq!(db.maintain().unwrap().blocks_cut, 1);
    let blocks = db.blocks();
    assert_eq!((blocks[0].min_time, blocks[0].max_time), (0, 2 * H));
    assert_eq!(blocks[0].stats.num_samples, 3 * 480);
    assert_eq!(db.head_stats().num_samples, 3 * 480);
    // Series 0 now has floats and histograms in the block and in the head.
    assert_eq!(dump(&db), before);
    assert_eq!(dump_range(&db, H, 3 * H), {
        let lo = H;
        let hi = 3 * H;
        before
            .iter()
            .map(|(l, f, h)| {
                (
                    l.clone(),
                    f.iter()
                        .filter(|x| x.0 >= lo && x.0 <= hi)
                        .cloned()
                        .collect(),
                    h.iter()
                        .filter(|x| x.0 >= lo && x.0 <= hi)
                        .cloned()
                        .collect(),
                )
            })
            .collect::<Dump>()
    });
    // Histograms for the persisted range are refused now.
    let out = db
        .append_histograms(&[(lbl(1), vec![HistogramSample { t: H, h: hist(1) }])])
        .unwrap();
    assert_eq!(out.rejected.get(&RejectReason::TooOld), Some(&1));
    drop(db);
    // The checkpoint replays the head's histograms; the block has the rest.
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), before);
    assert_eq!(db.head_stats().num_samples, 3 * 480);
}

#[test]
fn flush_compaction_and_restart_keep_every_histogram() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    // Three flushed blocks inside one 6h window, then enough data for that window to close.
    ingest(&db, 3, 0, H / 2);
    db.flush().unwrap();
    ingest(&db, 3, H / 2, 2 * H);
    db.flush().unwrap();
    ingest(&db, 3, 2 * H, 5 * H);
    db.flush().unwrap();
    assert_eq!(db.blocks().len(), 3);
    ingest(&db, 3, 6 * H, 6 * H + 60_000);
    db.flush().unwrap();
    let before = dump(&db);
    let report = db.maintain().unwrap();
    assert!(report.blocks_compacted >= 3, "{report:?}");
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 2, "{blocks:#?}");
    assert!(blocks[0].compaction.level >= 2);
    assert_eq!(blocks[0].compaction.sources.len(), 3);
    assert_eq!(
        blocks.iter().map(|b| b.stats.num_samples).sum::<u64>(),
        3 * (5 * 240 + 4)
    );
    assert_eq!(dump(&db), before);
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), before);
}

#[test]
fn snapshot_holds_block_and_head_histograms() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 2, 0, H);
    db.flush().unwrap();
    let first = dump(&db);
    // A snapshot (with its head block) opened as its own database holds the same data.
    ingest(&db, 2, H, H + 15 * 60_000);
    let name = db.snapshot(false).unwrap();
    let all = dump(&db);
    let snap = Db::open(&tmp.path().join("snapshots").join(&name), opts()).unwrap();
    assert_eq!(dump(&snap), all);
    assert_eq!(snap.blocks().len(), 2);
    assert_eq!(snap.head_stats().num_samples, 0);
    assert_eq!(first.len(), 2);
    assert!(all[1].2.len() > first[1].2.len());
}

fn write_test_block(
    dir: &std::path::Path,
    id: &str,
    (min_time, max_time): (i64, i64),
    data: &[(Labels, SeriesSamples)],
) -> crate::BlockMeta {
    let plan = BlockPlan {
        id: id.to_string(),
        min_time,
        max_time,
        level: 1,
        sources: vec![id.to_string()],
        parents: vec![],
        zstd_level: 3,
    };
    let labels: Vec<Labels> = data.iter().map(|d| d.0.clone()).collect();
    write_block(dir, &plan, &labels, |i, out| {
        out.floats.extend_from_slice(&data[i].1.floats);
        out.hists.extend_from_slice(&data[i].1.hists);
        Ok(())
    })
    .unwrap()
    .unwrap()
}

fn hs(t: i64, i: i64) -> HistogramSample {
    HistogramSample { t, h: hist(i) }
}

#[test]
fn block_roundtrip_and_compaction_of_overlapping_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks_dir = tmp.path().join("blocks");
    std::fs::create_dir_all(&blocks_dir).unwrap();
    // Block A: series 0 floats then histograms (more than one histogram chunk), series 1
    // histograms only. Block B overlaps A: series 0 repeats some histogram timestamps,
    // series 2 is new.
    let mixed = SeriesSamples {
        floats: (0..100)
            .map(|t| Sample {
                t,
                v: t as f64 / 3.0,
            })
            .collect(),
        hists: (100..700).map(|t| hs(t, t)).collect(),
    };
    let only = SeriesSamples {
        floats: vec![],
        hists: (0..50).map(|t| hs(t * 2, -t)).collect(),
    };
    let a = write_test_block(
        &blocks_dir,
        "A",
        (0, 1000),
        &[(lbl(0), mixed.clone()), (lbl(1), only.clone())],
    );
    assert_eq!(a.stats.num_samples, 750);
    assert_eq!(a.stats.num_chunks, 1 + 3 + 1);
    let late = SeriesSamples {
        floats: vec![],
        hists: (650..800).map(|t| hs(t, t)).collect(),
    };
    let new = SeriesSamples {
        floats: vec![Sample { t: 900, v: 1.0 }],
        hists: vec![hs(901, 1)],
    };
    write_test_block(
        &blocks_dir,
        "B",
        (500, 1500),
        &[(lbl(0), late.clone()), (lbl(2), new.clone())],
    );
    let db = Db::open(tmp.path(), opts()).unwrap();
    let expected = {
        let mut m = mixed.clone();
        m.hists.extend(late.hists.iter().cloned());
        m.normalize();
        vec![(lbl(0), m), (lbl(1), only), (lbl(2), new)]
    };
    let check = |db: &Db| {
        let got = db.select(&[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(got.len(), 3);
        for (g, (l, e)) in got.iter().zip(&expected) {
            assert_eq!(&g.labels, l);
            let fl = |s: &[Sample]| s.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>();
            assert_eq!(fl(&g.samples), fl(&e.floats));
            assert_eq!(g.histograms.len(), e.hists.len());
            for (x, y) in g.histograms.iter().zip(&e.hists) {
                assert_eq!(x.t, y.t);
                assert!(crate::series_data::histograms_identical(&x.h, &y.h));
            }
        }
    };
    check(&db);
    assert_eq!(db.maintain().unwrap().blocks_compacted, 2);
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].stats.num_samples, 700 + 50 + 2 + 100);
    check(&db);
}

#[test]
fn deleting_block_histograms_and_cleaning_tombstones() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    ingest(&db, 2, 0, H);
    db.flush().unwrap();
    // Series 0: floats in [0, 30m), histograms in [30m, 60m). Delete across the switch.
    let (lo, hi) = (H / 2 - 60_000, H / 2 + 60_000);
    db.delete_series(&[Matcher::equal("i", "0")], lo, hi)
        .unwrap();
    let kept = |d: &Dump| -> (usize, usize) { (d[0].1.len(), d[0].2.len()) };
    let after = dump(&db);
    assert_eq!(kept(&after), (120 - 4, 120 - 5));
    assert!(after[0].1.iter().all(|x| x.0 < lo || x.0 > hi));
    assert!(after[0].2.iter().all(|x| x.0 < lo || x.0 > hi));
    // Deleting every histogram of series 1 hides it from the label APIs too.
    db.delete_series(&[Matcher::equal("i", "1")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(
        db.label_values("i", &[Matcher::equal("__name__", "m")], 0, H)
            .unwrap(),
        vec!["0"]
    );
    db.clean_tombstones().unwrap();
    assert_eq!(db.blocks().len(), 1);
    assert_eq!(dump(&db), after[..1].to_vec());
    drop(db);
    let db = Db::open(tmp.path(), opts()).unwrap();
    assert_eq!(dump(&db), after[..1].to_vec());
}

#[test]
fn retention_drops_old_histogram_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(
        tmp.path(),
        DbOptions {
            retention_ms: 3 * H,
            ..opts()
        },
    )
    .unwrap();
    ingest(&db, 2, 0, H);
    db.flush().unwrap();
    ingest(&db, 2, 5 * H, 5 * H + 60_000);
    db.flush().unwrap();
    let report = db.maintain().unwrap();
    assert_eq!(report.blocks_deleted, 1);
    let d = dump(&db);
    assert!(d.iter().all(|s| s.2.iter().all(|x| x.0 >= 5 * H)));
    assert_eq!(d[1].2.len(), 4);
}
