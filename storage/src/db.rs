//! The database: the entry point for writers and readers. It owns the head, the WAL and the
//! blocks and keeps them consistent: a batch is validated against the head, logged, then
//! applied, all under one append lock, so what the WAL replays is exactly what was
//! acknowledged. Maintenance (`db/maintenance.rs`) moves old head data into blocks, compacts
//! and expires them; reads (`db/read.rs`) merge blocks and head.

mod admin;
mod exemplars;
mod lazy;
mod maintenance;
mod read;

pub use lazy::{LazySeries, LoadScratch};
pub use maintenance::MaintenanceReport;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::block::{Block, BlockMeta};
use crate::exemplar::ExemplarRing;
use crate::head::{Head, IdHasher, Last, LastValue, SampleCheck, SeriesRef};
use crate::labels::SeriesLabels;
use crate::metrics::StorageMetrics;
use crate::series_data::same_histogram_value;
use crate::wal::{Record, Wal};
use crate::{HistogramSample, Labels, Sample, StorageError};

/// When the WAL is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before every acknowledgement (the default): an acknowledged write survives power
    /// loss.
    Always,
    /// fsync when at least this long has passed since the last one, checked on each write and at
    /// shutdown. Acknowledged writes survive a process crash (`kill -9`: the data is in the page
    /// cache) but up to one interval can be lost on power loss.
    Interval(Duration),
    /// Never fsync explicitly except at shutdown; the OS decides.
    Never,
}

#[derive(Clone, Debug)]
pub struct DbOptions {
    pub fsync: FsyncPolicy,
    /// Time range of a level-1 block cut from the head (default 2h). The head holds up to 1.5×
    /// this before the oldest range is persisted.
    pub block_range_ms: i64,
    /// Largest block compaction produces (default 24h).
    pub max_block_range_ms: i64,
    /// Blocks entirely older than this, relative to the newest sample, are deleted (default 15d;
    /// 0 keeps everything).
    pub retention_ms: i64,
    /// When blocks and WAL together exceed this many bytes the oldest blocks are deleted
    /// (default 0: no size limit).
    pub retention_bytes: u64,
    /// zstd level for block pages (default 6: on the benchmark data 3% smaller than level 3,
    /// while higher levels gain under 1% more for several times the CPU).
    pub zstd_level: i32,
    /// Open without changing the directory (tools such as `sextant tsdb`): blocks and the WAL are
    /// read as they are and nothing is written; the database then behaves like an in-memory one
    /// preloaded from the directory (appends are not logged, flush and maintenance do nothing,
    /// admin operations are refused). Default false.
    pub read_only: bool,
    /// Capacity of the exemplar ring shared by all series (default 100000, as Prometheus'
    /// `storage.exemplars.max_exemplars`); 0 disables exemplar storage.
    pub max_exemplars: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            fsync: FsyncPolicy::Always,
            block_range_ms: 2 * 3_600_000,
            max_block_range_ms: 24 * 3_600_000,
            retention_ms: 15 * 24 * 3_600_000,
            retention_bytes: 0,
            zstd_level: 6,
            read_only: false,
            max_exemplars: 100_000,
        }
    }
}

/// Why a sample was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Older than the newest sample of its series.
    OutOfOrder,
    /// Same timestamp as the newest sample of its series, different value.
    DuplicateTimestamp,
    /// Older than the head's minimum valid time: that range is already persisted in a block.
    TooOld,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::DuplicateTimestamp => "duplicate_timestamp",
            RejectReason::TooOld => "too_old",
        }
    }
}

/// What happened to one appended batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub appended: usize,
    /// Samples identical to one already stored (same timestamp and value bits): a resend, not an
    /// error; counted in `sextant_samples_duplicate_ignored_total`.
    pub duplicates_ignored: usize,
    pub rejected: BTreeMap<RejectReason, usize>,
}

impl AppendOutcome {
    pub fn rejected_total(&self) -> usize {
        self.rejected.values().sum()
    }
}

#[derive(Clone, Debug, Default)]
pub struct HeadStats {
    pub num_series: usize,
    pub num_samples: u64,
    pub num_chunks: usize,
    pub num_label_pairs: usize,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
}

/// Metadata of one metric family, as remote write and scrapes report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset` or `unknown`.
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// Cardinality statistics for `/api/v1/status/tsdb`.
#[derive(Clone, Debug, Default)]
pub struct TsdbStatus {
    pub head: HeadStats,
    /// Top metric names by number of series, descending.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// Top label names by number of distinct values, descending.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Top label names by bytes of their values summed over distinct values, descending.
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// Top `name=value` pairs by number of series, descending.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

pub struct Db {
    dir: Option<PathBuf>,
    opts: DbOptions,
    head: Head,
    /// `None` for in-memory databases. Also serialises appends.
    wal: Mutex<Option<Wal>>,
    /// Sorted by `min_time`. Readers clone the `Arc`s, so a block replaced by compaction or
    /// expired by retention lives on until its last query finishes.
    blocks: RwLock<Vec<Arc<Block>>>,
    /// One cut, compaction or retention pass at a time.
    maintenance: Mutex<()>,
    metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    /// Exemplars of all series (`exemplar.rs`); written under the append lock (`wal`).
    exemplars: RwLock<ExemplarRing>,
    metrics: StorageMetrics,
    /// Number of the next head spill file; the lock makes spill passes one at a time.
    spill_seq: Mutex<u64>,
    /// Head truncations so far: a deferred read of head data (`lazy.rs`) listed before one
    /// may miss samples that moved to a block it did not list, and is redone.
    head_truncations: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Db {
    /// An in-memory database with no WAL and no blocks (tests and tools).
    pub fn in_memory() -> Db {
        let opts = DbOptions::default();
        let metrics = StorageMetrics::default();
        let exemplars = ExemplarRing::new(opts.max_exemplars);
        metrics.max_exemplars.set(exemplars.capacity() as i64);
        Db {
            dir: None,
            head: Head::new(opts.block_range_ms),
            opts,
            wal: Mutex::new(None),
            blocks: RwLock::new(Vec::new()),
            maintenance: Mutex::new(()),
            metadata: RwLock::new(BTreeMap::new()),
            exemplars: RwLock::new(exemplars),
            metrics,
            spill_seq: Mutex::new(0),
            head_truncations: Default::default(),
        }
    }

    /// Opens (creating if needed) the database in `dir`: opens its blocks (moving corrupt ones
    /// aside), replays the WAL into the head and re-applies the head's deletions. With
    /// `read_only` nothing in `dir` is created or changed.
    pub fn open(dir: &Path, opts: DbOptions) -> Result<Db, StorageError> {
        let metrics = StorageMetrics::default();
        let blocks = if opts.read_only {
            admin::open_blocks_read_only(dir)?
        } else {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
            maintenance::open_blocks(dir, &metrics)?
        };
        if !opts.read_only {
            crate::head::spill::reset_dir(dir)?;
        }
        let head = Head::new(opts.block_range_ms);
        // Everything before the newest block's end is persisted; the WAL may still hold it.
        if let Some(end) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(end);
        }
        let mut orphan_samples = 0u64;
        let mut exemplars = ExemplarRing::new(opts.max_exemplars);
        let started = std::time::Instant::now();
        let apply = |record| match record {
            Record::Series(series) => {
                for (id, labels) in series {
                    head.restore_series(id, labels);
                }
            }
            Record::Samples(samples) => {
                for (id, s) in samples {
                    match head.series(id) {
                        Some(series) => {
                            let last = series.lock().last();
                            if head.check(last, s.t, s.v) == SampleCheck::Ok {
                                head.append_checked(&series, s.t, s.v);
                            }
                        }
                        None => orphan_samples += 1,
                    }
                }
            }
            Record::Histograms(samples) => {
                for (id, s) in samples {
                    match head.series(id) {
                        Some(series) => {
                            let last = series.lock().last();
                            let check = head.check_histogram(last, s.t, || {
                                series
                                    .lock()
                                    .histogram_at(s.t)
                                    .is_some_and(|x| same_histogram_value(&x.h, &s.h))
                            });
                            if check == SampleCheck::Ok {
                                head.append_histogram_run(&series, std::iter::once(s));
                            }
                        }
                        None => orphan_samples += 1,
                    }
                }
            }
            Record::Exemplars(list) => {
                for (id, e) in list {
                    match head.series(id) {
                        Some(series) => {
                            exemplars.add(&series.labels(), e);
                        }
                        None => orphan_samples += 1,
                    }
                }
            }
        };
        let (wal, stats) = if opts.read_only {
            (None, crate::wal::replay_read_only(&dir.join("wal"), apply)?)
        } else {
            let (wal, stats) = Wal::open(&dir.join("wal"), opts.fsync, apply)?;
            (Some(wal), stats)
        };
        admin::apply_head_tombstones(dir, &head)?;
        if orphan_samples > 0 {
            tracing::warn!(
                orphan_samples,
                "wal held samples of series whose records were lost"
            );
        }
        metrics.wal_truncated_bytes.inc_by(stats.truncated_bytes);
        metrics.active_series.set(head.num_series() as i64);
        metrics.blocks_loaded.set(blocks.len() as i64);
        exemplars::publish_gauges(&metrics, &exemplars);
        tracing::info!(
            blocks = blocks.len(),
            segments = stats.segments,
            records = stats.records,
            series = head.num_series(),
            samples = head.num_samples(),
            exemplars = exemplars.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "storage opened; wal replay done"
        );
        Ok(Db {
            dir: (!opts.read_only).then(|| dir.to_path_buf()),
            opts,
            head,
            wal: Mutex::new(wal),
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(()),
            metadata: RwLock::new(BTreeMap::new()),
            exemplars: RwLock::new(exemplars),
            metrics,
            spill_seq: Mutex::new(0),
            head_truncations: Default::default(),
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn options(&self) -> &DbOptions {
        &self.opts
    }

    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }

    /// The metadata of every block, oldest first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.blocks
            .read()
            .iter()
            .map(|b| b.meta().clone())
            .collect()
    }

    /// Appends a batch and returns once it is in the WAL (and fsynced, by policy). Samples of
    /// one series must come in time order; each sample that is out of order, collides with a
    /// stored timestamp or falls before the head's minimum valid time is rejected and counted,
    /// the rest are stored.
    pub fn append(&self, batch: &[(Labels, Vec<Sample>)]) -> Result<AppendOutcome, StorageError> {
        self.append_series(batch.iter().map(|(l, s)| (l, s.as_slice())))
    }

    /// Appends native histogram samples, with the same durability and per-sample validation as
    /// [`Db::append`]. A series' float and histogram samples share one timeline: a histogram
    /// at or before the series' newest sample of either kind is rejected as out of order or
    /// duplicate.
    pub fn append_histograms(
        &self,
        batch: &[(Labels, Vec<HistogramSample>)],
    ) -> Result<AppendOutcome, StorageError> {
        self.append_histogram_series(batch.iter().map(|(l, s)| (l, s.as_slice())))
    }

    /// [`Db::append_histograms`] for label sets that may borrow from a request buffer.
    pub fn append_histogram_series<'a, L: SeriesLabels + 'a>(
        &self,
        batch: impl Iterator<Item = (&'a L, &'a [HistogramSample])>,
    ) -> Result<AppendOutcome, StorageError> {
        let mut wal = self.wal.lock();
        let mut out = AppendOutcome::default();
        struct Entry {
            series: SeriesRef,
            created: bool,
            last: Last,
            /// Index in `accepted` of this batch's newest accepted sample of the series.
            newest: Option<usize>,
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut position: HashMap<u32, usize, BuildHasherDefault<IdHasher>> = HashMap::default();
        let mut accepted: Vec<(u32, HistogramSample)> = Vec::new();
        for (labels, samples) in batch {
            let (id, series, created) = self.head.get_or_create(labels);
            let at = match position.get(&id) {
                Some(&at) => at,
                None => {
                    let last = series.last();
                    position.insert(id, entries.len());
                    entries.push(Entry {
                        series,
                        created,
                        last,
                        newest: None,
                    });
                    entries.len() - 1
                }
            };
            let entry = &mut entries[at];
            for s in samples {
                // A resend at the newest timestamp is compared with the newest histogram, from
                // this batch or from the head.
                let same = || match entry.newest {
                    Some(i) => same_histogram_value(&accepted[i].1.h, &s.h),
                    None => entry
                        .series
                        .lock()
                        .histogram_at(s.t)
                        .is_some_and(|x| same_histogram_value(&x.h, &s.h)),
                };
                let reason = match self.head.check_histogram(entry.last, s.t, same) {
                    SampleCheck::Ok => {
                        entry.newest = Some(accepted.len());
                        entry.last = Some((s.t, LastValue::Histogram));
                        accepted.push((id, s.clone()));
                        continue;
                    }
                    SampleCheck::Identical => {
                        out.duplicates_ignored += 1;
                        continue;
                    }
                    SampleCheck::OutOfOrder => RejectReason::OutOfOrder,
                    SampleCheck::DuplicateTimestamp => RejectReason::DuplicateTimestamp,
                    SampleCheck::TooOld => RejectReason::TooOld,
                };
                *out.rejected.entry(reason).or_default() += 1;
            }
        }
        let n_accepted = accepted.len();
        let n_created = entries.iter().filter(|e| e.created).count();
        if let Some(wal) = wal.as_mut() {
            let created = created_series(
                position
                    .iter()
                    .map(|(&id, &at)| (id, entries[at].created, &entries[at].series)),
            );
            let new_labels: Vec<(u32, &Labels)> = created.iter().map(|(id, l)| (*id, l)).collect();
            let (bytes, synced) = wal.log_histograms(&new_labels, &accepted)?;
            self.metrics.wal_bytes_written.inc_by(bytes);
            if synced {
                self.metrics.wal_fsyncs.inc();
            }
        }
        // Apply runs of consecutive samples of one series under one lock.
        let mut accepted = accepted.into_iter().peekable();
        while let Some((id, first)) = accepted.next() {
            let mut run = vec![first];
            while let Some((_, s)) = accepted.next_if(|(next, _)| *next == id) {
                run.push(s);
            }
            if let Some(&at) = position.get(&id) {
                self.head
                    .append_histogram_run(&entries[at].series, run.into_iter());
            }
        }
        drop(wal);
        out.appended = n_accepted;
        self.account(&out, n_created);
        Ok(out)
    }

    /// [`Db::append`] for label sets that may borrow from a request buffer: existing series
    /// are found without allocating.
    pub fn append_series<'a, L: SeriesLabels + 'a>(
        &self,
        batch: impl Iterator<Item = (&'a L, &'a [Sample])>,
    ) -> Result<AppendOutcome, StorageError> {
        let mut wal = self.wal.lock();
        let mut out = AppendOutcome::default();
        // One entry per distinct series of the batch: id, handle, and the newest sample so far
        // (including accepted samples of this batch).
        struct Entry {
            series: SeriesRef,
            created: bool,
            last: Last,
        }
        // Sized up front (by the upper bound: callers filter): growing these per request (5000
        // series) cost rehashes and copies.
        let (lower, upper) = batch.size_hint();
        let hint = upper.unwrap_or(lower).min(1 << 16);
        let mut entries: Vec<Entry> = Vec::with_capacity(hint);
        let mut position: HashMap<u32, usize, BuildHasherDefault<IdHasher>> =
            HashMap::with_capacity_and_hasher(hint, Default::default());
        // Accepted samples by series id, in batch order; what the WAL logs and the head applies.
        let mut accepted: Vec<(u32, Sample)> = Vec::with_capacity(hint);
        let batch: Vec<(&L, &[Sample])> = batch.collect();
        let keys: Vec<&L> = batch.iter().map(|(l, _)| *l).collect();
        let mut resolved = Vec::new();
        self.head.get_or_create_batch(&keys, &mut resolved);
        for ((id, series, created), (_, samples)) in resolved.into_iter().zip(batch) {
            let at = match position.get(&id) {
                Some(&at) => at,
                None => {
                    let last = series.last();
                    position.insert(id, entries.len());
                    entries.push(Entry {
                        series,
                        created,
                        last,
                    });
                    entries.len() - 1
                }
            };
            let entry = &mut entries[at];
            for s in samples {
                let reason = match self.head.check(entry.last, s.t, s.v) {
                    SampleCheck::Ok => {
                        accepted.push((id, *s));
                        entry.last = Some((s.t, LastValue::Float(s.v.to_bits())));
                        continue;
                    }
                    SampleCheck::Identical => {
                        out.duplicates_ignored += 1;
                        continue;
                    }
                    SampleCheck::OutOfOrder => RejectReason::OutOfOrder,
                    SampleCheck::DuplicateTimestamp => RejectReason::DuplicateTimestamp,
                    SampleCheck::TooOld => RejectReason::TooOld,
                };
                *out.rejected.entry(reason).or_default() += 1;
            }
        }
        let n_accepted = accepted.len();
        let n_created = entries.iter().filter(|e| e.created).count();
        if let Some(wal) = wal.as_mut() {
            let created = created_series(
                position
                    .iter()
                    .map(|(&id, &at)| (id, entries[at].created, &entries[at].series)),
            );
            let new_labels: Vec<(u32, &Labels)> = created.iter().map(|(id, l)| (*id, l)).collect();
            let (bytes, synced) = wal.log(&new_labels, &accepted)?;
            self.metrics.wal_bytes_written.inc_by(bytes);
            if synced {
                self.metrics.wal_fsyncs.inc();
            }
        }
        // Apply runs of consecutive samples of one series under one lock.
        let mut i = 0;
        while i < accepted.len() {
            let id = accepted[i].0;
            let mut j = i + 1;
            while j < accepted.len() && accepted[j].0 == id {
                j += 1;
            }
            if let Some(&at) = position.get(&id) {
                self.head
                    .append_run(&entries[at].series, accepted[i..j].iter().map(|(_, s)| *s));
            }
            i = j;
        }
        drop(wal);
        out.appended = n_accepted;
        self.account(&out, n_created);
        Ok(out)
    }

    /// Counts a finished append in the self-metrics.
    fn account(&self, out: &AppendOutcome, n_created: usize) {
        self.metrics.samples_appended.inc_by(out.appended as u64);
        self.metrics
            .samples_duplicate_ignored
            .inc_by(out.duplicates_ignored as u64);
        for (reason, n) in &out.rejected {
            self.metrics.reject(reason.as_str(), *n as u64);
        }
        self.metrics.series_created.inc_by(n_created as u64);
        self.metrics
            .active_series
            .set(self.head.num_series() as i64);
        self.maybe_spill();
    }

    /// Moves sealed head chunks out of memory into a spill file once enough have piled up
    /// (`head/spill.rs`). Runs on the appending thread after the WAL lock is released; a pass
    /// already running elsewhere makes this a no-op.
    fn maybe_spill(&self) {
        self.spill_over(crate::head::spill::SPILL_THRESHOLD_BYTES);
    }

    /// A spill pass if at least `threshold` sealed bytes are in memory.
    fn spill_over(&self, threshold: usize) {
        let Some(dir) = &self.dir else {
            return;
        };
        if self.head.sealed_in_memory() < threshold.max(1) {
            return;
        }
        let Some(mut seq) = self.spill_seq.try_lock() else {
            return;
        };
        // Deletions and truncation (flush, block cuts) change existing chunks; they run under
        // the maintenance lock, so a pass holds it too (and waits for the next append if busy).
        let Some(_maintenance) = self.maintenance.try_lock() else {
            return;
        };
        if self.head.sealed_in_memory() < threshold.max(1) {
            return;
        }
        let path = dir
            .join(crate::head::spill::SPILL_DIR)
            .join(format!("{:08}", *seq));
        *seq += 1;
        match self.head.spill_sealed(&path) {
            Ok(bytes) => {
                self.metrics.head_chunk_bytes_spilled.inc_by(bytes);
            }
            Err(e) => {
                // The chunks stay in memory; nothing is lost.
                tracing::warn!(error = %e, "could not spill sealed head chunks to disk");
            }
        }
    }

    /// Makes everything written so far durable (used at shutdown).
    pub fn sync(&self) -> Result<(), StorageError> {
        if let Some(wal) = self.wal.lock().as_mut() {
            wal.sync()?;
            self.metrics.wal_fsyncs.inc();
        }
        Ok(())
    }

    pub fn head_stats(&self) -> HeadStats {
        let range = self.head.time_range();
        let mut pairs = 0usize;
        for name in self.head.all_label_names() {
            pairs += self.head.all_label_values(&name).len();
        }
        HeadStats {
            num_series: self.head.num_series(),
            num_samples: self.head.num_samples(),
            num_chunks: self.head.num_chunks(),
            num_label_pairs: pairs,
            min_time: range.map(|r| r.0),
            max_time: range.map(|r| r.1),
        }
    }

    /// Records the metadata of a metric family (the latest report wins).
    pub fn set_metadata(&self, metric_family: &str, metadata: MetricMetadata) {
        let mut map = self.metadata.write();
        if map.get(metric_family) != Some(&metadata) {
            map.insert(metric_family.to_string(), metadata);
        }
    }

    /// Metadata by metric family name, optionally of one family only, at most `limit` families.
    pub fn metadata(
        &self,
        metric: Option<&str>,
        limit: Option<usize>,
    ) -> BTreeMap<String, MetricMetadata> {
        let map = self.metadata.read();
        map.iter()
            .filter(|(k, _)| metric.is_none_or(|m| m == k.as_str()))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Head statistics and the top `limit` entries of each cardinality list.
    pub fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        let mut by_name: HashMap<String, u64> = HashMap::new();
        let mut pairs: HashMap<(String, String), u64> = HashMap::new();
        for (_, series) in self.head.all_series() {
            let labels = series.labels();
            if let Some(n) = labels.metric_name() {
                *by_name.entry(n.to_string()).or_default() += 1;
            }
            for l in &labels {
                *pairs.entry((l.name.clone(), l.value.clone())).or_default() += 1;
            }
        }
        let mut values: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (n, v) in pairs.keys() {
            values.entry(n).or_default().insert(v);
        }
        fn top(mut v: Vec<(String, u64)>, limit: usize) -> Vec<(String, u64)> {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(limit);
            v
        }
        TsdbStatus {
            head: self.head_stats(),
            label_value_count_by_label_name: top(
                values
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.len() as u64))
                    .collect(),
                limit,
            ),
            memory_in_bytes_by_label_name: top(
                values
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.len() as u64).sum()))
                    .collect(),
                limit,
            ),
            series_count_by_metric_name: top(by_name.into_iter().collect(), limit),
            series_count_by_label_value_pair: top(
                pairs
                    .into_iter()
                    .map(|((n, v), c)| (format!("{n}={v}"), c))
                    .collect(),
                limit,
            ),
        }
    }
}

/// Ids and labels of the series an append created, for the WAL's series records; takes
/// `(id, created, series)` per distinct series of the batch.
fn created_series<'a>(
    entries: impl Iterator<Item = (u32, bool, &'a SeriesRef)>,
) -> Vec<(u32, Labels)> {
    entries
        .filter(|(_, created, _)| *created)
        .map(|(id, _, series)| (id, series.labels()))
        .collect()
}

#[cfg(test)]
mod histogram_block_tests;
#[cfg(test)]
mod histogram_tests;
#[cfg(test)]
mod spill_tests;
#[cfg(test)]
mod test_fixtures;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MatchOp, Matcher, SeriesSource};

    fn up(job: &str) -> Labels {
        Labels::from_pairs([("__name__", "up"), ("job", job)])
    }

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    #[test]
    fn rejects_out_of_order_and_conflicting_duplicates_but_keeps_the_rest() {
        let db = Db::in_memory();
        let out = db
            .append(&[(
                up("a"),
                vec![
                    s(10, 1.0),
                    s(20, 2.0),
                    s(15, 9.0),
                    s(20, 3.0),
                    s(20, 2.0),
                    s(30, 4.0),
                ],
            )])
            .unwrap();
        assert_eq!(out.appended, 3);
        assert_eq!(out.duplicates_ignored, 1);
        assert_eq!(out.rejected.get(&RejectReason::OutOfOrder), Some(&1));
        assert_eq!(
            out.rejected.get(&RejectReason::DuplicateTimestamp),
            Some(&1)
        );
        let got = db.select(&[Matcher::equal("job", "a")], 0, 100).unwrap();
        let values: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(values, vec![(10, 1.0), (20, 2.0), (30, 4.0)]);
    }

    #[test]
    fn select_spans_many_chunks_and_respects_bounds() {
        let db = Db::in_memory();
        let samples: Vec<Sample> = (0..1000).map(|i| s(i * 15_000, i as f64)).collect();
        db.append(&[(up("a"), samples), (up("b"), vec![s(5, 5.0)])])
            .unwrap();
        let got = db
            .select(
                &[Matcher::new(MatchOp::Regex, "job", "a|c").unwrap()],
                15_000 * 500,
                15_000 * 600,
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples.len(), 101);
        assert_eq!(got[0].samples[0].v, 500.0);
        assert_eq!(
            db.label_values("job", &[], i64::MIN, i64::MAX).unwrap(),
            vec!["a", "b"]
        );
        // Without matchers the head's index answers as a whole when it overlaps the range (as
        // in Prometheus); with matchers, each series' own time range counts.
        assert_eq!(
            db.label_values("job", &[], 100_000, i64::MAX).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            db.label_values(
                "job",
                &[Matcher::equal("__name__", "up")],
                100_000,
                i64::MAX
            )
            .unwrap(),
            vec!["a"]
        );
        assert!(db
            .label_values("job", &[], i64::MAX - 1, i64::MAX)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn reopen_replays_exactly_the_acknowledged_samples() {
        let tmp = tempfile::tempdir().unwrap();
        let stale = f64::from_bits(crate::STALE_NAN_BITS);
        {
            let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
            db.append(&[
                (up("a"), vec![s(1, 1.0), s(2, -0.0)]),
                (up("b"), vec![s(1, stale)]),
            ])
            .unwrap();
            // Rejected samples must not reappear after replay.
            db.append(&[(up("a"), vec![s(0, 7.0), s(3, 3.0)])]).unwrap();
        }
        let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
        let got = db
            .select(&[Matcher::equal("__name__", "up")], i64::MIN, i64::MAX)
            .unwrap();
        assert_eq!(got.len(), 2);
        let a: Vec<(i64, u64)> = got[0]
            .samples
            .iter()
            .map(|s| (s.t, s.v.to_bits()))
            .collect();
        assert_eq!(
            a,
            vec![
                (1, 1.0f64.to_bits()),
                (2, (-0.0f64).to_bits()),
                (3, 3.0f64.to_bits())
            ]
        );
        assert_eq!(got[1].samples[0].v.to_bits(), crate::STALE_NAN_BITS);
        // New series after a restart get fresh ids that do not collide.
        db.append(&[(up("c"), vec![s(1, 1.0)])]).unwrap();
        drop(db);
        let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
        assert_eq!(db.series(&[], i64::MIN, i64::MAX).unwrap().len(), 3);
    }
}
