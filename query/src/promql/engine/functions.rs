//! Function calls: dispatch on the function name, instant-vector math, label manipulation,
//! sorting, date functions, `absent`, `scalar`/`vector` and the range-function wrapper.

use std::cmp::Ordering;

use regex::Regex;
use sextant_storage::labels::is_valid_label_name;
use sextant_storage::{CounterResetHint, Labels, MatchOp, METRIC_NAME};

use super::eval::{expr_pos, Evaluator, RangeArg};
use super::extended;
use super::extended_hist;
use super::histogram::{
    histogram_fraction, histogram_quantile, histogram_quantiles, simple_histogram_fn,
};
use super::model::{Sample, Val};
use super::range_fns::{self, Params};
use super::range_hist;
use crate::promql::ast::{Call, Expr, PosRange};
use crate::promql::value::QueryError;

pub(super) fn eval_call(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let name = c.func.name;
    if let Some(msg) = extended::check_call(c) {
        return Err(QueryError::Execution(msg));
    }
    if range_fns::is_range_fn(name) {
        return eval_range_call(ev, c, t);
    }
    match name {
        "time" => Ok(Val::Scalar(t as f64 / 1000.0)),
        "pi" => Ok(Val::Scalar(std::f64::consts::PI)),
        "start" => Ok(Val::Scalar(ev.qstart as f64 / 1000.0)),
        "end" => Ok(Val::Scalar(ev.qend as f64 / 1000.0)),
        "range" => Ok(Val::Scalar((ev.qend - ev.qstart) as f64 / 1000.0)),
        "vector" => {
            let v = scalar_arg(ev, c, 0, t)?;
            Ok(Val::Vector(vec![Sample {
                labels: Labels::empty(),
                v,
                h: None,
                drop_name: false,
            }]))
        }
        "scalar" => {
            // Histogram samples are ignored; exactly one float sample gives its value.
            let v = vector_arg(ev, c, 0, t)?;
            let mut floats = v.iter().filter(|s| s.h.is_none());
            Ok(Val::Scalar(match (floats.next(), floats.next()) {
                (Some(one), None) => one.v,
                _ => f64::NAN,
            }))
        }
        "absent" => {
            let v = vector_arg(ev, c, 0, t)?;
            if !v.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![absent_sample(c.args.first())]))
        }
        "absent_over_time" => {
            let arg = c.args.first().ok_or_else(|| missing(name))?;
            let r = ev.eval_range_arg(arg, t)?;
            if r.series.iter().any(|s| !s.is_empty()) {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![absent_sample(Some(arg))]))
        }
        "timestamp" => timestamp(ev, c, t),
        "info" => info(ev, c, t),
        "label_replace" => label_replace(ev, c, t),
        "label_join" => label_join(ev, c, t),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => sort(ev, c, t),
        "histogram_quantile" => {
            let q = scalar_arg(ev, c, 0, t)?;
            let v = vector_arg(ev, c, 1, t)?;
            Ok(Val::Vector(histogram_quantile(ev, c, q, v)))
        }
        "histogram_fraction" => {
            let lower = scalar_arg(ev, c, 0, t)?;
            let upper = scalar_arg(ev, c, 1, t)?;
            let v = vector_arg(ev, c, 2, t)?;
            Ok(Val::Vector(histogram_fraction(ev, c, lower, upper, v)))
        }
        "histogram_quantiles" => {
            let v = vector_arg(ev, c, 0, t)?;
            let label = string_arg(ev, c, 1, t)?;
            let mut qs = Vec::new();
            for i in 2..c.args.len() {
                qs.push(scalar_arg(ev, c, i, t)?);
            }
            Ok(Val::Vector(histogram_quantiles(ev, c, v, &label, &qs)?))
        }
        "min_of" | "max_of" => {
            let a = scalar_arg(ev, c, 0, t)?;
            let b = scalar_arg(ev, c, 1, t)?;
            Ok(Val::Scalar(if name == "min_of" {
                go_min(a, b)
            } else {
                go_max(a, b)
            }))
        }
        "step" => Ok(Val::Scalar(ev.step_ms as f64 / 1000.0)),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            let v = vector_arg(ev, c, 0, t)?;
            Ok(Val::Vector(simple_histogram_fn(ev, name, v)))
        }
        "round" => {
            let v = vector_arg(ev, c, 0, t)?;
            let to_nearest = if c.args.len() > 1 {
                scalar_arg(ev, c, 1, t)?
            } else {
                1.0
            };
            let inv = 1.0 / to_nearest;
            Ok(Val::Vector(map_values(ev, v, |x| {
                (x * inv + 0.5).floor() / inv
            })))
        }
        "clamp" => {
            let v = vector_arg(ev, c, 0, t)?;
            let min = scalar_arg(ev, c, 1, t)?;
            let max = scalar_arg(ev, c, 2, t)?;
            if max < min {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(map_values(ev, v, |x| {
                go_max(min, go_min(max, x))
            })))
        }
        "clamp_min" => {
            let v = vector_arg(ev, c, 0, t)?;
            let min = scalar_arg(ev, c, 1, t)?;
            Ok(Val::Vector(map_values(ev, v, |x| go_max(min, x))))
        }
        "clamp_max" => {
            let v = vector_arg(ev, c, 0, t)?;
            let max = scalar_arg(ev, c, 1, t)?;
            Ok(Val::Vector(map_values(ev, v, |x| go_min(max, x))))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            if c.args.is_empty() {
                let v = date_part(name, t.div_euclid(1000));
                return Ok(Val::Vector(vec![Sample {
                    labels: Labels::empty(),
                    v,
                    h: None,
                    drop_name: false,
                }]));
            }
            let v = vector_arg(ev, c, 0, t)?;
            Ok(Val::Vector(map_values(ev, v, |x| {
                if x.is_nan() || x.is_infinite() {
                    return f64::NAN;
                }
                date_part(name, x.trunc() as i64)
            })))
        }
        _ => match simple_fn(name) {
            Some(f) => {
                let v = vector_arg(ev, c, 0, t)?;
                Ok(Val::Vector(map_values(ev, v, f)))
            }
            None => Err(QueryError::Execution(format!(
                "function {name:?} is not supported"
            ))),
        },
    }
}

fn missing(name: &str) -> QueryError {
    QueryError::Execution(format!("missing argument to {name}"))
}

fn vector_arg(
    ev: &mut Evaluator<'_>,
    c: &Call,
    i: usize,
    t: i64,
) -> Result<Vec<Sample>, QueryError> {
    let a = c.args.get(i).ok_or_else(|| missing(c.func.name))?;
    ev.eval_vector(a, t)
}

fn scalar_arg(ev: &mut Evaluator<'_>, c: &Call, i: usize, t: i64) -> Result<f64, QueryError> {
    let a = c.args.get(i).ok_or_else(|| missing(c.func.name))?;
    ev.eval_scalar(a, t)
}

fn string_arg(ev: &mut Evaluator<'_>, c: &Call, i: usize, t: i64) -> Result<String, QueryError> {
    let a = c.args.get(i).ok_or_else(|| missing(c.func.name))?;
    ev.eval_string(a, t)
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn map_values(ev: &Evaluator<'_>, mut v: Vec<Sample>, f: impl Fn(f64) -> f64) -> Vec<Sample> {
    // Float functions skip histogram samples.
    v.retain(|s| s.h.is_none());
    for s in &mut v {
        s.v = f(s.v);
        ev.drop_name(&mut s.labels, &mut s.drop_name);
    }
    v
}

fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x: f64| x * 180.0 / std::f64::consts::PI,
        "rad" => |x: f64| x * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

/// The series `absent()` returns: equality matchers of the argument's selector as labels.
fn absent_sample(arg: Option<&Expr>) -> Sample {
    let mut vs = None;
    let mut e = arg;
    while let Some(x) = e {
        match x {
            Expr::Paren(inner) => e = Some(inner),
            Expr::VectorSelector(s) => {
                vs = Some(s);
                break;
            }
            Expr::MatrixSelector(m) => {
                vs = Some(&m.selector);
                break;
            }
            // Subqueries and other expressions give no labels (as Prometheus).
            _ => break,
        }
    }
    let mut labels = Labels::empty();
    if let Some(vs) = vs {
        let mut seen: Vec<&str> = Vec::new();
        for m in &vs.matchers {
            if m.name == METRIC_NAME {
                continue;
            }
            if m.op == MatchOp::Equal && !seen.contains(&m.name.as_str()) {
                labels.set(&m.name, &m.value);
            } else {
                labels.remove(&m.name);
            }
            seen.push(&m.name);
        }
    }
    Sample {
        labels,
        v: 1.0,
        h: None,
        drop_name: false,
    }
}

fn timestamp(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let mut arg = c.args.first().ok_or_else(|| missing("timestamp"))?;
    while let Expr::Paren(inner) = arg {
        arg = inner;
    }
    let pairs: Vec<(Sample, i64)> = if let Expr::VectorSelector(vs) = arg {
        ev.select_instant(vs, t)?
    } else {
        ev.eval_vector(arg, t)?
            .into_iter()
            .map(|s| (s, t))
            .collect()
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (mut s, ts) in pairs {
        s.v = ts as f64 / 1000.0;
        s.h = None;
        ev.drop_name(&mut s.labels, &mut s.drop_name);
        out.push(s);
    }
    Ok(Val::Vector(out))
}

fn label_replace(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let v = vector_arg(ev, c, 0, t)?;
    let dst = string_arg(ev, c, 1, t)?;
    let repl = string_arg(ev, c, 2, t)?;
    let src = string_arg(ev, c, 3, t)?;
    let re_src = string_arg(ev, c, 4, t)?;
    let re = Regex::new(&format!("^(?s:{re_src})$")).map_err(|e| {
        QueryError::BadData(format!(
            "invalid regular expression in label_replace(): {re_src}: {e}"
        ))
    })?;
    if !is_valid_label_name(&dst) {
        return Err(QueryError::BadData(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let sv = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&sv) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            s.labels.set(&dst, &res);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        out.push(s);
    }
    Ok(Val::Vector(out))
}

fn label_join(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let v = vector_arg(ev, c, 0, t)?;
    let dst = string_arg(ev, c, 1, t)?;
    let sep = string_arg(ev, c, 2, t)?;
    let mut srcs = Vec::new();
    for i in 3..c.args.len() {
        let s = string_arg(ev, c, i, t)?;
        if !is_valid_label_name(&s) {
            return Err(QueryError::BadData(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !is_valid_label_name(&dst) {
        return Err(QueryError::BadData(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let joined = joined.join(&sep);
        s.labels.set(&dst, &joined);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
        out.push(s);
    }
    Ok(Val::Vector(out))
}

fn sort(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let name = c.func.name;
    let mut v = vector_arg(ev, c, 0, t)?;
    if ev.is_range {
        ev.warn(
            "sort is ineffective for range queries since results are always ordered by labels",
            c.pos,
        );
    }
    if matches!(name, "sort" | "sort_desc") {
        // Sorting by value drops histogram samples.
        v.retain(|s| s.h.is_none());
    }
    match name {
        "sort" => v.sort_by(|a, b| nan_last(a.v, b.v)),
        "sort_desc" => v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => b.v.partial_cmp(&a.v).unwrap_or(Ordering::Equal),
        }),
        _ => {
            let mut names = Vec::new();
            for i in 1..c.args.len() {
                names.push(string_arg(ev, c, i, t)?);
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let mut o = Ordering::Equal;
                for n in &names {
                    o = natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if o != Ordering::Equal {
                        break;
                    }
                }
                if o == Ordering::Equal {
                    o = a.labels.cmp(&b.labels);
                }
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
    }
    Ok(Val::Vector(v))
}

/// Ascending with NaN after all numbers.
fn nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Natural order: runs of digits compare numerically.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(ca), Some(cb)) if ca.is_ascii_digit() && cb.is_ascii_digit() => {
                let la = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let lb = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, ra) = x.split_at(la);
                let (db, rb) = y.split_at(lb);
                let ta: &[u8] = {
                    let z = da.iter().take_while(|c| **c == b'0').count();
                    da.get(z..).unwrap_or(&[])
                };
                let tb: &[u8] = {
                    let z = db.iter().take_while(|c| **c == b'0').count();
                    db.get(z..).unwrap_or(&[])
                };
                let o = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if o != Ordering::Equal {
                    return o;
                }
                x = ra;
                y = rb;
            }
            (Some(ca), Some(cb)) => {
                if ca != cb {
                    return ca.cmp(cb);
                }
                x = x.get(1..).unwrap_or(&[]);
                y = y.get(1..).unwrap_or(&[]);
            }
        }
    }
}

/// Days since the epoch to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

/// A calendar field of the UTC time `secs` seconds after the epoch.
fn date_part(name: &str, secs: i64) -> f64 {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "day_of_month" => f64::from(d),
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let before: u32 = (1..m).map(|mm| days_in_month(y, mm)).sum();
            f64::from(before + d)
        }
        "days_in_month" => f64::from(days_in_month(y, m)),
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => f64::from(m),
        "year" => y as f64,
        _ => f64::NAN,
    }
}

fn eval_range_call(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let name = c.func.name;
    let (marg_idx, mut params) = match name {
        "quantile_over_time" => (1, Params::default()),
        _ => (0, Params::default()),
    };
    params.t = t;
    match name {
        "quantile_over_time" => {
            params.p0 = scalar_arg(ev, c, 0, t)?;
            if params.p0.is_nan() || !(0.0..=1.0).contains(&params.p0) {
                let pos = first_arg_pos(ev, c);
                ev.warn(
                    &format!(
                        "quantile value should be between 0 and 1, got {}",
                        super::model::fmt_g(params.p0)
                    ),
                    pos,
                );
            }
        }
        "predict_linear" => params.p0 = scalar_arg(ev, c, 1, t)?,
        "double_exponential_smoothing" | "holt_winters" => {
            params.p0 = scalar_arg(ev, c, 1, t)?;
            params.p1 = scalar_arg(ev, c, 2, t)?;
        }
        _ => {}
    }
    let arg_expr = c.args.get(marg_idx).ok_or_else(|| missing(name))?;
    let mut arg = ev.eval_range_arg(arg_expr, t)?;
    if is_subquery(arg_expr) {
        // Consecutive points of a subquery are not consecutive samples: their counter-reset
        // hints (other than gauge) say nothing about each other, so resets are detected from
        // the values, as Prometheus does.
        for s in &mut arg.series {
            for (_, h) in &mut s.hpoints {
                if h.counter_reset_hint != CounterResetHint::Gauge {
                    h.counter_reset_hint = CounterResetHint::Unknown;
                }
            }
        }
    }
    let counter_fn = matches!(name, "rate" | "increase");
    let keep = range_fns::keeps_name(name);
    let mut out = Vec::with_capacity(arg.series.len());
    let mut infos: Vec<String> = Vec::new();
    let mut notes = range_hist::Notes::default();
    for s in &arg.series {
        if counter_fn && !s.points.is_empty() {
            if let Some(n) = s.labels.metric_name() {
                if !(n.ends_with("_total")
                    || n.ends_with("_sum")
                    || n.ends_with("_count")
                    || n.ends_with("_bucket"))
                {
                    infos.push(format!(
                        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {n:?}"
                    ));
                }
            }
        }
        let v = if (arg.anchored || arg.smoothed) && !s.hpoints.is_empty() {
            extended_hist::apply(name, s, &arg, &mut notes)
        } else if arg.anchored || arg.smoothed {
            extended_apply(name, &s.points, &arg).map(range_hist::Out::Float)
        } else if !s.hpoints.is_empty() {
            range_hist::apply(name, s, &arg, params, &mut notes)?
        } else {
            range_fns::apply(name, &s.points, &arg, params)?.map(range_hist::Out::Float)
        };
        let Some(v) = v else {
            continue;
        };
        let mut labels = s.labels.clone();
        let mut drop = s.drop_name;
        if !keep {
            ev.drop_name(&mut labels, &mut drop);
        }
        let (v, h) = match v {
            range_hist::Out::Float(v) => (v, None),
            range_hist::Out::Hist(h) => (0.0, Some(Box::new(h))),
        };
        out.push(Sample {
            labels,
            v,
            h,
            drop_name: drop,
        });
    }
    let pos = expr_pos(arg_expr);
    for i in infos {
        ev.info(&i, pos);
    }
    let first_pos = first_arg_pos(ev, c);
    for w in notes.warns {
        ev.warn(&w, first_pos);
    }
    for i in notes.infos {
        ev.info(&i, first_pos);
    }
    Ok(Val::Vector(out))
}

fn is_subquery(e: &Expr) -> bool {
    match e {
        Expr::Paren(inner) => is_subquery(inner),
        Expr::Subquery(_) => true,
        _ => false,
    }
}

/// The position of a call's first argument. Literals carry no position in the syntax tree, so
/// for them it is found in the query text: after `(` and any whitespace.
fn first_arg_pos(ev: &Evaluator<'_>, c: &Call) -> PosRange {
    let Some(a) = c.args.first() else {
        return c.pos;
    };
    let p = expr_pos(a);
    if p != PosRange::default() {
        return p;
    }
    let bytes = ev.query.as_bytes();
    let mut i = c.pos.start;
    while bytes.get(i).is_some_and(|b| *b != b'(') {
        i += 1;
    }
    i += 1;
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    PosRange { start: i, end: i }
}

/// The functions that accept anchored or smoothed range selectors (see [`extended`]).
fn extended_apply(name: &str, points: &[(i64, f64)], arg: &RangeArg) -> Option<f64> {
    match name {
        "rate" => extended::extended_rate(points, arg, true, true),
        "increase" => extended::extended_rate(points, arg, true, false),
        "delta" => extended::extended_rate(points, arg, false, false),
        "changes" | "resets" => {
            let p = extended::extend_points(points, arg.start, arg.end, arg.smoothed);
            if p.is_empty() {
                return None;
            }
            let counted = p.windows(2).filter(|w| match w {
                [a, b] if name == "resets" => b.1 < a.1,
                [a, b] => b.1 != a.1 && !(a.1.is_nan() && b.1.is_nan()),
                _ => false,
            });
            Some(counted.count() as f64)
        }
        _ => None,
    }
}

/// The identifying labels `info()` joins on.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// `info(v, {selector})`: adds data labels of matching info series (default `target_info`).
fn info(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val, QueryError> {
    let base = vector_arg(ev, c, 0, t)?;
    let matchers: &[sextant_storage::Matcher] = match c.args.get(1) {
        Some(Expr::VectorSelector(vs)) => &vs.matchers,
        _ => &[],
    };
    let name_matchers = super::prefetch::info_name_matchers(c);
    let data_matchers: Vec<&sextant_storage::Matcher> =
        matchers.iter().filter(|m| m.name != METRIC_NAME).collect();
    let rt = ref_time(ev, c.args.first(), t);
    let mut infos = ev.latest_at(super::prefetch::info_key(c), rt);
    infos.retain(|(l, _)| {
        name_matchers.iter().all(|m| m.matches_labels(l))
            && data_matchers.iter().all(|m| m.matches_labels(l))
    });
    // Info series must hold floats.
    let hist_infos = ev.latest_histograms_at(super::prefetch::info_key(c), rt);
    if let Some(l) = hist_infos.iter().find(|l| {
        name_matchers.iter().all(|m| m.matches_labels(l))
            && data_matchers.iter().all(|m| m.matches_labels(l))
    }) {
        return Err(QueryError::Execution(format!(
            "this should be an info metric, with float samples: {l}"
        )));
    }
    let requires_match = data_matchers.iter().any(|m| !m.matches_empty());
    let mut out = Vec::with_capacity(base.len());
    for mut s in base {
        if name_matchers.iter().all(|m| m.matches_labels(&s.labels)) {
            out.push(s);
            continue;
        }
        let ident: Vec<(&str, String)> = IDENTIFYING
            .iter()
            .filter_map(|n| s.labels.get(n).map(|v| (*n, v.to_string())))
            .collect();
        if ident.is_empty() {
            out.push(s);
            continue;
        }
        // Latest matching info series per metric name.
        let mut chosen: Vec<(&Labels, i64)> = Vec::new();
        for (l, ts) in &infos {
            if !ident.iter().all(|(n, v)| l.get(n) == Some(v.as_str())) {
                continue;
            }
            let name = l.metric_name();
            match chosen.iter_mut().find(|(cl, _)| cl.metric_name() == name) {
                Some(e) if e.1 < *ts => *e = (l, *ts),
                Some(_) => {}
                None => chosen.push((l, *ts)),
            }
        }
        if chosen.is_empty() {
            if !requires_match {
                out.push(s);
            }
            continue;
        }
        let mut added: Vec<(String, String)> = Vec::new();
        for (l, _) in &chosen {
            for lbl in l.iter() {
                if lbl.name == METRIC_NAME || IDENTIFYING.contains(&lbl.name.as_str()) {
                    continue;
                }
                if !data_matchers.is_empty() && !data_matchers.iter().any(|m| m.name == lbl.name) {
                    continue;
                }
                if s.labels.get(&lbl.name).is_some() {
                    continue;
                }
                match added.iter().find(|(n, _)| *n == lbl.name) {
                    Some((_, v)) if *v != lbl.value => {
                        return Err(QueryError::Execution(format!(
                            "conflicting label: {} has values {:?} and {:?} in different info series",
                            lbl.name, v, lbl.value
                        )));
                    }
                    Some(_) => {}
                    None => added.push((lbl.name.clone(), lbl.value.clone())),
                }
            }
        }
        for (n, v) in added {
            s.labels.set(&n, &v);
        }
        out.push(s);
    }
    Ok(Val::Vector(out))
}

/// The time the samples of `e` evaluated at `t` refer to: `@`/offset of the selector (or
/// subquery) its result is based on.
fn ref_time(ev: &Evaluator<'_>, e: Option<&Expr>, t: i64) -> i64 {
    match e {
        Some(Expr::VectorSelector(vs)) => ev.effective_time(vs.at, vs.offset, t),
        Some(Expr::MatrixSelector(ms)) => ev.effective_time(ms.selector.at, ms.selector.offset, t),
        Some(Expr::Subquery(sq)) => {
            let et = ev.effective_time(sq.at, sq.offset, t);
            ref_time(ev, Some(&sq.expr), et)
        }
        Some(other) => match super::prefetch::first_child(other) {
            Some(c) => ref_time(ev, Some(c), t),
            None => t,
        },
        None => t,
    }
}
