//! Function calls (`rate(x[5m])`) and aggregations (`sum by (job) (x)`).

use super::super::ast::{AggregateExpr, AggregateOp, Call, Expr, PosRange};
use super::super::functions::lookup;
use super::lexer::{Kw, T};
use super::{Node, PResult, Parser};

fn aggregate_op(k: Kw) -> Option<AggregateOp> {
    Some(match k {
        Kw::Sum => AggregateOp::Sum,
        Kw::Avg => AggregateOp::Avg,
        Kw::Count => AggregateOp::Count,
        Kw::Min => AggregateOp::Min,
        Kw::Max => AggregateOp::Max,
        Kw::Group => AggregateOp::Group,
        Kw::Stddev => AggregateOp::Stddev,
        Kw::Stdvar => AggregateOp::Stdvar,
        Kw::Topk => AggregateOp::Topk,
        Kw::Bottomk => AggregateOp::Bottomk,
        Kw::CountValues => AggregateOp::CountValues,
        Kw::Quantile => AggregateOp::Quantile,
        Kw::Limitk => AggregateOp::Limitk,
        Kw::LimitRatio => AggregateOp::LimitRatio,
        _ => return None,
    })
}

impl Parser<'_> {
    /// `( expr, ... )`; returns the arguments and the end of the closing parenthesis.
    fn parse_call_body(&mut self) -> PResult<(Vec<Node>, usize)> {
        self.expect(T::LParen, None, None)?;
        let mut args = Vec::new();
        if self.peek().kind == T::RParen {
            return Ok((args, self.bump().end));
        }
        loop {
            args.push(self.parse_expr(0)?);
            match self.peek().kind {
                T::Comma => {
                    let comma = self.bump();
                    if self.peek().kind == T::RParen {
                        return Err(self.fail(
                            comma.start,
                            "trailing commas not allowed in function call args",
                        ));
                    }
                }
                T::RParen => return Ok((args, self.bump().end)),
                _ => return Err(self.unexpected(None, None)),
            }
        }
    }

    pub(super) fn parse_call(&mut self) -> PResult<Node> {
        let name_tok = self.bump();
        let raw = self.text(name_tok);
        let name = if matches!(name_tok.kind, T::Kw(_)) {
            raw.to_ascii_lowercase()
        } else {
            raw.to_string()
        };
        let Some(func) = lookup(&name) else {
            return Err(self.fail(
                name_tok.start,
                format!(
                    "unknown function with name {}",
                    super::literals::go_quote(raw)
                ),
            ));
        };
        let (args, end) = self.parse_call_body()?;
        let pos = PosRange {
            start: name_tok.start,
            end,
        };
        self.check_call(func, &args, pos);
        Ok(Node {
            expr: Expr::Call(Call {
                func,
                args: args.into_iter().map(|a| a.expr).collect(),
                pos,
            }),
            pos,
        })
    }

    fn parse_grouping_modifier(&mut self) -> PResult<(Vec<String>, bool)> {
        let without = self.bump().kind == T::Kw(Kw::Without);
        let labels = self.parse_grouping_labels()?;
        Ok((labels, without))
    }

    pub(super) fn parse_aggregation(&mut self) -> PResult<Node> {
        let op_tok = self.bump();
        let T::Kw(kw) = op_tok.kind else {
            return Err(self.unexpected(None, None));
        };
        let Some(op) = aggregate_op(kw) else {
            return Err(self.unexpected(None, None));
        };
        self.ctx.push("aggregation");
        let result = self.parse_aggregation_parts();
        self.ctx.pop();
        let (args, grouping, without, end) = result?;
        let pos = PosRange {
            start: op_tok.start,
            end,
        };
        if args.is_empty() {
            return Err(self.fail(pos.start, "no arguments for aggregate expression provided"));
        }
        let want = if op.takes_param() { 2 } else { 1 };
        if args.len() != want {
            return Err(self.fail(
                pos.start,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            ));
        }
        let mut args = args.into_iter();
        let param = if want == 2 { args.next() } else { None };
        let Some(expr) = args.next() else {
            return Err(self.fail(pos.start, "no arguments for aggregate expression provided"));
        };
        self.check_aggregation(op, &expr, param.as_ref());
        Ok(Node {
            expr: Expr::Aggregate(AggregateExpr {
                op,
                expr: Box::new(expr.expr),
                param: param.map(|p| Box::new(p.expr)),
                grouping,
                without,
                pos,
            }),
            pos,
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse_aggregation_parts(&mut self) -> PResult<(Vec<Node>, Vec<String>, bool, usize)> {
        let is_modifier = |k: T| matches!(k, T::Kw(Kw::By | Kw::Without));
        if is_modifier(self.peek().kind) {
            let (grouping, without) = self.parse_grouping_modifier()?;
            let (args, end) = self.parse_call_body()?;
            return Ok((args, grouping, without, end));
        }
        let (args, mut end) = self.parse_call_body()?;
        let (mut grouping, mut without) = (Vec::new(), false);
        if is_modifier(self.peek().kind) {
            (grouping, without) = self.parse_grouping_modifier()?;
            end = self.last_end();
        }
        Ok((args, grouping, without, end))
    }
}
