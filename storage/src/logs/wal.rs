//! The log WAL: `<dir>/wal/<20-digit generation>`, one file per head generation. Frames are
//! `[len u32 LE][crc32 u32 LE][payload]` as in the metrics WAL; a payload is one accepted
//! append: stream count, then per stream its labels and entries (see `codec`). A torn or corrupt
//! tail ends a file's replay (logged); the file is deleted once a segment covers it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::logs::codec::{get_entry, get_labels, get_len, put_entry, put_labels};
use crate::logs::LogStreamBatch;
use crate::varint::write_uvarint;
use crate::{FsyncPolicy, StorageError};

const FRAME_HEADER: usize = 8;

pub(crate) struct LogWal {
    file: File,
    path: PathBuf,
    fsync: FsyncPolicy,
    last_sync: Instant,
    dirty: bool,
    buf: Vec<u8>,
}

pub(crate) fn wal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}"))
}

/// Generations of the WAL files in `dir`, ascending (other names are ignored).
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let e = e.map_err(|e| StorageError::io(dir, e))?;
        if let Some(g) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
            out.push(g);
        }
    }
    out.sort_unstable();
    Ok(out)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

/// Replays one WAL file, calling `apply` per stream batch; returns the bytes of torn or corrupt
/// tail that were ignored.
pub(crate) fn replay(
    path: &Path,
    mut apply: impl FnMut(LogStreamBatch),
) -> Result<u64, StorageError> {
    let data = fs::read(path).map_err(|e| StorageError::io(path, e))?;
    let mut pos = 0usize;
    while pos + FRAME_HEADER <= data.len() {
        let len =
            u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let start = pos + FRAME_HEADER;
        let Some(payload) = data.get(start..start.saturating_add(len)) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(batches) = decode_record(payload) else {
            break;
        };
        batches.into_iter().for_each(&mut apply);
        pos = start + len;
    }
    let lost = (data.len() - pos) as u64;
    if lost > 0 {
        tracing::warn!(wal = %path.display(), offset = pos, lost_bytes = lost, "log wal has a torn or corrupt tail; replayed what precedes it");
    }
    Ok(lost)
}

fn decode_record(mut p: &[u8]) -> Option<Vec<LogStreamBatch>> {
    let b = &mut p;
    let n = get_len(b, b.len())?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let labels = get_labels(b)?;
        let m = get_len(b, b.len())?;
        let mut entries = Vec::with_capacity(m);
        for _ in 0..m {
            entries.push(get_entry(b)?);
        }
        out.push(LogStreamBatch { labels, entries });
    }
    b.is_empty().then_some(out)
}

impl LogWal {
    /// Creates the file for a new generation (fsyncing the directory so it survives a crash).
    pub(crate) fn create(
        dir: &Path,
        generation: u64,
        fsync: FsyncPolicy,
    ) -> Result<LogWal, StorageError> {
        let path = wal_path(dir, generation);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        sync_dir(dir)?;
        Ok(LogWal {
            file,
            path,
            fsync,
            last_sync: Instant::now(),
            dirty: false,
            buf: Vec::new(),
        })
    }

    /// Writes one record holding the accepted part of an append, and fsyncs by policy.
    pub(crate) fn log(
        &mut self,
        batches: &[(&LogStreamBatch, Vec<usize>)],
    ) -> Result<(), StorageError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        write_uvarint(&mut self.buf, batches.len() as u64);
        for (batch, keep) in batches {
            put_labels(&mut self.buf, &batch.labels);
            write_uvarint(&mut self.buf, keep.len() as u64);
            for &i in keep {
                put_entry(&mut self.buf, &batch.entries[i]);
            }
        }
        let len = (self.buf.len() - FRAME_HEADER) as u32;
        let crc = crc32fast::hash(&self.buf[FRAME_HEADER..]);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file
            .write_all(&self.buf)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.dirty = true;
        let sync = match self.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        if sync {
            self.sync()?;
        }
        if self.buf.capacity() > 64 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(|e| StorageError::io(&self.path, e))?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}
