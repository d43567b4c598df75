//! Sextant's query side: PromQL and the Prometheus-compatible HTTP API.

#![forbid(unsafe_code)]

pub mod api;
pub mod logql;
pub mod promql;
pub mod traceql;
