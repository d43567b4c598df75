//! Binary operators: scalar/scalar, vector/scalar and vector/vector with one-to-one,
//! many-to-one and one-to-many matching, and the set operators `and`, `or`, `unless`.

use std::collections::{HashMap, HashSet};

use sextant_storage::histogram::HistogramError;
use sextant_storage::{CounterResetHint, FloatHistogram, Labels};

use super::eval::Evaluator;
use super::model::{Sample, Val};
use crate::promql::ast::{BinaryExpr, BinaryOp, PosRange, VectorMatchCardinality, VectorMatching};
use crate::promql::value::QueryError;

pub(super) fn eval_binary(
    ev: &mut Evaluator<'_>,
    b: &BinaryExpr,
    t: i64,
) -> Result<Val, QueryError> {
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let (v, keep) = apply(b.op, l, r);
            if b.op.is_comparison() {
                // Comparisons between scalars need `bool`; the parser enforces it.
                Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
            } else {
                Ok(Val::Scalar(v))
            }
        }
        (Val::Vector(v), Val::Scalar(s)) => {
            let (out, anno) = vector_scalar(ev, b, v, s, false);
            report(ev, anno, b.pos);
            Ok(Val::Vector(out))
        }
        (Val::Scalar(s), Val::Vector(v)) => {
            let (out, anno) = vector_scalar(ev, b, v, s, true);
            report(ev, anno, b.pos);
            Ok(Val::Vector(out))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let default_matching = VectorMatching {
                card: if b.op.is_set() {
                    VectorMatchCardinality::ManyToMany
                } else {
                    VectorMatchCardinality::OneToOne
                },
                labels: Vec::new(),
                on: false,
                include: Vec::new(),
                fill: Default::default(),
            };
            let m = b.matching.as_ref().unwrap_or(&default_matching);
            match b.op {
                BinaryOp::And => Ok(Val::Vector(and(l, r, m))),
                BinaryOp::Or => Ok(Val::Vector(or(l, r, m))),
                BinaryOp::Unless => Ok(Val::Vector(unless(l, r, m))),
                _ => {
                    let (out, anno) = vector_vector(ev, b, l, r, m)?;
                    report(ev, anno, b.pos);
                    Ok(Val::Vector(out))
                }
            }
        }
        _ => Err(QueryError::Execution(format!(
            "invalid operand types for binary operator {}",
            b.op.as_str()
        ))),
    }
}

/// Applies `op` to two floats with Go semantics. Returns the value and, for comparisons,
/// whether the comparison held (the value is then the left operand).
pub(super) fn apply(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (l.atan2(r), true),
        BinaryOp::Eql => (l, l == r),
        BinaryOp::Neq => (l, l != r),
        BinaryOp::Gtr => (l, l > r),
        BinaryOp::Lss => (l, l < r),
        BinaryOp::Gte => (l, l >= r),
        BinaryOp::Lte => (l, l <= r),
        BinaryOp::TrimUpper
        | BinaryOp::TrimLower
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Unless => (f64::NAN, false),
    }
}

/// An annotation raised by one element operation; only the last one of an operation is
/// reported, as in Prometheus.
#[derive(Clone, Debug)]
pub(super) enum Anno {
    Info(String),
    Warn(String),
}

fn report(ev: &mut Evaluator<'_>, anno: Option<Anno>, pos: PosRange) {
    match anno {
        Some(Anno::Info(m)) => ev.info(&m, pos),
        Some(Anno::Warn(m)) => ev.warn(&m, pos),
        None => {}
    }
}

/// The result of an operator applied to two samples (float or histogram).
struct Elem {
    v: f64,
    h: Option<Box<FloatHistogram>>,
    /// For comparisons: whether the comparison held.
    keep: bool,
    /// An info that does not drop the result (custom buckets reconciled).
    info: Option<Anno>,
    /// A problem that drops the result (incompatible types or layouts, counter reset
    /// collisions).
    err: Option<Anno>,
}

impl Elem {
    fn float(v: f64, keep: bool) -> Elem {
        Elem {
            v,
            h: None,
            keep,
            info: None,
            err: None,
        }
    }

    fn hist(h: FloatHistogram, keep: bool) -> Elem {
        Elem {
            v: 0.0,
            h: Some(Box::new(h)),
            keep,
            info: None,
            err: None,
        }
    }

    fn incompatible(l: &str, op: BinaryOp, r: &str) -> Elem {
        let o = op.as_str();
        Elem {
            v: 0.0,
            h: None,
            keep: false,
            info: None,
            err: Some(Anno::Info(format!(
                "incompatible sample types encountered for binary operator {o:?}: {l} {o} {r}"
            ))),
        }
    }
}

/// Applies `op` to two samples, each a float or a histogram, with Prometheus' rules for
/// native histograms: `h ± h`, `h * f`, `f * h`, `h / f`, and `==`/`!=` between histograms;
/// every other combination yields nothing and an info annotation.
fn elem_op(
    op: BinaryOp,
    lv: f64,
    rv: f64,
    lh: Option<&FloatHistogram>,
    rh: Option<&FloatHistogram>,
) -> Elem {
    match (lh, rh) {
        (None, None) if matches!(op, BinaryOp::TrimUpper | BinaryOp::TrimLower) => {
            Elem::incompatible("float", op, "float")
        }
        (None, None) => {
            let (v, keep) = apply(op, lv, rv);
            Elem::float(v, keep)
        }
        (None, Some(h)) => match op {
            BinaryOp::Mul => {
                let mut r = h.clone();
                r.mul(lv);
                r.compact(0);
                Elem::hist(r, true)
            }
            _ => Elem::incompatible("float", op, "histogram"),
        },
        (Some(h), None) => match op {
            BinaryOp::TrimUpper | BinaryOp::TrimLower => {
                let mut r = h.clone();
                super::trim::trim(&mut r, rv, op == BinaryOp::TrimUpper);
                Elem::hist(r, true)
            }
            BinaryOp::Mul | BinaryOp::Div => {
                let mut r = h.clone();
                if op == BinaryOp::Mul {
                    r.mul(rv);
                } else {
                    r.div(rv);
                }
                r.compact(0);
                Elem::hist(r, true)
            }
            _ => Elem::incompatible("histogram", op, "float"),
        },
        (Some(a), Some(b)) => match op {
            BinaryOp::Add | BinaryOp::Sub => {
                let mut r = a.clone();
                let res = if op == BinaryOp::Add {
                    r.add(b)
                } else {
                    r.sub(b)
                };
                let what = if op == BinaryOp::Add {
                    "addition"
                } else {
                    "subtraction"
                };
                match res {
                    Ok(add) => {
                        if op == BinaryOp::Sub {
                            r.counter_reset_hint = CounterResetHint::Gauge;
                        }
                        r.compact(0);
                        let mut e = Elem::hist(r, true);
                        if add.custom_buckets_reconciled {
                            e.info = Some(Anno::Info(format!(
                                "mismatched custom buckets were reconciled during {what}"
                            )));
                        }
                        if add.counter_reset_collision {
                            e.err = Some(Anno::Warn(format!(
                                "conflicting counter resets during histogram {what}"
                            )));
                        }
                        e
                    }
                    Err(HistogramError::MixedSchemas) => Elem {
                        v: 0.0,
                        h: None,
                        keep: false,
                        info: None,
                        err: Some(Anno::Warn(format!(
                            "incompatible bucket layout encountered for binary operator {}",
                            op.as_str()
                        ))),
                    },
                    Err(_) => Elem {
                        v: 0.0,
                        h: None,
                        keep: false,
                        info: None,
                        err: None,
                    },
                }
            }
            BinaryOp::Eql => Elem::hist(a.clone(), a.equals(b)),
            BinaryOp::Neq => Elem::hist(a.clone(), !a.equals(b)),
            _ => Elem::incompatible("histogram", op, "histogram"),
        },
    }
}

fn drops_name(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Mod
            | BinaryOp::Pow
            | BinaryOp::Atan2
    )
}

fn vector_scalar(
    ev: &Evaluator<'_>,
    b: &BinaryExpr,
    v: Vec<Sample>,
    s: f64,
    swap: bool,
) -> (Vec<Sample>, Option<Anno>) {
    let mut out = Vec::with_capacity(v.len());
    let mut last = None;
    for mut smp in v {
        let e = if swap {
            elem_op(b.op, s, smp.v, None, smp.h.as_deref())
        } else {
            elem_op(b.op, smp.v, s, smp.h.as_deref(), None)
        };
        if let Some(err) = e.err {
            if matches!(err, Anno::Info(_)) {
                last = Some(err);
                continue;
            }
        }
        let (mut value, mut hist, mut keep) = (e.v, e.h, e.keep);
        if b.op.is_comparison() {
            // A comparison keeps the vector element's own value.
            value = smp.v;
            hist = smp.h.take();
        }
        if b.return_bool {
            value = if keep { 1.0 } else { 0.0 };
            hist = None;
            keep = true;
        }
        if !keep {
            continue;
        }
        smp.v = value;
        smp.h = hist;
        if drops_name(b.op) || b.return_bool {
            ev.drop_name(&mut smp.labels, &mut smp.drop_name);
        }
        out.push(smp);
    }
    (out, last)
}

/// The matching signature of a label set.
fn signature(labels: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        labels.keep_only(&m.labels)
    } else {
        labels.drop_names(&m.labels)
    }
}

/// Formats labels the way Go's `labels.Labels.String()` does: `{a="b", c="d"}`.
pub(super) fn labels_string(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn vector_vector(
    ev: &Evaluator<'_>,
    b: &BinaryExpr,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &VectorMatching,
) -> Result<(Vec<Sample>, Option<Anno>), QueryError> {
    let fill = m.fill;
    if (lhs.is_empty() && rhs.is_empty()) || ((lhs.is_empty() || rhs.is_empty()) && fill.is_empty())
    {
        return Ok((Vec::new(), None));
    }
    let swapped = m.card == VectorMatchCardinality::OneToMany;
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    // Signatures of the "one" side, in input order (for a stable output order).
    let mut one_sigs: HashMap<Labels, usize> = HashMap::with_capacity(one.len());
    let mut one_order: Vec<Labels> = Vec::with_capacity(one.len());
    for (i, s) in one.iter().enumerate() {
        let sig = signature(&s.labels, m);
        if let Some(&j) = one_sigs.get(&sig) {
            let side = if swapped { "left" } else { "right" };
            let dup = one
                .get(j)
                .map(|d| labels_string(&d.labels))
                .unwrap_or_default();
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                labels_string(&sig),
                side,
                dup,
                labels_string(&s.labels)
            )));
        }
        one_sigs.insert(sig.clone(), i);
        one_order.push(sig);
    }
    let mut st = MatchState {
        ev,
        b,
        m,
        swapped,
        matched: HashMap::new(),
        out: Vec::new(),
        last: None,
    };
    for ls in &many {
        let sig = signature(&ls.labels, m);
        match one_sigs.get(&sig).and_then(|&i| one.get(i)) {
            Some(rs) => st.combine(ls, rs, sig)?,
            None => {
                // `fill_right` (or `fill`) stands in for the missing "one" side.
                let Some(v) = fill.rhs else {
                    continue;
                };
                let rs = Sample::float(sig.clone(), v);
                st.combine(ls, &rs, sig)?;
            }
        }
    }
    // `fill_left` (or `fill`) stands in for the missing "many" side.
    if let Some(v) = fill.lhs {
        for sig in one_order {
            if st.matched.contains_key(&sig) {
                continue;
            }
            let Some(rs) = one_sigs.get(&sig).and_then(|&i| one.get(i)) else {
                continue;
            };
            let ls = Sample::float(sig.clone(), v);
            st.combine(&ls, rs, sig)?;
        }
    }
    Ok((st.out, st.last))
}

/// The state of one vector/vector operation: matches seen so far and the output.
struct MatchState<'a, 'e> {
    ev: &'a Evaluator<'e>,
    b: &'a BinaryExpr,
    m: &'a VectorMatching,
    swapped: bool,
    /// Result label sets per match signature (checks for duplicate matches).
    matched: HashMap<Labels, HashSet<Labels>>,
    out: Vec<Sample>,
    /// The last annotation raised (Prometheus reports only that one).
    last: Option<Anno>,
}

impl MatchState<'_, '_> {
    /// Applies the operator to a "many" sample `ls` and its match `rs` from the "one" side.
    fn combine(&mut self, ls: &Sample, rs: &Sample, sig: Labels) -> Result<(), QueryError> {
        let (b, m) = (self.b, self.m);
        let e = if self.swapped {
            elem_op(b.op, rs.v, ls.v, rs.h.as_deref(), ls.h.as_deref())
        } else {
            elem_op(b.op, ls.v, rs.v, ls.h.as_deref(), rs.h.as_deref())
        };
        if let Some(err) = e.err {
            // The result is dropped, and the match is not recorded.
            self.last = Some(err);
            return Ok(());
        }
        if let Some(info) = e.info {
            self.last = Some(info);
        }
        let (mut value, mut hist, keep) = (e.v, e.h, e.keep);
        let mut drop = ls.drop_name;
        let mut labels = result_labels(&ls.labels, &rs.labels, m);
        if drops_name(b.op) || b.return_bool {
            self.ev.drop_name(&mut labels, &mut drop);
        }
        if m.card == VectorMatchCardinality::OneToOne {
            if self.matched.contains_key(&sig) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            self.matched.insert(sig, HashSet::new());
        } else {
            let set = self.matched.entry(sig).or_default();
            if !set.insert(labels.clone()) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
        }
        if b.return_bool {
            value = if keep { 1.0 } else { 0.0 };
            hist = None;
        } else if !keep {
            return Ok(());
        }
        self.out.push(Sample {
            labels,
            v: value,
            h: hist,
            drop_name: drop,
        });
        Ok(())
    }
}

/// The labels of a vector/vector result: from the "many" side, reduced for one-to-one
/// matching, plus `group_x` include labels copied from the "one" side.
fn result_labels(many: &Labels, one: &Labels, m: &VectorMatching) -> Labels {
    let mut l = many.clone();
    if m.card == VectorMatchCardinality::OneToOne {
        if m.on {
            l = l.keep_only(&m.labels);
        } else {
            for n in &m.labels {
                l.remove(n);
            }
        }
    }
    for n in &m.include {
        match one.get(n) {
            Some(v) => l.set(n, v),
            None => l.remove(n),
        }
    }
    l
}

fn set_sigs(v: &[Sample], m: &VectorMatching) -> HashSet<Labels> {
    v.iter().map(|s| signature(&s.labels, m)).collect()
}

fn and(l: Vec<Sample>, r: Vec<Sample>, m: &VectorMatching) -> Vec<Sample> {
    if l.is_empty() || r.is_empty() {
        return Vec::new();
    }
    let sigs = set_sigs(&r, m);
    l.into_iter()
        .filter(|s| sigs.contains(&signature(&s.labels, m)))
        .collect()
}

fn or(mut l: Vec<Sample>, r: Vec<Sample>, m: &VectorMatching) -> Vec<Sample> {
    if l.is_empty() {
        return r;
    }
    let sigs = set_sigs(&l, m);
    l.extend(
        r.into_iter()
            .filter(|s| !sigs.contains(&signature(&s.labels, m))),
    );
    l
}

fn unless(l: Vec<Sample>, r: Vec<Sample>, m: &VectorMatching) -> Vec<Sample> {
    if l.is_empty() || r.is_empty() {
        return l;
    }
    let sigs = set_sigs(&r, m);
    l.into_iter()
        .filter(|s| !sigs.contains(&signature(&s.labels, m)))
        .collect()
}
