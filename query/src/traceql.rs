//! TraceQL: a `nom` parser and an engine over [`sextant_storage::traces::TraceSource`],
//! answering Tempo-style searches.
//!
//! Entry points: [`parse`], [`compile`] (query → [`Compiled`] with its conservative
//! [`sextant_storage::traces::TraceFilter`] pushdown) and [`search`] (pushdown to the store,
//! exact evaluation on each whole trace it visits, stop after `limit` matches). Times are Unix
//! nanoseconds, durations nanoseconds.

pub mod ast;
mod engine;
mod parser;

#[cfg(test)]
mod tests;

pub use ast::Pipeline;
pub use engine::{
    compile, search, search_traces, span_predicate, Compiled, SearchRequest, SearchResult,
    SpanMatch, Spanset, TraceMatch, ROOT_SPAN_NOT_YET_RECEIVED,
};
pub use parser::{parse, parse_attribute, MAX_NESTING, MAX_OPERATOR_CHARS};

/// Why a query could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceqlError {
    /// A syntax error. `offset` is a byte offset into the query; `line`/`col` are 1-based
    /// (`col` counts characters).
    #[error("parse error at line {line}, col {col}: {msg}")]
    Parse {
        offset: usize,
        line: usize,
        col: usize,
        msg: String,
    },
    /// A well-formed query this engine cannot evaluate (or a bad regex).
    #[error("{0}")]
    Unsupported(String),
}

impl TraceqlError {
    /// A parse error at byte `offset` of `query`.
    pub(crate) fn at(query: &str, offset: usize, msg: impl Into<String>) -> TraceqlError {
        let offset = offset.min(query.len());
        let before = query.get(..offset).unwrap_or(query);
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        TraceqlError::Parse {
            offset,
            line,
            col,
            msg: msg.into(),
        }
    }
}
