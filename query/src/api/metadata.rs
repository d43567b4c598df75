//! Metadata endpoints: `series`, `labels`, `label/<name>/values` and `metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use sextant_storage::{Db, Labels, Matcher, SeriesSource, StorageError};

use super::params::{
    go_quote, parse_go_int, parse_limit, parse_matcher_sets, parse_time_param, unescape_label_name,
    ParamError, Params, MAX_TIME_MS, MIN_TIME_MS,
};
use super::query::write_labels;
use super::response::{write_json_str, ApiError, Success};
use super::ApiState;

const TRUNCATED: &str = "results truncated due to limit";

/// Most series a `series` lookup may select to be answered inline, on the async worker.
const INLINE_SERIES_MAX: usize = 1000;

/// The parameters shared by the three lookups.
struct Lookup {
    limit: usize,
    start: i64,
    end: i64,
    sets: Vec<Vec<Matcher>>,
}

/// Reads `limit`, `start`, `end` and `match[]`; `match_err` shapes a bad selector's error
/// (Prometheus names the parameter for `series` only).
fn lookup_params(p: &Params, match_err: fn(ParamError) -> ApiError) -> Result<Lookup, ApiError> {
    let limit = parse_limit(p.get("limit")).map_err(|e| ApiError::invalid_param("limit", e))?;
    let start = parse_time_param(p, "start", MIN_TIME_MS)
        .map_err(|e| ApiError::invalid_param("start", e))?;
    let end =
        parse_time_param(p, "end", MAX_TIME_MS).map_err(|e| ApiError::invalid_param("end", e))?;
    let sets = parse_matcher_sets(&p.all("match[]")).map_err(match_err)?;
    Ok(Lookup {
        limit,
        start,
        end,
        sets,
    })
}

/// Runs a label name or value lookup: inline when the indexes alone answer it, otherwise
/// through [`blocking`].
async fn label_lookup<T, F>(st: &Arc<ApiState>, unfiltered: bool, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Db) -> Result<T, StorageError> + Send + 'static,
{
    if unfiltered && st.db.label_lookup_is_index_only(&[]) {
        return f(&st.db).map_err(ApiError::from);
    }
    blocking(st, f).await
}

/// Runs a storage lookup off the async scheduler: in place ([`super::runs_in_place`]), else
/// on the blocking pool.
async fn blocking<T, F>(st: &Arc<ApiState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Db) -> Result<T, StorageError> + Send + 'static,
{
    let db = Arc::clone(&st.db);
    let failed = |e: &dyn std::fmt::Display| ApiError::internal(format!("lookup failed: {e}"));
    if super::runs_in_place() {
        return super::in_place(|| f(&db))
            .map_err(|e| failed(&e))?
            .map_err(ApiError::from);
    }
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| failed(&e))?
        .map_err(ApiError::from)
}

/// Unions per-selector results (or one unfiltered lookup when there is no selector).
fn union<T: Ord>(
    sets: &[Vec<Matcher>],
    mut each: impl FnMut(&[Matcher]) -> Result<Vec<T>, StorageError>,
) -> Result<Vec<T>, StorageError> {
    if sets.len() <= 1 {
        return each(sets.first().map_or(&[][..], Vec::as_slice));
    }
    let mut all = BTreeSet::new();
    for set in sets {
        all.extend(each(set)?);
    }
    Ok(all.into_iter().collect())
}

/// Applies a non-zero `limit`, warning when it cut the list.
fn truncated<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, Option<&'static str>) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        return (items, Some(TRUNCATED));
    }
    (items, None)
}

fn string_list(items: &[String], warning: Option<&str>) -> Success {
    json_list(items, write_json_str, warning)
}

/// A JSON array of `items` written by `write`, with the truncation warning if any.
fn json_list<T: ?Sized, I: std::borrow::Borrow<T>>(
    items: &[I],
    write: impl Fn(&mut String, &T),
    warning: Option<&str>,
) -> Success {
    let mut out = String::with_capacity(items.len() * 32 + 2);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(&mut out, item.borrow());
    }
    out.push(']');
    let success = Success::from_json(out);
    match warning {
        Some(w) => success.with_warning(w),
        None => success,
    }
}

/// `GET|POST /api/v1/series`: label sets of the series matching any `match[]`.
pub async fn series(State(st): State<Arc<ApiState>>, p: Params) -> Result<Success, ApiError> {
    if p.all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let q = lookup_params(&p, |e| ApiError::invalid_param("match[]", e))?;
    let Lookup {
        limit,
        start,
        end,
        sets,
    } = q;
    // One selector that picks few series is answered inline: moving off the async worker
    // would cost more than the lookup.
    let inline = match sets.as_slice() {
        [one] => st
            .db
            .series_if_few(one, start, end, INLINE_SERIES_MAX)
            .map_err(ApiError::from)?,
        _ => None,
    };
    let found: Vec<Labels> = match inline {
        Some(found) => found,
        None => blocking(&st, move |db| union(&sets, |ms| db.series(ms, start, end))).await?,
    };
    let (found, warning) = truncated(found, limit);
    Ok(json_list::<Labels, _>(&found, write_labels, warning))
}

/// `GET|POST /api/v1/labels`: label names.
pub async fn labels(State(st): State<Arc<ApiState>>, p: Params) -> Result<Success, ApiError> {
    let Lookup {
        limit,
        start,
        end,
        sets,
    } = lookup_params(&p, |e| ApiError::bad_data(e.to_string()))?;
    let names = label_lookup(&st, sets.is_empty(), move |db| {
        union(&sets, |ms| db.label_names(ms, start, end))
    })
    .await?;
    let (names, warning) = truncated(names, limit);
    Ok(string_list(&names, warning))
}

/// `GET|POST /api/v1/label/<name>/values`: values of one label. `name` may be escaped with
/// Prometheus' `U__` value encoding.
pub async fn label_values(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    p: Params,
) -> Result<Success, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_data(e.body_text()))?;
    let name = match unescape_label_name(&raw) {
        Some(n) if !n.is_empty() => n,
        _ => {
            return Err(ApiError::bad_data(format!(
                "invalid label name: {}",
                go_quote(&raw)
            )))
        }
    };
    let Lookup {
        limit,
        start,
        end,
        sets,
    } = lookup_params(&p, |e| ApiError::bad_data(e.to_string()))?;
    let values = label_lookup(&st, sets.is_empty(), move |db| {
        union(&sets, |ms| db.label_values(&name, ms, start, end))
    })
    .await?;
    let (values, warning) = truncated(values, limit);
    Ok(string_list(&values, warning))
}

/// One metadata entry as Prometheus serializes it.
#[derive(Serialize)]
struct MetadataEntry<'a> {
    #[serde(rename = "type")]
    metric_type: &'a str,
    help: &'a str,
    unit: &'a str,
}

/// `GET|POST /api/v1/metadata`: metric metadata by family name.
pub async fn metadata(State(st): State<Arc<ApiState>>, p: Params) -> Result<Success, ApiError> {
    let limit = match p.get("limit") {
        "" => -1,
        s => parse_go_int(s).map_err(|_| ApiError::bad_data("limit must be a number"))?,
    };
    let limit_per_metric = match p.get("limit_per_metric") {
        "" => -1,
        s => {
            parse_go_int(s).map_err(|_| ApiError::bad_data("limit_per_metric must be a number"))?
        }
    };
    let metric = p.get("metric");
    let found = st.db.metadata(
        (!metric.is_empty()).then_some(metric),
        usize::try_from(limit).ok(),
    );
    let per_metric = usize::try_from(limit_per_metric)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(usize::MAX);
    let wire: BTreeMap<&str, Vec<MetadataEntry<'_>>> = found
        .iter()
        .map(|(name, md)| {
            let entries = std::iter::once(MetadataEntry {
                metric_type: &md.metric_type,
                help: &md.help,
                unit: &md.unit,
            })
            .take(per_metric)
            .collect();
            (name.as_str(), entries)
        })
        .collect();
    Success::of(&wire)
}
