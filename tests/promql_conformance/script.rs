//! Parser for Prometheus's PromQL test-script format (`*.test`): commands, series
//! descriptions, value sequences, durations and Go string literals.
//!
//! The format is specified in `shared/conformance/README.md`, section 1. Parsing never fails
//! as a whole: a malformed `eval` block becomes an eval whose expectations are an error (so
//! it is reported as a failing case), and any other malformed command becomes
//! [`Command::Invalid`].

use std::sync::Arc;

use regex::Regex;
use sextant_storage::{FloatHistogram, Labels, METRIC_NAME, STALE_NAN_BITS};

use super::histogram_notation::{expand_series, parse_histogram};

/// Largest repeat count accepted in `xN`, to keep a typo from allocating gigabytes.
const MAX_REPEAT: u64 = 10_000_000;

/// One position of a value sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqValue {
    /// `_`: no sample at this position.
    Omitted,
    Float(f64),
    /// A native histogram literal (or one value of a histogram series expansion).
    Histogram(Box<FloatHistogram>),
}

#[derive(Debug)]
pub enum Command {
    Load(LoadCmd),
    Clear,
    Eval(Arc<EvalCmd>),
    /// A line that starts no known command, or a `load` block that does not parse.
    Invalid {
        line: usize,
        message: String,
    },
}

#[derive(Debug)]
pub struct LoadCmd {
    pub step_ms: i64,
    /// `load_with_nhcb`: histograms with custom buckets are also built from the float lines.
    pub with_nhcb: bool,
    pub series: Vec<LoadSeries>,
}

#[derive(Debug)]
pub struct LoadSeries {
    pub labels: Labels,
    pub values: Vec<SeqValue>,
    /// True when an `@st` line gave this series start timestamps.
    pub has_start_timestamps: bool,
}

#[derive(Debug)]
pub struct EvalCmd {
    /// 1-based line of the eval header.
    pub line: usize,
    pub query: String,
    pub timing: Timing,
    /// `Err` holds a syntax error found in the block; the eval then fails with it.
    pub expect: Result<Expectations, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    Instant {
        at_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

/// Times of the points of an expected range vector: `start + i × step`, up to `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeSpec {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

#[derive(Debug)]
pub struct Expectations {
    pub fail: Option<TextMatch>,
    pub warn: AnnotationExpectation,
    pub info: AnnotationExpectation,
    pub ordered: bool,
    /// `expect range vector from … to … step …` on an instant eval.
    pub range_vector: Option<RangeSpec>,
    pub result: ExpectedResult,
}

/// How an error or annotation text is checked.
#[derive(Debug)]
pub enum TextMatch {
    Any,
    Exact(String),
    /// Unanchored search.
    Regex(Regex),
}

impl TextMatch {
    pub fn matches(&self, text: &str) -> bool {
        match self {
            TextMatch::Any => true,
            TextMatch::Exact(want) => want == text,
            TextMatch::Regex(re) => re.is_match(text),
        }
    }
}

impl std::fmt::Display for TextMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextMatch::Any => f.write_str("any text"),
            TextMatch::Exact(s) => write!(f, "msg: {s}"),
            TextMatch::Regex(re) => write!(f, "regex: {}", re.as_str()),
        }
    }
}

/// What an eval says about one annotation kind (warnings or infos).
#[derive(Debug, Default)]
pub enum AnnotationExpectation {
    /// No `expect` line for this kind: not checked.
    #[default]
    Unchecked,
    /// `expect no_warn` / `expect no_info`.
    Forbidden,
    /// One entry per `expect warn …` line; each must match an annotation and every annotation
    /// must be matched by one of them.
    Required(Vec<TextMatch>),
}

#[derive(Debug)]
pub enum ExpectedResult {
    /// Result lines (possibly none: the result must be empty).
    Series(Vec<ExpectedSeries>),
    Scalar(SeqValue),
    String(String),
}

#[derive(Debug)]
pub struct ExpectedSeries {
    pub labels: Labels,
    pub values: Vec<SeqValue>,
    /// 1-based position among the result lines, for `expect ordered`.
    pub position: usize,
}

/// Splits a script into commands. Line numbers are 1-based.
pub fn parse_script(text: &str) -> Vec<Command> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let is_blank = |l: &str| l.is_empty() || l.starts_with('#');
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if is_blank(lines[i]) {
            i += 1;
            continue;
        }
        let header = lines[i];
        let header_line = i + 1;
        let first = header
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let body_start = i + 1;
        let mut body_end = body_start;
        while body_end < lines.len() && !is_blank(lines[body_end]) {
            body_end += 1;
        }
        let body: Vec<(usize, &str)> = (body_start..body_end).map(|j| (j + 1, lines[j])).collect();
        if first == "clear" {
            if header.split_whitespace().count() != 1 {
                commands.push(Command::Invalid {
                    line: header_line,
                    message: format!("unexpected text after clear: {header:?}"),
                });
            } else {
                commands.push(Command::Clear);
            }
            i = body_start;
        } else if first.starts_with("load") {
            match parse_load(header, &body) {
                Ok(load) => commands.push(Command::Load(load)),
                Err((line, message)) => commands.push(Command::Invalid {
                    line: line.unwrap_or(header_line),
                    message,
                }),
            }
            i = body_end;
        } else if first.starts_with("eval") {
            let (eval, consumed) = parse_eval(header, header_line, &body);
            commands.push(Command::Eval(Arc::new(eval)));
            i = body_start + consumed;
        } else {
            commands.push(Command::Invalid {
                line: header_line,
                message: format!("invalid command {first:?}"),
            });
            i = body_start;
        }
    }
    commands
}

type LineError = (Option<usize>, String);

fn parse_load(header: &str, body: &[(usize, &str)]) -> Result<LoadCmd, LineError> {
    let mut words = header.split_whitespace();
    let command = words.next().unwrap_or("").to_ascii_lowercase();
    let with_nhcb = match command.as_str() {
        "load" => false,
        "load_with_nhcb" => true,
        _ => return Err((None, format!("invalid load command {command:?}"))),
    };
    let step = words
        .next()
        .ok_or((None, "load needs a step".to_string()))?;
    if words.next().is_some() {
        return Err((
            None,
            format!("unexpected text after load step in {header:?}"),
        ));
    }
    let step_ms = parse_duration(step).map_err(|e| (None, e))?;
    let mut series: Vec<LoadSeries> = Vec::new();
    // An `@st` line waiting for its sample line: (labels, number of positions, line).
    let mut pending_st: Option<(Labels, usize, usize)> = None;
    for &(line, text) in body {
        let (labels, rest, is_st) = parse_series_desc(text).map_err(|e| (Some(line), e))?;
        if is_st {
            if let Some((_, _, st_line)) = pending_st {
                return Err((
                    Some(st_line),
                    "@st line is not followed by its sample line".into(),
                ));
            }
            let offsets = parse_start_timestamps(rest).map_err(|e| (Some(line), e))?;
            pending_st = Some((labels, offsets.len(), line));
            continue;
        }
        let values = parse_values(rest).map_err(|e| (Some(line), e))?;
        let mut has_start_timestamps = false;
        if let Some((st_labels, n_positions, st_line)) = pending_st.take() {
            if st_labels != labels {
                return Err((Some(st_line), "@st line is for a different series".into()));
            }
            if n_positions != values.len() {
                return Err((
                    Some(st_line),
                    format!(
                        "@st line has {n_positions} positions but the sample line has {}",
                        values.len()
                    ),
                ));
            }
            has_start_timestamps = true;
        }
        // A series listed twice in one block keeps only its later line.
        series.retain(|s| s.labels != labels);
        series.push(LoadSeries {
            labels,
            values,
            has_start_timestamps,
        });
    }
    if let Some((_, _, st_line)) = pending_st {
        return Err((
            Some(st_line),
            "@st line is not followed by its sample line".into(),
        ));
    }
    Ok(LoadCmd {
        step_ms,
        with_nhcb,
        series,
    })
}

/// Parses an eval header and its body. Returns the eval and the number of body lines used
/// (a scalar result line or `expected_fail_*` ends the block early).
fn parse_eval(header: &str, line: usize, body: &[(usize, &str)]) -> (EvalCmd, usize) {
    let mut eval = EvalCmd {
        line,
        query: String::new(),
        timing: Timing::Instant { at_ms: 0 },
        expect: Err(String::new()),
    };
    let deprecated = match parse_eval_header(header) {
        Ok((timing, query, deprecated)) => {
            eval.timing = timing;
            eval.query = query;
            deprecated
        }
        Err(e) => {
            eval.query = header.to_string();
            eval.expect = Err(e);
            return (eval, body.len());
        }
    };
    let mut builder = ExpectationBuilder::new(eval.timing, deprecated);
    let mut consumed = 0;
    let mut error = None;
    for &(body_line, text) in body {
        consumed += 1;
        match builder.line(text) {
            Ok(LineOutcome::Continue) => {}
            Ok(LineOutcome::EndBlock) => break,
            Err(e) => {
                error = Some(format!("line {body_line}: {e}"));
                consumed = body.len();
                break;
            }
        }
    }
    eval.expect = match error {
        Some(e) => Err(e),
        None => builder.finish(),
    };
    (eval, consumed)
}

/// The deprecated `eval_*` header spellings, each standing for one `expect` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deprecated {
    None,
    Fail,
    Warn,
    Info,
    Ordered,
}

fn parse_eval_header(header: &str) -> Result<(Timing, String, Deprecated), String> {
    let (command, rest) = next_word(header);
    let deprecated = match command.to_ascii_lowercase().as_str() {
        "eval" => Deprecated::None,
        "eval_fail" => Deprecated::Fail,
        "eval_warn" => Deprecated::Warn,
        "eval_info" => Deprecated::Info,
        "eval_ordered" => Deprecated::Ordered,
        other => return Err(format!("invalid eval command {other:?}")),
    };
    let (mode, rest) = next_word(rest);
    let (timing, query) = match mode {
        "instant" => {
            let (word, after) = next_word(rest);
            if word == "at" {
                let (time, after) = next_word(after);
                (
                    Timing::Instant {
                        at_ms: parse_duration(time)?,
                    },
                    after,
                )
            } else {
                (Timing::Instant { at_ms: 0 }, rest)
            }
        }
        "range" => {
            if deprecated == Deprecated::Ordered {
                return Err("eval_ordered is only allowed with instant queries".into());
            }
            let (from_kw, rest) = next_word(rest);
            let (start, rest) = next_word(rest);
            let (to_kw, rest) = next_word(rest);
            let (end, rest) = next_word(rest);
            let (step_kw, rest) = next_word(rest);
            let (step, rest) = next_word(rest);
            if (from_kw, to_kw, step_kw) != ("from", "to", "step") {
                return Err(format!("invalid range eval header {header:?}"));
            }
            let start_ms = parse_duration(start)?;
            let end_ms = parse_duration(end)?;
            let step_ms = parse_duration(step)?;
            if end_ms < start_ms {
                return Err(format!("range end {end} is before its start {start}"));
            }
            (
                Timing::Range {
                    start_ms,
                    end_ms,
                    step_ms,
                },
                rest,
            )
        }
        other => return Err(format!("expected \"instant\" or \"range\", got {other:?}")),
    };
    let query = query.trim();
    if query.is_empty() {
        return Err("eval has no expression".into());
    }
    Ok((timing, query.to_string(), deprecated))
}

enum LineOutcome {
    Continue,
    EndBlock,
}

struct ExpectationBuilder {
    timing: Timing,
    deprecated: Deprecated,
    fail: Option<TextMatch>,
    warn: Option<Vec<TextMatch>>,
    no_warn: bool,
    info: Option<Vec<TextMatch>>,
    no_info: bool,
    ordered: bool,
    range_vector: Option<RangeSpec>,
    string: Option<String>,
    scalar: Option<SeqValue>,
    series: Vec<ExpectedSeries>,
}

impl ExpectationBuilder {
    fn new(timing: Timing, deprecated: Deprecated) -> ExpectationBuilder {
        let mut builder = ExpectationBuilder {
            timing,
            deprecated,
            fail: None,
            warn: None,
            no_warn: false,
            info: None,
            no_info: false,
            ordered: false,
            range_vector: None,
            string: None,
            scalar: None,
            series: Vec::new(),
        };
        match deprecated {
            Deprecated::None => {}
            Deprecated::Fail => builder.fail = Some(TextMatch::Any),
            Deprecated::Warn => builder.warn = Some(vec![TextMatch::Any]),
            Deprecated::Info => builder.info = Some(vec![TextMatch::Any]),
            Deprecated::Ordered => builder.ordered = true,
        }
        builder
    }

    fn line(&mut self, text: &str) -> Result<LineOutcome, String> {
        let (first, rest) = next_word(text);
        match first {
            "expect" => {
                self.expect_line(rest.trim())?;
                return Ok(LineOutcome::Continue);
            }
            "expected_fail_message" | "expected_fail_regexp" => {
                if self.deprecated != Deprecated::Fail {
                    return Err(format!("{first} is only allowed after eval_fail"));
                }
                let rest = rest.trim();
                self.fail = Some(if first == "expected_fail_message" {
                    TextMatch::Exact(rest.to_string())
                } else {
                    TextMatch::Regex(compile_regex(rest)?)
                });
                return Ok(LineOutcome::EndBlock);
            }
            _ => {}
        }
        if let Some(value) = parse_whole_number(text) {
            if !self.series.is_empty() {
                return Err("a scalar result cannot follow series results".into());
            }
            self.scalar = Some(SeqValue::Float(value));
            return Ok(LineOutcome::EndBlock);
        }
        let (labels, rest, is_st) = parse_series_desc(text)?;
        if is_st {
            return Err("@st lines are not allowed in eval results".into());
        }
        let values = parse_values(rest)?;
        self.series.retain(|s| s.labels != labels);
        let position = self.series.len() + 1;
        self.series.push(ExpectedSeries {
            labels,
            values,
            position,
        });
        Ok(LineOutcome::Continue)
    }

    fn expect_line(&mut self, rest: &str) -> Result<(), String> {
        if let Some(spec) = rest.strip_prefix("range vector") {
            if !matches!(self.timing, Timing::Instant { .. }) {
                return Err("expect range vector is only allowed with instant queries".into());
            }
            let words: Vec<&str> = spec.split_whitespace().collect();
            let [from_kw, start, to_kw, end, step_kw, step] = words.as_slice() else {
                return Err(format!("invalid expect range vector line {rest:?}"));
            };
            if (*from_kw, *to_kw, *step_kw) != ("from", "to", "step") {
                return Err(format!("invalid expect range vector line {rest:?}"));
            }
            let range = RangeSpec {
                start_ms: parse_duration(start)?,
                end_ms: parse_duration(end)?,
                step_ms: parse_duration(step)?,
            };
            if range.end_ms < range.start_ms {
                return Err("expect range vector end is before its start".into());
            }
            self.range_vector = Some(range);
            return Ok(());
        }
        if let Some(literal) = rest.strip_prefix("string") {
            let literal = literal.trim();
            let value = unquote(literal).ok_or(format!("invalid string literal {literal:?}"))?;
            self.string = Some(value);
            return Ok(());
        }
        let (kind, modifier) = match rest.find(|c: char| c.is_whitespace()) {
            Some(pos) => (&rest[..pos], rest[pos..].trim()),
            None => (rest, ""),
        };
        let text_match = if modifier.is_empty() {
            TextMatch::Any
        } else if let Some(msg) = modifier.strip_prefix("msg:") {
            TextMatch::Exact(msg.trim().to_string())
        } else if let Some(re) = modifier.strip_prefix("regex:") {
            TextMatch::Regex(compile_regex(re.trim())?)
        } else {
            return Err(format!("invalid expect modifier {modifier:?}"));
        };
        let takes_text = matches!(kind, "fail" | "warn" | "info");
        if !takes_text && !matches!(text_match, TextMatch::Any) {
            return Err(format!("expect {kind} takes no msg or regex"));
        }
        match kind {
            "fail" => {
                if self.fail.is_some() {
                    return Err("at most one expect fail per eval".into());
                }
                self.fail = Some(text_match);
            }
            "warn" => self.warn.get_or_insert_with(Vec::new).push(text_match),
            "info" => self.info.get_or_insert_with(Vec::new).push(text_match),
            "no_warn" => self.no_warn = true,
            "no_info" => self.no_info = true,
            "ordered" => {
                if matches!(self.timing, Timing::Range { .. }) {
                    return Err("expect ordered is not allowed with range queries".into());
                }
                self.ordered = true;
            }
            other => return Err(format!("invalid expect kind {other:?}")),
        }
        Ok(())
    }

    fn finish(self) -> Result<Expectations, String> {
        if self.warn.is_some() && self.no_warn {
            return Err("expect warn and expect no_warn together".into());
        }
        if self.info.is_some() && self.no_info {
            return Err("expect info and expect no_info together".into());
        }
        let annotation = |required: Option<Vec<TextMatch>>, forbidden: bool| match required {
            Some(lines) => AnnotationExpectation::Required(lines),
            None if forbidden => AnnotationExpectation::Forbidden,
            None => AnnotationExpectation::Unchecked,
        };
        let instant_single_value =
            matches!(self.timing, Timing::Instant { .. }) && self.range_vector.is_none();
        if instant_single_value {
            if let Some(s) = self.series.iter().find(|s| s.values.len() != 1) {
                return Err(format!(
                    "instant eval expects exactly one value per series, {} has {}",
                    s.labels,
                    s.values.len()
                ));
            }
        }
        let result = match (self.string, self.scalar) {
            (Some(_), Some(_)) => return Err("expect string together with a scalar result".into()),
            (Some(_), None) if !self.series.is_empty() => {
                return Err("expect string together with series results".into())
            }
            (Some(s), None) => ExpectedResult::String(s),
            (None, Some(v)) => ExpectedResult::Scalar(v),
            (None, None) => ExpectedResult::Series(self.series),
        };
        Ok(Expectations {
            fail: self.fail,
            warn: annotation(self.warn, self.no_warn),
            info: annotation(self.info, self.no_info),
            ordered: self.ordered,
            range_vector: self.range_vector,
            result,
        })
    }
}

fn compile_regex(re: &str) -> Result<Regex, String> {
    Regex::new(re).map_err(|e| format!("invalid regex {re:?}: {e}"))
}

/// Splits off the first whitespace-separated word; the rest keeps its inner spacing.
fn next_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(pos) => (&s[..pos], &s[pos..]),
        None => (s, ""),
    }
}

/// Parses a Prometheus duration: `0`, or `<int><unit>` parts with units y, w, d, h, m, s, ms.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    match scan_duration(s) {
        Some((ms, len)) if len == s.len() => Ok(ms),
        _ => Err(format!("invalid duration {s:?}")),
    }
}

/// Scans the longest unsigned duration at the start of `s`: `(milliseconds, bytes used)`.
fn scan_duration(s: &str) -> Option<(i64, usize)> {
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut total: i64 = 0;
    loop {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            break;
        }
        let amount: i64 = s[digits_start..pos].parse().ok()?;
        let (unit_ms, unit_len) = if s[pos..].starts_with("ms") {
            (1, 2)
        } else {
            match bytes.get(pos) {
                Some(b'y') => (365 * 24 * 3_600_000, 1),
                Some(b'w') => (7 * 24 * 3_600_000, 1),
                Some(b'd') => (24 * 3_600_000, 1),
                Some(b'h') => (3_600_000, 1),
                Some(b'm') => (60_000, 1),
                Some(b's') => (1000, 1),
                _ => {
                    // Digits without a unit: only a lone "0" is a duration.
                    if digits_start == 0 && amount == 0 {
                        return Some((0, pos));
                    }
                    pos = digits_start;
                    break;
                }
            }
        };
        total = total.checked_add(amount.checked_mul(unit_ms)?)?;
        pos += unit_len;
    }
    (pos > 0).then_some((total, pos))
}

/// Scans a duration with an optional sign (`-30s`, `-0ms`), as `@st` items use.
fn scan_signed_duration(s: &str) -> Option<(i64, usize)> {
    let (sign, skip) = match s.as_bytes().first() {
        Some(b'-') => (-1, 1),
        Some(b'+') => (1, 1),
        _ => (1, 0),
    };
    let (ms, len) = scan_duration(&s[skip..])?;
    Some((sign * ms, skip + len))
}

/// Scans a float at the start of `s`: optional sign, then `Inf`, `NaN` (any case) or a decimal
/// with optional fraction and exponent. Hexadecimal is not accepted (`x` repeats values).
fn scan_number(s: &str) -> Option<(f64, usize)> {
    let bytes = s.as_bytes();
    let mut pos = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        pos += 1;
    }
    let negative = bytes.first() == Some(&b'-');
    let word = s.get(pos..pos + 3).map(str::to_ascii_lowercase);
    match word.as_deref() {
        Some("inf") => {
            let v = if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            return Some((v, pos + 3));
        }
        Some("nan") => return Some((f64::NAN, pos + 3)),
        _ => {}
    }
    let mut digits = 0;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
        digits += 1;
    }
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if pos < bytes.len() && (bytes[pos] == b'e' || bytes[pos] == b'E') {
        let mut exp_pos = pos + 1;
        if matches!(bytes.get(exp_pos), Some(b'+' | b'-')) {
            exp_pos += 1;
        }
        let exp_digits_start = exp_pos;
        while exp_pos < bytes.len() && bytes[exp_pos].is_ascii_digit() {
            exp_pos += 1;
        }
        if exp_pos > exp_digits_start {
            pos = exp_pos;
        }
    }
    s[..pos].parse::<f64>().ok().map(|v| (v, pos))
}

/// A line that is nothing but a number: a scalar result.
fn parse_whole_number(s: &str) -> Option<f64> {
    match scan_number(s) {
        Some((v, len)) if len == s.len() => Some(v),
        _ => None,
    }
}

fn parse_repeat(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("invalid repeat count {s:?}"))?;
    if n > MAX_REPEAT {
        return Err(format!("repeat count {n} is too large"));
    }
    Ok(n)
}

/// Parses a whitespace-separated value sequence (the part of a line after the series).
pub fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for token in split_value_tokens(s)? {
        expand_token(token, &mut out)?;
    }
    Ok(out)
}

/// Splits on whitespace, except inside `{{ … }}` histogram literals.
fn split_value_tokens(s: &str) -> Result<Vec<&str>, String> {
    let mut tokens = Vec::new();
    let mut start: Option<usize> = None;
    let mut in_histogram = false;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if in_histogram {
            if rest.starts_with("}}") {
                in_histogram = false;
                i += 2;
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
            continue;
        }
        if rest.starts_with("{{") {
            start.get_or_insert(i);
            in_histogram = true;
            i += 2;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            if let Some(st) = start.take() {
                tokens.push(&s[st..i]);
            }
        } else {
            start.get_or_insert(i);
        }
        i += c.len_utf8();
    }
    if in_histogram {
        return Err("unterminated histogram literal".into());
    }
    if let Some(st) = start {
        tokens.push(&s[st..]);
    }
    Ok(tokens)
}

fn expand_token(token: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    if token == "_" {
        out.push(SeqValue::Omitted);
        return Ok(());
    }
    if let Some(n) = token.strip_prefix("_x") {
        let n = parse_repeat(n)?;
        out.extend((0..n).map(|_| SeqValue::Omitted));
        return Ok(());
    }
    if token == "stale" {
        out.push(SeqValue::Float(f64::from_bits(STALE_NAN_BITS)));
        return Ok(());
    }
    if token.starts_with("{{") {
        out.extend(
            expand_histogram_token(token)?
                .into_iter()
                .map(|h| SeqValue::Histogram(Box::new(h))),
        );
        return Ok(());
    }
    let invalid = || format!("invalid value {token:?}");
    let (first, len) = scan_number(token).ok_or_else(invalid)?;
    let rest = &token[len..];
    if rest.is_empty() {
        out.push(SeqValue::Float(first));
        return Ok(());
    }
    if let Some(n) = rest.strip_prefix('x') {
        let n = parse_repeat(n)?;
        out.extend((0..=n).map(|_| SeqValue::Float(first)));
        return Ok(());
    }
    if !rest.starts_with(['+', '-']) {
        return Err(invalid());
    }
    let (increment, len) = scan_number(rest).ok_or_else(invalid)?;
    let n = rest[len..].strip_prefix('x').ok_or_else(invalid)?;
    let n = parse_repeat(n)?;
    // Accumulate as the reference parser does, so fractional increments give identical bits.
    let mut value = first;
    out.push(SeqValue::Float(value));
    for _ in 0..n {
        value += increment;
        out.push(SeqValue::Float(value));
    }
    Ok(())
}

/// The histograms of `{{H}}`, `{{H}}xN` (N+1 copies) or `{{H}}(+|-){{D}}xN` (N+1 values).
fn expand_histogram_token(token: &str) -> Result<Vec<FloatHistogram>, String> {
    let invalid = || format!("invalid histogram value {token:?}");
    let end = token.find("}}").ok_or_else(invalid)? + 2;
    let base = parse_histogram(&token[..end])?;
    let mut rest = &token[end..];
    let mut increment: Option<(FloatHistogram, bool)> = None;
    if let Some(after_sign) = rest.strip_prefix(['+', '-']) {
        if !after_sign.starts_with("{{") {
            return Err(invalid());
        }
        let negative = rest.starts_with('-');
        let end = after_sign.find("}}").ok_or_else(invalid)? + 2;
        increment = Some((parse_histogram(&after_sign[..end])?, negative));
        rest = &after_sign[end..];
    }
    if rest.is_empty() {
        return match increment {
            Some(_) => Err(invalid()),
            None => Ok(vec![base]),
        };
    }
    let n = rest.strip_prefix('x').ok_or_else(invalid)?;
    let n = usize::try_from(parse_repeat(n)?).map_err(|_| invalid())?;
    match increment {
        Some((step, negative)) => expand_series(&base, &step, n, negative),
        None => Ok(vec![base; n + 1]),
    }
}

/// Parses an `@st` line's items into one optional start-timestamp offset per position.
pub fn parse_start_timestamps(s: &str) -> Result<Vec<Option<i64>>, String> {
    let mut out = Vec::new();
    for token in s.split_whitespace() {
        if token == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = token.strip_prefix("_x") {
            out.extend((0..parse_repeat(n)?).map(|_| None));
            continue;
        }
        let invalid = || format!("invalid start timestamp item {token:?}");
        let (first, len) = scan_signed_duration(token).ok_or_else(invalid)?;
        let rest = &token[len..];
        if rest.is_empty() {
            out.push(Some(first));
            continue;
        }
        if let Some(n) = rest.strip_prefix('x') {
            let n = parse_repeat(n)?;
            out.extend((0..=n).map(|_| Some(first)));
            continue;
        }
        let sign = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(invalid()),
        };
        let (step, len) = scan_duration(&rest[1..]).ok_or_else(invalid)?;
        let n = rest[1 + len..].strip_prefix('x').ok_or_else(invalid)?;
        let n = parse_repeat(n)?;
        out.extend((0..=n as i64).map(|k| Some(first + sign * step * k)));
    }
    Ok(out)
}

/// Parses a series identifier (`name`, `name{a="b"}`, `{__name__="x"}`, `{"utf8.name"}`) and
/// returns its labels, the rest of the line, and whether the identifier ends in `@st`.
pub fn parse_series_desc(s: &str) -> Result<(Labels, &str, bool), String> {
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let is_name_start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':';
    let is_name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    if bytes.first().copied().is_some_and(is_name_start) {
        while pos < bytes.len() && is_name_char(bytes[pos]) {
            pos += 1;
        }
        pairs.push((METRIC_NAME.to_string(), s[..pos].to_string()));
    }
    if bytes.get(pos) == Some(&b'{') {
        pos += 1;
        loop {
            pos = skip_spaces(s, pos);
            match bytes.get(pos) {
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                None => return Err(format!("unterminated label set in {s:?}")),
                _ => {}
            }
            let (name, quoted_name, after) = if matches!(bytes[pos], b'"' | b'\'' | b'`') {
                let (name, len) = scan_quoted(&s[pos..])
                    .ok_or_else(|| format!("invalid quoted label name in {s:?}"))?;
                (name, true, pos + len)
            } else if is_name_start(bytes[pos]) {
                let start = pos;
                let mut end = pos;
                while end < bytes.len() && is_name_char(bytes[end]) {
                    end += 1;
                }
                (s[start..end].to_string(), false, end)
            } else {
                return Err(format!("invalid label name at byte {pos} in {s:?}"));
            };
            pos = skip_spaces(s, after);
            if quoted_name && matches!(bytes.get(pos), Some(b',' | b'}')) {
                // A lone quoted string is the metric name (UTF-8 selector syntax).
                pairs.push((METRIC_NAME.to_string(), name));
            } else {
                if bytes.get(pos) != Some(&b'=') || bytes.get(pos + 1) == Some(&b'~') {
                    return Err(format!("expected \"=\" after label {name:?} in {s:?}"));
                }
                pos = skip_spaces(s, pos + 1);
                let (value, len) = scan_quoted(&s[pos..])
                    .ok_or_else(|| format!("invalid label value for {name:?} in {s:?}"))?;
                pairs.push((name, value));
                pos = skip_spaces(s, pos + len);
            }
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected \",\" or \"}}\" in {s:?}")),
            }
        }
    }
    if pos == 0 {
        return Err(format!("invalid series description {s:?}"));
    }
    let mut rest = &s[pos..];
    let is_st = match rest.strip_prefix("@st") {
        Some(after) if after.is_empty() || after.starts_with(char::is_whitespace) => {
            rest = after;
            true
        }
        _ => false,
    };
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(format!("unexpected text after series identifier in {s:?}"));
    }
    Ok((Labels::from_pairs(pairs), rest, is_st))
}

fn skip_spaces(s: &str, mut pos: usize) -> usize {
    let bytes = s.as_bytes();
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

/// Unquotes a complete Go string literal (`"…"`, `'…'` or `` `…` ``).
pub fn unquote(s: &str) -> Option<String> {
    match scan_quoted(s) {
        Some((value, len)) if len == s.len() => Some(value),
        _ => None,
    }
}

/// Scans a Go string literal at the start of `s`: `(value, bytes used)`. Escapes follow Go's
/// rules; `\x` and octal escapes that form invalid UTF-8 are replaced lossily.
fn scan_quoted(s: &str) -> Option<(String, usize)> {
    let quote = *s.as_bytes().first()?;
    if quote == b'`' {
        let end = s[1..].find('`')? + 1;
        return Some((s[1..end].to_string(), end + 1));
    }
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c as u32 == quote as u32 {
            return Some((String::from_utf8_lossy(&out).into_owned(), i + 1));
        }
        if c == '\n' {
            return None;
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let (_, esc) = chars.next()?;
        let simple = match esc {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' | '\'' => Some(esc as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let mut take_digits = |n: usize, radix: u32| -> Option<u32> {
            let mut v = 0u32;
            for _ in 0..n {
                let (_, d) = chars.next()?;
                v = v * radix + d.to_digit(radix)?;
            }
            Some(v)
        };
        match esc {
            'x' => out.push(u8::try_from(take_digits(2, 16)?).ok()?),
            '0'..='7' => {
                let rest = take_digits(2, 8)?;
                let v = esc.to_digit(8)? * 64 + rest;
                out.push(u8::try_from(v).ok()?);
            }
            'u' | 'U' => {
                let n = if esc == 'u' { 4 } else { 8 };
                let c = char::from_u32(take_digits(n, 16)?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return None,
        }
    }
    None
}
