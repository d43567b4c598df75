//! Aggregations over all steps: each input series' group is found once, then its column is
//! accumulated into the group's columns in input order (the order the reference evaluator
//! accumulates in, so floating-point results are identical).

use std::cmp::Ordering;
use std::collections::HashMap;

use sextant_storage::Labels;

use super::{eval_scalar, stream, Col, Ctx, SCol, Stop, R};
use crate::promql::ast::{AggregateExpr, AggregateOp, Call, Expr};
use crate::promql::engine::eval::expr_pos;
use crate::promql::engine::histogram::{bucket_quantile, parse_go_float};
use crate::promql::engine::model::fmt_g;
use crate::promql::engine::range_fns::kahan_inc;

/// Running state of one group at every step.
struct GroupCols {
    labels: Labels,
    seen: Vec<bool>,
    value: Vec<f64>,
    kahan: Vec<f64>,
    count: Vec<f64>,
    mean: Vec<f64>,
    incremental: Vec<bool>,
}

impl GroupCols {
    fn new(labels: Labels, n: usize) -> GroupCols {
        GroupCols {
            labels,
            seen: vec![false; n],
            value: vec![0.0; n],
            kahan: vec![0.0; n],
            count: vec![0.0; n],
            mean: vec![0.0; n],
            incremental: vec![false; n],
        }
    }

    /// Adds a sample at step `i`, as `aggregate::eval_aggregate` does for floats.
    fn add(&mut self, op: AggregateOp, i: usize, v: f64) {
        if !self.seen[i] {
            self.seen[i] = true;
            self.count[i] = 1.0;
            self.value[i] = if op == AggregateOp::Group { 1.0 } else { v };
            self.mean[i] = v;
            return;
        }
        match op {
            AggregateOp::Sum => {
                (self.value[i], self.kahan[i]) = kahan_inc(v, self.value[i], self.kahan[i]);
            }
            AggregateOp::Avg => {
                self.count[i] += 1.0;
                let count = self.count[i];
                if !self.incremental[i] {
                    let (nv, nc) = kahan_inc(v, self.value[i], self.kahan[i]);
                    if !nv.is_infinite() {
                        self.value[i] = nv;
                        self.kahan[i] = nc;
                        return;
                    }
                    self.incremental[i] = true;
                    self.mean[i] = self.value[i] / (count - 1.0);
                    self.kahan[i] /= count - 1.0;
                }
                let q = (count - 1.0) / count;
                (self.mean[i], self.kahan[i]) =
                    kahan_inc(v / count, q * self.mean[i], q * self.kahan[i]);
            }
            AggregateOp::Count => self.count[i] += 1.0,
            AggregateOp::Min if self.value[i] > v || self.value[i].is_nan() => self.value[i] = v,
            AggregateOp::Max if self.value[i] < v || self.value[i].is_nan() => self.value[i] = v,
            _ => {}
        }
    }

    fn result(&self, op: AggregateOp, i: usize) -> f64 {
        match op {
            AggregateOp::Sum => {
                if self.value[i].is_infinite() {
                    self.value[i]
                } else {
                    self.value[i] + self.kahan[i]
                }
            }
            AggregateOp::Avg => {
                if self.incremental[i] {
                    self.mean[i] + self.kahan[i]
                } else {
                    self.value[i] / self.count[i] + self.kahan[i] / self.count[i]
                }
            }
            AggregateOp::Count => self.count[i],
            AggregateOp::Group => 1.0,
            _ => self.value[i],
        }
    }
}

fn group_labels(a: &AggregateExpr, l: &Labels) -> Labels {
    if a.without {
        l.drop_names(&a.grouping)
    } else {
        l.keep_only(&a.grouping)
    }
}

/// `e` without enclosing parentheses.
fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(inner) => unparen(inner),
        other => other,
    }
}

/// Records the delayed-name-removal flag of an input series: all inputs must agree (then
/// every group's flag is that one), otherwise the reference evaluator runs.
fn same_flag(flag: &mut Option<bool>, f: bool) -> R<()> {
    match flag {
        Some(x) if *x != f => Err(Stop::Fallback),
        _ => {
            *flag = Some(f);
            Ok(())
        }
    }
}

pub(super) fn aggregate(cx: &mut Ctx<'_>, a: &AggregateExpr) -> R<Vec<SCol>> {
    if matches!(a.op, AggregateOp::Topk | AggregateOp::Bottomk) {
        return select_k(cx, a);
    }
    let n = cx.n();
    let op = a.op;
    let mut groups: Vec<GroupCols> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut flag = None;
    // `sum`/`count`/… of a plain selector into one group never read the series' labels: the
    // selector can leave them uncopied (its series are distinct, so nothing collides).
    let unread = !a.without
        && a.grouping.is_empty()
        && matches!(
            op,
            AggregateOp::Sum
                | AggregateOp::Avg
                | AggregateOp::Count
                | AggregateOp::Min
                | AggregateOp::Max
                | AggregateOp::Group
        )
        && matches!(unparen(&a.expr), Expr::VectorSelector(_));
    let outer = std::mem::replace(&mut cx.env.labels_unread, unread);
    let streamed = stream(cx, &a.expr, &mut |_, s| {
        same_flag(&mut flag, s.drop)?;
        let gl = group_labels(a, &s.labels);
        let gi = match index.get(&gl) {
            Some(&i) => i,
            None => {
                index.insert(gl.clone(), groups.len());
                groups.push(GroupCols::new(gl, n));
                groups.len() - 1
            }
        };
        let Some(g) = groups.get_mut(gi) else {
            return Ok(());
        };
        for (i, (&v, &p)) in s.col.v.iter().zip(&s.col.p).enumerate() {
            if p {
                g.add(op, i, v);
            }
        }
        Ok(())
    });
    cx.env.labels_unread = outer;
    streamed?;
    let drop = flag.unwrap_or(false);
    let out = groups
        .into_iter()
        .map(|g| {
            let mut col = Col::empty(n);
            for i in 0..n {
                if g.seen[i] {
                    col.v[i] = g.result(op, i);
                    col.p[i] = true;
                }
            }
            SCol {
                labels: g.labels,
                drop,
                col,
            }
        })
        .collect();
    Ok(out)
}

/// Orders as `aggregate::cmp_nan_last`: `a` before `b` when `a < b`, NaN after numbers; with
/// `rev` the arguments are swapped by the caller and NaN handling is mirrored.
fn cmp_nan_last(a: f64, b: f64, rev: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) if rev => Ordering::Less,
        (true, false) => Ordering::Greater,
        (false, true) if rev => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `topk`/`bottomk`: per step and group, the `k` largest (smallest) samples keep their labels.
fn select_k(cx: &mut Ctx<'_>, a: &AggregateExpr) -> R<Vec<SCol>> {
    let Some(param) = a.param.as_deref() else {
        return Err(Stop::Fallback);
    };
    let ks = eval_scalar(cx, param)?;
    let mut input: Vec<SCol> = Vec::new();
    stream(cx, &a.expr, &mut |_, s| {
        if s.col.any() {
            input.push(s);
        }
        Ok(())
    })?;
    let n = cx.n();
    let mut ksteps = Vec::with_capacity(n);
    for &k in &ks {
        // NaN and overflowing parameters are errors: the reference reports them.
        if k.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
            return Err(Stop::Fallback);
        }
        let k = k as i64;
        ksteps.push(if k < 1 { 0 } else { k as usize });
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (si, s) in input.iter().enumerate() {
        let gl = group_labels(a, &s.labels);
        let gi = *index.entry(gl).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        if let Some(g) = groups.get_mut(gi) {
            g.push(si);
        }
    }
    let mut keep: Vec<Vec<bool>> = vec![vec![false; n]; input.len()];
    let mut cand: Vec<(f64, usize)> = Vec::new();
    for g in &groups {
        cx.check_deadline()?;
        for (i, &k) in ksteps.iter().enumerate() {
            if k == 0 {
                continue;
            }
            cand.clear();
            cand.extend(
                g.iter()
                    .filter(|&&si| input[si].col.p[i])
                    .map(|&si| (input[si].col.v[i], si)),
            );
            // The first `k` of a stable sort by value: ties keep input order, so the order
            // is total with the input position as the last key, and selecting suffices.
            let top = a.op == AggregateOp::Topk;
            let order = |x: &(f64, usize), y: &(f64, usize)| {
                let by_value = if top {
                    cmp_nan_last(y.0, x.0, true)
                } else {
                    cmp_nan_last(x.0, y.0, false)
                };
                by_value.then(x.1.cmp(&y.1))
            };
            if k < cand.len() {
                cand.select_nth_unstable_by(k - 1, order);
                cand.truncate(k);
            }
            for &(_, si) in &cand {
                keep[si][i] = true;
            }
        }
    }
    Ok(input
        .into_iter()
        .zip(keep)
        .map(|(mut s, k)| {
            for (p, k) in s.col.p.iter_mut().zip(k) {
                *p &= k;
            }
            s
        })
        .collect())
}

/// `histogram_quantile(q, buckets)` over classic `le` buckets.
pub(super) fn histogram_quantile(cx: &mut Ctx<'_>, c: &Call) -> R<Vec<SCol>> {
    let [qe, ve] = c.args.as_slice() else {
        return Err(Stop::Fallback);
    };
    let qs = eval_scalar(cx, qe)?;
    let vec_pos = expr_pos(ve);
    let q_pos = expr_pos(qe);
    let n = cx.n();
    struct Group {
        labels: Labels,
        drop: bool,
        name: String,
        members: Vec<(f64, SCol)>,
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    stream(cx, ve, &mut |cx, s| {
        if !s.col.any() {
            return Ok(());
        }
        // A missing or malformed `le` raises a warning: leave that to the reference.
        let Some(upper) = s.labels.get("le").and_then(parse_go_float) else {
            return Err(Stop::Fallback);
        };
        let mut key = s.labels.clone();
        key.remove("le");
        let gi = match index.get(&key) {
            Some(&i) => i,
            None => {
                let name = key.metric_name().unwrap_or("").to_string();
                let mut labels = key.clone();
                let mut drop = s.drop;
                cx.env.drop_name(&mut labels, &mut drop);
                index.insert(key, groups.len());
                groups.push(Group {
                    labels,
                    drop,
                    name,
                    members: Vec::new(),
                });
                groups.len() - 1
            }
        };
        if let Some(g) = groups.get_mut(gi) {
            g.members.push((upper, s));
        }
        Ok(())
    })?;
    if qs.iter().any(|q| q.is_nan() || !(0.0..=1.0).contains(q)) {
        // The reference warns once per distinct value, in step order.
        for q in &qs {
            if q.is_nan() || !(0.0..=1.0).contains(q) {
                cx.annos.warn(
                    cx.query,
                    &format!(
                        "quantile value should be between 0 and 1, got {}",
                        fmt_g(*q)
                    ),
                    q_pos,
                );
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    // Monotonicity infos: (step, group) of the first fix per group, reported in step order.
    let mut forced_at: Vec<(usize, usize)> = Vec::new();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        cx.check_deadline()?;
        let mut col = Col::empty(n);
        let mut first_forced = None;
        for (i, &q) in qs.iter().enumerate() {
            buckets.clear();
            buckets.extend(
                g.members
                    .iter()
                    .filter(|(_, s)| s.col.p[i])
                    .map(|(u, s)| (*u, s.col.v[i])),
            );
            if buckets.is_empty() {
                continue;
            }
            let (v, forced) = bucket_quantile(q, std::mem::take(&mut buckets));
            if forced && first_forced.is_none() {
                first_forced = Some(i);
            }
            col.v[i] = v;
            col.p[i] = true;
        }
        if let Some(i) = first_forced {
            forced_at.push((i, gi));
        }
        out.push(SCol {
            labels: g.labels.clone(),
            drop: g.drop,
            col,
        });
    }
    let mut names: Vec<&str> = forced_at
        .iter()
        .filter_map(|&(_, gi)| groups.get(gi).map(|g| g.name.as_str()))
        .collect();
    names.dedup();
    if names.len() > 1 {
        // Infos for several metric names: their order in the reference depends on the
        // order groups appear at each step; don't guess.
        return Err(Stop::Fallback);
    }
    forced_at.truncate(1);
    for (_, gi) in forced_at {
        if let Some(g) = groups.get(gi) {
            cx.annos.info(
                cx.query,
                &format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                    g.name
                ),
                vec_pos,
            );
        }
    }
    Ok(out)
}
