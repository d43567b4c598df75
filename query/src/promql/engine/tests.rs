//! Unit tests for the evaluator, building ASTs by hand (independent of the parser).

use sextant_storage::{Db, Labels, Matcher, Sample as StSample, STALE_NAN_BITS};

use super::*;
use crate::promql::ast::*;
use crate::promql::functions::FunctionDef;

fn def(name: &'static str, args: &'static [ValueType], ret: ValueType) -> FunctionDef {
    FunctionDef {
        name,
        arg_types: args,
        variadic: 0,
        return_type: ret,
        experimental: false,
    }
}

static RATE: std::sync::LazyLock<FunctionDef> =
    std::sync::LazyLock::new(|| def("rate", &[ValueType::Matrix], ValueType::Vector));
static INCREASE: std::sync::LazyLock<FunctionDef> =
    std::sync::LazyLock::new(|| def("increase", &[ValueType::Matrix], ValueType::Vector));
static LAST: std::sync::LazyLock<FunctionDef> =
    std::sync::LazyLock::new(|| def("last_over_time", &[ValueType::Matrix], ValueType::Vector));
static HQ: std::sync::LazyLock<FunctionDef> = std::sync::LazyLock::new(|| {
    def(
        "histogram_quantile",
        &[ValueType::Scalar, ValueType::Vector],
        ValueType::Vector,
    )
});
static LREPL: std::sync::LazyLock<FunctionDef> = std::sync::LazyLock::new(|| {
    def(
        "label_replace",
        &[
            ValueType::Vector,
            ValueType::String,
            ValueType::String,
            ValueType::String,
            ValueType::String,
        ],
        ValueType::Vector,
    )
});
static COUNT_OT: std::sync::LazyLock<FunctionDef> =
    std::sync::LazyLock::new(|| def("count_over_time", &[ValueType::Matrix], ValueType::Vector));

pub(super) fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

pub(super) fn db(series: &[(Labels, Vec<(i64, f64)>)]) -> Db {
    let db = Db::in_memory();
    let batch: Vec<(Labels, Vec<StSample>)> = series
        .iter()
        .map(|(l, s)| {
            (
                l.clone(),
                s.iter().map(|&(t, v)| StSample { t, v }).collect(),
            )
        })
        .collect();
    db.append(&batch).unwrap();
    db
}

fn sel(name: &str) -> VectorSelector {
    VectorSelector {
        name: Some(name.into()),
        matchers: vec![Matcher::equal("__name__", name)],
        offset: 0,
        offset_expr: None,
        at: None,
        anchored: false,
        smoothed: false,
        pos: PosRange {
            start: 0,
            end: name.len(),
        },
    }
}

fn vs(name: &str) -> Expr {
    Expr::VectorSelector(sel(name))
}

fn ms(name: &str, range: i64, start: usize) -> Expr {
    let mut s = sel(name);
    s.pos = PosRange {
        start,
        end: start + name.len(),
    };
    Expr::MatrixSelector(MatrixSelector {
        selector: s,
        range,
        range_expr: None,
        pos: PosRange {
            start,
            end: start + 10,
        },
    })
}

fn call(f: &'static FunctionDef, args: Vec<Expr>) -> Expr {
    Expr::Call(Call {
        func: f,
        args,
        pos: PosRange::default(),
    })
}

fn engine() -> Engine {
    Engine::new(EngineOptions {
        delayed_name_removal: true,
        ..Default::default()
    })
}

fn vector(r: &QueryResult) -> Vec<(Labels, f64)> {
    match &r.value {
        Value::Vector(v) => v.iter().map(|s| (s.labels.clone(), s.v)).collect(),
        other => panic!("expected vector, got {other:?}"),
    }
}

/// 0, 10, 20, ... every 10s for `n` samples.
fn counter(n: i64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (i * 10_000, (i * 10) as f64)).collect()
}

#[test]
fn instant_selector_lookback_and_staleness() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let d = db(&[
        (
            l(&[("__name__", "a"), ("x", "1")]),
            vec![(0, 1.0), (60_000, 2.0)],
        ),
        (
            l(&[("__name__", "a"), ("x", "2")]),
            vec![(0, 5.0), (30_000, stale)],
        ),
    ]);
    let e = engine();
    let r = e.instant_query(&d, "a", &vs("a"), 60_000).unwrap();
    assert_eq!(vector(&r), vec![(l(&[("__name__", "a"), ("x", "1")]), 2.0)]);
    // Left-open window: at 5m the sample at 0 is exactly lookback old and excluded.
    let r = e
        .instant_query(&d, "a", &vs("a"), 300_000 + 60_000)
        .unwrap();
    assert!(vector(&r).is_empty());
    let r = e.instant_query(&d, "a", &vs("a"), 299_999).unwrap();
    assert_eq!(vector(&r).len(), 1);
}

#[test]
fn rate_extrapolates_like_prometheus() {
    // Samples 0..=50 at 0s..50s (one per 10s), value = 10 * i: 1/s.
    let d = db(&[(l(&[("__name__", "c_total")]), counter(6))]);
    let e = engine();
    // Window (0, 60s]: samples at 10..50s, first=10 last=50, sampled=40s, avg=10s.
    // to_start = 10s (< 11s threshold) → extrapolate fully; zero point at 10s*(10/40)=...
    // durationToZero = 40 * (10/40) = 10 → not shorter. to_end = 10s → full.
    // increase = 40 * (40+10+10)/40 = 60.
    let q = call(&INCREASE, vec![ms("c_total", 60_000, 9)]);
    let r = e
        .instant_query(&d, "increase(c_total[1m])", &q, 60_000)
        .unwrap();
    assert_eq!(vector(&r), vec![(Labels::empty(), 60.0)]);
    let q = call(&RATE, vec![ms("c_total", 60_000, 5)]);
    let r = e
        .instant_query(&d, "rate(c_total[1m])", &q, 60_000)
        .unwrap();
    assert_eq!(vector(&r), vec![(Labels::empty(), 1.0)]);
    assert!(r.infos.is_empty());
    // At 55s: window (-5s, 55s] holds 0..50s; to_start=5s → zero point at 0 = 0s → 0.
    // to_end = 5s → full: 50 * (50+0+5)/50 = 55.
    let q = call(&INCREASE, vec![ms("c_total", 60_000, 9)]);
    let r = e
        .instant_query(&d, "increase(c_total[1m])", &q, 55_000)
        .unwrap();
    let v = vector(&r);
    assert!((v[0].1 - 55.0).abs() < 1e-9, "{v:?}");
}

#[test]
fn rate_handles_resets_and_far_boundaries() {
    // 5, 10, 2 (reset), 7 at 20s..50s; window (0, 100s].
    let d = db(&[(
        l(&[("__name__", "c_total")]),
        vec![(20_000, 5.0), (30_000, 10.0), (40_000, 2.0), (50_000, 7.0)],
    )]);
    let e = engine();
    // result = 7 - 5 + 10 = 12; sampled = 30s, avg = 10s, threshold 11s.
    // to_start = 20s ≥ 11 → 5s; zero point: 30 * 5/12 = 12.5 → keep 5s.
    // to_end = 50s → 5s. increase = 12 * (30+5+5)/30 = 16.
    let q = call(&INCREASE, vec![ms("c_total", 100_000, 9)]);
    let r = e
        .instant_query(&d, "increase(c_total[100s])", &q, 100_000)
        .unwrap();
    let v = vector(&r);
    assert_eq!(v.len(), 1);
    assert!((v[0].1 - 16.0).abs() < 1e-9, "{v:?}");
}

#[test]
fn rate_non_counter_info_has_position() {
    let d = db(&[(l(&[("__name__", "foo")]), counter(6))]);
    let q = call(&RATE, vec![ms("foo", 60_000, 5)]);
    let r = engine()
        .instant_query(&d, "rate(foo[1m])", &q, 60_000)
        .unwrap();
    assert_eq!(
        r.infos,
        vec![
            r#"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "foo" (1:6)"#
        ]
    );
}

#[test]
fn last_over_time_keeps_name_and_rate_drops_it() {
    let d = db(&[(l(&[("__name__", "c_total"), ("a", "b")]), counter(6))]);
    let e = engine();
    let q = call(&LAST, vec![ms("c_total", 60_000, 15)]);
    let r = e.instant_query(&d, "", &q, 60_000).unwrap();
    assert_eq!(
        vector(&r),
        vec![(l(&[("__name__", "c_total"), ("a", "b")]), 50.0)]
    );
    // label_replace sees the name that rate only marked for removal.
    let q = call(
        &LREPL,
        vec![
            call(&RATE, vec![ms("c_total", 60_000, 5)]),
            Expr::StringLiteral("n".into()),
            Expr::StringLiteral("x_$1".into()),
            Expr::StringLiteral("__name__".into()),
            Expr::StringLiteral("(.+)".into()),
        ],
    );
    let r = e.instant_query(&d, "", &q, 60_000).unwrap();
    assert_eq!(
        vector(&r),
        vec![(l(&[("a", "b"), ("n", "x_c_total")]), 1.0)]
    );
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr, matching: Option<VectorMatching>) -> Expr {
    Expr::Binary(BinaryExpr {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        return_bool: false,
        matching,
        pos: PosRange::default(),
    })
}

fn one_to_one() -> Option<VectorMatching> {
    Some(VectorMatching {
        card: VectorMatchCardinality::OneToOne,
        labels: vec![],
        on: false,
        include: vec![],
        fill: FillValues::default(),
    })
}

#[test]
fn binary_ops_match_and_drop_names() {
    let d = db(&[
        (l(&[("__name__", "a"), ("i", "1")]), vec![(0, 10.0)]),
        (l(&[("__name__", "a"), ("i", "2")]), vec![(0, 20.0)]),
        (l(&[("__name__", "b"), ("i", "1")]), vec![(0, 3.0)]),
    ]);
    let e = engine();
    let r = e
        .instant_query(
            &d,
            "",
            &binary(BinaryOp::Mod, vs("a"), vs("b"), one_to_one()),
            0,
        )
        .unwrap();
    assert_eq!(vector(&r), vec![(l(&[("i", "1")]), 1.0)]);
    // Comparison filters keep the name and the left value.
    let r = e
        .instant_query(
            &d,
            "",
            &binary(BinaryOp::Gtr, vs("a"), Expr::NumberLiteral(15.0), None),
            0,
        )
        .unwrap();
    assert_eq!(
        vector(&r),
        vec![(l(&[("__name__", "a"), ("i", "2")]), 20.0)]
    );
    // `or` adds the right side's unmatched series.
    let set = Some(VectorMatching {
        card: VectorMatchCardinality::ManyToMany,
        labels: vec![],
        on: false,
        include: vec![],
        fill: FillValues::default(),
    });
    let r = e
        .instant_query(&d, "", &binary(BinaryOp::Or, vs("b"), vs("a"), set), 0)
        .unwrap();
    let got = vector(&r);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], (l(&[("__name__", "a"), ("i", "2")]), 20.0));
}

#[test]
fn many_to_many_is_an_error() {
    let d = db(&[
        (l(&[("__name__", "a"), ("i", "1")]), vec![(0, 10.0)]),
        (
            l(&[("__name__", "b"), ("i", "1"), ("j", "1")]),
            vec![(0, 3.0)],
        ),
        (
            l(&[("__name__", "b"), ("i", "1"), ("j", "2")]),
            vec![(0, 3.0)],
        ),
    ]);
    let m = Some(VectorMatching {
        card: VectorMatchCardinality::OneToOne,
        labels: vec!["i".into()],
        on: true,
        include: vec![],
        fill: FillValues::default(),
    });
    let err = engine()
        .instant_query(&d, "", &binary(BinaryOp::Add, vs("a"), vs("b"), m), 0)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
}

#[test]
fn aggregation_sum_by_and_avg() {
    let d = db(&[
        (
            l(&[("__name__", "a"), ("g", "x"), ("i", "1")]),
            vec![(0, 1.0)],
        ),
        (
            l(&[("__name__", "a"), ("g", "x"), ("i", "2")]),
            vec![(0, 2.0)],
        ),
        (
            l(&[("__name__", "a"), ("g", "y"), ("i", "3")]),
            vec![(0, 4.0)],
        ),
    ]);
    let agg = |op| {
        Expr::Aggregate(AggregateExpr {
            op,
            expr: Box::new(vs("a")),
            param: None,
            grouping: vec!["g".into()],
            without: false,
            pos: PosRange::default(),
        })
    };
    let e = engine();
    let r = e.instant_query(&d, "", &agg(AggregateOp::Sum), 0).unwrap();
    assert_eq!(
        vector(&r),
        vec![(l(&[("g", "x")]), 3.0), (l(&[("g", "y")]), 4.0)]
    );
    let r = e.instant_query(&d, "", &agg(AggregateOp::Avg), 0).unwrap();
    assert_eq!(
        vector(&r),
        vec![(l(&[("g", "x")]), 1.5), (l(&[("g", "y")]), 4.0)]
    );
    let r = e
        .instant_query(&d, "", &agg(AggregateOp::Stddev), 0)
        .unwrap();
    assert_eq!(
        vector(&r),
        vec![(l(&[("g", "x")]), 0.5), (l(&[("g", "y")]), 0.0)]
    );
}

#[test]
fn range_query_builds_sorted_matrix() {
    let d = db(&[
        (
            l(&[("__name__", "a"), ("i", "2")]),
            vec![(0, 1.0), (60_000, 2.0)],
        ),
        (l(&[("__name__", "a"), ("i", "1")]), vec![(120_000, 7.0)]),
    ]);
    let r = engine()
        .range_query(&d, "a", &vs("a"), 0, 120_000, 60_000)
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].labels, l(&[("__name__", "a"), ("i", "1")]));
    assert_eq!(m[0].points, vec![(120_000, 7.0)]);
    assert_eq!(m[1].points, vec![(0, 1.0), (60_000, 2.0), (120_000, 2.0)]);
    // Scalars become one unlabelled series.
    let r = engine()
        .range_query(&d, "1", &Expr::NumberLiteral(1.0), 0, 60_000, 30_000)
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(m[0].points.len(), 3);
}

#[test]
fn subquery_steps_are_aligned() {
    let d = db(&[(
        l(&[("__name__", "a")]),
        (0..20).map(|i| (i * 10_000, i as f64)).collect(),
    )]);
    // count_over_time(a[45s:10s]) at 100s: inner steps at 60,70,80,90,100 → 5.
    let sq = Expr::Subquery(SubqueryExpr {
        expr: Box::new(vs("a")),
        range: 45_000,
        step: Some(10_000),
        offset: 0,
        at: None,
        range_expr: None,
        step_expr: None,
        offset_expr: None,
        pos: PosRange::default(),
    });
    let r = engine()
        .instant_query(&d, "", &call(&COUNT_OT, vec![sq.clone()]), 100_000)
        .unwrap();
    assert_eq!(vector(&r), vec![(Labels::empty(), 5.0)]);
    // At 105s: steps 70..100 → 4... (60.000 < 105-45=60? no: window is (60, 105]).
    let r = engine()
        .instant_query(&d, "", &call(&COUNT_OT, vec![sq]), 105_000)
        .unwrap();
    assert_eq!(vector(&r), vec![(Labels::empty(), 4.0)]);
}

#[test]
fn histogram_quantile_classic_buckets() {
    let b = |le: &str, v: f64| (l(&[("__name__", "h_bucket"), ("le", le)]), vec![(0, v)]);
    let d = db(&[b("1", 10.0), b("2", 20.0), b("+Inf", 20.0), b("bad", 1.0)]);
    let q = call(&HQ, vec![Expr::NumberLiteral(0.75), vs("h_bucket")]);
    let r = engine().instant_query(&d, "", &q, 0).unwrap();
    // rank 15 falls in (1, 2]: 1 + 1 * (5/10) = 1.5.
    assert_eq!(vector(&r), vec![(Labels::empty(), 1.5)]);
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("malformed value of \"bad\""));
}

#[test]
fn bucket_quantile_fixes_monotonicity() {
    let (v, forced) =
        histogram::bucket_quantile(0.5, vec![(1.0, 10.0), (2.0, 8.0), (f64::INFINITY, 12.0)]);
    assert!(forced);
    // Fixed counts 10, 10, 12: rank 6 in first bucket (0, 1] → 0.6.
    assert!((v - 0.6).abs() < 1e-12);
}

#[test]
fn sample_limit_is_enforced() {
    let d = db(&[(l(&[("__name__", "a")]), counter(100))]);
    let e = Engine::new(EngineOptions {
        max_samples: 10,
        ..Default::default()
    });
    let err = e
        .instant_query(&d, "", &ms("a", 1_000_000, 0), 1_000_000)
        .unwrap_err();
    assert!(matches!(err, QueryError::Limit(_)));
}

#[test]
fn annotations_are_positioned() {
    assert_eq!(model::line_col("ab\ncd", 4), "2:2");
    assert_eq!(model::fmt_g(1.1), "1.1");
    assert_eq!(model::fmt_g(f64::NAN), "NaN");
    assert_eq!(model::fmt_g(1e21), "1e+21");
}

#[test]
fn storage_select_with_negative_name_matchers() {
    use sextant_storage::{MatchOp, SeriesSource};
    let d = db(&[
        (l(&[("__name__", "metric"), ("job", "1")]), vec![(0, 1.0)]),
        (
            l(&[("__name__", "target_info"), ("job", "1")]),
            vec![(0, 1.0)],
        ),
        (
            l(&[("__name__", "build_info"), ("job", "1")]),
            vec![(0, 1.0)],
        ),
    ]);
    let ms = vec![
        Matcher::new(MatchOp::Regex, "__name__", ".+_info").unwrap(),
        Matcher::new(MatchOp::NotEqual, "__name__", "target_info").unwrap(),
    ];
    let got = d.select(&ms, -1000, 1000).unwrap();
    assert_eq!(got.len(), 1);
}
