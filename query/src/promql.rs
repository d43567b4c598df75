//! PromQL: the nom-based parser, the syntax tree and the evaluator.
//!
//! Pure of I/O: the evaluator reads samples only through [`sextant_storage::SeriesSource`].

pub mod ast;
pub mod ast_json;
pub mod engine;
pub mod functions;
mod parser;
pub mod printer;
pub mod value;

pub use ast::Expr;
pub use engine::{Engine, EngineOptions};
pub use parser::{parse, ParseError};
pub use value::{
    histogram_size, QueryError, QueryResult, QueryStats, RangeSeries, Value, VectorSample,
};
