//! Background work on the database: persisting old head data as blocks (and checkpointing the
//! WAL behind it), compacting blocks into larger ones, and enforcing retention. Each step keeps
//! the on-disk state valid at every instant: new blocks appear by rename, superseded blocks are
//! deleted only after their replacement is visible and their last reader is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::Db;
use crate::block::writer::{write_block, BlockPlan};
use crate::block::{new_block_id, Block, PageCache};
use crate::metrics::StorageMetrics;
use crate::{wal, Labels, StorageError};

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub blocks_cut: usize,
    pub blocks_compacted: usize,
    pub blocks_deleted: usize,
}

fn blocks_dir(dir: &Path) -> PathBuf {
    dir.join("blocks")
}

/// Opens every block under `<dir>/blocks`: removes unfinished `*.tmp` directories, moves
/// corrupt blocks to `<dir>/quarantine/` (logged and counted), and deletes blocks that a
/// compacted block lists as its parents.
pub(super) fn open_blocks(
    dir: &Path,
    metrics: &StorageMetrics,
) -> Result<Vec<Arc<Block>>, StorageError> {
    let root = blocks_dir(dir);
    std::fs::create_dir_all(&root).map_err(|e| StorageError::io(&root, e))?;
    let mut blocks = Vec::new();
    let mut unreadable: Vec<(PathBuf, StorageError)> = Vec::new();
    let entries = std::fs::read_dir(&root).map_err(|e| StorageError::io(&root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(&root, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.extension().is_some_and(|e| e == "tmp") {
            tracing::info!(dir = %path.display(), "removing unfinished block");
            std::fs::remove_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => unreadable.push((path, e)),
        }
    }
    let parents: BTreeSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.parents.clone())
        .collect();
    for (path, e) in unreadable {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if parents.contains(&name) {
            // A superseded block whose deletion was interrupted: its data is in the compacted
            // block, so it is removed, not reported as corruption.
            tracing::info!(block = %name, "removing partly deleted superseded block");
            std::fs::remove_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
            continue;
        }
        let quarantine = dir.join("quarantine");
        std::fs::create_dir_all(&quarantine).map_err(|e| StorageError::io(&quarantine, e))?;
        let dest = quarantine.join(&name);
        tracing::error!(block = %path.display(), moved_to = %dest.display(), error = %e, "block is unreadable; moved aside, the rest stays queryable");
        std::fs::rename(&path, &dest).map_err(|e| StorageError::io(&dest, e))?;
        metrics.blocks_quarantined.inc();
    }
    blocks.retain(|b| {
        let superseded = parents.contains(&b.meta().ulid);
        if superseded {
            tracing::info!(block = %b.meta().ulid, "removing block superseded by a compacted one");
            b.mark_obsolete();
        }
        !superseded
    });
    blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    Ok(blocks)
}

impl Db {
    /// One pass of background work: cut head ranges that are old enough into blocks, compact,
    /// apply retention. Cheap when there is nothing to do.
    pub fn maintain(&self) -> Result<MaintenanceReport, StorageError> {
        let mut report = MaintenanceReport::default();
        let Some(dir) = self.dir.clone() else {
            return Ok(report);
        };
        let _guard = self.maintenance.lock();
        let range = self.opts.block_range_ms;
        // The head keeps one and a half ranges so that late samples of a range still land
        // before it is cut.
        while let Some((lo, hi)) = self.head.time_range() {
            if hi - lo < range + range / 2 {
                break;
            }
            let start = lo.div_euclid(range) * range;
            let end = start + range;
            if self.persist_range(&dir, start, end)? {
                report.blocks_cut += 1;
            }
            self.truncate_head(&dir, end)?;
            // Windows the cut just closed are merged now, so that a long backlog of cuts
            // (a burst of old data) does not keep compaction waiting behind it.
            self.compact_closed(&dir, &mut report);
        }
        self.compact_closed(&dir, &mut report);
        report.blocks_deleted = self.apply_retention()?;
        Ok(report)
    }

    /// Runs every compaction that is due; a failure is logged and left for the next pass.
    fn compact_closed(&self, dir: &Path, report: &mut MaintenanceReport) {
        while let Some(group) = self.plan_compaction() {
            match self.compact(dir, &group) {
                Ok(()) => report.blocks_compacted += group.len(),
                // The corrupt block is out of the way now; plan again without it.
                Err(e) if self.quarantine_corrupt(&e) => continue,
                Err(e) => {
                    // Retention must still run, or the disk would grow without bound.
                    tracing::error!(error = %e, "compaction failed; will retry next pass");
                    break;
                }
            }
        }
    }

    /// If `err` is corruption inside a loaded block, moves that block to `<data>/quarantine/`
    /// (logged and counted) so that the rest stays queryable and maintenance can proceed.
    /// Queries already holding the block finish on its mapping. Returns whether it did.
    pub(super) fn quarantine_corrupt(&self, err: &StorageError) -> bool {
        let StorageError::Corruption { path, .. } = err else {
            return false;
        };
        let Some(dir) = &self.dir else {
            return false;
        };
        let mut blocks = self.blocks.write();
        let Some(pos) = blocks.iter().position(|b| path.starts_with(b.dir())) else {
            return false;
        };
        let block = blocks.remove(pos);
        self.metrics.blocks_loaded.set(blocks.len() as i64);
        drop(blocks);
        let quarantine = dir.join("quarantine");
        let dest = quarantine.join(&block.meta().ulid);
        let moved =
            std::fs::create_dir_all(&quarantine).and_then(|_| std::fs::rename(block.dir(), &dest));
        match moved {
            Ok(()) => {
                tracing::error!(block = %block.meta().ulid, moved_to = %dest.display(), error = %err, "block is corrupt; moved aside, the rest stays queryable")
            }
            Err(e) => {
                tracing::error!(block = %block.meta().ulid, error = %err, move_error = %e, "block is corrupt and could not be moved aside; it is no longer queried")
            }
        }
        self.metrics.blocks_quarantined.inc();
        true
    }

    /// Persists everything in the head into blocks now and truncates the head and WAL behind
    /// them; returns when the blocks are durable. Samples older than the newest flushed one are
    /// refused afterwards (their range is closed).
    pub fn flush(&self) -> Result<MaintenanceReport, StorageError> {
        let mut report = MaintenanceReport::default();
        let Some(dir) = self.dir.clone() else {
            return Ok(report);
        };
        let _guard = self.maintenance.lock();
        let Some((lo, hi)) = self.head.time_range() else {
            return Ok(report);
        };
        let range = self.opts.block_range_ms;
        let end = hi + 1;
        if end - lo <= self.opts.max_block_range_ms {
            // One block for the whole head: one index instead of one per aligned window. It is
            // not aligned, so compaction later merges it at the first level whose aligned
            // window contains it.
            if self.persist_range(&dir, lo, end)? {
                report.blocks_cut += 1;
            }
        } else {
            let mut start = lo.div_euclid(range) * range;
            while start < end {
                let window_end = (start + range).min(end);
                if self.persist_range(&dir, start, window_end)? {
                    report.blocks_cut += 1;
                }
                start += range;
            }
        }
        self.truncate_head(&dir, end)?;
        Ok(report)
    }

    /// Writes the head's samples in `[start, end)` as a level-1 block. From here on the head
    /// refuses samples before `end`; appends hold the WAL lock while validating, so once the
    /// minimum is raised under it, every accepted sample before `end` is already in the head.
    fn persist_range(&self, dir: &Path, start: i64, end: i64) -> Result<bool, StorageError> {
        {
            let _wal = self.wal.lock();
            self.head.set_min_valid_time(end);
        }
        let written = self.write_head_range(&blocks_dir(dir), start, end)?;
        let Some(meta) = written else {
            return Ok(false);
        };
        let block = Arc::new(Block::open(&blocks_dir(dir).join(&meta.ulid))?);
        tracing::info!(block = %meta.ulid, min_time = meta.min_time, max_time = meta.max_time, series = meta.stats.num_series, samples = meta.stats.num_samples, bytes = meta.stats.num_bytes, "persisted head range as a block");
        self.insert_blocks(vec![block], &[]);
        self.metrics.blocks_cut.inc();
        Ok(true)
    }

    /// Writes the head's samples in `[start, end)` as a level-1 block under `blocks_dir`
    /// (`None` when there are none). Used for cuts, flushes and snapshots.
    pub(super) fn write_head_range(
        &self,
        blocks_dir: &Path,
        start: i64,
        end: i64,
    ) -> Result<Option<crate::BlockMeta>, StorageError> {
        let mut series: Vec<(Labels, crate::head::SeriesRef)> = self
            .head
            .all_series()
            .into_iter()
            .filter_map(|(_, s)| {
                let keep = s.lock().overlaps(start, end - 1);
                keep.then(|| (s.labels(), s))
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let labels: Vec<Labels> = series.iter().map(|s| s.0.clone()).collect();
        let id = new_block_id();
        let plan = BlockPlan {
            id: id.clone(),
            min_time: start,
            max_time: end,
            level: 1,
            sources: vec![id],
            parents: vec![],
            zstd_level: self.opts.zstd_level,
        };
        write_block(blocks_dir, &plan, &labels, |i, out| {
            if let Some((_, s)) = series.get(i) {
                s.lock().data_in(start, end - 1, out);
            }
            Ok(())
        })
    }

    /// Drops head data before `before` (now in blocks) and checkpoints the WAL so it no longer
    /// holds it.
    fn truncate_head(&self, dir: &Path, before: i64) -> Result<(), StorageError> {
        let (upto, live) = {
            let mut wal = self.wal.lock();
            // Under the WAL lock no append is between validation and application, so no series
            // about to receive a sample is garbage-collected.
            self.head_truncations
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (dropped, removed) = self.head.truncate(before);
            tracing::debug!(dropped, removed, "head truncated");
            let mut live = RoaringBitmap::new();
            for (id, _) in self.head.all_series() {
                live.insert(id);
            }
            let Some(w) = wal.as_mut() else {
                return Ok(());
            };
            let upto = w.current_segment();
            w.rotate()?;
            (upto, live)
        };
        self.metrics
            .active_series
            .set(self.head.num_series() as i64);
        let bytes = wal::write_checkpoint(&dir.join("wal"), upto, &live, before)?;
        tracing::info!(
            upto_segment = upto,
            checkpoint_bytes = bytes,
            "wal checkpoint written"
        );
        // The WAL no longer replays samples before `before`: their head deletions can go.
        self.prune_head_tombstones(dir, before)
    }

    pub(super) fn insert_blocks(&self, new: Vec<Arc<Block>>, replaced: &[String]) {
        let mut blocks = self.blocks.write();
        blocks.retain(|b| {
            let gone = replaced.contains(&b.meta().ulid);
            if gone {
                b.mark_obsolete();
            }
            !gone
        });
        blocks.extend(new);
        blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        self.metrics.blocks_loaded.set(blocks.len() as i64);
    }

    /// The next group of blocks to merge: blocks whose time ranges overlap first, then two or
    /// more blocks inside one aligned window of the next level (3×, 12×, … the block range),
    /// once the head no longer accepts samples for that window.
    fn plan_compaction(&self) -> Option<Vec<Arc<Block>>> {
        let blocks = self.blocks.read().clone();
        let mut i = 0;
        while i + 1 < blocks.len() {
            let mut end = blocks[i].meta().max_time;
            let mut j = i + 1;
            while j < blocks.len() && blocks[j].meta().min_time < end {
                end = end.max(blocks[j].meta().max_time);
                j += 1;
            }
            if j - i >= 2 {
                return Some(blocks[i..j].to_vec());
            }
            i = j;
        }
        let closed_before = self.head.min_valid_time();
        let mut window = self.opts.block_range_ms;
        let mut levels = Vec::new();
        while window <= self.opts.max_block_range_ms {
            levels.push(window);
            window *= if levels.len() == 1 { 3 } else { 4 };
        }
        for level in levels {
            let mut k = 0;
            while k < blocks.len() {
                let w = blocks[k].meta().min_time.div_euclid(level);
                let (w_start, w_end) = (w * level, w * level + level);
                let members: Vec<Arc<Block>> = blocks
                    .iter()
                    .filter(|b| b.meta().min_time >= w_start && b.meta().max_time <= w_end)
                    .cloned()
                    .collect();
                if members.len() >= 2 && w_end <= closed_before {
                    return Some(members);
                }
                k += members.len().max(1);
            }
        }
        None
    }

    /// Merges `group` into one block, streaming one series at a time.
    fn compact(&self, dir: &Path, group: &[Arc<Block>]) -> Result<(), StorageError> {
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        for b in group {
            for ordinal in 0..b.n_series() as u32 {
                all.insert(b.series(ordinal)?.0);
            }
        }
        let labels: Vec<Labels> = all.into_iter().collect();
        let id = new_block_id();
        let plan = BlockPlan {
            id: id.clone(),
            min_time: group.iter().map(|b| b.meta().min_time).min().unwrap_or(0),
            max_time: group.iter().map(|b| b.meta().max_time).max().unwrap_or(0),
            level: group
                .iter()
                .map(|b| b.meta().compaction.level)
                .max()
                .unwrap_or(1)
                + 1,
            sources: group
                .iter()
                .flat_map(|b| b.meta().compaction.sources.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            parents: group.iter().map(|b| b.meta().ulid.clone()).collect(),
            zstd_level: self.opts.zstd_level,
        };
        // Each source is walked in label order alongside the merged label list.
        let mut cursors: Vec<(u32, Option<Labels>)> = vec![(0, None); group.len()];
        let mut caches: Vec<PageCache> = group.iter().map(|_| PageCache::default()).collect();
        let tombstones: Vec<_> = group.iter().map(|b| b.tombstones()).collect();
        let written = write_block(&blocks_dir(dir), &plan, &labels, |i, out| {
            let target = &labels[i];
            let mut sources = 0;
            for (k, block) in group.iter().enumerate() {
                loop {
                    let (ordinal, cached) = &mut cursors[k];
                    if *ordinal as usize >= block.n_series() {
                        break;
                    }
                    if cached.is_none() {
                        *cached = Some(block.series(*ordinal)?.0);
                    }
                    match cached.as_ref().map(|l| l.cmp(target)) {
                        Some(std::cmp::Ordering::Less) => {
                            *ordinal += 1;
                            *cached = None;
                        }
                        Some(std::cmp::Ordering::Equal) => {
                            let (_, chunks) = block.series(*ordinal)?;
                            let start = (out.floats.len(), out.hists.len());
                            for c in &chunks {
                                block.read_chunk(c, &mut caches[k], out)?;
                            }
                            // Deleted samples are not carried into the compacted block.
                            tombstones[k].remove_deleted(&*ordinal, &mut out.floats, start.0);
                            tombstones[k].remove_deleted(&*ordinal, &mut out.hists, start.1);
                            sources += 1;
                            *ordinal += 1;
                            *cached = None;
                            break;
                        }
                        _ => break,
                    }
                }
            }
            if sources > 1 {
                out.normalize();
            }
            Ok(())
        })?;
        let parents = plan.parents.clone();
        match written {
            Some(meta) => {
                let block = Arc::new(Block::open(&blocks_dir(dir).join(&meta.ulid))?);
                tracing::info!(block = %meta.ulid, from = ?parents, min_time = meta.min_time, max_time = meta.max_time, level = meta.compaction.level, "compacted blocks");
                self.insert_blocks(vec![block], &parents);
            }
            None => self.insert_blocks(vec![], &parents),
        }
        self.metrics.compactions.inc();
        Ok(())
    }

    /// Deletes blocks past the time or size retention; returns how many.
    fn apply_retention(&self) -> Result<usize, StorageError> {
        let blocks = self.blocks.read().clone();
        let newest = blocks
            .iter()
            .map(|b| b.meta().max_time - 1)
            .chain(self.head.time_range().map(|r| r.1))
            .max();
        let mut expired: Vec<String> = Vec::new();
        if let (Some(newest), true) = (newest, self.opts.retention_ms > 0) {
            let cutoff = newest - self.opts.retention_ms;
            expired.extend(
                blocks
                    .iter()
                    .filter(|b| b.meta().max_time <= cutoff)
                    .map(|b| b.meta().ulid.clone()),
            );
        }
        if self.opts.retention_bytes > 0 {
            let wal_bytes = self.dir.as_ref().map_or(0, |d| dir_size(&d.join("wal")));
            let mut total: u64 = wal_bytes + blocks.iter().map(|b| b.size_bytes()).sum::<u64>();
            for b in &blocks {
                if total <= self.opts.retention_bytes {
                    break;
                }
                total = total.saturating_sub(b.size_bytes());
                if !expired.contains(&b.meta().ulid) {
                    expired.push(b.meta().ulid.clone());
                }
            }
        }
        if !expired.is_empty() {
            tracing::info!(blocks = ?expired, "deleting blocks past retention");
            self.insert_blocks(vec![], &expired);
            self.metrics.blocks_expired.inc_by(expired.len() as u64);
        }
        Ok(expired.len())
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
