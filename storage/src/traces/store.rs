//! [`TraceStore`]: WAL → head → columnar blocks, with compaction and retention.
//!
//! Appends are encoded once into a WAL record whose span bodies are copied into the head's
//! per-trace buffers. A *cut* moves traces out of the head (all of them on [`TraceStore::flush`]
//! or when the head is full; idle ones from [`TraceStore::maintain`]): under the WAL and head
//! locks the traces move to a read-only *frozen* head, a new WAL generation is started and
//! the traces that stay are re-logged into it; the frozen traces are then written as a block
//! (temp name, fsync, rename) without blocking appends or reads, and finally older WAL
//! generations are deleted. Replaying a generation twice is harmless: reads drop spans whose
//! span id was already seen in the trace.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use super::block::{Block, BlockWriter, Part};
use super::codec::{get_resource, get_scope, get_span_body, FastSet};
use super::head::{decode_trace, Head, HeadTrace, Summary};
use super::wal::{self, TraceWal};
use super::{
    find_attr, trace_matches, AttrScope, AttrValue, Resource, Scope, Span, SpanBatch, SpanField,
    SpanFilter, Trace, TraceAppendOutcome, TraceAppender, TraceId, TraceSearch, TraceSource,
};
use crate::{FsyncPolicy, StorageError};

/// Tuning of a [`TraceStore`]. Sizes are bytes; times are wall-clock durations.
#[derive(Clone, Debug)]
pub struct TraceStoreOptions {
    /// Blocks whose newest span ended longer ago than this are deleted (`None`: keep forever).
    pub retention: Option<Duration>,
    /// Delete the oldest blocks while all blocks together exceed this (`None`: no limit).
    pub retention_bytes: Option<u64>,
    /// Encoded head size that triggers a cut of the whole head during an append.
    pub max_head_bytes: usize,
    /// A trace may leave the head once it has received no span for this long (Tempo: 10s).
    pub trace_idle: Duration,
    /// `maintain` cuts idle traces into a block at least this often (so a block spans at most
    /// about this much ingest time), or sooner when they reach `block_target_bytes`.
    pub max_block_duration: Duration,
    /// Encoded bytes of idle traces that are worth a block of their own.
    pub block_target_bytes: usize,
    /// Spans per row group (the unit of decompression for a read).
    pub row_group_spans: usize,
    /// zstd level of block columns.
    pub zstd_level: i32,
    /// Adjacent blocks smaller than this are merged by compaction…
    pub compaction_small_bytes: u64,
    /// …into blocks of at most this size (it bounds the memory a compaction uses).
    pub compaction_max_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for TraceStoreOptions {
    fn default() -> TraceStoreOptions {
        TraceStoreOptions {
            retention: Some(Duration::from_secs(14 * 24 * 3600)),
            retention_bytes: None,
            max_head_bytes: 256 << 20,
            trace_idle: Duration::from_secs(10),
            max_block_duration: Duration::from_secs(300),
            block_target_bytes: 64 << 20,
            row_group_spans: 8192,
            zstd_level: 3,
            compaction_small_bytes: 16 << 20,
            compaction_max_bytes: 64 << 20,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// Counters for `/metrics` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceStoreStats {
    pub head_spans: u64,
    pub head_traces: u64,
    /// Encoded bytes held by the head's trace buffers.
    pub head_bytes: u64,
    pub blocks: u64,
    pub block_spans: u64,
    pub block_traces: u64,
    /// Bytes of all block files.
    pub block_bytes: u64,
    /// Blocks moved to `quarantine/` at open because they were unreadable.
    pub quarantined_blocks: u64,
}

/// The trace store (see the module docs). `Send + Sync`; share it as `Arc<TraceStore>`.
pub struct TraceStore {
    dir: Option<PathBuf>,
    opts: TraceStoreOptions,
    wal: Mutex<Option<TraceWal>>,
    head: RwLock<Head>,
    frozen: RwLock<Vec<Arc<Head>>>,
    /// Sorted by sequence number (oldest first).
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serialises cuts, compactions and retention.
    maintenance: Mutex<MaintState>,
    next_seq: AtomicU64,
    opened: Instant,
    quarantined: AtomicU64,
}

struct MaintState {
    last_cut: Instant,
}

fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl TraceStore {
    /// A store without files: appends are not logged, cuts build blocks in memory.
    pub fn in_memory() -> TraceStore {
        TraceStore::new(None, TraceStoreOptions::default())
    }

    /// [`TraceStore::in_memory`] with options (tests use small row groups and limits).
    pub fn in_memory_with(opts: TraceStoreOptions) -> TraceStore {
        TraceStore::new(None, opts)
    }

    fn new(dir: Option<PathBuf>, opts: TraceStoreOptions) -> TraceStore {
        TraceStore {
            dir,
            opts,
            wal: Mutex::new(None),
            head: RwLock::new(Head::default()),
            frozen: RwLock::new(Vec::new()),
            blocks: RwLock::new(Vec::new()),
            maintenance: Mutex::new(MaintState {
                last_cut: Instant::now(),
            }),
            next_seq: AtomicU64::new(1),
            opened: Instant::now(),
            quarantined: AtomicU64::new(0),
        }
    }

    /// Opens (creating if needed) the store in `dir`: `blocks/`, `wal/`, `quarantine/`.
    /// Unreadable blocks are moved to `quarantine/` (logged); blocks that a compacted block
    /// covers are deleted; the WAL is replayed into the head (a torn tail is logged and skipped).
    pub fn open(dir: &Path, opts: TraceStoreOptions) -> Result<TraceStore, StorageError> {
        let blocks_dir = dir.join("blocks");
        let wal_dir = dir.join("wal");
        for d in [dir.to_path_buf(), blocks_dir.clone(), wal_dir.clone()] {
            fs::create_dir_all(&d).map_err(|e| StorageError::io(&d, e))?;
        }
        let store = TraceStore::new(Some(dir.to_path_buf()), opts);
        let mut blocks = Vec::new();
        let mut max_seq = 0u64;
        for e in fs::read_dir(&blocks_dir).map_err(|e| StorageError::io(&blocks_dir, e))? {
            let e = e.map_err(|e| StorageError::io(&blocks_dir, e))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // An interrupted block write: its data is still in the WAL or source blocks.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".trb")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            max_seq = max_seq.max(seq);
            match Block::open(&path, seq) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(err) => {
                    tracing::error!(block = %path.display(), error = %err,
                        "trace block is unreadable; moving it to quarantine");
                    store.quarantine(&path)?;
                }
            }
        }
        let covered: HashSet<u64> = blocks.iter().flat_map(|b| b.covers.clone()).collect();
        blocks.retain(|b| {
            if covered.contains(&b.seq) {
                let _ = fs::remove_file(block_path(&blocks_dir, b.seq));
                false
            } else {
                true
            }
        });
        blocks.sort_by_key(|b| b.seq);
        let gens = wal::list(&wal_dir)?;
        {
            let mut head = store.head.write();
            for &g in &gens {
                wal::replay(&wal::wal_path(&wal_dir, g), |payload, rec| {
                    insert_record(&mut head, payload, rec, 0, true)
                })?;
            }
            // Replayed spans were not summarised: rebuilt when autocomplete first asks.
            head.summary.get_mut().valid = head.traces.is_empty();
        }
        let next_gen = gens.last().map_or(1, |g| g + 1);
        *store.wal.lock() = Some(TraceWal::create(&wal_dir, next_gen, store.opts.fsync)?);
        store.next_seq.store(max_seq + 1, Ordering::SeqCst);
        *store.blocks.write() = blocks;
        Ok(store)
    }

    fn quarantine(&self, path: &Path) -> Result<(), StorageError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let q = dir.join("quarantine");
        fs::create_dir_all(&q).map_err(|e| StorageError::io(&q, e))?;
        let to = q.join(path.file_name().unwrap_or_default());
        fs::rename(path, &to).map_err(|e| StorageError::io(path, e))?;
        self.quarantined.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Writes the whole head as a block now and truncates the WAL; durable on return.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut m = self.maintenance.lock();
        self.cut(&mut m, |_| true)?;
        if let Some(w) = self.wal.lock().as_mut() {
            w.sync()?;
        }
        Ok(())
    }

    /// Periodic work: cut idle traces into a block (when enough of them, or after
    /// `max_block_duration`), compact small adjacent blocks, apply retention.
    pub fn maintain(&self) -> Result<(), StorageError> {
        let mut m = self.maintenance.lock();
        let idle_ms = self.opts.trace_idle.as_millis() as u64;
        let now = self.now_ms();
        let is_idle = move |t: &HeadTrace| now.saturating_sub(t.last_ms) >= idle_ms;
        let idle_bytes: usize = self
            .head
            .read()
            .traces
            .values()
            .filter(|t| is_idle(t))
            .map(|t| t.buf.len())
            .sum();
        if idle_bytes > 0
            && (idle_bytes >= self.opts.block_target_bytes
                || m.last_cut.elapsed() >= self.opts.max_block_duration)
        {
            self.cut(&mut m, is_idle)?;
        }
        if let Some(w) = self.wal.lock().as_mut() {
            w.sync()?;
        }
        self.compact(&mut m)?;
        self.apply_retention(now_unix_ns())?;
        Ok(())
    }

    pub fn stats(&self) -> TraceStoreStats {
        // One lock at a time: `cut` nests frozen inside blocks, so holding both here could
        // deadlock against it.
        let (hs, ht, hb) = {
            let head = self.head.read();
            (head.spans, head.traces.len() as u64, head.bytes as u64)
        };
        let (fs, ft, fb) = self.frozen.read().iter().fold((0, 0, 0), |(s, t, b), f| {
            (s + f.spans, t + f.traces.len() as u64, b + f.bytes as u64)
        });
        let blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        TraceStoreStats {
            head_spans: hs + fs,
            head_traces: ht + ft,
            head_bytes: hb + fb,
            blocks: blocks.len() as u64,
            block_spans: blocks.iter().map(|b| b.spans).sum(),
            block_traces: blocks.iter().map(|b| b.traces).sum(),
            block_bytes: blocks.iter().map(|b| b.bytes).sum(),
            quarantined_blocks: self.quarantined.load(Ordering::Relaxed),
        }
    }

    /// Whether the head's autocomplete summary is current (tests).
    #[cfg(test)]
    pub(crate) fn head_summary_valid(&self) -> bool {
        self.head.read().summary.lock().valid
    }

    /// Whether `tag_values(field, True, range)` is answered from the head's summary (tests).
    #[cfg(test)]
    pub(crate) fn head_summary_answers(&self, field: &SpanField, start: u64, end: u64) -> bool {
        let mut v = BTreeMap::new();
        summary_tag_values(
            &self.head.read(),
            field,
            &SpanFilter::True,
            start,
            end,
            &mut v,
        )
    }

    /// After an append found the head at `max_head_bytes`: cuts all of it now, unless another
    /// writer got there first (the writer pays; memory stays bounded).
    fn cut_full_head(&self) -> Result<(), StorageError> {
        let mut m = self.maintenance.lock();
        let bytes = self.head.read().bytes;
        if bytes >= self.opts.max_head_bytes {
            tracing::info!(bytes, "trace head reached max_head_bytes; cutting a block");
            self.cut(&mut m, |_| true)?;
        }
        Ok(())
    }

    /// Moves the traces `pick` selects out of the head into a new block.
    fn cut(
        &self,
        m: &mut MaintState,
        pick: impl FnMut(&HeadTrace) -> bool,
    ) -> Result<(), StorageError> {
        m.last_cut = Instant::now();
        let (frozen, old_gen) = {
            let mut wal_guard = self.wal.lock();
            let mut head = self.head.write();
            let frozen = Arc::new(head.take(pick));
            if frozen.traces.is_empty() {
                return Ok(());
            }
            let mut old_gen = None;
            if let (Some(dir), Some(w)) = (&self.dir, wal_guard.as_mut()) {
                let wal_dir = dir.join("wal");
                let g = w.generation;
                let mut next = TraceWal::create(&wal_dir, g + 1, self.opts.fsync)?;
                relog_head(&head, &mut next)?;
                next.sync()?;
                *wal_guard = Some(next);
                old_gen = Some(g);
            }
            self.frozen.write().push(frozen.clone());
            (frozen, old_gen)
        };
        let result = self.write_head_block(&frozen);
        let block = match result {
            Ok(b) => b,
            Err(e) => {
                // Keep the data readable (it is still in the older WAL generations).
                tracing::error!(error = %e, "writing a trace block failed; data stays in the WAL");
                return Err(e);
            }
        };
        {
            let mut blocks = self.blocks.write();
            let mut fz = self.frozen.write();
            blocks.push(Arc::new(block));
            blocks.sort_by_key(|b| b.seq);
            fz.retain(|f| !Arc::ptr_eq(f, &frozen));
        }
        if let (Some(dir), Some(g)) = (&self.dir, old_gen) {
            let wal_dir = dir.join("wal");
            for old in wal::list(&wal_dir)? {
                if old <= g {
                    let p = wal::wal_path(&wal_dir, old);
                    fs::remove_file(&p).map_err(|e| StorageError::io(&p, e))?;
                }
            }
            wal::sync_dir(&wal_dir)?;
        }
        Ok(())
    }

    fn write_head_block(&self, frozen: &Head) -> Result<Block, StorageError> {
        let mut ids: Vec<&TraceId> = frozen.traces.keys().collect();
        ids.sort_unstable();
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        self.write_block(seq, &[], |w| {
            for id in ids {
                let Some(t) = frozen.traces.get(id) else {
                    continue;
                };
                // Written from the encoded spans; duplicates (WAL replayed twice) dropped.
                if !w.add_encoded_trace(*id, &t.buf, &frozen.resources, &frozen.scopes)? {
                    tracing::error!(trace = %id, "undecodable head trace skipped");
                }
            }
            Ok(())
        })
    }

    /// Writes a block through `fill` (temp name, fsync, rename, dir fsync) and opens it.
    fn write_block(
        &self,
        seq: u64,
        covers: &[u64],
        fill: impl FnOnce(&mut dyn BlockSink) -> Result<(), StorageError>,
    ) -> Result<Block, StorageError> {
        let Some(dir) = &self.dir else {
            let mut w = BlockWriter::new(Vec::new(), &self.opts)?;
            fill(&mut w)?;
            let bytes = w.finish(seq, covers)?;
            return Block::from_bytes(bytes, seq);
        };
        let blocks_dir = dir.join("blocks");
        let path = block_path(&blocks_dir, seq);
        let tmp = path.with_extension("trb.tmp");
        let file = fs::File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        let mut w = BlockWriter::new(BufWriter::with_capacity(1 << 20, file), &self.opts)?;
        fill(&mut w)?;
        let buf = w.finish(seq, covers)?;
        let file = buf
            .into_inner()
            .map_err(|e| StorageError::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
        wal::sync_dir(&blocks_dir)?;
        Block::open(&path, seq)
    }

    /// Merges runs of adjacent small blocks (one run per call, bounded by
    /// `compaction_max_bytes`), so that traces split by late spans end up in one block.
    fn compact(&self, _m: &mut MaintState) -> Result<(), StorageError> {
        let run: Vec<Arc<Block>> = {
            let blocks = self.blocks.read();
            let mut best: Vec<Arc<Block>> = Vec::new();
            let mut cur: Vec<Arc<Block>> = Vec::new();
            let mut cur_bytes = 0u64;
            for b in blocks.iter() {
                let small = b.bytes < self.opts.compaction_small_bytes;
                if !small || cur_bytes + b.bytes > self.opts.compaction_max_bytes {
                    if cur.len() > best.len() {
                        best = std::mem::take(&mut cur);
                    }
                    cur.clear();
                    cur_bytes = 0;
                }
                if small {
                    cur_bytes += b.bytes;
                    cur.push(b.clone());
                }
            }
            if cur.len() > best.len() {
                best = cur;
            }
            best
        };
        if run.len() < 2 {
            return Ok(());
        }
        let covers: Vec<u64> = run.iter().map(|b| b.seq).collect();
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let merged = self.write_block(seq, &covers, |w| merge_blocks(&run, w))?;
        {
            let mut blocks = self.blocks.write();
            blocks.retain(|b| !covers.contains(&b.seq));
            blocks.push(Arc::new(merged));
            blocks.sort_by_key(|b| b.seq);
        }
        if let Some(dir) = &self.dir {
            let blocks_dir = dir.join("blocks");
            for s in &covers {
                let p = block_path(&blocks_dir, *s);
                fs::remove_file(&p).map_err(|e| StorageError::io(&p, e))?;
            }
            wal::sync_dir(&blocks_dir)?;
        }
        tracing::debug!(merged = covers.len(), seq, "compacted trace blocks");
        Ok(())
    }

    /// Drops blocks older than the retention time, then the oldest while over the size limit.
    /// `now_ns` is the current Unix time in ns (a parameter for tests).
    pub fn apply_retention(&self, now_ns: u64) -> Result<(), StorageError> {
        let mut dropped = Vec::new();
        {
            let mut blocks = self.blocks.write();
            if let Some(ret) = self.opts.retention {
                let cutoff = now_ns.saturating_sub(ret.as_nanos() as u64);
                blocks.retain(|b| {
                    let keep = b.max_time >= cutoff;
                    if !keep {
                        dropped.push(b.seq);
                    }
                    keep
                });
            }
            if let Some(limit) = self.opts.retention_bytes {
                let mut by_age: Vec<(u64, u64, u64)> = blocks
                    .iter()
                    .map(|b| (b.max_time, b.seq, b.bytes))
                    .collect();
                by_age.sort_unstable();
                let mut total: u64 = by_age.iter().map(|x| x.2).sum();
                for (_, seq, bytes) in by_age {
                    if total <= limit {
                        break;
                    }
                    total -= bytes;
                    dropped.push(seq);
                }
                blocks.retain(|b| !dropped.contains(&b.seq));
            }
        }
        if let (Some(dir), false) = (&self.dir, dropped.is_empty()) {
            let blocks_dir = dir.join("blocks");
            for s in &dropped {
                let p = block_path(&blocks_dir, *s);
                fs::remove_file(&p).map_err(|e| StorageError::io(&p, e))?;
            }
            wal::sync_dir(&blocks_dir)?;
            tracing::info!(blocks = dropped.len(), "trace retention deleted blocks");
        }
        Ok(())
    }

    /// Every stored part of a trace, oldest first (blocks by sequence, frozen heads, head).
    /// `known` is a part already decoded from the block with that sequence number.
    fn parts(
        &self,
        id: &TraceId,
        range: Option<(u64, u64)>,
        mut known: Option<(u64, Part)>,
        proj: Option<&BTreeSet<String>>,
    ) -> Result<Vec<Part>, StorageError> {
        let blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        let mut parts = Vec::new();
        for b in &blocks {
            if known.as_ref().is_some_and(|k| k.0 == b.seq) {
                if let Some((_, p)) = known.take() {
                    parts.push(p);
                }
                continue;
            }
            if let Some((s, e)) = range {
                if b.max_time < s || b.min_time > e {
                    continue;
                }
            }
            if let Some(p) = b.trace_part(id, proj)? {
                parts.push(p);
            }
        }
        let frozen: Vec<Arc<Head>> = self.frozen.read().clone();
        for f in &frozen {
            if let Some(p) = head_part(f, id) {
                parts.push(p);
            }
        }
        if let Some(p) = head_part(&self.head.read(), id) {
            parts.push(p);
        }
        Ok(parts)
    }

    /// Assembles a trace from its parts and, when it overlaps the search and matches the
    /// filter, hands it to `visit`. Returns `visit`'s answer (true when not visited).
    fn emit(
        &self,
        id: TraceId,
        known: Option<(u64, Part)>,
        search: &TraceSearch<'_>,
        visit: &mut dyn FnMut(Trace) -> bool,
    ) -> Result<bool, StorageError> {
        Ok(self.prepare(id, known, search, None)?.is_none_or(visit))
    }

    /// The whole trace `id` (see [`TraceStore::parts`]) when it overlaps the search and
    /// matches its filter exactly.
    fn prepare(
        &self,
        id: TraceId,
        known: Option<(u64, Part)>,
        search: &TraceSearch<'_>,
        proj: Option<&BTreeSet<String>>,
    ) -> Result<Option<Trace>, StorageError> {
        let parts = self.parts(&id, None, known, proj)?;
        let Some(trace) = assemble(id, parts) else {
            return Ok(None);
        };
        let (s, e) = trace.time_range();
        if s > search.end_ns || e < search.start_ns || !trace_matches(&trace, search.filter) {
            return Ok(None);
        }
        Ok(Some(trace))
    }

    /// [`TraceSource::search`]; `proj` as in [`Block::trace_part`].
    fn search_with(
        &self,
        search: &TraceSearch<'_>,
        proj: Option<&BTreeSet<String>>,
        visit: &mut dyn FnMut(Trace) -> bool,
    ) -> Result<(), StorageError> {
        let mut seen: HashSet<TraceId> = HashSet::new();
        // Head and frozen heads first (the most recent traces).
        let mut cands = Vec::new();
        TraceStore::head_candidates(&self.head.read(), search, &mut cands);
        for f in self.frozen.read().iter() {
            TraceStore::head_candidates(f, search, &mut cands);
        }
        cands.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in cands {
            if seen.insert(id) && !self.emit(id, None, search, visit)? {
                return Ok(());
            }
        }
        let blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        for b in blocks.iter().rev() {
            if b.max_time < search.start_ns || b.min_time > search.end_ns {
                continue;
            }
            let mut stop = false;
            let seq = b.seq;
            // A trace already visited (from the head or a newer block) is not assembled again.
            let done = seen.clone();
            let prepare = |id: TraceId, part: Part| {
                if done.contains(&id) {
                    return Ok(None);
                }
                self.prepare(id, Some((seq, part)), search, proj)
            };
            b.search_candidates(search, proj, &prepare, &mut |id, trace| {
                if !seen.insert(id) {
                    return Ok(true);
                }
                let go = trace.is_none_or(&mut *visit);
                stop = !go;
                Ok(go)
            })?;
            if stop {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Head candidates: traces with a part overlapping the range where some filter matches.
    fn head_candidates(head: &Head, search: &TraceSearch<'_>, out: &mut Vec<(u64, TraceId)>) {
        for (id, t) in &head.traces {
            if t.min_start > search.end_ns || t.max_end < search.start_ns {
                continue;
            }
            if search.filter.is_empty() {
                out.push((t.min_start, *id));
                continue;
            }
            let Some(spans) = decode_trace(*id, t) else {
                continue;
            };
            let hit = search.filter.iter().any(|f| {
                spans
                    .iter()
                    .any(|(r, _, s)| match head.resources.get(*r as usize) {
                        Some(res) => f.matches(res, s),
                        None => false,
                    })
            });
            if hit {
                out.push((t.min_start, *id));
            }
        }
    }
}

/// Where a block writer puts traces (lets `write_block` hide the sink type).
pub(crate) trait BlockSink {
    /// Adds one trace; traces must come in ascending id order, each once.
    fn add_trace(&mut self, id: TraceId, part: Part) -> Result<(), StorageError>;

    /// Adds one head trace from its buffer (entries of `uvarint resource`, `uvarint scope`,
    /// span body; indices into `resources` and `scopes`), without decoding it; spans with a
    /// span id seen earlier in the buffer are dropped. `Ok(false)` (nothing added) when the
    /// buffer is malformed. Same ordering rule as [`BlockSink::add_trace`].
    fn add_encoded_trace(
        &mut self,
        id: TraceId,
        buf: &[u8],
        resources: &[Arc<Resource>],
        scopes: &[Arc<Scope>],
    ) -> Result<bool, StorageError>;
}

fn block_path(blocks_dir: &Path, seq: u64) -> PathBuf {
    blocks_dir.join(format!("{seq:020}.trb"))
}

/// A span to re-log: trace id, start, end, encoded body.
type RelogSpan<'a> = (TraceId, u64, u64, &'a [u8]);

/// Re-logs every trace still in `head` into a new WAL generation (one record).
fn relog_head(head: &Head, w: &mut TraceWal) -> Result<(), StorageError> {
    if head.traces.is_empty() {
        return Ok(());
    }
    // Group the remaining spans by (resource, scope) so each record batch is one pair.
    let mut groups: BTreeMap<(u32, u32), Vec<RelogSpan<'_>>> = BTreeMap::new();
    for (id, t) in &head.traces {
        super::head::for_each_entry(&t.buf, |r, s, body| {
            // Only the times are needed: a view, not a decoded span.
            let (start, end) = match super::SpanRef::parse(*id, body) {
                Some(sp) => (sp.start_unix_nano, sp.end_unix_nano),
                None => (t.min_start, t.max_end),
            };
            groups
                .entry((r, s))
                .or_default()
                .push((*id, start, end, body));
        });
    }
    let mut buf = Vec::new();
    let mut tmp = Vec::new();
    wal::begin_record(&mut buf, groups.len());
    for ((r, s), spans) in groups {
        let (Some(res), Some(scope)) =
            (head.resources.get(r as usize), head.scopes.get(s as usize))
        else {
            continue;
        };
        tmp.clear();
        super::codec::put_resource(&mut tmp, res);
        put_str_bytes(&mut buf, &tmp);
        tmp.clear();
        super::codec::put_scope(&mut tmp, scope);
        put_str_bytes(&mut buf, &tmp);
        crate::varint::write_uvarint(&mut buf, spans.len() as u64);
        for (id, start, end, body) in spans {
            buf.extend_from_slice(&id.0);
            crate::varint::write_uvarint(&mut buf, start);
            crate::varint::write_uvarint(&mut buf, end);
            put_str_bytes(&mut buf, body);
        }
    }
    wal::seal_record(&mut buf);
    // The caller syncs the new generation before it is used.
    let _unsynced = w.write(&buf)?;
    Ok(())
}

fn put_str_bytes(out: &mut Vec<u8>, b: &[u8]) {
    super::codec::put_bytes(out, b);
}

/// Inserts a parsed WAL record into the head. With `validate`, span bodies are decoded first
/// and a record with an undecodable body is rejected whole (returns false).
fn insert_record(
    head: &mut Head,
    payload: &[u8],
    rec: &[wal::RecBatch],
    now_ms: u64,
    validate: bool,
) -> bool {
    if validate {
        for b in rec {
            let mut r = &payload[b.resource.clone()];
            let mut s = &payload[b.scope.clone()];
            if get_resource(&mut r).is_none() || get_scope(&mut s).is_none() {
                return false;
            }
            for sp in &b.spans {
                let mut body = &payload[sp.body.clone()];
                if get_span_body(&mut body, sp.trace_id).is_none() || !body.is_empty() {
                    return false;
                }
            }
        }
    }
    let Some(pairs) = intern_pairs(head, payload, rec) else {
        return false;
    };
    head.push_record(payload, rec, &pairs, now_ms);
    true
}

/// The head's resource and scope indices of each batch of a record (interning new ones);
/// `None` if one does not decode.
fn intern_pairs(head: &mut Head, payload: &[u8], rec: &[wal::RecBatch]) -> Option<Vec<(u32, u32)>> {
    rec.iter()
        .map(|b| {
            let res_enc = payload.get(b.resource.clone())?;
            let scope_enc = payload.get(b.scope.clone())?;
            let r = head.intern_resource(res_enc, || {
                let mut x = res_enc;
                get_resource(&mut x).map(Arc::new)
            })?;
            let s = head.intern_scope(scope_enc, || {
                let mut x = scope_enc;
                get_scope(&mut x).map(Arc::new)
            })?;
            Some((r, s))
        })
        .collect()
}

fn head_part(head: &Head, id: &TraceId) -> Option<Part> {
    let t = head.traces.get(id)?;
    let spans = decode_trace(*id, t)?;
    Some(
        spans
            .into_iter()
            .filter_map(|(r, s, span)| {
                Some((
                    head.resources.get(r as usize)?.clone(),
                    head.scopes.get(s as usize)?.clone(),
                    span,
                ))
            })
            .collect(),
    )
}

/// Drops spans whose span id was seen earlier in the part (first wins).
pub(crate) fn dedup_part(part: Part) -> Part {
    let mut seen: FastSet<[u8; 8]> = FastSet::default();
    part.into_iter()
        .filter(|(_, _, s)| seen.insert(s.span_id))
        .collect()
}

/// Merges parts (oldest first) into a trace: duplicates by span id dropped (first wins), spans
/// grouped into batches of equal resource and scope.
pub(crate) fn assemble(id: TraceId, parts: Vec<Part>) -> Option<Trace> {
    let mut seen: FastSet<[u8; 8]> = FastSet::default();
    let mut batches: Vec<SpanBatch> = Vec::new();
    for part in parts {
        for (res, scope, span) in part {
            if !seen.insert(span.span_id) {
                continue;
            }
            // Spans of one part share `Arc`s for equal resources and scopes, so a pointer
            // match finds the batch cheaply; equal contents (another part) are compared only
            // when no batch has the very same `Arc`s. At most one batch can match either way.
            let pos = batches
                .iter()
                .position(|b| Arc::ptr_eq(&b.resource, &res) && Arc::ptr_eq(&b.scope, &scope))
                .or_else(|| {
                    batches.iter().position(|b| {
                        (Arc::ptr_eq(&b.resource, &res) || *b.resource == *res)
                            && (Arc::ptr_eq(&b.scope, &scope) || *b.scope == *scope)
                    })
                });
            match pos {
                Some(i) => batches[i].spans.push(span),
                None => batches.push(SpanBatch {
                    resource: res,
                    scope,
                    spans: vec![span],
                }),
            }
        }
    }
    (!batches.is_empty()).then_some(Trace { id, batches })
}

/// K-way merge of the blocks' traces in id order into `w`.
fn merge_blocks(run: &[Arc<Block>], w: &mut dyn BlockSink) -> Result<(), StorageError> {
    struct Cursor {
        block: Arc<Block>,
        next_rg: usize,
        pending: std::collections::VecDeque<(TraceId, Part)>,
    }
    let mut cursors: Vec<Cursor> = run
        .iter()
        .map(|b| Cursor {
            block: b.clone(),
            next_rg: 0,
            pending: Default::default(),
        })
        .collect();
    loop {
        for c in cursors.iter_mut() {
            while c.pending.is_empty() && c.next_rg < c.block.row_groups() {
                c.pending = c.block.decode_row_group(c.next_rg)?.into();
                c.next_rg += 1;
            }
        }
        let Some(min) = cursors
            .iter()
            .filter_map(|c| c.pending.front().map(|p| p.0))
            .min()
        else {
            return Ok(());
        };
        let mut parts = Vec::new();
        for c in cursors.iter_mut() {
            if c.pending.front().map(|p| p.0) == Some(min) {
                if let Some((_, p)) = c.pending.pop_front() {
                    parts.push(p);
                }
            }
        }
        let merged: Part = parts.into_iter().flatten().collect();
        w.add_trace(min, dedup_part(merged))?;
    }
}

impl TraceAppender for TraceStore {
    fn append(&self, batches: Vec<SpanBatch>) -> Result<TraceAppendOutcome, StorageError> {
        let mut out = TraceAppendOutcome::default();
        let mut keeps: Vec<Vec<usize>> = Vec::with_capacity(batches.len());
        for batch in &batches {
            let mut keep = Vec::with_capacity(batch.spans.len());
            for (i, span) in batch.spans.iter().enumerate() {
                if span.trace_id.is_zero() || span.span_id == [0; 8] {
                    out.rejected_spans += 1;
                    if out.errors.len() < 5 {
                        out.errors
                            .push("span with an all-zero trace or span id".into());
                    }
                } else {
                    keep.push(i);
                }
            }
            out.accepted_spans += keep.len() as u64;
            keeps.push(keep);
        }
        if out.accepted_spans == 0 {
            return Ok(out);
        }
        let mut buf = Vec::with_capacity(256 * out.accepted_spans as usize);
        let mut tmp = Vec::new();
        let used = keeps.iter().filter(|k| !k.is_empty()).count();
        wal::begin_record(&mut buf, used);
        for (batch, keep) in batches.iter().zip(&keeps) {
            if !keep.is_empty() {
                wal::encode_batch(&mut buf, batch, keep, &mut tmp);
            }
        }
        wal::seal_record(&mut buf);
        let payload = &buf[wal::FRAME_HEADER..];
        let rec = wal::parse_record(payload).ok_or_else(|| StorageError::Corruption {
            path: PathBuf::from("<trace append>"),
            offset: 0,
            reason: "freshly encoded trace record does not parse".into(),
        })?;
        let (full, ticket) = {
            let mut wal_guard = self.wal.lock();
            let ticket = match wal_guard.as_mut() {
                Some(w) => w.write(&buf)?,
                None => None,
            };
            let mut head = self.head.write();
            let now = self.now_ms();
            // Intern with the batch's own Arcs (no decoding on the hot path).
            let mut ri = 0;
            for (batch, keep) in batches.iter().zip(&keeps) {
                if keep.is_empty() {
                    continue;
                }
                let b = &rec[ri];
                ri += 1;
                let r = head
                    .intern_resource(&payload[b.resource.clone()], || {
                        Some(batch.resource.clone())
                    })
                    .unwrap_or(0);
                let s = head
                    .intern_scope(&payload[b.scope.clone()], || Some(batch.scope.clone()))
                    .unwrap_or(0);
                for sp in &b.spans {
                    head.push(
                        sp.trace_id,
                        r,
                        s,
                        &payload[sp.body.clone()],
                        sp.start,
                        sp.end,
                        now,
                    );
                }
            }
            (head.bytes >= self.opts.max_head_bytes, ticket)
        };
        // Durable before the answer; the fsync is shared with concurrent appends.
        if let Some(t) = ticket {
            t.wait()?;
        }
        if full {
            self.cut_full_head()?;
        }
        Ok(out)
    }

    /// Writes the encoder's frame to the WAL as is and copies its span bodies into the head:
    /// no decoding except for resources and scopes not yet interned.
    fn append_encoded(
        &self,
        spans: super::EncodedSpans,
    ) -> Result<TraceAppendOutcome, StorageError> {
        self.append_record(spans, None)
    }

    /// As `append_encoded`, calling `observe` with views of the record before the append.
    fn append_encoded_observed(
        &self,
        spans: super::EncodedSpans,
        observe: &mut dyn FnMut(&[super::BatchRef<'_>]),
    ) -> Result<TraceAppendOutcome, StorageError> {
        self.append_record(spans, Some(observe))
    }
}

/// What [`TraceAppender::append_encoded_observed`] calls with a record's views.
type Observer<'o> = &'o mut dyn FnMut(&[super::BatchRef<'_>]);

impl TraceStore {
    /// The encoded append: parse the record into views for `observe` (if any) before taking
    /// any lock; under the WAL lock write the frame and, under the head
    /// lock, copy the span bodies in; release both, then wait for the (group-committed) fsync.
    fn append_record(
        &self,
        spans: super::EncodedSpans,
        observe: Option<Observer<'_>>,
    ) -> Result<TraceAppendOutcome, StorageError> {
        let out = spans.outcome();
        if out.accepted_spans == 0 {
            return Ok(out);
        }
        let frame = spans.frame();
        let payload = &frame[wal::FRAME_HEADER..];
        let corrupt = |reason: &str| StorageError::Corruption {
            path: PathBuf::from("<trace append>"),
            offset: 0,
            reason: reason.into(),
        };
        let rec = wal::parse_record(payload)
            .ok_or_else(|| corrupt("encoded trace record does not parse"))?;
        debug_assert!(insert_record(&mut Head::default(), payload, &rec, 0, true));
        if let Some(observe) = observe {
            let views = rec
                .iter()
                .map(|b| {
                    let resource = super::encoder::resource_attrs(&payload[b.resource.clone()])?;
                    let spans = b
                        .spans
                        .iter()
                        .map(|sp| super::SpanRef::parse(sp.trace_id, &payload[sp.body.clone()]))
                        .collect::<Option<Vec<_>>>()?;
                    Some(super::BatchRef { resource, spans })
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| corrupt("encoded span does not parse"))?;
            observe(&views);
        }
        let (full, ticket) = {
            let mut wal_guard = self.wal.lock();
            let ticket = match wal_guard.as_mut() {
                Some(w) => w.write(frame)?,
                None => None,
            };
            let mut head = self.head.write();
            let now = self.now_ms();
            let pairs = intern_pairs(&mut head, payload, &rec)
                .ok_or_else(|| corrupt("encoded resource or scope does not decode"))?;
            head.push_record(payload, &rec, &pairs, now);
            (head.bytes >= self.opts.max_head_bytes, ticket)
        };
        // Durable before the answer; the fsync is shared with concurrent appends.
        if let Some(t) = ticket {
            t.wait()?;
        }
        if full {
            self.cut_full_head()?;
        }
        Ok(out)
    }
}

impl TraceSource for TraceStore {
    fn trace(
        &self,
        id: &TraceId,
        range: Option<(u64, u64)>,
    ) -> Result<Option<Trace>, StorageError> {
        Ok(assemble(*id, self.parts(id, range, None, None)?))
    }

    /// Candidates are traces with a part (in the head or a block row group) that overlaps the
    /// range and has a span matching some filter; each is assembled from all its parts and
    /// checked exactly before `visit`. Known gap: when a trace is split across blocks (late
    /// spans), a part lying wholly outside the range does not make the trace a candidate.
    fn search(
        &self,
        search: &TraceSearch<'_>,
        visit: &mut dyn FnMut(Trace) -> bool,
    ) -> Result<(), StorageError> {
        self.search_with(search, None, visit)
    }

    /// Block parts are decoded with only the span attributes in `span_keys` and those the
    /// filter tests, without events and links; head parts are whole.
    fn search_projected(
        &self,
        search: &TraceSearch<'_>,
        span_keys: &[String],
        visit: &mut dyn FnMut(Trace) -> bool,
    ) -> Result<(), StorageError> {
        let mut keys: BTreeSet<String> = span_keys.iter().cloned().collect();
        for f in search.filter {
            filter_span_keys(f, &mut keys);
        }
        self.search_with(search, Some(&keys), visit)
    }

    fn tag_names(
        &self,
        scope: AttrScope,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let mut names = BTreeSet::new();
        let mut add_head = |head: &Head| {
            if summary_tag_names(head, scope, start_ns, end_ns, &mut names) {
                return;
            }
            for (id, t) in &head.traces {
                if t.min_start > end_ns || t.max_end < start_ns {
                    continue;
                }
                for (r, _, s) in decode_trace(*id, t).unwrap_or_default() {
                    if !span_in_range(&s, start_ns, end_ns) {
                        continue;
                    }
                    if matches!(scope, AttrScope::Span | AttrScope::Any) {
                        for a in &s.attributes {
                            if !names.contains(&a.key) {
                                names.insert(a.key.clone());
                            }
                        }
                    }
                    if matches!(scope, AttrScope::Resource | AttrScope::Any) {
                        if let Some(res) = head.resources.get(r as usize) {
                            for a in &res.attributes {
                                if !names.contains(&a.key) {
                                    names.insert(a.key.clone());
                                }
                            }
                        }
                    }
                }
            }
        };
        add_head(&self.head.read());
        for f in self.frozen.read().iter() {
            add_head(f);
        }
        let blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        for b in &blocks {
            b.tag_names(scope, start_ns, end_ns, &mut names)?;
        }
        Ok(names.into_iter().take(limit).collect())
    }

    fn tag_values(
        &self,
        field: &SpanField,
        filter: &SpanFilter,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<AttrValue>, StorageError> {
        let mut values: BTreeMap<String, AttrValue> = BTreeMap::new();
        let blocks: Vec<Arc<Block>> = self.blocks.read().clone();
        for b in &blocks {
            b.tag_values(field, filter, start_ns, end_ns, &mut values)?;
        }
        let mut add_head = |head: &Head| {
            if summary_tag_values(head, field, filter, start_ns, end_ns, &mut values) {
                return;
            }
            for (id, t) in &head.traces {
                if t.min_start > end_ns || t.max_end < start_ns {
                    continue;
                }
                for (r, _, s) in decode_trace(*id, t).unwrap_or_default() {
                    let Some(res) = head.resources.get(r as usize) else {
                        continue;
                    };
                    if !span_in_range(&s, start_ns, end_ns) || !filter.matches(res, &s) {
                        continue;
                    }
                    if let Some(v) = field_value(field, res, &s) {
                        add_value(&mut values, v);
                    }
                }
            }
        };
        for f in self.frozen.read().iter() {
            add_head(f);
        }
        add_head(&self.head.read());
        Ok(values.into_values().take(limit).collect())
    }
}

/// Runs `f` on the head's autocomplete summary (rebuilding it if stale) when the summary is
/// exact for `[start_ns, end_ns]`; false (nothing done) otherwise.
fn with_summary(head: &Head, start_ns: u64, end_ns: u64, f: impl FnOnce(&Summary) -> bool) -> bool {
    let mut s = head.summary.lock();
    s.catch_up(head);
    s.covers(start_ns, end_ns) && f(&s)
}

/// Resources used by some head span, with their index.
fn used_resources<'a>(
    head: &'a Head,
    s: &'a Summary,
) -> impl Iterator<Item = (u32, &'a Resource)> + 'a {
    s.res_spans
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .filter_map(|(r, _)| Some((r as u32, &**head.resources.get(r)?)))
}

/// `tag_names` over a head from its summary; false when the summary cannot answer.
fn summary_tag_names(
    head: &Head,
    scope: AttrScope,
    start_ns: u64,
    end_ns: u64,
    names: &mut BTreeSet<String>,
) -> bool {
    with_summary(head, start_ns, end_ns, |s| {
        if matches!(scope, AttrScope::Span | AttrScope::Any) {
            for k in s.key_names() {
                if !names.contains(k) {
                    names.insert(k.clone());
                }
            }
        }
        if matches!(scope, AttrScope::Resource | AttrScope::Any) {
            for (_, r) in used_resources(head, s) {
                for a in &r.attributes {
                    if !names.contains(&a.key) {
                        names.insert(a.key.clone());
                    }
                }
            }
        }
        true
    })
}

/// `tag_values` over a head from its summary (unfiltered requests only); false when the
/// summary cannot answer.
fn summary_tag_values(
    head: &Head,
    field: &SpanField,
    filter: &SpanFilter,
    start_ns: u64,
    end_ns: u64,
    values: &mut BTreeMap<String, AttrValue>,
) -> bool {
    if !matches!(filter, SpanFilter::True) {
        return false;
    }
    with_summary(head, start_ns, end_ns, |s| {
        let set = match field {
            SpanField::Kind | SpanField::Status | SpanField::Duration => return true,
            SpanField::Name => Some(&s.names),
            SpanField::StatusMessage => Some(&s.status_messages),
            SpanField::Attr { scope, key } => match scope {
                AttrScope::Resource => None,
                AttrScope::Span | AttrScope::Any => s.key(key).map(|k| &k.values),
            },
        };
        if set.is_some_and(|v| v.overflow) {
            return false;
        }
        if let SpanField::Attr { scope, key } = field {
            if matches!(scope, AttrScope::Resource | AttrScope::Any) {
                for (r, res) in used_resources(head, s) {
                    let all = s.res_spans.get(r as usize).copied().unwrap_or(0);
                    let with_key = s
                        .key(key)
                        .and_then(|k| k.per_resource.get(r as usize))
                        .copied()
                        .unwrap_or(0);
                    // Unscoped: the resource's value counts for spans lacking the key.
                    if *scope == AttrScope::Resource || all > with_key {
                        if let Some(v) = find_attr(&res.attributes, key) {
                            add_value(values, v.clone());
                        }
                    }
                }
            }
        }
        for v in set.into_iter().flat_map(|v| v.values()) {
            add_value(values, v);
        }
        true
    })
}

pub(crate) fn span_in_range(s: &Span, start_ns: u64, end_ns: u64) -> bool {
    s.start_unix_nano <= end_ns && s.end_unix_nano >= start_ns
}

/// The scalar value `field` has on a span, as `tag_values` lists it.
fn field_value(field: &SpanField, res: &Resource, s: &Span) -> Option<AttrValue> {
    match field {
        SpanField::Name => Some(AttrValue::Str(s.name.clone())),
        SpanField::StatusMessage => Some(AttrValue::Str(s.status_message.clone())),
        SpanField::Attr { scope, key } => match scope {
            AttrScope::Span => find_attr(&s.attributes, key).cloned(),
            AttrScope::Resource => find_attr(&res.attributes, key).cloned(),
            AttrScope::Any => find_attr(&s.attributes, key)
                .or_else(|| find_attr(&res.attributes, key))
                .cloned(),
        },
        SpanField::Kind | SpanField::Status | SpanField::Duration => None,
    }
}

/// Adds a scalar value keyed by its display form (the first value per form wins).
pub(crate) fn add_value(values: &mut BTreeMap<String, AttrValue>, v: AttrValue) {
    let key = match &v {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Double(d) => d.to_string(),
        _ => return,
    };
    values.entry(key).or_insert(v);
}

/// Compile-time check that the store can be shared between threads.
const _: fn() = || {
    fn is<T: Send + Sync>() {}
    is::<TraceStore>();
};

/// Span attribute keys a filter tests (span-scoped or unscoped).
fn filter_span_keys(f: &SpanFilter, out: &mut BTreeSet<String>) {
    match f {
        SpanFilter::True => {}
        SpanFilter::And(p) | SpanFilter::Or(p) => p.iter().for_each(|x| filter_span_keys(x, out)),
        SpanFilter::Cond { field, .. } => {
            if let SpanField::Attr {
                scope: AttrScope::Span | AttrScope::Any,
                key,
            } = field
            {
                out.insert(key.clone());
            }
        }
    }
}
