//! Sextant's self-observability: structured logs and the `/metrics` registry with the HTTP
//! request-duration histogram.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(())
}

type HistogramFamily = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

/// The registry behind `/metrics` and the metrics the binary itself updates.
pub struct Telemetry {
    registry: Registry,
    http_duration: HistogramFamily,
}

impl Telemetry {
    pub fn new(version: &str) -> Telemetry {
        let mut registry = Registry::default();
        let http_duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 18)));
        registry.register(
            "sextant_http_request_duration_seconds",
            "HTTP request latency by handler and status code",
            http_duration.clone(),
        );
        let build_info = Family::<Vec<(String, String)>, Gauge>::default();
        build_info
            .get_or_create(&vec![("version".to_string(), version.to_string())])
            .set(1);
        registry.register(
            "sextant_build_info",
            "Build information; always 1",
            build_info,
        );
        Telemetry {
            registry,
            http_duration,
        }
    }

    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Middleware timing every request by its route pattern (not its raw path, which would make
/// label values unbounded).
pub async fn track_http(
    State(telemetry): State<Arc<Telemetry>>,
    req: Request,
    next: Next,
) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    telemetry
        .http_duration
        .get_or_create(&vec![
            ("handler".to_string(), handler),
            ("code".to_string(), response.status().as_u16().to_string()),
        ])
        .observe(started.elapsed().as_secs_f64());
    response
}
