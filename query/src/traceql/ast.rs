//! The TraceQL syntax tree produced by [`super::parse`].
//!
//! A query is a [`Pipeline`]: a spanset expression (span filters `{ … }` combined with logical
//! and structural spanset operators) followed by `|` stages (aggregate filters, `select`, `by`,
//! further span filters). Field expressions inside `{ … }` compare span intrinsics and
//! attributes with literals. Durations are nanoseconds.

use sextant_storage::traces::{AttrScope, SpanKind, StatusCode};

/// A whole query: a spanset expression and its pipeline stages, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    pub source: Box<SpansetExpr>,
    pub stages: Vec<Stage>,
}

/// Expressions that yield spansets.
#[derive(Clone, Debug, PartialEq)]
pub enum SpansetExpr {
    /// `{ expr }`; `{}` holds [`FieldExpr::Static`]`(Static::Bool(true))`.
    Filter(FieldExpr),
    /// A parenthesised pipeline used as an operand.
    Pipeline(Pipeline),
    Binary {
        op: SpansetOp,
        lhs: Box<SpansetExpr>,
        rhs: Box<SpansetExpr>,
    },
}

/// Operators between spansets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpansetOp {
    /// `&&`: both sides match somewhere in the trace; the union of their spans.
    And,
    /// `||`: the union of both sides' spans.
    Or,
    /// `>`: right-hand spans whose parent matches the left.
    Child,
    /// `>>`: right-hand spans with an ancestor matching the left.
    Descendant,
    /// `<`: right-hand spans that are the parent of a left-hand span.
    Parent,
    /// `<<`: right-hand spans that are an ancestor of a left-hand span.
    Ancestor,
    /// `~`: right-hand spans with a sibling (same parent, other span) matching the left.
    Sibling,
}

/// A pipeline stage after `|`.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// A span filter applied to each spanset's spans.
    Filter(FieldExpr),
    /// `count() op n`, `avg(expr) op x`, … : keeps spansets whose aggregate compares true.
    Aggregate {
        func: AggFunc,
        arg: Option<FieldExpr>,
        op: CmpOp,
        value: Static,
    },
    /// `select(a, b)`: attributes to report on each returned span.
    Select(Vec<Attribute>),
    /// `by(expr)`: splits each spanset by the value of `expr`.
    By(FieldExpr),
    /// `coalesce()`: merges all spansets of a trace into one.
    Coalesce,
}

/// Aggregates usable in a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

/// A value computed per span.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldExpr {
    Static(Static),
    Attr(Attribute),
    Cmp {
        op: CmpOp,
        lhs: Box<FieldExpr>,
        rhs: Box<FieldExpr>,
    },
    And(Box<FieldExpr>, Box<FieldExpr>),
    Or(Box<FieldExpr>, Box<FieldExpr>),
    Not(Box<FieldExpr>),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Regex,
    NotRegex,
}

impl CmpOp {
    /// The operator with its operands swapped (`a < b` ⇔ `b > a`).
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Regex => "=~",
            CmpOp::NotRegex => "!~",
        }
    }
}

/// Something read from a span, its resource or its trace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attribute {
    Intrinsic(Intrinsic),
    /// `span.k`, `resource.k` or unscoped `.k` ([`AttrScope::Any`]).
    Scoped {
        scope: AttrScope,
        key: String,
    },
}

impl Attribute {
    /// The key reported for this attribute in search results (`http.method` for
    /// `span.http.method`, `duration` for the intrinsic).
    pub fn result_key(&self) -> String {
        match self {
            Attribute::Intrinsic(i) => i.name().to_string(),
            Attribute::Scoped { key, .. } => key.clone(),
        }
    }
}

/// Built-in fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    TraceDuration,
    RootName,
    RootServiceName,
}

impl Intrinsic {
    /// True for intrinsics that describe the whole trace rather than one span.
    pub fn is_trace_level(self) -> bool {
        matches!(
            self,
            Intrinsic::TraceDuration | Intrinsic::RootName | Intrinsic::RootServiceName
        )
    }

    /// The name as written in a query.
    pub fn name(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::Duration => "duration",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootServiceName => "rootServiceName",
        }
    }
}

/// A literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Static {
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(u64),
    Bool(bool),
    Nil,
    Status(StatusCode),
    Kind(SpanKind),
}

/// The TraceQL name of a status (`ok`, `error`, `unset`).
pub fn status_name(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
        StatusCode::Unset => "unset",
    }
}

/// The TraceQL name of a span kind (`server`, `client`, …).
pub fn kind_name(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}
