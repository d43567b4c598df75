//! The PromQL parser: a `nom`-based lexer and a precedence-climbing parser that follows
//! Prometheus 3.x's grammar, its type checks and its error messages.
//!
//! Submodules: [`lexer`] and [`tokens`], [`literals`] (numbers, strings, durations with Go
//! semantics), `expr` (operators and modifiers), `selectors` (vector selectors and label
//! lists), `calls` (functions and aggregations), `durations` (range/offset values) and
//! `checks` (Prometheus' semantic checks).

mod calls;
mod checks;
mod durations;
mod expr;
mod lexer;
pub(crate) mod literals;
mod selectors;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_conformance;
mod tokens;
#[cfg(test)]
pub(crate) use tests::normalized as tests_normalized;

use super::ast::{Expr, PosRange};
use lexer::{Token, T};

/// A syntax or type error with its position, formatted as Prometheus does:
/// `1:14: parse error: unexpected "}"`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{line}:{col}: parse error: {message}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ParseError {
    /// Builds an error for byte offset `pos` of `input` (1-based line and byte column).
    fn at(input: &str, pos: usize, message: String) -> ParseError {
        let pos = pos.min(input.len());
        let before = input.get(..pos).unwrap_or(input);
        let line = before.matches('\n').count() + 1;
        let col = match before.rfind('\n') {
            Some(nl) => pos - nl,
            None => pos + 1,
        };
        ParseError { line, col, message }
    }
}

/// Parses a PromQL expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let lexed = lexer::lex(input);
    let mut p = Parser {
        input,
        toks: lexed.tokens,
        lex_error: lexed.error,
        i: 0,
        error: None,
        check_errors: Vec::new(),
        ctx: Vec::new(),
    };
    let result = p.parse_top();
    match (result, p.error) {
        (_, Some((pos, msg))) => Err(ParseError::at(input, pos, msg)),
        (Ok(node), None) => match p.check_errors.into_iter().next() {
            Some((pos, msg)) => Err(ParseError::at(input, pos, msg)),
            None => Ok(node.expr),
        },
        (Err(Abort), None) => Err(ParseError::at(input, 0, "unexpected error".into())),
    }
}

/// Parsing stopped; the reason is in [`Parser::error`].
#[derive(Debug)]
struct Abort;

type PResult<T> = Result<T, Abort>;

/// An expression with the byte range it was parsed from.
#[derive(Clone, Debug)]
struct Node {
    expr: Expr,
    pos: PosRange,
}

impl Node {
    fn new(expr: Expr, start: usize, end: usize) -> Node {
        Node {
            expr,
            pos: PosRange { start, end },
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token>,
    lex_error: Option<String>,
    /// Index of the next token.
    i: usize,
    /// The first syntax error (parsing stops there).
    error: Option<(usize, String)>,
    /// Type errors, reported only when there is no syntax error.
    check_errors: Vec<(usize, String)>,
    /// Contexts for "unexpected ..." messages (innermost last), e.g. "aggregation".
    ctx: Vec<&'static str>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Token {
        let last = self.toks.len().saturating_sub(1);
        self.toks
            .get((self.i + n).min(last))
            .copied()
            .unwrap_or(Token {
                kind: T::Eof,
                start: self.input.len(),
                end: self.input.len(),
            })
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        if !matches!(t.kind, T::Eof | T::Error) {
            self.i += 1;
        }
        t
    }

    /// The end offset of the last consumed token.
    fn last_end(&self) -> usize {
        match self.i.checked_sub(1).and_then(|j| self.toks.get(j)) {
            Some(t) => t.end,
            None => 0,
        }
    }

    fn text(&self, t: Token) -> &'a str {
        self.input.get(t.start..t.end).unwrap_or("")
    }

    /// Records a syntax error and stops.
    fn fail(&mut self, pos: usize, msg: impl Into<String>) -> Abort {
        if self.error.is_none() {
            self.error = Some((pos, msg.into()));
        }
        Abort
    }

    /// Records a type error; parsing goes on.
    fn check_error(&mut self, pos: usize, msg: impl Into<String>) {
        self.check_errors.push((pos, msg.into()));
    }

    /// "unexpected <token>[ in <context>][, expected <expected>]" for the next token. With no
    /// context, the innermost enclosing context (if any) is used.
    fn unexpected(&mut self, context: Option<&str>, expected: Option<&str>) -> Abort {
        let t = self.peek();
        if t.kind == T::Error {
            let msg = self.lex_error.clone().unwrap_or_default();
            return self.fail(t.start, msg);
        }
        let mut msg = format!("unexpected {}", t.describe(self.input));
        let context = context.or_else(|| self.ctx.last().copied());
        if let Some(c) = context {
            msg.push_str(" in ");
            msg.push_str(c);
        }
        if let Some(e) = expected {
            msg.push_str(", expected ");
            msg.push_str(e);
        }
        self.fail(t.start, msg)
    }

    fn expect(&mut self, kind: T, context: Option<&str>, expected: Option<&str>) -> PResult<Token> {
        if self.peek().kind == kind {
            Ok(self.bump())
        } else {
            Err(self.unexpected(context, expected))
        }
    }

    fn parse_top(&mut self) -> PResult<Node> {
        if self.peek().kind == T::Eof {
            return Err(self.fail(0, "no expression found in input"));
        }
        let node = self.parse_expr(0)?;
        if self.peek().kind != T::Eof {
            return Err(self.unexpected(None, None));
        }
        Ok(node)
    }
}
