//! The in-memory head: every recent series with its compressed chunks, and the postings index.
//!
//! Series ids are dense `u32`s handed out in creation order; they are what the WAL and the
//! postings refer to. The index lock is held only to find or create series and to evaluate
//! matchers; sample data sits behind a per-series lock. Chunks are sealed at block-range
//! boundaries, so persisting a range to a block and truncating the head never splits a chunk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

mod histograms;
mod packed_labels;
pub(crate) mod spill;

use histograms::HistogramStore;
use packed_labels::PackedLabels;
pub(crate) use spill::SpillFile;

use crate::block::tombstones::Tombstones;
use crate::chunk::{Chunk, ChunkEncoder, SAMPLES_PER_CHUNK};
use crate::labels::SeriesLabels;
use crate::postings::Postings;
use crate::series_data::SeriesSamples;
use crate::{HistogramSample, Labels, Matcher, Sample};

/// The value of a series' newest sample, as the duplicate check needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LastValue {
    /// A float sample with these value bits.
    Float(u64),
    /// A histogram sample (compared in full when a resend has the same timestamp).
    Histogram,
}

/// The newest sample of a series: its time and value.
pub(crate) type Last = Option<(i64, LastValue)>;

/// How a sample relates to the newest sample of its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SampleCheck {
    Ok,
    OutOfOrder,
    /// Same timestamp, different value.
    DuplicateTimestamp,
    /// Same timestamp and the same value bits: a harmless resend.
    Identical,
    /// Older than the head's minimum valid time (that range is already in a block).
    TooOld,
}

/// A head series: its labels, immutable and readable without locking (lookups compare them),
/// and its sample data behind a mutex.
pub(crate) struct HeadSeries {
    key: PackedLabels,
    data: Mutex<MemSeries>,
    /// The newest sample's time (`i64::MIN` for none), value bits and kind, mirrored from
    /// `data` so appenders, which are serialised by the WAL lock, can check samples without
    /// locking.
    last_t: AtomicI64,
    last_v: AtomicU64,
    last_hist: AtomicBool,
}

impl HeadSeries {
    fn new(labels: &Labels) -> HeadSeries {
        HeadSeries {
            key: PackedLabels::pack(labels),
            data: Mutex::new(MemSeries::new()),
            last_t: AtomicI64::new(i64::MIN),
            last_v: AtomicU64::new(0),
            last_hist: AtomicBool::new(false),
        }
    }

    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, MemSeries> {
        self.data.lock()
    }

    /// The series' labels (materialised from the packed form).
    pub(crate) fn labels(&self) -> Labels {
        self.key.unpack()
    }

    pub(crate) fn has_labels<L: SeriesLabels + ?Sized>(&self, labels: &L) -> bool {
        self.key.equals(labels)
    }

    /// The newest sample, without locking.
    pub(crate) fn last(&self) -> Last {
        let t = self.last_t.load(Ordering::Acquire);
        (t != i64::MIN).then(|| {
            let value = if self.last_hist.load(Ordering::Acquire) {
                LastValue::Histogram
            } else {
                LastValue::Float(self.last_v.load(Ordering::Acquire))
            };
            (t, value)
        })
    }

    fn publish_last(&self, last: Last) {
        if let Some((t, v)) = last {
            match v {
                LastValue::Float(bits) => {
                    self.last_v.store(bits, Ordering::Release);
                    self.last_hist.store(false, Ordering::Release);
                }
                LastValue::Histogram => self.last_hist.store(true, Ordering::Release),
            }
            self.last_t.store(t, Ordering::Release);
        }
    }
}

pub(crate) struct MemSeries {
    sealed: Vec<Chunk>,
    open: ChunkEncoder,
    /// Native histogram samples, sorted by time.
    hists: HistogramStore,
    last: Last,
}

impl MemSeries {
    fn new() -> MemSeries {
        MemSeries {
            sealed: Vec::new(),
            open: ChunkEncoder::default(),
            hists: HistogramStore::default(),
            last: None,
        }
    }

    pub(crate) fn last(&self) -> Last {
        self.last
    }

    /// The newest stored histogram sample if it is at `t`.
    pub(crate) fn histogram_at(&self, t: i64) -> Option<HistogramSample> {
        self.hists.newest().filter(|h| h.t == t)
    }

    fn append_histogram(&mut self, s: HistogramSample, range: i64) {
        self.last = Some((s.t, LastValue::Histogram));
        self.hists.push(s, range);
    }

    /// Appends a sample; returns the bytes of the chunk sealed to make room (0 if none).
    fn append(&mut self, t: i64, v: f64, range: i64) -> usize {
        let crosses =
            !self.open.is_empty() && t.div_euclid(range) != self.open.min_t().div_euclid(range);
        let mut sealed = 0;
        if crosses || self.open.count() >= SAMPLES_PER_CHUNK {
            let chunk = self.open.seal();
            sealed = chunk.data.bytes().len();
            self.sealed.push(chunk);
        }
        self.open.append(t, v);
        self.last = Some((t, LastValue::Float(v.to_bits())));
        sealed
    }

    /// The sealed float chunks, oldest first.
    pub(crate) fn sealed_chunks(&self) -> &[Chunk] {
        &self.sealed
    }

    /// The sealed float chunk starting at `min_t`.
    pub(crate) fn sealed_chunk_mut(&mut self, min_t: i64) -> Option<&mut Chunk> {
        let i = self.sealed.binary_search_by_key(&min_t, |c| c.min_t).ok()?;
        self.sealed.get_mut(i)
    }

    fn min_t(&self) -> Option<i64> {
        let floats = match self.sealed.first() {
            Some(c) => Some(c.min_t),
            None => (!self.open.is_empty()).then(|| self.open.min_t()),
        };
        match (floats, self.hists.min_t()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn has_data(&self) -> bool {
        !self.sealed.is_empty() || !self.open.is_empty() || !self.hists.is_empty()
    }

    fn num_chunks(&self) -> usize {
        self.sealed.len() + usize::from(!self.open.is_empty()) + self.hists.num_chunks()
    }

    /// Appends the histogram samples in `[mint, maxt]` to `out`.
    pub(crate) fn histograms_in(&self, mint: i64, maxt: i64, out: &mut Vec<HistogramSample>) {
        self.hists.samples_in(mint, maxt, out);
    }

    /// Appends float and histogram samples in `[mint, maxt]` to `out`.
    pub(crate) fn data_in(&self, mint: i64, maxt: i64, out: &mut SeriesSamples) {
        self.samples_in(mint, maxt, &mut out.floats);
        self.histograms_in(mint, maxt, &mut out.hists);
    }

    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        match (self.min_t(), self.last) {
            (Some(lo), Some((hi, _))) => lo <= maxt && hi >= mint,
            _ => false,
        }
    }

    /// Appends the samples in `[mint, maxt]` to `out`, decoding only overlapping chunks.
    pub(crate) fn samples_in(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let first = self.sealed.partition_point(|c| c.max_t < mint);
        let last = self.sealed.partition_point(|c| c.min_t <= maxt);
        // An upper bound, so the filtered copies below never regrow `out`.
        let open = if !self.open.is_empty() && self.open.min_t() <= maxt {
            usize::from(self.open.count())
        } else {
            0
        };
        let sealed: usize = self
            .sealed
            .get(first..last.max(first))
            .unwrap_or(&[])
            .iter()
            .map(|c| usize::from(c.count))
            .sum();
        out.reserve(sealed + open);
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

    /// Removes the samples in `[mint, maxt]` by re-encoding the series without them (for
    /// `delete_series`). The newest sample seen (`last`) stays, so later appends are still checked
    /// against it. Returns the number of samples removed.
    fn delete_range(&mut self, mint: i64, maxt: i64, range: i64) -> u64 {
        if !self.overlaps(mint, maxt) {
            return 0;
        }
        self.hists.delete_range(mint, maxt, range) + self.delete_float_range(mint, maxt, range)
    }

    fn delete_float_range(&mut self, mint: i64, maxt: i64, range: i64) -> u64 {
        let mut all = Vec::new();
        self.samples_in(i64::MIN, i64::MAX, &mut all);
        let total = all.len();
        all.retain(|s| s.t < mint || s.t > maxt);
        if all.len() == total {
            return 0;
        }
        let last = self.last;
        self.sealed.clear();
        self.open = ChunkEncoder::default();
        for s in &all {
            let _sealed = self.append(s.t, s.v, range);
        }
        self.last = last;
        (total - all.len()) as u64
    }

    /// Drops chunks that end before `before`; returns the samples dropped.
    fn truncate(&mut self, before: i64) -> u64 {
        let keep_from = self.sealed.partition_point(|c| c.max_t < before);
        let mut dropped: u64 = self.sealed[..keep_from]
            .iter()
            .map(|c| u64::from(c.count))
            .sum();
        self.sealed.drain(..keep_from);
        if !self.open.is_empty() && self.open.max_t() < before {
            dropped += u64::from(self.open.count());
            self.open = ChunkEncoder::default();
        }
        dropped + self.hists.truncate(before)
    }
}

pub(crate) fn check_sample(last: Last, t: i64, v: f64) -> SampleCheck {
    match last {
        Some((lt, _)) if t < lt => SampleCheck::OutOfOrder,
        Some((lt, LastValue::Float(lv))) if t == lt => {
            if lv == v.to_bits() {
                SampleCheck::Identical
            } else {
                SampleCheck::DuplicateTimestamp
            }
        }
        // A float where the series has a histogram at that time.
        Some((lt, LastValue::Histogram)) if t == lt => SampleCheck::DuplicateTimestamp,
        _ => SampleCheck::Ok,
    }
}

/// [`check_sample`] for a histogram; `same` tells whether the newest sample (a histogram at
/// the same timestamp) is bit-identical to it, and is called only then.
pub(crate) fn check_histogram_sample(
    last: Last,
    t: i64,
    same: impl FnOnce() -> bool,
) -> SampleCheck {
    match last {
        Some((lt, _)) if t < lt => SampleCheck::OutOfOrder,
        Some((lt, LastValue::Float(_))) if t == lt => SampleCheck::DuplicateTimestamp,
        Some((lt, LastValue::Histogram)) if t == lt => {
            if same() {
                SampleCheck::Identical
            } else {
                SampleCheck::DuplicateTimestamp
            }
        }
        _ => SampleCheck::Ok,
    }
}

pub(crate) type SeriesRef = Arc<HeadSeries>;

/// A hasher for small integer keys (series ids): one multiplication spreads them over the
/// whole word, which SipHash would do at many times the cost.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A hasher for keys that are already well-mixed hashes ([`crate::labels::SeriesHasher`]).
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type ByHash<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdentityHasher>>;

#[derive(Default)]
struct Index {
    /// Series hash → id of the first series with that hash.
    by_hash: ByHash<u32>,
    /// Further ids for hashes shared by several label sets (practically never populated).
    collisions: ByHash<Vec<u32>>,
    /// Indexed by id; `None` for ids whose series was garbage-collected (or never restored).
    series: Vec<Option<SeriesRef>>,
    live: usize,
    postings: Postings,
}

impl Index {
    fn ids_with_hash(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        self.by_hash
            .get(&hash)
            .copied()
            .into_iter()
            .chain(self.collisions.get(&hash).into_iter().flatten().copied())
    }

    fn find<L: SeriesLabels + ?Sized>(&self, hash: u64, labels: &L) -> Option<(u32, SeriesRef)> {
        self.ids_with_hash(hash).find_map(|id| {
            let s = self.series.get(id as usize)?.as_ref()?;
            s.has_labels(labels).then(|| (id, s.clone()))
        })
    }

    fn add_hash(&mut self, hash: u64, id: u32) {
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(hash).or_default().push(id);
            }
        }
    }

    fn remove_hash(&mut self, hash: u64, id: u32) {
        if self.by_hash.get(&hash) == Some(&id) {
            self.by_hash.remove(&hash);
            if let Some(mut more) = self.collisions.remove(&hash) {
                if let Some(next) = more.pop() {
                    self.by_hash.insert(hash, next);
                }
                if !more.is_empty() {
                    self.collisions.insert(hash, more);
                }
            }
        } else if let Some(more) = self.collisions.get_mut(&hash) {
            more.retain(|&x| x != id);
            if more.is_empty() {
                self.collisions.remove(&hash);
            }
        }
    }

    fn insert(&mut self, id: u32, labels: Labels) -> SeriesRef {
        while self.series.len() < id as usize {
            self.series.push(None);
        }
        self.add_hash(labels.hash64(), id);
        self.postings.add(id, &labels);
        let series = Arc::new(HeadSeries::new(&labels));
        match self.series.get_mut(id as usize) {
            Some(slot) => *slot = Some(series.clone()),
            None => self.series.push(Some(series.clone())),
        }
        self.live += 1;
        series
    }
}

pub(crate) struct Head {
    index: RwLock<Index>,
    /// Chunks never span a multiple of this (the block range).
    chunk_range: i64,
    num_samples: AtomicU64,
    min_t: AtomicI64,
    max_t: AtomicI64,
    /// Samples older than this are refused: their range is already persisted in a block.
    min_valid_t: AtomicI64,
    /// Deletions applied to the head whose samples the WAL may still replay (`db/admin.rs`).
    deletions: Mutex<Tombstones<Labels>>,
    /// Bytes of float chunks sealed since the last spill pass started (`head/spill.rs`).
    sealed_in_memory: AtomicUsize,
}

impl Head {
    pub(crate) fn new(chunk_range: i64) -> Head {
        Head {
            index: RwLock::new(Index::default()),
            chunk_range: chunk_range.max(1),
            num_samples: AtomicU64::new(0),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            min_valid_t: AtomicI64::new(i64::MIN),
            deletions: Mutex::new(Tombstones::default()),
            sealed_in_memory: AtomicUsize::new(0),
        }
    }

    /// Bytes of float chunks sealed in memory since the last spill pass started.
    pub(crate) fn sealed_in_memory(&self) -> usize {
        self.sealed_in_memory.load(Ordering::Relaxed)
    }

    /// Moves the sealed float chunks held in memory into a new spill file at `path`; returns
    /// the bytes moved (see `head/spill.rs`).
    pub(crate) fn spill_sealed(&self, path: &std::path::Path) -> Result<u64, crate::StorageError> {
        self.sealed_in_memory.store(0, Ordering::Relaxed);
        spill::spill(&self.all_series(), path)
    }

    pub(crate) fn num_series(&self) -> usize {
        self.index.read().live
    }

    pub(crate) fn num_samples(&self) -> u64 {
        self.num_samples.load(Ordering::Relaxed)
    }

    pub(crate) fn num_chunks(&self) -> usize {
        self.all_series()
            .iter()
            .map(|(_, s)| s.lock().num_chunks())
            .sum()
    }

    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let lo = self.min_t.load(Ordering::Relaxed);
        let hi = self.max_t.load(Ordering::Relaxed);
        (lo <= hi).then_some((lo, hi))
    }

    pub(crate) fn min_valid_time(&self) -> i64 {
        self.min_valid_t.load(Ordering::SeqCst)
    }

    /// Raises the minimum valid time; never lowers it.
    pub(crate) fn set_min_valid_time(&self, t: i64) {
        self.min_valid_t.fetch_max(t, Ordering::SeqCst);
    }

    /// [`check_sample`] plus the head's minimum valid time.
    pub(crate) fn check(&self, last: Last, t: i64, v: f64) -> SampleCheck {
        if t < self.min_valid_time() {
            return SampleCheck::TooOld;
        }
        check_sample(last, t, v)
    }

    /// [`check_histogram_sample`] plus the head's minimum valid time.
    pub(crate) fn check_histogram(
        &self,
        last: Last,
        t: i64,
        same: impl FnOnce() -> bool,
    ) -> SampleCheck {
        if t < self.min_valid_time() {
            return SampleCheck::TooOld;
        }
        check_histogram_sample(last, t, same)
    }

    /// The series with these labels, creating it if needed: its id, handle, and whether it is
    /// new.
    pub(crate) fn get_or_create<L: SeriesLabels + ?Sized>(
        &self,
        labels: &L,
    ) -> (u32, SeriesRef, bool) {
        let hash = labels.hash64();
        {
            let index = self.index.read();
            if let Some((id, s)) = index.find(hash, labels) {
                return (id, s, false);
            }
        }
        let mut index = self.index.write();
        if let Some((id, s)) = index.find(hash, labels) {
            return (id, s, false);
        }
        let id = index.series.len() as u32;
        let s = index.insert(id, labels.to_labels());
        (id, s, true)
    }

    /// [`Head::get_or_create`] for a whole batch: `out[i]` resolves `batch[i]`.
    ///
    /// Existing series are resolved under one read lock, in passes that each run one kind of
    /// memory access over the whole batch (hash-table probes, then label checks, then handle
    /// clones), so that the processor overlaps the cache misses of different series instead
    /// of waiting for each in turn: with 100k series a remote-write request's series are all
    /// cold. Label sets not found (new series, or a hash shared with another set) go through
    /// [`Head::get_or_create`].
    pub(crate) fn get_or_create_batch<L: SeriesLabels + ?Sized>(
        &self,
        batch: &[&L],
        out: &mut Vec<(u32, SeriesRef, bool)>,
    ) {
        out.clear();
        out.reserve(batch.len());
        let mut missing: Vec<usize> = Vec::new();
        {
            let index = self.index.read();
            let candidates: Vec<Option<u32>> = batch
                .iter()
                .map(|l| index.by_hash.get(&l.hash64()).copied())
                .collect();
            let found: Vec<Option<(u32, &SeriesRef)>> = batch
                .iter()
                .zip(&candidates)
                .map(|(l, c)| {
                    let id = (*c)?;
                    let s = index.series.get(id as usize)?.as_ref()?;
                    s.has_labels(*l).then_some((id, s))
                })
                .collect();
            for (i, f) in found.into_iter().enumerate() {
                match f {
                    Some((id, s)) => out.push((id, s.clone(), false)),
                    None => missing.push(i),
                }
            }
            if missing.is_empty() {
                return;
            }
        }
        // Rare after warm-up: rebuild the output in batch order with the missing ones created.
        let mut resolved = std::mem::take(out).into_iter();
        let mut missing = missing.into_iter().peekable();
        for (i, l) in batch.iter().enumerate() {
            if missing.next_if_eq(&i).is_some() {
                out.push(self.get_or_create(*l));
            } else if let Some(r) = resolved.next() {
                out.push(r);
            }
        }
    }

    /// Recreates a series with the id the WAL recorded for it (a no-op if it exists).
    pub(crate) fn restore_series(&self, id: u32, labels: Labels) {
        let mut index = self.index.write();
        if index.series.get(id as usize).is_some_and(Option::is_some) {
            return;
        }
        index.insert(id, labels);
    }

    pub(crate) fn series(&self, id: u32) -> Option<SeriesRef> {
        self.index.read().series.get(id as usize).cloned().flatten()
    }

    /// Appends one sample that the caller already checked.
    pub(crate) fn append_checked(&self, series: &HeadSeries, t: i64, v: f64) {
        let mut s = series.lock();
        let sealed = s.append(t, v, self.chunk_range);
        series.publish_last(s.last);
        drop(s);
        self.note_sealed(sealed);
        self.note_appended(1, t, t);
    }

    /// Appends checked samples of one series, in time order.
    pub(crate) fn append_run(&self, series: &HeadSeries, samples: impl Iterator<Item = Sample>) {
        let mut s = series.lock();
        let (mut n, mut first, mut last) = (0u64, i64::MAX, i64::MIN);
        let mut sealed = 0;
        for x in samples {
            sealed += s.append(x.t, x.v, self.chunk_range);
            first = first.min(x.t);
            last = last.max(x.t);
            n += 1;
        }
        series.publish_last(s.last);
        drop(s);
        self.note_sealed(sealed);
        if n > 0 {
            self.note_appended(n, first, last);
        }
    }

    /// Appends checked histogram samples of one series, in time order.
    pub(crate) fn append_histogram_run(
        &self,
        series: &HeadSeries,
        samples: impl Iterator<Item = HistogramSample>,
    ) {
        let mut s = series.lock();
        let (mut n, mut first, mut last) = (0u64, i64::MAX, i64::MIN);
        for x in samples {
            first = first.min(x.t);
            last = last.max(x.t);
            s.append_histogram(x, self.chunk_range);
            n += 1;
        }
        series.publish_last(s.last);
        drop(s);
        if n > 0 {
            self.note_appended(n, first, last);
        }
    }

    fn note_sealed(&self, bytes: usize) {
        if bytes > 0 {
            self.sealed_in_memory.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Updates the head-wide counters after appends covering `[lo, hi]`.
    fn note_appended(&self, n: u64, lo: i64, hi: i64) {
        self.num_samples.fetch_add(n, Ordering::Relaxed);
        self.min_t.fetch_min(lo, Ordering::Relaxed);
        self.max_t.fetch_max(hi, Ordering::Relaxed);
    }

    /// Series matching all matchers, in id order.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let index = self.index.read();
        index
            .postings
            .select(matchers)
            .iter()
            .filter_map(|id| index.series.get(id as usize).cloned().flatten())
            .collect()
    }

    /// Every live series with its id.
    pub(crate) fn all_series(&self) -> Vec<(u32, SeriesRef)> {
        let index = self.index.read();
        index
            .series
            .iter()
            .enumerate()
            .filter_map(|(id, s)| s.clone().map(|s| (id as u32, s)))
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

    /// True when the postings cover exactly the live series.
    pub(crate) fn total_ids(&self) -> u64 {
        self.index.read().postings.all().len()
    }

    /// Drops all chunks before `before` and forgets series left with no data whose newest sample
    /// is older than `before`. Returns (samples dropped, series removed).
    pub(crate) fn truncate(&self, before: i64) -> (u64, usize) {
        let mut dropped = 0u64;
        let mut empty: Vec<u32> = Vec::new();
        for (id, series) in self.all_series() {
            let mut s = series.lock();
            dropped += s.truncate(before);
            if !s.has_data() && s.last.is_none_or(|(t, _)| t < before) {
                empty.push(id);
            }
        }
        let mut index = self.index.write();
        let mut removed = 0;
        for id in empty {
            let Some(Some(series)) = index.series.get(id as usize).cloned() else {
                continue;
            };
            let s = series.lock();
            // A sample may have arrived since the scan; keep the series then.
            if s.has_data() {
                continue;
            }
            drop(s);
            let labels = series.labels();
            index.postings.remove(id, &labels);
            index.remove_hash(labels.hash64(), id);
            index.series[id as usize] = None;
            index.live -= 1;
            removed += 1;
        }
        drop(index);
        self.num_samples
            .fetch_sub(dropped.min(self.num_samples()), Ordering::Relaxed);
        self.refresh_min_time();
        (dropped, removed)
    }

    fn refresh_min_time(&self) {
        match self.earliest_sample() {
            Some(t) => self.min_t.store(t, Ordering::Relaxed),
            None => {
                self.min_t.store(i64::MAX, Ordering::Relaxed);
                self.max_t.store(i64::MIN, Ordering::Relaxed);
            }
        }
    }

    /// Every series with exactly these labels (normally at most one).
    pub(crate) fn series_with_labels(&self, labels: &Labels) -> Vec<SeriesRef> {
        let index = self.index.read();
        index
            .ids_with_hash(labels.hash64())
            .filter_map(|id| index.series.get(id as usize).cloned().flatten())
            .filter(|s| s.has_labels(labels))
            .collect()
    }

    /// Removes the samples of `series` in `[mint, maxt]`; returns how many. Call
    /// [`Head::deleted`] once after a batch of deletions.
    pub(crate) fn delete_range(&self, series: &HeadSeries, mint: i64, maxt: i64) -> u64 {
        let removed = series.lock().delete_range(mint, maxt, self.chunk_range);
        self.num_samples
            .fetch_sub(removed.min(self.num_samples()), Ordering::Relaxed);
        removed
    }

    /// Updates the head's time range after deletions.
    pub(crate) fn deleted(&self) {
        self.refresh_min_time();
    }

    /// The deletions the WAL may still replay (see `db/admin.rs`).
    pub(crate) fn deletions(&self) -> parking_lot::MutexGuard<'_, Tombstones<Labels>> {
        self.deletions.lock()
    }

    fn earliest_sample(&self) -> Option<i64> {
        self.all_series()
            .iter()
            .filter_map(|(_, s)| s.lock().min_t())
            .min()
    }
}

#[cfg(test)]
mod batch_tests;
