//! The PromQL syntax tree. Produced by [`crate::promql::parse`], consumed by the evaluator and
//! printed back by `Display` (used by `/api/v1/format_query`).
//!
//! Times and durations are integer milliseconds. Every node that can be the subject of an
//! error or annotation carries the byte range it was parsed from.

use sextant_storage::Matcher;

use super::functions::FunctionDef;

mod duration;
pub use duration::{DurationExpr, DurationOp};

/// Byte offsets `[start, end)` into the query text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosRange {
    pub start: usize,
    pub end: usize,
}

/// The four PromQL value types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl ValueType {
    /// The name Prometheus uses in messages and in `resultType`.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }

    /// The name used in parser type errors ("instant vector", "range vector").
    pub fn doc_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    NumberLiteral(f64),
    StringLiteral(String),
    VectorSelector(VectorSelector),
    MatrixSelector(MatrixSelector),
    Subquery(SubqueryExpr),
    Paren(Box<Expr>),
    /// Unary minus or plus. `-x^2` parses as `-(x^2)`.
    Unary(UnaryExpr),
    Binary(BinaryExpr),
    Aggregate(AggregateExpr),
    Call(Call),
}

/// `@ <time>`, `@ start()` or `@ end()`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AtModifier {
    /// Milliseconds since the epoch.
    At(i64),
    Start,
    End,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VectorSelector {
    /// The metric name if written before the braces (it is also present in `matchers` as an
    /// `__name__="…"` equality matcher).
    pub name: Option<String>,
    /// All matchers, including the one for `__name__`.
    pub matchers: Vec<Matcher>,
    /// `offset` in milliseconds; negative offsets look into the future.
    pub offset: i64,
    /// An offset written with `step()`/`range()`, resolved into `offset` per query.
    pub offset_expr: Option<DurationExpr>,
    pub at: Option<AtModifier>,
    /// The `anchored` modifier (range selectors: include the sample at the range start).
    pub anchored: bool,
    /// The `smoothed` modifier (interpolate at the range or evaluation boundaries).
    pub smoothed: bool,
    pub pos: PosRange,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MatrixSelector {
    pub selector: VectorSelector,
    /// The range in milliseconds (`[5m]` is 300000).
    pub range: i64,
    /// A range written with `step()`/`range()`, resolved into `range` per query.
    pub range_expr: Option<DurationExpr>,
    pub pos: PosRange,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubqueryExpr {
    pub expr: Box<Expr>,
    pub range: i64,
    /// `None` for `[5m:]`: the engine's default evaluation interval applies.
    pub step: Option<i64>,
    pub offset: i64,
    pub at: Option<AtModifier>,
    /// Range, step and offset written with `step()`/`range()`, resolved per query.
    pub range_expr: Option<DurationExpr>,
    pub step_expr: Option<DurationExpr>,
    pub offset_expr: Option<DurationExpr>,
    pub pos: PosRange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UnaryExpr {
    pub op: UnaryOp,
    pub expr: Box<Expr>,
    pub pos: PosRange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    /// `</`: keeps the observations of a native histogram below the right-hand value.
    TrimUpper,
    /// `>/`: keeps the observations of a native histogram above the right-hand value.
    TrimLower,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Eql => "==",
            BinaryOp::Neq => "!=",
            BinaryOp::Gtr => ">",
            BinaryOp::Lss => "<",
            BinaryOp::Gte => ">=",
            BinaryOp::Lte => "<=",
            BinaryOp::TrimUpper => "</",
            BinaryOp::TrimLower => ">/",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eql
                | BinaryOp::Neq
                | BinaryOp::Gtr
                | BinaryOp::Lss
                | BinaryOp::Gte
                | BinaryOp::Lte
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }

    /// Binding strength, higher binds tighter: or < and/unless < comparisons < +,- < *,/,%,atan2 < ^.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And | BinaryOp::Unless => 2,
            BinaryOp::Eql
            | BinaryOp::Neq
            | BinaryOp::Gtr
            | BinaryOp::Lss
            | BinaryOp::Gte
            | BinaryOp::Lte
            | BinaryOp::TrimUpper
            | BinaryOp::TrimLower => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::Atan2 => 5,
            BinaryOp::Pow => 6,
        }
    }

    /// Only `^` is right-associative.
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorMatchCardinality {
    OneToOne,
    /// `group_left`
    ManyToOne,
    /// `group_right`
    OneToMany,
    /// Set operators (`and`, `or`, `unless`) between vectors.
    ManyToMany,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VectorMatching {
    pub card: VectorMatchCardinality,
    /// The label list of `on(...)` or `ignoring(...)`.
    pub labels: Vec<String>,
    /// True for `on`, false for `ignoring` (and for no modifier at all, with an empty list).
    pub on: bool,
    /// Extra labels named in `group_left(...)`/`group_right(...)`.
    pub include: Vec<String>,
    /// `fill(v)`, `fill_left(v)`, `fill_right(v)`: values used for a missing side.
    pub fill: FillValues,
}

/// The values a binary operation uses in place of a missing left or right sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FillValues {
    pub lhs: Option<f64>,
    pub rhs: Option<f64>,
}

impl FillValues {
    pub fn is_empty(&self) -> bool {
        self.lhs.is_none() && self.rhs.is_none()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BinaryExpr {
    pub op: BinaryOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    /// The `bool` modifier on a comparison.
    pub return_bool: bool,
    /// Present when both sides are vectors (with defaults filled in when no modifier was written:
    /// one-to-one ignoring nothing, or many-to-many for set operators).
    pub matching: Option<VectorMatching>,
    pub pos: PosRange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    Limitk,
    LimitRatio,
}

impl AggregateOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Count => "count",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::CountValues => "count_values",
            AggregateOp::Quantile => "quantile",
            AggregateOp::Limitk => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
        }
    }

    /// Aggregations that take a parameter before the vector argument.
    pub fn takes_param(self) -> bool {
        matches!(
            self,
            AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::CountValues
                | AggregateOp::Quantile
                | AggregateOp::Limitk
                | AggregateOp::LimitRatio
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AggregateExpr {
    pub op: AggregateOp,
    pub expr: Box<Expr>,
    pub param: Option<Box<Expr>>,
    /// The `by(...)`/`without(...)` label list.
    pub grouping: Vec<String>,
    /// True for `without`, false for `by` or no grouping.
    pub without: bool,
    pub pos: PosRange,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub func: &'static FunctionDef,
    pub args: Vec<Expr>,
    pub pos: PosRange,
}

impl Expr {
    /// The type this expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::NumberLiteral(_) => ValueType::Scalar,
            Expr::StringLiteral(_) => ValueType::String,
            Expr::VectorSelector(_) => ValueType::Vector,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Paren(e) => e.value_type(),
            Expr::Unary(u) => u.expr.value_type(),
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate(_) => ValueType::Vector,
            Expr::Call(c) => c.func.return_type,
        }
    }
}
