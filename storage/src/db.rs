//! The database: the entry point for writers and readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::{Labels, Matcher, Sample, Series, SeriesSource, StorageError};

/// When the WAL is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before every acknowledgement (the default).
    Always,
    /// fsync at most every interval; a crash can lose acknowledged writes of that window.
    Interval(std::time::Duration),
    /// never fsync explicitly; the OS decides.
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
    /// Samples identical to one already stored (same timestamp and value bits): not errors.
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
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
    metadata: RwLock<BTreeMap<String, MetricMetadata>>,
}

impl Db {
    /// An in-memory database with no WAL (tests and tools).
    pub fn in_memory() -> Db {
        Db {
            dir: None,
            series: RwLock::new(BTreeMap::new()),
            metadata: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn open(dir: &Path, _opts: DbOptions) -> Result<Db, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        Ok(Db {
            dir: Some(dir.to_path_buf()),
            series: RwLock::new(BTreeMap::new()),
            metadata: RwLock::new(BTreeMap::new()),
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Appends a batch. Samples of one series must come in time order within the batch.
    pub fn append(&self, batch: &[(Labels, Vec<Sample>)]) -> Result<AppendOutcome, StorageError> {
        let mut out = AppendOutcome::default();
        let mut map = self.series.write();
        for (labels, samples) in batch {
            let s = map.entry(labels.clone()).or_default();
            for sample in samples {
                match s.last() {
                    Some(last) if last.t > sample.t => {
                        *out.rejected.entry(RejectReason::OutOfOrder).or_default() += 1
                    }
                    Some(last) if last.t == sample.t => {
                        if last.v.to_bits() == sample.v.to_bits() {
                            out.duplicates_ignored += 1
                        } else {
                            *out.rejected.entry(RejectReason::DuplicateTimestamp).or_default() += 1
                        }
                    }
                    _ => {
                        s.push(*sample);
                        out.appended += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn head_stats(&self) -> HeadStats {
        let map = self.series.read();
        let mut st = HeadStats {
            num_series: map.len(),
            ..Default::default()
        };
        for s in map.values() {
            st.num_samples += s.len() as u64;
            if let (Some(f), Some(l)) = (s.first(), s.last()) {
                st.min_time = Some(st.min_time.map_or(f.t, |m| m.min(f.t)));
                st.max_time = Some(st.max_time.map_or(l.t, |m| m.max(l.t)));
            }
        }
        st
    }

    /// Records the metadata of a metric family (the latest report wins).
    pub fn set_metadata(&self, metric_family: &str, metadata: MetricMetadata) {
        self.metadata.write().insert(metric_family.to_string(), metadata);
    }

    /// Metadata by metric family name, optionally of one family only, at most `limit` families.
    pub fn metadata(&self, metric: Option<&str>, limit: Option<usize>) -> BTreeMap<String, MetricMetadata> {
        let map = self.metadata.read();
        map.iter()
            .filter(|(k, _)| metric.is_none_or(|m| m == k.as_str()))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Head statistics and the top `limit` entries of each cardinality list.
    pub fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        use std::collections::{BTreeSet, HashMap};
        let map = self.series.read();
        let mut by_name: HashMap<&str, u64> = HashMap::new();
        let mut values: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        let mut pairs: HashMap<(&str, &str), u64> = HashMap::new();
        for labels in map.keys() {
            if let Some(n) = labels.metric_name() {
                *by_name.entry(n).or_default() += 1;
            }
            for l in labels {
                values.entry(&l.name).or_default().insert(&l.value);
                *pairs.entry((&l.name, &l.value)).or_default() += 1;
            }
        }
        fn top(mut v: Vec<(String, u64)>, limit: usize) -> Vec<(String, u64)> {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(limit);
            v
        }
        let series_count_by_metric_name = top(by_name.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), limit);
        let label_value_count_by_label_name =
            top(values.iter().map(|(k, v)| (k.to_string(), v.len() as u64)).collect(), limit);
        let memory_in_bytes_by_label_name = top(
            values.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.len() as u64).sum())).collect(),
            limit,
        );
        let series_count_by_label_value_pair =
            top(pairs.into_iter().map(|((n, v), c)| (format!("{n}={v}"), c)).collect(), limit);
        TsdbStatus {
            head: self.head_stats(),
            series_count_by_metric_name,
            label_value_count_by_label_name,
            memory_in_bytes_by_label_name,
            series_count_by_label_value_pair,
        }
    }

    fn matching(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Series> {
        let map = self.series.read();
        map.iter()
            .filter(|(l, _)| matchers.iter().all(|m| m.matches_labels(l)))
            .filter_map(|(l, s)| {
                let samples: Vec<Sample> = s.iter().filter(|x| x.t >= mint && x.t <= maxt).copied().collect();
                (!samples.is_empty()).then(|| Series {
                    labels: l.clone(),
                    samples,
                })
            })
            .collect()
    }
}

impl SeriesSource for Db {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Series>, StorageError> {
        Ok(self.matching(matchers, mint, maxt))
    }

    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .matching(matchers, mint, maxt)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> = self
            .matching(matchers, mint, maxt)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, StorageError> {
        Ok(self.matching(matchers, mint, maxt).into_iter().map(|s| s.labels).collect())
    }
}
