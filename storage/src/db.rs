//! The database: the entry point for writers and readers. It owns the head and the WAL and
//! keeps them consistent: a batch is validated against the head, logged, then applied, all
//! under one append lock, so what the WAL replays is exactly what was acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::head::{check_sample, Head, MemSeries, SampleCheck};
use crate::labels::SeriesLabels;
use crate::metrics::StorageMetrics;
use crate::wal::{Record, Wal};
use crate::{Labels, Matcher, Sample, Series, SeriesSource, StorageError};

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
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            fsync: FsyncPolicy::Always,
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
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::DuplicateTimestamp => "duplicate_timestamp",
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
    head: Head,
    /// `None` for in-memory databases. Also serialises appends.
    wal: Mutex<Option<Wal>>,
    metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    metrics: StorageMetrics,
}

impl Db {
    /// An in-memory database with no WAL (tests and tools).
    pub fn in_memory() -> Db {
        Db {
            dir: None,
            head: Head::new(),
            wal: Mutex::new(None),
            metadata: RwLock::new(BTreeMap::new()),
            metrics: StorageMetrics::default(),
        }
    }

    /// Opens (creating if needed) the database in `dir` and replays its WAL into the head.
    pub fn open(dir: &Path, opts: DbOptions) -> Result<Db, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let head = Head::new();
        let metrics = StorageMetrics::default();
        let mut orphan_samples = 0u64;
        let started = std::time::Instant::now();
        let (wal, stats) = Wal::open(&dir.join("wal"), opts.fsync, |record| match record {
            Record::Series(series) => {
                for (id, labels) in series {
                    head.restore_series(id, labels);
                }
            }
            Record::Samples(samples) => {
                for (id, s) in samples {
                    match head.series(id) {
                        Some(series) => {
                            let ok =
                                check_sample(series.lock().last(), s.t, s.v) == SampleCheck::Ok;
                            if ok {
                                head.append_checked(&series, s.t, s.v);
                            }
                        }
                        None => orphan_samples += 1,
                    }
                }
            }
        })?;
        if orphan_samples > 0 {
            tracing::warn!(
                orphan_samples,
                "wal held samples of series whose records were lost"
            );
        }
        metrics.wal_truncated_bytes.inc_by(stats.truncated_bytes);
        metrics.active_series.set(head.num_series() as i64);
        tracing::info!(
            segments = stats.segments,
            records = stats.records,
            series = head.num_series(),
            samples = head.num_samples(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wal replay done"
        );
        Ok(Db {
            dir: Some(dir.to_path_buf()),
            head,
            wal: Mutex::new(Some(wal)),
            metadata: RwLock::new(BTreeMap::new()),
            metrics,
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }

    /// Appends a batch and returns once it is in the WAL (and fsynced, by policy). Samples of
    /// one series must come in time order; each sample that is out of order or collides with a
    /// stored timestamp is rejected and counted, the rest are stored.
    pub fn append(&self, batch: &[(Labels, Vec<Sample>)]) -> Result<AppendOutcome, StorageError> {
        self.append_series(batch.iter().map(|(l, s)| (l, s.as_slice())))
    }

    /// [`Db::append`] for label sets that may borrow from a request buffer: existing series
    /// are found without allocating.
    pub fn append_series<'a, L: SeriesLabels + 'a>(
        &self,
        batch: impl Iterator<Item = (&'a L, &'a [Sample])>,
    ) -> Result<AppendOutcome, StorageError> {
        let mut wal = self.wal.lock();
        let mut out = AppendOutcome::default();
        let mut new_series: Vec<(u32, Arc<Mutex<MemSeries>>)> = Vec::new();
        let mut accepted: Vec<(u32, Sample)> = Vec::new();
        // The newest sample per series including earlier accepted samples of this batch.
        let mut newest: HashMap<u32, (i64, u64)> = HashMap::new();
        for (labels, samples) in batch {
            let (id, created) = self.head.get_or_create(labels);
            let Some(series) = self.head.series(id) else {
                continue;
            };
            if created {
                new_series.push((id, series.clone()));
            }
            let mut last = match newest.get(&id) {
                Some(l) => Some(*l),
                None => series.lock().last(),
            };
            for s in samples {
                match check_sample(last, s.t, s.v) {
                    SampleCheck::Ok => {
                        accepted.push((id, *s));
                        last = Some((s.t, s.v.to_bits()));
                    }
                    SampleCheck::Identical => out.duplicates_ignored += 1,
                    SampleCheck::OutOfOrder => {
                        *out.rejected.entry(RejectReason::OutOfOrder).or_default() += 1
                    }
                    SampleCheck::DuplicateTimestamp => {
                        *out.rejected
                            .entry(RejectReason::DuplicateTimestamp)
                            .or_default() += 1
                    }
                }
            }
            if let Some(l) = last {
                newest.insert(id, l);
            }
        }
        if let Some(wal) = wal.as_mut() {
            let guards: Vec<_> = new_series.iter().map(|(id, s)| (*id, s.lock())).collect();
            let new_labels: Vec<(u32, &Labels)> =
                guards.iter().map(|(id, g)| (*id, &g.labels)).collect();
            let logged = wal.log(&new_labels, &accepted);
            drop(new_labels);
            drop(guards);
            let (bytes, synced) = logged?;
            self.metrics.wal_bytes_written.inc_by(bytes);
            if synced {
                self.metrics.wal_fsyncs.inc();
            }
        }
        for (id, s) in &accepted {
            if let Some(series) = self.head.series(*id) {
                self.head.append_checked(&series, s.t, s.v);
            }
        }
        drop(wal);
        out.appended = accepted.len();
        self.metrics.samples_appended.inc_by(accepted.len() as u64);
        self.metrics
            .samples_duplicate_ignored
            .inc_by(out.duplicates_ignored as u64);
        for (reason, n) in &out.rejected {
            self.metrics.reject(reason.as_str(), *n as u64);
        }
        self.metrics.series_created.inc_by(new_series.len() as u64);
        self.metrics
            .active_series
            .set(self.head.num_series() as i64);
        Ok(out)
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
        self.head.for_each_labels(|labels| {
            if let Some(n) = labels.metric_name() {
                *by_name.entry(n.to_string()).or_default() += 1;
            }
            for l in labels {
                *pairs.entry((l.name.clone(), l.value.clone())).or_default() += 1;
            }
        });
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

    /// Labels of matching series with data in the range, sorted.
    fn matching_labels(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .head
            .select(matchers)
            .into_iter()
            .filter_map(|s| {
                let s = s.lock();
                s.overlaps(mint, maxt).then(|| s.labels.clone())
            })
            .collect();
        out.sort();
        out
    }

    /// True when a label query can be answered from the postings alone: no matchers and a range
    /// that covers all data in the head.
    fn covers_everything(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> bool {
        matchers.is_empty()
            && self.head.total_ids() == self.head.num_series() as u64
            && self
                .head
                .time_range()
                .is_none_or(|(lo, hi)| mint <= lo && maxt >= hi)
    }
}

impl SeriesSource for Db {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let mut out: Vec<Series> = Vec::new();
        for series in self.head.select(matchers) {
            let s = series.lock();
            if !s.overlaps(mint, maxt) {
                continue;
            }
            let mut samples = Vec::new();
            s.samples_in(mint, maxt, &mut samples);
            if !samples.is_empty() {
                out.push(Series {
                    labels: s.labels.clone(),
                    samples,
                });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = if self.covers_everything(matchers, mint, maxt) {
            self.head.all_label_names()
        } else {
            let set: BTreeSet<String> = self
                .matching_labels(matchers, mint, maxt)
                .iter()
                .flat_map(|l| l.iter().map(|l| l.name.clone()))
                .collect();
            set.into_iter().collect()
        };
        names.sort();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        if self.covers_everything(matchers, mint, maxt) {
            return Ok(self.head.all_label_values(name));
        }
        let set: BTreeSet<String> = self
            .matching_labels(matchers, mint, maxt)
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        Ok(set.into_iter().collect())
    }

    fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self.matching_labels(matchers, mint, maxt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MatchOp;

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
        assert_eq!(
            db.label_values("job", &[], 100_000, i64::MAX).unwrap(),
            vec!["a"]
        );
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
