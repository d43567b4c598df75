//! Status endpoints: `buildinfo`, `runtimeinfo`, `flags`, `config` and `tsdb`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;

use super::params::{parse_go_int, Params};
use super::response::{ApiError, Success};
use super::timefmt::format_rfc3339_nano;
use super::ApiState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo<'a> {
    version: &'a str,
    revision: &'a str,
    branch: &'a str,
    build_user: &'a str,
    build_date: &'a str,
    go_version: &'a str,
}

/// `/api/v1/status/buildinfo`.
pub async fn buildinfo(State(st): State<Arc<ApiState>>) -> Result<Success, ApiError> {
    let i = &st.info;
    Success::of(&BuildInfo {
        version: &i.version,
        revision: &i.revision,
        branch: &i.branch,
        build_user: &i.build_user,
        build_date: &i.build_date,
        go_version: &i.go_version,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeInfo {
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    reload_config_success: bool,
    last_config_time: String,
    corruption_count: i64,
    goroutine_count: usize,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOMEMLIMIT")]
    gomemlimit: i64,
    #[serde(rename = "GOGC")]
    gogc: String,
    #[serde(rename = "GODEBUG")]
    godebug: String,
    storage_retention: String,
}

/// Threads of this process (reported where Prometheus reports goroutines); 0 when unknown.
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `/api/v1/status/runtimeinfo`.
pub async fn runtimeinfo(State(st): State<Arc<ApiState>>) -> Result<Success, ApiError> {
    let i = &st.info;
    let started = format_rfc3339_nano(i.start_time);
    Success::of(&RuntimeInfo {
        start_time: started.clone(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        reload_config_success: true,
        last_config_time: started,
        corruption_count: 0,
        goroutine_count: thread_count(),
        gomaxprocs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        gomemlimit: i64::MAX,
        gogc: String::new(),
        godebug: String::new(),
        storage_retention: i.storage_retention.clone(),
    })
}

/// `/api/v1/status/flags`: the configured flags, with the data directory and retention filled
/// in when the map lacks them.
pub async fn flags(State(st): State<Arc<ApiState>>) -> Result<Success, ApiError> {
    let i = &st.info;
    let mut flags: BTreeMap<&str, &str> = i
        .flags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !i.data_dir.is_empty() {
        flags.entry("storage.tsdb.path").or_insert(&i.data_dir);
    }
    if !i.storage_retention.is_empty() {
        flags
            .entry("storage.tsdb.retention.time")
            .or_insert(&i.storage_retention);
    }
    Success::of(&flags)
}

#[derive(Serialize)]
struct Config<'a> {
    yaml: &'a str,
}

/// `/api/v1/status/config`.
pub async fn config(State(st): State<Arc<ApiState>>) -> Result<Success, ApiError> {
    Success::of(&Config {
        yaml: &st.info.config_yaml,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
    chunk_count: i64,
    min_time: i64,
    max_time: i64,
}

#[derive(Serialize)]
struct Stat {
    name: String,
    value: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Stat>,
    label_value_count_by_label_name: Vec<Stat>,
    memory_in_bytes_by_label_name: Vec<Stat>,
    series_count_by_label_value_pair: Vec<Stat>,
}

fn top(list: Vec<(String, u64)>, limit: usize) -> Vec<Stat> {
    list.into_iter()
        .take(limit)
        .map(|(name, value)| Stat { name, value })
        .collect()
}

/// `/api/v1/status/tsdb`: head statistics and the top `limit` (default 10) cardinalities.
pub async fn tsdb(State(st): State<Arc<ApiState>>, p: Params) -> Result<Success, ApiError> {
    let limit = match p.get("limit") {
        "" => 10,
        s => parse_go_int(s)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_data("limit must be a positive number"))?,
    };
    let db = Arc::clone(&st.db);
    // All pairs are needed for `numLabelPairs`; the lists are cut to `limit` below.
    let status = tokio::task::spawn_blocking(move || db.tsdb_status(usize::MAX))
        .await
        .map_err(|e| ApiError::internal(format!("error gathering tsdb status: {e}")))?;
    let head = &status.head;
    let wire = TsdbStatus {
        head_stats: HeadStats {
            num_series: head.num_series as u64,
            num_label_pairs: status.series_count_by_label_value_pair.len() as u64,
            // Samples are not kept in Prometheus-style chunks; no count to report.
            chunk_count: 0,
            // An empty Prometheus head reports these extremes.
            min_time: head.min_time.unwrap_or(i64::MAX),
            max_time: head.max_time.unwrap_or(i64::MIN),
        },
        series_count_by_metric_name: top(status.series_count_by_metric_name, limit),
        label_value_count_by_label_name: top(status.label_value_count_by_label_name, limit),
        memory_in_bytes_by_label_name: top(status.memory_in_bytes_by_label_name, limit),
        series_count_by_label_value_pair: top(status.series_count_by_label_value_pair, limit),
    };
    Success::of(&wire)
}
