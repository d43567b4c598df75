//! Durations of ranges, subquery steps and offsets: a number of seconds, a duration literal
//! (`1h30m`), or — as Prometheus' experimental duration expressions — constant arithmetic
//! on those (`[26m+4m]`, `offset (2*1m)`, `min_of(1h, 30m)`), folded at parse time.
//! `step()` and `range()`, which depend on the query, are not supported.

use super::lexer::{Kw, T};
use super::literals::{parse_duration, parse_number};
use super::{PResult, Parser};

/// Go's `time.Duration` limit, in seconds.
const MAX_SECONDS: f64 = 9_223_372_036.854_775;

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

fn dur_binop(kind: T) -> Option<(u8, bool)> {
    match kind {
        T::Add | T::Sub => Some((4, false)),
        T::Mul | T::Div | T::Mod => Some((5, false)),
        T::Pow => Some((6, true)),
        _ => None,
    }
}

impl Parser<'_> {
    /// The range or step inside `[...]`, in milliseconds (must be positive).
    pub(super) fn parse_bracket_duration(&mut self, ctx: &str, expected: &str) -> PResult<i64> {
        let start = self.peek();
        if !starts_duration(start.kind) {
            return Err(self.unexpected(Some(ctx), Some(expected)));
        }
        let secs = self.dur_expr(0)?;
        if secs.is_nan() || secs <= 0.0 {
            return Err(self.fail(start.start, "duration must be greater than 0"));
        }
        let ms = self.seconds_to_ms(secs, start.start)?;
        if ms <= 0 {
            return Err(self.fail(start.start, "duration must be greater than 0"));
        }
        Ok(ms)
    }

    /// The value after `offset`, in milliseconds. A literal ends the offset (`x offset 1m + 1`
    /// is `(x offset 1m) + 1`); parenthesised expressions may hold arithmetic.
    pub(super) fn parse_offset_duration(&mut self) -> PResult<i64> {
        let start = self.peek();
        let mut sign = 1.0;
        if matches!(start.kind, T::Add | T::Sub) {
            self.bump();
            if start.kind == T::Sub {
                sign = -1.0;
            }
        }
        let t = self.peek();
        let secs = match t.kind {
            T::Number | T::Duration => self.dur_literal()?,
            T::LParen => {
                self.bump();
                let v = self.dur_expr(0)?;
                self.expect(T::RParen, None, None)?;
                v
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
        self.seconds_to_ms(sign * secs, start.start)
    }

    fn seconds_to_ms(&mut self, secs: f64, pos: usize) -> PResult<i64> {
        if !secs.is_finite() || secs.abs() > MAX_SECONDS {
            return Err(self.fail(pos, "duration out of range"));
        }
        let ns = (secs * 1e9).round() as i64;
        Ok(ns / 1_000_000)
    }

    fn dur_literal(&mut self) -> PResult<f64> {
        let t = self.bump();
        let text = self.text(t);
        match t.kind {
            T::Number => parse_number(text)
                .map_err(|e| self.fail(t.start, format!("error parsing number: {e}"))),
            _ => parse_duration(text)
                .map(|ms| ms as f64 / 1000.0)
                .map_err(|e| self.fail(t.start, e)),
        }
    }

    fn dur_expr(&mut self, min_prec: u8) -> PResult<f64> {
        let mut lhs = self.dur_unary()?;
        loop {
            let op = self.peek();
            let Some((prec, right)) = dur_binop(op.kind) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.bump();
            let rhs = self.dur_expr(if right { prec } else { prec + 1 })?;
            lhs = match op.kind {
                T::Add => lhs + rhs,
                T::Sub => lhs - rhs,
                T::Mul => lhs * rhs,
                T::Div if rhs == 0.0 => return Err(self.fail(op.start, "division by zero")),
                T::Div => lhs / rhs,
                T::Mod if rhs == 0.0 => return Err(self.fail(op.start, "modulo by zero")),
                T::Mod => lhs % rhs,
                _ => lhs.powf(rhs),
            };
        }
        Ok(lhs)
    }

    fn dur_unary(&mut self) -> PResult<f64> {
        match self.peek().kind {
            T::Add => {
                self.bump();
                self.dur_expr(6)
            }
            T::Sub => {
                self.bump();
                Ok(-self.dur_expr(6)?)
            }
            _ => self.dur_primary(),
        }
    }

    fn dur_primary(&mut self) -> PResult<f64> {
        let t = self.peek();
        match t.kind {
            T::Number | T::Duration => self.dur_literal(),
            T::LParen => {
                self.bump();
                let v = self.dur_expr(0)?;
                self.expect(T::RParen, None, None)?;
                Ok(v)
            }
            T::Kw(Kw::Step | Kw::Range) => Err(self.fail(
                t.start,
                "step() and range() in duration expressions are not supported",
            )),
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
                Ok(if is_min { a.min(b) } else { a.max(b) })
            }
            _ => Err(self.unexpected(None, None)),
        }
    }
}
