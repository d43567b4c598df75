//! Sealed head chunks moved out of the heap into scratch files ("head chunk spilling").
//!
//! Sealed float chunks are immutable and most of the head's memory (on the benchmark data
//! about 100 MB of ~150 MB of chunk bytes for 48M samples), yet only queries read them. So
//! when enough of them have piled up in memory, one pass copies them into a new file under
//! `chunks_head/`, maps that file read-only and points the chunks at their bytes in the map.
//! The file is written with `write` (page cache, not this process' memory) and its pages enter
//! the process' resident set only while a query touches them.
//!
//! The files are not a durability mechanism: the WAL still holds every sample, no file is
//! fsynced, and the directory is emptied when the database opens. A file is deleted when the
//! last chunk pointing into it is dropped (head truncation after a block cut or flush).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk::ChunkBytes;
use crate::mmap::MappedFile;
use crate::StorageError;

use super::SeriesRef;

/// Directory of spill files inside the data directory.
pub(crate) const SPILL_DIR: &str = "chunks_head";

/// Sealed bytes in memory that trigger a spill pass.
pub(crate) const SPILL_THRESHOLD_BYTES: usize = 8 << 20;

/// Largest spill file one pass writes (chunk offsets are `u32`); the rest waits for the next.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// One spill file, mapped read-only; removed from disk when dropped.
pub(crate) struct SpillFile {
    map: Option<MappedFile>,
    path: PathBuf,
}

impl SpillFile {
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], MappedFile::bytes)
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // Unmap first: the file is only deleted once nothing maps it.
        drop(self.map.take());
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove head chunk spill file");
        }
    }
}

impl std::fmt::Debug for SpillFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillFile")
            .field("path", &self.path)
            .finish()
    }
}

/// Empties (creating if needed) the spill directory of `data_dir`: files left by an earlier
/// process are scratch, the WAL replay rebuilds their chunks in memory.
pub(crate) fn reset_dir(data_dir: &Path) -> Result<PathBuf, StorageError> {
    let dir = data_dir.join(SPILL_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
    Ok(dir)
}

/// Writes every in-memory sealed float chunk of `series` into a new file at `path`, then points
/// the chunks at the mapped file. Returns the bytes moved out of memory.
///
/// The caller holds the database's maintenance lock, so no chunk is truncated or re-encoded (by
/// a deletion) meanwhile: appends only add chunks. A chunk is still switched over only if it is
/// the very allocation that was written, and the mapped bytes are not read here — reading them
/// would bring the file's pages into this process' resident set, which spilling is meant to keep
/// them out of.
pub(crate) fn spill(series: &[(u32, SeriesRef)], path: &Path) -> Result<u64, StorageError> {
    let io = |e| StorageError::io(path, e);
    // (index in `series`, chunk min time, offset, length, address of the heap copy) per chunk.
    let mut written: Vec<(usize, i64, u32, u32, usize)> = Vec::new();
    let mut offset: u64 = 0;
    let written_ok = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
        'series: for (i, (_, s)) in series.iter().enumerate() {
            let m = s.lock();
            for c in m.sealed_chunks() {
                if let ChunkBytes::Mem(b) = &c.data {
                    let len = b.len() as u64;
                    if offset + len > MAX_FILE_BYTES {
                        break 'series;
                    }
                    out.write_all(b).map_err(io)?;
                    written.push((i, c.min_t, offset as u32, len as u32, b.as_ptr() as usize));
                    offset += len;
                }
            }
        }
        out.flush().map_err(io)
    })();
    if let Err(e) = written_ok {
        // A partial file (disk full, say) would otherwise stay until the next start.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    if offset == 0 {
        std::fs::remove_file(path).map_err(io)?;
        return Ok(0);
    }
    let file = Arc::new(SpillFile {
        map: Some(MappedFile::open(path)?),
        path: path.to_path_buf(),
    });
    if file.bytes().len() as u64 != offset {
        return Err(StorageError::Corruption {
            path: path.to_path_buf(),
            offset,
            reason: "head chunk spill file is shorter than what was written".into(),
        });
    }
    let mut moved = 0u64;
    for (i, min_t, off, len, addr) in written {
        let Some((_, s)) = series.get(i) else {
            continue;
        };
        let mut m = s.lock();
        if let Some(c) = m.sealed_chunk_mut(min_t) {
            let same = |b: &[u8]| b.as_ptr() as usize == addr && b.len() == len as usize;
            if matches!(&c.data, ChunkBytes::Mem(b) if same(b)) {
                c.data = ChunkBytes::Spilled {
                    file: file.clone(),
                    offset: off,
                    len,
                };
                moved += u64::from(len);
            }
        }
    }
    // If no chunk took a reference, dropping `file` here deletes it.
    Ok(moved)
}
