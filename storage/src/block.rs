//! Immutable, memory-mapped blocks: the on-disk form of everything older than the head.
//!
//! A block is a directory `blocks/<id>/` holding `chunks` (zstd pages of column chunks),
//! `index` (symbols, series, roaring postings, footer with checksums) and `meta.json`.
//! Opening one reads and checks the index (its sections' CRCs) and maps the chunk file; sample
//! data is read, and its page checksums verified, only when queried.
//!
//! Useful for: range scans of many series, label lookups by postings. Not useful for: updates —
//! a block never changes; compaction writes a new one and the old is removed when unreferenced.

pub(crate) mod codec;
mod format;
pub(crate) mod hcodec;
mod shared_pages;
pub(crate) mod tombstones;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::mmap::MappedFile;
use crate::series_data::SeriesSamples;
use crate::varint::{read_uvarint, read_varint};
use crate::{Label, Labels, MatchOp, Matcher, StorageError};
use format::*;

/// `meta.json`: the block's identity, time range, counts and lineage (an on-disk contract).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub ulid: String,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Exclusive, as in Prometheus.
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    pub version: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    #[serde(rename = "numSamples")]
    pub num_samples: u64,
    #[serde(rename = "numSeries")]
    pub num_series: u64,
    #[serde(rename = "numChunks")]
    pub num_chunks: u64,
    /// Bytes of `chunks` plus `index`.
    #[serde(rename = "numBytes")]
    pub num_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    pub level: u32,
    /// Ids of the level-1 blocks whose data this block holds.
    pub sources: Vec<String>,
    /// Ids of the blocks this one was compacted from; they are obsolete once it exists.
    #[serde(default)]
    pub parents: Vec<String>,
}

/// Where one chunk of a series lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkMeta {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    page_offset: u64,
    offset_in_page: u32,
    len: u32,
    /// Samples in the chunk (to size decode buffers).
    pub(crate) samples: u32,
}

/// The last decompressed page, so consecutive series in one page decompress it once.
#[derive(Default)]
pub(crate) struct PageCache {
    offset: Option<u64>,
    data: std::sync::Arc<Vec<u8>>,
}

/// Reusable buffers for [`Block::read_chunk_in`].
#[derive(Default)]
pub(crate) struct ChunkScratch {
    ts: Vec<i64>,
    samples: SeriesSamples,
}

pub(crate) struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: MappedFile,
    chunks: MappedFile,
    footer: Footer,
    n_symbols: usize,
    n_series: usize,
    n_ptable: usize,
    /// Set when the block is superseded or expired; the directory is removed on drop.
    obsolete: AtomicBool,
    /// The series and postings sections, stored zstd-compressed, inflated on first use so that
    /// opening a block stays O(footer).
    series_section: std::sync::OnceLock<Result<Vec<u8>, String>>,
    postings_section: std::sync::OnceLock<Result<Vec<u8>, String>>,
    /// Deleted samples (`tombstones.rs`); the only part of a block that changes.
    tombstones: RwLock<std::sync::Arc<tombstones::Tombstones<u32>>>,
    /// This block's key in [`shared_pages`].
    pages_key: u64,
}

impl Block {
    /// Opens and checks a block directory. Any inconsistency is a `Corruption` error.
    pub(crate) fn open(dir: &Path) -> Result<Block, StorageError> {
        let meta_path = dir.join(META_FILE);
        let meta_bytes = std::fs::read(&meta_path).map_err(|e| StorageError::io(&meta_path, e))?;
        let meta: BlockMeta = serde_json::from_slice(&meta_bytes)
            .map_err(|e| corrupt(&meta_path, 0, e.to_string()))?;
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&meta.version) {
            return Err(corrupt(
                &meta_path,
                0,
                format!("unsupported block format version {}", meta.version),
            ));
        }
        let index_path = dir.join(INDEX_FILE);
        let index = MappedFile::open(&index_path)?;
        let bytes = index.bytes();
        let footer =
            Footer::decode(bytes).map_err(|r| corrupt(&index_path, bytes.len() as u64, r))?;
        for (i, (start, end)) in footer.sections().into_iter().enumerate() {
            if crc32fast::hash(&bytes[start..end]) != footer.crcs[i] {
                return Err(corrupt(
                    &index_path,
                    start as u64,
                    format!("checksum mismatch in index section {i}"),
                ));
            }
        }
        let chunks_path = dir.join(CHUNKS_FILE);
        let chunks = MappedFile::open(&chunks_path)?;
        if !chunks.bytes().starts_with(CHUNKS_MAGIC) {
            return Err(corrupt(&chunks_path, 0, "bad magic".into()));
        }
        let n_symbols = u32_at(bytes, footer.symbols as usize) as usize;
        let n_series = usize::try_from(meta.stats.num_series)
            .map_err(|_| corrupt(&meta_path, 0, "series count out of range".into()))?;
        let n_ptable = u32_at(bytes, footer.ptable as usize) as usize;
        let fits =
            |start: u64, end: u64, n: usize, width: usize| (end - start) as usize >= 4 + n * width;
        if !fits(footer.symbols, footer.series, n_symbols, 4)
            || footer.postings - footer.series < 8
            || (n_series as u64).saturating_mul(4).saturating_add(4)
                > u64_at(bytes, footer.series as usize)
            || footer.ptable - footer.postings < 8
            || (footer.end - footer.ptable) as usize != 4 + n_ptable * PTABLE_ENTRY
        {
            return Err(corrupt(
                &index_path,
                0,
                "section sizes do not match their counts".into(),
            ));
        }
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            footer,
            n_symbols,
            n_series,
            series_section: std::sync::OnceLock::new(),
            postings_section: std::sync::OnceLock::new(),
            n_ptable,
            obsolete: AtomicBool::new(false),
            tombstones: RwLock::new(std::sync::Arc::new(tombstones::load(dir)?)),
            pages_key: shared_pages::new_block_key(),
        })
    }

    pub(crate) fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn n_series(&self) -> usize {
        self.n_series
    }

    /// The block covers `[min_time, max_time)`.
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time > mint
    }

    /// Marks the block for deletion once the last reader drops it.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::SeqCst);
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    fn symbol(&self, id: u32) -> Option<&str> {
        let bytes = self.index.bytes();
        let base = self.footer.symbols as usize;
        if id as usize >= self.n_symbols {
            return None;
        }
        let data_start = base + 4 + self.n_symbols * 4;
        let off = u32_at(bytes, base + 4 + id as usize * 4) as usize;
        let mut s = bytes.get(data_start + off..self.footer.series as usize)?;
        let len = read_uvarint(&mut s)? as usize;
        std::str::from_utf8(s.get(..len)?).ok()
    }

    /// The id of `s` in the sorted symbol table.
    fn find_symbol(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.n_symbols);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.symbol(mid as u32)?.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    fn ptable_entry(&self, i: usize) -> (u32, u32, u64, u32) {
        let b = self.index.bytes();
        let at = self.footer.ptable as usize + 4 + i * PTABLE_ENTRY;
        (
            u32_at(b, at),
            u32_at(b, at + 4),
            u64_at(b, at + 8),
            u32_at(b, at + 16),
        )
    }

    /// The range of postings-table entries for label name `name_sym`.
    fn name_entries(&self, name_sym: u32) -> std::ops::Range<usize> {
        let lower = |key: u32| {
            let (mut lo, mut hi) = (0usize, self.n_ptable);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if self.ptable_entry(mid).0 < key {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let start = lower(name_sym);
        let end = if name_sym == u32::MAX {
            self.n_ptable
        } else {
            lower(name_sym + 1)
        };
        start..end
    }

    /// An index section inflated from its stored `[u64 raw length][zstd frame]` form.
    fn section<'s>(
        &self,
        cell: &'s std::sync::OnceLock<Result<Vec<u8>, String>>,
        range: (u64, u64),
    ) -> Result<&'s [u8], StorageError> {
        let result = cell.get_or_init(|| {
            let stored = self
                .index
                .bytes()
                .get(range.0 as usize..range.1 as usize)
                .ok_or("section out of bounds")?;
            let raw_len = u64_at(stored, 0);
            if stored.len() < 8 || raw_len > MAX_SECTION_BYTES {
                return Err("bad section header".to_string());
            }
            let mut raw = Vec::with_capacity(raw_len as usize);
            zstd::stream::copy_decode(&stored[8..], &mut raw).map_err(|e| e.to_string())?;
            if raw.len() as u64 != raw_len {
                return Err("section length mismatch".to_string());
            }
            Ok(raw)
        });
        result
            .as_deref()
            .map_err(|e| corrupt(&self.index_path(), range.0, e.clone()))
    }

    fn series_bytes(&self) -> Result<&[u8], StorageError> {
        let bytes = self.section(
            &self.series_section,
            (self.footer.series, self.footer.postings),
        )?;
        if u32_at(bytes, 0) as usize != self.n_series || bytes.len() < 4 + self.n_series * 4 {
            return Err(corrupt(
                &self.index_path(),
                self.footer.series,
                "series count does not match the metadata".into(),
            ));
        }
        Ok(bytes)
    }

    fn postings_at(&self, entry: usize) -> Result<RoaringBitmap, StorageError> {
        let (_, _, offset, len) = self.ptable_entry(entry);
        let area = self.section(
            &self.postings_section,
            (self.footer.postings, self.footer.ptable),
        )?;
        let start = offset as usize;
        let bytes = area.get(start..start + len as usize).ok_or_else(|| {
            corrupt(
                &self.index_path(),
                start as u64,
                "postings out of bounds".into(),
            )
        })?;
        RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| corrupt(&self.index_path(), start as u64, e.to_string()))
    }

    /// Ordinals of series having label `name` (any value).
    fn with_name(&self, name_sym: Option<u32>) -> Result<RoaringBitmap, StorageError> {
        let Some(sym) = name_sym else {
            return Ok(RoaringBitmap::new());
        };
        let range = self.name_entries(sym);
        match range.clone().last() {
            Some(last) if self.ptable_entry(last).1 == ALL_VALUES => self.postings_at(last),
            _ => Ok(RoaringBitmap::new()),
        }
    }

    fn select_one(&self, m: &Matcher) -> Result<RoaringBitmap, StorageError> {
        let name_sym = self.find_symbol(&m.name);
        let mut out = RoaringBitmap::new();
        if let Some(sym) = name_sym {
            let range = self.name_entries(sym);
            if m.op == MatchOp::Equal && !m.value.is_empty() {
                if let Some(v) = self.find_symbol(&m.value) {
                    if let Some(i) = range.clone().find(|&i| self.ptable_entry(i).1 == v) {
                        out |= self.postings_at(i)?;
                    }
                }
            } else {
                for i in range {
                    let value_sym = self.ptable_entry(i).1;
                    if value_sym == ALL_VALUES {
                        continue;
                    }
                    let value = self.symbol(value_sym).ok_or_else(|| {
                        corrupt(&self.index_path(), i as u64, "dangling symbol".into())
                    })?;
                    if m.matches(value) {
                        out |= self.postings_at(i)?;
                    }
                }
            }
        }
        if m.matches_empty() {
            let mut missing = RoaringBitmap::new();
            missing.insert_range(0..self.n_series as u32);
            missing -= self.with_name(name_sym)?;
            out |= missing;
        }
        Ok(out)
    }

    /// Ordinals (label order) of series matching every matcher.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Result<RoaringBitmap, StorageError> {
        let mut acc: Option<RoaringBitmap> = None;
        for m in matchers {
            let bm = self.select_one(m)?;
            acc = Some(match acc {
                None => bm,
                Some(a) => a & bm,
            });
            if acc.as_ref().is_some_and(RoaringBitmap::is_empty) {
                break;
            }
        }
        Ok(acc.unwrap_or_else(|| {
            let mut all = RoaringBitmap::new();
            all.insert_range(0..self.n_series as u32);
            all
        }))
    }

    /// The labels and chunk list of series `ordinal`.
    pub(crate) fn series(&self, ordinal: u32) -> Result<(Labels, Vec<ChunkMeta>), StorageError> {
        let bad = |why: &str| {
            corrupt(
                &self.index_path(),
                u64::from(ordinal),
                format!("series {ordinal}: {why}"),
            )
        };
        if ordinal as usize >= self.n_series {
            return Err(bad("ordinal out of range"));
        }
        let b = self.series_bytes()?;
        let entries = 4 + self.n_series * 4;
        let off = u32_at(b, 4 + ordinal as usize * 4) as usize;
        let mut s = b
            .get(entries + off..)
            .ok_or_else(|| bad("offset out of range"))?;
        let decode = |s: &mut &[u8]| -> Option<(Labels, Vec<ChunkMeta>)> {
            let n = read_uvarint(s)?;
            let mut labels = Vec::with_capacity(n.min(128) as usize);
            for _ in 0..n {
                let name = self.symbol(u32::try_from(read_uvarint(s)?).ok()?)?;
                let value = self.symbol(u32::try_from(read_uvarint(s)?).ok()?)?;
                labels.push(Label::new(name, value));
            }
            let n_chunks = read_uvarint(s)?;
            let mut chunks = Vec::with_capacity(n_chunks.min(1024) as usize);
            for _ in 0..n_chunks {
                let min_t = read_varint(s)?;
                let max_t = min_t.checked_add(i64::try_from(read_uvarint(s)?).ok()?)?;
                chunks.push(ChunkMeta {
                    min_t,
                    max_t,
                    page_offset: read_uvarint(s)?,
                    offset_in_page: u32::try_from(read_uvarint(s)?).ok()?,
                    len: u32::try_from(read_uvarint(s)?).ok()?,
                    samples: u32::try_from(read_uvarint(s)?).ok()?,
                });
            }
            Some((Labels::from_sorted(labels), chunks))
        };
        decode(&mut s).ok_or_else(|| bad("truncated entry"))
    }

    /// Decodes one chunk, appending its samples to `out`.
    pub(crate) fn read_chunk(
        &self,
        c: &ChunkMeta,
        cache: &mut PageCache,
        out: &mut SeriesSamples,
    ) -> Result<(), StorageError> {
        let (data, lo_stream) = self.chunk_data(c, cache)?;
        let decoded = if hcodec::is_histogram_chunk(data) {
            hcodec::decode(data, &mut out.hists)
        } else if let Some(lo) = lo_stream {
            codec::decode_split(data, lo, &mut out.floats)
        } else {
            codec::decode(data, &mut out.floats)
        };
        decoded.ok_or_else(|| self.undecodable(c))
    }

    /// As [`Block::read_chunk`], keeping only the samples in `[mint, maxt]`: a float chunk's
    /// values outside the range are skipped while decoding (its timestamps go through
    /// `scratch`), so a short window of a long chunk costs no copy of the whole chunk.
    pub(crate) fn read_chunk_in(
        &self,
        c: &ChunkMeta,
        (mint, maxt): (i64, i64),
        cache: &mut PageCache,
        scratch: &mut ChunkScratch,
        out: &mut SeriesSamples,
    ) -> Result<(), StorageError> {
        let (data, lo_stream) = self.chunk_data(c, cache)?;
        let decoded = if hcodec::is_histogram_chunk(data) {
            scratch.samples.clear();
            let decoded = hcodec::decode(data, &mut scratch.samples.hists);
            scratch.samples.copy_range_into(mint, maxt, out);
            decoded
        } else {
            let range = codec::TimeRange { mint, maxt };
            codec::decode_in(data, lo_stream, range, &mut scratch.ts, &mut out.floats)
        };
        decoded.ok_or_else(|| self.undecodable(c))
    }

    fn undecodable(&self, c: &ChunkMeta) -> StorageError {
        corrupt(
            &self.dir.join(CHUNKS_FILE),
            c.page_offset,
            "undecodable chunk".into(),
        )
    }

    /// The bytes of one chunk and, for format 3 pages, the page's low-plane stream; the page
    /// is decompressed into `cache` (or taken from the shared page cache).
    fn chunk_data<'c>(
        &self,
        c: &ChunkMeta,
        cache: &'c mut PageCache,
    ) -> Result<(&'c [u8], Option<&'c [u8]>), StorageError> {
        let path = || self.dir.join(CHUNKS_FILE);
        if cache.offset != Some(c.page_offset) {
            if let Some(data) = shared_pages::get(self.pages_key, c.page_offset) {
                cache.data = data;
                cache.offset = Some(c.page_offset);
            }
        }
        if cache.offset != Some(c.page_offset) {
            let bytes = self.chunks.bytes();
            let at = c.page_offset as usize;
            let header = bytes
                .get(at..at + PAGE_HEADER)
                .ok_or_else(|| corrupt(&path(), at as u64, "page header out of bounds".into()))?;
            let (clen, rlen, crc) = (
                u32_at(header, 0) as usize,
                u32_at(header, 4) as usize,
                u32_at(header, 8),
            );
            let body = bytes
                .get(at + PAGE_HEADER..at + PAGE_HEADER + clen)
                .ok_or_else(|| corrupt(&path(), at as u64, "page body out of bounds".into()))?;
            if crc32fast::hash(body) != crc {
                return Err(corrupt(&path(), at as u64, "page checksum mismatch".into()));
            }
            cache.offset = None;
            let mut data = Vec::with_capacity(rlen);
            zstd::stream::copy_decode(body, &mut data)
                .map_err(|e| corrupt(&path(), at as u64, e.to_string()))?;
            if data.len() != rlen {
                return Err(corrupt(&path(), at as u64, "page length mismatch".into()));
            }
            cache.data = std::sync::Arc::new(data);
            shared_pages::put(self.pages_key, c.page_offset, cache.data.clone());
            cache.offset = Some(c.page_offset);
        }
        // Format 3 pages: `u32` chunk-area length, the chunks, then the low-plane stream.
        let (area, lo_stream) = if self.meta.version >= 3 {
            let area_len = u32_at(&cache.data, 0) as usize;
            let end = PAGE_PREFIX
                .checked_add(area_len)
                .filter(|&e| e <= cache.data.len())
                .ok_or_else(|| {
                    corrupt(&path(), c.page_offset, "page prefix out of range".into())
                })?;
            (&cache.data[..end], Some(&cache.data[end..]))
        } else {
            (&cache.data[..], None)
        };
        let start = c.offset_in_page as usize;
        let data = area
            .get(start..start + c.len as usize)
            .filter(|_| lo_stream.is_none() || start >= PAGE_PREFIX)
            .ok_or_else(|| corrupt(&path(), c.page_offset, "chunk outside its page".into()))?;
        Ok((data, lo_stream))
    }

    /// All label names, sorted.
    pub(crate) fn label_names(&self) -> Vec<String> {
        (0..self.n_ptable)
            .map(|i| self.ptable_entry(i))
            .filter(|e| e.1 == ALL_VALUES)
            .filter_map(|e| self.symbol(e.0).map(str::to_string))
            .collect()
    }

    /// All values of `name`, sorted.
    pub(crate) fn label_values(&self, name: &str) -> Vec<String> {
        let Some(sym) = self.find_symbol(name) else {
            return Vec::new();
        };
        self.name_entries(sym)
            .map(|i| self.ptable_entry(i).1)
            .filter(|&v| v != ALL_VALUES)
            .filter_map(|v| self.symbol(v).map(str::to_string))
            .collect()
    }

    /// Bytes of the block's files.
    pub(crate) fn size_bytes(&self) -> u64 {
        (self.index.bytes().len() + self.chunks.bytes().len()) as u64
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if !self.obsolete.load(Ordering::SeqCst) {
            return;
        }
        // Rename first: a crash during the file-by-file delete then leaves a `*.tmp` directory,
        // which startup removes, rather than a half-deleted block that looks corrupt.
        let doomed = self.dir.with_extension("deleted.tmp");
        let target = match std::fs::rename(&self.dir, &doomed) {
            Ok(()) => {
                if let Some(parent) = doomed.parent() {
                    let _ = writer::sync_dir(parent);
                }
                doomed
            }
            Err(_) => self.dir.clone(),
        };
        if let Err(e) = std::fs::remove_dir_all(&target) {
            tracing::warn!(block = %target.display(), error = %e, "could not remove obsolete block");
        }
    }
}

fn corrupt(path: &Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corruption {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

/// A new block id: 26 characters that sort by creation time (milliseconds, then a counter).
pub(crate) fn new_block_id() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    format!(
        "{ms:013X}{:08X}{:05X}",
        (nanos ^ std::process::id() as u64) & 0xffff_ffff,
        n & 0xf_ffff
    )
}

#[cfg(test)]
mod probe;
#[cfg(test)]
mod tests;
