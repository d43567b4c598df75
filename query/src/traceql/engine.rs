//! Compiles a parsed query into span predicates and a store pushdown, and evaluates it on whole
//! traces.
//!
//! Span-level comparisons compile to [`SpanFilter`] conditions and are evaluated with
//! [`SpanFilter::matches`], so the exact evaluation and the store's pruning share one
//! semantics. Trace-level intrinsics (`traceDuration`, `rootName`, `rootServiceName`) are
//! evaluated with the same conditions against a synthetic span standing for the trace.

use std::collections::{BTreeMap, HashMap, HashSet};

use sextant_storage::traces::{
    AttrScope, AttrValue, FilterOp, FilterValue, Resource, Span, SpanField, SpanFilter, SpanId,
    Trace, TraceFilter, TraceId, TraceSearch, TraceSource,
};
use sextant_storage::StorageError;

use super::ast::*;
use super::TraceqlError;

/// What Tempo reports as `rootServiceName` for a trace whose root span is missing.
pub const ROOT_SPAN_NOT_YET_RECEIVED: &str = "<root span not yet received>";

/// A per-span boolean.
#[derive(Clone, Debug)]
enum Pred {
    /// A span-level condition (pushdown-able).
    Span(SpanFilter),
    /// A condition on the trace's synthetic root (trace-level intrinsics).
    Trace(SpanFilter),
    /// The field is absent (`= nil`).
    Missing(SpanField),
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Const(bool),
}

/// A compiled spanset expression.
#[derive(Clone, Debug)]
enum Node {
    Filter(Pred),
    Pipeline(Box<Node>, Vec<CStage>),
    Binary(SpansetOp, Box<Node>, Box<Node>),
}

#[derive(Clone, Debug)]
enum CStage {
    Filter(Pred),
    Aggregate {
        func: AggFunc,
        arg: Option<Attribute>,
        op: CmpOp,
        value: f64,
    },
    By(Attribute),
    Coalesce,
}

/// A query ready to run: its evaluation plan, the store pushdown, and the attributes reported
/// on returned spans.
#[derive(Clone, Debug)]
pub struct Compiled {
    root: Node,
    /// A necessary condition for a trace to match (see [`TraceFilter`]).
    pub pushdown: TraceFilter,
    /// Attributes reported on each returned span (those the query tests, then `select`ed ones).
    pub report: Vec<Attribute>,
    /// Every span attribute key the evaluation reads (span- or unscoped attributes tested,
    /// reported, aggregated or grouped by): the store may leave other span attributes out.
    pub span_keys: Vec<String>,
}

/// Compiles `query` (see the module docs).
pub fn compile(query: &Pipeline) -> Result<Compiled, TraceqlError> {
    let mut report = Vec::new();
    let root = compile_pipeline(query, &mut report)?;
    let pushdown = node_pushdown(&root);
    let mut read = report.clone();
    node_attributes(&root, &mut read);
    let mut span_keys: Vec<String> = read
        .into_iter()
        .filter_map(|a| match a {
            Attribute::Scoped {
                scope: AttrScope::Span | AttrScope::Any,
                key,
            } => Some(key),
            _ => None,
        })
        .collect();
    span_keys.sort();
    span_keys.dedup();
    Ok(Compiled {
        root,
        pushdown,
        report,
        span_keys,
    })
}

/// Attributes read by aggregates and `by()` stages (the others are in the report list).
fn node_attributes(n: &Node, out: &mut Vec<Attribute>) {
    match n {
        Node::Filter(_) => {}
        Node::Pipeline(src, stages) => {
            node_attributes(src, out);
            for st in stages {
                match st {
                    CStage::Aggregate { arg: Some(a), .. } | CStage::By(a) => out.push(a.clone()),
                    _ => {}
                }
            }
        }
        Node::Binary(_, l, r) => {
            node_attributes(l, out);
            node_attributes(r, out);
        }
    }
}

/// The span-level condition of a query made of one span filter (`{ … }`), for narrowing tag
/// value lookups. `None` when the query is anything else or tests trace-level fields.
pub fn span_predicate(query: &Pipeline) -> Result<Option<SpanFilter>, TraceqlError> {
    let mut report = Vec::new();
    match compile_pipeline(query, &mut report)? {
        Node::Filter(p) => Ok(pred_pushdown(&p)),
        _ => Ok(None),
    }
}

fn compile_pipeline(p: &Pipeline, report: &mut Vec<Attribute>) -> Result<Node, TraceqlError> {
    let source = compile_spanset(&p.source, report)?;
    if p.stages.is_empty() {
        return Ok(source);
    }
    let mut stages = Vec::new();
    for st in &p.stages {
        stages.push(match st {
            Stage::Filter(f) => CStage::Filter(compile_field(f, report)?),
            Stage::Aggregate {
                func,
                arg,
                op,
                value,
            } => {
                let arg = match arg {
                    None => None,
                    Some(FieldExpr::Attr(a)) => Some(a.clone()),
                    Some(_) => {
                        return Err(TraceqlError::Unsupported(
                            "aggregates take one attribute or intrinsic".into(),
                        ))
                    }
                };
                let value = match value {
                    Static::Int(i) => *i as f64,
                    Static::Float(f) => *f,
                    Static::Duration(d) => *d as f64,
                    other => {
                        return Err(TraceqlError::Unsupported(format!(
                            "aggregates compare with numbers or durations, not {other:?}"
                        )))
                    }
                };
                if matches!(op, CmpOp::Regex | CmpOp::NotRegex) {
                    return Err(TraceqlError::Unsupported(
                        "regex operators do not apply to aggregates".into(),
                    ));
                }
                CStage::Aggregate {
                    func: *func,
                    arg,
                    op: *op,
                    value,
                }
            }
            Stage::Select(attrs) => {
                for a in attrs {
                    push_report(report, a);
                }
                continue;
            }
            Stage::By(FieldExpr::Attr(a)) => CStage::By(a.clone()),
            Stage::By(_) => {
                return Err(TraceqlError::Unsupported(
                    "by() takes one attribute or intrinsic".into(),
                ))
            }
            Stage::Coalesce => CStage::Coalesce,
        });
    }
    Ok(Node::Pipeline(Box::new(source), stages))
}

fn compile_spanset(e: &SpansetExpr, report: &mut Vec<Attribute>) -> Result<Node, TraceqlError> {
    Ok(match e {
        SpansetExpr::Filter(f) => Node::Filter(compile_field(f, report)?),
        SpansetExpr::Pipeline(p) => compile_pipeline(p, report)?,
        SpansetExpr::Binary { op, lhs, rhs } => Node::Binary(
            *op,
            Box::new(compile_spanset(lhs, report)?),
            Box::new(compile_spanset(rhs, report)?),
        ),
    })
}

fn push_report(report: &mut Vec<Attribute>, a: &Attribute) {
    let wanted = match a {
        Attribute::Intrinsic(i) => !i.is_trace_level() && !matches!(i, Intrinsic::Duration),
        Attribute::Scoped { .. } => true,
    };
    if wanted && !report.contains(a) {
        report.push(a.clone());
    }
}

/// Where a (non trace-level) attribute is read from.
fn span_field(a: &Attribute) -> SpanField {
    match a {
        Attribute::Intrinsic(Intrinsic::Name | Intrinsic::RootName) => SpanField::Name,
        Attribute::Intrinsic(Intrinsic::Status) => SpanField::Status,
        Attribute::Intrinsic(Intrinsic::StatusMessage) => SpanField::StatusMessage,
        Attribute::Intrinsic(Intrinsic::Kind) => SpanField::Kind,
        Attribute::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => SpanField::Duration,
        Attribute::Intrinsic(Intrinsic::RootServiceName) => SpanField::Attr {
            scope: AttrScope::Resource,
            key: "service.name".into(),
        },
        Attribute::Scoped { scope, key } => SpanField::Attr {
            scope: *scope,
            key: key.clone(),
        },
    }
}

fn is_trace_level(a: &Attribute) -> bool {
    matches!(a, Attribute::Intrinsic(i) if i.is_trace_level())
}

fn filter_op(op: CmpOp) -> FilterOp {
    match op {
        CmpOp::Eq => FilterOp::Eq,
        CmpOp::Ne => FilterOp::Ne,
        CmpOp::Lt => FilterOp::Lt,
        CmpOp::Le => FilterOp::Le,
        CmpOp::Gt => FilterOp::Gt,
        CmpOp::Ge => FilterOp::Ge,
        CmpOp::Regex => FilterOp::Regex,
        CmpOp::NotRegex => FilterOp::NotRegex,
    }
}

/// A fully anchored regex, as Tempo's matchers are.
fn anchored(pattern: &str) -> Result<regex::Regex, TraceqlError> {
    regex::Regex::new(&format!("^(?s:{pattern})$"))
        .map_err(|e| TraceqlError::Unsupported(format!("invalid regex {pattern:?}: {e}")))
}

fn static_truth(s: &Static) -> bool {
    matches!(s, Static::Bool(true))
}

fn compile_field(e: &FieldExpr, report: &mut Vec<Attribute>) -> Result<Pred, TraceqlError> {
    Ok(match e {
        FieldExpr::Static(s) => Pred::Const(static_truth(s)),
        FieldExpr::Attr(a) => {
            push_report(report, a);
            // A bare attribute is true when it is the boolean `true`.
            wrap(
                a,
                SpanFilter::Cond {
                    field: span_field(a),
                    op: FilterOp::Eq,
                    value: FilterValue::Bool(true),
                },
            )
        }
        FieldExpr::And(..) => Pred::And(
            chain(e, true)
                .into_iter()
                .map(|x| compile_field(x, report))
                .collect::<Result<_, _>>()?,
        ),
        FieldExpr::Or(..) => Pred::Or(
            chain(e, false)
                .into_iter()
                .map(|x| compile_field(x, report))
                .collect::<Result<_, _>>()?,
        ),
        FieldExpr::Not(x) => Pred::Not(Box::new(compile_field(x, report)?)),
        FieldExpr::Cmp { op, lhs, rhs } => {
            let (attr, op, value) = match (&**lhs, &**rhs) {
                (FieldExpr::Attr(a), FieldExpr::Static(s)) => (a, *op, s),
                (FieldExpr::Static(s), FieldExpr::Attr(a)) => {
                    if matches!(op, CmpOp::Regex | CmpOp::NotRegex) {
                        return Err(TraceqlError::Unsupported(
                            "the regex must be on the right of =~ / !~".into(),
                        ));
                    }
                    (a, op.flipped(), s)
                }
                (FieldExpr::Static(a), FieldExpr::Static(b)) => {
                    return Ok(Pred::Const(static_cmp(a, *op, b)))
                }
                _ => {
                    return Err(TraceqlError::Unsupported(format!(
                        "unsupported comparison {:?} {} {:?}: compare an attribute with a value",
                        lhs,
                        op.as_str(),
                        rhs
                    )))
                }
            };
            push_report(report, attr);
            let field = span_field(attr);
            if *value == Static::Nil {
                return Ok(match op {
                    CmpOp::Eq => {
                        if is_trace_level(attr) {
                            Pred::Const(false)
                        } else {
                            Pred::Missing(field)
                        }
                    }
                    CmpOp::Ne => wrap(
                        attr,
                        SpanFilter::Cond {
                            field,
                            op: FilterOp::Exists,
                            value: FilterValue::Bool(true),
                        },
                    ),
                    _ => Pred::Const(false),
                });
            }
            let fv = match (op, value) {
                (CmpOp::Regex | CmpOp::NotRegex, Static::Str(s)) => {
                    FilterValue::Regex(anchored(s)?)
                }
                (CmpOp::Regex | CmpOp::NotRegex, _) => {
                    return Err(TraceqlError::Unsupported(
                        "regex operators need a string on the right".into(),
                    ))
                }
                (_, Static::Str(s)) => FilterValue::Str(s.clone()),
                (_, Static::Int(i)) => FilterValue::Int(*i),
                (_, Static::Float(f)) => FilterValue::Double(*f),
                (_, Static::Duration(d)) => FilterValue::Duration(*d),
                (_, Static::Bool(b)) => FilterValue::Bool(*b),
                (_, Static::Status(s)) => FilterValue::Status(*s),
                (_, Static::Kind(k)) => FilterValue::Kind(*k),
                (_, Static::Nil) => return Ok(Pred::Const(false)),
            };
            wrap(
                attr,
                SpanFilter::Cond {
                    field,
                    op: filter_op(op),
                    value: fv,
                },
            )
        }
    })
}

/// The operands of a chain of `&&` (`and`) or `||` under `e`, left to right, gathered without
/// recursion so long chains stay flat.
fn chain(e: &FieldExpr, and: bool) -> Vec<&FieldExpr> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(x) = stack.pop() {
        match (x, and) {
            (FieldExpr::And(l, r), true) | (FieldExpr::Or(l, r), false) => {
                stack.push(r);
                stack.push(l);
            }
            _ => out.push(x),
        }
    }
    out
}

fn wrap(attr: &Attribute, f: SpanFilter) -> Pred {
    if is_trace_level(attr) {
        Pred::Trace(f)
    } else {
        Pred::Span(f)
    }
}

fn static_cmp(a: &Static, op: CmpOp, b: &Static) -> bool {
    let num = |s: &Static| match s {
        Static::Int(i) => Some(*i as f64),
        Static::Float(f) => Some(*f),
        Static::Duration(d) => Some(*d as f64),
        _ => None,
    };
    let ord = match (a, b) {
        (Static::Str(x), Static::Str(y)) => Some(x.cmp(y)),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => {
                return match op {
                    CmpOp::Eq => a == b,
                    CmpOp::Ne => a != b,
                    _ => false,
                }
            }
        },
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord.is_eq(),
        CmpOp::Ne => ord.is_ne(),
        CmpOp::Lt => ord.is_lt(),
        CmpOp::Le => ord.is_le(),
        CmpOp::Gt => ord.is_gt(),
        CmpOp::Ge => ord.is_ge(),
        CmpOp::Regex | CmpOp::NotRegex => false,
    }
}

/// A span-level condition every span satisfying `p` satisfies (`None`: no useful one).
fn pred_pushdown(p: &Pred) -> Option<SpanFilter> {
    match p {
        Pred::Span(f) => Some(f.clone()),
        Pred::Trace(_) | Pred::Missing(_) | Pred::Not(_) | Pred::Const(_) => None,
        Pred::And(parts) => {
            let mut kept: Vec<SpanFilter> = parts.iter().filter_map(pred_pushdown).collect();
            match kept.len() {
                0 => None,
                1 => kept.pop(),
                _ => Some(SpanFilter::And(kept)),
            }
        }
        Pred::Or(parts) => {
            let mut all = Vec::with_capacity(parts.len());
            for part in parts {
                all.push(pred_pushdown(part)?);
            }
            Some(SpanFilter::Or(all))
        }
    }
}

/// Most pairwise conditions an `||` of spansets pushes down.
const MAX_OR_PUSHDOWN: usize = 16;

/// A [`TraceFilter`] every trace the node yields a spanset for satisfies.
fn node_pushdown(n: &Node) -> TraceFilter {
    match n {
        Node::Filter(p) => pred_pushdown(p).into_iter().collect(),
        Node::Pipeline(source, stages) => {
            let mut out = node_pushdown(source);
            for st in stages {
                if let CStage::Filter(p) = st {
                    out.extend(pred_pushdown(p));
                }
            }
            out
        }
        Node::Binary(SpansetOp::Or, l, r) => {
            let (l, r) = (node_pushdown(l), node_pushdown(r));
            // (a1 ∧ a2) ∨ (b1 ∧ b2) implies every (ai ∨ bj). Dropping conditions keeps the
            // pushdown necessary, so large products are dropped rather than built.
            if l.len() * r.len() > MAX_OR_PUSHDOWN {
                return Vec::new();
            }
            let mut out = Vec::new();
            for a in &l {
                for b in &r {
                    out.push(SpanFilter::Or(vec![a.clone(), b.clone()]));
                }
            }
            out
        }
        Node::Binary(_, l, r) => {
            let mut out = node_pushdown(l);
            out.extend(node_pushdown(r));
            out
        }
    }
}

/// A trace flattened for evaluation: spans with their resources and parent indexes, and the
/// synthetic root standing for trace-level intrinsics.
struct Flat<'a> {
    spans: Vec<(&'a Resource, &'a Span)>,
    parent: Vec<Option<usize>>,
    root: Option<usize>,
    trace_res: Resource,
    trace_span: Span,
}

impl<'a> Flat<'a> {
    fn new(trace: &'a Trace) -> Flat<'a> {
        let spans: Vec<(&Resource, &Span)> = trace
            .batches
            .iter()
            .flat_map(|b| b.spans.iter().map(move |s| (&*b.resource, s)))
            .collect();
        // The store's fast hasher: SipHash here was several percent of a search.
        let mut index: HashMap<SpanId, usize, sextant_storage::traces::FastState> =
            HashMap::with_capacity_and_hasher(spans.len(), Default::default());
        for (i, (_, s)) in spans.iter().enumerate() {
            index.insert(s.span_id, i);
        }
        let parent = spans
            .iter()
            .map(|(_, s)| s.parent_span_id.and_then(|p| index.get(&p).copied()))
            .collect();
        let root = spans
            .iter()
            .enumerate()
            .filter(|(_, (_, s))| s.parent_span_id.is_none())
            .min_by_key(|(_, (_, s))| s.start_unix_nano)
            .map(|(i, _)| i);
        let (start, end) = trace.time_range();
        let mut trace_res = Resource::default();
        let mut trace_span = Span {
            start_unix_nano: start,
            end_unix_nano: end,
            ..Span::default()
        };
        if let Some(r) = root {
            let (res, span) = spans[r];
            trace_span.name = span.name.clone();
            if let Some(svc) = res.service_name() {
                trace_res
                    .attributes
                    .push(sextant_storage::traces::Attr::new(
                        "service.name",
                        AttrValue::Str(svc.to_string()),
                    ));
            }
        }
        Flat {
            spans,
            parent,
            root,
            trace_res,
            trace_span,
        }
    }

    fn eval(&self, p: &Pred, i: usize) -> bool {
        let (res, span) = self.spans[i];
        match p {
            Pred::Span(f) => f.matches(res, span),
            Pred::Trace(f) => f.matches(&self.trace_res, &self.trace_span),
            Pred::Missing(field) => !SpanFilter::Cond {
                field: field.clone(),
                op: FilterOp::Exists,
                value: FilterValue::Bool(true),
            }
            .matches(res, span),
            Pred::And(parts) => parts.iter().all(|q| self.eval(q, i)),
            Pred::Or(parts) => parts.iter().any(|q| self.eval(q, i)),
            Pred::Not(q) => !self.eval(q, i),
            Pred::Const(b) => *b,
        }
    }

    /// The value of `a` on span `i`, as reported in results and used by aggregates and `by`.
    fn value(&self, a: &Attribute, i: usize) -> Option<AttrValue> {
        let (res, span) = self.spans[i];
        Some(match a {
            Attribute::Intrinsic(Intrinsic::Name) => AttrValue::Str(span.name.clone()),
            Attribute::Intrinsic(Intrinsic::Status) => {
                AttrValue::Str(status_name(span.status_code).into())
            }
            Attribute::Intrinsic(Intrinsic::StatusMessage) => {
                AttrValue::Str(span.status_message.clone())
            }
            Attribute::Intrinsic(Intrinsic::Kind) => AttrValue::Str(kind_name(span.kind).into()),
            Attribute::Intrinsic(Intrinsic::Duration) => {
                AttrValue::Int(span.duration_nanos() as i64)
            }
            Attribute::Intrinsic(Intrinsic::TraceDuration) => {
                AttrValue::Int(self.trace_span.duration_nanos() as i64)
            }
            Attribute::Intrinsic(Intrinsic::RootName) => {
                AttrValue::Str(self.root.map(|r| self.spans[r].1.name.clone())?)
            }
            Attribute::Intrinsic(Intrinsic::RootServiceName) => {
                AttrValue::Str(self.trace_res.service_name()?.to_string())
            }
            Attribute::Scoped { scope, key } => {
                let find = |attrs: &[sextant_storage::traces::Attr]| {
                    sextant_storage::traces::find_attr(attrs, key).cloned()
                };
                match scope {
                    AttrScope::Span => find(&span.attributes)?,
                    AttrScope::Resource => find(&res.attributes)?,
                    AttrScope::Any => find(&span.attributes).or_else(|| find(&res.attributes))?,
                }
            }
        })
    }

    /// The ancestors of span `i`, nearest first. Bounded by the span count, so a malformed
    /// trace with a parent cycle cannot loop forever.
    fn ancestors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut cur = i;
        (0..self.spans.len()).map_while(move |_| {
            let p = self.parent[cur]?;
            cur = p;
            Some(p)
        })
    }
}

/// Spans of one trace (indexes into its [`Flat`]) plus the `by()` values that formed the set.
#[derive(Clone, Debug)]
struct Set {
    spans: Vec<usize>,
    by: Vec<(String, AttrValue)>,
}

fn union(sets: &[Set]) -> Vec<usize> {
    let mut all: Vec<usize> = sets.iter().flat_map(|s| s.spans.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn single(spans: Vec<usize>) -> Vec<Set> {
    if spans.is_empty() {
        Vec::new()
    } else {
        vec![Set {
            spans,
            by: Vec::new(),
        }]
    }
}

fn eval_node(n: &Node, flat: &Flat<'_>) -> Vec<Set> {
    match n {
        Node::Filter(p) => single((0..flat.spans.len()).filter(|&i| flat.eval(p, i)).collect()),
        Node::Pipeline(source, stages) => {
            let mut sets = eval_node(source, flat);
            for st in stages {
                if sets.is_empty() {
                    break;
                }
                sets = apply_stage(st, sets, flat);
            }
            sets
        }
        Node::Binary(op, l, r) => {
            let l = union(&eval_node(l, flat));
            if l.is_empty() && *op != SpansetOp::Or {
                return Vec::new();
            }
            let r = union(&eval_node(r, flat));
            let out: Vec<usize> = match op {
                SpansetOp::And => {
                    if r.is_empty() {
                        Vec::new()
                    } else {
                        let mut all = l;
                        all.extend(r);
                        all.sort_unstable();
                        all.dedup();
                        all
                    }
                }
                SpansetOp::Or => {
                    let mut all = l;
                    all.extend(r);
                    all.sort_unstable();
                    all.dedup();
                    all
                }
                SpansetOp::Child => {
                    let lset: HashSet<usize> = l.into_iter().collect();
                    r.into_iter()
                        .filter(|&i| flat.parent[i].is_some_and(|p| lset.contains(&p)))
                        .collect()
                }
                SpansetOp::Parent => {
                    let parents: HashSet<usize> =
                        l.iter().filter_map(|&i| flat.parent[i]).collect();
                    r.into_iter().filter(|i| parents.contains(i)).collect()
                }
                SpansetOp::Descendant => {
                    let lset: HashSet<usize> = l.into_iter().collect();
                    r.into_iter()
                        .filter(|&i| flat.ancestors(i).any(|a| lset.contains(&a)))
                        .collect()
                }
                SpansetOp::Ancestor => {
                    // Every ancestor of a left-hand span, each chain walked once.
                    let mut above: HashSet<usize> = HashSet::new();
                    for &d in &l {
                        for a in flat.ancestors(d) {
                            if !above.insert(a) {
                                break;
                            }
                        }
                    }
                    r.into_iter().filter(|i| above.contains(i)).collect()
                }
                SpansetOp::Sibling => {
                    // Siblings share a parent span id, even when the parent itself is missing.
                    let mut by_parent: HashMap<SpanId, Vec<usize>> = HashMap::new();
                    for &s in &l {
                        if let Some(p) = flat.spans[s].1.parent_span_id {
                            by_parent.entry(p).or_default().push(s);
                        }
                    }
                    r.into_iter()
                        .filter(|&i| {
                            flat.spans[i].1.parent_span_id.is_some_and(|p| {
                                by_parent
                                    .get(&p)
                                    .is_some_and(|sibs| sibs.iter().any(|&s| s != i))
                            })
                        })
                        .collect()
                }
            };
            single(out)
        }
    }
}

fn as_number(v: &AttrValue) -> Option<f64> {
    match v {
        AttrValue::Int(i) => Some(*i as f64),
        AttrValue::Double(d) => Some(*d),
        _ => None,
    }
}

fn apply_stage(st: &CStage, sets: Vec<Set>, flat: &Flat<'_>) -> Vec<Set> {
    match st {
        CStage::Filter(p) => sets
            .into_iter()
            .filter_map(|mut s| {
                s.spans.retain(|&i| flat.eval(p, i));
                (!s.spans.is_empty()).then_some(s)
            })
            .collect(),
        CStage::Coalesce => single(union(&sets)),
        CStage::By(a) => {
            let key = format!("by({})", attr_text(a));
            let mut out = Vec::new();
            for s in sets {
                let mut groups: BTreeMap<String, (AttrValue, Vec<usize>)> = BTreeMap::new();
                for &i in &s.spans {
                    if let Some(v) = flat.value(a, i) {
                        groups
                            .entry(display(&v))
                            .or_insert_with(|| (v, Vec::new()))
                            .1
                            .push(i);
                    }
                }
                for (_, (v, spans)) in groups {
                    let mut by = s.by.clone();
                    by.push((key.clone(), v));
                    out.push(Set { spans, by });
                }
            }
            out
        }
        CStage::Aggregate {
            func,
            arg,
            op,
            value,
        } => sets
            .into_iter()
            .filter(|s| {
                let got = match (func, arg) {
                    (AggFunc::Count, _) | (_, None) => Some(s.spans.len() as f64),
                    (f, Some(a)) => {
                        let vals: Vec<f64> = s
                            .spans
                            .iter()
                            .filter_map(|&i| flat.value(a, i).as_ref().and_then(as_number))
                            .collect();
                        if vals.is_empty() {
                            None
                        } else {
                            Some(match f {
                                AggFunc::Avg => vals.iter().sum::<f64>() / vals.len() as f64,
                                AggFunc::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                                AggFunc::Max => {
                                    vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                                }
                                _ => vals.iter().sum::<f64>(),
                            })
                        }
                    }
                };
                got.is_some_and(|g| static_cmp(&Static::Float(g), *op, &Static::Float(*value)))
            })
            .collect(),
    }
}

/// The attribute as written in a query (`resource.service.name`, `.x`, `duration`).
fn attr_text(a: &Attribute) -> String {
    match a {
        Attribute::Intrinsic(i) => i.name().to_string(),
        Attribute::Scoped { scope, key } => {
            let prefix = match scope {
                AttrScope::Span => "span",
                AttrScope::Resource => "resource",
                AttrScope::Any => "",
            };
            format!("{prefix}.{key}")
        }
    }
}

fn display(v: &AttrValue) -> String {
    match v {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Double(d) => d.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// One search (times Unix ns, durations ns).
#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Stop after this many matching traces (Tempo's default: 20).
    pub limit: usize,
    /// Spans reported per spanset (Tempo's default: 3).
    pub spss: usize,
    /// Trace duration bounds (inclusive), as `minDuration` / `maxDuration`.
    pub min_trace_duration_ns: Option<u64>,
    pub max_trace_duration_ns: Option<u64>,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            start_ns: 0,
            end_ns: u64::MAX,
            limit: 20,
            spss: 3,
            min_trace_duration_ns: None,
            max_trace_duration_ns: None,
        }
    }
}

/// One returned span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanMatch {
    pub span_id: SpanId,
    pub name: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// `(key, value)`: `service.name`, then the query's reported attributes the span has.
    pub attributes: Vec<(String, AttrValue)>,
}

/// One returned spanset: at most `spss` spans (earliest first), how many matched, and the
/// `by()` values that formed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanset {
    pub spans: Vec<SpanMatch>,
    pub matched: usize,
    pub attributes: Vec<(String, AttrValue)>,
}

/// One matching trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceMatch {
    pub trace_id: TraceId,
    /// `None` when the root span is missing (Tempo then says [`ROOT_SPAN_NOT_YET_RECEIVED`]).
    pub root_service_name: Option<String>,
    pub root_trace_name: Option<String>,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub spansets: Vec<Spanset>,
}

/// Matching traces, most recent start first, and how many traces were inspected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchResult {
    pub traces: Vec<TraceMatch>,
    pub inspected_traces: u64,
    pub inspected_spans: u64,
}

/// Runs `query` against `source`: pushes [`Compiled::pushdown`] down, evaluates the exact
/// query on each visited trace, and stops after `req.limit` matches.
pub fn search(
    source: &dyn TraceSource,
    query: &Compiled,
    req: &SearchRequest,
) -> Result<SearchResult, StorageError> {
    let mut result = SearchResult::default();
    let limit = req.limit.max(1);
    let search = TraceSearch {
        start_ns: req.start_ns,
        end_ns: req.end_ns,
        filter: &query.pushdown,
    };
    source.search_projected(&search, &query.span_keys, &mut |trace: Trace| {
        result.inspected_traces += 1;
        result.inspected_spans += trace.span_count() as u64;
        if let Some(m) = evaluate(query, &trace, req) {
            result.traces.push(m);
        }
        result.traces.len() < limit
    })?;
    result.traces.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    Ok(result)
}

/// Like [`search`], but returns the whole matching traces (most recent start first), for APIs
/// that answer with complete traces (Jaeger).
pub fn search_traces(
    source: &dyn TraceSource,
    query: &Compiled,
    req: &SearchRequest,
) -> Result<Vec<Trace>, StorageError> {
    let mut out: Vec<Trace> = Vec::new();
    let limit = req.limit.max(1);
    let search = TraceSearch {
        start_ns: req.start_ns,
        end_ns: req.end_ns,
        filter: &query.pushdown,
    };
    source.search(&search, &mut |trace: Trace| {
        if evaluate(query, &trace, req).is_some() {
            out.push(trace);
        }
        out.len() < limit
    })?;
    out.sort_by(|a, b| {
        b.time_range()
            .0
            .cmp(&a.time_range().0)
            .then(a.id.cmp(&b.id))
    });
    Ok(out)
}

/// Evaluates `query` on one whole trace: `None` when no spanset matches.
fn evaluate(query: &Compiled, trace: &Trace, req: &SearchRequest) -> Option<TraceMatch> {
    let (start, end) = trace.time_range();
    let duration = end.saturating_sub(start);
    if req.min_trace_duration_ns.is_some_and(|m| duration < m)
        || req.max_trace_duration_ns.is_some_and(|m| duration > m)
    {
        return None;
    }
    let flat = Flat::new(trace);
    let sets = eval_node(&query.root, &flat);
    if sets.is_empty() {
        return None;
    }
    let spansets = sets
        .into_iter()
        .map(|s| {
            let mut spans = s.spans;
            spans.sort_by_key(|&i| (flat.spans[i].1.start_unix_nano, flat.spans[i].1.span_id));
            let matched = spans.len();
            let spans = spans
                .into_iter()
                .take(req.spss)
                .map(|i| span_match(query, &flat, i))
                .collect();
            Spanset {
                spans,
                matched,
                attributes: s.by,
            }
        })
        .collect();
    let root = flat.root.map(|r| flat.spans[r]);
    Some(TraceMatch {
        trace_id: trace.id,
        root_service_name: root.and_then(|(res, _)| res.service_name().map(str::to_string)),
        root_trace_name: root.map(|(_, s)| s.name.clone()),
        start_ns: start,
        duration_ns: duration,
        spansets,
    })
}

fn span_match(query: &Compiled, flat: &Flat<'_>, i: usize) -> SpanMatch {
    let (res, span) = flat.spans[i];
    let mut attributes = Vec::new();
    if let Some(svc) = res.service_name() {
        attributes.push(("service.name".to_string(), AttrValue::Str(svc.to_string())));
    }
    for a in &query.report {
        let key = a.result_key();
        if attributes.iter().any(|(k, _)| *k == key) {
            continue;
        }
        if let Some(v) = flat.value(a, i) {
            attributes.push((key, v));
        }
    }
    SpanMatch {
        span_id: span.span_id,
        name: span.name.clone(),
        start_ns: span.start_unix_nano,
        duration_ns: span.duration_nanos(),
        attributes,
    }
}
