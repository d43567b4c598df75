//! Expressions: operator precedence, unary operators, primaries and the postfix modifiers
//! (`[range]`, `[range:step]`, `offset`, `@`).

use super::super::ast::{
    AtModifier, BinaryOp, Expr, FillValues, MatrixSelector, PosRange, SubqueryExpr, UnaryExpr,
    UnaryOp, VectorMatchCardinality, VectorMatching,
};
use super::lexer::{Kw, T};
use super::literals::{parse_number, unquote};
use super::{Node, PResult, Parser};

/// Precedence of unary `+`/`-`: its operand only extends over `^`.
const POW_PRECEDENCE: u8 = 6;

/// The modifiers written after a binary operator.
pub(super) struct BinModifiers {
    pub return_bool: bool,
    pub matching: VectorMatching,
}

pub(super) fn binary_op(kind: T) -> Option<BinaryOp> {
    Some(match kind {
        T::Add => BinaryOp::Add,
        T::Sub => BinaryOp::Sub,
        T::Mul => BinaryOp::Mul,
        T::Div => BinaryOp::Div,
        T::Mod => BinaryOp::Mod,
        T::Pow => BinaryOp::Pow,
        T::Eqlc => BinaryOp::Eql,
        T::Neq => BinaryOp::Neq,
        T::Gtr => BinaryOp::Gtr,
        T::Lss => BinaryOp::Lss,
        T::Gte => BinaryOp::Gte,
        T::Lte => BinaryOp::Lte,
        T::Kw(Kw::Atan2) => BinaryOp::Atan2,
        T::Kw(Kw::And) => BinaryOp::And,
        T::Kw(Kw::Or) => BinaryOp::Or,
        T::Kw(Kw::Unless) => BinaryOp::Unless,
        _ => return None,
    })
}

impl Parser<'_> {
    /// Parses operators binding at least as tightly as `min_prec`.
    pub(super) fn parse_expr(&mut self, min_prec: u8) -> PResult<Node> {
        let mut lhs = self.parse_unary()?;
        loop {
            let op_tok = self.peek();
            let op = if op_tok.kind == T::Trim {
                if self.input.as_bytes().get(op_tok.start) == Some(&b'<') {
                    BinaryOp::TrimUpper
                } else {
                    BinaryOp::TrimLower
                }
            } else {
                let Some(op) = binary_op(op_tok.kind) else {
                    break;
                };
                op
            };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.bump();
            let mods = self.parse_bin_modifiers()?;
            let next = if op.is_right_associative() {
                prec
            } else {
                prec + 1
            };
            let rhs = self.parse_expr(next)?;
            lhs = self.make_binary(lhs, op, op_tok.start, mods, rhs);
        }
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> PResult<Node> {
        let t = self.peek();
        let op = match t.kind {
            T::Add => UnaryOp::Pos,
            T::Sub => UnaryOp::Neg,
            _ => {
                let primary = self.parse_primary()?;
                return self.parse_postfix(primary);
            }
        };
        self.bump();
        let operand = self.parse_expr(POW_PRECEDENCE)?;
        let end = operand.pos.end;
        if let Expr::NumberLiteral(v) = operand.expr {
            let v = if op == UnaryOp::Neg { -v } else { v };
            return Ok(Node::new(Expr::NumberLiteral(v), t.start, end));
        }
        self.check_unary(&operand, t.start);
        let pos = PosRange {
            start: t.start,
            end,
        };
        Ok(Node {
            expr: Expr::Unary(UnaryExpr {
                op,
                expr: Box::new(operand.expr),
                pos,
            }),
            pos,
        })
    }

    fn parse_primary(&mut self) -> PResult<Node> {
        let t = self.peek();
        let next = self.peek_at(1).kind;
        match t.kind {
            T::Number => {
                self.bump();
                let v = parse_number(self.text(t))
                    .map_err(|e| self.fail(t.start, format!("error parsing number: {e}")))?;
                Ok(Node::new(Expr::NumberLiteral(v), t.start, t.end))
            }
            T::Duration => {
                self.bump();
                let ms = super::literals::parse_duration(self.text(t))
                    .map_err(|e| self.fail(t.start, e))?;
                Ok(Node::new(
                    Expr::NumberLiteral(ms as f64 / 1000.0),
                    t.start,
                    t.end,
                ))
            }
            T::Str => {
                self.bump();
                let s = self.unquote_token(t)?;
                Ok(Node::new(Expr::StringLiteral(s), t.start, t.end))
            }
            T::LParen => {
                self.bump();
                let inner = self.parse_expr(0)?;
                let close = self.expect(T::RParen, None, None)?;
                Ok(Node::new(
                    Expr::Paren(Box::new(inner.expr)),
                    t.start,
                    close.end,
                ))
            }
            T::LBrace => self.parse_vector_selector(None),
            T::Ident if next == T::LParen => self.parse_call(),
            T::Kw(Kw::Start | Kw::End | Kw::Step | Kw::Range) if next == T::LParen => {
                self.parse_call()
            }
            T::Kw(k)
                if k.is_aggregator()
                    && matches!(next, T::LParen | T::Kw(Kw::By) | T::Kw(Kw::Without)) =>
            {
                self.parse_aggregation()
            }
            T::Ident | T::MetricIdent => self.parse_vector_selector(Some(t)),
            T::Kw(k) if k.can_be_metric_name() => self.parse_vector_selector(Some(t)),
            _ => Err(self.unexpected(None, None)),
        }
    }

    pub(super) fn unquote_token(&mut self, t: super::lexer::Token) -> PResult<String> {
        let raw = self.text(t);
        unquote(raw).map_err(|e| {
            self.fail(
                t.start,
                format!(
                    "error unquoting string {}: {e}",
                    super::literals::go_quote(raw)
                ),
            )
        })
    }

    /// Applies `[...]`, `offset` and `@` modifiers following an expression.
    fn parse_postfix(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            let t = self.peek();
            node = match t.kind {
                T::LBracket => self.parse_range_or_subquery(node)?,
                T::Kw(Kw::Offset) => self.parse_offset(node)?,
                T::At => self.parse_at(node)?,
                T::Kw(k @ (Kw::Anchored | Kw::Smoothed)) => {
                    self.bump();
                    self.set_extended(node, k == Kw::Anchored)?
                }
                _ => return Ok(node),
            };
        }
    }

    fn parse_range_or_subquery(&mut self, node: Node) -> PResult<Node> {
        let open = self.bump();
        let (range, range_expr) = self.parse_bracket_duration(
            "subquery or range selector",
            "number, duration, step(), or range()",
        )?;
        let t = self.peek();
        match t.kind {
            T::RBracket => {
                let close = self.bump();
                let err = match &node.expr {
                    Expr::VectorSelector(vs) if vs.offset != 0 || vs.offset_expr.is_some() => {
                        Some("no offset modifiers allowed before range")
                    }
                    Expr::VectorSelector(vs) if matches!(vs.at, Some(AtModifier::At(_))) => {
                        Some("no @ modifiers allowed before range")
                    }
                    Expr::VectorSelector(_) => None,
                    _ => Some("ranges only allowed for vector selectors"),
                };
                if let Some(e) = err {
                    return Err(self.fail(open.start, e));
                }
                let Expr::VectorSelector(selector) = node.expr else {
                    return Err(self.fail(open.start, "ranges only allowed for vector selectors"));
                };
                let pos = PosRange {
                    start: node.pos.start,
                    end: close.end,
                };
                Ok(Node {
                    expr: Expr::MatrixSelector(MatrixSelector {
                        selector,
                        range,
                        range_expr,
                        pos,
                    }),
                    pos,
                })
            }
            T::Colon => {
                self.bump();
                let (step, step_expr) = if self.peek().kind == T::RBracket {
                    (None, None)
                } else {
                    let (ms, e) = self.parse_bracket_duration(
                        "subquery selector",
                        "number, duration, step(), range(), or \"]\"",
                    )?;
                    (e.is_none().then_some(ms), e)
                };
                let close = self.expect(T::RBracket, Some("subquery selector"), Some("\"]\""))?;
                let pos = PosRange {
                    start: node.pos.start,
                    end: close.end,
                };
                self.check_subquery(&node, pos.start);
                Ok(Node {
                    expr: Expr::Subquery(SubqueryExpr {
                        expr: Box::new(node.expr),
                        range,
                        step,
                        offset: 0,
                        at: None,
                        range_expr,
                        step_expr,
                        offset_expr: None,
                        pos,
                    }),
                    pos,
                })
            }
            _ => Err(self.unexpected(Some("subquery or range"), Some("\":\" or \"]\""))),
        }
    }

    fn parse_offset(&mut self, mut node: Node) -> PResult<Node> {
        self.bump();
        let (offset, offset_expr) = self.parse_offset_duration()?;
        let end = self.last_end();
        let start = node.pos.start;
        let (slot, expr_slot) = match &mut node.expr {
            Expr::VectorSelector(vs) => {
                vs.pos.end = end;
                (&mut vs.offset, &mut vs.offset_expr)
            }
            Expr::MatrixSelector(ms) => {
                ms.pos.end = end;
                (&mut ms.selector.offset, &mut ms.selector.offset_expr)
            }
            Expr::Subquery(sq) => {
                sq.pos.end = end;
                (&mut sq.offset, &mut sq.offset_expr)
            }
            _ => return Err(self.fail(
                start,
                "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            )),
        };
        if *slot != 0 || expr_slot.is_some() {
            return Err(self.fail(start, "offset may not be set multiple times"));
        }
        *slot = offset;
        *expr_slot = offset_expr;
        node.pos.end = end;
        Ok(node)
    }

    fn parse_at(&mut self, mut node: Node) -> PResult<Node> {
        self.bump();
        let t = self.peek();
        let at = match t.kind {
            T::Kw(k @ (Kw::Start | Kw::End)) if self.peek_at(1).kind == T::LParen => {
                self.bump();
                self.bump();
                self.expect(T::RParen, Some("@"), Some("timestamp"))?;
                if k == Kw::Start {
                    AtModifier::Start
                } else {
                    AtModifier::End
                }
            }
            T::Add | T::Sub | T::Number | T::Duration => {
                let secs = self.parse_signed_number("@", "timestamp")?;
                if !secs.is_finite() || secs >= i64::MAX as f64 || secs <= i64::MIN as f64 {
                    let shown = if secs.is_nan() {
                        "NaN".to_string()
                    } else if secs.is_infinite() {
                        if secs > 0.0 { "+Inf" } else { "-Inf" }.to_string()
                    } else {
                        format!("{secs:.6}")
                    };
                    return Err(self.fail(
                        node.pos.start,
                        format!("timestamp out of bounds for @ modifier: {shown}"),
                    ));
                }
                AtModifier::At((secs * 1000.0).round() as i64)
            }
            _ => return Err(self.unexpected(Some("@"), Some("timestamp"))),
        };
        let end = self.last_end();
        let start = node.pos.start;
        let slot = match &mut node.expr {
            Expr::VectorSelector(vs) => {
                vs.pos.end = end;
                &mut vs.at
            }
            Expr::MatrixSelector(ms) => {
                ms.pos.end = end;
                &mut ms.selector.at
            }
            Expr::Subquery(sq) => {
                sq.pos.end = end;
                &mut sq.at
            }
            _ => return Err(self.fail(
                start,
                "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            )),
        };
        if slot.is_some() {
            return Err(self.fail(start, "@ <timestamp> may not be set multiple times"));
        }
        *slot = Some(at);
        node.pos.end = end;
        Ok(node)
    }

    /// `[+|-](number|duration)` as seconds.
    pub(super) fn parse_signed_number(&mut self, ctx: &str, expected: &str) -> PResult<f64> {
        let mut sign = 1.0;
        match self.peek().kind {
            T::Add => {
                self.bump();
            }
            T::Sub => {
                self.bump();
                sign = -1.0;
            }
            _ => {}
        }
        let t = self.peek();
        let v = match t.kind {
            T::Number => parse_number(self.text(t))
                .map_err(|e| self.fail(t.start, format!("error parsing number: {e}")))?,
            T::Duration => {
                super::literals::parse_duration(self.text(t)).map_err(|e| self.fail(t.start, e))?
                    as f64
                    / 1000.0
            }
            _ => return Err(self.unexpected(Some(ctx), Some(expected))),
        };
        self.bump();
        Ok(sign * v)
    }

    /// `bool`, `on(...)`/`ignoring(...)`, `group_left(...)`/`group_right(...)`.
    fn parse_bin_modifiers(&mut self) -> PResult<BinModifiers> {
        let mut mods = BinModifiers {
            return_bool: false,
            matching: VectorMatching {
                card: VectorMatchCardinality::OneToOne,
                labels: Vec::new(),
                on: false,
                include: Vec::new(),
                fill: FillValues::default(),
            },
        };
        if self.peek().kind == T::Kw(Kw::Bool) {
            self.bump();
            mods.return_bool = true;
        }
        let kind = self.peek().kind;
        if matches!(kind, T::Kw(Kw::On | Kw::Ignoring)) {
            self.bump();
            mods.matching.on = kind == T::Kw(Kw::On);
            mods.matching.labels = self.parse_grouping_labels()?;
            let group = self.peek().kind;
            if matches!(group, T::Kw(Kw::GroupLeft | Kw::GroupRight)) {
                self.bump();
                mods.matching.card = if group == T::Kw(Kw::GroupLeft) {
                    VectorMatchCardinality::ManyToOne
                } else {
                    VectorMatchCardinality::OneToMany
                };
                if self.peek().kind == T::LParen {
                    mods.matching.include = self.parse_grouping_labels()?;
                }
            }
        }
        match self.peek().kind {
            T::Kw(Kw::Fill) => {
                self.bump();
                let v = self.parse_fill_value()?;
                mods.matching.fill = FillValues {
                    lhs: Some(v),
                    rhs: Some(v),
                };
            }
            T::Kw(k @ (Kw::FillLeft | Kw::FillRight)) => {
                self.bump();
                let v = self.parse_fill_value()?;
                let other = if k == Kw::FillLeft {
                    mods.matching.fill.lhs = Some(v);
                    Kw::FillRight
                } else {
                    mods.matching.fill.rhs = Some(v);
                    Kw::FillLeft
                };
                if self.peek().kind == T::Kw(other) {
                    self.bump();
                    let w = self.parse_fill_value()?;
                    if other == Kw::FillLeft {
                        mods.matching.fill.lhs = Some(w);
                    } else {
                        mods.matching.fill.rhs = Some(w);
                    }
                }
            }
            _ => {}
        }
        Ok(mods)
    }

    /// `(<number>)` after `fill`, `fill_left` or `fill_right`, with an optional sign.
    fn parse_fill_value(&mut self) -> PResult<f64> {
        self.expect(T::LParen, None, None)?;
        let v = self.parse_signed_number("fill modifier", "number")?;
        self.expect(T::RParen, None, None)?;
        Ok(v)
    }

    /// Applies `anchored` (or `smoothed`) to the selector it follows.
    fn set_extended(&mut self, mut node: Node, anchored: bool) -> PResult<Node> {
        let name = if anchored { "anchored" } else { "smoothed" };
        let start = node.pos.start;
        let vs = match &mut node.expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &mut ms.selector,
            Expr::Subquery(_) => {
                return Err(self.fail(
                    start,
                    format!("{name} modifier is not supported for subqueries"),
                ))
            }
            _ => return Err(self.fail(start, format!("{name} modifier not implemented"))),
        };
        if (anchored && vs.smoothed) || (!anchored && vs.anchored) {
            return Err(self.fail(
                start,
                "anchored and smoothed modifiers cannot be used together",
            ));
        }
        if anchored {
            vs.anchored = true;
        } else {
            vs.smoothed = true;
        }
        Ok(node)
    }
}
