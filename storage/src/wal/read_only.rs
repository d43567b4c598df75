//! Replaying the WAL for a read-only open (`DbOptions::read_only`, `sextant tsdb`): the same
//! records as [`super::Wal::open`] delivers, without truncating, cleaning up or creating files.

use std::fs;
use std::path::{Path, PathBuf};

use super::{checkpoint_path, decode_segment, list_segments, segment_path, Record, ReplayStats};
use crate::StorageError;

/// Replays the newest checkpoint and the segments after it through `apply` without changing
/// anything on disk (no truncation, no cleanup, no new segment). A torn tail is skipped, as in
/// `Wal::open`; a missing directory replays nothing.
pub(crate) fn replay_read_only(
    dir: &Path,
    mut apply: impl FnMut(Record),
) -> Result<ReplayStats, StorageError> {
    let mut stats = ReplayStats::default();
    if !dir.exists() {
        return Ok(stats);
    }
    let checkpoint = super::checkpoints(dir)?.last().copied();
    let mut inputs: Vec<PathBuf> = checkpoint
        .map(|c| checkpoint_path(dir, c))
        .into_iter()
        .collect();
    let segments = list_segments(dir)?;
    let after = segments
        .into_iter()
        .filter(|&n| checkpoint.is_none_or(|c| n > c));
    inputs.extend(after.map(|n| segment_path(dir, n)));
    for path in inputs {
        let data = fs::read(&path).map_err(|e| StorageError::io(&path, e))?;
        let (good_len, records) = decode_segment(&data);
        stats.truncated_bytes += (data.len() - good_len) as u64;
        stats.segments += 1;
        for r in records {
            stats.records += 1;
            apply(r);
        }
    }
    Ok(stats)
}
