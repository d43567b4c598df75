//! The Prometheus-compatible HTTP API (`/api/v1/...`), served with axum.
//!
//! Every endpoint answers GET and POST (form-encoded body), reading its parameters the way
//! Prometheus' `r.FormValue`/`r.Form` do, and answers with Prometheus' JSON envelope and error
//! types. Queries run off the async scheduler ([`runs_in_place`]) under the engine's deadline.

mod admin;
mod exemplars;
pub mod jaeger;
pub mod loki;
mod metadata;
mod params;
mod query;
mod response;
mod status;
pub mod tempo;
mod timefmt;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use sextant_storage::Db;

use crate::promql::Engine;

pub use response::{ApiError, ErrorType};

/// Shared state of the API handlers.
///
/// Build it once at start-up and hand it to [`router`]:
///
/// ```ignore
/// let state = Arc::new(ApiState { db, engine, info: ServerInfo { version: "2.53.0".into(), ..Default::default() } });
/// let app = Router::new().merge(sextant_query::api::router(state));
/// ```
pub struct ApiState {
    /// The database queried by every endpoint.
    pub db: Arc<Db>,
    /// The PromQL engine; its `timeout` caps every query's deadline.
    pub engine: Arc<Engine>,
    /// What the status endpoints report.
    pub info: ServerInfo,
}

/// Build, configuration and runtime facts reported by `/api/v1/status/*`, and the query-range
/// resolution limit.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// The Prometheus version we are compatible with, e.g. `2.53.0`. Grafana requires a semver
    /// of at least 2.24 here to enable its newer features.
    pub version: String,
    /// Source revision (git commit) of this build.
    pub revision: String,
    /// Source branch of this build.
    pub branch: String,
    /// Who built the binary (`user@host`).
    pub build_user: String,
    /// When the binary was built (`20240101-10:00:00`).
    pub build_date: String,
    /// The toolchain, in the slot where Prometheus reports its Go version (e.g. `rustc 1.85.0`).
    pub go_version: String,
    /// When the process started.
    pub start_time: SystemTime,
    /// The loaded configuration file, as YAML text (`/api/v1/status/config`).
    pub config_yaml: String,
    /// Command-line flags by name without dashes (`/api/v1/status/flags`).
    pub flags: BTreeMap<String, String>,
    /// The data directory; reported as flag `storage.tsdb.path` unless `flags` has it.
    pub data_dir: String,
    /// Retention as text (`15d`, `10GiB`, ...); reported in runtime info and, unless `flags`
    /// has it, as flag `storage.tsdb.retention.time`.
    pub storage_retention: String,
    /// Most points a range query may return per series (Prometheus: 11,000).
    pub max_points_per_series: i64,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            version: "2.53.0".into(),
            revision: String::new(),
            branch: String::new(),
            build_user: String::new(),
            build_date: String::new(),
            go_version: String::new(),
            start_time: SystemTime::now(),
            config_yaml: String::new(),
            flags: BTreeMap::new(),
            data_dir: String::new(),
            storage_retention: String::new(),
            max_points_per_series: 11_000,
        }
    }
}

/// Whether a handler runs its blocking work (storage reads, evaluation) in place, through
/// [`in_place`], as on the server's multi-threaded runtime. A current-thread runtime (tests)
/// cannot; there the blocking pool runs it.
fn runs_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs blocking work on the calling worker thread (`block_in_place`: the worker's other tasks
/// move to another thread). The request saves the hand-off to a blocking-pool thread and the
/// wake-up back (tens of microseconds), and what the work allocates is freed on the thread that
/// allocated it. A panic is caught and returned as its message, as a pool thread's would be.
fn in_place<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    tokio::task::block_in_place(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panicked".to_string())
        })
}

/// The `/api/v1/...` routes. Paths under `/api/v1/` that name no endpoint answer 404 with a
/// `not_found` error; the router sets no global fallback, so it merges freely.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/query_exemplars",
            get(exemplars::query_exemplars).post(exemplars::query_exemplars),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(query::parse_query).post(query::parse_query),
        )
        .route(
            "/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route(
            "/api/v1/label/{name}/values",
            get(metadata::label_values).post(metadata::label_values),
        )
        .route(
            "/api/v1/metadata",
            get(metadata::metadata).post(metadata::metadata),
        )
        .route(
            "/api/v1/status/buildinfo",
            get(status::buildinfo).post(status::buildinfo),
        )
        .route(
            "/api/v1/status/runtimeinfo",
            get(status::runtimeinfo).post(status::runtimeinfo),
        )
        .route(
            "/api/v1/status/flags",
            get(status::flags).post(status::flags),
        )
        .route(
            "/api/v1/status/config",
            get(status::config).post(status::config),
        )
        .route("/api/v1/status/tsdb", get(status::tsdb).post(status::tsdb))
        .route(
            "/api/v1/admin/tsdb/flush",
            post(admin::flush).put(admin::flush),
        )
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(admin::snapshot).put(admin::snapshot),
        )
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(admin::delete_series).put(admin::delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(admin::clean_tombstones).put(admin::clean_tombstones),
        )
        .route("/api/v1", axum::routing::any(not_found))
        .route("/api/v1/", axum::routing::any(not_found))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .layer(DefaultBodyLimit::max(params::MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorType::NotFound,
        format!("unknown API endpoint {:?}", uri.path()),
    )
}
