//! The trace pipeline's wiring: the `traces:` configuration section, opening the trace store,
//! and the span-metrics / service-graph generator (created, attached to OTLP ingest, flushed
//! every collection interval on its own thread and once more on shutdown).

use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sextant_ingest::spanmetrics::{
    default_latency_buckets, graph::default_graph_buckets, HistogramMode, ServiceGraphOptions,
    SpanMetrics, SpanMetricsOptions,
};
use sextant_ingest::OtlpState;
use sextant_storage::traces::{TraceAppender, TraceStore, TraceStoreOptions};
use sextant_storage::Db;

use crate::config::parse_duration;

/// `traces:` — OTLP trace ingest and RED metrics from spans.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// `false` leaves traces off: `/v1/traces` answers 501, gRPC `UNIMPLEMENTED`.
    pub enabled: bool,
    /// Largest OTLP traces request after decompression (`otlp.max_body_bytes` also applies).
    pub max_request_bytes: usize,
    /// Blocks whose newest span is older than this are deleted (`0s` keeps everything).
    pub retention_time: String,
    /// Oldest blocks are deleted while the store is larger than this (0: no limit).
    pub retention_size_bytes: u64,
    /// Encoded spans kept in memory before the head is cut into a block.
    pub max_head_bytes: usize,
    /// A trace leaves the head once no span of it arrived for this long.
    pub trace_idle: String,
    /// How often idle traces are cut, blocks compacted and retention applied.
    pub maintenance_interval: String,
    pub span_metrics: SpanMetricsConfig,
    pub service_graph: ServiceGraphConfig,
}

impl Default for TracesConfig {
    fn default() -> Self {
        let store = TraceStoreOptions::default();
        TracesConfig {
            enabled: true,
            max_request_bytes: 32 << 20,
            retention_time: "14d".into(),
            retention_size_bytes: 0,
            max_head_bytes: store.max_head_bytes,
            trace_idle: "10s".into(),
            maintenance_interval: "15s".into(),
            span_metrics: SpanMetricsConfig::default(),
            service_graph: ServiceGraphConfig::default(),
        }
    }
}

/// `traces.span_metrics:` — Tempo's span-metrics processor, with its defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    pub enabled: bool,
    /// Extra labels: span (then resource) attribute keys; names are sanitised (`.` → `_`).
    pub dimensions: Vec<String>,
    /// `classic` (`_bucket`/`_sum`/`_count`), `native` or `both`.
    pub histogram: String,
    /// Classic latency buckets in seconds (Tempo's 0.002 × 2^i, i < 14, when unset).
    pub buckets: Option<Vec<f64>>,
    /// How often generated series are written to the TSDB.
    pub collection_interval: String,
    /// Most series (span metrics and service graph together); more are dropped and counted.
    pub max_series: usize,
    /// Series without spans for this long are forgotten.
    pub stale_duration: String,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        let d = SpanMetricsOptions::default();
        SpanMetricsConfig {
            enabled: true,
            dimensions: Vec::new(),
            histogram: "classic".into(),
            buckets: None,
            collection_interval: "15s".into(),
            max_series: d.max_series,
            stale_duration: "15m".into(),
        }
    }
}

/// `traces.service_graph:` — Tempo's service-graphs processor, with its defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceGraphConfig {
    pub enabled: bool,
    /// How long half an edge waits for the other half.
    pub wait: String,
    /// Most half edges waiting at once.
    pub max_items: usize,
    /// Latency buckets in seconds (Tempo's 0.1 … 12.8 when unset).
    pub buckets: Option<Vec<f64>>,
    /// Database / `peer.service` / `user` virtual nodes.
    pub virtual_nodes: bool,
}

impl Default for ServiceGraphConfig {
    fn default() -> Self {
        let d = ServiceGraphOptions::default();
        ServiceGraphConfig {
            enabled: true,
            wait: "10s".into(),
            max_items: d.max_items,
            buckets: None,
            virtual_nodes: true,
        }
    }
}

impl TracesConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.generator_options()?;
        self.store_options(sextant_storage::FsyncPolicy::Always)?;
        if self.max_request_bytes == 0 {
            anyhow::bail!("traces.max_request_bytes must be positive");
        }
        if parse_duration(&self.maintenance_interval)
            .context("traces.maintenance_interval")?
            .is_zero()
        {
            anyhow::bail!("traces.maintenance_interval must be positive");
        }
        Ok(())
    }

    /// The trace store's options.
    pub fn store_options(
        &self,
        fsync: sextant_storage::FsyncPolicy,
    ) -> anyhow::Result<TraceStoreOptions> {
        let retention = parse_duration(&self.retention_time).context("traces.retention_time")?;
        if self.max_head_bytes == 0 {
            anyhow::bail!("traces.max_head_bytes must be positive");
        }
        Ok(TraceStoreOptions {
            retention: (!retention.is_zero()).then_some(retention),
            retention_bytes: (self.retention_size_bytes > 0).then_some(self.retention_size_bytes),
            max_head_bytes: self.max_head_bytes,
            trace_idle: parse_duration(&self.trace_idle).context("traces.trace_idle")?,
            fsync,
            ..TraceStoreOptions::default()
        })
    }

    /// The generator's options, or `None` when neither span metrics nor the service graph is on.
    pub fn generator_options(&self) -> anyhow::Result<Option<SpanMetricsOptions>> {
        let sm = &self.span_metrics;
        let sg = &self.service_graph;
        let histogram = match sm.histogram.as_str() {
            "classic" => HistogramMode::Classic,
            "native" => HistogramMode::Native,
            "both" => HistogramMode::Both,
            other => anyhow::bail!(
                "traces.span_metrics.histogram: expected classic, native or both, got {other:?}"
            ),
        };
        let options = SpanMetricsOptions {
            span_metrics: sm.enabled,
            dimensions: sm.dimensions.clone(),
            histogram,
            buckets: sm.buckets.clone().unwrap_or_else(default_latency_buckets),
            collection_interval: parse_duration(&sm.collection_interval)
                .context("traces.span_metrics.collection_interval")?,
            max_series: sm.max_series,
            stale_after: parse_duration(&sm.stale_duration)
                .context("traces.span_metrics.stale_duration")?,
            service_graph: ServiceGraphOptions {
                enabled: sg.enabled,
                wait: parse_duration(&sg.wait).context("traces.service_graph.wait")?,
                max_items: sg.max_items,
                buckets: sg.buckets.clone().unwrap_or_else(default_graph_buckets),
                virtual_nodes: sg.virtual_nodes,
            },
        };
        if options.collection_interval.is_zero() {
            anyhow::bail!("traces.span_metrics.collection_interval must be positive");
        }
        // Bucket and dimension checks live with the generator.
        SpanMetrics::new(Arc::new(Db::in_memory()), options.clone())
            .map_err(|e| anyhow::anyhow!("traces: {e}"))?;
        Ok((sm.enabled || sg.enabled).then_some(options))
    }
}

/// Opens (replaying its WAL) the trace store under `<data_dir>/traces` and starts its
/// maintenance thread, or `None` when traces are disabled.
pub async fn open_store(config: &crate::config::Config) -> anyhow::Result<Option<Arc<TraceStore>>> {
    if !config.traces.enabled {
        return Ok(None);
    }
    let dir = config.storage.data_dir.join("traces");
    let opts = config.traces.store_options(config.fsync_policy()?)?;
    let shown = dir.display().to_string();
    let store = tokio::task::spawn_blocking(move || TraceStore::open(&dir, opts))
        .await
        .context("trace store open task")?
        .with_context(|| format!("opening the trace store in {shown}"))?;
    let store = Arc::new(store);
    let every = parse_duration(&config.traces.maintenance_interval)?;
    let maintained = store.clone();
    std::thread::Builder::new()
        .name("trace-maintenance".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            if let Err(e) = maintained.maintain() {
                tracing::error!(error = %e, "trace store maintenance failed; will retry");
            }
        })
        .context("starting the trace maintenance thread")?;
    Ok(Some(store))
}

/// The trace pipeline once storage is open: the store (for the query APIs) and the generator
/// (for its self-metrics and the final flush), each `None` when off.
pub struct Traces {
    pub store: Option<Arc<TraceStore>>,
    pub generator: Option<Arc<SpanMetrics>>,
}

/// Opens the trace store, creates the generator (writing to `db`), starts its collector and
/// attaches both to OTLP ingest.
pub async fn attach(
    config: &crate::config::Config,
    otlp: &OtlpState,
    db: Arc<Db>,
) -> anyhow::Result<Traces> {
    let Some(store) = open_store(config).await? else {
        return Ok(Traces {
            store: None,
            generator: None,
        });
    };
    let generator = match config.traces.generator_options()? {
        Some(options) => {
            let g = SpanMetrics::new(db, options).map_err(|e| anyhow::anyhow!("traces: {e}"))?;
            sextant_ingest::spanmetrics::spawn_collector(g.clone())
                .context("starting the span-metrics collector thread")?;
            Some(g)
        }
        None => None,
    };
    let appender: Arc<dyn TraceAppender> = store.clone();
    otlp.set_traces(appender, generator.clone(), config.traces.max_request_bytes);
    Ok(Traces {
        store: Some(store),
        generator,
    })
}

/// The Tempo API (with its streaming gRPC search) and the Jaeger API under `/jaeger` over the
/// store; an empty router when traces are off.
pub fn query_router(store: Option<Arc<TraceStore>>) -> axum::Router {
    use sextant_query::api::{jaeger, tempo};
    let Some(store) = store else {
        return axum::Router::new();
    };
    let source: Arc<dyn sextant_storage::traces::TraceSource> = store;
    let info = tempo::TempoBuildInfo {
        revision: format!("sextant-{}", env!("CARGO_PKG_VERSION")),
        ..tempo::TempoBuildInfo::default()
    };
    axum::Router::new()
        .merge(tempo::tempo_router(source.clone(), info))
        .merge(tempo::grpc::streaming_querier_router(source.clone()))
        .merge(jaeger::jaeger_router(source))
}

/// Shutdown: the generator's last partial interval, then the store's head into a block (so the
/// next start replays no trace WAL).
pub async fn shutdown(traces: Traces) -> anyhow::Result<()> {
    final_flush(traces.generator).await?;
    if let Some(store) = traces.store {
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .context("trace flush task")?
            .context("flushing the trace store")?;
    }
    Ok(())
}

/// Writes the generator's last partial interval (completing or expiring pending edges).
async fn final_flush(generator: Option<Arc<SpanMetrics>>) -> anyhow::Result<()> {
    let Some(g) = generator else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || g.flush_at(sextant_ingest::spanmetrics::now_ms(), true))
        .await
        .context("span metrics flush task")?
        .context("writing span metrics")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn traces_section_maps_to_generator_options() {
        let config = crate::config::Config::parse(
            "traces:\n  span_metrics:\n    dimensions: [http.method]\n    histogram: both\n    buckets: [0.1, 1]\n    collection_interval: 5s\n  service_graph:\n    wait: 2s\n    max_items: 7\n",
        )
        .unwrap();
        let o = config.traces.generator_options().unwrap().unwrap();
        assert_eq!(o.dimensions, ["http.method"]);
        assert_eq!(
            o.histogram,
            sextant_ingest::spanmetrics::HistogramMode::Both
        );
        assert_eq!(o.buckets, [0.1, 1.0]);
        assert_eq!(o.collection_interval, Duration::from_secs(5));
        assert_eq!(o.service_graph.wait, Duration::from_secs(2));
        assert_eq!(o.service_graph.max_items, 7);
        // Defaults: Tempo's.
        let d = crate::config::Config::parse("{}").unwrap();
        let o = d.traces.generator_options().unwrap().unwrap();
        assert_eq!(o.collection_interval, Duration::from_secs(15));
        assert_eq!(o.buckets.len(), 14);
        assert!(d.traces.enabled);
        for bad in [
            "traces:\n  span_metrics:\n    histogram: sparse\n",
            "traces:\n  span_metrics:\n    buckets: [1, 0.5]\n",
            "traces:\n  span_metrics:\n    dimensions: [span.kind, span_kind]\n",
            "traces:\n  service_graph:\n    wait: soon\n",
            "traces:\n  bogus: 1\n",
        ] {
            assert!(crate::config::Config::parse(bad).is_err(), "{bad}");
        }
        let off = crate::config::Config::parse(
            "traces:\n  span_metrics:\n    enabled: false\n  service_graph:\n    enabled: false\n",
        )
        .unwrap();
        assert!(off.traces.generator_options().unwrap().is_none());
    }
}
