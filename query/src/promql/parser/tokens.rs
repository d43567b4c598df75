//! Token kinds of the PromQL lexer, and how Prometheus describes each in error messages.

/// Keywords, aggregators and the other reserved words of PromQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kw {
    And,
    Or,
    Unless,
    Atan2,
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
    Offset,
    Smoothed,
    Anchored,
    By,
    Without,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Fill,
    FillLeft,
    FillRight,
    Bool,
    Start,
    End,
    Step,
    Range,
}

impl Kw {
    pub(super) fn from_word(lower: &str) -> Option<Kw> {
        Some(match lower {
            "and" => Kw::And,
            "or" => Kw::Or,
            "unless" => Kw::Unless,
            "atan2" => Kw::Atan2,
            "sum" => Kw::Sum,
            "avg" => Kw::Avg,
            "count" => Kw::Count,
            "min" => Kw::Min,
            "max" => Kw::Max,
            "group" => Kw::Group,
            "stddev" => Kw::Stddev,
            "stdvar" => Kw::Stdvar,
            "topk" => Kw::Topk,
            "bottomk" => Kw::Bottomk,
            "count_values" => Kw::CountValues,
            "quantile" => Kw::Quantile,
            "limitk" => Kw::Limitk,
            "limit_ratio" => Kw::LimitRatio,
            "offset" => Kw::Offset,
            "smoothed" => Kw::Smoothed,
            "anchored" => Kw::Anchored,
            "by" => Kw::By,
            "without" => Kw::Without,
            "on" => Kw::On,
            "ignoring" => Kw::Ignoring,
            "group_left" => Kw::GroupLeft,
            "group_right" => Kw::GroupRight,
            "fill" => Kw::Fill,
            "fill_left" => Kw::FillLeft,
            "fill_right" => Kw::FillRight,
            "bool" => Kw::Bool,
            "start" => Kw::Start,
            "end" => Kw::End,
            "step" => Kw::Step,
            "range" => Kw::Range,
            _ => return None,
        })
    }

    /// Set and `atan2` operators are "operators" in Prometheus' token classes.
    pub(super) fn is_operator(self) -> bool {
        matches!(self, Kw::And | Kw::Or | Kw::Unless | Kw::Atan2)
    }

    pub(super) fn is_aggregator(self) -> bool {
        matches!(
            self,
            Kw::Sum
                | Kw::Avg
                | Kw::Count
                | Kw::Min
                | Kw::Max
                | Kw::Group
                | Kw::Stddev
                | Kw::Stdvar
                | Kw::Topk
                | Kw::Bottomk
                | Kw::CountValues
                | Kw::Quantile
                | Kw::Limitk
                | Kw::LimitRatio
        )
    }

    /// The words Prometheus classes as keywords (printed as `<by>` in messages).
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Kw::Offset
                | Kw::Smoothed
                | Kw::Anchored
                | Kw::By
                | Kw::Without
                | Kw::On
                | Kw::Ignoring
                | Kw::GroupLeft
                | Kw::GroupRight
                | Kw::Fill
                | Kw::FillLeft
                | Kw::FillRight
                | Kw::Bool
        )
    }

    /// Words that may also be used as a metric name.
    pub(super) fn can_be_metric_name(self) -> bool {
        !matches!(
            self,
            Kw::Atan2
                | Kw::Bool
                | Kw::On
                | Kw::Ignoring
                | Kw::GroupLeft
                | Kw::GroupRight
                | Kw::Fill
                | Kw::FillLeft
                | Kw::FillRight
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum T {
    Ident,
    MetricIdent,
    Number,
    Duration,
    Str,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    /// `=` (only meaningful inside braces).
    Assign,
    EqlRegex,
    NeqRegex,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eqlc,
    Neq,
    Lss,
    Lte,
    Gtr,
    Gte,
    At,
    /// Prometheus 3.14's histogram trim operators `</` and `>/` (not supported).
    Trim,
    Kw(Kw),
    Eof,
    /// A lexer error; the message is in [`Lexed::error`].
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: T,
    pub start: usize,
    pub end: usize,
}

/// The token stream. It ends with `Eof`, or with `Error` when lexing failed.
pub(super) struct Lexed {
    pub tokens: Vec<Token>,
    pub error: Option<String>,
}

impl Token {
    /// How Prometheus describes this token in "unexpected ..." messages.
    pub(super) fn describe(&self, input: &str) -> String {
        let text = input.get(self.start..self.end).unwrap_or("");
        match self.kind {
            T::Eof => "end of input".to_string(),
            T::Error => text.to_string(),
            T::Ident => format!("identifier {}", super::literals::go_quote(text)),
            T::MetricIdent => format!("metric identifier {}", super::literals::go_quote(text)),
            T::Number => format!("number {}", quote_short(text)),
            T::Duration => format!("duration {}", quote_short(text)),
            T::Str => format!("string {}", quote_short(text)),
            T::Kw(k) if k.is_keyword() => format!("<{text}>"),
            T::Kw(k) if k.is_operator() => format!("<op:{text}>"),
            T::Kw(k) if k.is_aggregator() => format!("<aggr:{text}>"),
            T::Add
            | T::Sub
            | T::Mul
            | T::Div
            | T::Mod
            | T::Pow
            | T::Eqlc
            | T::Neq
            | T::Lss
            | T::Lte
            | T::Gtr
            | T::Gte
            | T::EqlRegex
            | T::NeqRegex
            | T::At
            | T::Trim => format!("<op:{text}>"),
            _ => quote_short(text),
        }
    }
}

/// Go's `%.10q...` for long token values, `%q` otherwise.
fn quote_short(text: &str) -> String {
    if text.len() > 10 {
        let cut: String = text.chars().take(10).collect();
        format!("{}...", super::literals::go_quote(&cut))
    } else {
        super::literals::go_quote(text)
    }
}
