//! Immutable log segments: time-sorted, zstd-compressed blocks holding entries of all streams,
//! a stream table, a block table (streams present with counts, time range, offsets, CRCs), one
//! Bloom filter of winnowed gram hashes per block and a word index. Format 3 (written now)
//! stores each block as a columns frame and a lines frame compressed with a per-segment
//! dictionary, and lists keys common to many blocks once instead of in every filter; formats 1
//! and 2 are still read. Layout in `storage/FORMAT.md` ("Logs"). Files are written to a
//! temporary name, fsynced and renamed; they are read through [`MappedFile`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::logs::codec::{decode_block_where, encode_block, get_labels, get_len, put_labels};
use crate::logs::words::{WordIndex, WordIndexBuilder};
use crate::logs::{bloom, dictionary, tokens, LogEntry};
use crate::mmap::MappedFile;
use crate::varint::{read_uvarint, read_varint, write_uvarint, write_varint};
use crate::{Labels, StorageError};

/// Format 1: blocks, table, Bloom filters.
const MAGIC: &[u8; 8] = b"SXLOGSG1";
/// Format 2: format 1 plus the word index section (written whenever the vocabulary is under
/// its cap; otherwise the segment is written as format 1).
const MAGIC2: &[u8; 8] = b"SXLOGSG2";
const FOOTER_MAGIC: &[u8; 8] = b"SXLOGEND";
/// meta offset u64, meta len u64, meta crc u32, blooms offset u64, blooms len u64,
/// blooms crc u32, magic.
const FOOTER_LEN: usize = 8 + 8 + 4 + 8 + 8 + 4 + 8;
/// Format 2 inserts words offset u64, words len u64, words crc u32 before the magic.
const FOOTER2_LEN: usize = FOOTER_LEN + 8 + 8 + 4;
/// Format 3: blocks compressed with a per-segment zstd dictionary, the table compressed, the
/// word index section always present (empty when over its cap) and a dictionary section.
const MAGIC3: &[u8; 8] = b"SXLOGSG3";
/// Format 3 adds (offset u64, len u64, crc u32) of the dictionary and of the common keys
/// after the words fields.
const FOOTER3_LEN: usize = FOOTER2_LEN + 2 * (8 + 8 + 4);
/// A key in at least 1/`COMMON_SHARE` of a segment's blocks (and at least 4) is a common key.
/// Measured on the bench corpus (256 KiB blocks): filters 3.16 → 1.83 MB per 128 MiB segment
/// (list 20 KB); 1/8 saves 0.12 MB more, but a rare needle then loses pruning sooner.
const COMMON_SHARE: usize = 16;
/// Size of the counter table used to find common keys (one byte per slot).
const COMMON_SLOTS: usize = 1 << 22;
/// The segment format [`build`] writes.
pub(crate) const FORMAT: u8 = 3;
const ZSTD_LEVEL: i32 = 3;
/// Bound on a block's decoded payload, to refuse absurd lengths from a damaged table.
const MAX_BLOCK_RAW: u64 = 1 << 31;

/// One block's entry in the block table.
#[derive(Clone, Debug)]
pub(crate) struct BlockInfo {
    /// Per stream present in the block (ascending stream index): its entries and line bytes.
    pub(crate) streams: Vec<StreamPart>,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) count: u32,
    /// Sum of line lengths in bytes (Loki's "bytes" in index stats).
    pub(crate) line_bytes: u64,
    raw_len: u64,
    offset: u64,
    len: u64,
    /// Format 3: compressed and decoded length of the columns frame, which precedes the
    /// lines frame in the block's bytes (0: one frame, formats 1 and 2).
    cols_len: u64,
    cols_raw: u64,
    crc: u32,
    bloom_offset: u64,
    bloom_len: u64,
}

/// One stream's share of a block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamPart {
    pub(crate) stream: u32,
    pub(crate) count: u32,
    pub(crate) line_bytes: u64,
}

enum Bytes {
    Mapped(MappedFile),
    Owned(Arc<Vec<u8>>),
}

/// An open segment: parsed tables over the file's bytes.
pub(crate) struct Segment {
    /// Arrival order: a segment holds what head generation `seq` (and, after compaction, the
    /// generations in `covers`) received.
    pub(crate) seq: u64,
    pub(crate) covers: Vec<u64>,
    pub(crate) streams: Vec<Labels>,
    pub(crate) blocks: Vec<BlockInfo>,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) path: Option<PathBuf>,
    bytes: Bytes,
    blooms_offset: usize,
    /// Format 2's word index (`None` for format 1 segments).
    words: Option<WordIndex>,
    words_bytes: u64,
    /// Format 3's block dictionary, prepared for decompression (`None`: blocks are plain
    /// zstd frames).
    dictionary: Option<zstd::dict::DecoderDictionary<'static>>,
    /// Format 3: sorted fingerprints of the keys left out of the block filters (present in
    /// many blocks); a needle key listed here is not probed.
    common: Vec<u32>,
}

fn corrupt(path: &Option<PathBuf>, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corruption {
        path: path.clone().unwrap_or_else(|| PathBuf::from("<memory>")),
        offset,
        reason: reason.into(),
    }
}

/// Builds a segment file's bytes. `streams` (sorted by labels) holds each stream's entries
/// sorted by time (ties in arrival order); streams with no entries are skipped.
pub(crate) fn build(
    seq: u64,
    covers: &[u64],
    streams: &[(&Labels, Vec<&LogEntry>)],
    block_bytes: usize,
) -> Result<Vec<u8>, StorageError> {
    build_format(seq, covers, streams, block_bytes, FORMAT)
}

/// As [`build`], in segment format `format` (1, 2 or 3; older formats are written only by
/// tests that check they still read). Format 2 falls back to 1 when the vocabulary is over
/// the word index's cap.
pub(crate) fn build_format(
    seq: u64,
    covers: &[u64],
    streams: &[(&Labels, Vec<&LogEntry>)],
    block_bytes: usize,
    format: u8,
) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(1 << 20);
    out.extend_from_slice(if format >= 3 { MAGIC3 } else { MAGIC2 });
    let mut words = WordIndexBuilder::default();
    let mut infos: Vec<BlockInfo> = Vec::new();
    let mut blooms: Vec<u8> = Vec::new();
    let mut table: Vec<&Labels> = Vec::new();
    let mut raw = Vec::new();
    let mut hashes: Vec<u64> = Vec::new();
    let mut block_keys: Vec<Vec<u64>> = Vec::new();
    let mut winnower = tokens::Winnower::default();
    let mut all: Vec<(u32, &LogEntry)> = Vec::new();
    for (labels, entries) in streams {
        if entries.is_empty() {
            continue;
        }
        let stream = table.len() as u32;
        table.push(*labels);
        all.extend(entries.iter().map(|e| (stream, *e)));
    }
    // Time order across streams; ties by stream (label order), then arrival (stable sort).
    all.sort_by_key(|(s, e)| (e.ts_ns, *s));
    let zerr = |e| StorageError::io("<zstd>", e);
    let dictionary = if format >= 3 {
        dictionary::make(&all)
    } else {
        Vec::new()
    };
    let mut plain = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(zerr)?;
    let mut compressor = if dictionary.is_empty() {
        zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(zerr)?
    } else {
        zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, &dictionary).map_err(zerr)?
    };
    let mut start = 0;
    while start < all.len() {
        let mut end = start;
        let mut line_bytes = 0usize;
        while end < all.len() && (end == start || line_bytes < block_bytes) {
            line_bytes += all[end].1.line.len();
            end += 1;
        }
        let chunk = &all[start..end];
        raw.clear();
        encode_block(chunk, &mut raw);
        // Format 3: the columns and the lines are separate frames (text and binary compress
        // worse mixed), the lines with the segment dictionary.
        let cols_raw = if format >= 3 {
            raw.len() - line_bytes
        } else {
            0
        };
        let mut compressed = Vec::new();
        if cols_raw > 0 {
            compressed = plain.compress(&raw[..cols_raw]).map_err(zerr)?;
        }
        let cols_len = compressed.len() as u64;
        compressed.extend_from_slice(&compressor.compress(&raw[cols_raw..]).map_err(zerr)?);
        hashes.clear();
        let mut parts: BTreeMap<u32, StreamPart> = BTreeMap::new();
        let block_no = infos.len() as u32;
        for (s, e) in chunk {
            winnower.for_each(&e.line, |h| hashes.push(h));
            words.add_line(&e.line, block_no);
            let p = parts.entry(*s).or_insert(StreamPart {
                stream: *s,
                count: 0,
                line_bytes: 0,
            });
            p.count += 1;
            p.line_bytes += e.line.len() as u64;
        }
        hashes.sort_unstable();
        hashes.dedup();
        block_keys.push(std::mem::take(&mut hashes));
        infos.push(BlockInfo {
            streams: parts.into_values().collect(),
            min_ts: chunk.first().map_or(0, |e| e.1.ts_ns),
            max_ts: chunk.last().map_or(0, |e| e.1.ts_ns),
            count: chunk.len() as u32,
            line_bytes: line_bytes as u64,
            raw_len: raw.len() as u64,
            offset: out.len() as u64,
            len: compressed.len() as u64,
            cols_len,
            cols_raw: cols_raw as u64,
            crc: crc32fast::hash(&compressed),
            bloom_offset: 0,
            bloom_len: 0,
        });
        out.extend_from_slice(&compressed);
        start = end;
    }
    // Format 3: keys in many blocks go to the segment's common-key list instead of every
    // block's filter (they prune little, and cost a filter entry per block).
    let common = if format >= 3 {
        common_keys(&block_keys)
    } else {
        Vec::new()
    };
    for (info, keys) in infos.iter_mut().zip(&mut block_keys) {
        if !common.is_empty() {
            keys.retain(|&h| common.binary_search(&fingerprint(h)).is_err());
        }
        let filter = bloom::build(keys);
        info.bloom_offset = blooms.len() as u64;
        info.bloom_len = filter.len() as u64;
        blooms.extend_from_slice(&filter);
    }
    drop(block_keys);
    let mut meta = Vec::new();
    write_uvarint(&mut meta, seq);
    write_uvarint(&mut meta, covers.len() as u64);
    for &c in covers {
        write_uvarint(&mut meta, c);
    }
    write_uvarint(&mut meta, table.len() as u64);
    for l in &table {
        put_labels(&mut meta, l);
    }
    write_uvarint(&mut meta, infos.len() as u64);
    for b in &infos {
        write_uvarint(&mut meta, b.streams.len() as u64);
        let mut prev = 0u32;
        for p in &b.streams {
            write_uvarint(&mut meta, u64::from(p.stream - prev));
            write_uvarint(&mut meta, u64::from(p.count));
            write_uvarint(&mut meta, p.line_bytes);
            prev = p.stream;
        }
        write_varint(&mut meta, b.min_ts);
        write_uvarint(&mut meta, b.max_ts.wrapping_sub(b.min_ts) as u64);
        write_uvarint(&mut meta, u64::from(b.count));
        write_uvarint(&mut meta, b.line_bytes);
        write_uvarint(&mut meta, b.raw_len);
        write_uvarint(&mut meta, b.offset);
        write_uvarint(&mut meta, b.len);
        if format >= 3 {
            write_uvarint(&mut meta, b.cols_len);
            write_uvarint(&mut meta, b.cols_raw);
        }
        meta.extend_from_slice(&b.crc.to_le_bytes());
        write_uvarint(&mut meta, b.bloom_offset);
        write_uvarint(&mut meta, b.bloom_len);
    }
    if format >= 3 {
        // Table and dictionary compressed (no dictionary); the word index as built (empty
        // when over its cap).
        let meta = zstd::bulk::compress(&meta, ZSTD_LEVEL).map_err(zerr)?;
        let words = words.finish().unwrap_or_default();
        let dict = if dictionary.is_empty() {
            Vec::new()
        } else {
            zstd::bulk::compress(&dictionary, ZSTD_LEVEL).map_err(zerr)?
        };
        let mut common_section = Vec::new();
        write_uvarint(&mut common_section, common.len() as u64);
        let mut prev = 0u32;
        for &c in &common {
            write_uvarint(&mut common_section, u64::from(c - prev));
            prev = c;
        }
        let mut footer = Vec::with_capacity(FOOTER3_LEN);
        for section in [&meta, &blooms, &words, &dict, &common_section] {
            footer.extend_from_slice(&(out.len() as u64).to_le_bytes());
            footer.extend_from_slice(&(section.len() as u64).to_le_bytes());
            footer.extend_from_slice(&crc32fast::hash(section).to_le_bytes());
            out.extend_from_slice(section);
        }
        out.extend_from_slice(&footer);
        out.extend_from_slice(FOOTER_MAGIC);
        return Ok(out);
    }
    let meta_offset = out.len() as u64;
    out.extend_from_slice(&meta);
    let blooms_offset = out.len() as u64;
    out.extend_from_slice(&blooms);
    out.extend_from_slice(&meta_offset.to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&meta).to_le_bytes());
    out.extend_from_slice(&blooms_offset.to_le_bytes());
    out.extend_from_slice(&(blooms.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&blooms).to_le_bytes());
    match words.finish().filter(|_| format >= 2) {
        Some(section) => {
            let words_offset = (out.len() - FOOTER_LEN + 8) as u64;
            // The section goes before the footer: move the footer fields after it.
            let footer: Vec<u8> = out.split_off(out.len() - (FOOTER_LEN - 8));
            out.extend_from_slice(&section);
            out.extend_from_slice(&footer);
            out.extend_from_slice(&words_offset.to_le_bytes());
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&section).to_le_bytes());
        }
        None => out[..MAGIC.len()].copy_from_slice(MAGIC),
    }
    out.extend_from_slice(FOOTER_MAGIC);
    Ok(out)
}

/// Runs `f` with this thread's reused zstd decompression context (creating one per block
/// read cost more than a small block's decompression).
fn with_dctx<R>(
    f: impl FnOnce(&mut zstd::zstd_safe::DCtx<'static>) -> Result<R, usize>,
) -> std::io::Result<R> {
    thread_local! {
        static DCTX: std::cell::RefCell<zstd::zstd_safe::DCtx<'static>> =
            std::cell::RefCell::new(zstd::zstd_safe::DCtx::create());
    }
    DCTX.with(|d| f(&mut d.borrow_mut()))
        .map_err(|code| std::io::Error::other(zstd::zstd_safe::get_error_name(code)))
}

/// The part of a key hash kept in the common-key list.
fn fingerprint(h: u64) -> u32 {
    (h >> 32) as u32
}

/// Fingerprints (sorted) of the keys found in at least `max(4, blocks / 16)` blocks.
/// Counting is by slot of a fixed table, so a rare key sharing a slot with common ones may be
/// listed too: that only loses pruning for it, never a match (the list is what the reader
/// skips, and exactly what the filters lack).
fn common_keys(block_keys: &[Vec<u64>]) -> Vec<u32> {
    let min = (block_keys.len() / COMMON_SHARE).clamp(4, 255) as u8;
    if block_keys.len() < usize::from(min) * 2 {
        return Vec::new();
    }
    let mut counts = vec![0u8; COMMON_SLOTS];
    let slot = |h: u64| (h as usize) & (COMMON_SLOTS - 1);
    for keys in block_keys {
        for &h in keys {
            let c = &mut counts[slot(h)];
            *c = c.saturating_add(1);
        }
    }
    let mut out: Vec<u32> = block_keys
        .iter()
        .flatten()
        .filter(|&&h| counts[slot(h)] >= min)
        .map(|&h| fingerprint(h))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Reads the common-key section: `uvarint n`, then `n` ascending fingerprints as deltas.
fn decode_common(b: &mut &[u8]) -> Option<Vec<u32>> {
    let n = get_len(b, b.len())?;
    let mut out = Vec::with_capacity(n);
    let mut prev = 0u64;
    for _ in 0..n {
        prev += read_uvarint(b)?;
        out.push(u32::try_from(prev).ok()?);
    }
    b.is_empty().then_some(out)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

impl Segment {
    /// Maps and parses a segment file, checking the footer, the table and the Bloom filters'
    /// CRCs (block CRCs are checked when a block is read).
    pub(crate) fn open(path: &Path) -> Result<Segment, StorageError> {
        let map = MappedFile::open(path)?;
        Segment::parse(Bytes::Mapped(map), Some(path.to_path_buf()))
    }

    /// A segment held in memory (the in-memory store's flushed data).
    pub(crate) fn from_vec(data: Vec<u8>) -> Result<Segment, StorageError> {
        Segment::parse(Bytes::Owned(Arc::new(data)), None)
    }

    fn data(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m.bytes(),
            Bytes::Owned(v) => v,
        }
    }

    /// Size of the segment in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.data().len() as u64
    }

    fn parse(bytes: Bytes, path: Option<PathBuf>) -> Result<Segment, StorageError> {
        let data: &[u8] = match &bytes {
            Bytes::Mapped(m) => m.bytes(),
            Bytes::Owned(v) => v,
        };
        let n = data.len();
        let format = match data.get(..8) {
            Some(m) if m == MAGIC => 1,
            Some(m) if m == MAGIC2 => 2,
            Some(m) if m == MAGIC3 => 3,
            _ => 0,
        };
        let footer_len = match format {
            3 => FOOTER3_LEN,
            2 => FOOTER2_LEN,
            _ => FOOTER_LEN,
        };
        if format == 0 || n < MAGIC.len() + footer_len || &data[n - 8..] != FOOTER_MAGIC {
            return Err(corrupt(&path, 0, "bad magic or truncated segment"));
        }
        let f = n - footer_len;
        // Footer: (offset u64, len u64, crc u32) per section: table, blooms, words (formats
        // 2 and 3), dictionary and common keys (format 3).
        let section = |k: usize, what: &str| -> Result<(u64, &[u8]), StorageError> {
            let at = f + 20 * k;
            let (off, len, crc) = (
                le_u64(data, at),
                le_u64(data, at + 8),
                le_u32(data, at + 16),
            );
            let in_file = off
                .checked_add(len)
                .is_some_and(|end| end <= f as u64 && off >= MAGIC.len() as u64);
            if !in_file {
                return Err(corrupt(&path, f as u64, "footer offsets out of range"));
            }
            let bytes = &data[off as usize..(off + len) as usize];
            if crc32fast::hash(bytes) != crc {
                return Err(corrupt(&path, off, format!("{what} checksum mismatch")));
            }
            Ok((off, bytes))
        };
        let (meta_off, meta_stored) = section(0, "segment table")?;
        let (blooms_off, blooms) = section(1, "bloom filter")?;
        let blooms_len = blooms.len() as u64;
        let words_section = match format {
            2 => Some(section(2, "word index")?),
            3 => Some(section(2, "word index")?).filter(|(_, w)| !w.is_empty()),
            _ => None,
        };
        let unzstd = |(off, b): (u64, &[u8]), what: &str| {
            zstd::stream::decode_all(b).map_err(|e| corrupt(&path, off, format!("{what}: {e}")))
        };
        let common = if format == 3 {
            let (off, mut c) = section(4, "common keys")?;
            decode_common(&mut c).ok_or_else(|| corrupt(&path, off, "malformed common keys"))?
        } else {
            Vec::new()
        };
        let (meta_owned, dictionary) = if format == 3 {
            let (dict_off, dict) = section(3, "dictionary")?;
            let dictionary = if dict.is_empty() {
                None
            } else {
                let raw = unzstd((dict_off, dict), "dictionary")?;
                Some(zstd::dict::DecoderDictionary::copy(&raw))
            };
            (
                Some(unzstd((meta_off, meta_stored), "segment table")?),
                dictionary,
            )
        } else {
            (None, None)
        };
        let meta: &[u8] = meta_owned.as_deref().unwrap_or(meta_stored);
        // Blocks end where the table begins.
        let blocks_end = meta_off;
        let bad = || corrupt(&path, meta_off, "malformed segment table");
        let mut m = meta;
        let b = &mut m;
        let seq = read_uvarint(b).ok_or_else(bad)?;
        let ncovers = get_len(b, b.len()).ok_or_else(bad)?;
        let mut covers = Vec::with_capacity(ncovers);
        for _ in 0..ncovers {
            covers.push(read_uvarint(b).ok_or_else(bad)?);
        }
        let nstreams = get_len(b, b.len()).ok_or_else(bad)?;
        let mut streams = Vec::with_capacity(nstreams);
        for _ in 0..nstreams {
            streams.push(get_labels(b).ok_or_else(bad)?);
        }
        let nblocks = get_len(b, b.len()).ok_or_else(bad)?;
        let mut blocks = Vec::with_capacity(nblocks);
        let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
        for _ in 0..nblocks {
            let nparts = get_len(b, streams.len()).ok_or_else(bad)?;
            let mut parts = Vec::with_capacity(nparts);
            let mut prev = 0u64;
            for _ in 0..nparts {
                let stream = prev + read_uvarint(b).ok_or_else(bad)?;
                let count = read_uvarint(b).ok_or_else(bad)?;
                let line_bytes = read_uvarint(b).ok_or_else(bad)?;
                if stream >= streams.len() as u64 || count > u64::from(u32::MAX) {
                    return Err(bad());
                }
                parts.push(StreamPart {
                    stream: stream as u32,
                    count: count as u32,
                    line_bytes,
                });
                prev = stream;
            }
            let bmin = read_varint(b).ok_or_else(bad)?;
            let span = read_uvarint(b).ok_or_else(bad)?;
            let count = read_uvarint(b).ok_or_else(bad)?;
            let line_bytes = read_uvarint(b).ok_or_else(bad)?;
            let raw_len = read_uvarint(b).ok_or_else(bad)?;
            let offset = read_uvarint(b).ok_or_else(bad)?;
            let len = read_uvarint(b).ok_or_else(bad)?;
            let (cols_len, cols_raw) = if format >= 3 {
                (
                    read_uvarint(b).ok_or_else(bad)?,
                    read_uvarint(b).ok_or_else(bad)?,
                )
            } else {
                (0, 0)
            };
            if b.len() < 4 {
                return Err(bad());
            }
            let crc = le_u32(b, 0);
            *b = &b[4..];
            let bloom_offset = read_uvarint(b).ok_or_else(bad)?;
            let bloom_len = read_uvarint(b).ok_or_else(bad)?;
            let ok = count <= u64::from(u32::MAX)
                && raw_len <= MAX_BLOCK_RAW
                && cols_len <= len
                && cols_raw <= raw_len
                && offset.checked_add(len).is_some_and(|e| e <= blocks_end)
                && offset >= MAGIC.len() as u64
                && bloom_offset
                    .checked_add(bloom_len)
                    .is_some_and(|e| e <= blooms_len);
            if !ok {
                return Err(bad());
            }
            let bmax = bmin.wrapping_add(span as i64);
            min_ts = min_ts.min(bmin);
            max_ts = max_ts.max(bmax);
            blocks.push(BlockInfo {
                streams: parts,
                min_ts: bmin,
                max_ts: bmax,
                count: count as u32,
                line_bytes,
                raw_len,
                offset,
                len,
                cols_len,
                cols_raw,
                crc,
                bloom_offset,
                bloom_len,
            });
        }
        if !b.is_empty() {
            return Err(bad());
        }
        let words_bytes = words_section.map_or(0, |(_, w)| w.len() as u64);
        let words = match words_section {
            Some((off, section)) => Some(
                WordIndex::decode(section, blocks.len())
                    .ok_or_else(|| corrupt(&path, off, "malformed word index"))?,
            ),
            None => None,
        };
        Ok(Segment {
            seq,
            covers,
            streams,
            blocks,
            min_ts,
            max_ts,
            path,
            bytes,
            blooms_offset: blooms_off as usize,
            words,
            words_bytes,
            dictionary,
            common,
        })
    }

    /// Decodes block `i` (checking its CRC): `(stream index, entry)` in block order (time,
    /// then stream, then arrival), only those for which `keep(stream, ts, line)` holds.
    pub(crate) fn read_block(
        &self,
        i: usize,
        keep: impl FnMut(u32, i64, &str) -> bool,
    ) -> Result<Vec<(u32, LogEntry)>, StorageError> {
        self.read_block_containing(i, &[], keep)
    }

    /// As [`Segment::read_block`], but when the decoded payload lacks one of `must` (byte
    /// strings every kept line contains), the block is skipped without decoding its entries:
    /// one `memmem` pass over the payload instead of a search per line.
    pub(crate) fn read_block_containing(
        &self,
        i: usize,
        must: &[memchr::memmem::Finder<'_>],
        mut keep: impl FnMut(u32, i64, &str) -> bool,
    ) -> Result<Vec<(u32, LogEntry)>, StorageError> {
        let b = &self.blocks[i];
        let data = &self.data()[b.offset as usize..(b.offset + b.len) as usize];
        if crc32fast::hash(data) != b.crc {
            return Err(corrupt(&self.path, b.offset, "block checksum mismatch"));
        }
        let zerr = |e: std::io::Error| corrupt(&self.path, b.offset, format!("zstd: {e}"));
        let raw_len = b.raw_len as usize;
        let cols_raw = b.cols_raw as usize;
        let (cols, lines) = data.split_at(b.cols_len as usize);
        let mut raw = vec![0u8; raw_len];
        // Lines first: a block whose lines lack a needle is skipped before its columns are
        // decompressed.
        let got = with_dctx(|z| match &self.dictionary {
            Some(d) => z.decompress_using_ddict(&mut raw[cols_raw..], lines, d.as_ddict()),
            None => z.decompress(&mut raw[cols_raw..], lines),
        })
        .map_err(zerr)?;
        if got != raw_len - cols_raw {
            return Err(corrupt(&self.path, b.offset, "block length mismatch"));
        }
        // Where the first needle occurs (payload offsets): only lines spanning one of them
        // are decoded.
        let mut hits: Vec<usize> = Vec::new();
        if let Some(first) = must.first() {
            // Overlapping occurrences too: one may end a line and the next start the next.
            let text = &raw[cols_raw..];
            let mut from = 0;
            while let Some(p) = first.find(&text[from..]) {
                hits.push(cols_raw + from + p);
                from += p + 1;
            }
            if hits.is_empty() || must[1..].iter().any(|f| f.find(&raw[cols_raw..]).is_none()) {
                return Ok(Vec::new());
            }
        }
        if cols_raw > 0 {
            let got = with_dctx(|z| z.decompress(&mut raw[..cols_raw], cols)).map_err(zerr)?;
            if got != cols_raw {
                return Err(corrupt(&self.path, b.offset, "block length mismatch"));
            }
        }
        let needle_len = must.first().map_or(0, |f| f.needle().len());
        let mut next_hit = 0usize;
        let may = |start: usize, len: usize| {
            if must.is_empty() {
                return true;
            }
            while next_hit < hits.len() && hits[next_hit] < start {
                next_hit += 1;
            }
            hits.get(next_hit)
                .is_some_and(|&h| h + needle_len <= start + len)
        };
        let (entries, n) = decode_block_where(&raw, may, |s, t, l| {
            s < self.streams.len() as u32 && keep(s, t, l)
        })
        .ok_or_else(|| corrupt(&self.path, b.offset, "malformed block"))?;
        if n != b.count as usize {
            return Err(corrupt(&self.path, b.offset, "block entry count mismatch"));
        }
        Ok(entries)
    }

    /// The needle key hashes worth probing in this segment's filters (those not in its
    /// common-key list).
    pub(crate) fn probe_keys(&self, hashes: &[u64]) -> Vec<u64> {
        hashes
            .iter()
            .copied()
            .filter(|&h| self.common.binary_search(&fingerprint(h)).is_err())
            .collect()
    }

    /// False when block `i` certainly lacks one of the token hashes (pass them through
    /// [`Segment::probe_keys`] first).
    pub(crate) fn block_may_contain_all(&self, i: usize, hashes: &[u64]) -> bool {
        if hashes.is_empty() {
            return true;
        }
        let b = &self.blocks[i];
        let start = self.blooms_offset + b.bloom_offset as usize;
        let filter = &self.data()[start..start + b.bloom_len as usize];
        hashes.iter().all(|&h| bloom::may_contain(filter, h))
    }

    /// Flags, per block, the blocks that may hold a line containing every needle according to
    /// the word index (all true without one); see `words.rs`.
    pub(crate) fn word_candidates(&self, needles: &[(&str, bool)]) -> Vec<bool> {
        let mut allowed = vec![true; self.blocks.len()];
        if let Some(w) = &self.words {
            for (text, ci) in needles {
                w.restrict(text, *ci, &mut allowed);
            }
        }
        allowed
    }

    /// Whether blocks use a dictionary, and how many keys the common-key list holds.
    #[cfg(test)]
    pub(crate) fn dictionary_and_common(&self) -> (bool, usize) {
        (self.dictionary.is_some(), self.common.len())
    }

    /// Distinct words of the word index (`None`: format 1, no word index).
    #[cfg(test)]
    pub(crate) fn word_count(&self) -> Option<usize> {
        self.words.as_ref().map(WordIndex::len)
    }

    /// Bytes of the Bloom filters (the content index), for size reports.
    pub(crate) fn index_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.bloom_len).sum::<u64>()
            + self.words_bytes
            + 4 * self.common.len() as u64
    }
}
