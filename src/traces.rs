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
use sextant_storage::traces::TraceAppender;
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
    pub span_metrics: SpanMetricsConfig,
    pub service_graph: ServiceGraphConfig,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            enabled: true,
            max_request_bytes: 32 << 20,
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
        if self.max_request_bytes == 0 {
            anyhow::bail!("traces.max_request_bytes must be positive");
        }
        Ok(())
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

/// Opens the trace store, or `None` when traces are disabled.
pub async fn open_store(
    config: &crate::config::Config,
) -> anyhow::Result<Option<Arc<dyn TraceAppender>>> {
    if !config.traces.enabled {
        return Ok(None);
    }
    // LEAD: swap this line for the real store, e.g.
    // `Arc::new(TraceStore::open(&config.storage.data_dir.join("traces"), opts)?)`.
    let store: Arc<dyn TraceAppender> = Arc::new(sextant_storage::traces::NaiveTraceStore::new());
    Ok(Some(store))
}

/// Opens the trace store, creates the generator (writing to `db`), starts its collector and
/// attaches both to OTLP ingest. Returns the generator (for its self-metrics and the final
/// flush on shutdown), `None` when traces or generation are off.
pub async fn attach(
    config: &crate::config::Config,
    otlp: &OtlpState,
    db: Arc<Db>,
) -> anyhow::Result<Option<Arc<SpanMetrics>>> {
    let Some(store) = open_store(config).await? else {
        return Ok(None);
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
    otlp.set_traces(store, generator.clone(), config.traces.max_request_bytes);
    Ok(generator)
}

/// Writes the generator's last partial interval (completing or expiring pending edges).
pub async fn final_flush(generator: Option<Arc<SpanMetrics>>) -> anyhow::Result<()> {
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
