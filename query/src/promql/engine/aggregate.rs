//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, `limit_ratio`, …) with
//! `by`/`without` grouping.

use std::collections::HashMap;

use sextant_storage::labels::is_valid_label_name;
use sextant_storage::Labels;

use super::eval::{expr_pos, Evaluator};
use super::model::{fmt_g, Sample, Val};
use super::range_fns::{kahan_inc, quantile};
use crate::promql::ast::{AggregateExpr, AggregateOp};
use crate::promql::value::QueryError;

/// Running state of one group.
struct Group {
    labels: Labels,
    drop_name: bool,
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental: bool,
    values: Vec<Sample>,
}

fn group_labels(a: &AggregateExpr, l: &Labels) -> Labels {
    if a.without {
        l.drop_names(&a.grouping)
    } else {
        l.keep_only(&a.grouping)
    }
}

pub(super) fn eval_aggregate(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    t: i64,
) -> Result<Val, QueryError> {
    let mut param_num = None;
    let mut param_str = None;
    if let Some(p) = &a.param {
        match ev.eval(p, t)? {
            Val::Scalar(v) => param_num = Some(v),
            Val::Str(s) => param_str = Some(s),
            _ => {
                return Err(QueryError::Execution(
                    "invalid aggregation parameter".into(),
                ))
            }
        }
    }
    let input = ev.eval_vector(&a.expr, t)?;
    let ppos = a.param.as_deref().map(expr_pos).unwrap_or(a.pos);
    match a.op {
        AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Limitk => {
            let k = param_num.unwrap_or(f64::NAN);
            if k.is_nan() {
                return Err(QueryError::Execution("Parameter value is NaN".into()));
            }
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} overflows int64",
                    fmt_g(k)
                )));
            }
            let k = k as i64;
            if k < 1 {
                return Ok(Val::Vector(Vec::new()));
            }
            return Ok(Val::Vector(select_k(a, input, k as usize)));
        }
        AggregateOp::LimitRatio => {
            let mut r = param_num.unwrap_or(f64::NAN);
            if r.is_nan() {
                return Err(QueryError::Execution("Ratio value is NaN".into()));
            }
            if !(-1.0..=1.0).contains(&r) {
                let capped = r.clamp(-1.0, 1.0);
                ev.warn(
                    &format!(
                        "ratio value should be between -1 and 1, got {}, capping to {}",
                        fmt_g(r),
                        fmt_g(capped)
                    ),
                    ppos,
                );
                r = capped;
            }
            return Ok(Val::Vector(
                input
                    .into_iter()
                    .filter(|s| ratio_keep(&s.labels, r))
                    .collect(),
            ));
        }
        AggregateOp::CountValues => {
            let name = param_str.unwrap_or_default();
            if !is_valid_label_name(&name) {
                return Err(QueryError::Execution(format!(
                    "invalid label name {name:?}"
                )));
            }
            return Ok(Val::Vector(count_values(a, input, &name)));
        }
        AggregateOp::Quantile => {
            let q = param_num.unwrap_or(f64::NAN);
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                ev.warn(
                    &format!("quantile value should be between 0 and 1, got {}", fmt_g(q)),
                    ppos,
                );
            }
        }
        _ => {}
    }

    let mut order: Vec<Group> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let gl = group_labels(a, &s.labels);
        let gi = match index.get(&gl) {
            Some(&i) => i,
            None => {
                index.insert(gl.clone(), order.len());
                order.push(Group {
                    labels: gl,
                    drop_name: s.drop_name,
                    count: 1.0,
                    value: s.v,
                    kahan: 0.0,
                    mean: s.v,
                    incremental: false,
                    values: Vec::new(),
                });
                let Some(g) = order.last_mut() else { continue };
                match a.op {
                    AggregateOp::Stddev | AggregateOp::Stdvar => {
                        g.value = if s.v.is_finite() { 0.0 } else { f64::NAN };
                    }
                    AggregateOp::Quantile => g.values.push(s),
                    _ => {}
                }
                continue;
            }
        };
        let Some(g) = order.get_mut(gi) else { continue };
        g.drop_name |= s.drop_name;
        match a.op {
            AggregateOp::Sum => {
                (g.value, g.kahan) = kahan_inc(s.v, g.value, g.kahan);
            }
            AggregateOp::Avg => {
                g.count += 1.0;
                if !g.incremental {
                    let (nv, nc) = kahan_inc(s.v, g.value, g.kahan);
                    if !nv.is_infinite() {
                        g.value = nv;
                        g.kahan = nc;
                        continue;
                    }
                    g.incremental = true;
                    g.mean = g.value / (g.count - 1.0);
                    g.kahan /= g.count - 1.0;
                }
                let q = (g.count - 1.0) / g.count;
                (g.mean, g.kahan) = kahan_inc(s.v / g.count, q * g.mean, q * g.kahan);
            }
            AggregateOp::Count | AggregateOp::Group => g.count += 1.0,
            AggregateOp::Min if g.value > s.v || g.value.is_nan() => g.value = s.v,
            AggregateOp::Max if g.value < s.v || g.value.is_nan() => g.value = s.v,
            AggregateOp::Stddev | AggregateOp::Stdvar => {
                g.count += 1.0;
                let delta = s.v - g.mean;
                g.mean += delta / g.count;
                g.value += delta * (s.v - g.mean);
            }
            AggregateOp::Quantile => g.values.push(s),
            _ => {}
        }
    }

    let mut out = Vec::with_capacity(order.len());
    for g in order {
        let v = match a.op {
            AggregateOp::Sum => {
                if g.value.is_infinite() {
                    g.value
                } else {
                    g.value + g.kahan
                }
            }
            AggregateOp::Avg => {
                if g.incremental {
                    g.mean + g.kahan
                } else {
                    g.value / g.count + g.kahan / g.count
                }
            }
            AggregateOp::Count => g.count,
            AggregateOp::Group => 1.0,
            AggregateOp::Min | AggregateOp::Max => g.value,
            AggregateOp::Stdvar => g.value / g.count,
            AggregateOp::Stddev => (g.value / g.count).sqrt(),
            AggregateOp::Quantile => {
                let vals: Vec<f64> = g.values.iter().map(|s| s.v).collect();
                quantile(param_num.unwrap_or(f64::NAN), vals)
            }
            _ => continue,
        };
        out.push(Sample {
            labels: g.labels,
            v,
            drop_name: g.drop_name,
        });
    }
    Ok(Val::Vector(out))
}

/// topk/bottomk/limitk: the selected samples keep their labels.
fn select_k(a: &AggregateExpr, input: Vec<Sample>, k: usize) -> Vec<Sample> {
    let mut groups: Vec<Vec<Sample>> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let gl = group_labels(a, &s.labels);
        let i = *index.entry(gl).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        if let Some(g) = groups.get_mut(i) {
            g.push(s);
        }
    }
    let mut out = Vec::new();
    for mut g in groups {
        match a.op {
            AggregateOp::Topk => {
                // Descending, NaN last.
                g.sort_by(|x, y| cmp_nan_last(y.v, x.v, true));
            }
            AggregateOp::Bottomk => {
                g.sort_by(|x, y| cmp_nan_last(x.v, y.v, false));
            }
            _ => {}
        }
        g.truncate(k);
        out.extend(g);
    }
    out
}

/// Orders `a` before `b` when `a < b`, with NaN always after numbers. With `rev` the
/// arguments are already swapped by the caller, so NaN handling is mirrored.
fn cmp_nan_last(a: f64, b: f64, rev: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if rev {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if rev {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn ratio_keep(l: &Labels, r: f64) -> bool {
    let offset = (l.hash64() as f64) / (u64::MAX as f64);
    (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(super) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn count_values(a: &AggregateExpr, input: Vec<Sample>, name: &str) -> Vec<Sample> {
    let mut order: Vec<(Labels, f64)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let mut gl = group_labels(a, &s.labels);
        gl.set(name, &format_value(s.v));
        match index.get(&gl) {
            Some(&i) => {
                if let Some(e) = order.get_mut(i) {
                    e.1 += 1.0;
                }
            }
            None => {
                index.insert(gl.clone(), order.len());
                order.push((gl, 1.0));
            }
        }
    }
    order
        .into_iter()
        .map(|(labels, v)| Sample {
            labels,
            v,
            drop_name: false,
        })
        .collect()
}
