//! Query statistics (`totalQueryableSamples`, per step, peak) and the `max_samples` limit,
//! on the dataset of Prometheus' `TestQueryStatistics`; the expected totals follow
//! Prometheus' counting rules (worked out in the comments).

use sextant_storage::{Db, FloatHistogram, HistogramSample, Labels, Sample as StSample, Span};

use super::*;
use crate::promql::{histogram_size, parse};

/// `load 10s`: `m1` and three `m3` series `1+1x100`, and `h1`, a native histogram series
/// with one span of four buckets (13 samples' worth each), all with 101 samples 0s..1000s.
fn db() -> Db {
    let db = Db::in_memory();
    let floats = |pairs: &[(&str, &str)]| {
        let samples = (0..=100)
            .map(|i| StSample {
                t: i * 10_000,
                v: (i + 1) as f64,
            })
            .collect();
        (Labels::from_pairs(pairs.iter().copied()), samples)
    };
    let batch = vec![
        floats(&[("__name__", "m1")]),
        floats(&[("__name__", "m3"), ("a", "1"), ("b", "1")]),
        floats(&[("__name__", "m3"), ("a", "2"), ("b", "2")]),
        floats(&[("__name__", "m3"), ("a", "3"), ("b", "2")]),
    ];
    db.append(&batch).unwrap();
    let hists = (0..=100)
        .map(|i| {
            let f = i as f64;
            HistogramSample {
                t: i * 10_000,
                h: FloatHistogram {
                    schema: 1,
                    count: 5.0 + 10.0 * f,
                    sum: 20.0 + 5.0 * f,
                    positive_spans: vec![Span {
                        offset: 0,
                        length: 4,
                    }],
                    positive_buckets: vec![1.0 + f, 2.0 + 2.0 * f, 1.0 + 3.0 * f, 1.0 + 4.0 * f],
                    ..FloatHistogram::default()
                },
            }
        })
        .collect();
    db.append_histograms(&[(Labels::from_pairs([("__name__", "h1")]), hists)])
        .unwrap();
    db
}

fn engine(max_samples: usize) -> Engine {
    Engine::new(EngineOptions {
        max_samples,
        ..EngineOptions::default()
    })
}

/// Runs `q` as an instant query at `t` seconds, or a range query when `range` is
/// `Some((end s, step s))`.
fn run(
    db: &Db,
    max_samples: usize,
    q: &str,
    t: i64,
    range: Option<(i64, i64)>,
) -> Result<QueryResult, QueryError> {
    let expr = parse(q).unwrap();
    let e = engine(max_samples);
    match range {
        None => e.instant_query_with_stats(db, q, &expr, t * 1000),
        Some((end, step)) => {
            e.range_query_with_stats(db, q, &expr, t * 1000, end * 1000, step * 1000)
        }
    }
}

struct Case {
    q: &'static str,
    start: i64,
    range: Option<(i64, i64)>,
    total: i64,
    per_step: &'static [i64],
    /// Prometheus' `peakSamples`, where the step-wise evaluator holds the same samples.
    peak: Option<usize>,
}

const fn inst(q: &'static str, start: i64, total: i64, peak: Option<usize>) -> Case {
    Case {
        q,
        start,
        range: None,
        total,
        per_step: &[],
        peak,
    }
}

fn cases() -> Vec<Case> {
    vec![
        inst("1", 21, 0, Some(1)),
        // One sample of the newest scrape.
        inst("m1", 21, 1, Some(1)),
        // One histogram of size (168 + 8·(1 span + 4 buckets) + 8) / 16 = 13.
        inst("h1", 21, 13, Some(13)),
        // timestamp() over a selector counts a histogram as one sample; its output is held
        // next to the input.
        inst("timestamp(m1)", 21, 1, Some(2)),
        inst("timestamp(h1)", 21, 1, Some(2)),
        inst("m1 offset 10s", 21, 1, Some(1)),
        inst("m1 @ 15", 21, 1, Some(1)),
        inst(r#"m3{a="1"} @ 19"#, 21, 1, Some(1)),
        // (−1s, 19s]: samples at 0s and 10s.
        inst(r#"m3{a="1"}[20s] @ 19"#, 21, 2, Some(2)),
        inst("m3", 21, 3, Some(3)),
        // (141s, 201s]: 6 samples.
        inst("m1[60s]", 201, 6, Some(6)),
        inst("h1[60s]", 201, 78, Some(78)),
        inst("m1[60s] @ 30", 201, 4, Some(4)),
        inst("h1[60s] @ 30", 201, 52, Some(52)),
        inst("m1[60s] offset 10s", 201, 6, Some(6)),
        inst("m3[60s]", 201, 18, Some(18)),
        // The window, plus the one output sample (absent_over_time has none).
        inst("max_over_time(m1[60s])", 201, 6, Some(7)),
        inst("absent_over_time(m1[60s])", 201, 6, Some(6)),
        inst("max_over_time(m3[60s])", 201, 18, None),
        inst("sum(max_over_time(m3[60s] @ 30))", 201, 12, None),
        inst("sum by (b) (max_over_time(m3[60s] @ 30))", 201, 12, None),
        // A subquery that is the whole query counts what its steps load: 4 steps
        // (185s..200s) of a 6-sample window.
        inst("max_over_time(m1[60s])[20s:5s]", 201, 24, Some(10)),
        // The windows at 190s and 200s hold 7 samples. Peak: the outputs of the earlier
        // steps (3) next to the last step's window (7) and output (1).
        inst("max_over_time(m1[61s])[20s:5s]", 201, 26, Some(11)),
        inst("max_over_time(h1[60s])[20s:5s]", 201, 312, Some(78)),
        // 12 steps of one sample.
        inst("m1[60s:5s]", 201, 12, Some(12)),
        inst("m1[60s:5s] offset 10s", 201, 12, Some(12)),
        // A subquery as a function's argument counts its output as the window: 3 series × 12
        // steps; what the subquery's steps load is not counted again.
        inst("max_over_time(m3[60s:5s])", 201, 36, None),
        inst(
            "sum(max_over_time(m3[60s:5s])) + sum(max_over_time(m3[60s:5s]))",
            201,
            72,
            None,
        ),
        Case {
            q: r#"m3{a="1"}"#,
            start: 201,
            range: Some((220, 5)),
            total: 4,
            per_step: &[1, 1, 1, 1],
            peak: Some(4),
        },
        // Steps are attributed by their own time, not the samples'.
        Case {
            q: "h1",
            start: 204,
            range: Some((223, 5)),
            total: 52,
            per_step: &[13, 13, 13, 13],
            peak: Some(52),
        },
        Case {
            q: "timestamp(m1)",
            start: 201,
            range: Some((220, 5)),
            total: 4,
            per_step: &[1, 1, 1, 1],
            peak: Some(5),
        },
        Case {
            q: "timestamp(h1)",
            start: 201,
            range: Some((220, 5)),
            total: 4,
            per_step: &[1, 1, 1, 1],
            peak: Some(5),
        },
        // The data ends at 1000s: the last two steps load nothing.
        Case {
            q: r#"max_over_time(m3{a="1"}[10s])"#,
            start: 991,
            range: Some((1021, 10)),
            total: 2,
            per_step: &[1, 1, 0, 0],
            peak: None,
        },
        Case {
            q: r#"m3{a="1"} offset 10s"#,
            start: 201,
            range: Some((220, 5)),
            total: 4,
            per_step: &[1, 1, 1, 1],
            peak: Some(4),
        },
        Case {
            q: "max_over_time(m3[60s] @ 30)",
            start: 201,
            range: Some((220, 5)),
            total: 48,
            per_step: &[12, 12, 12, 12],
            peak: None,
        },
        Case {
            q: "m3",
            start: 201,
            range: Some((220, 5)),
            total: 12,
            per_step: &[3, 3, 3, 3],
            peak: Some(12),
        },
        Case {
            q: "max_over_time(m3[60s])",
            start: 201,
            range: Some((220, 5)),
            total: 72,
            per_step: &[18, 18, 18, 18],
            peak: None,
        },
        Case {
            q: "max_over_time(m3[60s:5s])",
            start: 201,
            range: Some((220, 5)),
            total: 144,
            per_step: &[36, 36, 36, 36],
            peak: None,
        },
        Case {
            q: "sum by (b) (max_over_time(m1[60s:5s]))",
            start: 201,
            range: Some((220, 5)),
            total: 48,
            per_step: &[12, 12, 12, 12],
            peak: None,
        },
        Case {
            q: "sum(max_over_time(m3[60s:5s])) + sum(max_over_time(m1[60s:5s]))",
            start: 201,
            range: Some((220, 5)),
            total: 192,
            per_step: &[48, 48, 48, 48],
            peak: None,
        },
    ]
}

#[test]
fn histogram_size_follows_prometheus() {
    let mut h = FloatHistogram::default();
    // The bare struct and timestamp: (168 + 8) / 16.
    assert_eq!(histogram_size(&h), 11);
    h.positive_spans = vec![Span {
        offset: 0,
        length: 4,
    }];
    h.positive_buckets = vec![1.0; 4];
    assert_eq!(histogram_size(&h), 13);
    h.negative_spans = h.positive_spans.clone();
    h.negative_buckets = vec![1.0; 4];
    // 168 + 80 + 8 = 256.
    assert_eq!(histogram_size(&h), 16);
}

#[test]
fn sample_statistics_match_prometheus() {
    let db = db();
    for c in cases() {
        let r =
            run(&db, 50_000_000, c.q, c.start, c.range).unwrap_or_else(|e| panic!("{}: {e}", c.q));
        assert_eq!(r.stats.total_samples, c.total, "total of {}", c.q);
        let want: Vec<(i64, i64)> = match c.range {
            None => vec![(c.start * 1000, c.total)],
            Some((_, step)) => c
                .per_step
                .iter()
                .enumerate()
                .map(|(i, n)| ((c.start + step * i as i64) * 1000, *n))
                .collect(),
        };
        assert_eq!(r.stats.per_step, want, "per step of {}", c.q);
        if let Some(p) = c.peak {
            assert_eq!(r.stats.peak_samples, p, "peak of {}", c.q);
        }
        assert!(r.stats.peak_samples >= 1, "{}", c.q);
    }
}

/// The limit applies to the peak: one sample less fails, exactly the peak passes.
#[test]
fn max_samples_limits_the_peak() {
    let db = db();
    for c in cases() {
        let peak = run(&db, 50_000_000, c.q, c.start, c.range)
            .unwrap()
            .stats
            .peak_samples;
        match run(&db, peak - 1, c.q, c.start, c.range) {
            Err(QueryError::Limit(m)) => assert_eq!(
                m,
                "query processing would load too many samples into memory in query execution"
            ),
            other => panic!("{} with max_samples {}: {other:?}", c.q, peak - 1),
        }
        assert!(run(&db, peak, c.q, c.start, c.range).is_ok(), "{}", c.q);
    }
}

/// A range query holds its result so far next to each step's samples: 10 steps of 3 series
/// need 30 samples at the last step even though no step loads more than 3.
#[test]
fn range_query_limit_counts_the_result_so_far() {
    let db = db();
    let r = run(&db, 30, "m3", 0, Some((90, 10))).unwrap();
    assert_eq!(r.stats.peak_samples, 30);
    assert_eq!(r.stats.total_samples, 30);
    assert!(matches!(
        run(&db, 29, "m3", 0, Some((90, 10))),
        Err(QueryError::Limit(_))
    ));
}

#[test]
fn timings_are_measured() {
    let db = db();
    let r = run(
        &db,
        50_000_000,
        "max_over_time(m3[60s:5s])",
        201,
        Some((900, 5)),
    )
    .unwrap();
    assert!(r.stats.inner_eval_time > std::time::Duration::ZERO);
    assert_eq!(r.stats.exec_queue_time, std::time::Duration::ZERO);
}
