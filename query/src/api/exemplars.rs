//! `GET|POST /api/v1/query_exemplars`: the exemplars of every series selected by any vector
//! selector of a PromQL expression, shaped as Prometheus answers:
//! `[{"seriesLabels":{…},"exemplars":[{"labels":{…},"value":"…","timestamp":<seconds>}]}]`.
//!
//! As in Prometheus, each vector selector (also inside range selectors, subqueries, function
//! arguments and aggregations) contributes its matchers as one set and a series matching any
//! set is returned; an expression without selectors (`1+1`) answers `data: null`; `start` and
//! `end` default to the minimum and maximum time.

use std::sync::Arc;

use axum::extract::State;
use sextant_storage::{ExemplarSeries, Matcher};

use super::params::{parse_time_param, Params, MAX_TIME_MS, MIN_TIME_MS};
use super::query::write_labels;
use super::response::{format_value, write_timestamp, ApiError, Success};
use super::ApiState;
use crate::promql::ast::Expr;
use crate::promql::parse;

pub async fn query_exemplars(
    State(st): State<Arc<ApiState>>,
    p: Params,
) -> Result<Success, ApiError> {
    let start = parse_time_param(&p, "start", MIN_TIME_MS)
        .map_err(|e| ApiError::invalid_param("start", e))?;
    let end =
        parse_time_param(&p, "end", MAX_TIME_MS).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    let expr = parse(p.get("query")).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let mut sets = Vec::new();
    selectors(&expr, &mut sets);
    if sets.is_empty() {
        return Ok(Success::from_json("null".into()));
    }
    let db = st.db.clone();
    let found = tokio::task::spawn_blocking(move || db.select_exemplars(&sets, start, end))
        .await
        .map_err(|e| ApiError::internal(format!("exemplar query failed: {e}")))??;
    Ok(Success::from_json(to_json(&found)))
}

/// The matchers of every vector selector in `e`, in the order they appear.
pub(crate) fn selectors(e: &Expr, out: &mut Vec<Vec<Matcher>>) {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => out.push(vs.matchers.clone()),
        Expr::MatrixSelector(ms) => out.push(ms.selector.matchers.clone()),
        Expr::Subquery(sq) => selectors(&sq.expr, out),
        Expr::Paren(inner) => selectors(inner, out),
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                selectors(p, out);
            }
            selectors(&a.expr, out);
        }
        Expr::Call(c) => c.args.iter().for_each(|a| selectors(a, out)),
    }
}

/// The `data` array.
fn to_json(found: &[ExemplarSeries]) -> String {
    let mut out = String::from("[");
    for (i, s) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"seriesLabels\":");
        write_labels(&mut out, &s.series_labels);
        out.push_str(",\"exemplars\":[");
        for (j, e) in s.exemplars.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":");
            write_labels(&mut out, &e.labels);
            out.push_str(",\"value\":\"");
            out.push_str(&format_value(e.value));
            out.push_str("\",\"timestamp\":");
            write_timestamp(&mut out, e.t);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}
