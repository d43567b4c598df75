//! Resolves duration expressions that use `step()` or `range()` once a query's step and
//! range are known, filling in the ranges, steps and offsets of a copy of the tree.

use crate::promql::ast::{DurationExpr, Expr};
use crate::promql::value::QueryError;

/// True when some range, step or offset in `e` is a duration expression.
pub(super) fn has_duration_exprs(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => false,
        Expr::VectorSelector(vs) => vs.offset_expr.is_some(),
        Expr::MatrixSelector(ms) => ms.range_expr.is_some() || ms.selector.offset_expr.is_some(),
        Expr::Subquery(sq) => {
            sq.range_expr.is_some()
                || sq.step_expr.is_some()
                || sq.offset_expr.is_some()
                || has_duration_exprs(&sq.expr)
        }
        Expr::Paren(inner) => has_duration_exprs(inner),
        Expr::Unary(u) => has_duration_exprs(&u.expr),
        Expr::Binary(b) => has_duration_exprs(&b.lhs) || has_duration_exprs(&b.rhs),
        Expr::Aggregate(a) => {
            a.param.as_deref().is_some_and(has_duration_exprs) || has_duration_exprs(&a.expr)
        }
        Expr::Call(c) => c.args.iter().any(has_duration_exprs),
    }
}

/// Query parameters a duration expression can refer to, in seconds.
#[derive(Clone, Copy)]
pub(super) struct DurationContext {
    pub step: f64,
    pub range: f64,
}

impl DurationContext {
    fn ms(&self, e: &DurationExpr, allow_negative: bool) -> Result<i64, QueryError> {
        e.eval_ms(self.step, self.range, allow_negative)
            .map_err(QueryError::BadData)
    }
}

/// Replaces every range, step and offset given as a duration expression by its value.
pub(super) fn resolve(e: &mut Expr, cx: DurationContext) -> Result<(), QueryError> {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => {
            if let Some(d) = &vs.offset_expr {
                vs.offset = cx.ms(d, true)?;
            }
            Ok(())
        }
        Expr::MatrixSelector(ms) => {
            if let Some(d) = &ms.range_expr {
                ms.range = cx.ms(d, false)?;
            }
            if let Some(d) = &ms.selector.offset_expr {
                ms.selector.offset = cx.ms(d, true)?;
            }
            Ok(())
        }
        Expr::Subquery(sq) => {
            if let Some(d) = &sq.range_expr {
                sq.range = cx.ms(d, false)?;
            }
            if let Some(d) = &sq.step_expr {
                sq.step = Some(cx.ms(d, false)?);
            }
            if let Some(d) = &sq.offset_expr {
                sq.offset = cx.ms(d, true)?;
            }
            resolve(&mut sq.expr, cx)
        }
        Expr::Paren(inner) => resolve(inner, cx),
        Expr::Unary(u) => resolve(&mut u.expr, cx),
        Expr::Binary(b) => {
            resolve(&mut b.lhs, cx)?;
            resolve(&mut b.rhs, cx)
        }
        Expr::Aggregate(a) => {
            if let Some(p) = a.param.as_deref_mut() {
                resolve(p, cx)?;
            }
            resolve(&mut a.expr, cx)
        }
        Expr::Call(c) => c.args.iter_mut().try_for_each(|a| resolve(a, cx)),
    }
}
