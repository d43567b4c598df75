//! Writes one immutable block: chunks in zstd pages, then the index, then `meta.json`, all in a
//! temporary directory that is fsynced and renamed into place, so a block is either wholly
//! visible or not at all.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::format::*;
use super::BlockMeta;
use super::{codec, hcodec};
use crate::series_data::SeriesSamples;
use crate::varint::{write_uvarint, write_varint};
use crate::{Labels, StorageError};

/// What a block is cut from: its time range and lineage.
pub(crate) struct BlockPlan {
    pub(crate) id: String,
    pub(crate) min_time: i64,
    /// Exclusive.
    pub(crate) max_time: i64,
    pub(crate) level: u32,
    pub(crate) sources: Vec<String>,
    pub(crate) parents: Vec<String>,
    pub(crate) zstd_level: i32,
}

/// Writes the series (sorted by labels; `fetch(i, out)` fills the samples of `labels[i]` that lie
/// in the plan's range) as block `plan.id` under `blocks_dir`. Series without samples are left
/// out; a block with no samples at all is not written (`Ok(None)`).
pub(crate) fn write_block(
    blocks_dir: &Path,
    plan: &BlockPlan,
    labels: &[Labels],
    fetch: impl FnMut(usize, &mut SeriesSamples) -> Result<(), StorageError>,
) -> Result<Option<BlockMeta>, StorageError> {
    write_block_version(blocks_dir, plan, labels, fetch, FORMAT_VERSION)
}

/// [`write_block`] in an older layout, so that tests can check old blocks still read.
#[cfg(test)]
pub(crate) fn write_legacy_block(
    blocks_dir: &Path,
    plan: &BlockPlan,
    labels: &[Labels],
    fetch: impl FnMut(usize, &mut SeriesSamples) -> Result<(), StorageError>,
) -> Result<Option<BlockMeta>, StorageError> {
    write_block_version(blocks_dir, plan, labels, fetch, 2)
}

fn write_block_version(
    blocks_dir: &Path,
    plan: &BlockPlan,
    labels: &[Labels],
    mut fetch: impl FnMut(usize, &mut SeriesSamples) -> Result<(), StorageError>,
    version: u32,
) -> Result<Option<BlockMeta>, StorageError> {
    let tmp = blocks_dir.join(format!("{}.tmp", plan.id));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    let result = write_into(&tmp, plan, labels, &mut fetch, version);
    match result {
        Ok(Some(meta)) => {
            let dest = blocks_dir.join(&plan.id);
            sync_dir(&tmp)?;
            fs::rename(&tmp, &dest).map_err(|e| StorageError::io(&dest, e))?;
            sync_dir(blocks_dir)?;
            Ok(Some(meta))
        }
        other => {
            let _ = fs::remove_dir_all(&tmp);
            other
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

struct ChunkWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes written to the file so far; the pending page starts here.
    written: u64,
    /// Format 2 pages have no prefix and unsplit chunks (written only by tests now).
    split: bool,
    /// The raw page being filled: `u32` length of the chunk area (patched when the page is
    /// flushed), then the chunks. Split chunks' low planes collect in `lo`, appended at flush.
    page: Vec<u8>,
    lo: Vec<u8>,
    compressed: Vec<u8>,
    zstd_level: i32,
}

impl ChunkWriter {
    /// Records the chunk just appended to the page at `offset_in_page` (spanning
    /// `(first t, last t, samples)`) in the series entry, and flushes the page when full.
    fn finish_chunk(
        &mut self,
        entry: &mut Vec<u8>,
        offset_in_page: usize,
        (first, last, n): (i64, i64, usize),
    ) -> Result<(), StorageError> {
        let len = self.page.len() - offset_in_page;
        write_varint(entry, first);
        write_uvarint(entry, last.wrapping_sub(first) as u64);
        write_uvarint(entry, self.written);
        write_uvarint(entry, offset_in_page as u64);
        write_uvarint(entry, len as u64);
        write_uvarint(entry, n as u64);
        if self.page.len() + self.lo.len() >= PAGE_TARGET_BYTES {
            self.flush_page()?;
        }
        Ok(())
    }

    fn prefix(&self) -> usize {
        if self.split {
            PAGE_PREFIX
        } else {
            0
        }
    }

    fn flush_page(&mut self) -> Result<(), StorageError> {
        let prefix = self.prefix();
        if self.page.len() <= prefix {
            return Ok(());
        }
        if self.split {
            let chunk_area = (self.page.len() - PAGE_PREFIX) as u32;
            self.page[..PAGE_PREFIX].copy_from_slice(&chunk_area.to_le_bytes());
            self.page.append(&mut self.lo);
        }
        self.compressed.clear();
        zstd::stream::copy_encode(self.page.as_slice(), &mut self.compressed, self.zstd_level)
            .map_err(|e| StorageError::io(&self.path, e))?;
        let mut header = [0u8; PAGE_HEADER];
        header[0..4].copy_from_slice(&(self.compressed.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&(self.page.len() as u32).to_le_bytes());
        header[8..12].copy_from_slice(&crc32fast::hash(&self.compressed).to_le_bytes());
        self.out
            .write_all(&header)
            .and_then(|_| self.out.write_all(&self.compressed))
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.written += (PAGE_HEADER + self.compressed.len()) as u64;
        self.page.clear();
        self.page.resize(prefix, 0);
        Ok(())
    }
}

fn write_into(
    dir: &Path,
    plan: &BlockPlan,
    labels: &[Labels],
    fetch: &mut impl FnMut(usize, &mut SeriesSamples) -> Result<(), StorageError>,
    version: u32,
) -> Result<Option<BlockMeta>, StorageError> {
    // Symbols are sorted, so symbol order is string order and postings sort by it directly.
    let strings: BTreeSet<&str> = labels
        .iter()
        .flat_map(|l| l.iter().flat_map(|l| [l.name.as_str(), l.value.as_str()]))
        .collect();
    let symbols: Vec<&str> = strings.into_iter().collect();
    let sym_id: HashMap<&str, u32> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();

    let chunks_path = dir.join(CHUNKS_FILE);
    let file = File::create(&chunks_path).map_err(|e| StorageError::io(&chunks_path, e))?;
    let mut chunks = ChunkWriter {
        path: chunks_path.clone(),
        out: BufWriter::with_capacity(1 << 20, file),
        written: CHUNKS_MAGIC.len() as u64,
        split: version >= 3,
        page: Vec::with_capacity(PAGE_TARGET_BYTES + 64 * 1024),
        lo: Vec::with_capacity(PAGE_TARGET_BYTES),
        compressed: Vec::new(),
        zstd_level: plan.zstd_level,
    };
    chunks.page.resize(chunks.prefix(), 0);
    chunks
        .out
        .write_all(CHUNKS_MAGIC)
        .map_err(|e| StorageError::io(&chunks_path, e))?;

    let mut series_entries: Vec<u8> = Vec::new();
    let mut series_offsets: Vec<u32> = Vec::new();
    let mut postings: HashMap<(u32, u32), RoaringBitmap> = HashMap::new();
    let mut samples = SeriesSamples::default();
    let (mut num_samples, mut num_chunks) = (0u64, 0u64);
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);

    for (i, series_labels) in labels.iter().enumerate() {
        samples.clear();
        fetch(i, &mut samples)?;
        if samples.is_empty() {
            continue;
        }
        let ordinal = series_offsets.len() as u32;
        series_offsets.push(series_entries.len() as u32);
        write_uvarint(&mut series_entries, series_labels.len() as u64);
        for l in series_labels {
            let (n, v) = (sym_id[l.name.as_str()], sym_id[l.value.as_str()]);
            write_uvarint(&mut series_entries, u64::from(n));
            write_uvarint(&mut series_entries, u64::from(v));
            postings.entry((n, v)).or_default().insert(ordinal);
            postings.entry((n, ALL_VALUES)).or_default().insert(ordinal);
        }
        // Float chunks first, then histogram chunks; each kind in time order.
        let float_pieces = samples.floats.chunks(CHUNK_MAX_SAMPLES);
        let hist_pieces = samples.hists.chunks(HIST_CHUNK_MAX_SAMPLES);
        write_uvarint(
            &mut series_entries,
            (float_pieces.len() + hist_pieces.len()) as u64,
        );
        for piece in float_pieces {
            let offset_in_page = chunks.page.len();
            if chunks.split {
                codec::encode_split(piece, &mut chunks.page, &mut chunks.lo);
            } else {
                codec::encode(piece, &mut chunks.page);
            }
            let span = (piece[0].t, piece[piece.len() - 1].t, piece.len());
            chunks.finish_chunk(&mut series_entries, offset_in_page, span)?;
            num_chunks += 1;
        }
        for piece in hist_pieces {
            let offset_in_page = chunks.page.len();
            hcodec::encode(piece, &mut chunks.page);
            let span = (piece[0].t, piece[piece.len() - 1].t, piece.len());
            chunks.finish_chunk(&mut series_entries, offset_in_page, span)?;
            num_chunks += 1;
        }
        num_samples += samples.len() as u64;
        if let (Some(lo), Some(hi)) = (samples.min_t(), samples.max_t()) {
            min_t = min_t.min(lo);
            max_t = max_t.max(hi);
        }
    }
    if series_offsets.is_empty() {
        return Ok(None);
    }
    chunks.flush_page()?;
    let file = chunks
        .out
        .into_inner()
        .map_err(|e| StorageError::io(&chunks_path, e.into_error()))?;
    file.sync_all()
        .map_err(|e| StorageError::io(&chunks_path, e))?;
    let chunks_bytes = chunks.written;

    let index = encode_index(&symbols, &series_offsets, &series_entries, postings)?;
    let index_path = dir.join(INDEX_FILE);
    write_synced(&index_path, &index)?;

    let meta = BlockMeta {
        ulid: plan.id.clone(),
        min_time: plan.min_time.min(min_t),
        max_time: plan.max_time.max(max_t + 1),
        stats: super::BlockStats {
            num_samples,
            num_series: series_offsets.len() as u64,
            num_chunks,
            num_bytes: chunks_bytes + index.len() as u64,
        },
        compaction: super::Compaction {
            level: plan.level,
            sources: plan.sources.clone(),
            parents: plan.parents.clone(),
        },
        version,
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| StorageError::io(dir, e.into()))?;
    write_synced(&dir.join(META_FILE), &json)?;
    Ok(Some(meta))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut f = File::create(path).map_err(|e| StorageError::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| StorageError::io(path, e))
}

/// Appends `[u64 raw length][zstd frame of raw]`.
fn push_compressed(out: &mut Vec<u8>, raw: &[u8]) -> Result<(), StorageError> {
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    zstd::stream::copy_encode(raw, &mut *out, INDEX_ZSTD_LEVEL)
        .map_err(|e| StorageError::io("index section", e))
}

fn encode_index(
    symbols: &[&str],
    series_offsets: &[u32],
    series_entries: &[u8],
    postings: HashMap<(u32, u32), RoaringBitmap>,
) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(series_entries.len() * 2 + symbols.len() * 16);
    out.extend_from_slice(INDEX_MAGIC);
    let mut footer = Footer {
        symbols: out.len() as u64,
        ..Default::default()
    };

    let mut strings = Vec::new();
    out.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
    for s in symbols {
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        write_uvarint(&mut strings, s.len() as u64);
        strings.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&strings);

    footer.series = out.len() as u64;
    let mut series = Vec::with_capacity(4 + series_offsets.len() * 4 + series_entries.len());
    series.extend_from_slice(&(series_offsets.len() as u32).to_le_bytes());
    for o in series_offsets {
        series.extend_from_slice(&o.to_le_bytes());
    }
    series.extend_from_slice(series_entries);
    push_compressed(&mut out, &series)?;

    footer.postings = out.len() as u64;
    let mut keys: Vec<(u32, u32)> = postings.keys().copied().collect();
    keys.sort_unstable();
    let mut table = Vec::with_capacity(4 + keys.len() * PTABLE_ENTRY);
    table.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    let mut area = Vec::new();
    for key in &keys {
        let Some(bitmap) = postings.get(key) else {
            continue;
        };
        let offset = area.len() as u64;
        bitmap
            .serialize_into(&mut area)
            .map_err(|e| StorageError::io("index postings", e))?;
        let len = area.len() as u64 - offset;
        table.extend_from_slice(&key.0.to_le_bytes());
        table.extend_from_slice(&key.1.to_le_bytes());
        table.extend_from_slice(&offset.to_le_bytes());
        table.extend_from_slice(&(len as u32).to_le_bytes());
    }
    push_compressed(&mut out, &area)?;
    footer.ptable = out.len() as u64;
    out.extend_from_slice(&table);
    footer.end = out.len() as u64;
    for (i, (start, end)) in footer.sections().into_iter().enumerate() {
        footer.crcs[i] = crc32fast::hash(&out[start..end]);
    }
    footer.encode(&mut out);
    Ok(out)
}
