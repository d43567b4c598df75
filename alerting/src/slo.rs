//! Service level objectives: specs (Sloth `prometheus/v1`, OpenSLO) turned into SLI recording
//! rules and multi-window multi-burn-rate alerts, and the error-budget state served by
//! `/api/v1/slos`.
