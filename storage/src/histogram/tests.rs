//! Unit tests; most expected values come from the PromQL conformance scripts
//! (`native_histograms.test`), whose line numbers are given.

// The expected values are copied from the scripts, some of them are close to constants.
#![allow(clippy::approx_constant, clippy::excessive_precision)]

use super::*;

/// Builder: `buckets` / `n_buckets` are one span each, like the test-script notation.
#[derive(Clone, Default)]
struct H {
    h: FloatHistogram,
}

impl H {
    fn new(schema: i32) -> Self {
        H {
            h: FloatHistogram {
                schema,
                ..FloatHistogram::default()
            },
        }
    }
    fn count(mut self, v: f64) -> Self {
        self.h.count = v;
        self
    }
    fn sum(mut self, v: f64) -> Self {
        self.h.sum = v;
        self
    }
    fn zero(mut self, count: f64, width: f64) -> Self {
        self.h.zero_count = count;
        self.h.zero_threshold = width;
        self
    }
    fn pos(mut self, offset: i32, buckets: &[f64]) -> Self {
        self.h.positive_spans = vec![Span {
            offset,
            length: buckets.len() as u32,
        }];
        self.h.positive_buckets = buckets.to_vec();
        self
    }
    fn neg(mut self, offset: i32, buckets: &[f64]) -> Self {
        self.h.negative_spans = vec![Span {
            offset,
            length: buckets.len() as u32,
        }];
        self.h.negative_buckets = buckets.to_vec();
        self
    }
    fn custom(mut self, bounds: &[f64]) -> Self {
        self.h.custom_values = bounds.to_vec();
        self
    }
    fn hint(mut self, hint: CounterResetHint) -> Self {
        self.h.counter_reset_hint = hint;
        self
    }
    fn build(self) -> FloatHistogram {
        self.h
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    (a - b).abs() / (a.abs() + b.abs()) < 1e-6
}

#[track_caller]
fn assert_close(got: f64, want: f64) {
    assert!(close(got, want), "got {got}, want {want}");
}

fn compacted(mut h: FloatHistogram) -> FloatHistogram {
    h.compact(0);
    h
}

fn positive_pairs(h: &FloatHistogram) -> Vec<(i32, f64)> {
    h.positive_bucket_iter()
        .map(|b| (b.index, b.count))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bounds and iteration.

#[test]
fn exponential_bounds_follow_the_schema() {
    assert_eq!(bucket_bound(0, 0, &[]), 1.0);
    assert_eq!(bucket_bound(1, 0, &[]), 2.0);
    assert_eq!(bucket_bound(-1, 0, &[]), 0.5);
    assert_eq!(bucket_bound(1, -1, &[]), 4.0);
    assert_eq!(bucket_bound(2, -2, &[]), 256.0);
    assert_close(bucket_bound(1, 1, &[]), std::f64::consts::SQRT_2);
    assert_close(bucket_bound(1, 2, &[]), 1.189207115002721);
    assert_eq!(bucket_bound(1024, 0, &[]), f64::MAX);
    assert_eq!(bucket_bound(1025, 0, &[]), f64::INFINITY);
    assert_eq!(bucket_bound(256, -2, &[]), f64::MAX);
}

#[test]
fn custom_bounds_have_infinite_ends() {
    let cv = [5.0, 10.0];
    assert_eq!(
        bucket_bound(-1, CUSTOM_BUCKETS_SCHEMA, &cv),
        f64::NEG_INFINITY
    );
    assert_eq!(bucket_bound(1, CUSTOM_BUCKETS_SCHEMA, &cv), 10.0);
    assert_eq!(bucket_bound(2, CUSTOM_BUCKETS_SCHEMA, &cv), f64::INFINITY);
    let h = H::new(CUSTOM_BUCKETS_SCHEMA)
        .custom(&cv)
        .pos(0, &[1.0, 2.0, 1.0])
        .build();
    let b: Vec<Bucket> = h.all_buckets().collect();
    assert_eq!(b.len(), 3);
    assert_eq!((b[0].lower, b[0].upper), (f64::NEG_INFINITY, 5.0));
    assert!(b[0].lower_inclusive && b[0].upper_inclusive);
    assert!(!b[1].lower_inclusive);
    assert_eq!((b[2].lower, b[2].upper), (10.0, f64::INFINITY));
}

#[test]
fn all_buckets_ascend_through_negative_zero_positive() {
    let h = H::new(0)
        .zero(2.0, 0.001)
        .pos(0, &[1.0, 2.0])
        .neg(0, &[3.0, 4.0])
        .build();
    let b: Vec<(f64, f64, f64)> = h
        .all_buckets()
        .map(|b| (b.lower, b.upper, b.count))
        .collect();
    assert_eq!(
        b,
        vec![
            (-2.0, -1.0, 4.0),
            (-1.0, -0.5, 3.0),
            (-0.001, 0.001, 2.0),
            (0.5, 1.0, 1.0),
            (1.0, 2.0, 2.0)
        ]
    );
    let r: Vec<f64> = h.all_buckets_reverse().map(|b| b.count).collect();
    assert_eq!(r, vec![2.0, 1.0, 2.0, 3.0, 4.0]);
    let neg = h
        .negative_bucket_iter()
        .next()
        .map(|b| (b.lower_inclusive, b.upper_inclusive));
    assert_eq!(neg, Some((true, false)));
}

#[test]
fn buckets_overlapping_the_zero_bucket_are_clamped() {
    let h = H::new(0).zero(1.0, 0.7).pos(0, &[1.0]).build();
    let b: Vec<Bucket> = h.all_buckets().collect();
    assert_eq!(b[1].lower, 0.7);
}

// ---------------------------------------------------------------------------------------------
// Compaction, resolution, validation, equality.

#[test]
fn compact_removes_empty_buckets_and_merges_spans() {
    let mut h = H::new(0).pos(0, &[0.0, 1.0, 0.0, 0.0, 2.0, 0.0]).build();
    h.compact(0);
    assert_eq!(
        h.positive_spans,
        vec![
            Span {
                offset: 1,
                length: 1
            },
            Span {
                offset: 2,
                length: 1
            }
        ]
    );
    assert_eq!(h.positive_buckets, vec![1.0, 2.0]);

    let mut h2 = H::new(0).pos(0, &[0.0, 1.0, 0.0, 0.0, 2.0, 0.0]).build();
    h2.compact(2);
    assert_eq!(
        h2.positive_spans,
        vec![Span {
            offset: 1,
            length: 4
        }]
    );
    assert_eq!(h2.positive_buckets, vec![1.0, 0.0, 0.0, 2.0]);

    // Adjacent spans (offset 0) merge.
    let mut h3 = H::new(0).build();
    h3.positive_spans = vec![
        Span {
            offset: 2,
            length: 1,
        },
        Span {
            offset: 0,
            length: 2,
        },
    ];
    h3.positive_buckets = vec![1.0, 2.0, 3.0];
    h3.compact(0);
    assert_eq!(
        h3.positive_spans,
        vec![Span {
            offset: 2,
            length: 3
        }]
    );
}

#[test]
fn reduce_resolution_merges_buckets() {
    // schema 1 indexes 1..=4 map to schema 0 indexes 1,1,2,2.
    let mut h = H::new(1).pos(1, &[1.0, 2.0, 3.0, 4.0]).build();
    h.reduce_resolution(0);
    assert_eq!(h.schema, 0);
    assert_eq!(positive_pairs(&h), vec![(1, 3.0), (2, 7.0)]);
    // Bucket 0 of schema 1 is (0.707, 1] and belongs to bucket 0 of schema 0.
    let mut g = H::new(1).pos(-1, &[1.0, 2.0, 3.0]).build();
    g.reduce_resolution(-1);
    assert_eq!(g.schema, -1);
    assert_eq!(positive_pairs(&g), vec![(0, 3.0), (1, 3.0)]);
    // No-ops.
    let mut c = H::new(CUSTOM_BUCKETS_SCHEMA)
        .custom(&[1.0])
        .pos(0, &[1.0])
        .build();
    let before = c.clone();
    c.reduce_resolution(0);
    assert_eq!(c, before);
}

#[test]
fn validate_reports_prometheus_errors() {
    assert!(H::new(0)
        .pos(0, &[1.0])
        .count(1.0)
        .build()
        .validate()
        .is_ok());
    let mut bad = H::new(0).pos(0, &[1.0, 2.0]).build();
    bad.positive_buckets.pop();
    assert_eq!(
        bad.validate().map_err(|e| e.to_string()),
        Err("positive side: spans need 2 buckets, have 1 buckets: histogram spans specify different number of buckets than provided".to_string())
    );
    let neg = H::new(0).neg(0, &[-1.0]).build();
    assert_eq!(
        neg.validate().map_err(|e| e.to_string()),
        Err("negative side: bucket number 1 has observation count of -1: histogram has a bucket whose observation count is negative".to_string())
    );
    let schema = H::new(9).build();
    assert!(schema.validate().is_err());
    let cb = H::new(CUSTOM_BUCKETS_SCHEMA).custom(&[2.0, 1.0]).build();
    assert!(cb
        .validate()
        .is_err_and(|e| e.to_string().contains("strictly increasing")));
    let few = H::new(CUSTOM_BUCKETS_SCHEMA)
        .custom(&[1.0])
        .pos(0, &[1.0, 1.0, 1.0])
        .build();
    assert!(few
        .validate()
        .is_err_and(|e| e.to_string().contains("too few")));
    let zc = H::new(CUSTOM_BUCKETS_SCHEMA)
        .custom(&[1.0])
        .zero(1.0, 0.0)
        .build();
    assert_eq!(
        zc.validate().map_err(|e| e.to_string()),
        Err("custom buckets: must have zero count of 0".to_string())
    );
}

#[test]
fn equals_ignores_empty_spans_but_not_values() {
    let a = H::new(0).count(3.0).pos(1, &[1.0, 2.0]).build();
    let mut b = a.clone();
    b.positive_spans = vec![
        Span {
            offset: 0,
            length: 0,
        },
        Span {
            offset: 1,
            length: 2,
        },
    ];
    assert!(a.equals(&b));
    let mut c = a.clone();
    c.positive_buckets[1] = 2.5;
    assert!(!a.equals(&c));
    let hinted = H::new(0)
        .count(3.0)
        .pos(1, &[1.0, 2.0])
        .hint(CounterResetHint::Gauge)
        .build();
    assert!(a.equals(&hinted));
    let nan = H::new(0).sum(f64::NAN).build();
    assert!(nan.equals(&nan.clone()));
}

// ---------------------------------------------------------------------------------------------
// Arithmetic.

#[test]
fn add_series_like_the_script_notation() {
    // native_histograms.test: `{{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{sum:2 count:1
    // buckets:[1] offset:1}}x10` adds one observation to bucket 1 per step.
    let mut h = H::new(0)
        .sum(4.0)
        .count(4.0)
        .pos(0, &[1.0, 2.0, 1.0])
        .build();
    let inc = H::new(0).sum(2.0).count(1.0).pos(1, &[1.0]).build();
    for _ in 0..10 {
        assert_eq!(h.add(&inc), Ok(AddInfo::default()));
    }
    assert_eq!((h.count, h.sum), (14.0, 24.0));
    assert_eq!(h.positive_buckets, vec![1.0, 12.0, 1.0]);
}

#[test]
fn add_converts_to_the_smaller_schema() {
    // native_histograms.test:174: {{schema:-1 sum:4 count:1 buckets:[1] offset:1}} +
    // {{schema:0 sum:4 count:4 buckets:[2 2] offset:1}} = {{schema:-1 count:5 sum:8 offset:1
    // buckets:[5]}}.
    let mut h = H::new(-1).sum(4.0).count(1.0).pos(1, &[1.0]).build();
    let inc = H::new(0).sum(4.0).count(4.0).pos(1, &[2.0, 2.0]).build();
    h.add(&inc).ok();
    let h = compacted(h);
    assert_eq!(h.schema, -1);
    assert_eq!((h.count, h.sum), (5.0, 8.0));
    assert_eq!(positive_pairs(&h), vec![(1, 5.0)]);

    // The other way round the receiver is reduced.
    let mut fine = inc.clone();
    fine.add(&H::new(-1).sum(4.0).count(1.0).pos(1, &[1.0]).build())
        .ok();
    assert_eq!(fine.schema, -1);
    assert_eq!(positive_pairs(&compacted(fine)), vec![(1, 5.0)]);
}

#[test]
fn add_reconciles_zero_buckets() {
    // The wider zero bucket wins; buckets inside it join the zero bucket.
    let mut narrow = H::new(0)
        .count(4.0)
        .zero(1.0, 0.001)
        .pos(-2, &[1.0, 1.0, 1.0])
        .build(); // buckets (0.125,0.25], (0.25,0.5], (0.5,1]
    let wide = H::new(0).count(2.0).zero(2.0, 0.25).build();
    narrow.add(&wide).ok();
    assert_eq!(narrow.zero_threshold, 0.25);
    assert_eq!(narrow.zero_count, 4.0);
    assert_eq!(
        positive_pairs(&compacted(narrow)),
        vec![(-1, 1.0), (0, 1.0)]
    );

    // A threshold inside a populated bucket moves up to the bucket's upper bound.
    let mut a = H::new(0).count(1.0).pos(0, &[1.0]).build(); // (0.5, 1]
    let b = H::new(0).count(1.0).zero(1.0, 0.7).build();
    a.add(&b).ok();
    assert_eq!(a.zero_threshold, 1.0);
    assert_eq!(a.zero_count, 2.0);
    assert!(compacted(a).positive_buckets.is_empty());

    // The receiver's wider threshold swallows the other's small buckets.
    let mut w = H::new(0).count(1.0).zero(1.0, 0.5).build();
    let n = H::new(0).count(2.0).pos(-1, &[1.0, 1.0]).build(); // (0.25,0.5], (0.5,1]
    w.add(&n).ok();
    assert_eq!((w.zero_threshold, w.zero_count), (0.5, 2.0));
    assert_eq!(positive_pairs(&w), vec![(0, 1.0)]);
}

#[test]
fn sub_and_negative_buckets() {
    // balanced_histogram (native_histograms.test:266) is built with an add of negated data.
    let mut h = H::new(0)
        .sum(4.0)
        .count(4.0)
        .pos(0, &[1.0, 2.0, 1.0])
        .build();
    let neg = H::new(0)
        .sum(-4.0)
        .count(4.0)
        .neg(0, &[1.0, 2.0, 1.0])
        .build();
    h.add(&neg).ok();
    assert_eq!((h.count, h.sum), (8.0, 0.0));
    assert_close(histogram_fraction(0.0, 4.0, &h), 0.5);
    assert_close(histogram_quantile(0.5, &h), 0.5);

    let mut d = H::new(0).count(5.0).pos(0, &[2.0, 3.0]).build();
    d.sub(&H::new(0).count(2.0).pos(1, &[2.0]).build()).ok();
    assert_eq!(d.count, 3.0);
    assert_eq!(d.positive_buckets, vec![2.0, 1.0]);
}

#[test]
fn add_refuses_mixed_schemas() {
    let mut e = H::new(0).count(1.0).build();
    let c = H::new(CUSTOM_BUCKETS_SCHEMA)
        .custom(&[1.0])
        .count(1.0)
        .build();
    assert_eq!(e.add(&c), Err(HistogramError::MixedSchemas));
    assert_eq!(
        HistogramError::MixedSchemas.to_string(),
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    );
}

#[test]
fn custom_buckets_with_different_bounds_are_reconciled() {
    // native_histograms.test:1227: sum of {[10]:1} , {[2 10]: bucket0 = 1}... the NHCB sums of
    // series 2 and 3 at t=0: custom_values [10] and [2 10] give {{schema:-53 count:2 sum:2
    // custom_values:[10] buckets:[2]}}.
    let mut a = H::new(CUSTOM_BUCKETS_SCHEMA)
        .sum(1.0)
        .count(1.0)
        .custom(&[10.0])
        .pos(0, &[1.0])
        .build();
    let b = H::new(CUSTOM_BUCKETS_SCHEMA)
        .sum(1.0)
        .count(1.0)
        .custom(&[2.0, 10.0])
        .pos(0, &[1.0])
        .build();
    let info = a.add(&b);
    assert_eq!(
        info,
        Ok(AddInfo {
            counter_reset_collision: false,
            custom_buckets_reconciled: true
        })
    );
    assert_eq!(a.custom_values, vec![10.0]);
    assert_eq!((a.count, a.sum), (2.0, 2.0));
    assert_eq!(positive_pairs(&a), vec![(0, 2.0)]);

    // native_histograms.test:1268: series 2 - series 3 cancels to an empty histogram.
    let mut s = H::new(CUSTOM_BUCKETS_SCHEMA)
        .sum(1.0)
        .count(1.0)
        .custom(&[10.0])
        .pos(0, &[1.0])
        .build();
    let info = s.sub(&b);
    assert!(info.is_ok_and(|i| i.custom_buckets_reconciled));
    assert_eq!(s.custom_values, vec![10.0]);
    assert_eq!((s.count, s.sum), (0.0, 0.0));
    assert!(s.positive_buckets.is_empty());

    // Disjoint bounds leave only the +Inf bucket.
    let mut x = H::new(CUSTOM_BUCKETS_SCHEMA)
        .custom(&[5.0])
        .pos(0, &[1.0, 1.0])
        .build();
    x.add(
        &H::new(CUSTOM_BUCKETS_SCHEMA)
            .custom(&[7.0])
            .pos(0, &[1.0])
            .build(),
    )
    .ok();
    assert!(x.custom_values.is_empty());
    assert_eq!(positive_pairs(&x), vec![(0, 3.0)]);

    // Same bounds add bucket by bucket without the info.
    let mut y = H::new(CUSTOM_BUCKETS_SCHEMA)
        .custom(&[5.0, 10.0])
        .pos(0, &[1.0, 2.0])
        .build();
    let info = y.add(
        &H::new(CUSTOM_BUCKETS_SCHEMA)
            .custom(&[5.0, 10.0])
            .pos(1, &[1.0, 1.0])
            .build(),
    );
    assert_eq!(info, Ok(AddInfo::default()));
    assert_eq!(y.positive_buckets, vec![1.0, 3.0, 1.0]);
}

#[test]
fn counter_reset_hints_propagate_like_prometheus() {
    use CounterResetHint::*;
    let cases = [
        (Gauge, Unknown, Gauge, false),
        (Unknown, Gauge, Gauge, false),
        (CounterReset, CounterReset, CounterReset, false),
        (Unknown, CounterReset, Unknown, false),
        (NotCounterReset, Unknown, Unknown, false),
        (CounterReset, NotCounterReset, Unknown, true),
        (NotCounterReset, CounterReset, Unknown, true),
        (NotCounterReset, Gauge, Gauge, false),
    ];
    for (mine, theirs, want, collision) in cases {
        let mut a = H::new(0).hint(mine).build();
        let info = a.add(&H::new(0).hint(theirs).build());
        assert_eq!(a.counter_reset_hint, want, "{mine:?} + {theirs:?}");
        assert_eq!(info.map(|i| i.counter_reset_collision), Ok(collision));
    }
}

#[test]
fn mul_and_div() {
    // native_histograms.test:952 ff.
    let h = H::new(0)
        .count(30.0)
        .sum(33.0)
        .zero(3.0, 0.001)
        .pos(0, &[3.0, 3.0, 3.0])
        .neg(0, &[6.0, 6.0, 6.0])
        .build();
    let mut m = h.clone();
    m.mul(3.0);
    assert_eq!((m.count, m.sum, m.zero_count), (90.0, 99.0, 9.0));
    assert_eq!(m.negative_buckets, vec![18.0; 3]);
    assert_eq!(m.counter_reset_hint, CounterResetHint::Unknown);
    let mut n = h.clone();
    n.mul(-1.0);
    assert_eq!(n.count, -30.0);
    assert_eq!(n.counter_reset_hint, CounterResetHint::Gauge);
    let mut d = h.clone();
    d.div(0.1);
    assert_close(d.count, 300.0);
    let mut z = h.clone();
    z.div(0.0);
    assert_eq!(
        (z.count, z.sum, z.zero_count),
        (f64::INFINITY, f64::INFINITY, f64::INFINITY)
    );
    assert!(z.positive_buckets.is_empty() && z.negative_spans.is_empty());
    assert_eq!(z.counter_reset_hint, CounterResetHint::Unknown);
}

#[test]
fn kahan_add_keeps_small_values_next_to_huge_ones() {
    // native_histograms.test: sum_over_time(histogram_sum_over_time_3) = {{count:10 sum:2}}.
    let sums = [1.0, 1e100, 1.0, -1e100];
    let mut acc = H::new(0).count(1.0).sum(sums[0]).build();
    let mut comp = None;
    for (i, s) in sums.iter().enumerate().skip(1) {
        let h = H::new(0)
            .count(i as f64 + 1.0)
            .sum(*s)
            .pos(0, &[1.0])
            .build();
        let (c, info) = acc.kahan_add(&h, comp).expect("compatible");
        assert_eq!(info, AddInfo::default());
        comp = Some(c);
    }
    let plain_sum = acc.sum;
    if let Some(c) = comp {
        acc.add(&c).ok();
    }
    assert_eq!(plain_sum, 0.0);
    assert_eq!((acc.count, acc.sum), (10.0, 2.0));
    assert_eq!(positive_pairs(&acc), vec![(0, 3.0)]);
    assert_eq!(kahan_sum_inc(1.0, 1e100, 0.0), (1e100, 1.0));
}

#[test]
fn kahan_add_handles_schema_and_threshold_changes() {
    let mut acc = H::new(1).count(2.0).pos(1, &[1.0, 1.0]).build();
    let other = H::new(0).count(1.0).zero(1.0, 0.6).build();
    let (c, _) = acc.kahan_add(&other, None).expect("compatible");
    assert_eq!(c.schema, acc.schema);
    assert_eq!(c.zero_threshold, acc.zero_threshold);
    acc.add(&c).ok();
    let acc = compacted(acc);
    assert_eq!(acc.schema, 0);
    assert_eq!(acc.count, 3.0);
    assert_eq!(positive_pairs(&acc), vec![(1, 2.0)]);
    assert_eq!(acc.zero_count, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Counter resets.

#[test]
fn detect_reset_cases() {
    let prev = H::new(0)
        .count(4.0)
        .zero(1.0, 0.001)
        .pos(0, &[1.0, 2.0])
        .build();
    let grown = H::new(0)
        .count(6.0)
        .zero(1.0, 0.001)
        .pos(0, &[2.0, 3.0])
        .build();
    assert!(!grown.detect_reset(&prev));
    let bucket_down = H::new(0)
        .count(6.0)
        .zero(1.0, 0.001)
        .pos(0, &[2.0, 1.0, 3.0])
        .build();
    assert!(bucket_down.detect_reset(&prev));
    let missing = H::new(0).count(6.0).zero(1.0, 0.001).pos(1, &[5.0]).build();
    assert!(missing.detect_reset(&prev));
    let count_down = H::new(0)
        .count(3.0)
        .zero(1.0, 0.001)
        .pos(0, &[1.0, 2.0])
        .build();
    assert!(count_down.detect_reset(&prev));
    let finer = H::new(1).count(6.0).zero(1.0, 0.001).build();
    assert!(finer.detect_reset(&prev));
    let narrower = H::new(0)
        .count(6.0)
        .zero(1.0, 0.0)
        .pos(0, &[2.0, 3.0])
        .build();
    assert!(narrower.detect_reset(&prev));
    // Coarser schema: previous buckets are merged before comparing.
    let coarse = H::new(-1)
        .count(6.0)
        .zero(1.0, 0.001)
        .pos(0, &[1.0, 3.0])
        .build();
    assert!(!coarse.detect_reset(&prev));
    // Hints short-cut.
    let hinted = H::new(0)
        .count(0.0)
        .hint(CounterResetHint::NotCounterReset)
        .build();
    assert!(!hinted.detect_reset(&prev));
    let reset = H::new(0)
        .count(9.0)
        .hint(CounterResetHint::CounterReset)
        .build();
    assert!(reset.detect_reset(&prev));
    // Custom buckets: mismatched bounds compare on the common bounds.
    let a = H::new(CUSTOM_BUCKETS_SCHEMA)
        .count(2.0)
        .custom(&[5.0, 10.0])
        .pos(0, &[1.0, 1.0])
        .build();
    let b = H::new(CUSTOM_BUCKETS_SCHEMA)
        .count(2.0)
        .custom(&[10.0])
        .pos(0, &[2.0])
        .build();
    assert!(!b.detect_reset(&a));
    let c = H::new(CUSTOM_BUCKETS_SCHEMA)
        .count(2.0)
        .custom(&[10.0])
        .pos(0, &[1.0, 1.0])
        .build();
    assert!(c.detect_reset(&a));
    assert!(a.detect_reset(&prev));
}

// ---------------------------------------------------------------------------------------------
// Quantile, fraction, stddev.

#[test]
fn quantile_with_exponential_interpolation() {
    // native_histograms.test:36 single_histogram.
    let single = H::new(0)
        .sum(5.0)
        .count(4.0)
        .pos(0, &[1.0, 2.0, 1.0])
        .build();
    assert_close(histogram_quantile(0.5, &single), 1.414213562373095);
    assert_close(histogram_fraction(1.0, 2.0, &single), 0.5);
    assert_close(histogram_fraction(0.0, 8.0, &single), 1.0);

    // histogram_quantile_1 (line 414).
    let h1 = H::new(0)
        .count(12.0)
        .sum(100.0)
        .zero(2.0, 0.001)
        .pos(0, &[2.0, 3.0, 0.0, 1.0, 4.0])
        .build();
    assert_close(histogram_quantile(0.9, &h1), 12.99603834169977);
    assert_close(histogram_quantile(0.6, &h1), 4.594793419988138);
    assert_close(histogram_quantile(0.5, &h1), 1.5874010519681994);
    assert_close(histogram_quantile(0.1, &h1), 0.0006);
    assert_eq!(histogram_quantile(0.0, &h1), 0.0);
    assert_eq!(histogram_quantile(-1.0, &h1), f64::NEG_INFINITY);
    assert_eq!(histogram_quantile(1.001, &h1), f64::INFINITY);

    // histogram_quantile_2 (line 460): only negative buckets.
    let h2 = H::new(0)
        .count(12.0)
        .sum(100.0)
        .zero(2.0, 0.001)
        .neg(0, &[2.0, 3.0, 0.0, 1.0, 4.0])
        .build();
    assert_eq!(histogram_quantile(1.0, &h2), 0.0);
    assert_close(histogram_quantile(0.99, &h2), -0.00006);
    assert_close(histogram_quantile(0.5, &h2), -1.5874010519681996);
    assert_close(histogram_quantile(0.1, &h2), -12.996038341699768);
    assert_eq!(histogram_quantile(0.0, &h2), -16.0);

    // histogram_quantile_3 (line 503): both sides.
    let h3 = H::new(0)
        .count(24.0)
        .sum(100.0)
        .zero(4.0, 0.001)
        .pos(0, &[2.0, 3.0, 0.0, 1.0, 4.0])
        .neg(0, &[2.0, 3.0, 0.0, 1.0, 4.0])
        .build();
    assert_eq!(histogram_quantile(1.0, &h3), 16.0);
    assert_close(histogram_quantile(0.99, &h3), 15.34822590920423);
    assert_close(histogram_quantile(0.7, &h3), 1.2030250360821164);
    assert_close(histogram_quantile(0.55, &h3), 0.0006);
    assert_eq!(histogram_quantile(0.5, &h3), 0.0);
    assert_close(histogram_quantile(0.45, &h3), -0.0006);
    assert_close(histogram_quantile(0.3, &h3), -1.2030250360821169);
    assert_close(histogram_quantile(0.01, &h3), -15.34822590920423);

    // var_res_histogram (line 565).
    for (schema, want) in [(-1, 2.0), (0, 1.4142135623730951), (1, 1.189207)] {
        let h = H::new(schema)
            .sum(4.0)
            .count(5.0)
            .pos(0, &[0.0, 5.0])
            .build();
        assert_close(histogram_quantile(0.5, &h), want);
        assert_close(histogram_fraction(0.0, want, &h), 0.5);
    }
    // single_zero_histogram (line 197) and negative_histogram (line 221).
    let z = H::new(0).zero(1.0, 0.5).sum(0.25).count(1.0).build();
    assert_eq!(histogram_quantile(0.5, &z), 0.0);
    assert_close(histogram_fraction(-0.5, 0.5, &z), 1.0);
    let n = H::new(0)
        .sum(-5.0)
        .count(4.0)
        .neg(0, &[1.0, 2.0, 1.0])
        .build();
    assert_close(histogram_quantile(0.5, &n), -1.414213562373095);
    assert_close(histogram_fraction(-2.0, -1.0, &n), 0.5);
    // Empty histograms give NaN.
    assert!(histogram_quantile(0.5, &H::new(0).build()).is_nan());
    assert!(histogram_fraction(0.0, 8.0, &H::new(0).build()).is_nan());
}

#[test]
fn quantile_with_custom_buckets() {
    let h = H::new(CUSTOM_BUCKETS_SCHEMA)
        .count(4.0)
        .sum(5.0)
        .custom(&[5.0, 10.0])
        .pos(0, &[1.0, 2.0, 1.0])
        .build();
    // Rank 2 of 4 is half-way through (5, 10].
    assert_close(histogram_quantile(0.5, &h), 7.5);
    // The first bucket interpolates from 0, the +Inf bucket returns its lower bound.
    assert_close(histogram_quantile(0.1, &h), 2.0);
    assert_eq!(histogram_quantile(0.99, &h), 10.0);
    assert_close(histogram_fraction(0.0, 7.5, &h), 0.5);
    assert_close(histogram_fraction(f64::NEG_INFINITY, 5.0, &h), 0.25);
}

#[test]
fn quantile_and_fraction_with_nan_observations() {
    // native_histograms.test:1613.
    let all_nan = H::new(0).count(3.0).sum(f64::NAN).build();
    let some_nan = H::new(0).count(15.0).sum(f64::NAN).pos(0, &[12.0]).build();
    for q in [1.0, 0.81] {
        let (v, info) = histogram_quantile_with_info(q, &some_nan);
        assert!(v.is_nan());
        assert_eq!(info, Some(QuantileNanInfo::ResultIsNan));
        let (v, info) = histogram_quantile_with_info(q, &all_nan);
        assert!(v.is_nan());
        assert_eq!(info, Some(QuantileNanInfo::ResultIsNan));
    }
    assert_eq!(
        histogram_quantile_with_info(0.8, &some_nan),
        (1.0, Some(QuantileNanInfo::SkewedHigher))
    );
    let (v, info) = histogram_quantile_with_info(0.4, &some_nan);
    assert_close(v, 0.7071067811865475);
    assert_eq!(info, Some(QuantileNanInfo::SkewedHigher));

    assert_eq!(
        histogram_fraction_with_info(f64::NEG_INFINITY, 0.7071067811865475, &all_nan),
        (0.0, true)
    );
    let (v, nan) = histogram_fraction_with_info(f64::NEG_INFINITY, 0.7071067811865475, &some_nan);
    assert_close(v, 0.4);
    assert!(nan);
    let (v, nan) = histogram_fraction_with_info(f64::NEG_INFINITY, f64::INFINITY, &some_nan);
    assert_close(v, 0.8);
    assert!(nan);
    // Without NaN observations there is no info.
    let plain = H::new(0).count(4.0).sum(5.0).pos(0, &[4.0]).build();
    assert_eq!(histogram_quantile_with_info(0.5, &plain).1, None);
    assert!(!histogram_fraction_with_info(0.0, 1.0, &plain).1);
}

#[test]
fn stddev_and_stdvar() {
    // native_histograms.test:330.
    let h1 = H::new(2)
        .count(4.0)
        .sum(10.0)
        .pos(0, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
        .build();
    assert_close(histogram_stddev(&h1), 1.0787993180043811);
    assert_close(histogram_stdvar(&h1), 1.163807968526718);
    // line 342.
    let h2 = H::new(8)
        .count(10.0)
        .sum(10.0)
        .pos(0, &[1.0, 2.0, 3.0, 4.0])
        .build();
    assert_close(histogram_stddev(&h2), 0.0048960313898237465);
    assert_close(histogram_stdvar(&h2), 2.3971123370139447e-05);
    // line 364.
    let h4 = H::new(0)
        .count(10.0)
        .sum(-112946.0)
        .neg(
            0,
            &[
                0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 1.0, 0.0,
                0.0, 1.0,
            ],
        )
        .build();
    assert_close(histogram_stddev(&h4), 27556.344499842);
    // line 377.
    let h5 = H::new(0)
        .count(10.0)
        .sum(-100.0)
        .neg(0, &[0.0, 0.0, 0.0, 0.0, 10.0])
        .build();
    assert_close(histogram_stddev(&h5), 1.3137084989848);
    assert_close(histogram_stdvar(&h5), 1.725830020304794);
    // NaN / Inf sums.
    let nan = H::new(0).count(1.0).sum(f64::NAN).pos(0, &[1.0]).build();
    assert!(histogram_stddev(&nan).is_nan());
    let inf = H::new(0)
        .count(1.0)
        .sum(f64::INFINITY)
        .pos(0, &[1.0])
        .build();
    assert_eq!(histogram_stdvar(&inf), f64::INFINITY);
}

/// Kahan sum of a group, the way `sum` / `sum_over_time` use [`FloatHistogram::kahan_add`].
fn kahan_sum(hs: &[FloatHistogram]) -> FloatHistogram {
    let mut acc = hs[0].clone();
    let mut comp = None;
    for h in &hs[1..] {
        let (c, _) = acc.kahan_add(h, comp).expect("compatible");
        comp = Some(c);
    }
    if let Some(c) = comp {
        acc.add(&c).ok();
    }
    compacted(acc)
}

#[test]
fn kahan_sum_of_mixed_schemas_matches_the_sum_aggregation() {
    // native_histograms.test:1408 `sum(histogram_sum)`.
    let h0 = H::new(0)
        .count(25.0)
        .sum(3.1)
        .zero(4.0, 0.001)
        .pos(0, &[1.0, 2.0, 0.0, 1.0, 1.0])
        .neg(0, &[2.0, 4.0, 0.0, 0.0, 1.0, 9.0])
        .build();
    let h1 = H::new(0)
        .count(41.0)
        .sum(1e100)
        .zero(5.0, 0.001)
        .pos(0, &[1.0, 3.0, 1.0, 2.0, 1.0, 1.0, 1.0])
        .neg(
            0,
            &[0.0, 1.0, 4.0, 2.0, 7.0, 0.0, 0.0, 0.0, 0.0, 5.0, 5.0, 2.0],
        )
        .build();
    let mut h2 = h1.clone();
    h2.sum = -1e100;
    let h3 = H::new(1)
        .count(0.0)
        .sum(1.3)
        .zero(3.0, 0.001)
        .pos(0, &[2.0, 4.0, 2.0, 3.0, 2.0, 2.0])
        .neg(0, &[1.0, 2.0, 5.0, 3.0, 8.0, 1.0, 1.0, 1.0, 1.0, 6.0, 3.0])
        .build();
    let got = kahan_sum(&[h0, h1, h2, h3]);
    assert_eq!(got.schema, 0);
    assert_eq!(got.count, 107.0);
    assert_close(got.sum, 4.4);
    assert_eq!(got.zero_count, 17.0);
    assert_eq!(
        got.positive_buckets,
        vec![5.0, 14.0, 7.0, 7.0, 3.0, 2.0, 2.0]
    );
    let want_neg = [
        3.0, 13.0, 19.0, 6.0, 17.0, 18.0, 0.0, 0.0, 0.0, 10.0, 10.0, 4.0,
    ];
    let neg: Vec<(i32, f64)> = got
        .negative_bucket_iter()
        .map(|b| (b.index, b.count))
        .collect();
    let want: Vec<(i32, f64)> = want_neg
        .iter()
        .enumerate()
        .filter(|p| *p.1 != 0.0)
        .map(|(i, v)| (i as i32, *v))
        .collect();
    assert_eq!(neg, want);
}

#[test]
fn stddev_with_zero_bucket_and_both_signs() {
    // native_histograms.test:354: observations {-50, -8, 0, 3, 8, 9}.
    let mut pos = vec![0.0; 55];
    for i in [13, 24, 26, 54] {
        pos[i] = 1.0;
    }
    let mut neg = vec![0.0; 47];
    for i in [24, 46] {
        neg[i] = 1.0;
    }
    let h = H::new(3)
        .count(7.0)
        .sum(62.0)
        .zero(1.0, 0.0)
        .pos(0, &pos)
        .neg(0, &neg)
        .build();
    assert_close(histogram_stddev(&h), 42.94723640026);
    assert_close(histogram_stdvar(&h), 1844.4651144196398);
}

#[test]
fn go_g_formatting_and_test_expression() {
    assert_eq!(format_go_g(1.0), "1");
    assert_eq!(format_go_g(-0.3), "-0.3");
    assert_eq!(format_go_g(123456.0), "123456");
    assert_eq!(format_go_g(1e6), "1e+06");
    assert_eq!(format_go_g(1.5e-5), "1.5e-05");
    assert_eq!(format_go_g(0.0001), "0.0001");
    assert_eq!(format_go_g(2.258e220), "2.258e+220");
    assert_eq!(format_go_g(f64::NEG_INFINITY), "-Inf");
    let h = H::new(1)
        .count(3.0)
        .sum(5.5)
        .zero(1.0, 0.001)
        .pos(-1, &[1.0, 0.0, 2.0])
        .neg(2, &[4.0])
        .hint(CounterResetHint::Gauge)
        .build();
    assert_eq!(
        h.test_expression(),
        "{{schema:1 count:3 sum:5.5 z_bucket:1 z_bucket_w:0.001 counter_reset_hint:gauge offset:-1 buckets:[1 0 2] n_offset:2 n_buckets:[4]}}"
    );
    let c = H::new(CUSTOM_BUCKETS_SCHEMA).custom(&[5.0, 10.0]).build();
    assert_eq!(c.to_string(), "{{schema:-53 custom_values:[5 10]}}");
}

#[track_caller]
fn assert_trim(got: &FloatHistogram, count: f64, sum: f64, zero: f64, pos: &[f64], neg: &[f64]) {
    let got = compacted(got.clone());
    assert_close(got.count, count);
    assert_close(got.sum, sum);
    assert_close(got.zero_count, zero);
    let p: Vec<f64> = got.positive_buckets.clone();
    let n: Vec<f64> = got.negative_buckets.clone();
    assert_eq!(p.len(), pos.len(), "positive {p:?} want {pos:?}");
    assert_eq!(n.len(), neg.len(), "negative {n:?} want {neg:?}");
    for (a, b) in p.iter().zip(pos).chain(n.iter().zip(neg)) {
        assert_close(*a, *b);
    }
}

#[test]
fn trim_exponential_histograms() {
    // native_histograms.test:2041 ff.
    let h = H::new(0)
        .sum(123.75)
        .count(34.0)
        .zero(1.0, 0.001)
        .pos(0, &[2.0, 4.0, 8.0, 16.0])
        .neg(0, &[1.0, 2.0])
        .build();
    assert_eq!(h.trim_lower(f64::NEG_INFINITY), h);
    assert_eq!(h.trim_upper(f64::INFINITY), h);
    assert_trim(&h.trim_lower(f64::INFINITY), 0.0, 0.0, 0.0, &[], &[]);
    assert_trim(&h.trim_upper(f64::NEG_INFINITY), 0.0, 0.0, 0.0, &[], &[]);
    assert_trim(
        &h.trim_lower(0.0),
        30.5,
        120.20840280171308,
        0.5,
        &[2.0, 4.0, 8.0, 16.0],
        &[],
    );
    assert_trim(
        &h.trim_upper(0.0),
        3.5,
        -3.535_783_905_932_737_7,
        0.5,
        &[],
        &[1.0, 2.0],
    );
    assert_trim(
        &h.trim_upper(1.4142135624),
        8.0,
        0.2570938865989847,
        1.0,
        &[2.0, 2.0],
        &[1.0, 2.0],
    );
    assert_trim(
        &h.trim_lower(1.4142135624),
        26.0,
        116.50067065070982,
        0.0,
        &[2.0, 8.0, 16.0],
        &[],
    );
    assert_trim(
        &h.trim_upper(2.0),
        10.0,
        3.5355339059327373,
        1.0,
        &[2.0, 4.0],
        &[1.0, 2.0],
    );
    assert_trim(
        &h.trim_lower(-1.0),
        32.0,
        119.50104602052653,
        1.0,
        &[2.0, 4.0, 8.0, 16.0],
        &[1.0],
    );
    assert_trim(
        &h.trim_upper(-1.0),
        2.0,
        -2.8284271247461903,
        0.0,
        &[],
        &[2.0],
    );

    let h2 = H::new(2)
        .sum(12.8286080906)
        .count(28.0)
        .zero(1.0, 0.001)
        .pos(0, &[1.0, 2.0, 4.0, 7.0, 3.0])
        .neg(0, &[1.0, 5.0, 3.0, 1.0])
        .build();
    assert_trim(
        &h2.trim_upper(1.13),
        13.410582181123704,
        -9.385798726068233,
        1.0,
        &[1.0, 1.410582181123704],
        &[1.0, 5.0, 3.0, 1.0],
    );
    assert_trim(
        &h2.trim_lower(-1.3),
        25.54213947904476,
        16.29588491217537,
        1.0,
        &[1.0, 2.0, 4.0, 7.0, 3.0],
        &[1.0, 5.0, 1.54213947904476],
    );
    assert_trim(
        &h2.trim_upper(-1.3),
        2.45786052095524,
        -3.5189307983595066,
        0.0,
        &[],
        &[1.45786052095524, 1.0],
    );

    // Zero bucket biased by the presence of positive buckets only.
    let p = H::new(0)
        .sum(8.0210678118654755)
        .count(12.0)
        .zero(2.0, 0.5)
        .pos(0, &[10.0])
        .build();
    assert_trim(
        &p.trim_lower(0.5),
        10.0,
        7.0710678118654755,
        0.0,
        &[10.0],
        &[],
    );
    assert_trim(
        &p.trim_lower(0.1),
        11.6,
        7.551067811865476,
        1.6,
        &[10.0],
        &[],
    );
    assert_eq!(p.trim_lower(0.0), p);
    assert_trim(&p.trim_upper(0.5), 2.0, 0.5, 2.0, &[], &[]);
    assert_trim(&p.trim_upper(0.1), 0.4, 0.02, 0.4, &[], &[]);

    // Only a zero bucket.
    let z = H::new(0).count(5.0).zero(5.0, 0.1).build();
    assert_trim(&z.trim_lower(0.1), 0.0, 0.0, 0.0, &[], &[]);
    assert_eq!(z.trim_upper(0.1), z);
    assert_trim(&z.trim_lower(0.05), 1.25, 0.09375, 1.25, &[], &[]);
    assert_trim(&z.trim_upper(0.0), 2.5, -0.125, 2.5, &[], &[]);

    // Zero count in the input: the count is re-estimated from the buckets.
    let zb = H::new(0)
        .sum(-6.75)
        .zero(5.0, 0.01)
        .pos(0, &[2.0, 3.0])
        .neg(0, &[1.0, 2.0, 3.0])
        .build();
    assert_trim(
        &zb.trim_upper(-0.005),
        7.25,
        -12.03019028017131,
        1.25,
        &[],
        &[1.0, 2.0, 3.0],
    );
    assert_trim(
        &zb.trim_lower(0.0),
        7.5,
        5.669354249492381,
        2.5,
        &[2.0, 3.0],
        &[],
    );
}

#[test]
fn trim_custom_bucket_histograms() {
    let cb = |bounds: &[f64], buckets: &[f64], count: f64, sum: f64| {
        H::new(CUSTOM_BUCKETS_SCHEMA)
            .custom(bounds)
            .pos(0, buckets)
            .count(count)
            .sum(sum)
            .build()
    };
    // native_histograms.test:2192 ff.
    let h = cb(
        &[5.0, 10.0, 15.0, 20.0],
        &[1.0, 6.0, 4.0, 3.0, 1.0],
        15.0,
        172.5,
    );
    assert_trim(&h.trim_upper(15.0), 11.0, 97.5, 0.0, &[1.0, 6.0, 4.0], &[]);
    assert_trim(&h.trim_lower(15.0), 4.0, 72.5, 0.0, &[3.0, 1.0], &[]);
    assert_trim(&h.trim_upper(13.0), 9.4, 75.1, 0.0, &[1.0, 6.0, 2.4], &[]);
    assert_trim(&h.trim_lower(13.0), 5.6, 94.9, 0.0, &[1.6, 3.0, 1.0], &[]);
    assert_trim(&h.trim_upper(7.5), 4.0, 21.25, 0.0, &[1.0, 3.0], &[]);
    assert_trim(
        &h.trim_upper(50.0),
        14.0,
        150.0,
        0.0,
        &[1.0, 6.0, 4.0, 3.0],
        &[],
    );
    assert_trim(&h.trim_lower(f64::INFINITY), 0.0, 0.0, 0.0, &[], &[]);
    assert_eq!(h.trim_lower(0.0), h);
    assert_trim(&h.trim_upper(0.0), 0.0, 0.0, 0.0, &[], &[]);

    let neg = cb(
        &[-10.0, 5.0, 10.0, 15.0, 20.0],
        &[2.0, 1.0, 6.0, 4.0, 3.0, 1.0],
        15.0,
        172.5,
    );
    assert_trim(&neg.trim_upper(2.0), 2.8, -23.2, 0.0, &[2.0, 0.8], &[]);
    assert_trim(&neg.trim_upper(-4.0), 2.4, -22.8, 0.0, &[2.0, 0.4], &[]);
    assert_trim(&neg.trim_upper(-15.0), 2.0, -30.0, 0.0, &[2.0], &[]);

    let one = cb(&[], &[100.0], 100.0, 100.0);
    assert_trim(&one.trim_upper(10.0), 0.0, 0.0, 0.0, &[], &[]);
    assert_trim(&one.trim_lower(10.0), 0.0, 0.0, 0.0, &[], &[]);
    assert_eq!(one.trim_lower(f64::NEG_INFINITY), one);

    let at_zero = cb(&[0.0], &[1.0, 100.0], 100.0, 33.0);
    assert_trim(&at_zero.trim_upper(10.0), 1.0, 0.0, 0.0, &[1.0], &[]);
    assert_trim(&at_zero.trim_upper(-10.0), 1.0, -10.0, 0.0, &[1.0], &[]);
    assert_trim(&at_zero.trim_lower(-10.0), 100.0, 0.0, 0.0, &[100.0], &[]);
    assert_trim(&at_zero.trim_lower(10.0), 100.0, 1000.0, 0.0, &[100.0], &[]);

    let at_pos = cb(&[5.0], &[1.0, 100.0], 101.0, 33.0);
    assert_trim(&at_pos.trim_upper(10.0), 1.0, 2.5, 0.0, &[1.0], &[]);
    assert_trim(&at_pos.trim_upper(2.0), 0.4, 0.4, 0.0, &[0.4], &[]);
    assert_trim(&at_pos.trim_lower(-10.0), 100.0, 500.0, 0.0, &[100.0], &[]);
    assert_eq!(at_pos.trim_lower(0.0), at_pos);
    assert_trim(
        &at_pos.trim_lower(2.0),
        100.6,
        502.1,
        0.0,
        &[0.6, 100.0],
        &[],
    );

    let at_neg = cb(&[-5.0], &[1.0, 100.0], 101.0, 33.0);
    assert_trim(&at_neg.trim_upper(-2.0), 1.0, -5.0, 0.0, &[1.0], &[]);
    assert_trim(&at_neg.trim_lower(-10.0), 100.0, -500.0, 0.0, &[100.0], &[]);
    assert_trim(&at_neg.trim_lower(-2.0), 100.0, -200.0, 0.0, &[100.0], &[]);

    // Empty histograms stay empty.
    let empty = cb(&[-3.0, 2.0], &[], 0.0, 0.0);
    assert_trim(&empty.trim_upper(0.0), 0.0, 0.0, 0.0, &[], &[]);
    assert_trim(&H::new(0).build().trim_lower(5.0), 0.0, 0.0, 0.0, &[], &[]);
}

#[test]
fn incremental_mean_with_kahan_add() {
    // native_histograms.test:1446 `avg(histogram_avg_incremental)`: mean = mean·(n-1)/n + h/n,
    // the compensation scaled alongside.
    let hs = [
        H::new(0)
            .count(1.7976931348623157e+308)
            .sum(5.30921651659898)
            .zero(1.78264e50, 0.001)
            .pos(
                0,
                &[1.78264E+50, 1.78264E+215, 1.78264E+219, 3363.5121756487],
            )
            .neg(
                0,
                &[
                    1178.20696291113,
                    731.697776280323,
                    715.201503759399,
                    1386.11378876781,
                    855.572553278132,
                ],
            )
            .build(),
        H::new(0)
            .count(1e308)
            .sum(0.961118537914768)
            .zero(0.76342771, 0.001)
            .pos(0, &[0.76342771, 0.76342771, 0.76342771, 195.70084087969])
            .neg(0, &[421.30382970055, 0.0, 450441.779])
            .build(),
        H::new(0)
            .count(1e-6)
            .sum(1.62091361305318)
            .zero(1.9592258, 0.001)
            .pos(0, &[1.9592258, 1.9592258, 1.9592258, 1135.74692279])
            .neg(0, &[0.0, 4504.41779, 588.599358265103, 40.3760942760943])
            .build(),
        H::new(0)
            .count(1e-6)
            .sum(0.865089463758091)
            .zero(7.69805412, 0.001)
            .pos(
                0,
                &[2.258E+220, 2.258E+220, 2.3757689E+217, 1078.68071312804],
            )
            .neg(
                0,
                &[349.905284031261, 0.0, 0.0, 0.161173466838949, 588.599358],
            )
            .build(),
        H::new(0)
            .count(1e-6)
            .sum(0.323055185914577)
            .zero(458.90154, 0.001)
            .pos(0, &[7.69805412, 7.69805412, 2.258E+220, 3173.28218135701])
            .build(),
        H::new(0)
            .count(1e-6)
            .sum(0.951811357687154)
            .zero(1.78264e50, 0.001)
            .pos(0, &[458.90154, 458.90154, 7.69805412, 2178.35])
            .neg(0, &[2054.92644438789, 844.560108898123])
            .build(),
        H::new(0)
            .count(1e-6)
            .sum(0.0)
            .zero(5.0, 0.001)
            .pos(0, &[0.0, 0.0, 1.78264E+219, 376.770478890989])
            .build(),
        H::new(0)
            .count(1e-6)
            .sum(0.0)
            .zero(0.0, 0.001)
            .pos(0, &[0.0, 0.0, 458.90154, 250325.5])
            .neg(0, &[0.0, 0.0000000011353, 0.0, 608.697257])
            .build(),
    ];
    let mut mean = hs[0].clone();
    let mut comp: Option<FloatHistogram> = None;
    for (i, h) in hs.iter().enumerate().skip(1) {
        let n = i as f64 + 1.0;
        let q = (n - 1.0) / n;
        if let Some(c) = comp.as_mut() {
            c.mul(q);
        }
        let mut inc = h.clone();
        inc.div(n);
        mean.mul(q);
        let (c, _) = mean.kahan_add(&inc, comp).expect("compatible");
        comp = Some(c);
    }
    if let Some(c) = comp {
        mean.add(&c).ok();
    }
    let mean = compacted(mean);
    assert_close(mean.count, 3.497116418577895e+307);
    assert_close(mean.sum, 1.2539005843658437);
    assert_close(mean.zero_count, 4.4566e49);
    let want_pos = [
        2.8225e+219,
        2.822522283e+219,
        3.271129711125e+219,
        32728.442914086805,
    ];
    for (got, want) in mean.positive_buckets.iter().zip(want_pos) {
        assert_close(*got, want);
    }
    let want_neg = [
        500.5428151288539,
        760.0844593974477,
        56468.19748275306,
        254.4185391888429,
        180.5214889097665,
    ];
    assert_eq!(mean.negative_buckets.len(), want_neg.len());
    for (got, want) in mean.negative_buckets.iter().zip(want_neg) {
        assert_close(*got, want);
    }
}

#[test]
fn copy_to_schema_leaves_the_original() {
    let h = H::new(2).count(3.0).pos(1, &[1.0, 1.0, 1.0, 1.0]).build();
    let c = h.copy_to_schema(0);
    assert_eq!(h.schema, 2);
    assert_eq!(c.schema, 0);
    assert_eq!(positive_pairs(&c), vec![(1, 4.0)]);
}
