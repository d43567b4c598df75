//! TSDB admin endpoints (`/api/v1/admin/tsdb/*`, POST or PUT): `snapshot`, `delete_series` and
//! `clean_tombstones` as in Prometheus, plus Sextant's `flush`, which persists the head as blocks
//! and answers once they are durable. Storage work runs on the blocking pool; storage failures
//! are `internal` errors, as Prometheus reports them here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use sextant_storage::{Db, StorageError};

use super::params::{parse_matcher_sets, parse_time_param, Params, MAX_TIME_MS, MIN_TIME_MS};
use super::response::{ApiError, Success};
use super::ApiState;

/// Runs `f` on the blocking pool; a storage error becomes `internal` with `context` in front.
async fn blocking<T, F>(st: &Arc<ApiState>, context: &'static str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Db) -> Result<T, StorageError> + Send + 'static,
{
    let db = Arc::clone(&st.db);
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| ApiError::internal(format!("{context}: {e}")))?
        .map_err(|e| ApiError::internal(format!("{context}: {e}")))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Flushed {
    blocks_cut: usize,
    blocks_compacted: usize,
    /// Every block after the flush, oldest first.
    blocks: Vec<String>,
}

/// `POST|PUT /api/v1/admin/tsdb/flush`: persists the whole head into blocks (and truncates the
/// WAL behind them); answers 200 once they are durable.
pub async fn flush(State(st): State<Arc<ApiState>>) -> Result<Success, ApiError> {
    let (report, blocks) = blocking(&st, "flush", |db| {
        let report = db.flush()?;
        Ok((report, db.blocks()))
    })
    .await?;
    Success::of(&Flushed {
        blocks_cut: report.blocks_cut,
        blocks_compacted: report.blocks_compacted,
        blocks: blocks.into_iter().map(|b| b.ulid).collect(),
    })
}

#[derive(Serialize)]
struct Snapshot {
    name: String,
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot?skip_head=<bool>`: `{"name":"<snapshot>"}`, the
/// directory under `<data>/snapshots/`.
pub async fn snapshot(State(st): State<Arc<ApiState>>, p: Params) -> Result<Success, ApiError> {
    let skip_head = match p.get("skip_head") {
        "" => false,
        v => parse_go_bool(v).map_err(|e| ApiError::invalid_param("skip_head", e))?,
    };
    let name = blocking(&st, "create snapshot", move |db| db.snapshot(skip_head)).await?;
    Success::of(&Snapshot { name })
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series?match[]=<selector>&start=&end=`: 204 once the
/// samples are deleted (durably) from every matching series.
pub async fn delete_series(
    State(st): State<Arc<ApiState>>,
    p: Params,
) -> Result<StatusCode, ApiError> {
    let selectors = p.all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = parse_time_param(&p, "start", MIN_TIME_MS)
        .map_err(|e| ApiError::invalid_param("start", e))?;
    let end =
        parse_time_param(&p, "end", MAX_TIME_MS).map_err(|e| ApiError::invalid_param("end", e))?;
    let sets = parse_matcher_sets(&selectors).map_err(|e| ApiError::bad_data(e.to_string()))?;
    blocking(&st, "delete series", move |db| {
        sets.iter()
            .try_for_each(|matchers| db.delete_series(matchers, start, end))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: 204 once every block with deletions has been
/// rewritten without the deleted samples.
pub async fn clean_tombstones(State(st): State<Arc<ApiState>>) -> Result<StatusCode, ApiError> {
    blocking(&st, "clean tombstones", |db| db.clean_tombstones()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
