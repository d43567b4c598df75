//! The LogQL parser, written with `nom` over the query text. Errors carry the byte offset at
//! which parsing stopped and are rendered like Loki's (`parse error at line 1, col 5: syntax
//! error: unexpected ...`); nom types never leave this module.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::multispace0;
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::{pair, preceded};
use nom::IResult;
use regex::Regex;
use sextant_storage::{MatchOp, Matcher};

use super::ast::*;
use super::parsers::{IpPattern, Pattern};
use super::template::Template;
use super::LogqlError;

/// A parse failure: where (the unparsed rest of the input) and, when known, why.
#[derive(Debug)]
struct PErr<'a> {
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
        // Keep the error that got furthest; prefer one with a message.
        match self.at.len().cmp(&other.at.len()) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            std::cmp::Ordering::Equal if self.msg.is_some() => self,
            std::cmp::Ordering::Equal => other,
        }
    }
}

type Res<'a, T> = IResult<&'a str, T, PErr<'a>>;

/// Prefix of error messages that Loki reports without a position.
const NO_POSITION: &str = "\u{0}nopos:";

fn fail<T>(at: &str, msg: impl Into<String>) -> Res<'_, T> {
    Err(nom::Err::Failure(PErr {
        at,
        msg: Some(msg.into()),
    }))
}

fn backtrack<T>(at: &str) -> Res<'_, T> {
    Err(nom::Err::Error(PErr { at, msg: None }))
}

/// Parses a LogQL query.
pub fn parse(q: &str) -> Result<LogqlExpr, LogqlError> {
    let result = (|| -> Res<'_, LogqlExpr> {
        let (rest, _) = ws(q)?;
        if rest.is_empty() {
            return fail(rest, "syntax error: unexpected $end");
        }
        let (rest, expr) = if rest.starts_with('{') {
            let (rest, log) = log_expr(rest)?;
            (rest, LogqlExpr::Log(log))
        } else {
            let (rest, m) = metric_expr(rest)?;
            (rest, LogqlExpr::Metric(m))
        };
        let (rest, _) = ws(rest)?;
        if !rest.is_empty() {
            return fail(rest, unexpected(rest));
        }
        Ok((rest, expr))
    })();
    match result {
        Ok((_, e)) => {
            if let LogqlExpr::Metric(m) = &e {
                check_metric(m).map_err(|msg| LogqlError::Parse {
                    line: 0,
                    col: 0,
                    msg,
                })?;
            }
            Ok(e)
        }
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            // Point at the offending token, not the whitespace before it.
            let offset = q.len() - e.at.trim_start().len();
            let consumed = &q[..offset];
            let line = consumed.matches('\n').count() + 1;
            let col = consumed
                .rsplit('\n')
                .next()
                .map_or(0, |l| l.chars().count())
                + 1;
            let msg = e.msg.unwrap_or_else(|| unexpected(e.at));
            if let Some(msg) = msg.strip_prefix(NO_POSITION) {
                return Err(LogqlError::Parse {
                    line: 0,
                    col: 0,
                    msg: msg.to_string(),
                });
            }
            if msg.starts_with("queries require") {
                // Loki reports this one without a position.
                return Err(LogqlError::Parse {
                    line: 0,
                    col: 0,
                    msg,
                });
            }
            Err(LogqlError::Parse { line, col, msg })
        }
        Err(nom::Err::Incomplete(_)) => Err(LogqlError::Parse {
            line: 1,
            col: q.len() + 1,
            msg: "syntax error: unexpected $end".into(),
        }),
    }
}

/// Loki's "syntax error: unexpected X" with X a token class or the token itself.
fn unexpected(rest: &str) -> String {
    let rest = rest.trim_start();
    let what = match rest.chars().next() {
        None => "$end".to_string(),
        Some('"') | Some('`') => "STRING".to_string(),
        Some(c) if c.is_ascii_digit() => "NUMBER".to_string(),
        Some(c) if c.is_alphabetic() || c == '_' => {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if is_keyword(&word) {
                word
            } else {
                "IDENTIFIER".to_string()
            }
        }
        Some(c) => {
            let two: String = rest.chars().take(2).collect();
            if ["|=", "|~", "!=", "!~", "=~", "==", ">=", "<="].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            }
        }
    };
    format!("syntax error: unexpected {what}")
}

fn is_keyword(w: &str) -> bool {
    RangeOp::ALL.iter().any(|o| o.as_str() == w)
        || VecOp::ALL.iter().any(|o| o.as_str() == w)
        || [
            "by",
            "without",
            "and",
            "or",
            "unless",
            "bool",
            "on",
            "ignoring",
            "offset",
            "unwrap",
            "json",
            "logfmt",
            "regexp",
            "pattern",
            "unpack",
            "line_format",
            "label_format",
            "drop",
            "keep",
            "decolorize",
            "vector",
        ]
        .contains(&w)
}

// ---------------------------------------------------------------- lexical pieces

fn ws(i: &str) -> Res<'_, ()> {
    let (mut i, _) = multispace0(i)?;
    // `#` comments to the end of the line.
    while i.starts_with('#') {
        let end = i.find('\n').unwrap_or(i.len());
        let (rest, _) = multispace0(&i[end..])?;
        i = rest;
    }
    Ok((i, ()))
}

/// A punctuation token after optional whitespace.
fn sym<'a>(t: &'static str) -> impl FnMut(&'a str) -> Res<'a, &'a str> {
    preceded(ws, tag(t))
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// An identifier (label name) after optional whitespace.
fn ident(i: &str) -> Res<'_, &str> {
    preceded(
        ws,
        recognize(pair(take_while1(is_ident_start), take_while(is_ident_char))),
    )(i)
}

/// A keyword: the word followed by a non-identifier character.
fn kw<'a>(word: &'static str) -> impl FnMut(&'a str) -> Res<'a, &'a str> {
    move |i: &'a str| {
        let (rest, id) = ident(i)?;
        if id == word {
            Ok((rest, id))
        } else {
            backtrack(i)
        }
    }
}

/// A double-quoted (Go escapes) or backquoted (raw) string after optional whitespace.
fn string_lit(i: &str) -> Res<'_, String> {
    let (i, _) = ws(i)?;
    let start = i;
    let mut chars = i.char_indices();
    match chars.next() {
        Some((_, '`')) => match i[1..].find('`') {
            Some(end) => Ok((&i[end + 2..], i[1..end + 1].to_string())),
            None => fail(start, "syntax error: unterminated raw string"),
        },
        Some((_, '"')) => {
            let mut out = String::new();
            let mut it = i[1..].char_indices();
            while let Some((pos, c)) = it.next() {
                match c {
                    '"' => return Ok((&i[pos + 2..], out)),
                    '\\' => {
                        let Some((_, e)) = it.next() else { break };
                        match e {
                            'n' => out.push('\n'),
                            't' => out.push('\t'),
                            'r' => out.push('\r'),
                            'a' => out.push('\x07'),
                            'b' => out.push('\x08'),
                            'f' => out.push('\x0c'),
                            'v' => out.push('\x0b'),
                            '\\' => out.push('\\'),
                            '"' => out.push('"'),
                            '\'' => out.push('\''),
                            'x' | 'u' | 'U' => {
                                let n = match e {
                                    'x' => 2,
                                    'u' => 4,
                                    _ => 8,
                                };
                                let hex: String = it.by_ref().take(n).map(|(_, c)| c).collect();
                                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                                    Some(ch) if hex.len() == n => out.push(ch),
                                    _ => {
                                        return fail(
                                            start,
                                            "syntax error: invalid escape in string",
                                        )
                                    }
                                }
                            }
                            _ => return fail(start, "syntax error: invalid escape in string"),
                        }
                    }
                    '\n' => break,
                    c => out.push(c),
                }
            }
            fail(start, "syntax error: unterminated string")
        }
        _ => backtrack(start),
    }
}

/// A number literal (`1`, `-2.5`, `1e3`) after optional whitespace, as text.
fn number_text(i: &str) -> Res<'_, &str> {
    let (i, _) = ws(i)?;
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut n = 0;
    let b = i.as_bytes();
    if b.first() == Some(&b'-') || b.first() == Some(&b'+') {
        n += 1;
    }
    let int = digits(&i[n..]);
    n += int;
    let mut frac = 0;
    if b.get(n) == Some(&b'.') {
        frac = digits(&i[n + 1..]);
        if frac > 0 {
            n += 1 + frac;
        }
    }
    if int == 0 && frac == 0 {
        return backtrack(i);
    }
    if matches!(b.get(n), Some(b'e' | b'E')) {
        let mut m = n + 1;
        if matches!(b.get(m), Some(b'+' | b'-')) {
            m += 1;
        }
        let e = digits(&i[m..]);
        if e > 0 {
            n = m + e;
        }
    }
    Ok((&i[n..], &i[..n]))
}

fn number(i: &str) -> Res<'_, f64> {
    let (rest, text) = number_text(i)?;
    // A number directly followed by letters is a duration or bytes literal, not a number.
    if rest.starts_with(|c: char| c.is_alphabetic()) {
        return backtrack(i);
    }
    match text.parse::<f64>() {
        Ok(v) => Ok((rest, v)),
        Err(_) => backtrack(i),
    }
}

/// Parses a duration such as `5m`, `1h30m`, `1.5s`, `100ms`, `2d` into nanoseconds.
pub(crate) fn parse_duration_ns(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if n == 0 {
            return None;
        }
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(rest.len(), |(p, _)| p);
        let mult: f64 = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "y" => 365.0 * 86400e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * mult;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

/// Parses a humanized byte size (`20MB`, `1.5KiB`, `42b`) into bytes (SI for `KB`, binary for
/// `KiB`, case-insensitive).
pub(crate) fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let n = s
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.')
        .count();
    if n == 0 {
        return None;
    }
    let value: f64 = s[..n].parse().ok()?;
    let unit = s[n..].trim().to_ascii_lowercase();
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "pb" | "p" => 1e15,
        "eb" | "e" => 1e18,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024f64.powi(2),
        "gib" | "gi" => 1024f64.powi(3),
        "tib" | "ti" => 1024f64.powi(4),
        "pib" | "pi" => 1024f64.powi(5),
        "eib" | "ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(value * mult)
}

/// A duration token (`5m`, `1h30m`) after optional whitespace, in nanoseconds.
fn duration(i: &str) -> Res<'_, i64> {
    let (i, _) = ws(i)?;
    let n = i
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.' || *c == 'µ'))
        .map_or(i.len(), |(p, _)| p);
    if n == 0 {
        return backtrack(i);
    }
    match parse_duration_ns(&i[..n]) {
        Some(d) => Ok((&i[n..], d)),
        None => fail(i, format!("syntax error: invalid duration {:?}", &i[..n])),
    }
}

// ---------------------------------------------------------------- log expressions

fn matcher(i: &str) -> Res<'_, Matcher> {
    let (i, name) = ident(i)?;
    let (i, op) = preceded(
        ws,
        alt((
            nom::combinator::value(MatchOp::Regex, tag("=~")),
            nom::combinator::value(MatchOp::NotRegex, tag("!~")),
            nom::combinator::value(MatchOp::NotEqual, tag("!=")),
            nom::combinator::value(MatchOp::Equal, tag("=")),
        )),
    )(i)?;
    let at = i;
    let (i, value) = match string_lit(i) {
        Ok(r) => r,
        Err(nom::Err::Error(_)) => {
            return fail(at, format!("{}, expecting STRING", unexpected(at)));
        }
        Err(e) => return Err(e),
    };
    match Matcher::new(op, name, value) {
        Ok(m) => Ok((i, m)),
        Err(e) => fail(at, format!("error parsing regexp: {}", e.reason)),
    }
}

fn selector(i: &str) -> Res<'_, Vec<Matcher>> {
    let start = i;
    let (mut i, _) = sym("{")(i)?;
    let mut out = Vec::new();
    loop {
        if let Ok((rest, _)) = sym("}")(i) {
            i = rest;
            break;
        }
        let (rest, m) = matcher(i)?;
        out.push(m);
        i = rest;
        if let Ok((rest, _)) = sym(",")(i) {
            i = rest;
            continue;
        }
        match sym("}")(i) {
            Ok((rest, _)) => {
                i = rest;
                break;
            }
            Err(_) => return fail(i, format!("{}, expecting }} or ,", unexpected(i))),
        }
    }
    let selective = out
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex) && !m.matches_empty());
    if !selective {
        return fail(
            start,
            "queries require at least one regexp or equality matcher that does not have an \
             empty-compatible value. For instance, app=~\".*\" does not meet this requirement, \
             but app=~\".+\" will",
        );
    }
    Ok((i, out))
}

fn log_expr(i: &str) -> Res<'_, LogExpr> {
    let (i, _) = ws(i)?;
    if let Ok((rest, _)) = sym("(")(i) {
        let (rest, inner) = log_expr(rest)?;
        let (rest, _) = sym(")")(rest)?;
        return Ok((rest, inner));
    }
    let (i, matchers) = selector(i)?;
    let (i, stages) = pipeline(i)?;
    Ok((i, LogExpr { matchers, stages }))
}

fn line_filter_op(i: &str) -> Res<'_, LineFilterOp> {
    preceded(
        ws,
        alt((
            nom::combinator::value(LineFilterOp::Contains, tag("|=")),
            nom::combinator::value(LineFilterOp::Match, tag("|~")),
            nom::combinator::value(LineFilterOp::NotContains, tag("!=")),
            nom::combinator::value(LineFilterOp::NotMatch, tag("!~")),
            nom::combinator::value(LineFilterOp::PatternMatch, tag("|>")),
            nom::combinator::value(LineFilterOp::PatternNotMatch, tag("!>")),
        )),
    )(i)
}

/// `ip("...")` after optional whitespace: the pattern text.
fn ip_call(i: &str) -> Res<'_, String> {
    let (i, _) = kw("ip")(i)?;
    let (i, _) = sym("(")(i)?;
    let (i, s) = string_lit(i)?;
    let (i, _) = sym(")")(i)?;
    Ok((i, s))
}

fn line_filter(i: &str) -> Res<'_, LineFilter> {
    let (i, op) = line_filter_op(i)?;
    if let Ok((rest, text)) = ip_call(i) {
        if !matches!(op, LineFilterOp::Contains | LineFilterOp::NotContains) {
            return fail(
                i,
                format!("{NO_POSITION}ip() filters only support |= and != operators"),
            );
        }
        let pattern = match IpPattern::parse(&text) {
            Ok(p) => p,
            Err(e) => return fail(i, e),
        };
        return Ok((
            rest,
            LineFilter {
                op,
                values: vec![text],
                regexes: Vec::new(),
                patterns: Vec::new(),
                ips: Some(vec![pattern]),
            },
        ));
    }
    let mut values = Vec::new();
    let at = i;
    let (mut i, first) = match string_lit(i) {
        Ok(r) => r,
        Err(nom::Err::Error(_)) => {
            return fail(at, format!("{}, expecting STRING", unexpected(at)));
        }
        Err(e) => return Err(e),
    };
    values.push(first);
    while let Ok((rest, _)) = kw("or")(i) {
        let (rest, v) = string_lit(rest)?;
        values.push(v);
        i = rest;
    }
    let mut regexes = Vec::new();
    if matches!(op, LineFilterOp::Match | LineFilterOp::NotMatch) {
        for v in &values {
            match Regex::new(v) {
                Ok(r) => regexes.push(r),
                Err(e) => return fail(at, format!("error parsing regexp: {e}")),
            }
        }
    }
    let mut patterns = Vec::new();
    if matches!(
        op,
        LineFilterOp::PatternMatch | LineFilterOp::PatternNotMatch
    ) {
        for v in &values {
            match Pattern::compile_filter(v) {
                Ok(p) => patterns.push(p),
                Err(e) => return fail(at, format!("invalid pattern: {e}")),
            }
        }
    }
    Ok((
        i,
        LineFilter {
            op,
            values,
            regexes,
            patterns,
            ips: None,
        },
    ))
}

/// Stages until something that is not a stage (`[`, `)`, `| unwrap`, the end).
fn pipeline(mut i: &str) -> Res<'_, Vec<Stage>> {
    let mut stages = Vec::new();
    loop {
        match line_filter(i) {
            Ok((rest, f)) => {
                stages.push(Stage::LineFilter(f));
                i = rest;
                continue;
            }
            Err(nom::Err::Error(_)) => {}
            Err(e) => return Err(e),
        }
        let Ok((after_pipe, _)) = sym("|")(i) else {
            return Ok((i, stages));
        };
        if kw("unwrap")(after_pipe).is_ok() {
            return Ok((i, stages));
        }
        let (rest, stage) = stage(after_pipe)?;
        stages.push(stage);
        i = rest;
    }
}

fn stage(i: &str) -> Res<'_, Stage> {
    if sym("(")(i).is_ok() {
        let (i, f) = label_filter_or(i)?;
        return Ok((i, Stage::LabelFilter(f)));
    }
    let (_, word) = match ident(i) {
        Ok(r) => r,
        Err(_) => {
            return fail(i, format!("{}, expecting a pipeline stage", unexpected(i)));
        }
    };
    match word {
        "json" => {
            let (i, _) = kw("json")(i)?;
            let (i, params) = extraction_params(i)?;
            Ok((i, Stage::Json(params)))
        }
        "logfmt" => {
            let (mut i, _) = kw("logfmt")(i)?;
            let (mut strict, mut keep_empty) = (false, false);
            loop {
                if let Ok((rest, _)) = sym("--strict")(i) {
                    strict = true;
                    i = rest;
                } else if let Ok((rest, _)) = sym("--keep-empty")(i) {
                    keep_empty = true;
                    i = rest;
                } else {
                    break;
                }
            }
            let (i, params) = extraction_params(i)?;
            Ok((
                i,
                Stage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                },
            ))
        }
        "regexp" => {
            let (i, _) = kw("regexp")(i)?;
            let at = i;
            let (i, re) = string_lit(i)?;
            let compiled = match Regex::new(&re) {
                Ok(r) => r,
                Err(e) => return fail(at, format!("error parsing regexp: {e}")),
            };
            if !compiled.capture_names().any(|n| n.is_some()) {
                return fail(at, "at least one named capture must be supplied");
            }
            Ok((i, Stage::Regexp(re, compiled)))
        }
        "pattern" => {
            let (i, _) = kw("pattern")(i)?;
            let at = i;
            let (i, p) = string_lit(i)?;
            match Pattern::compile(&p) {
                Ok(c) => Ok((i, Stage::Pattern(p, c))),
                Err(e) => fail(at, e),
            }
        }
        "unpack" => {
            let (i, _) = kw("unpack")(i)?;
            Ok((i, Stage::Unpack))
        }
        "decolorize" => {
            let (i, _) = kw("decolorize")(i)?;
            Ok((i, Stage::Decolorize))
        }
        "line_format" => {
            let (i, _) = kw("line_format")(i)?;
            let at = i;
            let (i, t) = string_lit(i)?;
            match Template::compile(&t) {
                Ok(c) => Ok((i, Stage::LineFormat(t, c))),
                Err(e) => fail(at, format!("invalid line template: {e}")),
            }
        }
        "label_format" => {
            let (mut i, _) = kw("label_format")(i)?;
            let mut rules = Vec::new();
            loop {
                let (rest, dst) = ident(i)?;
                let (rest, _) = sym("=")(rest)?;
                let at = rest;
                if let Ok((rest, text)) = string_lit(rest) {
                    match Template::compile(&text) {
                        Ok(tmpl) => rules.push(LabelFmt::Template {
                            dst: dst.to_string(),
                            text,
                            tmpl,
                        }),
                        Err(e) => return fail(at, format!("invalid label template: {e}")),
                    }
                    i = rest;
                } else {
                    let (rest, src) = ident(rest)?;
                    rules.push(LabelFmt::Rename {
                        dst: dst.to_string(),
                        src: src.to_string(),
                    });
                    i = rest;
                }
                match sym(",")(i) {
                    Ok((rest, _)) => i = rest,
                    Err(_) => break,
                }
            }
            let mut seen = std::collections::HashSet::new();
            for r in &rules {
                let dst = match r {
                    LabelFmt::Rename { dst, .. } | LabelFmt::Template { dst, .. } => dst,
                };
                if !seen.insert(dst.clone()) {
                    return fail(
                        i,
                        format!(
                            "multiple label name '{dst}' not allowed in a single format operation"
                        ),
                    );
                }
            }
            Ok((i, Stage::LabelFormat(rules)))
        }
        "drop" | "keep" => {
            let word_kw = if word == "drop" { "drop" } else { "keep" };
            let (mut i, _) = kw(word_kw)(i)?;
            let mut sels = Vec::new();
            loop {
                if let Ok((rest, m)) = matcher(i) {
                    sels.push(LabelSel::Matcher(m));
                    i = rest;
                } else {
                    let (rest, name) = ident(i)?;
                    sels.push(LabelSel::Name(name.to_string()));
                    i = rest;
                }
                match sym(",")(i) {
                    Ok((rest, _)) => i = rest,
                    Err(_) => break,
                }
            }
            Ok((
                i,
                if word == "drop" {
                    Stage::Drop(sels)
                } else {
                    Stage::Keep(sels)
                },
            ))
        }
        _ => {
            let (i, f) = label_filter_or(i)?;
            Ok((i, Stage::LabelFilter(f)))
        }
    }
}

/// `label="path", ...` after `json` / `logfmt` (a bare `label` means `label="label"`).
fn extraction_params(mut i: &str) -> Res<'_, Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        let Ok((rest, name)) = ident(i) else {
            return Ok((i, out));
        };
        if is_keyword(name) {
            return Ok((i, out));
        }
        let (rest, path) = match sym("=")(rest) {
            Ok((rest, _)) => string_lit(rest)?,
            Err(_) => (rest, name.to_string()),
        };
        out.push((name.to_string(), path));
        i = rest;
        match sym(",")(i) {
            Ok((rest, _)) => i = rest,
            Err(_) => return Ok((i, out)),
        }
    }
}

fn label_filter_or(i: &str) -> Res<'_, LabelFilter> {
    let (mut i, mut lhs) = label_filter_and(i)?;
    while let Ok((rest, _)) = kw("or")(i) {
        let (rest, rhs) = label_filter_and(rest)?;
        lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        i = rest;
    }
    Ok((i, lhs))
}

fn label_filter_and(i: &str) -> Res<'_, LabelFilter> {
    let (mut i, mut lhs) = label_filter_atom(i)?;
    loop {
        let rest = match kw("and")(i) {
            Ok((rest, _)) => rest,
            Err(_) => match sym(",")(i) {
                Ok((rest, _)) => rest,
                Err(_) => break,
            },
        };
        let (rest, rhs) = label_filter_atom(rest)?;
        lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        i = rest;
    }
    Ok((i, lhs))
}

fn label_filter_atom(i: &str) -> Res<'_, LabelFilter> {
    if let Ok((rest, _)) = sym("(")(i) {
        let (rest, f) = label_filter_or(rest)?;
        let (rest, _) = match sym(")")(rest) {
            Ok(r) => r,
            Err(_) => return fail(rest, format!("{}, expecting )", unexpected(rest))),
        };
        return Ok((rest, f));
    }
    let (i, name) = match ident(i) {
        Ok(r) => r,
        Err(_) => return fail(i, format!("{}, expecting IDENTIFIER", unexpected(i))),
    };
    let ops: [(&str, Option<MatchOp>, Option<CmpOp>); 9] = [
        ("=~", Some(MatchOp::Regex), None),
        ("!~", Some(MatchOp::NotRegex), None),
        ("==", Some(MatchOp::Equal), Some(CmpOp::Eq)),
        ("!=", Some(MatchOp::NotEqual), Some(CmpOp::Ne)),
        (">=", None, Some(CmpOp::Ge)),
        ("<=", None, Some(CmpOp::Le)),
        (">", None, Some(CmpOp::Gt)),
        ("<", None, Some(CmpOp::Lt)),
        ("=", Some(MatchOp::Equal), Some(CmpOp::Eq)),
    ];
    let (i, _) = ws(i)?;
    let Some((op_text, mop, cop)) = ops.iter().find(|(t, _, _)| i.starts_with(t)) else {
        return fail(
            i,
            format!("{}, expecting a comparison operator", unexpected(i)),
        );
    };
    let i = &i[op_text.len()..];
    let at = i;
    if let Ok((rest, text)) = ip_call(i) {
        let negate = match *op_text {
            "=" | "==" => false,
            "!=" => true,
            _ => {
                return fail(
                    at,
                    format!("{NO_POSITION}ip() label filters only support = and !="),
                )
            }
        };
        return match IpPattern::parse(&text) {
            Ok(pattern) => Ok((
                rest,
                LabelFilter::Ip {
                    name: name.to_string(),
                    negate,
                    text,
                    pattern,
                },
            )),
            Err(e) => fail(at, e),
        };
    }
    if let Ok((rest, s)) = string_lit(i) {
        let Some(mop) = mop else {
            return fail(
                at,
                format!("syntax error: unexpected STRING after {op_text}"),
            );
        };
        return match Matcher::new(*mop, name, s) {
            Ok(m) => Ok((rest, LabelFilter::Str(m))),
            Err(e) => fail(at, format!("error parsing regexp: {}", e.reason)),
        };
    }
    let Some(cop) = cop else {
        return fail(at, format!("{}, expecting STRING", unexpected(at)));
    };
    let (rest, num) = match number_text(i) {
        Ok(r) => r,
        Err(_) => {
            return fail(
                at,
                format!("{}, expecting STRING or NUMBER", unexpected(at)),
            )
        }
    };
    let unit_len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == 'µ' || *c == '.'))
        .map_or(rest.len(), |(p, _)| p);
    let (rest, text) = (&rest[unit_len..], format!("{num}{}", &rest[..unit_len]));
    let (kind, value) = if unit_len == 0 {
        match num.parse::<f64>() {
            Ok(v) => (NumKind::Number, v),
            Err(_) => return fail(at, "syntax error: invalid number"),
        }
    } else if let Some(ns) = parse_duration_ns(&text) {
        (NumKind::Duration, ns as f64 / 1e9)
    } else if let Some(b) = parse_bytes(&text) {
        (NumKind::Bytes, b)
    } else {
        return fail(
            at,
            format!("syntax error: invalid duration or bytes {text:?}"),
        );
    };
    Ok((
        rest,
        LabelFilter::Num {
            name: name.to_string(),
            op: *cop,
            kind,
            value,
            text,
        },
    ))
}

// ---------------------------------------------------------------- metric expressions

fn metric_expr(i: &str) -> Res<'_, MetricExpr> {
    binary(i, 0)
}

fn bin_op(i: &str) -> Res<'_, BinOp> {
    let (i, _) = ws(i)?;
    let table: [(&str, BinOp); 12] = [
        ("==", BinOp::Eq),
        ("!=", BinOp::Ne),
        (">=", BinOp::Ge),
        ("<=", BinOp::Le),
        (">", BinOp::Gt),
        ("<", BinOp::Lt),
        ("+", BinOp::Add),
        ("-", BinOp::Sub),
        ("*", BinOp::Mul),
        ("/", BinOp::Div),
        ("%", BinOp::Mod),
        ("^", BinOp::Pow),
    ];
    for (t, op) in table {
        if let Some(rest) = i.strip_prefix(t) {
            return Ok((rest, op));
        }
    }
    for (w, op) in [
        ("or", BinOp::Or),
        ("and", BinOp::And),
        ("unless", BinOp::Unless),
    ] {
        if let Ok((rest, _)) = kw(w)(i) {
            return Ok((rest, op));
        }
    }
    backtrack(i)
}

fn label_list(i: &str) -> Res<'_, Vec<String>> {
    let (mut i, _) = sym("(")(i)?;
    let mut out = Vec::new();
    loop {
        if let Ok((rest, _)) = sym(")")(i) {
            return Ok((rest, out));
        }
        let (rest, name) = match ident(i) {
            Ok(r) => r,
            Err(_) => return fail(i, format!("{}, expecting IDENTIFIER or )", unexpected(i))),
        };
        out.push(name.to_string());
        i = rest;
        if let Ok((rest, _)) = sym(",")(i) {
            i = rest;
        }
    }
}

/// Precedence climbing over binary operators (`^` is right-associative).
fn binary(i: &str, min_prec: u8) -> Res<'_, MetricExpr> {
    let (mut i, mut lhs) = unary(i)?;
    loop {
        let Ok((rest, op)) = bin_op(i) else {
            return Ok((i, lhs));
        };
        let prec = op.precedence();
        if prec < min_prec {
            return Ok((i, lhs));
        }
        let mut rest = rest;
        let mut return_bool = false;
        if let Ok((r, _)) = kw("bool")(rest) {
            if !op.is_comparison() {
                return fail(
                    rest,
                    "bool modifier can only be used on comparison operators",
                );
            }
            return_bool = true;
            rest = r;
        }
        let mut matching = None;
        for (w, on) in [("on", true), ("ignoring", false)] {
            if let Ok((r, _)) = kw(w)(rest) {
                let (mut r, labels) = label_list(r)?;
                let mut group = None;
                for (g, left) in [("group_left", true), ("group_right", false)] {
                    if let Ok((after, _)) = kw(g)(r) {
                        let (after, include) = match label_list(after) {
                            Ok(x) => x,
                            Err(nom::Err::Error(_)) => (after, Vec::new()),
                            Err(e) => return Err(e),
                        };
                        group = Some(Group { left, include });
                        r = after;
                        break;
                    }
                }
                matching = Some(VectorMatching { on, labels, group });
                rest = r;
                break;
            }
        }
        if kw("group_left")(rest).is_ok() || kw("group_right")(rest).is_ok() {
            return fail(rest, "syntax error: unexpected group_left or group_right, expecting on or ignoring first");
        }
        if op.is_set() && matching.as_ref().is_some_and(|m| m.group.is_some()) {
            return fail(
                rest,
                format!(
                    "{NO_POSITION}no grouping allowed for \"{}\" operation",
                    op.as_str()
                ),
            );
        }
        let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
        let (r, rhs) = binary(rest, next_min)?;
        // Like Loki, an operation on two literals is folded into a literal (comparisons give
        // 0 or 1; division and modulo by zero give NaN).
        lhs = match (literal_value(&lhs), literal_value(&rhs)) {
            (Some(a), Some(b)) if !op.is_set() => MetricExpr::Literal(op.apply(a, b)),
            _ => MetricExpr::Binary(Box::new(BinaryExpr {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
            })),
        };
        i = r;
    }
}

fn unary(i: &str) -> Res<'_, MetricExpr> {
    let (i, _) = ws(i)?;
    if let Some(rest) = i.strip_prefix('-') {
        if let Ok((r, v)) = number(rest) {
            return Ok((r, MetricExpr::Literal(-v)));
        }
        let (r, e) = unary(rest)?;
        return Ok((
            r,
            MetricExpr::Binary(Box::new(BinaryExpr {
                op: BinOp::Mul,
                lhs: MetricExpr::Literal(-1.0),
                rhs: e,
                return_bool: false,
                matching: None,
            })),
        ));
    }
    if let Some(rest) = i.strip_prefix('+') {
        return unary(rest);
    }
    atom(i)
}

fn atom(i: &str) -> Res<'_, MetricExpr> {
    let (i, _) = ws(i)?;
    if let Ok((rest, v)) = number(i) {
        return Ok((rest, MetricExpr::Literal(v)));
    }
    if let Ok((rest, _)) = sym("(")(i) {
        let (rest, e) = metric_expr(rest)?;
        let (rest, _) = match sym(")")(rest) {
            Ok(r) => r,
            Err(_) => return fail(rest, format!("{}, expecting )", unexpected(rest))),
        };
        return Ok((rest, MetricExpr::Paren(Box::new(e))));
    }
    let Ok((after, word)) = ident(i) else {
        return fail(i, unexpected(i));
    };
    if word.eq_ignore_ascii_case("nan") {
        return Ok((after, MetricExpr::Literal(f64::NAN)));
    }
    if word.eq_ignore_ascii_case("inf") {
        return Ok((after, MetricExpr::Literal(f64::INFINITY)));
    }
    if word == "label_replace" {
        return label_replace(after);
    }
    if word == "vector" {
        let (rest, _) = sym("(")(after)?;
        let (rest, v) = match number(rest) {
            Ok(r) => r,
            Err(_) => return fail(rest, format!("{}, expecting NUMBER", unexpected(rest))),
        };
        let (rest, _) = sym(")")(rest)?;
        return Ok((rest, MetricExpr::VectorFn(v)));
    }
    if let Some(op) = RangeOp::ALL.iter().find(|o| o.as_str() == word) {
        return range_agg(after, *op);
    }
    if let Some(op) = VecOp::ALL.iter().find(|o| o.as_str() == word) {
        return vector_agg(after, *op);
    }
    fail(i, unexpected(i))
}

fn label_replace(i: &str) -> Res<'_, MetricExpr> {
    let (i, _) = sym("(")(i)?;
    let (i, inner) = metric_expr(i)?;
    let mut args = Vec::new();
    let mut i = i;
    for _ in 0..4 {
        let (rest, _) = match sym(",")(i) {
            Ok(r) => r,
            Err(_) => return fail(i, format!("{}, expecting ,", unexpected(i))),
        };
        let (rest, s) = match string_lit(rest) {
            Ok(r) => r,
            Err(nom::Err::Error(_)) => {
                return fail(rest, format!("{}, expecting STRING", unexpected(rest)))
            }
            Err(e) => return Err(e),
        };
        args.push(s);
        i = rest;
    }
    let (i, _) = match sym(")")(i) {
        Ok(r) => r,
        Err(_) => return fail(i, format!("{}, expecting )", unexpected(i))),
    };
    let regex_text = args.pop().unwrap_or_default();
    let src = args.pop().unwrap_or_default();
    let replacement = args.pop().unwrap_or_default();
    let dst = args.pop().unwrap_or_default();
    let regex = match Regex::new(&format!("^(?s:{regex_text})$")) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                i,
                format!("{NO_POSITION}invalid regex in label_replace: {e}"),
            )
        }
    };
    if !sextant_storage::labels::is_valid_label_name(&dst) {
        return fail(
            i,
            format!("{NO_POSITION}invalid destination label name in label_replace: {dst}"),
        );
    }
    Ok((
        i,
        MetricExpr::LabelReplace(Box::new(LabelReplace {
            inner,
            dst,
            replacement,
            src,
            regex_text,
            regex,
        })),
    ))
}

fn grouping(i: &str) -> Res<'_, Grouping> {
    let (i, without) = alt((
        nom::combinator::value(false, kw("by")),
        nom::combinator::value(true, kw("without")),
    ))(i)?;
    let (i, labels) = label_list(i)?;
    Ok((i, Grouping { without, labels }))
}

fn unwrap_expr(i: &str) -> Res<'_, Unwrap> {
    let (i, _) = sym("|")(i)?;
    let (i, _) = kw("unwrap")(i)?;
    let (i, first) = ident(i)?;
    let conv = match first {
        "duration" => Some(Conversion::Duration),
        "duration_seconds" => Some(Conversion::DurationSeconds),
        "bytes" => Some(Conversion::Bytes),
        _ => None,
    };
    let (mut i, label, conv) = match conv {
        Some(c) if sym("(")(i).is_ok() => {
            let (i, _) = sym("(")(i)?;
            let (i, label) = ident(i)?;
            let (i, _) = sym(")")(i)?;
            (i, label.to_string(), c)
        }
        _ => (i, first.to_string(), Conversion::None),
    };
    let mut post_filters = Vec::new();
    loop {
        let Ok((rest, _)) = sym("|")(i) else { break };
        let Ok((rest, f)) = label_filter_or(rest) else {
            break;
        };
        post_filters.push(f);
        i = rest;
    }
    Ok((
        i,
        Unwrap {
            label,
            conv,
            post_filters,
        },
    ))
}

fn range_agg(i: &str, op: RangeOp) -> Res<'_, MetricExpr> {
    let (i, _) = match sym("(")(i) {
        Ok(r) => r,
        Err(_) => return fail(i, format!("{}, expecting (", unexpected(i))),
    };
    let mut i = i;
    let mut param = None;
    if op == RangeOp::QuantileOverTime {
        let (rest, q) = match number(i) {
            Ok(r) => r,
            Err(_) => return fail(i, format!("{}, expecting NUMBER", unexpected(i))),
        };
        let (rest, _) = sym(",")(rest)?;
        param = Some(q);
        i = rest;
    }
    let (rest, _) = ws(i)?;
    if !rest.starts_with('{') && !rest.starts_with('(') {
        return fail(rest, format!("{}, expecting {{", unexpected(rest)));
    }
    let (i, mut log) = log_expr(rest)?;
    let (i, mut unwrap) = opt(unwrap_expr)(i)?;
    let (i, _) = match sym("[")(i) {
        Ok(r) => r,
        Err(_) => return fail(i, format!("{}, expecting [", unexpected(i))),
    };
    let (i, range_ns) = duration(i)?;
    let (i, _) = sym("]")(i)?;
    if range_ns <= 0 {
        return fail(i, "syntax error: range must be greater than 0");
    }
    // Loki also accepts the pipeline after the range: `{app="a"}[5m] | json`.
    let (i, more) = pipeline(i)?;
    log.stages.extend(more);
    let (i, late_unwrap) = opt(unwrap_expr)(i)?;
    if late_unwrap.is_some() {
        if unwrap.is_some() {
            return fail(i, "syntax error: unexpected unwrap");
        }
        unwrap = late_unwrap;
    }
    let (i, offset_ns) = match kw("offset")(i) {
        Ok((rest, _)) => duration(rest)?,
        Err(_) => (i, 0),
    };
    let (i, _) = match sym(")")(i) {
        Ok(r) => r,
        Err(_) => return fail(i, format!("{}, expecting )", unexpected(i))),
    };
    let (i, grouping) = opt(grouping)(i)?;
    // Loki's validation, in Loki's order: grouping, then unwrap compatibility.
    use RangeOp::*;
    let msg = if grouping.is_some()
        && !matches!(
            op,
            AvgOverTime
                | StddevOverTime
                | StdvarOverTime
                | QuantileOverTime
                | MaxOverTime
                | MinOverTime
                | FirstOverTime
                | LastOverTime
        ) {
        Some(format!(
            "grouping not allowed for {} aggregation",
            op.as_str()
        ))
    } else if unwrap.is_some() {
        (!matches!(
            op,
            AvgOverTime
                | SumOverTime
                | MaxOverTime
                | MinOverTime
                | StddevOverTime
                | StdvarOverTime
                | QuantileOverTime
                | Rate
                | RateCounter
                | AbsentOverTime
                | FirstOverTime
                | LastOverTime
        ))
        .then(|| format!("invalid aggregation {} with unwrap", op.as_str()))
    } else {
        (!matches!(
            op,
            BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime
        ))
        .then(|| format!("invalid aggregation {} without unwrap", op.as_str()))
    };
    if let Some(msg) = msg {
        // Loki reports these without a position.
        return Err(nom::Err::Failure(PErr {
            at: i,
            msg: Some(format!("{NO_POSITION}{msg}")),
        }));
    }
    Ok((
        i,
        MetricExpr::Range(Box::new(RangeAgg {
            op,
            param,
            log,
            unwrap,
            range_ns,
            offset_ns,
            grouping,
        })),
    ))
}

fn vector_agg(i: &str, op: VecOp) -> Res<'_, MetricExpr> {
    let (i, pre) = opt(grouping)(i)?;
    let (i, _) = match sym("(")(i) {
        Ok(r) => r,
        Err(_) => return fail(i, format!("{}, expecting (", unexpected(i))),
    };
    let mut i = i;
    let mut param = None;
    if matches!(op, VecOp::Topk | VecOp::Bottomk) {
        let at = i;
        let (rest, k) = match number(i) {
            Ok(r) => r,
            Err(_) => return fail(i, format!("{}, expecting NUMBER", unexpected(i))),
        };
        if k < 1.0 || k.fract() != 0.0 {
            return fail(
                at,
                format!(
                    "invalid parameter (must be greater than 0) {}({k}",
                    op.as_str()
                ),
            );
        }
        let (rest, _) = sym(",")(rest)?;
        param = Some(k as usize);
        i = rest;
    }
    let (i, inner) = metric_expr(i)?;
    let (i, _) = match sym(")")(i) {
        Ok(r) => r,
        Err(_) => return fail(i, format!("{}, expecting )", unexpected(i))),
    };
    let (i, post) = opt(grouping)(i)?;
    if pre.is_some() && post.is_some() {
        return fail(i, "syntax error: grouping given twice");
    }
    Ok((
        i,
        MetricExpr::Vector(Box::new(VectorAgg {
            op,
            param,
            inner,
            grouping: pre.or(post),
        })),
    ))
}

/// Type checks that need the whole tree: set operators need vectors, comparisons of scalars
/// need `bool`.
fn check_metric(e: &MetricExpr) -> Result<(), String> {
    match e {
        MetricExpr::Range(_) | MetricExpr::Literal(_) | MetricExpr::VectorFn(_) => Ok(()),
        MetricExpr::Paren(inner) => check_metric(inner),
        MetricExpr::LabelReplace(l) => check_metric(&l.inner),
        MetricExpr::Vector(v) => {
            if is_scalar(&v.inner) {
                return Err(format!(
                    "unexpected literal for {} aggregation",
                    v.op.as_str()
                ));
            }
            check_metric(&v.inner)
        }
        MetricExpr::Binary(b) => {
            check_metric(&b.lhs)?;
            check_metric(&b.rhs)?;
            if b.op.is_set() {
                for (leg, side) in [(&b.lhs, "left"), (&b.rhs, "right")] {
                    if let Some(v) = literal_value(leg) {
                        return Err(format!(
                            "unexpected literal for {side} leg of logical/set binary operation \
                             ({}): {v:.6}",
                            b.op.as_str()
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// The value of a literal (through parentheses).
fn literal_value(e: &MetricExpr) -> Option<f64> {
    match e {
        MetricExpr::Literal(v) => Some(*v),
        MetricExpr::Paren(inner) => literal_value(inner),
        _ => None,
    }
}

/// True when the expression evaluates to a scalar.
pub(crate) fn is_scalar(e: &MetricExpr) -> bool {
    match e {
        MetricExpr::Literal(_) => true,
        MetricExpr::Paren(inner) => is_scalar(inner),
        MetricExpr::Binary(b) => is_scalar(&b.lhs) && is_scalar(&b.rhs),
        _ => false,
    }
}
