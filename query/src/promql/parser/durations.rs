//! Durations of ranges, subquery steps and offsets: a number of seconds, a duration literal
//! (`1h30m`), or — as Prometheus' experimental duration expressions — arithmetic on those
//! (`[26m+4m]`, `offset (2*1m)`, `min_of(1h, 30m)`). Constant arithmetic is folded at parse
//! time; expressions using `step()` or `range()` are kept as a [`DurationExpr`] and resolved
//! when the query runs.

use super::super::ast::{DurationExpr, DurationOp};
use super::lexer::{Kw, T};
use super::literals::{parse_duration, parse_number};
use super::{PResult, Parser};

/// Go's `time.Duration` limit, in seconds.
const MAX_SECONDS: f64 = 9_223_372_036.854_775;

/// A parsed duration: a constant (seconds, and whether a duration literal was involved, for
/// printing) or an expression that depends on the query.
#[derive(Clone, Debug)]
enum Dur {
    Const(f64, bool),
    Dyn(DurationExpr),
}

impl Dur {
    fn into_expr(self) -> DurationExpr {
        match self {
            Dur::Const(secs, duration) => DurationExpr::Number { secs, duration },
            Dur::Dyn(e) => e,
        }
    }
}

/// A range, step or offset: milliseconds, or an expression resolved per query (the
/// milliseconds are then 0).
pub(super) type DurationValue = (i64, Option<DurationExpr>);

fn starts_duration(kind: T) -> bool {
    matches!(
        kind,
        T::Number
            | T::Duration
            | T::Add
            | T::Sub
            | T::LParen
            | T::Ident
            | T::Kw(Kw::Min | Kw::Max | Kw::Step | Kw::Range)
    )
}

fn dur_binop(kind: T) -> Option<(DurationOp, u8, bool)> {
    match kind {
        T::Add => Some((DurationOp::Add, 4, false)),
        T::Sub => Some((DurationOp::Sub, 4, false)),
        T::Mul => Some((DurationOp::Mul, 5, false)),
        T::Div => Some((DurationOp::Div, 5, false)),
        T::Mod => Some((DurationOp::Mod, 5, false)),
        T::Pow => Some((DurationOp::Pow, 6, true)),
        _ => None,
    }
}

impl Parser<'_> {
    /// The range or step inside `[...]`, in milliseconds (must be positive).
    pub(super) fn parse_bracket_duration(
        &mut self,
        ctx: &str,
        expected: &str,
    ) -> PResult<DurationValue> {
        let start = self.peek();
        if !starts_duration(start.kind) {
            return Err(self.unexpected(Some(ctx), Some(expected)));
        }
        let secs = match self.dur_expr(0)? {
            Dur::Const(secs, _) => secs,
            Dur::Dyn(e) => return Ok((0, Some(e))),
        };
        if secs.is_nan() || secs <= 0.0 {
            return Err(self.fail(start.start, "duration must be greater than 0"));
        }
        let ms = self.seconds_to_ms(secs, start.start)?;
        if ms <= 0 {
            return Err(self.fail(start.start, "duration must be greater than 0"));
        }
        Ok((ms, None))
    }

    /// The value after `offset`, in milliseconds. A literal ends the offset (`x offset 1m + 1`
    /// is `(x offset 1m) + 1`); parenthesised expressions may hold arithmetic.
    pub(super) fn parse_offset_duration(&mut self) -> PResult<DurationValue> {
        let start = self.peek();
        let mut neg = false;
        if matches!(start.kind, T::Add | T::Sub) {
            self.bump();
            neg = start.kind == T::Sub;
        }
        let t = self.peek();
        let value = match t.kind {
            T::Number | T::Duration => self.dur_literal()?,
            T::LParen => {
                self.bump();
                let v = self.dur_expr(0)?;
                self.expect(T::RParen, None, None)?;
                match v {
                    Dur::Dyn(e) => Dur::Dyn(DurationExpr::Paren(Box::new(e))),
                    c => c,
                }
            }
            T::Ident | T::Kw(Kw::Min | Kw::Max | Kw::Step | Kw::Range)
                if self.peek_at(1).kind == T::LParen =>
            {
                self.dur_primary()?
            }
            _ => {
                return Err(
                    self.unexpected(Some("offset"), Some("number, duration, step(), or range()"))
                )
            }
        };
        match value {
            Dur::Const(secs, _) => {
                let secs = if neg { -secs } else { secs };
                Ok((self.seconds_to_ms(secs, start.start)?, None))
            }
            Dur::Dyn(e) if neg => Ok((0, Some(DurationExpr::Neg(Box::new(e))))),
            Dur::Dyn(e) => Ok((0, Some(e))),
        }
    }

    fn seconds_to_ms(&mut self, secs: f64, pos: usize) -> PResult<i64> {
        if !secs.is_finite() || secs.abs() > MAX_SECONDS {
            return Err(self.fail(pos, "duration out of range"));
        }
        let ns = (secs * 1e9).round() as i64;
        Ok(ns / 1_000_000)
    }

    fn dur_literal(&mut self) -> PResult<Dur> {
        let t = self.bump();
        let text = self.text(t);
        match t.kind {
            T::Number => parse_number(text)
                .map(|v| Dur::Const(v, false))
                .map_err(|e| self.fail(t.start, format!("error parsing number: {e}"))),
            _ => parse_duration(text)
                .map(|ms| Dur::Const(ms as f64 / 1000.0, true))
                .map_err(|e| self.fail(t.start, e)),
        }
    }

    fn dur_expr(&mut self, min_prec: u8) -> PResult<Dur> {
        let mut lhs = self.dur_unary()?;
        loop {
            let op_tok = self.peek();
            let Some((op, prec, right)) = dur_binop(op_tok.kind) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.bump();
            let rhs = self.dur_expr(if right { prec } else { prec + 1 })?;
            if let Dur::Const(r, _) = rhs {
                if r == 0.0 && op == DurationOp::Div {
                    return Err(self.fail(op_tok.start, "division by zero"));
                }
                if r == 0.0 && op == DurationOp::Mod {
                    return Err(self.fail(op_tok.start, "modulo by zero"));
                }
            }
            lhs = match (lhs, rhs) {
                (Dur::Const(l, ld), Dur::Const(r, rd)) => Dur::Const(
                    match op {
                        DurationOp::Add => l + r,
                        DurationOp::Sub => l - r,
                        DurationOp::Mul => l * r,
                        DurationOp::Div => l / r,
                        DurationOp::Mod => l % r,
                        DurationOp::Pow => l.powf(r),
                    },
                    ld || rd,
                ),
                (l, r) => Dur::Dyn(DurationExpr::Binary {
                    op,
                    lhs: Box::new(l.into_expr()),
                    rhs: Box::new(r.into_expr()),
                }),
            };
        }
        Ok(lhs)
    }

    fn dur_unary(&mut self) -> PResult<Dur> {
        match self.peek().kind {
            T::Add => {
                self.bump();
                self.dur_expr(6)
            }
            T::Sub => {
                self.bump();
                Ok(match self.dur_expr(6)? {
                    Dur::Const(v, d) => Dur::Const(-v, d),
                    Dur::Dyn(e) => Dur::Dyn(DurationExpr::Neg(Box::new(e))),
                })
            }
            _ => self.dur_primary(),
        }
    }

    fn dur_primary(&mut self) -> PResult<Dur> {
        let t = self.peek();
        match t.kind {
            T::Number | T::Duration => self.dur_literal(),
            T::LParen => {
                self.bump();
                let v = self.dur_expr(0)?;
                self.expect(T::RParen, None, None)?;
                Ok(match v {
                    Dur::Dyn(e) => Dur::Dyn(DurationExpr::Paren(Box::new(e))),
                    c => c,
                })
            }
            T::Kw(k @ (Kw::Step | Kw::Range)) => {
                self.bump();
                self.expect(T::LParen, None, None)?;
                self.expect(T::RParen, None, None)?;
                Ok(Dur::Dyn(if k == Kw::Step {
                    DurationExpr::Step
                } else {
                    DurationExpr::Range
                }))
            }
            T::Ident | T::Kw(Kw::Min | Kw::Max) => {
                let name = self.text(t).to_ascii_lowercase();
                let is_min = match name.as_str() {
                    "min_of" | "min" => true,
                    "max_of" | "max" => false,
                    _ => return Err(self.unexpected(None, None)),
                };
                self.bump();
                self.expect(T::LParen, None, None)?;
                let a = self.dur_expr(0)?;
                self.expect(T::Comma, None, None)?;
                let b = self.dur_expr(0)?;
                self.expect(T::RParen, None, None)?;
                Ok(match (a, b) {
                    (Dur::Const(x, xd), Dur::Const(y, yd)) => {
                        Dur::Const(if is_min { x.min(y) } else { x.max(y) }, xd || yd)
                    }
                    (a, b) => {
                        let (a, b) = (Box::new(a.into_expr()), Box::new(b.into_expr()));
                        Dur::Dyn(if is_min {
                            DurationExpr::Min(a, b)
                        } else {
                            DurationExpr::Max(a, b)
                        })
                    }
                })
            }
            _ => Err(self.unexpected(None, None)),
        }
    }
}
