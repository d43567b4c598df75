//! Prometheus' semantic checks (`checkAST`): operand types, vector matching rules, function
//! and aggregation argument types. Errors found here are reported only when the query has no
//! syntax error, as in Prometheus.

use sextant_storage::METRIC_NAME;

use super::super::ast::{
    AggregateOp, BinaryExpr, BinaryOp, Expr, PosRange, ValueType, VectorMatchCardinality,
    VectorSelector,
};
use super::super::functions::FunctionDef;
use super::expr::BinModifiers;
use super::literals::go_quote;
use super::{Node, Parser};

const EMPTY_MATCHER: &str = "vector selector must contain at least one non-empty matcher";

impl Parser<'_> {
    pub(super) fn check_unary(&mut self, operand: &Node, start: usize) {
        let t = operand.expr.value_type();
        if t != ValueType::Scalar && t != ValueType::Vector {
            self.check_error(
                start,
                format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    go_quote(t.doc_name())
                ),
            );
        }
    }

    pub(super) fn check_subquery(&mut self, inner: &Node, start: usize) {
        let t = inner.expr.value_type();
        if t != ValueType::Vector {
            self.check_error(
                start,
                format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    t.name()
                ),
            );
        }
    }

    /// `explicit` is the number of matchers written inside the braces.
    pub(super) fn check_vector_selector(&mut self, vs: &VectorSelector, explicit: usize) {
        if let Some(name) = &vs.name {
            for m in vs.matchers.iter().take(explicit) {
                if m.name == METRIC_NAME {
                    self.check_error(
                        vs.pos.start,
                        format!(
                            "metric name must not be set twice: {} or {}",
                            go_quote(name),
                            go_quote(&m.value)
                        ),
                    );
                }
            }
            return;
        }
        if vs.matchers.iter().all(|m| m.matches_empty()) {
            self.check_error(vs.pos.start, EMPTY_MATCHER);
        }
    }

    pub(super) fn check_call(&mut self, func: &'static FunctionDef, args: &[Node], pos: PosRange) {
        let nargs = func.arg_types.len();
        let name = go_quote(func.name);
        if func.variadic == 0 {
            if nargs != args.len() {
                self.check_error(
                    pos.start,
                    format!(
                        "expected {nargs} argument(s) in call to {name}, got {}",
                        args.len()
                    ),
                );
            }
        } else {
            let na = nargs.saturating_sub(1);
            if na > args.len() {
                self.check_error(
                    pos.start,
                    format!(
                        "expected at least {na} argument(s) in call to {name}, got {}",
                        args.len()
                    ),
                );
            } else if func.variadic > 0 && na + (func.variadic as usize) < args.len() {
                self.check_error(
                    pos.start,
                    format!(
                        "expected at most {} argument(s) in call to {name}, got {}",
                        na + func.variadic as usize,
                        args.len()
                    ),
                );
            }
        }
        if func.name == "info" && args.len() > 1 {
            let arg = &args[1];
            let t = arg.expr.value_type();
            if t != ValueType::Vector {
                self.check_error(
                    pos.start,
                    format!(
                        "expected type instant vector in call to function {name}, got {}",
                        t.doc_name()
                    ),
                );
            }
            match &arg.expr {
                Expr::VectorSelector(vs) if vs.name.is_some() => self.check_error(
                    arg.pos.start,
                    "expected label selectors only, got vector selector instead",
                ),
                Expr::VectorSelector(vs) => {
                    // The label selector of `info` may match everything.
                    let at = vs.pos.start;
                    self.check_errors
                        .retain(|(p, m)| !(*p == at && m == EMPTY_MATCHER));
                }
                _ => self.check_error(arg.pos.start, "expected label selectors only"),
            }
        }
        for (i, arg) in args.iter().enumerate() {
            if i >= nargs && func.variadic == 0 {
                break;
            }
            let Some(want) = func.arg_type(i) else {
                break;
            };
            let got = arg.expr.value_type();
            if got != want {
                self.check_error(
                    arg.pos.start,
                    format!(
                        "expected type {} in call to function {name}, got {}",
                        want.doc_name(),
                        got.doc_name()
                    ),
                );
            }
        }
    }

    pub(super) fn check_aggregation(&mut self, op: AggregateOp, expr: &Node, param: Option<&Node>) {
        let t = expr.expr.value_type();
        if t != ValueType::Vector {
            self.check_error(
                expr.pos.start,
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    t.doc_name()
                ),
            );
        }
        let want = match op {
            AggregateOp::CountValues => ValueType::String,
            _ => ValueType::Scalar,
        };
        if let Some(p) = param {
            let t = p.expr.value_type();
            if t != want {
                self.check_error(
                    p.pos.start,
                    format!(
                        "expected type {} in aggregation parameter, got {}",
                        want.doc_name(),
                        t.doc_name()
                    ),
                );
            }
        }
    }

    /// Builds a binary expression, filling in vector matching and checking operand types.
    pub(super) fn make_binary(
        &mut self,
        lhs: Node,
        op: BinaryOp,
        op_pos: usize,
        mods: BinModifiers,
        rhs: Node,
    ) -> Node {
        let pos = PosRange {
            start: lhs.pos.start,
            end: rhs.pos.end,
        };
        let (lt, rt) = (lhs.expr.value_type(), rhs.expr.value_type());
        let mut matching = mods.matching;
        if mods.return_bool && !op.is_comparison() {
            self.check_error(
                op_pos,
                "bool modifier can only be used on comparison operators",
            );
        }
        if op.is_comparison()
            && !mods.return_bool
            && lt == ValueType::Scalar
            && rt == ValueType::Scalar
        {
            self.check_error(op_pos, "comparisons between scalars must use BOOL modifier");
        }
        if op.is_set() && matching.card == VectorMatchCardinality::OneToOne {
            matching.card = VectorMatchCardinality::ManyToMany;
        }
        if matching.on {
            for l in &matching.labels {
                if matching.include.contains(l) {
                    self.check_error(
                        op_pos,
                        format!(
                            "label {} must not occur in ON and GROUP clause at once",
                            go_quote(l)
                        ),
                    );
                }
            }
        }
        let operand_ok = |t: ValueType| t == ValueType::Scalar || t == ValueType::Vector;
        if !operand_ok(lt) {
            self.check_error(
                lhs.pos.start,
                "binary expression must contain only scalar and instant vector types",
            );
        }
        if !operand_ok(rt) {
            self.check_error(
                rhs.pos.start,
                "binary expression must contain only scalar and instant vector types",
            );
        }
        let both_vectors = lt == ValueType::Vector && rt == ValueType::Vector;
        if !both_vectors {
            if !matching.labels.is_empty() {
                self.check_error(
                    pos.start,
                    "vector matching only allowed between instant vectors",
                );
            }
        } else if op.is_set() {
            if matches!(
                matching.card,
                VectorMatchCardinality::OneToMany | VectorMatchCardinality::ManyToOne
            ) {
                self.check_error(
                    pos.start,
                    format!(
                        "no grouping allowed for {} operation",
                        go_quote(op.as_str())
                    ),
                );
            }
            if matching.card != VectorMatchCardinality::ManyToMany {
                self.check_error(pos.start, "set operations must always be many-to-many");
            }
        }
        if (lt == ValueType::Scalar || rt == ValueType::Scalar) && op.is_set() {
            self.check_error(
                pos.start,
                format!(
                    "set operator {} not allowed in binary scalar expression",
                    go_quote(op.as_str())
                ),
            );
        }
        Node {
            expr: Expr::Binary(BinaryExpr {
                op,
                lhs: Box::new(lhs.expr),
                rhs: Box::new(rhs.expr),
                return_bool: mods.return_bool,
                matching: both_vectors.then_some(matching),
                pos,
            }),
            pos,
        }
    }
}
