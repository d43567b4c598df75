//! Administrative operations: snapshots, deleting series, and rewriting blocks without their
//! deleted samples, with Prometheus' semantics (`/api/v1/admin/tsdb/*`).
//!
//! Deletion is visible at once and durable before `delete_series` returns:
//! - in a block, as intervals in the block's `tombstones` file, filtered by every read and
//!   dropped by compaction and `clean_tombstones`;
//! - in the head, by re-encoding the affected series without the samples. The WAL would replay
//!   them, so the intervals are first written to `<data>/head_tombstones` (keyed by labels, the
//!   upper bound clipped to the series' newest sample so later appends are never affected) and
//!   re-applied after every WAL replay; entries are dropped once a WAL checkpoint no longer holds
//!   samples that old.
//!
//! All three run under the maintenance lock, so no cut or compaction interleaves with them.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Db;
use crate::block::tombstones::Tombstones;
use crate::block::writer::{sync_dir, write_block, BlockPlan};
use crate::block::{new_block_id, Block, PageCache};
use crate::head::Head;
use crate::{Labels, Matcher, StorageError};

/// Head deletions not yet covered by a WAL checkpoint.
const HEAD_TOMBSTONES_FILE: &str = "head_tombstones";
const SNAPSHOTS_DIR: &str = "snapshots";
const BLOCKS_DIR: &str = "blocks";

impl Db {
    /// Writes a snapshot to `<data>/snapshots/<name>/` and returns its name
    /// (`20171210T211224Z-<16 hex digits>`). Block files are hard-linked, so a snapshot costs
    /// little space until the originals are compacted away; unless `skip_head`, the head's samples
    /// are written into the snapshot as one more block (the live head is not changed). A snapshot
    /// directory is itself a data directory: `Db::open` it to query the snapshot.
    pub fn snapshot(&self, skip_head: bool) -> Result<String, StorageError> {
        let dir = self.writable_dir("snapshot")?;
        let _guard = self.maintenance.lock();
        let name = snapshot_name(std::time::SystemTime::now());
        let root = dir.join(SNAPSHOTS_DIR);
        let tmp = root.join(format!("{name}.tmp"));
        let blocks_dir = tmp.join(BLOCKS_DIR);
        std::fs::create_dir_all(&blocks_dir).map_err(|e| StorageError::io(&blocks_dir, e))?;
        // The clones keep every block directory alive while it is linked.
        let blocks = self.blocks.read().clone();
        for block in &blocks {
            let id = &block.meta().ulid;
            link_block(&dir.join(BLOCKS_DIR).join(id), &blocks_dir.join(id))?;
        }
        if !skip_head {
            self.write_head_block(&blocks_dir)?;
        }
        sync_dir(&blocks_dir)?;
        sync_dir(&tmp)?;
        let dest = root.join(&name);
        std::fs::rename(&tmp, &dest).map_err(|e| StorageError::io(&dest, e))?;
        sync_dir(&root)?;
        tracing::info!(snapshot = %dest.display(), blocks = blocks.len(), skip_head, "snapshot written");
        Ok(name)
    }

    /// Deletes the samples in `[mint, maxt]` of every series matching all `matchers`. They are
    /// invisible to reads when this returns, and stay deleted across restarts.
    pub fn delete_series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<(), StorageError> {
        if self.opts.read_only {
            return Err(read_only("delete_series"));
        }
        if mint > maxt {
            return Ok(());
        }
        let _guard = self.maintenance.lock();
        let blocks = self.blocks.read().clone();
        let mut block_series = 0;
        for block in blocks.iter().filter(|b| b.overlaps(mint, maxt)) {
            let lo = mint.max(block.meta().min_time);
            let hi = maxt.min(block.meta().max_time - 1);
            let (existing, mut cache) = (block.tombstones(), PageCache::default());
            let mut add = Tombstones::default();
            for ordinal in &block.select(matchers)? {
                let (_, chunks) = block.series(ordinal)?;
                if block.has_live_samples(&existing, ordinal, &chunks, lo, hi, &mut cache)? {
                    add.add(ordinal, lo, hi);
                }
            }
            block_series += add.len();
            block.add_tombstones(&add)?;
        }

        // Under the WAL lock no append is between validation and application, so each series'
        // newest sample is stable and nothing lands in the interval while it is deleted.
        let wal = self.wal.lock();
        let mut planned: Tombstones<Labels> = Tombstones::default();
        let mut targets = Vec::new();
        for series in self.head.select(matchers) {
            let s = series.lock();
            let Some((newest, _)) = s.last() else {
                continue;
            };
            let hi = maxt.min(newest);
            if s.overlaps(mint, hi) {
                planned.add(series.labels(), mint, hi);
                drop(s);
                targets.push((series, hi));
            }
        }
        let mut removed = 0;
        if !planned.is_empty() {
            let mut deletions = self.head.deletions();
            let mut next = deletions.clone();
            next.merge(&planned);
            if let Some(dir) = &self.dir {
                next.write(&dir.join(HEAD_TOMBSTONES_FILE))?;
            }
            *deletions = next;
            drop(deletions);
            for (series, hi) in &targets {
                removed += self.head.delete_range(series, mint, *hi);
            }
            self.head.deleted();
        }
        drop(wal);
        tracing::info!(
            matchers = ?matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            mint,
            maxt,
            block_series,
            head_series = targets.len(),
            head_samples = removed,
            "series deleted"
        );
        Ok(())
    }

    /// Rewrites every block that has tombstones without the deleted samples (the new block lists
    /// the old one as its parent, so a crash midway leaves one of the two), then drops the old one.
    pub fn clean_tombstones(&self) -> Result<(), StorageError> {
        if self.opts.read_only {
            return Err(read_only("clean_tombstones"));
        }
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let _guard = self.maintenance.lock();
        let blocks = self.blocks.read().clone();
        for block in blocks.iter().filter(|b| !b.tombstones().is_empty()) {
            self.rewrite_without_tombstones(&dir, block)?;
        }
        Ok(())
    }

    fn rewrite_without_tombstones(&self, dir: &Path, block: &Block) -> Result<(), StorageError> {
        let tombstones = block.tombstones();
        let meta = block.meta();
        let labels = (0..block.n_series() as u32)
            .map(|ordinal| block.series(ordinal).map(|(l, _)| l))
            .collect::<Result<Vec<Labels>, StorageError>>()?;
        let plan = BlockPlan {
            id: new_block_id(),
            min_time: meta.min_time,
            max_time: meta.max_time,
            level: meta.compaction.level,
            sources: meta.compaction.sources.clone(),
            parents: vec![meta.ulid.clone()],
            zstd_level: self.opts.zstd_level,
        };
        let root = dir.join(BLOCKS_DIR);
        let mut cache = PageCache::default();
        let written = write_block(&root, &plan, &labels, |i, out| {
            let ordinal = i as u32;
            let (_, chunks) = block.series(ordinal)?;
            for c in &chunks {
                block.read_chunk(c, &mut cache, out)?;
            }
            tombstones.remove_deleted(&ordinal, &mut out.floats, 0);
            tombstones.remove_deleted(&ordinal, &mut out.hists, 0);
            Ok(())
        })?;
        let replaced = [meta.ulid.clone()];
        match written {
            Some(m) => {
                let new = Arc::new(Block::open(&root.join(&m.ulid))?);
                tracing::info!(block = %m.ulid, replaced = %meta.ulid, samples = m.stats.num_samples, "block rewritten without its tombstones");
                self.insert_blocks(vec![new], &replaced);
            }
            None => {
                tracing::info!(block = %meta.ulid, "every sample of the block was deleted; removing it");
                self.insert_blocks(vec![], &replaced);
            }
        }
        Ok(())
    }

    /// Drops head deletions of samples before `before`: the WAL checkpoint just written no
    /// longer holds them. Called by maintenance after each head truncation.
    pub(super) fn prune_head_tombstones(
        &self,
        dir: &Path,
        before: i64,
    ) -> Result<(), StorageError> {
        let mut deletions = self.head.deletions();
        if deletions.is_empty() {
            return Ok(());
        }
        let mut next = deletions.clone();
        next.retain(|_, (_, hi)| hi >= before);
        if next != *deletions {
            next.write(&dir.join(HEAD_TOMBSTONES_FILE))?;
            *deletions = next;
        }
        Ok(())
    }

    /// True when some data is deleted but still indexed (label lookups must then check data).
    pub(super) fn has_deletions(&self) -> bool {
        let in_head = !self.head.deletions().is_empty();
        in_head
            || self
                .blocks
                .read()
                .iter()
                .any(|b| !b.tombstones().is_empty())
    }

    fn writable_dir(&self, what: &str) -> Result<PathBuf, StorageError> {
        if self.opts.read_only {
            return Err(read_only(what));
        }
        self.dir.clone().ok_or_else(|| {
            StorageError::Unsupported(format!("{what}: an in-memory database has no directory"))
        })
    }

    /// Writes the head's samples as one block under `blocks_dir` (for snapshots).
    fn write_head_block(&self, blocks_dir: &Path) -> Result<(), StorageError> {
        if let Some((lo, hi)) = self.head.time_range() {
            self.write_head_range(blocks_dir, lo, hi.saturating_add(1))?;
        }
        Ok(())
    }
}

/// Re-applies head deletions after WAL replay (`Db::open`).
pub(super) fn apply_head_tombstones(dir: &Path, head: &Head) -> Result<(), StorageError> {
    let tombstones: Tombstones<Labels> = Tombstones::read(&dir.join(HEAD_TOMBSTONES_FILE))?;
    if tombstones.is_empty() {
        return Ok(());
    }
    let mut removed = 0;
    for (labels, intervals) in tombstones.iter() {
        for series in head.series_with_labels(labels) {
            for &(lo, hi) in intervals {
                removed += head.delete_range(&series, lo, hi);
            }
        }
    }
    head.deleted();
    tracing::info!(
        series = tombstones.len(),
        samples = removed,
        "head deletions re-applied after wal replay"
    );
    *head.deletions() = tombstones;
    Ok(())
}

/// Opens the blocks of `dir` without changing anything: unfinished, unreadable and superseded
/// blocks are skipped (and logged) rather than removed or moved aside.
pub(super) fn open_blocks_read_only(dir: &Path) -> Result<Vec<Arc<Block>>, StorageError> {
    let meta = std::fs::metadata(dir).map_err(|e| StorageError::io(dir, e))?;
    if !meta.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(StorageError::io(dir, e));
    }
    let root = dir.join(BLOCKS_DIR);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(&root, e)),
    };
    let mut blocks = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| StorageError::io(&root, e))?.path();
        if !path.is_dir() || path.extension().is_some_and(|e| e == "tmp") {
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                tracing::warn!(block = %path.display(), error = %e, "skipping unreadable block")
            }
        }
    }
    let parents: BTreeSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.parents.clone())
        .collect();
    blocks.retain(|b| !parents.contains(&b.meta().ulid));
    blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    Ok(blocks)
}

fn read_only(what: &str) -> StorageError {
    StorageError::Unsupported(format!("{what}: the database is open read-only"))
}

/// Hard-links every file of block directory `src` into a new directory `dest`.
fn link_block(src: &Path, dest: &Path) -> Result<(), StorageError> {
    std::fs::create_dir(dest).map_err(|e| StorageError::io(dest, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| StorageError::io(src, e))? {
        let entry = entry.map_err(|e| StorageError::io(src, e))?;
        let from = entry.path();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || from.extension().is_some_and(|e| e == "tmp") {
            continue;
        }
        let to = dest.join(entry.file_name());
        std::fs::hard_link(&from, &to).map_err(|e| StorageError::io(&to, e))?;
    }
    sync_dir(dest)
}

/// `<UTC time as 20060102T150405Z>-<16 random hex digits>`, like Prometheus.
fn snapshot_name(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let random = std::collections::hash_map::RandomState::new().hash_one((secs, now));
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{random:016x}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift to eras of 400 years starting on 0000-03-01, where leap days fall at the end.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
