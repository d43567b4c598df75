//! Duration expressions that depend on the query (`step()`, `range()`), kept in the tree
//! and resolved when the query's step and range are known. Constant arithmetic is folded
//! by the parser and never reaches this type except as [`DurationExpr::Number`] leaves.

use std::fmt;

use super::super::parser::literals::format_duration;
use super::super::printer::format_number;

/// Arithmetic on durations, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl DurationOp {
    pub fn as_str(self) -> &'static str {
        match self {
            DurationOp::Add => "+",
            DurationOp::Sub => "-",
            DurationOp::Mul => "*",
            DurationOp::Div => "/",
            DurationOp::Mod => "%",
            DurationOp::Pow => "^",
        }
    }
}

/// A duration expression in seconds.
#[derive(Clone, Debug, PartialEq)]
pub enum DurationExpr {
    /// A number of seconds; `duration` is true when it was written as a duration literal
    /// (`5m`), which is how it is printed back.
    Number { secs: f64, duration: bool },
    /// `step()`: the step of a range query, 0 for instant queries.
    Step,
    /// `range()`: end minus start of the query, 0 for instant queries.
    Range,
    /// Unary minus.
    Neg(Box<DurationExpr>),
    Binary {
        op: DurationOp,
        lhs: Box<DurationExpr>,
        rhs: Box<DurationExpr>,
    },
    /// `min_of(a, b)`.
    Min(Box<DurationExpr>, Box<DurationExpr>),
    /// `max_of(a, b)`.
    Max(Box<DurationExpr>, Box<DurationExpr>),
    /// A parenthesised expression (kept for printing).
    Paren(Box<DurationExpr>),
}

impl DurationExpr {
    /// Evaluates to seconds given the query's step and range in seconds.
    pub fn eval(&self, step: f64, range: f64) -> Result<f64, String> {
        Ok(match self {
            DurationExpr::Number { secs, .. } => *secs,
            DurationExpr::Step => step,
            DurationExpr::Range => range,
            DurationExpr::Neg(e) => -e.eval(step, range)?,
            DurationExpr::Paren(e) => e.eval(step, range)?,
            DurationExpr::Min(a, b) => a.eval(step, range)?.min(b.eval(step, range)?),
            DurationExpr::Max(a, b) => a.eval(step, range)?.max(b.eval(step, range)?),
            DurationExpr::Binary { op, lhs, rhs } => {
                let (l, r) = (lhs.eval(step, range)?, rhs.eval(step, range)?);
                match op {
                    DurationOp::Add => l + r,
                    DurationOp::Sub => l - r,
                    DurationOp::Mul => l * r,
                    DurationOp::Div if r == 0.0 => return Err("division by zero".into()),
                    DurationOp::Div => l / r,
                    DurationOp::Mod if r == 0.0 => return Err("modulo by zero".into()),
                    DurationOp::Mod => l % r,
                    DurationOp::Pow => l.powf(r),
                }
            }
        })
    }

    /// Evaluates to whole milliseconds (truncated like Prometheus). With `allow_negative`
    /// false (ranges and steps) the result must be positive.
    pub fn eval_ms(&self, step: f64, range: f64, allow_negative: bool) -> Result<i64, String> {
        let secs = self.eval(step, range)?;
        let ms = secs * 1000.0;
        if !ms.is_finite() || ms.abs() >= 9.223_372_036_854_775e18 {
            return Err("duration out of range".into());
        }
        let ms = ms.trunc() as i64;
        if !allow_negative && ms <= 0 {
            return Err("duration must be greater than 0".into());
        }
        Ok(ms)
    }
}

impl fmt::Display for DurationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationExpr::Number { secs, duration } => {
                if *duration && secs.is_finite() {
                    let ms = (secs * 1000.0).round() as i64;
                    if ms < 0 {
                        write!(f, "-{}", format_duration(ms.saturating_neg()))
                    } else {
                        f.write_str(&format_duration(ms))
                    }
                } else {
                    f.write_str(&format_number(*secs))
                }
            }
            DurationExpr::Step => f.write_str("step()"),
            DurationExpr::Range => f.write_str("range()"),
            DurationExpr::Neg(e) => write!(f, "-{e}"),
            DurationExpr::Paren(e) => write!(f, "({e})"),
            DurationExpr::Min(a, b) => write!(f, "min_of({a}, {b})"),
            DurationExpr::Max(a, b) => write!(f, "max_of({a}, {b})"),
            DurationExpr::Binary { op, lhs, rhs } => write!(f, "{lhs} {} {rhs}", op.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(secs: f64, duration: bool) -> Box<DurationExpr> {
        Box::new(DurationExpr::Number { secs, duration })
    }

    #[test]
    fn evaluates_with_step_and_range() {
        // step() + 1ms at step 10s.
        let e = DurationExpr::Binary {
            op: DurationOp::Add,
            lhs: Box::new(DurationExpr::Step),
            rhs: num(0.001, true),
        };
        assert_eq!(e.eval_ms(10.0, 0.0, false), Ok(10_001));
        assert_eq!(e.to_string(), "step() + 1ms");
        // min_of(range(), 8s) with range 10s.
        let m = DurationExpr::Min(Box::new(DurationExpr::Range), num(8.0, true));
        assert_eq!(m.eval_ms(5.0, 10.0, true), Ok(8_000));
        assert_eq!(m.to_string(), "min_of(range(), 8s)");
        // -(step() * 2) may be negative as an offset but not as a range.
        let n = DurationExpr::Neg(Box::new(DurationExpr::Paren(Box::new(
            DurationExpr::Binary {
                op: DurationOp::Mul,
                lhs: Box::new(DurationExpr::Step),
                rhs: num(2.0, false),
            },
        ))));
        assert_eq!(n.eval_ms(5.0, 0.0, true), Ok(-10_000));
        assert_eq!(n.to_string(), "-(step() * 2)");
        assert_eq!(
            n.eval_ms(5.0, 0.0, false),
            Err("duration must be greater than 0".to_string())
        );
        // step() is 0 in instant queries.
        assert_eq!(
            DurationExpr::Step.eval_ms(0.0, 0.0, false),
            Err("duration must be greater than 0".to_string())
        );
    }

    #[test]
    fn rejects_division_by_zero_and_overflow() {
        let d = DurationExpr::Binary {
            op: DurationOp::Div,
            lhs: num(1.0, false),
            rhs: Box::new(DurationExpr::Step),
        };
        assert_eq!(d.eval(0.0, 0.0), Err("division by zero".to_string()));
        let big = DurationExpr::Binary {
            op: DurationOp::Pow,
            lhs: Box::new(DurationExpr::Step),
            rhs: num(400.0, false),
        };
        assert_eq!(
            big.eval_ms(10.0, 0.0, true),
            Err("duration out of range".to_string())
        );
    }
}
