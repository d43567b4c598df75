//! The PromQL lexer: turns the query text into tokens, with the same context rules as
//! Prometheus' lexer (keywords are plain identifiers inside braces, brackets hold duration
//! expressions, `#` starts a comment). Small recognisers are written with `nom`.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::recognize;
use nom::sequence::pair;
use nom::IResult;

use super::literals::{go_quote_rune, scan_string};
pub(super) use super::tokens::{Kw, Lexed, Token, T};

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_alpha(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: u8) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

fn spaces(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii() && is_space(c as u8))(i)
}

fn comment(i: &str) -> IResult<&str, &str> {
    recognize(pair(tag("#"), take_while(|c: char| c != '\n' && c != '\r')))(i)
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the spelling of metric names and keywords.
fn metric_word(i: &str) -> IResult<&str, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii() && (is_alpha(c as u8) || c == ':')),
        take_while(|c: char| c.is_ascii() && (is_alnum(c as u8) || c == ':')),
    ))(i)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the spelling of label names inside braces.
fn label_word(i: &str) -> IResult<&str, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii() && is_alpha(c as u8)),
        take_while(|c: char| c.is_ascii() && is_alnum(c as u8)),
    ))(i)
}

fn operator(i: &str) -> IResult<&str, &str> {
    alt((
        tag("=="),
        tag("!="),
        tag("<="),
        tag(">="),
        tag("=~"),
        tag("!~"),
        tag("="),
        tag("<"),
        tag(">"),
        tag("+"),
        tag("-"),
        tag("*"),
        tag("/"),
        tag("%"),
        tag("^"),
        tag("@"),
        tag(","),
    ))(i)
}

fn op_kind(op: &str) -> T {
    match op {
        "==" => T::Eqlc,
        "!=" => T::Neq,
        "<=" => T::Lte,
        ">=" => T::Gte,
        "=~" => T::EqlRegex,
        "!~" => T::NeqRegex,
        "=" => T::Assign,
        "<" => T::Lss,
        ">" => T::Gtr,
        "+" => T::Add,
        "-" => T::Sub,
        "*" => T::Mul,
        "/" => T::Div,
        "%" => T::Mod,
        "^" => T::Pow,
        "@" => T::At,
        _ => T::Comma,
    }
}

/// Ports Prometheus' `scanNumber`: returns the end of the scanned text and whether it is a
/// complete number (not followed by a letter or digit).
fn scan_number(b: &[u8], start: usize) -> (usize, bool) {
    let at = |p: usize| b.get(p).copied();
    let mut p = start;
    let mut hex = false;
    if at(p) == Some(b'0') {
        p += 1;
        if matches!(at(p), Some(b'x' | b'X')) {
            p += 1;
            hex = true;
            if at(p) == Some(b'_') {
                p += 1;
            }
        }
    }
    let is_digit = |c: Option<u8>| match c {
        Some(c) if hex => c.is_ascii_hexdigit(),
        Some(c) => c.is_ascii_digit(),
        None => false,
    };
    if at(p) == Some(b'.') {
        p += 1;
    }
    if is_digit(at(p)) {
        p += 1;
    }
    let (mut dot, mut exp) = (false, false);
    while is_digit(at(p)) || matches!(at(p), Some(b'.' | b'_' | b'e' | b'E')) {
        let c = at(p);
        if c == Some(b'.') && dot {
            return (p + 1, false);
        }
        if matches!(c, Some(b'e' | b'E')) && exp {
            return (p + 1, false);
        }
        if c == Some(b'.') {
            p += 1;
            dot = true;
            if matches!(at(p), Some(b'_' | b'.')) {
                return (p + 1, false);
            }
            if hex {
                return (p, false);
            }
            continue;
        }
        if matches!(c, Some(b'e' | b'E')) {
            p += 1;
            exp = true;
            if matches!(at(p), Some(b'+' | b'-')) {
                p += 1;
            }
            if matches!(at(p), Some(b'.' | b'_' | b'e' | b'E')) {
                return (p + 1, false);
            }
            if at(p).is_none() {
                return (p, false);
            }
            continue;
        }
        if c == Some(b'_') {
            p += 1;
            if matches!(at(p), Some(b'.' | b'_' | b'e' | b'E')) {
                return (p + 1, false);
            }
            if at(p).is_none() {
                return (p, false);
            }
            continue;
        }
        while is_digit(at(p)) {
            p += 1;
        }
    }
    if p == start {
        return (p, false);
    }
    (p, !at(p).is_some_and(is_alnum))
}

/// Ports `acceptRemainingDuration`: unit letters after the digits of a duration.
fn accept_remaining_duration(b: &[u8], mut p: usize) -> Option<usize> {
    let at = |p: usize| b.get(p).copied();
    if !matches!(at(p), Some(b's' | b'm' | b'h' | b'd' | b'w' | b'y')) {
        return None;
    }
    p += 1;
    if at(p) == Some(b's') {
        p += 1;
    }
    while at(p).is_some_and(|c| c.is_ascii_digit()) {
        while at(p).is_some_and(|c| c.is_ascii_digit()) {
            p += 1;
        }
        if !matches!(at(p), Some(b's' | b'm' | b'h' | b'd' | b'w')) {
            return None;
        }
        p += 1;
        if at(p) == Some(b's') {
            p += 1;
        }
    }
    if at(p).is_some_and(is_alnum) {
        None
    } else {
        Some(p)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Braces,
    /// Inside `[...]`; `seen` is true once a token followed the `[`.
    Bracket {
        seen: bool,
    },
}

struct Lexer<'a> {
    input: &'a str,
    b: &'a [u8],
    pos: usize,
    mode: Mode,
    paren_depth: i64,
    tokens: Vec<Token>,
}

type LexResult = Result<(), (usize, String)>;

impl<'a> Lexer<'a> {
    fn push(&mut self, kind: T, start: usize, end: usize) {
        self.tokens.push(Token { kind, start, end });
        self.pos = end;
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn next_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn unexpected_char(&self, prefix: &str) -> (usize, String) {
        let c = self.next_char().unwrap_or('\u{fffd}');
        (self.pos, format!("{prefix}{}", go_quote_rune(c)))
    }

    fn run(&mut self) -> LexResult {
        loop {
            if self.pos >= self.b.len() {
                return self.at_eof();
            }
            match self.mode {
                Mode::Normal => self.lex_normal()?,
                Mode::Braces => self.lex_braces()?,
                Mode::Bracket { seen } => self.lex_bracket(seen)?,
            }
        }
    }

    fn at_eof(&mut self) -> LexResult {
        match self.mode {
            Mode::Braces => Err((self.pos, "unexpected end of input inside braces".into())),
            Mode::Bracket { seen: false } => Err((
                self.pos,
                "unexpected end of input in duration expression".into(),
            )),
            Mode::Bracket { .. } => Err((self.pos, "unclosed left bracket".into())),
            Mode::Normal if self.paren_depth != 0 => {
                Err((self.pos, "unclosed left parenthesis".into()))
            }
            Mode::Normal => {
                self.push(T::Eof, self.pos, self.pos);
                Ok(())
            }
        }
    }

    /// Skips spaces and comments; true if anything was skipped.
    fn skip_trivia(&mut self, comments: bool) -> bool {
        let rest = self.rest();
        if let Ok((r, _)) = spaces(rest) {
            self.pos += rest.len() - r.len();
            return true;
        }
        if comments {
            if let Ok((r, _)) = comment(rest) {
                self.pos += rest.len() - r.len();
                return true;
            }
        }
        false
    }

    fn lex_string(&mut self, quote: u8) -> LexResult {
        let start = self.pos;
        let end = scan_string(self.b, start, quote).map_err(|m| (start, m))?;
        self.push(T::Str, start, end);
        Ok(())
    }

    fn lex_number_or_duration(&mut self) -> LexResult {
        let start = self.pos;
        let (end, ok) = scan_number(self.b, start);
        if ok {
            self.push(T::Number, start, end);
            return Ok(());
        }
        match accept_remaining_duration(self.b, end) {
            Some(end) => {
                self.push(T::Duration, start, end);
                Ok(())
            }
            None => {
                let text = self.input.get(start..end).unwrap_or("");
                Err((
                    start,
                    format!(
                        "bad number or duration syntax: {}",
                        super::literals::go_quote(text)
                    ),
                ))
            }
        }
    }

    fn lex_normal(&mut self) -> LexResult {
        if self.skip_trivia(true) {
            return Ok(());
        }
        let c = self.b[self.pos];
        let start = self.pos;
        match c {
            b'(' => {
                self.paren_depth += 1;
                self.push(T::LParen, start, start + 1);
            }
            b')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return Err((start + 1, "unexpected right parenthesis ')'".into()));
                }
                self.push(T::RParen, start, start + 1);
            }
            b'{' => {
                self.push(T::LBrace, start, start + 1);
                self.mode = Mode::Braces;
            }
            b'[' => {
                self.push(T::LBracket, start, start + 1);
                self.mode = Mode::Bracket { seen: false };
            }
            b']' => return Err((start, "unexpected right bracket ']'".into())),
            b'"' | b'\'' | b'`' => self.lex_string(c)?,
            b'0'..=b'9' => self.lex_number_or_duration()?,
            b'.' if self.b.get(start + 1).is_some_and(|d| d.is_ascii_digit()) => {
                self.lex_number_or_duration()?
            }
            b'=' if self.b.get(start + 1) == Some(&b'~') => {
                return Err((start, "unexpected character after '=': '~'".into()));
            }
            b'!' if self.b.get(start + 1) != Some(&b'=') => {
                self.pos += 1;
                let e = match self.next_char() {
                    Some(n) => format!("unexpected character after '!': {}", go_quote_rune(n)),
                    None => "unexpected character after '!': U+FFFFFFFFFFFFFFFF".to_string(),
                };
                return Err((start, e));
            }
            _ if is_alpha(c) || c == b':' => {
                let rest = self.rest();
                let (_, word) = metric_word(rest).map_err(|_| self.unexpected_char(""))?;
                let end = start + word.len();
                let kind = match Kw::from_word(&word.to_ascii_lowercase()) {
                    Some(Kw::Fill | Kw::FillLeft | Kw::FillRight)
                        if !self.input[end..]
                            .trim_start_matches([' ', '\t', '\n', '\r'])
                            .starts_with('(') =>
                    {
                        T::Ident
                    }
                    Some(k) => T::Kw(k),
                    None if word.eq_ignore_ascii_case("inf")
                        || word.eq_ignore_ascii_case("nan") =>
                    {
                        T::Number
                    }
                    None if word.contains(':') => T::MetricIdent,
                    None => T::Ident,
                };
                self.push(kind, start, end);
            }
            b'<' | b'>' if self.b.get(start + 1) == Some(&b'/') => {
                self.push(T::Trim, start, start + 2)
            }
            _ => {
                let rest = self.rest();
                match operator(rest) {
                    Ok((r, op)) if op != "=~" && op != "!~" => {
                        let end = start + (rest.len() - r.len());
                        self.push(op_kind(op), start, end);
                    }
                    _ => return Err(self.unexpected_char("unexpected character: ")),
                }
            }
        }
        Ok(())
    }

    fn lex_braces(&mut self) -> LexResult {
        if self.skip_trivia(true) {
            return Ok(());
        }
        let c = self.b[self.pos];
        let start = self.pos;
        match c {
            b'}' => {
                self.push(T::RBrace, start, start + 1);
                self.mode = Mode::Normal;
            }
            b'{' => return Err((start, "unexpected left brace '{'".into())),
            b',' => self.push(T::Comma, start, start + 1),
            b'"' | b'\'' | b'`' => self.lex_string(c)?,
            b'=' if self.b.get(start + 1) == Some(&b'~') => {
                self.push(T::EqlRegex, start, start + 2)
            }
            b'=' => self.push(T::Assign, start, start + 1),
            b'!' => match self.b.get(start + 1) {
                Some(b'~') => self.push(T::NeqRegex, start, start + 2),
                Some(b'=') => self.push(T::Neq, start, start + 2),
                _ => {
                    self.pos += 1;
                    let e = match self.next_char() {
                        Some(n) => format!(
                            "unexpected character after '!' inside braces: {}",
                            go_quote_rune(n)
                        ),
                        None => "unexpected end of input inside braces".to_string(),
                    };
                    return Err((start, e));
                }
            },
            _ if is_alpha(c) => {
                let rest = self.rest();
                let (_, word) = label_word(rest).map_err(|_| self.unexpected_char(""))?;
                self.push(T::Ident, start, start + word.len());
            }
            _ => return Err(self.unexpected_char("unexpected character inside braces: ")),
        }
        Ok(())
    }

    fn lex_bracket(&mut self, seen: bool) -> LexResult {
        if self.skip_trivia(false) {
            return Ok(());
        }
        let c = self.b[self.pos];
        let start = self.pos;
        self.mode = Mode::Bracket { seen: true };
        match c {
            b']' => {
                self.push(T::RBracket, start, start + 1);
                self.mode = Mode::Normal;
            }
            b'[' => return Err((start, "unexpected left bracket '['".into())),
            b':' if !seen => {
                return Err((
                    start,
                    "unexpected colon before duration in duration expression".into(),
                ))
            }
            b':' => self.push(T::Colon, start, start + 1),
            b'(' => {
                self.paren_depth += 1;
                self.push(T::LParen, start, start + 1);
            }
            b')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return Err((start + 1, "unexpected right parenthesis ')'".into()));
                }
                self.push(T::RParen, start, start + 1);
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b',' => {
                let kind = op_kind(&self.input[start..start + 1]);
                self.push(kind, start, start + 1);
            }
            b'0'..=b'9' => self.lex_number_or_duration()?,
            b'.' if self.b.get(start + 1).is_some_and(|d| d.is_ascii_digit()) => {
                self.lex_number_or_duration()?
            }
            _ if is_alpha(c) => {
                let rest = self.rest();
                let (_, word) = label_word(rest).map_err(|_| self.unexpected_char(""))?;
                let lower = word.to_ascii_lowercase();
                let kind = match lower.as_str() {
                    "step" => T::Kw(Kw::Step),
                    "range" => T::Kw(Kw::Range),
                    "min" => T::Kw(Kw::Min),
                    "max" => T::Kw(Kw::Max),
                    "min_of" | "max_of" => T::Ident,
                    _ => {
                        return Err(
                            self.unexpected_char("unexpected character in duration expression: ")
                        )
                    }
                };
                self.push(kind, start, start + word.len());
            }
            _ => return Err(self.unexpected_char("unexpected character in duration expression: ")),
        }
        Ok(())
    }
}

/// Splits `input` into tokens.
pub(super) fn lex(input: &str) -> Lexed {
    let mut l = Lexer {
        input,
        b: input.as_bytes(),
        pos: 0,
        mode: Mode::Normal,
        paren_depth: 0,
        tokens: Vec::new(),
    };
    match l.run() {
        Ok(()) => Lexed {
            tokens: l.tokens,
            error: None,
        },
        Err((pos, msg)) => {
            l.tokens.push(Token {
                kind: T::Error,
                start: pos,
                end: input.len(),
            });
            Lexed {
                tokens: l.tokens,
                error: Some(msg),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<T> {
        lex(s).tokens.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(
            kinds("1 1.5 .5 0x1f 1e3"),
            vec![T::Number; 5]
                .into_iter()
                .chain([T::Eof])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            kinds("5m 1h30m 1y2w3d4h5m6s7ms"),
            vec![T::Duration, T::Duration, T::Duration, T::Eof]
        );
        assert_eq!(kinds("Inf nan"), vec![T::Number, T::Number, T::Eof]);
        let l = lex("5x");
        assert_eq!(
            l.error.as_deref(),
            Some("bad number or duration syntax: \"5\"")
        );
    }

    #[test]
    fn keywords_and_identifiers() {
        assert_eq!(
            kinds("sum by foo:bar fill fill(1)"),
            vec![
                T::Kw(Kw::Sum),
                T::Kw(Kw::By),
                T::MetricIdent,
                T::Ident,
                T::Kw(Kw::Fill),
                T::LParen,
                T::Number,
                T::RParen,
                T::Eof
            ]
        );
        assert_eq!(
            kinds("{sum=\"a\"}"),
            vec![T::LBrace, T::Ident, T::Assign, T::Str, T::RBrace, T::Eof]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            lex("foo{").error.as_deref(),
            Some("unexpected end of input inside braces")
        );
        assert_eq!(
            lex("(foo").error.as_deref(),
            Some("unclosed left parenthesis")
        );
        assert_eq!(
            lex("foo[5m").error.as_deref(),
            Some("unclosed left bracket")
        );
        assert_eq!(
            lex("foo}").error.as_deref(),
            Some("unexpected character: '}'")
        );
        assert_eq!(
            lex("\"abc").error.as_deref(),
            Some("unterminated quoted string")
        );
        assert_eq!(lex("foo # comment\n+ 1").error, None);
    }
}
