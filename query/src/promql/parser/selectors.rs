//! Vector selectors (`name{label="value", ...}`) and label lists (`by (a, b)`).

use sextant_storage::{MatchOp, Matcher, METRIC_NAME};

use super::super::ast::{Expr, PosRange, VectorSelector};
use super::lexer::{Kw, Token, T};
use super::{Node, PResult, Parser};

fn match_op(kind: T) -> Option<MatchOp> {
    Some(match kind {
        T::Assign => MatchOp::Equal,
        T::Neq => MatchOp::NotEqual,
        T::EqlRegex => MatchOp::Regex,
        T::NeqRegex => MatchOp::NotRegex,
        _ => return None,
    })
}

const LABEL_MATCHING: Option<&str> = Some("label matching");

impl Parser<'_> {
    /// A selector; `name` is the metric-name token if one was written before the braces.
    pub(super) fn parse_vector_selector(&mut self, name: Option<Token>) -> PResult<Node> {
        let start = self.peek().start;
        let metric = name.map(|t| {
            self.bump();
            self.text(t).to_string()
        });
        let mut end = self.last_end();
        let mut matchers = Vec::new();
        if self.peek().kind == T::LBrace {
            self.bump();
            matchers = self.parse_label_matchers()?;
            end = self.last_end();
        }
        let explicit = matchers.len();
        if let Some(n) = &metric {
            matchers.push(Matcher::equal(METRIC_NAME, n.clone()));
        }
        let pos = PosRange { start, end };
        let vs = VectorSelector {
            name: metric,
            matchers,
            offset: 0,
            offset_expr: None,
            at: None,
            anchored: false,
            smoothed: false,
            pos,
        };
        self.check_vector_selector(&vs, explicit);
        Ok(Node {
            expr: Expr::VectorSelector(vs),
            pos,
        })
    }

    /// The matchers after `{`, up to and including `}`.
    fn parse_label_matchers(&mut self) -> PResult<Vec<Matcher>> {
        let mut out = Vec::new();
        if self.peek().kind == T::RBrace {
            self.bump();
            return Ok(out);
        }
        loop {
            out.push(self.parse_label_matcher()?);
            match self.peek().kind {
                T::Comma => {
                    self.bump();
                    if self.peek().kind == T::RBrace {
                        self.bump();
                        return Ok(out);
                    }
                }
                T::RBrace => {
                    self.bump();
                    return Ok(out);
                }
                _ => return Err(self.unexpected(LABEL_MATCHING, Some("\",\" or \"}\""))),
            }
        }
    }

    fn parse_label_matcher(&mut self) -> PResult<Matcher> {
        let t = self.peek();
        let name = match t.kind {
            T::Ident => {
                self.bump();
                self.text(t).to_string()
            }
            T::Str => {
                self.bump();
                let s = self.unquote_token(t)?;
                if match_op(self.peek().kind).is_none() {
                    // A quoted metric name: `{"my.metric"}`.
                    return Ok(Matcher::equal(METRIC_NAME, s));
                }
                s
            }
            _ => return Err(self.unexpected(LABEL_MATCHING, Some("identifier or \"}\""))),
        };
        let Some(op) = match_op(self.peek().kind) else {
            return Err(self.unexpected(LABEL_MATCHING, Some("label matching operator")));
        };
        self.bump();
        let v = self.peek();
        if v.kind != T::Str {
            return Err(self.unexpected(LABEL_MATCHING, Some("string")));
        }
        self.bump();
        let value = self.unquote_token(v)?;
        Matcher::new(op, name, value).map_err(|e| {
            // The regex crate explains over several lines; keep the last one.
            let reason = e.reason.lines().last().unwrap_or("").trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            self.fail(
                t.start,
                format!(
                    "invalid regular expression {}: {reason}",
                    super::literals::go_quote(&e.value)
                ),
            )
        })
    }

    /// `( label, ... )` after `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    pub(super) fn parse_grouping_labels(&mut self) -> PResult<Vec<String>> {
        const CTX: Option<&str> = Some("grouping opts");
        self.expect(T::LParen, CTX, Some("\"(\""))?;
        let mut out = Vec::new();
        if self.peek().kind == T::RParen {
            self.bump();
            return Ok(out);
        }
        loop {
            let t = self.peek();
            let label = match t.kind {
                T::Ident | T::MetricIdent => self.text(t).to_string(),
                T::Kw(k) if !matches!(k, Kw::Fill | Kw::FillLeft | Kw::FillRight) => {
                    self.text(t).to_string()
                }
                T::Str => {
                    let s = self.unquote_token(t)?;
                    if s.is_empty() {
                        return Err(self.fail(
                            t.start,
                            format!(
                                "invalid label name for grouping: {}",
                                super::literals::go_quote(&s)
                            ),
                        ));
                    }
                    s
                }
                _ => return Err(self.unexpected(CTX, Some("label"))),
            };
            self.bump();
            out.push(label);
            match self.peek().kind {
                T::Comma => {
                    self.bump();
                    if self.peek().kind == T::RParen {
                        self.bump();
                        return Ok(out);
                    }
                }
                T::RParen => {
                    self.bump();
                    return Ok(out);
                }
                _ => return Err(self.unexpected(CTX, Some("\",\" or \")\""))),
            }
        }
    }
}
