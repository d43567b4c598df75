//! The Loki-compatible HTTP API (`/loki/api/v1/...`) that Grafana's Loki data source uses:
//! `query`, `query_range`, `labels`, `label/<name>/values`, `series`, `index/stats`,
//! `index/volume`, `index/volume_range`, `detected_labels`, `detected_fields`, `format_query`,
//! `status/buildinfo`, and `tail` (WebSocket live tail). Every endpoint answers GET and POST (form body). Other paths under
//! `/loki/api/v1/` answer 404, never an empty 200.
//!
//! Errors have Loki's shape `{"code":400,"status":"error","message":"…"}`. Queries run on the
//! blocking pool through [`LogqlRunner`]; stream statistics come from [`LogIndex`]. Both are
//! traits so a tenant or remote store plugs in without touching the handlers. Parameter
//! parsing is [`params`], the JSON shapes [`shape`].

mod engine;
pub mod fields;
pub mod params;
pub mod shape;
mod tail;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sextant_storage::logs::{Direction, LogSource};
use sextant_storage::{Labels, Matcher, StorageError};

use super::params::Params;
pub use shape::{LokiEntry, LokiSample, LokiSeries, LokiStream, QueryData, QueryStats};

/// A failed request: HTTP status and Loki's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LokiError {
    pub status: u16,
    pub message: String,
}

impl LokiError {
    pub fn bad_request(message: impl Into<String>) -> LokiError {
        LokiError {
            status: 400,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> LokiError {
        LokiError {
            status: 500,
            message: message.into(),
        }
    }
}

impl From<StorageError> for LokiError {
    fn from(e: StorageError) -> LokiError {
        LokiError::internal(e.to_string())
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            axum::Json(shape::error_body(self.status, &self.message)),
        )
            .into_response()
    }
}

/// A range query as the API received it. Times in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeRequest {
    pub query: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub step_ns: i64,
    pub interval_ns: i64,
    pub limit: usize,
    pub direction: Direction,
}

/// The LogQL engine as the API sees it.
pub trait LogqlRunner: Send + Sync {
    fn query_range(
        &self,
        src: &dyn LogSource,
        req: &RangeRequest,
    ) -> Result<(QueryData, QueryStats), LokiError>;

    /// Log queries must fail with 400 (Loki refuses instant log queries).
    fn query_instant(
        &self,
        src: &dyn LogSource,
        query: &str,
        ts_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<(QueryData, QueryStats), LokiError>;

    fn format(&self, query: &str) -> Result<String, LokiError>;
}

/// Loki's index statistics of one stream (or a sum): entries and line bytes in a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// Per-stream statistics for `index/stats` and the volume endpoints.
pub trait LogIndex: Send + Sync {
    /// Streams matching every matcher with entries in `[start_ns, end_ns)`, with their figures.
    fn stream_stats(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(Labels, IndexStats)>, StorageError>;
}

impl LogIndex for sextant_storage::logs::LogStore {
    fn stream_stats(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(Labels, IndexStats)>, StorageError> {
        Ok(
            sextant_storage::logs::LogStore::stream_stats(self, matchers, start_ns, end_ns)?
                .into_iter()
                .map(|(labels, s)| {
                    (
                        labels,
                        IndexStats {
                            streams: s.streams,
                            chunks: s.chunks,
                            entries: s.entries,
                            bytes: s.bytes,
                        },
                    )
                })
                .collect(),
        )
    }
}

/// Shared state of the Loki API handlers.
pub struct LokiApiState {
    pub source: Arc<dyn LogSource>,
    pub index: Arc<dyn LogIndex>,
    pub engine: Arc<dyn LogqlRunner>,
    /// Reported by `status/buildinfo` (a Loki version Grafana recognises, e.g. `3.4.0`).
    pub version: String,
    /// Sextant's own revision, reported as `revision`.
    pub revision: String,
}

/// The `/loki/api/v1/...` read routes (push is in `sextant_ingest::loki`).
pub fn router(state: Arc<LokiApiState>) -> Router {
    Router::new()
        .route("/loki/api/v1/query", get(query).post(query))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route("/loki/api/v1/index/volume", get(volume).post(volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume_range).post(volume_range),
        )
        .route(
            "/loki/api/v1/detected_labels",
            get(detected_labels).post(detected_labels),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(detected_fields).post(detected_fields),
        )
        .route(
            "/loki/api/v1/format_query",
            get(format_query).post(format_query),
        )
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/loki/api/v1/tail", get(tail::tail))
        .route("/loki/api/v1/{*rest}", axum::routing::any(not_found))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> LokiError {
    LokiError {
        status: 404,
        message: format!("{} is not implemented by Sextant", uri.path()),
    }
}

type Answer = Result<Response, LokiError>;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn bad(e: String) -> LokiError {
    LokiError::bad_request(e)
}

/// Runs blocking work (store reads, evaluation) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LokiError> + Send + 'static,
) -> Result<T, LokiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LokiError::internal(format!("query task failed: {e}")))?
}

fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-loki-response-encoding-flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim().eq_ignore_ascii_case("categorize-labels"))
}

fn required_query(p: &Params) -> Result<String, LokiError> {
    match p.get("query") {
        "" => Err(bad("query parameter is required".into())),
        q => Ok(q.to_string()),
    }
}

async fn query_range(State(s): State<Arc<LokiApiState>>, headers: HeaderMap, p: Params) -> Answer {
    let (start_ns, end_ns) = params::range(&p, now_ns()).map_err(bad)?;
    let req = RangeRequest {
        query: required_query(&p)?,
        start_ns,
        end_ns,
        step_ns: params::step(&p, start_ns, end_ns).map_err(bad)?,
        interval_ns: params::interval(&p).map_err(bad)?,
        limit: params::limit(&p).map_err(bad)?,
        direction: params::direction(&p).map_err(bad)?,
    };
    let categorize = categorize(&headers);
    let direction = req.direction;
    let (data, stats) = blocking(move || s.engine.query_range(s.source.as_ref(), &req)).await?;
    Ok(success(shape::query_data(
        &data, &stats, categorize, direction,
    )))
}

async fn query(State(s): State<Arc<LokiApiState>>, headers: HeaderMap, p: Params) -> Answer {
    let q = required_query(&p)?;
    let ts = match p.get("time") {
        "" => now_ns(),
        v => params::parse_loki_time(v).map_err(bad)?,
    };
    let limit = params::limit(&p).map_err(bad)?;
    let direction = params::direction(&p).map_err(bad)?;
    let categorize = categorize(&headers);
    let (data, stats) = blocking(move || {
        s.engine
            .query_instant(s.source.as_ref(), &q, ts, limit, direction)
    })
    .await?;
    Ok(success(shape::query_data(
        &data, &stats, categorize, direction,
    )))
}

/// The matchers of an optional `query` selector (all streams when absent).
fn optional_selector(p: &Params) -> Result<Vec<Matcher>, LokiError> {
    match p.get("query") {
        "" => Ok(Vec::new()),
        q => params::selector_matchers(q).map_err(bad),
    }
}

async fn labels(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let matchers = optional_selector(&p)?;
    let names = blocking(move || Ok(s.source.label_names(&matchers, start, end)?)).await?;
    Ok(success(json!(names)))
}

async fn label_values(
    State(s): State<Arc<LokiApiState>>,
    Path(name): Path<String>,
    p: Params,
) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let matchers = optional_selector(&p)?;
    let values = blocking(move || Ok(s.source.label_values(&name, &matchers, start, end)?)).await?;
    Ok(success(json!(values)))
}

async fn series(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let mut selectors: Vec<&str> = p.all("match[]");
    selectors.extend(p.all("match"));
    let sets: Vec<Vec<Matcher>> = if selectors.is_empty() {
        vec![Vec::new()]
    } else {
        selectors
            .iter()
            .map(|q| params::selector_matchers(q).map_err(bad))
            .collect::<Result<_, _>>()?
    };
    let found = blocking(move || {
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        for m in &sets {
            all.extend(s.source.streams(m, start, end)?);
        }
        Ok(all)
    })
    .await?;
    Ok(success(Value::Array(
        found.iter().map(shape::labels_object).collect(),
    )))
}

async fn index_stats(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let matchers = params::selector_matchers(&required_query(&p)?).map_err(bad)?;
    let per_stream = blocking(move || Ok(s.index.stream_stats(&matchers, start, end)?)).await?;
    let mut total = IndexStats::default();
    for (_, st) in &per_stream {
        total.streams += 1;
        total.chunks += st.chunks;
        total.entries += st.entries;
        total.bytes += st.bytes;
    }
    Ok(axum::Json(json!({
        "streams": total.streams, "chunks": total.chunks,
        "bytes": total.bytes, "entries": total.entries
    }))
    .into_response())
}

/// How volume groups streams: by the named labels, or (`aggregateBy=series`) by whole streams.
struct VolumeSpec {
    matchers: Vec<Matcher>,
    group: Option<Vec<String>>,
    limit: usize,
}

fn volume_spec(p: &Params) -> Result<VolumeSpec, LokiError> {
    let query = required_query(p)?;
    let matchers = params::selector_matchers(&query).map_err(bad)?;
    let limit = params::limit(p).map_err(bad)?;
    let targets: Vec<String> = p
        .get("targetLabels")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let group = match (p.get("aggregateBy"), targets.is_empty()) {
        (_, false) => Some(targets),
        ("series", true) => None,
        ("" | "labels", true) => {
            let mut names: Vec<String> = matchers.iter().map(|m| m.name.clone()).collect();
            names.dedup();
            Some(names)
        }
        (other, _) => {
            return Err(bad(format!(
                "invalid aggregation option {other:?}: expected series or labels"
            )))
        }
    };
    Ok(VolumeSpec {
        matchers,
        group,
        limit,
    })
}

/// Sums per-stream bytes into volume groups; streams lacking every grouping label are skipped.
fn group_volume(spec: &VolumeSpec, per_stream: &[(Labels, IndexStats)]) -> BTreeMap<Labels, u64> {
    let mut out: BTreeMap<Labels, u64> = BTreeMap::new();
    for (labels, st) in per_stream {
        let key = match &spec.group {
            None => labels.clone(),
            Some(names) => {
                let key = labels.keep_only(names);
                if key.is_empty() {
                    continue;
                }
                key
            }
        };
        *out.entry(key).or_default() += st.bytes;
    }
    out
}

async fn volume(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let spec = volume_spec(&p)?;
    let groups = blocking(move || {
        let per_stream = s.index.stream_stats(&spec.matchers, start, end)?;
        let mut groups: Vec<(Labels, u64)> = group_volume(&spec, &per_stream).into_iter().collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        groups.truncate(spec.limit);
        Ok(groups)
    })
    .await?;
    let data = QueryData::Vector(
        groups
            .into_iter()
            .map(|(labels, bytes)| LokiSample {
                labels,
                ts_ns: end,
                value: bytes as f64,
            })
            .collect(),
    );
    Ok(success(shape::query_data(
        &data,
        &QueryStats::default(),
        false,
        Direction::Backward,
    )))
}

async fn volume_range(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let step = params::step(&p, start, end).map_err(bad)?;
    if (end - start) / step > 11_000 {
        return Err(bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    let spec = volume_spec(&p)?;
    let series = blocking(move || {
        let mut series: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            let per_stream = s
                .index
                .stream_stats(&spec.matchers, t, t.saturating_add(step))?;
            for (labels, bytes) in group_volume(&spec, &per_stream) {
                series.entry(labels).or_default().push((t, bytes as f64));
            }
            t = t.saturating_add(step);
        }
        // Keep the `limit` largest groups by total volume.
        let mut ranked: Vec<(Labels, Vec<(i64, f64)>)> = series.into_iter().collect();
        ranked.sort_by(|a, b| {
            let total = |v: &[(i64, f64)]| v.iter().map(|p| p.1).sum::<f64>();
            total(&b.1)
                .total_cmp(&total(&a.1))
                .then_with(|| a.0.cmp(&b.0))
        });
        ranked.truncate(spec.limit);
        ranked.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ranked)
    })
    .await?;
    let data = QueryData::Matrix(
        series
            .into_iter()
            .map(|(labels, points)| LokiSeries { labels, points })
            .collect(),
    );
    Ok(success(shape::query_data(
        &data,
        &QueryStats::default(),
        false,
        Direction::Backward,
    )))
}

async fn detected_labels(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let matchers = optional_selector(&p)?;
    let counts = blocking(move || {
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for labels in s.source.streams(&matchers, start, end)? {
            for l in &labels {
                values
                    .entry(l.name.clone())
                    .or_default()
                    .insert(l.value.clone());
            }
        }
        Ok(values)
    })
    .await?;
    let list: Vec<Value> = counts
        .iter()
        .map(|(name, vals)| json!({"label": name, "cardinality": vals.len()}))
        .collect();
    Ok(axum::Json(json!({ "detectedLabels": list })).into_response())
}

async fn detected_fields(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let (start, end) = params::range(&p, now_ns()).map_err(bad)?;
    let matchers = params::selector_matchers(&required_query(&p)?).map_err(bad)?;
    let line_limit = match p.get("line_limit") {
        "" => 1000,
        v => v
            .parse::<usize>()
            .map_err(|_| bad(format!("invalid line_limit {v:?}")))?,
    };
    let field_limit = match [p.get("field_limit"), p.get("limit")]
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or("")
    {
        "" => 1000,
        v => v
            .parse::<usize>()
            .map_err(|_| bad(format!("invalid limit {v:?}")))?,
    };
    let fields = blocking(move || {
        Ok(fields::detect(
            s.source.as_ref(),
            &matchers,
            start,
            end,
            line_limit,
        )?)
    })
    .await?;
    let list: Vec<Value> = fields
        .into_iter()
        .take(field_limit)
        .map(|f| {
            json!({
                "label": f.name,
                "type": f.kind,
                "cardinality": f.cardinality,
                "parsers": if f.parsers.is_empty() { Value::Null } else { json!(f.parsers) },
            })
        })
        .collect();
    Ok(axum::Json(json!({"fields": list, "limit": field_limit})).into_response())
}

async fn format_query(State(s): State<Arc<LokiApiState>>, p: Params) -> Answer {
    let q = required_query(&p)?;
    Ok(success(Value::String(s.engine.format(&q)?)))
}

async fn buildinfo(State(s): State<Arc<LokiApiState>>) -> Response {
    axum::Json(json!({
        "version": s.version,
        "revision": s.revision,
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": ""
    }))
    .into_response()
}

#[cfg(test)]
mod tests;
