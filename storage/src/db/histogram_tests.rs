//! Native histograms through the head and the WAL: validation on the timeline shared with
//! float samples, bit-exact round trips, replay after a restart.

use super::*;
use crate::histogram::CUSTOM_BUCKETS_SCHEMA;
use crate::{CounterResetHint, FloatHistogram, Matcher, SeriesSource, Span};

fn lbl(name: &str, job: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", job)])
}

pub(super) fn hist(i: i64) -> FloatHistogram {
    let c = i as f64;
    FloatHistogram {
        counter_reset_hint: CounterResetHint::NotCounterReset,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: c,
        count: 4.0 * c + 0.5,
        sum: 1.25 * c,
        positive_spans: vec![Span {
            offset: -1,
            length: 2,
        }],
        negative_spans: vec![Span {
            offset: 3,
            length: 1,
        }],
        positive_buckets: vec![c, 2.0 * c + 0.5],
        negative_buckets: vec![c],
        custom_values: vec![],
    }
}

fn hs(t: i64, h: FloatHistogram) -> HistogramSample {
    HistogramSample { t, h }
}

fn s(t: i64, v: f64) -> Sample {
    Sample { t, v }
}

/// Histograms as (t, encoded bits) so that comparisons are bit-exact.
fn bits(hs: &[HistogramSample]) -> Vec<(i64, Vec<u8>)> {
    hs.iter()
        .map(|x| {
            let mut b = Vec::new();
            crate::wal::encode_histogram(&x.h, &mut b);
            (x.t, b)
        })
        .collect()
}

fn special_histograms() -> Vec<HistogramSample> {
    let mut nan_sum = hist(2);
    nan_sum.sum = f64::from_bits(0x7ff8_0000_0000_00ab);
    let mut stale = hist(3);
    stale.sum = f64::from_bits(crate::STALE_NAN_BITS);
    stale.zero_count = -0.0;
    let custom = FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 3.0,
        sum: 0.7,
        positive_spans: vec![Span {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![1.0, 2.0],
        custom_values: vec![0.25, 1.0],
        ..Default::default()
    };
    vec![
        hs(1000, hist(1)),
        hs(2000, nan_sum),
        hs(3000, stale),
        hs(4000, custom),
    ]
}

#[test]
fn append_and_select_roundtrip_bit_exactly_in_memory() {
    let db = Db::in_memory();
    let data = special_histograms();
    let out = db
        .append_histograms(&[(lbl("rpc", "a"), data.clone())])
        .unwrap();
    assert_eq!(out.appended, 4);
    assert_eq!(out.rejected_total(), 0);
    let got = db
        .select(&[Matcher::equal("__name__", "rpc")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].samples.is_empty());
    assert_eq!(bits(&got[0].histograms), bits(&data));
    assert!(got[0].histograms[1].h.sum.is_nan());
    // Range bounds are inclusive.
    let got = db.select(&[], 2000, 3000).unwrap();
    let ts: Vec<i64> = got[0].histograms.iter().map(|h| h.t).collect();
    assert_eq!(ts, vec![2000, 3000]);
    assert!(db.select(&[], 5000, 6000).unwrap().is_empty());
    // Histogram-only series are visible to the label and series APIs.
    assert_eq!(
        db.label_values("job", &[Matcher::equal("__name__", "rpc")], 0, 10_000)
            .unwrap(),
        vec!["a"]
    );
    assert_eq!(
        db.label_names(&[Matcher::equal("job", "a")], 0, 10_000)
            .unwrap(),
        vec!["__name__", "job"]
    );
    assert_eq!(db.series(&[], 0, 10_000).unwrap(), vec![lbl("rpc", "a")]);
    assert!(db.series(&[], 5000, 10_000).unwrap().is_empty());
    assert_eq!(db.head_stats().num_samples, 4);
}

#[test]
fn floats_and_histograms_share_one_timeline() {
    let db = Db::in_memory();
    let l = lbl("mixed", "a");
    db.append(&[(l.clone(), vec![s(10, 1.0)])]).unwrap();
    let out = db
        .append_histograms(&[(
            l.clone(),
            vec![
                hs(5, hist(1)),  // before the float: out of order
                hs(10, hist(1)), // the float's timestamp: duplicate
                hs(20, hist(2)),
                hs(20, hist(2)), // identical resend in the same batch: ignored
                hs(20, hist(3)), // same time, other histogram: duplicate
                hs(30, hist(3)),
            ],
        )])
        .unwrap();
    assert_eq!(out.appended, 2);
    assert_eq!(out.duplicates_ignored, 1);
    assert_eq!(out.rejected.get(&RejectReason::OutOfOrder), Some(&1));
    assert_eq!(
        out.rejected.get(&RejectReason::DuplicateTimestamp),
        Some(&2)
    );
    // Floats after histograms: the newest histogram bounds them too.
    let out = db
        .append(&[(l.clone(), vec![s(25, 9.0), s(30, 9.0), s(40, 4.0)])])
        .unwrap();
    assert_eq!(out.appended, 1);
    assert_eq!(out.rejected.get(&RejectReason::OutOfOrder), Some(&1));
    assert_eq!(
        out.rejected.get(&RejectReason::DuplicateTimestamp),
        Some(&1)
    );
    // An identical resend of a stored histogram (checked against the head) is ignored;
    // anything else at an older time is rejected.
    let out = db
        .append_histograms(&[(l.clone(), vec![hs(30, hist(3)), hs(40, hist(9))])])
        .unwrap();
    assert_eq!(out.appended, 0);
    assert_eq!(out.duplicates_ignored, 0);
    assert_eq!(out.rejected_total(), 2);
    let out = db
        .append_histograms(&[(l.clone(), vec![hs(50, hist(5))])])
        .unwrap();
    assert_eq!(out.appended, 1);
    let out = db
        .append_histograms(&[(l.clone(), vec![hs(50, hist(5))])])
        .unwrap();
    assert_eq!((out.appended, out.duplicates_ignored), (0, 1));
    // As in Prometheus, a resend differing only in its counter reset hint is the same value.
    let mut hinted = hist(5);
    hinted.counter_reset_hint = CounterResetHint::Unknown;
    let out = db
        .append_histograms(&[(l.clone(), vec![hs(50, hinted)])])
        .unwrap();
    assert_eq!((out.appended, out.duplicates_ignored), (0, 1));

    let got = db.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(got.len(), 1);
    let floats: Vec<(i64, f64)> = got[0].samples.iter().map(|x| (x.t, x.v)).collect();
    assert_eq!(floats, vec![(10, 1.0), (40, 4.0)]);
    assert_eq!(
        bits(&got[0].histograms),
        bits(&[hs(20, hist(2)), hs(30, hist(3)), hs(50, hist(5))])
    );
    let m = db.metrics();
    assert_eq!(m.samples_appended.get(), 5);
}

#[test]
fn histograms_before_the_minimum_valid_time_are_too_old() {
    let db = Db::in_memory();
    db.head.set_min_valid_time(1000);
    let out = db
        .append_histograms(&[(lbl("h", "a"), vec![hs(999, hist(1)), hs(1000, hist(2))])])
        .unwrap();
    assert_eq!(out.appended, 1);
    assert_eq!(out.rejected.get(&RejectReason::TooOld), Some(&1));
}

#[test]
fn wal_replay_restores_histograms_and_only_acknowledged_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = special_histograms();
    {
        let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
        db.append_histograms(&[(lbl("h", "a"), data.clone())])
            .unwrap();
        db.append(&[(lbl("m", "b"), vec![s(100, 1.0)])]).unwrap();
        db.append_histograms(&[(lbl("m", "b"), vec![hs(100, hist(1)), hs(200, hist(2))])])
            .unwrap();
        // Rejected: must not come back.
        db.append_histograms(&[(lbl("h", "a"), vec![hs(1500, hist(7))])])
            .unwrap();
        db.append(&[(lbl("m", "b"), vec![s(300, 3.0)])]).unwrap();
    }
    let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
    let got = db.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels, lbl("h", "a"));
    assert_eq!(bits(&got[0].histograms), bits(&data));
    assert_eq!(got[1].samples, vec![s(100, 1.0), s(300, 3.0)]);
    assert_eq!(bits(&got[1].histograms), bits(&[hs(200, hist(2))]));
    // The replayed head validates against the restored newest samples.
    let out = db
        .append_histograms(&[(lbl("h", "a"), vec![hs(4000, data[3].h.clone())])])
        .unwrap();
    assert_eq!(out.duplicates_ignored, 1);
    // Read-only opens replay histograms too.
    drop(db);
    let ro = Db::open(
        tmp.path(),
        DbOptions {
            read_only: true,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let got = ro.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(bits(&got[0].histograms), bits(&data));
}

#[test]
fn deleting_head_histograms_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
        let samples: Vec<HistogramSample> = (1..=5).map(|i| hs(i * 10, hist(i))).collect();
        db.append_histograms(&[(lbl("h", "a"), samples)]).unwrap();
        db.delete_series(&[Matcher::equal("job", "a")], 20, 30)
            .unwrap();
        let ts: Vec<i64> = db.select(&[], 0, 100).unwrap()[0]
            .histograms
            .iter()
            .map(|h| h.t)
            .collect();
        assert_eq!(ts, vec![10, 40, 50]);
    }
    let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
    let ts: Vec<i64> = db.select(&[], 0, 100).unwrap()[0]
        .histograms
        .iter()
        .map(|h| h.t)
        .collect();
    assert_eq!(ts, vec![10, 40, 50]);
}
