//! End-to-end tests (parser and evaluator) of the Prometheus 3.x modifiers: binary `fill`,
//! `anchored`/`smoothed` selectors and duration expressions using `step()`/`range()`.

use sextant_storage::{Db, Labels};

use super::tests::{db, l};
use super::*;
use crate::promql::parse;

fn engine() -> Engine {
    Engine::new(EngineOptions {
        delayed_name_removal: true,
        ..Default::default()
    })
}

/// Runs an instant query and returns the samples sorted by labels.
fn instant(d: &Db, q: &str, t: i64) -> Result<Vec<(Labels, f64)>, QueryError> {
    let expr = parse(q).unwrap();
    let r = engine().instant_query(d, q, &expr, t)?;
    let mut out: Vec<(Labels, f64)> = match r.value {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
        other => panic!("{q}: expected a vector, got {other:?}"),
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Runs a range query and returns each series' values.
fn range(d: &Db, q: &str, start: i64, end: i64, step: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let expr = parse(q).unwrap();
    let r = engine().range_query(d, q, &expr, start, end, step).unwrap();
    match r.value {
        Value::Matrix(m) => m.into_iter().map(|s| (s.labels, s.points)).collect(),
        other => panic!("{q}: expected a matrix, got {other:?}"),
    }
}

fn sides() -> Db {
    db(&[
        (l(&[("__name__", "left"), ("k", "a")]), vec![(0, 10.0)]),
        (l(&[("__name__", "left"), ("k", "c")]), vec![(0, 30.0)]),
        (l(&[("__name__", "right"), ("k", "a")]), vec![(0, 100.0)]),
        (l(&[("__name__", "right"), ("k", "d")]), vec![(0, 400.0)]),
    ])
}

#[test]
fn fill_fills_missing_sides() {
    let d = sides();
    let k = |v: &str| l(&[("k", v)]);
    assert_eq!(
        instant(&d, "left + fill(0) right", 0).unwrap(),
        vec![(k("a"), 110.0), (k("c"), 30.0), (k("d"), 400.0)]
    );
    assert_eq!(
        instant(&d, "left + fill_left(5) right", 0).unwrap(),
        vec![(k("a"), 110.0), (k("d"), 405.0)]
    );
    assert_eq!(
        instant(&d, "left - fill_right(7) right", 0).unwrap(),
        vec![(k("a"), -90.0), (k("c"), 23.0)]
    );
    // Comparisons keep the left value; a filled left side has no metric name.
    assert_eq!(
        instant(&d, "left != fill(30) right", 0).unwrap(),
        vec![
            (l(&[("__name__", "left"), ("k", "a")]), 10.0),
            (k("d"), 30.0)
        ]
    );
    assert_eq!(
        instant(&d, "left == bool fill(30) right", 0).unwrap(),
        vec![(k("a"), 0.0), (k("c"), 1.0), (k("d"), 0.0)]
    );
    // One side empty: only a fill for the missing side produces results.
    assert_eq!(
        instant(&d, "left + fill_right(1) nothing", 0).unwrap(),
        vec![(k("a"), 11.0), (k("c"), 31.0)]
    );
    assert!(instant(&d, "left + fill_left(1) nothing", 0)
        .unwrap()
        .is_empty());
}

#[test]
fn fill_with_group_modifiers() {
    let d = db(&[
        (
            l(&[("__name__", "req"), ("m", "get"), ("s", "200")]),
            vec![(0, 100.0)],
        ),
        (
            l(&[("__name__", "req"), ("m", "post"), ("s", "500")]),
            vec![(0, 20.0)],
        ),
        (l(&[("__name__", "lim"), ("s", "200")]), vec![(0, 1000.0)]),
        (l(&[("__name__", "lim"), ("s", "404")]), vec![(0, 500.0)]),
    ]);
    assert_eq!(
        instant(&d, "req + on(s) group_left fill(0) lim", 0).unwrap(),
        vec![
            (l(&[("m", "get"), ("s", "200")]), 1100.0),
            (l(&[("m", "post"), ("s", "500")]), 20.0),
            (l(&[("s", "404")]), 500.0),
        ]
    );
    // group_right: fill_right applies to the "many" side's missing match.
    assert_eq!(
        instant(&d, "lim * on(s) group_right fill_right(2) req", 0).unwrap(),
        vec![
            (l(&[("m", "get"), ("s", "200")]), 100_000.0),
            (l(&[("m", "post"), ("s", "500")]), 40.0),
        ]
    );
}

#[test]
fn anchored_and_smoothed_range_functions() {
    // 1 2 3 4 5 9 10 11 12 13 every 15s.
    let vals = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 10.0, 11.0, 12.0, 13.0];
    let pts: Vec<(i64, f64)> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64 * 15_000, *v))
        .collect();
    let d = db(&[(l(&[("__name__", "m")]), pts)]);
    let one = |q: &str, t: i64| -> f64 {
        match instant(&d, q, t).unwrap().as_slice() {
            [(_, v)] => *v,
            other => panic!("{q} at {t}: {other:?}"),
        }
    };
    assert_eq!(one("increase(m[1m] anchored)", 80_000), 7.0);
    assert_eq!(one("increase(m[1m] anchored)", 5_000), 0.0);
    assert!((one("increase(m[1m] smoothed)", 20_000) - 1.333_333_333).abs() < 1e-6);
    assert!((one("rate(m[1m] smoothed)", 65_000) - 5.0 / 60.0).abs() < 1e-9);
    assert_eq!(one("delta(m[1m] anchored offset 15s)", 95_000), 7.0);
    assert_eq!(one("changes(m[1m] anchored)", 80_000), 4.0);
    assert_eq!(one("resets(m[1m] anchored)", 80_000), 0.0);
    // A smoothed instant selector interpolates at the evaluation time.
    assert_eq!(
        instant(&d, "m smoothed", 67_500).unwrap(),
        vec![(l(&[("__name__", "m")]), 7.0)]
    );
    // A range query gives the same values as instant queries at each step.
    let r = range(&d, "increase(m[1m] anchored)", 20_000, 80_000, 30_000);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, vec![(20_000, 1.0), (50_000, 3.0), (80_000, 7.0)]);
}

#[test]
fn modifiers_only_work_with_some_functions() {
    let d = db(&[]);
    let err = instant(&d, "deriv(foo[3m] smoothed)", 60_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "smoothed modifier can only be used with: delta, increase, rate - not with deriv"
    );
    let err = instant(&d, "max_over_time((foo[3m] anchored))", 60_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with max_over_time"
    );
    assert!(instant(&d, "resets(foo[3m] anchored)", 60_000)
        .unwrap()
        .is_empty());
}

#[test]
fn duration_expressions_use_the_query_step_and_range() {
    let d = db(&[(
        l(&[("__name__", "c")]),
        (0..=100).map(|i| (i * 1000, i as f64)).collect(),
    )]);
    let r = range(&d, "count_over_time(c[step()+1ms])", 50_000, 60_000, 10_000);
    assert_eq!(r[0].1, vec![(50_000, 11.0), (60_000, 11.0)]);
    let r = range(&d, "c offset min_of(range(), 8s)", 50_000, 60_000, 5_000);
    assert_eq!(r[0].1, vec![(50_000, 42.0), (55_000, 47.0), (60_000, 52.0)]);
    let r = range(&d, "c offset (-step()*2)", 50_000, 60_000, 5_000);
    assert_eq!(r[0].1, vec![(50_000, 60.0), (55_000, 65.0), (60_000, 70.0)]);
    let r = range(&d, "sum_over_time(c[step():step()])", 20_000, 20_000, 5_000);
    assert_eq!(r[0].1, vec![(20_000, 20.0)]);
    // Instant queries have step() = range() = 0.
    assert_eq!(
        instant(&d, "c offset range()", 50_000).unwrap(),
        vec![(l(&[("__name__", "c")]), 50.0)]
    );
    let err = instant(&d, "c[step()]", 50_000).unwrap_err();
    assert_eq!(err.to_string(), "duration must be greater than 0");
}
