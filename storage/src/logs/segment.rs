//! Immutable log segments: time-sorted, zstd-compressed blocks holding entries of all streams,
//! a stream table, a block table (streams present with counts, time range, offsets, CRCs) and
//! one Bloom filter of winnowed gram hashes per block. Layout in `storage/FORMAT.md` ("Logs"). Files are written to a
//! temporary name, fsynced and renamed; they are read through [`MappedFile`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::logs::codec::{decode_block, encode_block, get_labels, get_len, put_labels};
use crate::logs::words::{WordIndex, WordIndexBuilder};
use crate::logs::{bloom, tokens, LogEntry};
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
    let mut out = Vec::with_capacity(1 << 20);
    out.extend_from_slice(MAGIC2);
    let mut words = WordIndexBuilder::default();
    let mut infos: Vec<BlockInfo> = Vec::new();
    let mut blooms: Vec<u8> = Vec::new();
    let mut table: Vec<&Labels> = Vec::new();
    let mut raw = Vec::new();
    let mut hashes: Vec<u64> = Vec::new();
    let mut winnower = tokens::Winnower::default();
    let mut compressor =
        zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| StorageError::io("<zstd>", e))?;
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
        let compressed = compressor
            .compress(&raw)
            .map_err(|e| StorageError::io("<zstd>", e))?;
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
        let filter = bloom::build(&hashes);
        infos.push(BlockInfo {
            streams: parts.into_values().collect(),
            min_ts: chunk.first().map_or(0, |e| e.1.ts_ns),
            max_ts: chunk.last().map_or(0, |e| e.1.ts_ns),
            count: chunk.len() as u32,
            line_bytes: line_bytes as u64,
            raw_len: raw.len() as u64,
            offset: out.len() as u64,
            len: compressed.len() as u64,
            crc: crc32fast::hash(&compressed),
            bloom_offset: blooms.len() as u64,
            bloom_len: filter.len() as u64,
        });
        out.extend_from_slice(&compressed);
        blooms.extend_from_slice(&filter);
        start = end;
    }
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
        meta.extend_from_slice(&b.crc.to_le_bytes());
        write_uvarint(&mut meta, b.bloom_offset);
        write_uvarint(&mut meta, b.bloom_len);
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
    match words.finish() {
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
        let v2 = data.get(..8) == Some(&MAGIC2[..]);
        let footer_len = if v2 { FOOTER2_LEN } else { FOOTER_LEN };
        if n < MAGIC.len() + footer_len
            || (&data[..8] != MAGIC && !v2)
            || &data[n - 8..] != FOOTER_MAGIC
        {
            return Err(corrupt(&path, 0, "bad magic or truncated segment"));
        }
        let f = n - footer_len;
        let meta_off = le_u64(data, f);
        let meta_len = le_u64(data, f + 8);
        let meta_crc = le_u32(data, f + 16);
        let blooms_off = le_u64(data, f + 20);
        let blooms_len = le_u64(data, f + 28);
        let blooms_crc = le_u32(data, f + 36);
        let in_file = |off: u64, len: u64| {
            off.checked_add(len)
                .is_some_and(|end| end <= f as u64 && off >= MAGIC.len() as u64)
        };
        if !in_file(meta_off, meta_len) || !in_file(blooms_off, blooms_len) {
            return Err(corrupt(&path, f as u64, "footer offsets out of range"));
        }
        let words_section = if v2 {
            let (off, len, crc) = (
                le_u64(data, f + 40),
                le_u64(data, f + 48),
                le_u32(data, f + 56),
            );
            if !in_file(off, len) {
                return Err(corrupt(&path, f as u64, "footer offsets out of range"));
            }
            let section = &data[off as usize..(off + len) as usize];
            if crc32fast::hash(section) != crc {
                return Err(corrupt(&path, off, "word index checksum mismatch"));
            }
            Some((off, section))
        } else {
            None
        };
        let meta = &data[meta_off as usize..(meta_off + meta_len) as usize];
        if crc32fast::hash(meta) != meta_crc {
            return Err(corrupt(&path, meta_off, "segment table checksum mismatch"));
        }
        let blooms = &data[blooms_off as usize..(blooms_off + blooms_len) as usize];
        if crc32fast::hash(blooms) != blooms_crc {
            return Err(corrupt(&path, blooms_off, "bloom filter checksum mismatch"));
        }
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
            if b.len() < 4 {
                return Err(bad());
            }
            let crc = le_u32(b, 0);
            *b = &b[4..];
            let bloom_offset = read_uvarint(b).ok_or_else(bad)?;
            let bloom_len = read_uvarint(b).ok_or_else(bad)?;
            let ok = count <= u64::from(u32::MAX)
                && raw_len <= MAX_BLOCK_RAW
                && offset.checked_add(len).is_some_and(|e| e <= meta_off)
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
        let raw = zstd::bulk::decompress(data, b.raw_len as usize)
            .map_err(|e| corrupt(&self.path, b.offset, format!("zstd: {e}")))?;
        if must.iter().any(|f| f.find(&raw).is_none()) {
            return Ok(Vec::new());
        }
        let mut n = 0u32;
        let entries = decode_block(&raw, |s, t, l| {
            n += 1;
            s < self.streams.len() as u32 && keep(s, t, l)
        })
        .ok_or_else(|| corrupt(&self.path, b.offset, "malformed block"))?;
        if n != b.count {
            return Err(corrupt(&self.path, b.offset, "block entry count mismatch"));
        }
        Ok(entries)
    }

    /// False when block `i` certainly lacks one of the token hashes.
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

    /// Distinct words of the word index (`None`: format 1, no word index).
    #[cfg(test)]
    pub(crate) fn word_count(&self) -> Option<usize> {
        self.words.as_ref().map(WordIndex::len)
    }

    /// Bytes of the Bloom filters (the content index), for size reports.
    pub(crate) fn index_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.bloom_len).sum::<u64>() + self.words_bytes
    }
}
