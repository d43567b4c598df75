//! The trace WAL: `<dir>/wal/<20-digit generation>`. Frames are `[len u32 LE][crc32 u32 LE]
//! [payload]` as in the metrics and log WALs; a payload is one accepted append (see
//! [`encode_batch`]). A torn or corrupt tail ends a file's replay (logged, never a panic).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::codec::{get_bytes, get_count, get_fixed, get_u, put_resource, put_scope};
use super::{SpanBatch, TraceId};
use crate::varint::write_uvarint;
use crate::{FsyncPolicy, StorageError};

pub(crate) const FRAME_HEADER: usize = 8;

/// One batch of a parsed record: byte ranges into the payload.
pub(crate) struct RecBatch {
    pub resource: Range<usize>,
    pub scope: Range<usize>,
    pub spans: Vec<RecSpan>,
}

pub(crate) struct RecSpan {
    pub trace_id: TraceId,
    pub start: u64,
    pub end: u64,
    pub body: Range<usize>,
}

/// Starts a record in `buf` (which then holds the frame header placeholder).
pub(crate) fn begin_record(buf: &mut Vec<u8>, batches: usize) {
    buf.clear();
    buf.extend_from_slice(&[0u8; FRAME_HEADER]);
    write_uvarint(buf, batches as u64);
}

/// Appends one batch: `str resource`, `str scope` (their encodings), `uvarint spans`, per span
/// `trace id (16 bytes)`, `uvarint start`, `uvarint end`, `str body`. `keep` selects the spans.
pub(crate) fn encode_batch(
    buf: &mut Vec<u8>,
    batch: &SpanBatch,
    keep: &[usize],
    tmp: &mut Vec<u8>,
) {
    tmp.clear();
    put_resource(tmp, &batch.resource);
    write_uvarint(buf, tmp.len() as u64);
    buf.extend_from_slice(tmp);
    tmp.clear();
    put_scope(tmp, &batch.scope);
    write_uvarint(buf, tmp.len() as u64);
    buf.extend_from_slice(tmp);
    write_uvarint(buf, keep.len() as u64);
    for &i in keep {
        let s = &batch.spans[i];
        buf.extend_from_slice(&s.trace_id.0);
        write_uvarint(buf, s.start_unix_nano);
        write_uvarint(buf, s.end_unix_nano);
        tmp.clear();
        super::codec::put_span_body(tmp, s);
        write_uvarint(buf, tmp.len() as u64);
        buf.extend_from_slice(tmp);
    }
}

/// Fills in the frame header of a record built with [`begin_record`].
pub(crate) fn seal_record(buf: &mut [u8]) {
    let len = (buf.len() - FRAME_HEADER) as u32;
    let crc = crc32fast::hash(&buf[FRAME_HEADER..]);
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Parses a payload (without frame header) into byte ranges relative to `payload`.
pub(crate) fn parse_record(payload: &[u8]) -> Option<Vec<RecBatch>> {
    let base = payload.as_ptr() as usize;
    let off = |s: &[u8]| s.as_ptr() as usize - base;
    let mut b = payload;
    let n = get_count(&mut b)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let res = get_bytes(&mut b)?;
        let resource = off(res)..off(res) + res.len();
        let sc = get_bytes(&mut b)?;
        let scope = off(sc)..off(sc) + sc.len();
        let m = get_count(&mut b)?;
        let mut spans = Vec::with_capacity(m);
        for _ in 0..m {
            let trace_id = TraceId(get_fixed(&mut b)?);
            let start = get_u(&mut b)?;
            let end = get_u(&mut b)?;
            let body = get_bytes(&mut b)?;
            spans.push(RecSpan {
                trace_id,
                start,
                end,
                body: off(body)..off(body) + body.len(),
            });
        }
        out.push(RecBatch {
            resource,
            scope,
            spans,
        });
    }
    b.is_empty().then_some(out)
}

pub(crate) struct TraceWal {
    file: File,
    path: PathBuf,
    pub generation: u64,
    fsync: FsyncPolicy,
    last_sync: Instant,
    syncer: Arc<WalSyncer>,
}

/// Group commit of one WAL file's fsyncs: frames are numbered as they are written (under the
/// store's WAL lock); a writer that needs its frame durable calls [`SyncTicket::wait`] after
/// releasing the lock, and one `fdatasync` then covers every frame written before it started,
/// so concurrent appends share fsyncs instead of taking turns holding the lock across one.
pub(crate) struct WalSyncer {
    /// A duplicate of the WAL's descriptor (fsync of either syncs the file).
    file: File,
    path: PathBuf,
    /// Frames written so far (each fully written before its number is published).
    written: AtomicU64,
    /// Frames known durable; the lock also serialises the fsyncs.
    synced: Mutex<u64>,
}

impl WalSyncer {
    /// Returns once frame `seq` (1-based) is durable, fsyncing unless another writer's fsync
    /// already covered it.
    fn sync_to(&self, seq: u64) -> Result<(), StorageError> {
        let mut synced = self.synced.lock();
        if *synced >= seq {
            return Ok(());
        }
        let target = self.written.load(Ordering::Acquire);
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&self.path, e))?;
        *synced = target;
        Ok(())
    }
}

/// A written frame that must be made durable before its append is acknowledged.
#[must_use = "an acknowledged frame must be synced"]
pub(crate) struct SyncTicket {
    syncer: Arc<WalSyncer>,
    seq: u64,
}

impl SyncTicket {
    /// Blocks until the frame is durable (group commit, see [`WalSyncer`]). Call it without
    /// holding the store's locks.
    pub(crate) fn wait(self) -> Result<(), StorageError> {
        self.syncer.sync_to(self.seq)
    }
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

/// Replays one WAL file, calling `apply` with each valid record's payload; returns the bytes of
/// torn or corrupt tail that were ignored (logged).
pub(crate) fn replay(
    path: &Path,
    mut apply: impl FnMut(&[u8], &[RecBatch]) -> bool,
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
        let Some(rec) = parse_record(payload) else {
            break;
        };
        if !apply(payload, &rec) {
            break;
        }
        pos = start + len;
    }
    let lost = (data.len() - pos) as u64;
    if lost > 0 {
        tracing::warn!(wal = %path.display(), offset = pos, lost_bytes = lost,
            "trace wal has a torn or corrupt tail; replayed what precedes it");
    }
    Ok(lost)
}

impl TraceWal {
    /// Creates the file for a new generation (fsyncing the directory so it survives a crash).
    pub(crate) fn create(
        dir: &Path,
        generation: u64,
        fsync: FsyncPolicy,
    ) -> Result<TraceWal, StorageError> {
        let path = wal_path(dir, generation);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        sync_dir(dir)?;
        let syncer = Arc::new(WalSyncer {
            file: file.try_clone().map_err(|e| StorageError::io(&path, e))?,
            path: path.clone(),
            written: AtomicU64::new(0),
            synced: Mutex::new(0),
        });
        Ok(TraceWal {
            file,
            path,
            generation,
            fsync,
            last_sync: Instant::now(),
            syncer,
        })
    }

    /// Writes one sealed frame. With `FsyncPolicy::Always` the frame is not durable yet: the
    /// returned ticket's [`SyncTicket::wait`] makes it so (call it after releasing the locks);
    /// other policies fsync here when due and return `None`.
    pub(crate) fn write(&mut self, frame: &[u8]) -> Result<Option<SyncTicket>, StorageError> {
        self.file
            .write_all(frame)
            .map_err(|e| StorageError::io(&self.path, e))?;
        let seq = self.syncer.written.fetch_add(1, Ordering::AcqRel) + 1;
        match self.fsync {
            FsyncPolicy::Always => Ok(Some(SyncTicket {
                syncer: self.syncer.clone(),
                seq,
            })),
            FsyncPolicy::Interval(d) => {
                if self.last_sync.elapsed() >= d {
                    self.sync()?;
                }
                Ok(None)
            }
            FsyncPolicy::Never => Ok(None),
        }
    }

    /// Makes every frame written so far durable.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.syncer
            .sync_to(self.syncer.written.load(Ordering::Acquire))?;
        self.last_sync = Instant::now();
        Ok(())
    }
}
