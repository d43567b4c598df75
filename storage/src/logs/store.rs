//! [`LogStore`]: the log store behind [`LogSource`]. Appends are validated per entry, written
//! to the WAL (fsynced by policy) and only then made visible in the head (per-stream entries in
//! arrival order). [`LogStore::flush`] turns the head into an immutable segment;
//! [`LogStore::maintain`] flushes by size or age, compacts small segments and applies
//! retention. Reads merge head, segments being written, and segments lazily, one decoded block
//! per overlapping source at a time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use crate::labels::is_valid_label_name;
use crate::logs::segment::{self, Segment};
use crate::logs::wal::{self, LogWal};
use crate::logs::{tokens, Direction, LogEntry, LogQuery, LogSource, LogStreamBatch, Needle};
use crate::{FsyncPolicy, Labels, Matcher, StorageError};

/// Settings of a [`LogStore`]. Durations are wall-clock; defaults follow Loki's limits.
#[derive(Clone, Debug)]
pub struct LogStoreOptions {
    /// When the WAL is fsynced (default: before every acknowledgement).
    pub fsync: FsyncPolicy,
    /// Segments whose newest entry is older than this (relative to now) are deleted
    /// (default: none, keep forever).
    pub retention: Option<Duration>,
    /// Oldest segments are deleted while all segments together exceed this many bytes
    /// (default: none).
    pub retention_bytes: Option<u64>,
    /// Longest accepted line in bytes (Loki's `max_line_size`, default 256 KiB).
    pub max_line_bytes: usize,
    /// Entries older than now minus this are refused as `greater_than_max_sample_age`
    /// (Loki's `reject_old_samples_max_age`, default 7 days; `None` accepts any age).
    pub reject_old_max_age: Option<Duration>,
    /// Entries newer than now plus this are refused as `too_far_in_future` (Loki's
    /// `creation_grace_period`, default 10 minutes; `None` accepts any).
    pub creation_grace: Option<Duration>,
    /// Out-of-order entries are accepted unless older than the stream's newest entry minus
    /// this (`too_far_behind`; Loki's `max_chunk_age / 2`, default 1 hour; `None` accepts all).
    pub out_of_order_window: Option<Duration>,
    /// The head is flushed to a segment when its lines and metadata reach this many bytes
    /// (default 128 MiB).
    pub head_max_bytes: usize,
    /// `maintain` flushes a non-empty head at least this often (default 15 minutes).
    pub flush_interval: Duration,
    /// Uncompressed line bytes per block (default 256 KiB): larger compresses better, smaller
    /// decodes less per needle hit (with the segment dictionary, 256 KiB blocks measured
    /// 0.5% smaller than 1 MiB blocks without). A block holds entries of all streams in time
    /// order.
    pub block_bytes: usize,
    /// Segments smaller than this are compacted together once there are
    /// `compact_min_segments` of them (default 16 MiB and 4).
    pub compact_small_bytes: u64,
    pub compact_min_segments: usize,
    /// The clock, in nanoseconds since the epoch (tests substitute their own).
    pub now_ns: fn() -> i64,
}

fn system_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions {
            fsync: FsyncPolicy::Always,
            retention: None,
            retention_bytes: None,
            max_line_bytes: 256 * 1024,
            reject_old_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            creation_grace: Some(Duration::from_secs(600)),
            out_of_order_window: Some(Duration::from_secs(3600)),
            head_max_bytes: 128 << 20,
            flush_interval: Duration::from_secs(15 * 60),
            block_bytes: 256 << 10,
            compact_small_bytes: 16 << 20,
            compact_min_segments: 4,
            now_ns: system_now_ns,
        }
    }
}

impl LogStoreOptions {
    /// Defaults without the time-based refusals (any timestamp, any order): what
    /// [`LogStore::in_memory`] uses, so tests can push fixed historic timestamps.
    pub fn permissive() -> LogStoreOptions {
        LogStoreOptions {
            reject_old_max_age: None,
            creation_grace: None,
            out_of_order_window: None,
            ..LogStoreOptions::default()
        }
    }
}

/// Why entries were refused (Loki's discarded-reason names via [`LogRejectReason::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogRejectReason {
    /// No labels, an invalid or duplicate label name.
    InvalidLabels,
    LineTooLong,
    /// Older than `reject_old_max_age`.
    TooOld,
    TooFarInFuture,
    /// Older than the stream's newest entry minus the out-of-order window.
    TooFarBehind,
}

impl LogRejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LogRejectReason::InvalidLabels => "invalid_labels",
            LogRejectReason::LineTooLong => "line_too_long",
            LogRejectReason::TooOld => "greater_than_max_sample_age",
            LogRejectReason::TooFarInFuture => "too_far_in_future",
            LogRejectReason::TooFarBehind => "too_far_behind",
        }
    }
}

/// Refused entries of one stream for one reason.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRejection {
    pub labels: Labels,
    pub reason: LogRejectReason,
    pub entries: u64,
    /// Line bytes of the refused entries.
    pub bytes: u64,
    /// Loki's message for the first refused entry, e.g. `entry for stream '{a="b"}' has
    /// timestamp too old: …`.
    pub message: String,
}

/// What [`LogStore::append`] stored and refused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogAppendOutcome {
    pub accepted_entries: u64,
    /// Line bytes of the accepted entries.
    pub accepted_bytes: u64,
    /// In request order of streams, one item per (stream, reason).
    pub rejected: Vec<LogRejection>,
}

impl LogAppendOutcome {
    pub fn rejected_entries(&self) -> u64 {
        self.rejected.iter().map(|r| r.entries).sum()
    }
}

/// Loki's index statistics: streams, chunks (blocks; a stream's head entries count as one),
/// entries and line bytes with timestamps in the range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

impl LogStats {
    fn add(&mut self, o: &LogStats) {
        self.streams += o.streams;
        self.chunks += o.chunks;
        self.entries += o.entries;
        self.bytes += o.bytes;
    }
}

/// Sizes of the store for reports: segment files, of which Bloom filters, and the head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStoreSizes {
    pub segments: u64,
    pub segment_bytes: u64,
    pub index_bytes: u64,
    pub head_bytes: u64,
}

struct HeadStream {
    /// Arrival order.
    entries: Vec<LogEntry>,
    min_ts: i64,
    max_ts: i64,
}

/// One generation of recent entries; becomes segment `gen` when flushed.
struct Head {
    gen: u64,
    streams: HashMap<Labels, HeadStream>,
    bytes: usize,
    created: Instant,
}

impl Head {
    fn new(gen: u64) -> Head {
        Head {
            gen,
            streams: HashMap::new(),
            bytes: 0,
            created: Instant::now(),
        }
    }

    fn push(&mut self, labels: &Labels, mut e: LogEntry) {
        if !e.metadata.is_sorted_by(|a, b| a.0 <= b.0) {
            e.metadata.sort();
        }
        self.bytes += e.line.len()
            + e.metadata
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let s = match self.streams.get_mut(labels) {
            Some(s) => s,
            None => self.streams.entry(labels.clone()).or_insert(HeadStream {
                entries: Vec::new(),
                min_ts: i64::MAX,
                max_ts: i64::MIN,
            }),
        };
        s.min_ts = s.min_ts.min(e.ts_ns);
        s.max_ts = s.max_ts.max(e.ts_ns);
        s.entries.push(e);
    }
}

struct Inner {
    head: Head,
    /// Heads being written as segments (still readable).
    frozen: Vec<Arc<Head>>,
    /// Sorted by `seq`.
    segments: Vec<Arc<Segment>>,
    wal: Option<LogWal>,
    next_gen: u64,
    /// Newest timestamp per stream ever accepted (for the out-of-order window).
    stream_max: HashMap<Labels, i64>,
}

/// The log store. `Send + Sync`; share it as `Arc<LogStore>`.
pub struct LogStore {
    dir: Option<PathBuf>,
    opts: LogStoreOptions,
    inner: RwLock<Inner>,
    /// Serialises flushes, compactions and retention.
    maintenance: Mutex<()>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join("segments").join(format!("{seq:020}.seg"))
}

impl LogStore {
    /// An empty store without files ([`LogStoreOptions::permissive`]); `flush` keeps segments
    /// in memory.
    pub fn in_memory() -> LogStore {
        LogStore::in_memory_with(LogStoreOptions::permissive())
    }

    pub fn in_memory_with(opts: LogStoreOptions) -> LogStore {
        LogStore {
            dir: None,
            opts,
            inner: RwLock::new(Inner {
                head: Head::new(1),
                frozen: Vec::new(),
                segments: Vec::new(),
                wal: None,
                next_gen: 2,
                stream_max: HashMap::new(),
            }),
            maintenance: Mutex::new(()),
        }
    }

    /// Opens (creating) the store in `dir`: `segments/`, `wal/`, `quarantine/`. Corrupt
    /// segments are moved to `quarantine/`; segments superseded by a compaction that finished
    /// and WAL files covered by segments are deleted; the rest of the WAL is replayed.
    pub fn open(dir: &Path, opts: LogStoreOptions) -> Result<LogStore, StorageError> {
        let seg_dir = dir.join("segments");
        let wal_dir = dir.join("wal");
        let q_dir = dir.join("quarantine");
        for d in [&seg_dir, &wal_dir, &q_dir] {
            fs::create_dir_all(d).map_err(|e| StorageError::io(d, e))?;
        }
        let mut segments = Vec::new();
        for e in fs::read_dir(&seg_dir).map_err(|e| StorageError::io(&seg_dir, e))? {
            let e = e.map_err(|e| StorageError::io(&seg_dir, e))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
                continue;
            }
            if !name.ends_with(".seg") {
                continue;
            }
            match Segment::open(&path) {
                Ok(s) => segments.push(Arc::new(s)),
                Err(err @ StorageError::Corruption { .. }) => {
                    tracing::error!(segment = %path.display(), error = %err, "corrupt log segment moved to quarantine");
                    let to = q_dir.join(&name);
                    fs::rename(&path, &to).map_err(|e| StorageError::io(&path, e))?;
                }
                Err(err) => return Err(err),
            }
        }
        let covered: BTreeSet<u64> = segments
            .iter()
            .flat_map(|s| s.covers.iter().copied())
            .collect();
        let mut kept = Vec::new();
        for s in segments {
            if covered.contains(&s.seq) {
                if let Some(p) = &s.path {
                    fs::remove_file(p).map_err(|e| StorageError::io(p, e))?;
                }
            } else {
                kept.push(s);
            }
        }
        kept.sort_by_key(|s| s.seq);
        let max_seg = kept
            .iter()
            .map(|s| s.seq)
            .chain(covered.iter().copied())
            .max()
            .unwrap_or(0);
        let mut stream_max: HashMap<Labels, i64> = HashMap::new();
        for s in &kept {
            for b in &s.blocks {
                for p in &b.streams {
                    let l = &s.streams[p.stream as usize];
                    let m = stream_max.entry(l.clone()).or_insert(i64::MIN);
                    *m = (*m).max(b.max_ts);
                }
            }
        }
        let gens = wal::list(&wal_dir)?;
        let next = gens.iter().copied().chain([max_seg]).max().unwrap_or(0) + 1;
        let mut head = Head::new(next);
        for g in gens {
            let p = wal::wal_path(&wal_dir, g);
            if g <= max_seg {
                fs::remove_file(&p).map_err(|e| StorageError::io(&p, e))?;
                continue;
            }
            wal::replay(&p, |b| {
                for e in b.entries {
                    let m = stream_max.entry(b.labels.clone()).or_insert(i64::MIN);
                    *m = (*m).max(e.ts_ns);
                    head.push(&b.labels, e);
                }
            })?;
        }
        let wal = LogWal::create(&wal_dir, next, opts.fsync)?;
        Ok(LogStore {
            dir: Some(dir.to_path_buf()),
            opts,
            inner: RwLock::new(Inner {
                head,
                frozen: Vec::new(),
                segments: kept,
                wal: Some(wal),
                next_gen: next + 1,
                stream_max,
            }),
            maintenance: Mutex::new(()),
        })
    }

    pub fn options(&self) -> &LogStoreOptions {
        &self.opts
    }

    /// Validates every entry, writes the accepted ones to the WAL (fsync by policy) and only
    /// then makes them visible. Refused entries are counted per stream and reason; the rest is
    /// stored (Loki's partial acceptance). An `Err` means nothing of the batch was stored.
    pub fn append(&self, batch: &[LogStreamBatch]) -> Result<LogAppendOutcome, StorageError> {
        let now = (self.opts.now_ns)();
        let dur_ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let oldest_ok = self
            .opts
            .reject_old_max_age
            .map(|d| now.saturating_sub(dur_ns(d)));
        let newest_ok = self
            .opts
            .creation_grace
            .map(|d| now.saturating_add(dur_ns(d)));
        let window = self.opts.out_of_order_window.map(dur_ns);
        let mut out = LogAppendOutcome::default();
        let mut inner = self.inner.write();
        let mut accepted: Vec<(&LogStreamBatch, Vec<usize>)> = Vec::new();
        let mut new_max: HashMap<&Labels, i64> = HashMap::new();
        for b in batch {
            let mut rejections: BTreeMap<LogRejectReason, LogRejection> = BTreeMap::new();
            let mut reject = |reason, e: &LogEntry, msg: &dyn Fn() -> String| {
                let r = rejections.entry(reason).or_insert_with(|| LogRejection {
                    labels: b.labels.clone(),
                    reason,
                    entries: 0,
                    bytes: 0,
                    message: msg(),
                });
                r.entries += 1;
                r.bytes += e.line.len() as u64;
            };
            if let Err(msg) = check_labels(&b.labels) {
                for e in &b.entries {
                    reject(LogRejectReason::InvalidLabels, e, &|| msg.clone());
                }
                out.rejected.extend(rejections.into_values());
                continue;
            }
            let mut max = new_max
                .get(&b.labels)
                .copied()
                .or_else(|| inner.stream_max.get(&b.labels).copied());
            let mut keep = Vec::with_capacity(b.entries.len());
            for (i, e) in b.entries.iter().enumerate() {
                if e.line.len() > self.opts.max_line_bytes {
                    reject(LogRejectReason::LineTooLong, e, &|| {
                        format!(
                            "Max entry size '{}' bytes exceeded for stream '{}' while adding an entry with length '{}' bytes",
                            self.opts.max_line_bytes, b.labels, e.line.len()
                        )
                    });
                } else if oldest_ok.is_some_and(|o| e.ts_ns < o) {
                    reject(LogRejectReason::TooOld, e, &|| {
                        format!(
                            "entry for stream '{}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                            b.labels,
                            fmt_ts(e.ts_ns),
                            fmt_ts(oldest_ok.unwrap_or(0))
                        )
                    });
                } else if newest_ok.is_some_and(|n| e.ts_ns > n) {
                    reject(LogRejectReason::TooFarInFuture, e, &|| {
                        format!(
                            "entry for stream '{}' has timestamp too new: {}",
                            b.labels,
                            fmt_ts(e.ts_ns)
                        )
                    });
                } else if let Some(floor) = window
                    .zip(max)
                    .map(|(w, m)| m.saturating_sub(w))
                    .filter(|&f| e.ts_ns < f)
                {
                    reject(LogRejectReason::TooFarBehind, e, &|| {
                        format!(
                            "entry with timestamp {} ignored, reason: 'entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}',",
                            fmt_ts(e.ts_ns),
                            fmt_ts(e.ts_ns),
                            fmt_ts(floor)
                        )
                    });
                } else {
                    keep.push(i);
                    max = Some(max.map_or(e.ts_ns, |m| m.max(e.ts_ns)));
                }
            }
            out.rejected.extend(rejections.into_values());
            if let Some(m) = max {
                new_max.insert(&b.labels, m);
            }
            if !keep.is_empty() {
                accepted.push((b, keep));
            }
        }
        if accepted.is_empty() {
            return Ok(out);
        }
        if let Some(w) = inner.wal.as_mut() {
            w.log(&accepted)?;
        }
        for (b, keep) in &accepted {
            for &i in keep {
                let e = &b.entries[i];
                out.accepted_entries += 1;
                out.accepted_bytes += e.line.len() as u64;
                inner.head.push(&b.labels, e.clone());
            }
        }
        for (l, m) in new_max {
            match inner.stream_max.get_mut(l) {
                Some(v) => *v = (*v).max(m),
                None => {
                    inner.stream_max.insert(l.clone(), m);
                }
            }
        }
        let full = inner.head.bytes >= self.opts.head_max_bytes;
        drop(inner);
        if full {
            // The batch is durable in the WAL already: a failed flush must not fail the write.
            if let Err(e) = self.flush() {
                tracing::error!(error = %e, "log head flush failed; will retry");
            }
        }
        Ok(out)
    }

    /// Writes the head as a segment now (durable on return) and drops the WAL it covers.
    pub fn flush(&self) -> Result<(), StorageError> {
        let _m = self.maintenance.lock();
        let frozen = {
            let mut inner = self.inner.write();
            if inner.head.streams.is_empty() {
                return Ok(());
            }
            let gen = inner.next_gen;
            if let Some(dir) = &self.dir {
                let new_wal = LogWal::create(&dir.join("wal"), gen, self.opts.fsync)?;
                inner.wal = Some(new_wal);
            }
            inner.next_gen += 1;
            let old = std::mem::replace(&mut inner.head, Head::new(gen));
            let old = Arc::new(old);
            inner.frozen.push(old.clone());
            old
        };
        let mut streams: Vec<(&Labels, Vec<&LogEntry>)> = frozen
            .streams
            .iter()
            .map(|(l, s)| {
                let mut v: Vec<&LogEntry> = s.entries.iter().collect();
                v.sort_by_key(|e| e.ts_ns);
                (l, v)
            })
            .collect();
        streams.sort_by(|a, b| a.0.cmp(b.0));
        let seg = self.write_segment(frozen.gen, &[], &streams)?;
        {
            let mut inner = self.inner.write();
            inner.frozen.retain(|h| !Arc::ptr_eq(h, &frozen));
            insert_sorted(&mut inner.segments, seg);
        }
        if let Some(dir) = &self.dir {
            let wal_dir = dir.join("wal");
            for g in wal::list(&wal_dir)? {
                if g <= frozen.gen {
                    let p = wal::wal_path(&wal_dir, g);
                    fs::remove_file(&p).map_err(|e| StorageError::io(&p, e))?;
                }
            }
        }
        Ok(())
    }

    fn write_segment(
        &self,
        seq: u64,
        covers: &[u64],
        streams: &[(&Labels, Vec<&LogEntry>)],
    ) -> Result<Arc<Segment>, StorageError> {
        let bytes = segment::build(seq, covers, streams, self.opts.block_bytes)?;
        let Some(dir) = &self.dir else {
            return Ok(Arc::new(Segment::from_vec(bytes)?));
        };
        let path = segment_path(dir, seq);
        let tmp = path.with_extension("seg.tmp");
        {
            use std::io::Write;
            let mut f = fs::File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| StorageError::io(&tmp, e))?;
            f.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
        wal::sync_dir(&dir.join("segments"))?;
        Ok(Arc::new(Segment::open(&path)?))
    }

    /// Periodic work: flush a head that is full or older than `flush_interval`, compact small
    /// segments, apply retention.
    pub fn maintain(&self) -> Result<(), StorageError> {
        let flush_due = {
            let inner = self.inner.read();
            !inner.head.streams.is_empty()
                && (inner.head.bytes >= self.opts.head_max_bytes
                    || inner.head.created.elapsed() >= self.opts.flush_interval)
        };
        if flush_due {
            self.flush()?;
        }
        self.compact()?;
        self.apply_retention()
    }

    /// Merges small segments (at least `compact_min_segments` of them) into one.
    fn compact(&self) -> Result<(), StorageError> {
        let _m = self.maintenance.lock();
        let small: Vec<Arc<Segment>> = {
            let inner = self.inner.read();
            let mut total = 0u64;
            inner
                .segments
                .iter()
                .filter(|s| s.size() < self.opts.compact_small_bytes)
                .take_while(|s| {
                    total += s.size();
                    total <= self.opts.compact_small_bytes.saturating_mul(8)
                })
                .cloned()
                .collect()
        };
        if small.len() < self.opts.compact_min_segments.max(2) {
            return Ok(());
        }
        let mut by_stream: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
        for s in &small {
            for i in 0..s.blocks.len() {
                for (st, e) in s.read_block(i, |_, _, _| true)? {
                    by_stream
                        .entry(s.streams[st as usize].clone())
                        .or_default()
                        .push(e);
                }
            }
        }
        let streams: Vec<(&Labels, Vec<&LogEntry>)> = by_stream
            .iter()
            .map(|(l, es)| {
                let mut v: Vec<&LogEntry> = es.iter().collect();
                v.sort_by_key(|e| e.ts_ns);
                (l, v)
            })
            .collect();
        let seq = small.iter().map(|s| s.seq).max().unwrap_or(0);
        let mut covers: Vec<u64> = small
            .iter()
            .flat_map(|s| s.covers.iter().copied().chain([s.seq]))
            .filter(|&c| c != seq)
            .collect();
        covers.sort_unstable();
        covers.dedup();
        let merged = self.write_segment(seq, &covers, &streams)?;
        {
            let mut inner = self.inner.write();
            inner
                .segments
                .retain(|s| !small.iter().any(|x| Arc::ptr_eq(x, s)));
            insert_sorted(&mut inner.segments, merged);
        }
        for s in &small {
            if s.seq != seq {
                if let Some(p) = &s.path {
                    fs::remove_file(p).map_err(|e| StorageError::io(p, e))?;
                }
            }
        }
        Ok(())
    }

    fn apply_retention(&self) -> Result<(), StorageError> {
        let _m = self.maintenance.lock();
        let now = (self.opts.now_ns)();
        let doomed: Vec<Arc<Segment>> = {
            let mut inner = self.inner.write();
            let mut doomed = Vec::new();
            if let Some(r) = self.opts.retention {
                let cutoff = now.saturating_sub(i64::try_from(r.as_nanos()).unwrap_or(i64::MAX));
                let (old, keep): (Vec<_>, Vec<_>) =
                    inner.segments.drain(..).partition(|s| s.max_ts < cutoff);
                inner.segments = keep;
                doomed.extend(old);
            }
            if let Some(limit) = self.opts.retention_bytes {
                let mut total: u64 = inner.segments.iter().map(|s| s.size()).sum();
                while total > limit {
                    let Some((i, _)) = inner
                        .segments
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| (s.max_ts, s.seq))
                    else {
                        break;
                    };
                    let s = inner.segments.remove(i);
                    total -= s.size();
                    doomed.push(s);
                }
            }
            doomed
        };
        for s in doomed {
            if let Some(p) = &s.path {
                tracing::info!(segment = %p.display(), "log segment deleted by retention");
                fs::remove_file(p).map_err(|e| StorageError::io(p, e))?;
            }
        }
        Ok(())
    }

    /// The open segments, oldest first.
    #[cfg(test)]
    pub(crate) fn segments(&self) -> Vec<Arc<Segment>> {
        self.inner.read().segments.clone()
    }

    /// Sizes for reports (`/index/stats` uses [`LogStore::stats`]).
    pub fn sizes(&self) -> LogStoreSizes {
        let inner = self.inner.read();
        LogStoreSizes {
            segments: inner.segments.len() as u64,
            segment_bytes: inner.segments.iter().map(|s| s.size()).sum(),
            index_bytes: inner.segments.iter().map(|s| s.index_bytes()).sum(),
            head_bytes: (inner.head.bytes + inner.frozen.iter().map(|h| h.bytes).sum::<usize>())
                as u64,
        }
    }

    /// Totals over matching streams for `start_ns <= ts < end_ns` (Loki's `/index/stats`).
    pub fn stats(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<LogStats, StorageError> {
        let mut total = LogStats::default();
        for (_, s) in self.stream_stats(matchers, start_ns, end_ns)? {
            total.add(&s);
        }
        Ok(total)
    }

    /// Per matching stream (sorted by labels, only those with entries in range), its
    /// statistics (`streams` is 1): the input of Loki's volume endpoints.
    pub fn stream_stats(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<(Labels, LogStats)>, StorageError> {
        let mut out: BTreeMap<Labels, LogStats> = BTreeMap::new();
        let in_range = |t: i64| t >= start_ns && t < end_ns;
        let segments = {
            let inner = self.inner.read();
            for h in inner.frozen.iter().map(|h| &**h).chain([&inner.head]) {
                for (l, s) in &h.streams {
                    if s.max_ts < start_ns || s.min_ts >= end_ns || !matches_all(matchers, l) {
                        continue;
                    }
                    let mut st = LogStats::default();
                    for e in s.entries.iter().filter(|e| in_range(e.ts_ns)) {
                        st.entries += 1;
                        st.bytes += e.line.len() as u64;
                    }
                    if st.entries > 0 {
                        st.chunks = 1;
                        out.entry(l.clone()).or_default().add(&st);
                    }
                }
            }
            inner.segments.clone()
        };
        for seg in segments {
            let selected: Vec<bool> = seg
                .streams
                .iter()
                .map(|l| matches_all(matchers, l))
                .collect();
            for (i, b) in seg.blocks.iter().enumerate() {
                if b.max_ts < start_ns
                    || b.min_ts >= end_ns
                    || !b.streams.iter().any(|p| selected[p.stream as usize])
                {
                    continue;
                }
                let mut per: BTreeMap<u32, LogStats> = BTreeMap::new();
                if b.min_ts >= start_ns && b.max_ts < end_ns {
                    for p in b.streams.iter().filter(|p| selected[p.stream as usize]) {
                        let st = per.entry(p.stream).or_default();
                        st.entries = u64::from(p.count);
                        st.bytes = p.line_bytes;
                    }
                } else {
                    let entries =
                        seg.read_block(i, |s, t, _| selected[s as usize] && in_range(t))?;
                    for (s, e) in entries {
                        let st = per.entry(s).or_default();
                        st.entries += 1;
                        st.bytes += e.line.len() as u64;
                    }
                }
                for (s, mut st) in per {
                    st.chunks = 1;
                    out.entry(seg.streams[s as usize].clone())
                        .or_default()
                        .add(&st);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|(l, mut s)| {
                s.streams = 1;
                (l, s)
            })
            .collect())
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if let Some(w) = self.inner.get_mut().wal.as_mut() {
            if let Err(e) = w.sync() {
                tracing::error!(error = %e, "log wal sync at shutdown failed");
            }
        }
    }
}

fn insert_sorted(v: &mut Vec<Arc<Segment>>, s: Arc<Segment>) {
    let at = v.partition_point(|x| x.seq < s.seq);
    v.insert(at, s);
}

fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    let mut prev: Option<&str> = None;
    for l in labels.iter() {
        if !is_valid_label_name(&l.name) {
            return Err(format!(
                "invalid label name {:?} in stream '{labels}'",
                l.name
            ));
        }
        if prev == Some(l.name.as_str()) {
            return Err(format!(
                "duplicate label name {:?} in stream '{labels}'",
                l.name
            ));
        }
        prev = Some(&l.name);
    }
    Ok(())
}

/// RFC 3339 UTC with nanoseconds, as Go prints `time.Time` in Loki's messages.
pub(crate) fn fmt_ts(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// True when `line` may contain the needle (exact for case-sensitive needles and for ASCII
/// case-insensitive ones; non-ASCII case-insensitive needles are left to the caller).
fn line_may_match(line: &str, n: &Needle) -> bool {
    if !n.case_insensitive {
        return line.contains(n.text.as_str());
    }
    if !n.text.is_ascii() || !line.is_ascii() {
        return true;
    }
    let needle = n.text.as_bytes();
    needle.is_empty()
        || line
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

pub(crate) enum RunSource {
    /// Entries with their stream rank, in emission order.
    Loaded(Vec<(u32, LogEntry)>),
    /// A segment block, and the rank of each of the segment's streams (`None`: not selected).
    Block(Arc<Segment>, usize, Arc<Vec<Option<u32>>>),
}

pub(crate) struct Run {
    seq: u64,
    min_ts: i64,
    max_ts: i64,
    src: RunSource,
}

/// Heap key: (time key, stream rank, arrival key, pending-before-entries, position).
type Key = (i64, u32, u64, u8, u32);

impl LogStore {
    /// Sources of the query's entries and the sorted labels of their streams (rank order).
    pub(crate) fn plan(&self, q: &LogQuery<'_>) -> (Vec<Labels>, Vec<Run>) {
        let mut hashes: Vec<u64> = Vec::new();
        for n in q.needles {
            hashes.extend(tokens::needle_grams(&n.text, n.case_insensitive));
        }
        let needle_texts: Vec<(&str, bool)> = q
            .needles
            .iter()
            .map(|n| (n.text.as_str(), n.case_insensitive))
            .collect();
        let keep = |e: &LogEntry| {
            e.ts_ns >= q.start_ns
                && e.ts_ns < q.end_ns
                && q.needles.iter().all(|n| line_may_match(&e.line, n))
        };
        let mut head_runs: Vec<(Labels, u64, Vec<LogEntry>)> = Vec::new();
        let mut seg_runs: Vec<(Arc<Segment>, Vec<bool>, Vec<usize>)> = Vec::new();
        {
            let inner = self.inner.read();
            for h in inner.frozen.iter().map(|h| &**h).chain([&inner.head]) {
                for (l, s) in &h.streams {
                    if s.max_ts < q.start_ns || s.min_ts >= q.end_ns || !matches_all(q.matchers, l)
                    {
                        continue;
                    }
                    let mut v: Vec<LogEntry> =
                        s.entries.iter().filter(|e| keep(e)).cloned().collect();
                    if v.is_empty() {
                        continue;
                    }
                    v.sort_by_key(|e| e.ts_ns);
                    head_runs.push((l.clone(), h.gen, v));
                }
            }
            for seg in &inner.segments {
                if seg.max_ts < q.start_ns || seg.min_ts >= q.end_ns {
                    continue;
                }
                let selected: Vec<bool> = seg
                    .streams
                    .iter()
                    .map(|l| matches_all(q.matchers, l))
                    .collect();
                let by_words = seg.word_candidates(&needle_texts);
                let probe = seg.probe_keys(&hashes);
                let blocks: Vec<usize> = seg
                    .blocks
                    .iter()
                    .enumerate()
                    .filter(|(i, b)| {
                        b.max_ts >= q.start_ns
                            && b.min_ts < q.end_ns
                            && b.streams.iter().any(|p| selected[p.stream as usize])
                            && by_words[*i]
                            && seg.block_may_contain_all(*i, &probe)
                    })
                    .map(|(i, _)| i)
                    .collect();
                if !blocks.is_empty() {
                    seg_runs.push((seg.clone(), selected, blocks));
                }
            }
        }
        let mut labels: BTreeSet<Labels> = head_runs.iter().map(|(l, _, _)| l.clone()).collect();
        for (seg, selected, blocks) in &seg_runs {
            let mut present = vec![false; seg.streams.len()];
            for &i in blocks {
                for p in &seg.blocks[i].streams {
                    present[p.stream as usize] = selected[p.stream as usize];
                }
            }
            for (k, l) in seg.streams.iter().enumerate() {
                if present[k] && !labels.contains(l) {
                    labels.insert(l.clone());
                }
            }
        }
        let ranked: Vec<Labels> = labels.into_iter().collect();
        let rank_of = |l: &Labels| ranked.binary_search(l).ok().map(|r| r as u32);
        let mut out: Vec<Run> = Vec::new();
        for (l, gen, v) in head_runs {
            let rank = rank_of(&l).unwrap_or(0);
            out.push(Run {
                seq: gen << 24,
                min_ts: v[0].ts_ns,
                max_ts: v[v.len() - 1].ts_ns,
                src: RunSource::Loaded(v.into_iter().map(|e| (rank, e)).collect()),
            });
        }
        for (seg, selected, blocks) in seg_runs {
            let ranks: Arc<Vec<Option<u32>>> = Arc::new(
                seg.streams
                    .iter()
                    .zip(&selected)
                    .map(|(l, &sel)| if sel { rank_of(l) } else { None })
                    .collect(),
            );
            for i in blocks {
                let b = &seg.blocks[i];
                out.push(Run {
                    seq: (seg.seq << 24) | (i as u64 & 0xff_ffff),
                    min_ts: b.min_ts,
                    max_ts: b.max_ts,
                    src: RunSource::Block(seg.clone(), i, ranks.clone()),
                });
            }
        }
        (ranked, out)
    }

    fn scan_impl(
        &self,
        q: &LogQuery<'_>,
        visit: &mut dyn FnMut(&Labels, &LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        let fwd = q.direction == Direction::Forward;
        let (ranked, mut runs) = self.plan(q);
        let tk = |t: i64| if fwd { t } else { !t };
        let sk = |s: u64| if fwd { s } else { !s };
        let mut heap: BinaryHeap<Reverse<(Key, usize)>> = BinaryHeap::with_capacity(runs.len());
        let mut loaded: Vec<Vec<(u32, LogEntry)>> = Vec::with_capacity(runs.len());
        for (r, run) in runs.iter().enumerate() {
            let t = if fwd { run.min_ts } else { run.max_ts };
            heap.push(Reverse(((tk(t), 0, sk(run.seq), 0, 0), r)));
            loaded.push(Vec::new());
        }
        // Segment blocks in the order the merge will need them: decoded a few at a time in
        // parallel (one batch ahead of the merge), so scans that cannot be pruned use all cores
        // while a query that stops early decodes little beyond what it reads.
        let mut order: Vec<usize> = (0..runs.len())
            .filter(|&r| matches!(runs[r].src, RunSource::Block(..)))
            .collect();
        order.sort_by_key(|&r| {
            let t = if fwd { runs[r].min_ts } else { runs[r].max_ts };
            (tk(t), sk(runs[r].seq))
        });
        let mut order_pos = vec![usize::MAX; runs.len()];
        for (i, &r) in order.iter().enumerate() {
            order_pos[r] = i;
        }
        let mut prefetched: Vec<Option<Vec<(u32, LogEntry)>>> =
            (0..runs.len()).map(|_| None).collect();
        let batch = rayon::current_num_threads().max(1) * 2;
        // Case-sensitive needles: a block whose payload lacks one holds no kept line.
        let must: Vec<memchr::memmem::Finder<'_>> = q
            .needles
            .iter()
            .filter(|n| !n.case_insensitive && !n.text.is_empty())
            .map(|n| memchr::memmem::Finder::new(n.text.as_bytes()))
            .collect();
        let load = |src: &RunSource| -> Result<Vec<(u32, LogEntry)>, StorageError> {
            let RunSource::Block(seg, i, ranks) = src else {
                return Ok(Vec::new());
            };
            Ok(seg
                .read_block_containing(*i, &must, |s, t, line| {
                    ranks[s as usize].is_some()
                        && t >= q.start_ns
                        && t < q.end_ns
                        && q.needles.iter().all(|n| line_may_match(line, n))
                })?
                .into_iter()
                .map(|(s, e)| (ranks[s as usize].unwrap_or(0), e))
                .collect())
        };
        while let Some(Reverse((key, r))) = heap.pop() {
            if key.3 == 0 && prefetched[r].is_none() && order_pos[r] != usize::MAX {
                let from = order_pos[r];
                let todo: Vec<usize> = order[from..(from + batch).min(order.len())]
                    .iter()
                    .copied()
                    .filter(|&x| {
                        prefetched[x].is_none() && matches!(runs[x].src, RunSource::Block(..))
                    })
                    .collect();
                let results: Vec<Result<Vec<(u32, LogEntry)>, StorageError>> = {
                    use rayon::prelude::*;
                    let runs = &runs;
                    todo.par_iter().map(|&x| load(&runs[x].src)).collect()
                };
                for (x, res) in todo.into_iter().zip(results) {
                    prefetched[x] = Some(res?);
                    runs[x].src = RunSource::Loaded(Vec::new());
                }
            }
            let run = &mut runs[r];
            if key.3 == 0 {
                let mut entries = match prefetched[r].take() {
                    Some(v) => v,
                    None => match std::mem::replace(&mut run.src, RunSource::Loaded(Vec::new())) {
                        RunSource::Loaded(v) => v,
                        src @ RunSource::Block(..) => load(&src)?,
                    },
                };
                if entries.is_empty() {
                    continue;
                }
                if !fwd {
                    // Newest first; equal times by stream rank, newest arrival first.
                    entries.reverse();
                    entries.sort_by_key(|(rank, e)| (Reverse(e.ts_ns), *rank));
                }
                let (rank, e) = &entries[0];
                heap.push(Reverse(((tk(e.ts_ns), *rank, sk(run.seq), 1, 0), r)));
                loaded[r] = entries;
                continue;
            }
            let pos = key.4 as usize;
            let entries = &loaded[r];
            let (rank, e) = &entries[pos];
            if !visit(&ranked[*rank as usize], e) {
                return Ok(());
            }
            match entries.get(pos + 1) {
                Some((rank, e)) => heap.push(Reverse((
                    (tk(e.ts_ns), *rank, sk(run.seq), 1, pos as u32 + 1),
                    r,
                ))),
                None => loaded[r] = Vec::new(),
            }
        }
        Ok(())
    }

    fn stream_set(&self, matchers: &[Matcher], start_ns: i64, end_ns: i64) -> BTreeSet<Labels> {
        let mut out = BTreeSet::new();
        let inner = self.inner.read();
        for h in inner.frozen.iter().map(|h| &**h).chain([&inner.head]) {
            for (l, s) in &h.streams {
                if s.max_ts >= start_ns
                    && s.min_ts < end_ns
                    && !out.contains(l)
                    && matches_all(matchers, l)
                    && s.entries
                        .iter()
                        .any(|e| e.ts_ns >= start_ns && e.ts_ns < end_ns)
                {
                    out.insert(l.clone());
                }
            }
        }
        for seg in &inner.segments {
            if seg.max_ts < start_ns || seg.min_ts >= end_ns {
                continue;
            }
            let mut has = vec![false; seg.streams.len()];
            for b in &seg.blocks {
                // Block bounds are exact first/last timestamps, so overlap means an entry in
                // range only when the range covers a bound; otherwise it is a close superset.
                if b.max_ts >= start_ns && b.min_ts < end_ns {
                    for p in &b.streams {
                        has[p.stream as usize] = true;
                    }
                }
            }
            for (i, l) in seg.streams.iter().enumerate() {
                if has[i] && !out.contains(l) && matches_all(matchers, l) {
                    out.insert(l.clone());
                }
            }
        }
        out
    }
}

impl LogSource for LogStore {
    fn streams(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .stream_set(matchers, start_ns, end_ns)
            .into_iter()
            .collect())
    }

    fn scan(
        &self,
        query: &LogQuery<'_>,
        visit: &mut dyn FnMut(&Labels, &LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        self.scan_impl(query, visit)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, StorageError> {
        let names: BTreeSet<String> = self
            .stream_set(matchers, start_ns, end_ns)
            .iter()
            .flat_map(|l| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
            .collect();
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, StorageError> {
        let values: BTreeSet<String> = self
            .stream_set(matchers, start_ns, end_ns)
            .iter()
            .filter_map(|l| l.get(name).map(str::to_owned))
            .collect();
        Ok(values.into_iter().collect())
    }
}
