//! Sextant's own storage metrics, exposed on `/metrics` by the binary.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges the storage updates; cheap to clone (shared atomics).
#[derive(Clone, Debug, Default)]
pub struct StorageMetrics {
    pub samples_appended: Counter,
    pub samples_rejected: Family<Vec<(String, String)>, Counter>,
    pub samples_duplicate_ignored: Counter,
    pub series_created: Counter,
    pub active_series: Gauge,
    pub wal_bytes_written: Counter,
    pub wal_fsyncs: Counter,
    pub wal_truncated_bytes: Counter,
    pub blocks_loaded: Gauge,
    pub blocks_cut: Counter,
    pub compactions: Counter,
    pub blocks_expired: Counter,
    pub blocks_quarantined: Counter,
    pub exemplars_appended: Counter,
    pub exemplars_in_storage: Gauge,
    pub series_with_exemplars: Gauge,
    pub out_of_order_exemplars: Counter,
    pub max_exemplars: Gauge,
    pub exemplars_rejected: Family<Vec<(String, String)>, Counter>,
    pub head_chunk_bytes_spilled: Counter,
}

impl StorageMetrics {
    /// Counts `n` samples rejected for `reason` (storage reasons and the ingest edge's own).
    pub fn reject(&self, reason: &str, n: u64) {
        self.samples_rejected
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc_by(n);
    }

    /// Counts `n` exemplars dropped for `reason` (storage refusals and the ingest edge's own).
    pub fn reject_exemplars(&self, reason: &str, n: u64) {
        self.exemplars_rejected
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc_by(n);
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sextant_samples_appended",
            "Samples stored in the head after passing validation",
            self.samples_appended.clone(),
        );
        registry.register(
            "sextant_samples_rejected",
            "Samples not stored, by reason",
            self.samples_rejected.clone(),
        );
        registry.register(
            "sextant_samples_duplicate_ignored",
            "Resent samples identical to one already stored (same timestamp and value)",
            self.samples_duplicate_ignored.clone(),
        );
        registry.register(
            "sextant_series_created",
            "Series created in the head",
            self.series_created.clone(),
        );
        registry.register(
            "sextant_head_series",
            "Series in the in-memory head",
            self.active_series.clone(),
        );
        registry.register(
            "sextant_wal_written_bytes",
            "Bytes written to the write-ahead log",
            self.wal_bytes_written.clone(),
        );
        registry.register(
            "sextant_wal_fsyncs",
            "fsync calls on the write-ahead log",
            self.wal_fsyncs.clone(),
        );
        registry.register(
            "sextant_blocks",
            "Blocks currently loaded",
            self.blocks_loaded.clone(),
        );
        registry.register(
            "sextant_blocks_cut",
            "Head ranges persisted as blocks",
            self.blocks_cut.clone(),
        );
        registry.register(
            "sextant_compactions",
            "Block compactions run",
            self.compactions.clone(),
        );
        registry.register(
            "sextant_blocks_expired",
            "Blocks deleted by retention",
            self.blocks_expired.clone(),
        );
        registry.register(
            "sextant_blocks_quarantined",
            "Unreadable blocks moved to the quarantine directory at startup",
            self.blocks_quarantined.clone(),
        );
        registry.register(
            "sextant_head_chunks_spilled_bytes",
            "Bytes of sealed head chunks moved from memory into memory-mapped spill files",
            self.head_chunk_bytes_spilled.clone(),
        );
        registry.register(
            "sextant_wal_truncated_bytes",
            "Bytes of torn or corrupt WAL tails dropped at startup",
            self.wal_truncated_bytes.clone(),
        );
        registry.register(
            "sextant_tsdb_exemplar_exemplars_appended",
            "Total number of appended exemplars",
            self.exemplars_appended.clone(),
        );
        registry.register(
            "sextant_tsdb_exemplar_exemplars_in_storage",
            "Number of exemplars currently in circular storage",
            self.exemplars_in_storage.clone(),
        );
        registry.register(
            "sextant_tsdb_exemplar_series_with_exemplars_in_storage",
            "Number of series with exemplars currently in circular storage",
            self.series_with_exemplars.clone(),
        );
        registry.register(
            "sextant_tsdb_exemplar_out_of_order_exemplars",
            "Total number of out of order exemplar ingestion failed attempts",
            self.out_of_order_exemplars.clone(),
        );
        registry.register(
            "sextant_exemplars_rejected",
            "Exemplars not stored, by reason",
            self.exemplars_rejected.clone(),
        );
        registry.register(
            "sextant_tsdb_exemplar_max_exemplars",
            "Total number of exemplars the exemplar storage can store, resizeable",
            self.max_exemplars.clone(),
        );
    }
}
