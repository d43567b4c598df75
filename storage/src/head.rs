//! The in-memory head: every series with its compressed chunks, and the postings index.
//!
//! Series ids are dense `u32`s handed out in creation order; they are what the WAL and the
//! postings refer to. The index lock is held only to find or create series and to evaluate
//! matchers; sample data sits behind a per-series lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::chunk::{Chunk, ChunkEncoder, SAMPLES_PER_CHUNK};
use crate::labels::SeriesLabels;
use crate::postings::Postings;
use crate::{Labels, Matcher, Sample};

/// How a sample relates to the newest sample of its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SampleCheck {
    Ok,
    OutOfOrder,
    /// Same timestamp, different value.
    DuplicateTimestamp,
    /// Same timestamp and the same value bits: a harmless resend.
    Identical,
}

pub(crate) struct MemSeries {
    pub(crate) labels: Labels,
    sealed: Vec<Chunk>,
    open: ChunkEncoder,
    last: Option<(i64, u64)>,
}

impl MemSeries {
    fn new(labels: Labels) -> MemSeries {
        MemSeries {
            labels,
            sealed: Vec::new(),
            open: ChunkEncoder::default(),
            last: None,
        }
    }

    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.last
    }

    pub(crate) fn append(&mut self, t: i64, v: f64) {
        if self.open.count() >= SAMPLES_PER_CHUNK {
            let chunk = self.open.seal();
            self.sealed.push(chunk);
        }
        self.open.append(t, v);
        self.last = Some((t, v.to_bits()));
    }

    fn min_t(&self) -> Option<i64> {
        match self.sealed.first() {
            Some(c) => Some(c.min_t),
            None => (!self.open.is_empty()).then(|| self.open.min_t()),
        }
    }

    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        match (self.min_t(), self.last) {
            (Some(lo), Some((hi, _))) => lo <= maxt && hi >= mint,
            _ => false,
        }
    }

    /// Appends the samples in `[mint, maxt]` to `out`, decoding only overlapping chunks.
    pub(crate) fn samples_in(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        // Sealed chunks are in time order: skip those that end before the range.
        let first = self.sealed.partition_point(|c| c.max_t < mint);
        for c in &self.sealed[first..] {
            if c.min_t > maxt {
                return;
            }
            out.extend(c.iter().filter(|s| s.t >= mint && s.t <= maxt));
        }
        if !self.open.is_empty() && self.open.min_t() <= maxt && self.open.max_t() >= mint {
            out.extend(self.open.iter().filter(|s| s.t >= mint && s.t <= maxt));
        }
    }
}

pub(crate) fn check_sample(last: Option<(i64, u64)>, t: i64, v: f64) -> SampleCheck {
    match last {
        Some((lt, _)) if t < lt => SampleCheck::OutOfOrder,
        Some((lt, lv)) if t == lt => {
            if lv == v.to_bits() {
                SampleCheck::Identical
            } else {
                SampleCheck::DuplicateTimestamp
            }
        }
        _ => SampleCheck::Ok,
    }
}

#[derive(Default)]
struct Index {
    by_hash: HashMap<u64, Vec<u32>>,
    series: Vec<Arc<Mutex<MemSeries>>>,
    postings: Postings,
}

impl Index {
    fn find<L: SeriesLabels + ?Sized>(&self, hash: u64, labels: &L) -> Option<u32> {
        self.by_hash.get(&hash)?.iter().copied().find(|&id| {
            self.series
                .get(id as usize)
                .is_some_and(|s| labels.equals(&s.lock().labels))
        })
    }
}

#[derive(Default)]
pub(crate) struct Head {
    index: RwLock<Index>,
    num_samples: AtomicU64,
    min_t: AtomicI64,
    max_t: AtomicI64,
}

impl Head {
    pub(crate) fn new() -> Head {
        Head {
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            ..Default::default()
        }
    }

    pub(crate) fn num_series(&self) -> usize {
        self.index.read().series.len()
    }

    pub(crate) fn num_samples(&self) -> u64 {
        self.num_samples.load(Ordering::Relaxed)
    }

    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let lo = self.min_t.load(Ordering::Relaxed);
        let hi = self.max_t.load(Ordering::Relaxed);
        (lo <= hi).then_some((lo, hi))
    }

    /// The id of the series, creating it if needed; the flag tells whether it is new.
    pub(crate) fn get_or_create<L: SeriesLabels + ?Sized>(&self, labels: &L) -> (u32, bool) {
        let hash = labels.hash64();
        if let Some(id) = self.index.read().find(hash, labels) {
            return (id, false);
        }
        let mut index = self.index.write();
        if let Some(id) = index.find(hash, labels) {
            return (id, false);
        }
        let id = index.series.len() as u32;
        self.insert_locked(&mut index, id, labels.to_labels());
        (id, true)
    }

    /// Recreates a series with the id the WAL recorded for it. Ids are dense, so gaps (series
    /// whose record was lost) are filled with empty placeholders that match nothing.
    pub(crate) fn restore_series(&self, id: u32, labels: Labels) {
        let mut index = self.index.write();
        if (id as usize) < index.series.len() {
            return;
        }
        while (index.series.len() as u32) < id {
            index
                .series
                .push(Arc::new(Mutex::new(MemSeries::new(Labels::empty()))));
        }
        self.insert_locked(&mut index, id, labels);
    }

    fn insert_locked(&self, index: &mut Index, id: u32, labels: Labels) {
        index.by_hash.entry(labels.hash64()).or_default().push(id);
        index.postings.add(id, &labels);
        index
            .series
            .push(Arc::new(Mutex::new(MemSeries::new(labels))));
    }

    pub(crate) fn series(&self, id: u32) -> Option<Arc<Mutex<MemSeries>>> {
        self.index.read().series.get(id as usize).cloned()
    }

    /// Appends one sample that the caller already checked with [`check_sample`].
    pub(crate) fn append_checked(&self, series: &Mutex<MemSeries>, t: i64, v: f64) {
        series.lock().append(t, v);
        self.num_samples.fetch_add(1, Ordering::Relaxed);
        self.min_t.fetch_min(t, Ordering::Relaxed);
        self.max_t.fetch_max(t, Ordering::Relaxed);
    }

    /// Series matching all matchers, in id order.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<Arc<Mutex<MemSeries>>> {
        let index = self.index.read();
        index
            .postings
            .select(matchers)
            .iter()
            .filter_map(|id| index.series.get(id as usize).cloned())
            .collect()
    }

    /// All label names present in the index, unsorted.
    pub(crate) fn all_label_names(&self) -> Vec<String> {
        self.index
            .read()
            .postings
            .names()
            .map(str::to_string)
            .collect()
    }

    /// All values of a label in the index, sorted.
    pub(crate) fn all_label_values(&self, name: &str) -> Vec<String> {
        self.index
            .read()
            .postings
            .values(name)
            .map(|(v, _)| v.to_string())
            .collect()
    }

    /// Visits every series' labels.
    pub(crate) fn for_each_labels(&self, mut f: impl FnMut(&Labels)) {
        let series: Vec<Arc<Mutex<MemSeries>>> = self.index.read().series.clone();
        for s in series {
            let s = s.lock();
            if !s.labels.is_empty() {
                f(&s.labels);
            }
        }
    }

    /// True when the index covers all series, i.e. `select(&[])` would return everything.
    pub(crate) fn total_ids(&self) -> u64 {
        self.index.read().postings.all().len()
    }
}
