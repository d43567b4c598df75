//! The TraceQL parser (`nom`). Precedence, loosest first: spanset `||`, spanset `&&`,
//! structural operators (`>` `>>` `<` `<<` `~`, left-associative); inside `{ … }`: `||`, `&&`,
//! comparisons, `!`. Errors carry the byte offset, line and column of the offending input.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, digit1, multispace0};
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::{pair, preceded, tuple};
use nom::IResult;
use sextant_storage::traces::{AttrScope, SpanKind, StatusCode};

use super::ast::*;
use super::TraceqlError;

/// A parse failure at `at` (the remaining input).
#[derive(Debug)]
pub(super) struct PErr<'a> {
    at: &'a str,
    msg: Option<String>,
}

impl<'a> ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        PErr {
            at: input,
            msg: None,
        }
    }
    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
    fn or(self, other: Self) -> Self {
        // Keep the error that got further (less input left).
        if other.at.len() <= self.at.len() {
            other
        } else {
            self
        }
    }
}

type Res<'a, T> = IResult<&'a str, T, PErr<'a>>;

fn fail<'a, T>(at: &'a str, msg: impl Into<String>) -> Res<'a, T> {
    Err(nom::Err::Failure(PErr {
        at,
        msg: Some(msg.into()),
    }))
}

fn soft<'a, T>(at: &'a str) -> Res<'a, T> {
    Err(nom::Err::Error(PErr { at, msg: None }))
}

/// Skips white space, then runs `p`.
fn ws<'a, T>(p: impl FnMut(&'a str) -> Res<'a, T>) -> impl FnMut(&'a str) -> Res<'a, T> {
    preceded(multispace0, p)
}

fn sym<'a>(s: &'static str) -> impl FnMut(&'a str) -> Res<'a, &'a str> {
    ws(tag(s))
}

/// Requires `s` next, failing with a message naming it.
fn expect<'a>(s: &'static str, input: &'a str) -> Res<'a, ()> {
    match sym(s)(input) {
        Ok((rest, _)) => Ok((rest, ())),
        Err(_) => {
            let (at, _) = multispace0::<_, PErr>(input).unwrap_or((input, ""));
            fail(at, format!("expected {s:?}, found {}", describe(at)))
        }
    }
}

fn describe(at: &str) -> String {
    if at.is_empty() {
        "end of query".into()
    } else {
        let snippet: String = at.chars().take(12).collect();
        format!("{snippet:?}")
    }
}

/// Deepest `(`/`{` nesting a query may have.
pub const MAX_NESTING: usize = 32;
/// Most operator characters (`& | ! < > ~`) a query may have; bounds the syntax tree's depth.
pub const MAX_OPERATOR_CHARS: usize = 256;

/// Rejects queries whose syntax tree would be deep enough to endanger the stack, before any
/// recursive parsing. String literals are skipped.
fn check_complexity(query: &str) -> Result<(), TraceqlError> {
    let (mut depth, mut ops) = (0usize, 0usize);
    let mut chars = query.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for (_, c) in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
            }
            '(' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(TraceqlError::at(
                        query,
                        i,
                        format!("query nests deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            ')' | '}' => depth = depth.saturating_sub(1),
            '&' | '|' | '!' | '<' | '>' | '~' => {
                ops += 1;
                if ops > MAX_OPERATOR_CHARS {
                    return Err(TraceqlError::at(
                        query,
                        i,
                        format!("query has more than {MAX_OPERATOR_CHARS} operator characters"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses a whole TraceQL query.
pub fn parse(query: &str) -> Result<Pipeline, TraceqlError> {
    check_complexity(query)?;
    let result = pipeline(query).and_then(|(rest, p)| {
        let (rest, _) = multispace0(rest)?;
        if rest.is_empty() {
            Ok(p)
        } else {
            fail(rest, format!("unexpected {}", describe(rest))).map(|(_, p): (&str, Pipeline)| p)
        }
    });
    match result {
        Ok(p) => Ok(p),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            let offset = query.len() - e.at.len();
            let msg = e
                .msg
                .unwrap_or_else(|| format!("syntax error at {}", describe(e.at)));
            Err(TraceqlError::at(query, offset, msg))
        }
        Err(nom::Err::Incomplete(_)) => Err(TraceqlError::at(
            query,
            query.len(),
            "unexpected end of query",
        )),
    }
}

fn pipeline(input: &str) -> Res<'_, Pipeline> {
    let (mut input, source) = spanset_or(input)?;
    let mut stages = Vec::new();
    loop {
        // `|` but not `||`.
        let Ok((rest, _)) = sym("|")(input) else {
            break;
        };
        if rest.starts_with('|') {
            break;
        }
        let (rest, st) = stage(rest)?;
        stages.push(st);
        input = rest;
    }
    Ok((
        input,
        Pipeline {
            source: Box::new(source),
            stages,
        },
    ))
}

fn spanset_or(input: &str) -> Res<'_, SpansetExpr> {
    let (mut input, mut lhs) = spanset_and(input)?;
    while let Ok((rest, _)) = sym("||")(input) {
        let (rest, rhs) = spanset_and(rest)?;
        lhs = SpansetExpr::Binary {
            op: SpansetOp::Or,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        input = rest;
    }
    Ok((input, lhs))
}

fn spanset_and(input: &str) -> Res<'_, SpansetExpr> {
    let (mut input, mut lhs) = spanset_structural(input)?;
    while let Ok((rest, _)) = sym("&&")(input) {
        let (rest, rhs) = spanset_structural(rest)?;
        lhs = SpansetExpr::Binary {
            op: SpansetOp::And,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        input = rest;
    }
    Ok((input, lhs))
}

fn structural_op(input: &str) -> Res<'_, SpansetOp> {
    alt((
        nom::combinator::value(SpansetOp::Descendant, sym(">>")),
        nom::combinator::value(SpansetOp::Ancestor, sym("<<")),
        nom::combinator::value(SpansetOp::Child, sym(">")),
        nom::combinator::value(SpansetOp::Parent, sym("<")),
        nom::combinator::value(SpansetOp::Sibling, sym("~")),
    ))(input)
}

fn spanset_structural(input: &str) -> Res<'_, SpansetExpr> {
    let (mut input, mut lhs) = spanset_primary(input)?;
    while let Ok((rest, op)) = structural_op(input) {
        let (rest, rhs) = spanset_primary(rest)?;
        lhs = SpansetExpr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        input = rest;
    }
    Ok((input, lhs))
}

fn spanset_primary(input: &str) -> Res<'_, SpansetExpr> {
    let (at, _) = multispace0(input)?;
    if let Ok((rest, _)) = sym("(")(at) {
        let (rest, p) = pipeline(rest)?;
        let (rest, _) = expect(")", rest)?;
        // A bare parenthesised spanset expression stays an expression.
        if p.stages.is_empty() {
            return Ok((rest, *p.source));
        }
        return Ok((rest, SpansetExpr::Pipeline(p)));
    }
    if at.starts_with('{') {
        let (rest, f) = span_filter(at)?;
        return Ok((rest, SpansetExpr::Filter(f)));
    }
    fail(
        at,
        format!("expected a spanset '{{ … }}', found {}", describe(at)),
    )
}

/// `{ }` or `{ expr }`.
fn span_filter(input: &str) -> Res<'_, FieldExpr> {
    let (rest, _) = expect("{", input)?;
    if let Ok((rest, _)) = sym("}")(rest) {
        return Ok((rest, FieldExpr::Static(Static::Bool(true))));
    }
    let (rest, e) = field_or(rest)?;
    let (rest, _) = expect("}", rest)?;
    Ok((rest, e))
}

fn stage(input: &str) -> Res<'_, Stage> {
    let (at, _) = multispace0(input)?;
    if at.starts_with('{') {
        let (rest, f) = span_filter(at)?;
        return Ok((rest, Stage::Filter(f)));
    }
    let (rest, word) = identifier(at)?;
    let func = match word {
        "count" => Some(AggFunc::Count),
        "avg" => Some(AggFunc::Avg),
        "min" => Some(AggFunc::Min),
        "max" => Some(AggFunc::Max),
        "sum" => Some(AggFunc::Sum),
        _ => None,
    };
    if let Some(func) = func {
        let (rest, _) = expect("(", rest)?;
        let (rest, arg) = if func == AggFunc::Count {
            (rest, None)
        } else {
            let (rest, e) = field_or(rest)?;
            (rest, Some(e))
        };
        let (rest, _) = expect(")", rest)?;
        let (rest, op) = match cmp_op(rest) {
            Ok(v) => v,
            Err(_) => {
                let (at, _) = multispace0(rest)?;
                return fail(at, format!("expected a comparison after {word}()"));
            }
        };
        let (rest, value) = match ws(literal)(rest) {
            Ok(v) => v,
            Err(nom::Err::Failure(e)) => return Err(nom::Err::Failure(e)),
            Err(_) => {
                let (at, _) = multispace0(rest)?;
                return fail(
                    at,
                    format!("expected a number or duration, found {}", describe(at)),
                );
            }
        };
        return Ok((
            rest,
            Stage::Aggregate {
                func,
                arg,
                op,
                value,
            },
        ));
    }
    match word {
        "select" => {
            let (mut rest, _) = expect("(", rest)?;
            let mut attrs = Vec::new();
            loop {
                let (r, _) = multispace0(rest)?;
                let (r, a) = match attribute(r) {
                    Ok(v) => v,
                    Err(nom::Err::Failure(e)) => return Err(nom::Err::Failure(e)),
                    Err(_) => return fail(r, "expected an attribute in select()"),
                };
                attrs.push(a);
                if let Ok((r2, _)) = sym(",")(r) {
                    rest = r2;
                    continue;
                }
                let (r, _) = expect(")", r)?;
                return Ok((r, Stage::Select(attrs)));
            }
        }
        "by" => {
            let (rest, _) = expect("(", rest)?;
            let (rest, e) = field_or(rest)?;
            let (rest, _) = expect(")", rest)?;
            Ok((rest, Stage::By(e)))
        }
        "coalesce" => {
            let (rest, _) = expect("(", rest)?;
            let (rest, _) = expect(")", rest)?;
            Ok((rest, Stage::Coalesce))
        }
        _ => fail(at, format!("unknown pipeline stage {word:?}")),
    }
}

fn field_or(input: &str) -> Res<'_, FieldExpr> {
    let (mut input, mut lhs) = field_and(input)?;
    while let Ok((rest, _)) = sym("||")(input) {
        let (rest, rhs) = field_and(rest)?;
        lhs = FieldExpr::Or(Box::new(lhs), Box::new(rhs));
        input = rest;
    }
    Ok((input, lhs))
}

fn field_and(input: &str) -> Res<'_, FieldExpr> {
    let (mut input, mut lhs) = field_cmp(input)?;
    while let Ok((rest, _)) = sym("&&")(input) {
        let (rest, rhs) = field_cmp(rest)?;
        lhs = FieldExpr::And(Box::new(lhs), Box::new(rhs));
        input = rest;
    }
    Ok((input, lhs))
}

fn cmp_op(input: &str) -> Res<'_, CmpOp> {
    alt((
        nom::combinator::value(CmpOp::Regex, sym("=~")),
        nom::combinator::value(CmpOp::NotRegex, sym("!~")),
        nom::combinator::value(CmpOp::Ne, sym("!=")),
        nom::combinator::value(CmpOp::Ge, sym(">=")),
        nom::combinator::value(CmpOp::Le, sym("<=")),
        nom::combinator::value(CmpOp::Eq, sym("=")),
        nom::combinator::value(CmpOp::Gt, sym(">")),
        nom::combinator::value(CmpOp::Lt, sym("<")),
    ))(input)
}

fn field_cmp(input: &str) -> Res<'_, FieldExpr> {
    let (rest, lhs) = field_unary(input)?;
    match cmp_op(rest) {
        Ok((rest, op)) => {
            let (rest, rhs) = field_unary(rest)?;
            Ok((
                rest,
                FieldExpr::Cmp {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
            ))
        }
        Err(_) => Ok((rest, lhs)),
    }
}

fn field_unary(input: &str) -> Res<'_, FieldExpr> {
    let (at, _) = multispace0(input)?;
    if let Some(rest) = at.strip_prefix('!') {
        if !rest.starts_with('=') && !rest.starts_with('~') {
            let (rest, e) = field_unary(rest)?;
            return Ok((rest, FieldExpr::Not(Box::new(e))));
        }
    }
    if let Some(rest) = at.strip_prefix('(') {
        let (rest, e) = field_or(rest)?;
        let (rest, _) = expect(")", rest)?;
        return Ok((rest, e));
    }
    match literal(at) {
        Ok((rest, s)) => return Ok((rest, FieldExpr::Static(s))),
        Err(nom::Err::Failure(e)) => return Err(nom::Err::Failure(e)),
        Err(_) => {}
    }
    match attribute(at) {
        Ok((rest, a)) => Ok((rest, FieldExpr::Attr(a))),
        Err(nom::Err::Failure(e)) => Err(nom::Err::Failure(e)),
        Err(_) => fail(
            at,
            format!("expected an attribute or a value, found {}", describe(at)),
        ),
    }
}

fn identifier(input: &str) -> Res<'_, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))(input)
}

fn is_attr_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':' | '@' | '#' | '$')
}

/// An attribute key after its scope's `.`: a dotted name or a quoted string.
fn attr_key(input: &str) -> Res<'_, String> {
    if input.starts_with('"') || input.starts_with('`') {
        return string_lit(input);
    }
    match take_while1::<_, _, PErr>(is_attr_char)(input) {
        Ok((rest, k)) => Ok((rest, k.to_string())),
        Err(_) => fail(input, "expected an attribute name"),
    }
}

fn intrinsic_named(name: &str) -> Option<Intrinsic> {
    Some(match name {
        "name" => Intrinsic::Name,
        "status" => Intrinsic::Status,
        "statusMessage" => Intrinsic::StatusMessage,
        "kind" => Intrinsic::Kind,
        "duration" => Intrinsic::Duration,
        "traceDuration" => Intrinsic::TraceDuration,
        "rootName" => Intrinsic::RootName,
        "rootServiceName" => Intrinsic::RootServiceName,
        _ => return None,
    })
}

/// `name`, `span:duration`, `resource.k`, `span.k`, `.k`, `span."a b"`.
fn attribute(input: &str) -> Res<'_, Attribute> {
    if let Some(rest) = input.strip_prefix('.') {
        let (rest, key) = attr_key(rest)?;
        return Ok((
            rest,
            Attribute::Scoped {
                scope: AttrScope::Any,
                key,
            },
        ));
    }
    let (rest, word) = identifier(input)?;
    if let Some(after) = rest.strip_prefix('.') {
        let scope = match word {
            "span" => Some(AttrScope::Span),
            "resource" => Some(AttrScope::Resource),
            _ => None,
        };
        if let Some(scope) = scope {
            let (rest, key) = attr_key(after)?;
            return Ok((rest, Attribute::Scoped { scope, key }));
        }
        if matches!(word, "event" | "link" | "instrumentation" | "parent") {
            return fail(input, format!("the {word:?} scope is not supported"));
        }
    }
    if let Some(after) = rest.strip_prefix(':') {
        let (rest2, name) = identifier(after)?;
        let intrinsic = match (word, name) {
            ("span", "name") => Some(Intrinsic::Name),
            ("span", "status") => Some(Intrinsic::Status),
            ("span", "statusMessage") => Some(Intrinsic::StatusMessage),
            ("span", "kind") => Some(Intrinsic::Kind),
            ("span", "duration") => Some(Intrinsic::Duration),
            ("trace", "duration") => Some(Intrinsic::TraceDuration),
            ("trace", "rootName") => Some(Intrinsic::RootName),
            ("trace", "rootService") => Some(Intrinsic::RootServiceName),
            _ => None,
        };
        return match intrinsic {
            Some(i) => Ok((rest2, Attribute::Intrinsic(i))),
            None => fail(input, format!("unknown intrinsic {word}:{name}")),
        };
    }
    match intrinsic_named(word) {
        Some(i) => Ok((rest, Attribute::Intrinsic(i))),
        None => fail(
            input,
            format!("unknown identifier {word:?} (attributes need a scope: .{word}, span.{word} or resource.{word})"),
        ),
    }
}

/// A literal: string, duration, number, keyword (`true false nil`, statuses, kinds).
fn literal(input: &str) -> Res<'_, Static> {
    if input.starts_with('"') || input.starts_with('`') {
        let (rest, s) = string_lit(input)?;
        return Ok((rest, Static::Str(s)));
    }
    let neg = input.starts_with('-');
    let body = if neg { &input[1..] } else { input };
    if body.starts_with(|c: char| c.is_ascii_digit()) {
        return number_or_duration(body, neg);
    }
    if neg {
        return soft(input);
    }
    let (rest, word) = identifier(input)?;
    if rest.starts_with('.') || rest.starts_with(':') {
        return soft(input);
    }
    let s = match word {
        "true" => Static::Bool(true),
        "false" => Static::Bool(false),
        "nil" => Static::Nil,
        "ok" => Static::Status(StatusCode::Ok),
        "error" => Static::Status(StatusCode::Error),
        "unset" => Static::Status(StatusCode::Unset),
        "server" => Static::Kind(SpanKind::Server),
        "client" => Static::Kind(SpanKind::Client),
        "producer" => Static::Kind(SpanKind::Producer),
        "consumer" => Static::Kind(SpanKind::Consumer),
        "internal" => Static::Kind(SpanKind::Internal),
        "unspecified" => Static::Kind(SpanKind::Unspecified),
        _ => return soft(input),
    };
    Ok((rest, s))
}

fn unit_nanos(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

fn unit(input: &str) -> Res<'_, &str> {
    alt((
        tag("ns"),
        tag("us"),
        tag("µs"),
        tag("ms"),
        tag("s"),
        tag("m"),
        tag("h"),
    ))(input)
}

fn decimal(input: &str) -> Res<'_, &str> {
    recognize(tuple((
        digit1,
        opt(pair(char('.'), digit1)),
        opt(tuple((
            alt((char('e'), char('E'))),
            opt(alt((char('+'), char('-')))),
            digit1,
        ))),
    )))(input)
}

fn number_or_duration(input: &str, neg: bool) -> Res<'_, Static> {
    let (rest, num) = decimal(input)?;
    // A duration: one or more `<decimal><unit>` groups (`1h30m`).
    if let Ok((mut r, u)) = unit(rest) {
        if !r.starts_with(|c: char| c.is_ascii_alphabetic()) {
            if neg {
                return fail(input, "durations cannot be negative");
            }
            let mut total = num.parse::<f64>().unwrap_or(0.0) * unit_nanos(u).unwrap_or(0.0);
            while let Ok((r2, n2)) = decimal(r) {
                let Ok((r3, u2)) = unit(r2) else {
                    return fail(r, "expected a duration unit (ns, us, ms, s, m, h)");
                };
                total += n2.parse::<f64>().unwrap_or(0.0) * unit_nanos(u2).unwrap_or(0.0);
                r = r3;
            }
            if r.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                return fail(r, "bad duration");
            }
            return Ok((r, Static::Duration(total.round() as u64)));
        }
    }
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return fail(rest, format!("bad number or duration {}", describe(input)));
    }
    let is_float = num.contains(['.', 'e', 'E']);
    if is_float {
        match num.parse::<f64>() {
            Ok(f) => Ok((rest, Static::Float(if neg { -f } else { f }))),
            Err(_) => fail(input, format!("bad number {num:?}")),
        }
    } else {
        let text = if neg {
            format!("-{num}")
        } else {
            num.to_string()
        };
        match text.parse::<i64>() {
            Ok(i) => Ok((rest, Static::Int(i))),
            Err(_) => fail(input, format!("integer out of range: {text}")),
        }
    }
}

/// `"…"` with `\" \\ \n \t \r \uXXXX` escapes, or a raw `` `…` `` string.
fn string_lit(input: &str) -> Res<'_, String> {
    if let Some(body) = input.strip_prefix('`') {
        return match body.find('`') {
            Some(end) => Ok((&body[end + 1..], body[..end].to_string())),
            None => fail(input, "unterminated string"),
        };
    }
    let Some(body) = input.strip_prefix('"') else {
        return soft(input);
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((&body[i + 1..], out)),
            '\\' => {
                let Some((j, e)) = chars.next() else {
                    break;
                };
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '\'' => out.push('\''),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex = body.get(j + 1..j + 5).unwrap_or("");
                        match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                            Some(ch) if hex.len() == 4 => {
                                out.push(ch);
                                for _ in 0..4 {
                                    chars.next();
                                }
                            }
                            _ => return fail(&body[i..], "bad \\u escape"),
                        }
                    }
                    other => {
                        // Regex escapes like `\d` are kept as written.
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    fail(input, "unterminated string")
}

/// Parses one attribute or intrinsic as written in a query (`resource.service.name`, `.x`,
/// `span:name`, `status`), e.g. the tag of Tempo's v2 tag-values endpoint.
pub fn parse_attribute(s: &str) -> Result<Attribute, TraceqlError> {
    let t = s.trim();
    match attribute(t) {
        Ok(("", a)) => Ok(a),
        Ok((rest, _)) => Err(TraceqlError::at(
            t,
            t.len() - rest.len(),
            format!("unexpected {}", describe(rest)),
        )),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(TraceqlError::at(
            t,
            t.len() - e.at.len(),
            e.msg
                .unwrap_or_else(|| format!("expected an attribute, found {}", describe(e.at))),
        )),
        Err(nom::Err::Incomplete(_)) => Err(TraceqlError::at(t, t.len(), "incomplete attribute")),
    }
}
