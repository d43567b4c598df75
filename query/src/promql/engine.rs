//! The PromQL evaluator: instant and range queries over a [`SeriesSource`].

use std::time::Duration;

use sextant_storage::SeriesSource;

use super::ast::Expr;
use super::value::{QueryError, QueryResult};

/// Evaluation settings. Defaults match Prometheus's server defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (default 5m).
    pub lookback_delta_ms: i64,
    /// Maximum samples held in memory by one query at any time (default 50,000,000).
    pub max_samples: usize,
    /// Deadline for one query (default 2m).
    pub timeout: Duration,
    /// Step of subqueries written without one, `[5m:]` (default 1m).
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
        }
    }
}

pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at `time_ms`. `query` is the original text, used to place annotations.
    pub fn instant_query(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let _ = (source, query, expr, time_ms, &self.opts);
        Err(QueryError::Execution("evaluator not built yet".into()))
    }

    /// Evaluates `expr` at every step from `start_ms` to `end_ms` inclusive; the result is a
    /// matrix (or, for scalar/string expressions, a matrix of one unlabelled series).
    pub fn range_query(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let _ = (source, query, expr, start_ms, end_ms, step_ms);
        Err(QueryError::Execution("evaluator not built yet".into()))
    }
}
