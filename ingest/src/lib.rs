//! Sextant's ingest edge: protocol decoding and validation in front of storage.
//!
//! Today: Prometheus remote write 1.0 (`POST /api/v1/write`), OTLP metrics and logs ([`otlp`]),
//! OTLP traces ([`otlp::traces`]) with the span-metrics / service-graph generator ([`spanmetrics`]),
//! Loki push ([`loki`], into the log store through [`loki::LogSink`]) and Prometheus-style scraping
//! ([`scrape`]: `scrape_configs`, text and OpenMetrics expositions, `/api/v1/targets`). Each
//! protocol decodes and validates its wire format here (zero-copy: label strings stay borrowed from the request
//! buffer), hands the batch to [`sextant_storage::Db::append_series`], and answers in the
//! protocol's own shape.

#![forbid(unsafe_code)]

pub mod loki;
pub mod otlp;
pub mod remote_write;
pub mod scrape;
pub mod spanmetrics;

pub use otlp::{OtlpOptions, OtlpState};
pub use remote_write::{router, RemoteWriteLimits, RemoteWriteState};
pub use scrape::{GlobalConfig, ScrapeConfig, ScrapeManager};
