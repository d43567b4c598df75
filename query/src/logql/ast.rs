//! The LogQL syntax tree: the contract between the parser and the evaluator. Regexes,
//! patterns and templates are compiled once at parse time and carried in the tree; the
//! printer (`printer.rs`) turns a tree back into canonical text.

use regex::Regex;
use sextant_storage::Matcher;

use super::parsers::{IpPattern, Pattern};
use super::template::Template;

/// A whole query: a log query (streams) or a metric query (samples).
#[derive(Clone, Debug)]
pub enum LogqlExpr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// A stream selector followed by a pipeline.
#[derive(Clone, Debug)]
pub struct LogExpr {
    pub matchers: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

/// One stage of a log pipeline, applied to each entry in order.
#[derive(Clone, Debug)]
pub enum Stage {
    LineFilter(LineFilter),
    /// `json` with optional `label="path"` parameters (empty: extract every field).
    Json(Vec<(String, String)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<(String, String)>,
    },
    /// `regexp "..."`: named capture groups become labels.
    Regexp(String, Regex),
    Pattern(String, Pattern),
    Unpack,
    LabelFilter(LabelFilter),
    LineFormat(String, Template),
    LabelFormat(Vec<LabelFmt>),
    Drop(Vec<LabelSel>),
    Keep(Vec<LabelSel>),
    Decolorize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=`: contains.
    Contains,
    /// `!=`: does not contain.
    NotContains,
    /// `|~`: regex matches somewhere in the line.
    Match,
    /// `!~`: regex matches nowhere.
    NotMatch,
    /// `|>`: the line has the pattern's shape (`<_> error <_>`).
    PatternMatch,
    /// `!>`: the line does not have the pattern's shape.
    PatternNotMatch,
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Match => "|~",
            LineFilterOp::NotMatch => "!~",
            LineFilterOp::PatternMatch => "|>",
            LineFilterOp::PatternNotMatch => "!>",
        }
    }
}

/// A line filter with its `or` alternatives (`|= "a" or "b"`: any of them; for the negated
/// operators: none of them).
#[derive(Clone, Debug)]
pub struct LineFilter {
    pub op: LineFilterOp,
    pub values: Vec<String>,
    /// Compiled regexes, one per value, for `|~` and `!~`.
    pub regexes: Vec<Regex>,
    /// Compiled patterns, one per value, for `|>` and `!>`.
    pub patterns: Vec<Pattern>,
    /// `|= ip("...")` / `!= ip("...")`: the values are IP patterns (compiled here) and the
    /// line matches when it contains an address they match.
    pub ips: Option<Vec<IpPattern>>,
}

/// Comparison operators of numeric label filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }

    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// How the right-hand side of a numeric label filter was written (and so how the label's
/// value is converted before comparing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumKind {
    /// A plain number.
    Number,
    /// A duration (`5s`); compared in seconds.
    Duration,
    /// A byte size (`20MB`); compared in bytes.
    Bytes,
}

/// A label filter expression (`| status >= 400 and level="error"`).
#[derive(Clone, Debug)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// A string matcher (`=`, `!=`, `=~`, `!~`).
    Str(Matcher),
    Num {
        name: String,
        op: CmpOp,
        kind: NumKind,
        /// Seconds for durations, bytes for byte sizes.
        value: f64,
        /// The right-hand side as written, for printing.
        text: String,
    },
    /// `name = ip("...")` / `name != ip("...")`.
    Ip {
        name: String,
        negate: bool,
        text: String,
        pattern: IpPattern,
    },
}

/// One `label_format` rule: `dst=src` (rename) or `dst="{{template}}"`.
#[derive(Clone, Debug)]
pub enum LabelFmt {
    Rename {
        dst: String,
        src: String,
    },
    Template {
        dst: String,
        text: String,
        tmpl: Template,
    },
}

/// A `drop`/`keep` operand: a bare name or a `name op "value"` matcher.
#[derive(Clone, Debug)]
pub enum LabelSel {
    Name(String),
    Matcher(Matcher),
}

/// A metric query node.
#[derive(Clone, Debug)]
pub enum MetricExpr {
    Range(Box<RangeAgg>),
    Vector(Box<VectorAgg>),
    Binary(Box<BinaryExpr>),
    /// A number literal: a scalar.
    Literal(f64),
    /// `vector(x)`: a one-sample vector without labels at every step.
    VectorFn(f64),
    /// `( ... )` kept for printing.
    Paren(Box<MetricExpr>),
    /// `label_replace(v, "dst", "replacement", "src", "regex")`.
    LabelReplace(Box<LabelReplace>),
}

/// Prometheus' `label_replace`: where the (anchored) regex matches the value of `src`, `dst`
/// is set to the expanded replacement (`$1`, `${name}`); an empty result removes `dst`.
#[derive(Clone, Debug)]
pub struct LabelReplace {
    pub inner: MetricExpr,
    pub dst: String,
    pub replacement: String,
    pub src: String,
    pub regex_text: String,
    pub regex: Regex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub const ALL: [RangeOp; 15] = [
        RangeOp::CountOverTime,
        RangeOp::RateCounter,
        RangeOp::Rate,
        RangeOp::BytesOverTime,
        RangeOp::BytesRate,
        RangeOp::AbsentOverTime,
        RangeOp::SumOverTime,
        RangeOp::AvgOverTime,
        RangeOp::MinOverTime,
        RangeOp::MaxOverTime,
        RangeOp::StddevOverTime,
        RangeOp::StdvarOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::FirstOverTime,
        RangeOp::LastOverTime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::AbsentOverTime => "absent_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
        }
    }
}

/// How an unwrapped label's value becomes a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// Parse as a float.
    None,
    /// `duration(label)` / `duration_seconds(label)`: a Go duration, in seconds.
    Duration,
    DurationSeconds,
    /// `bytes(label)`: a humanized byte size, in bytes.
    Bytes,
}

/// `| unwrap [conv(]label[)]` followed by optional label filters.
#[derive(Clone, Debug)]
pub struct Unwrap {
    pub label: String,
    pub conv: Conversion,
    pub post_filters: Vec<LabelFilter>,
}

/// `by (...)` / `without (...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// A range aggregation: `op([param,] selector pipeline [unwrap] [range] [offset]) [grouping]`.
#[derive(Clone, Debug)]
pub struct RangeAgg {
    pub op: RangeOp,
    /// The quantile of `quantile_over_time`.
    pub param: Option<f64>,
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    pub range_ns: i64,
    pub offset_ns: i64,
    pub grouping: Option<Grouping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

impl VecOp {
    pub const ALL: [VecOp; 11] = [
        VecOp::Sum,
        VecOp::Avg,
        VecOp::Min,
        VecOp::Max,
        VecOp::Count,
        VecOp::Stddev,
        VecOp::Stdvar,
        VecOp::Topk,
        VecOp::Bottomk,
        VecOp::SortDesc,
        VecOp::Sort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VecOp::Sum => "sum",
            VecOp::Avg => "avg",
            VecOp::Min => "min",
            VecOp::Max => "max",
            VecOp::Count => "count",
            VecOp::Stddev => "stddev",
            VecOp::Stdvar => "stdvar",
            VecOp::Topk => "topk",
            VecOp::Bottomk => "bottomk",
            VecOp::Sort => "sort",
            VecOp::SortDesc => "sort_desc",
        }
    }
}

#[derive(Clone, Debug)]
pub struct VectorAgg {
    pub op: VecOp,
    /// `k` of `topk`/`bottomk`.
    pub param: Option<usize>,
    pub inner: MetricExpr,
    pub grouping: Option<Grouping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Unless,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Unless => "unless",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
        }
    }

    /// Precedence, higher binds tighter (PromQL's table).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }

    /// The operation on two numbers as Loki merges samples: comparisons give 0 or 1,
    /// division and modulo by zero give NaN. Set operators give NaN (they never apply to
    /// numbers).
    pub fn apply(self, a: f64, b: f64) -> f64 {
        let truth = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div if b == 0.0 => f64::NAN,
            BinOp::Div => a / b,
            BinOp::Mod if b == 0.0 => f64::NAN,
            BinOp::Mod => a % b,
            BinOp::Pow => a.powf(b),
            BinOp::Eq => truth(a == b),
            BinOp::Ne => truth(a != b),
            BinOp::Gt => truth(a > b),
            BinOp::Ge => truth(a >= b),
            BinOp::Lt => truth(a < b),
            BinOp::Le => truth(a <= b),
            BinOp::Or | BinOp::And | BinOp::Unless => f64::NAN,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::Or | BinOp::And | BinOp::Unless)
    }
}

/// `on(...)` / `ignoring(...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorMatching {
    pub on: bool,
    pub labels: Vec<String>,
    /// `group_left(...)` / `group_right(...)`: which side is the "many" side and the labels
    /// copied from the "one" side; `None` for one-to-one matching.
    pub group: Option<Group>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `group_left` (the left side has many series per match) or `group_right`.
    pub left: bool,
    pub include: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct BinaryExpr {
    pub op: BinOp,
    pub lhs: MetricExpr,
    pub rhs: MetricExpr,
    /// The `bool` modifier of comparisons.
    pub return_bool: bool,
    pub matching: Option<VectorMatching>,
}

impl LogExpr {
    /// True when some stage may change the line (so later line filters see another text).
    pub fn stage_mutates_line(stage: &Stage) -> bool {
        matches!(
            stage,
            Stage::LineFormat(..) | Stage::Decolorize | Stage::Unpack
        )
    }
}
