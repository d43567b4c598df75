//! The log pipeline's wiring: the `logs:` configuration section, opening the log store at
//! `<data_dir>/logs`, its maintenance thread, and the Loki push / query routers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sextant_ingest::loki::LokiPushOptions;
use sextant_ingest::otlp::OtlpLogsOptions;
use sextant_storage::logs::{LogStore, LogStoreOptions};

use crate::config::parse_duration;

/// `logs:` — the log store, Loki push limits and OTLP log mapping. Durations accept `0s` (off).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// `false` leaves logs off: Loki push and query paths answer 404, OTLP logs 501.
    pub enabled: bool,
    /// Segments whose newest entry is older than this are deleted; `0s` keeps everything.
    pub retention_time: String,
    /// Oldest segments are deleted while the store exceeds this many bytes; 0 = no limit.
    pub retention_size_bytes: u64,
    /// Longest accepted line (Loki's `max_line_size`).
    pub max_line_bytes: usize,
    /// Entries older than this are refused (Loki's `reject_old_samples_max_age`); `0s` = off.
    pub reject_old_samples_max_age: String,
    /// Entries newer than now plus this are refused (`creation_grace_period`).
    pub creation_grace_period: String,
    /// Entries this far behind their stream's newest are refused (`too_far_behind`); `0s` = off.
    pub out_of_order_window: String,
    /// Most labels per stream (`max_label_names_per_series`).
    pub max_label_names_per_series: usize,
    /// Push rate in line bytes per second (`ingestion_rate_mb`); 0 = unlimited.
    pub ingestion_rate_bytes: u64,
    /// Push burst in bytes (`ingestion_burst_size_mb`).
    pub ingestion_burst_bytes: u64,
    /// OTLP resource attributes that become stream labels (Loki's default list when unset).
    pub otlp_index_resource_attributes: Option<Vec<String>>,
    /// Largest `limit` of a log query (`max_entries_limit_per_query`).
    pub max_entries_limit_per_query: usize,
    /// How often the store flushes, compacts and applies retention.
    pub maintenance_interval: String,
}

impl Default for LogsConfig {
    fn default() -> Self {
        let push = LokiPushOptions::default();
        LogsConfig {
            enabled: true,
            retention_time: "0s".into(),
            retention_size_bytes: 0,
            max_line_bytes: push.max_line_bytes,
            reject_old_samples_max_age: "168h".into(),
            creation_grace_period: "10m".into(),
            out_of_order_window: "1h".into(),
            max_label_names_per_series: push.max_label_names_per_series,
            ingestion_rate_bytes: push.ingestion_rate_bytes as u64,
            ingestion_burst_bytes: push.ingestion_burst_bytes as u64,
            otlp_index_resource_attributes: None,
            max_entries_limit_per_query: 5000,
            maintenance_interval: "30s".into(),
        }
    }
}

fn optional(s: &str, key: &str) -> anyhow::Result<Option<Duration>> {
    if s.trim() == "0" {
        return Ok(None);
    }
    let d = parse_duration(s).with_context(|| format!("logs.{key}"))?;
    Ok((!d.is_zero()).then_some(d))
}

impl LogsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.push_options()?;
        self.store_options(sextant_storage::FsyncPolicy::Always)?;
        parse_duration(&self.maintenance_interval).context("logs.maintenance_interval")?;
        Ok(())
    }

    pub fn push_options(&self) -> anyhow::Result<LokiPushOptions> {
        Ok(LokiPushOptions {
            max_line_bytes: self.max_line_bytes,
            max_label_names_per_series: self.max_label_names_per_series,
            reject_old_samples_max_age: optional(
                &self.reject_old_samples_max_age,
                "reject_old_samples_max_age",
            )?,
            creation_grace_period: optional(&self.creation_grace_period, "creation_grace_period")?
                .unwrap_or(Duration::from_secs(u32::MAX as u64)),
            ingestion_rate_bytes: self.ingestion_rate_bytes as f64,
            ingestion_burst_bytes: self.ingestion_burst_bytes as f64,
            ..LokiPushOptions::default()
        })
    }

    pub fn store_options(
        &self,
        fsync: sextant_storage::FsyncPolicy,
    ) -> anyhow::Result<LogStoreOptions> {
        Ok(LogStoreOptions {
            fsync,
            retention: optional(&self.retention_time, "retention_time")?,
            retention_bytes: (self.retention_size_bytes > 0).then_some(self.retention_size_bytes),
            max_line_bytes: self.max_line_bytes,
            reject_old_max_age: optional(
                &self.reject_old_samples_max_age,
                "reject_old_samples_max_age",
            )?,
            creation_grace: optional(&self.creation_grace_period, "creation_grace_period")?,
            out_of_order_window: optional(&self.out_of_order_window, "out_of_order_window")?,
            ..LogStoreOptions::default()
        })
    }

    pub fn otlp_options(&self) -> OtlpLogsOptions {
        match &self.otlp_index_resource_attributes {
            Some(list) => OtlpLogsOptions {
                index_resource_attributes: list.clone(),
            },
            None => OtlpLogsOptions::default(),
        }
    }
}

/// Opens (replaying its WAL) the log store under `<data_dir>/logs`, or `None` when logs are
/// disabled.
pub async fn open_store(config: &crate::config::Config) -> anyhow::Result<Option<Arc<LogStore>>> {
    if !config.logs.enabled {
        return Ok(None);
    }
    let dir = config.storage.data_dir.join("logs");
    let opts = config.logs.store_options(config.fsync_policy()?)?;
    let shown = dir.display().to_string();
    let store = tokio::task::spawn_blocking(move || LogStore::open(&dir, opts))
        .await
        .context("log store open task")?
        .with_context(|| format!("opening the log store in {shown}"))?;
    let store = Arc::new(store);
    spawn_maintenance(
        store.clone(),
        parse_duration(&config.logs.maintenance_interval)?,
    );
    Ok(Some(store))
}

/// Flushes, compacts and applies retention on its own thread until the process exits.
fn spawn_maintenance(store: Arc<LogStore>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("log-maintenance".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            if let Err(e) = store.maintain() {
                tracing::error!(error = %e, "log store maintenance failed; will retry");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the log maintenance thread");
    }
}

/// The Loki query API over the store (an empty router when logs are disabled).
pub fn query_router(
    config: &crate::config::Config,
    store: Option<Arc<LogStore>>,
) -> anyhow::Result<axum::Router> {
    let Some(store) = store else {
        return Ok(axum::Router::new());
    };
    let engine = sextant_query::logql::LogqlEngine::new(sextant_query::logql::LogqlOptions {
        max_entries: config.logs.max_entries_limit_per_query,
        timeout: parse_duration(&config.query.timeout).context("query.timeout")?,
        ..Default::default()
    });
    Ok(sextant_query::api::loki::router(Arc::new(
        sextant_query::api::loki::LokiApiState {
            source: store.clone(),
            index: store,
            engine: Arc::new(engine),
            version: LOKI_COMPATIBLE_VERSION.to_string(),
            revision: format!("sextant-{}", env!("CARGO_PKG_VERSION")),
        },
    )))
}

/// The Loki version whose API we implement, reported by `status/buildinfo`.
const LOKI_COMPATIBLE_VERSION: &str = "3.4.0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_section_maps_to_store_push_and_otlp_options() {
        let config = crate::config::Config::parse(
            "logs:\n  retention_time: 7d\n  reject_old_samples_max_age: 0s\n  ingestion_rate_bytes: 0\n  otlp_index_resource_attributes: [host.name]\n",
        )
        .unwrap();
        let store = config
            .logs
            .store_options(sextant_storage::FsyncPolicy::Never)
            .unwrap();
        assert_eq!(store.retention, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(store.reject_old_max_age, None);
        assert_eq!(store.out_of_order_window, Some(Duration::from_secs(3600)));
        let push = config.logs.push_options().unwrap();
        assert_eq!(push.reject_old_samples_max_age, None);
        assert_eq!(push.ingestion_rate_bytes, 0.0);
        assert_eq!(
            config.logs.otlp_options().index_resource_attributes,
            ["host.name"]
        );
        assert!(crate::config::Config::parse("logs:\n  retention_time: soon\n").is_err());
        assert!(crate::config::Config::parse("logs:\n  bogus: 1\n").is_err());
    }
}
