//! The server configuration: an optional YAML file, overridden by command-line flags. Every
//! section rejects keys it does not know, naming them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub query: QueryConfig,
    pub remote_write: RemoteWriteConfig,
    /// Prometheus' `global:` section (scrape defaults).
    pub global: sextant_ingest::GlobalConfig,
    /// Prometheus' `scrape_configs:`, with its field names.
    pub scrape_configs: Vec<sextant_ingest::ScrapeConfig>,
    pub otlp: OtlpConfig,
    /// Prometheus' `rule_files:`: rule file paths or globs, relative to the configuration
    /// file's directory.
    pub rule_files: Vec<String>,
    /// SLO specs (Sloth `prometheus/v1`, OpenSLO `SLO`/`SLI`): paths or globs, like
    /// `rule_files`.
    pub slo_files: Vec<String>,
    /// Prometheus' `alerting:` section: external Alertmanagers that receive every alert.
    pub alerting: sextant_alerting::notify::AlertingConfig,
    /// The built-in notifier, configured as an Alertmanager (`route`, `receivers`,
    /// `inhibit_rules`, `time_intervals`, …).
    pub notifications: sextant_alerting::notify::NotifyConfig,
    /// Rule evaluation settings that Prometheus takes as flags.
    pub rules: RulesConfig,
    /// The log store, Loki push limits and OTLP log mapping (`src/logs.rs`).
    pub logs: crate::logs::LogsConfig,
    /// OTLP traces and the span-metrics / service-graph generator (`src/traces.rs`).
    pub traces: crate::traces::TracesConfig,
}

/// `rules:` — what Prometheus sets with `--rules.*` and `--web.external-url`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Least time between two sends of the same firing alert (`--rules.alert.resend-delay`).
    pub resend_delay: String,
    /// `ALERTS_FOR_STATE` older than this is not restored after a restart
    /// (`--rules.alert.for-outage-tolerance`).
    pub for_outage_tolerance: String,
    /// Least time a restored pending alert waits before firing; alerts with a shorter `for`
    /// are not restored (`--rules.alert.for-grace-period`).
    pub for_grace_period: String,
    /// Base of alerts' generator URLs and `$externalURL` (`--web.external-url`).
    pub external_url: String,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            resend_delay: "1m".into(),
            for_outage_tolerance: "1h".into(),
            for_grace_period: "10m".into(),
            external_url: String::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP API, remote write and self-metrics.
    pub http_addr: SocketAddr,
    /// `logfmt` or `json`.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `sextant=debug,info`.
    pub log_level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            log_format: LogFormat::Logfmt,
            log_level: "info".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// `always` (fsync before every acknowledgement), `never`, or a duration such as `1s`
    /// (fsync at most that often).
    pub wal_fsync: String,
    /// Blocks older than this (relative to the newest sample) are deleted; `0s` keeps all.
    pub retention_time: String,
    /// Blocks plus WAL above this many bytes make the oldest blocks go; 0 means no limit.
    pub retention_size_bytes: u64,
    /// Time range of blocks cut from the head.
    pub block_range: String,
    /// Largest block compaction produces.
    pub max_block_range: String,
    /// How often the head is checked for ranges to persist, blocks to compact and to expire.
    pub maintenance_interval: String,
    /// Capacity of the in-memory exemplar ring shared by all series (Prometheus'
    /// `storage.exemplars.max_exemplars`); 0 disables exemplar storage.
    pub max_exemplars: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            wal_fsync: "always".into(),
            retention_time: "15d".into(),
            retention_size_bytes: 0,
            block_range: "2h".into(),
            max_block_range: "24h".into(),
            maintenance_interval: "30s".into(),
            max_exemplars: 100_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    pub lookback_delta: String,
    pub timeout: String,
    pub max_samples: usize,
    pub max_points_per_series: i64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            lookback_delta: "5m".into(),
            timeout: "2m".into(),
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    pub max_decompressed_bytes: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        let d = sextant_ingest::RemoteWriteLimits::default();
        RemoteWriteConfig {
            max_decompressed_bytes: d.max_decompressed_bytes,
            max_labels_per_series: d.max_labels_per_series,
            max_label_name_bytes: d.max_label_name_bytes,
            max_label_value_bytes: d.max_label_value_bytes,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// OTLP/gRPC address. Unset: `127.0.0.1:4317`, skipped with a warning when that port is
    /// taken; an explicit address must bind; `off` disables the listener.
    pub grpc_addr: Option<String>,
    /// OTLP/HTTP address (`/v1/metrics`), same rules; default `127.0.0.1:4318`. The main HTTP
    /// port serves `/v1/metrics` and `/api/v1/otlp/v1/metrics` either way.
    pub http_addr: Option<String>,
    /// `UnderscoreEscapingWithSuffixes` (Prometheus names with unit and type suffixes) or
    /// `NoTranslation` (OTLP names kept as sent, UTF-8).
    pub translation_strategy: TranslationStrategy,
    /// Resource attributes copied onto every series (they are always on `target_info`).
    pub promote_resource_attributes: Vec<String>,
    /// Largest request body after decompression (and largest gRPC message); larger get 413.
    pub max_body_bytes: usize,
    /// Requests converted at once; more get 429 / RESOURCE_EXHAUSTED with Retry-After.
    pub max_concurrent_requests: usize,
    /// Delta-temporality streams idle this long are forgotten.
    pub delta_stream_ttl: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TranslationStrategy {
    #[default]
    UnderscoreEscapingWithSuffixes,
    NoTranslation,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        let d = sextant_ingest::OtlpOptions::default();
        OtlpConfig {
            grpc_addr: None,
            http_addr: None,
            translation_strategy: TranslationStrategy::default(),
            promote_resource_attributes: Vec::new(),
            max_body_bytes: d.max_body_bytes,
            max_concurrent_requests: d.max_concurrent_requests,
            delta_stream_ttl: "1h".into(),
        }
    }
}

/// Where an OTLP listener binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Off,
    /// The default port: skipped with a warning when taken.
    Default(SocketAddr),
    Explicit(SocketAddr),
}

impl OtlpConfig {
    fn listen(value: &Option<String>, default_port: u16, key: &str) -> anyhow::Result<ListenAddr> {
        Ok(match value.as_deref().map(str::trim) {
            None => ListenAddr::Default(SocketAddr::from(([127, 0, 0, 1], default_port))),
            Some("off") | Some("") => ListenAddr::Off,
            Some(a) => ListenAddr::Explicit(
                a.parse()
                    .with_context(|| format!("otlp.{key}: invalid address {a:?}"))?,
            ),
        })
    }

    pub fn grpc_listen(&self) -> anyhow::Result<ListenAddr> {
        Self::listen(&self.grpc_addr, 4317, "grpc_addr")
    }

    pub fn http_listen(&self) -> anyhow::Result<ListenAddr> {
        Self::listen(&self.http_addr, 4318, "http_addr")
    }

    pub fn options(&self) -> anyhow::Result<sextant_ingest::OtlpOptions> {
        use sextant_ingest::otlp::NameTranslation;
        Ok(sextant_ingest::OtlpOptions {
            translation: match self.translation_strategy {
                TranslationStrategy::UnderscoreEscapingWithSuffixes => {
                    NameTranslation::UnderscoreEscapingWithSuffixes
                }
                TranslationStrategy::NoTranslation => NameTranslation::NoTranslation,
            },
            promote_resource_attributes: self.promote_resource_attributes.clone(),
            max_body_bytes: self.max_body_bytes,
            max_concurrent_requests: self.max_concurrent_requests.max(1),
            delta_stream_ttl: parse_duration(&self.delta_stream_ttl)
                .context("otlp.delta_stream_ttl")?,
        })
    }
}

impl Config {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config = serde_yaml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings whose values have their own syntax.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.fsync_policy()?;
        self.db_options()?;
        parse_duration(&self.storage.maintenance_interval)
            .context("storage.maintenance_interval")?;
        parse_duration(&self.query.lookback_delta).context("query.lookback_delta")?;
        parse_duration(&self.query.timeout).context("query.timeout")?;
        self.otlp.grpc_listen()?;
        self.otlp.http_listen()?;
        self.otlp.options()?;
        self.logs.validate()?;
        self.traces.validate()?;
        if self.query.max_points_per_series <= 0 {
            bail!("query.max_points_per_series must be positive");
        }
        sextant_ingest::scrape::config::resolve(&self.global, &self.scrape_configs)
            .map_err(anyhow::Error::msg)?;
        self.rule_manager_options()?;
        sextant_alerting::notify::validate(&self.notifications, &self.alerting)
            .map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// Rule evaluation settings from `global` and `rules`.
    pub fn rule_manager_options(
        &self,
    ) -> anyhow::Result<sextant_alerting::rules::manager::ManagerOptions> {
        use sextant_alerting::rules::eval::EvalOptions;
        let d = |s: &str, key: &str| parse_duration_or_zero(s).with_context(|| key.to_string());
        let default_interval = match &self.global.evaluation_interval {
            Some(s) => d(s, "global.evaluation_interval")?,
            None => Duration::from_secs(60),
        };
        if default_interval.is_zero() {
            bail!("global.evaluation_interval must be positive");
        }
        let default_query_offset = match &self.global.rule_query_offset {
            Some(s) => d(s, "global.rule_query_offset")?,
            None => Duration::ZERO,
        };
        Ok(sextant_alerting::rules::manager::ManagerOptions {
            eval: EvalOptions {
                external_labels: self.global.external_labels.clone(),
                external_url: self.rules.external_url.clone(),
                default_interval,
                default_query_offset,
                resend_delay: d(&self.rules.resend_delay, "rules.resend_delay")?,
            },
            outage_tolerance: d(
                &self.rules.for_outage_tolerance,
                "rules.for_outage_tolerance",
            )?,
            for_grace_period: d(&self.rules.for_grace_period, "rules.for_grace_period")?,
        })
    }

    /// The storage settings as the storage crate takes them.
    pub fn db_options(&self) -> anyhow::Result<sextant_storage::DbOptions> {
        let ms = |s: &str, key: &str| -> anyhow::Result<i64> {
            Ok(parse_duration_or_zero(s)
                .with_context(|| format!("storage.{key}"))?
                .as_millis() as i64)
        };
        let block_range_ms = ms(&self.storage.block_range, "block_range")?;
        let max_block_range_ms = ms(&self.storage.max_block_range, "max_block_range")?;
        if block_range_ms <= 0 || max_block_range_ms < block_range_ms {
            bail!("storage.block_range must be positive and at most storage.max_block_range");
        }
        Ok(sextant_storage::DbOptions {
            fsync: self.fsync_policy()?,
            block_range_ms,
            max_block_range_ms,
            retention_ms: ms(&self.storage.retention_time, "retention_time")?,
            retention_bytes: self.storage.retention_size_bytes,
            max_exemplars: self.storage.max_exemplars,
            ..sextant_storage::DbOptions::default()
        })
    }

    pub fn fsync_policy(&self) -> anyhow::Result<sextant_storage::FsyncPolicy> {
        use sextant_storage::FsyncPolicy;
        Ok(match self.storage.wal_fsync.as_str() {
            "always" => FsyncPolicy::Always,
            "never" => FsyncPolicy::Never,
            other => FsyncPolicy::Interval(parse_duration(other).with_context(|| {
                format!(
                    "storage.wal_fsync must be \"always\", \"never\" or a duration, got {other:?}"
                )
            })?),
        })
    }
}

/// [`parse_duration`] that also accepts a bare `0`.
fn parse_duration_or_zero(s: &str) -> anyhow::Result<Duration> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// Parses a Prometheus-style duration: `1h30m`, `5m`, `250ms`, `2d`, `1w`, `1y` (365 days).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    const UNITS: [(&str, u64); 7] = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
    ];
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("empty duration");
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            bail!("invalid duration {s:?}");
        }
        let n: u64 = rest[..digits]
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .with_context(|| format!("invalid duration {s:?}: missing or unknown unit"))?;
        rest = &rest[unit.0.len()..];
        total_ms = n
            .checked_mul(unit.1)
            .and_then(|v| total_ms.checked_add(v))
            .with_context(|| format!("duration {s:?} is too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("storage:\n  data_dir: /x\n  retention_tim: 1d\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("retention_tim"), "{msg}");
        let err = Config::parse("strage: {}\n").unwrap_err();
        assert!(format!("{err:#}").contains("strage"));
    }

    #[test]
    fn partial_config_keeps_defaults() {
        let c = Config::parse("server:\n  http_addr: 0.0.0.0:9999\nstorage:\n  wal_fsync: 2s\n")
            .unwrap();
        assert_eq!(c.server.http_addr.port(), 9999);
        assert_eq!(c.storage.data_dir, PathBuf::from("./data"));
        assert_eq!(
            c.fsync_policy().unwrap(),
            sextant_storage::FsyncPolicy::Interval(Duration::from_secs(2))
        );
        assert!(Config::parse("storage:\n  wal_fsync: sometimes\n").is_err());
    }

    #[test]
    fn scrape_configs_are_validated() {
        let c = Config::parse(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: node\n    static_configs: [{targets: ['localhost:9100']}]\n",
        )
        .unwrap();
        assert_eq!(c.scrape_configs.len(), 1);
        assert_eq!(c.global.scrape_interval, "15s");
        let err = Config::parse(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 1s\n    scrape_timeout: 2s\n",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("greater than scrape interval"),
            "{err:#}"
        );
        let err =
            Config::parse("scrape_configs:\n  - job_name: a\n    honor_label: true\n").unwrap_err();
        assert!(format!("{err:#}").contains("honor_label"), "{err:#}");
    }

    #[test]
    fn otlp_settings() {
        let c = Config::parse("otlp:\n  grpc_addr: off\n  http_addr: 0.0.0.0:14318\n  translation_strategy: NoTranslation\n  promote_resource_attributes: [k8s.pod.name]\n").unwrap();
        assert_eq!(c.otlp.grpc_listen().unwrap(), ListenAddr::Off);
        assert_eq!(
            c.otlp.http_listen().unwrap(),
            ListenAddr::Explicit("0.0.0.0:14318".parse().unwrap())
        );
        let o = c.otlp.options().unwrap();
        assert_eq!(
            o.translation,
            sextant_ingest::otlp::NameTranslation::NoTranslation
        );
        assert_eq!(
            o.promote_resource_attributes,
            vec!["k8s.pod.name".to_string()]
        );
        let d = Config::default();
        assert_eq!(
            d.otlp.grpc_listen().unwrap(),
            ListenAddr::Default("127.0.0.1:4317".parse().unwrap())
        );
        assert!(Config::parse("otlp:\n  grpc_addr: nope\n").is_err());
        assert!(Config::parse("otlp:\n  translation_strategy: Foo\n").is_err());
    }

    #[test]
    fn rule_settings() {
        let c = Config::parse(
            "global:\n  evaluation_interval: 30s\n  rule_query_offset: 1m\n  external_labels: {dc: eu}\nrules:\n  resend_delay: 2m\n  for_grace_period: 0s\n",
        )
        .unwrap();
        let o = c.rule_manager_options().unwrap();
        assert_eq!(o.eval.default_interval, Duration::from_secs(30));
        assert_eq!(o.eval.default_query_offset, Duration::from_secs(60));
        assert_eq!(o.eval.resend_delay, Duration::from_secs(120));
        assert_eq!(
            o.eval.external_labels.get("dc").map(String::as_str),
            Some("eu")
        );
        assert_eq!(o.for_grace_period, Duration::ZERO);
        assert_eq!(o.outage_tolerance, Duration::from_secs(3600));
        let err = Config::parse("rules:\n  resend_delay: soon\n").unwrap_err();
        assert!(format!("{err:#}").contains("rules.resend_delay"), "{err:#}");
        assert!(Config::parse("rules:\n  resend_dely: 1m\n").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m5s").unwrap(), Duration::from_secs(65));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }
}
