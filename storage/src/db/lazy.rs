//! Selection with deferred decoding: the matching series and where their chunks are, with the
//! samples decoded only when a caller asks for one series. A query that turns each series into
//! a short result (a rate per step, say) can then decode, use and drop series one at a time on
//! several threads, instead of holding every selected sample in memory at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::read::merge_samples;
use super::Db;
use crate::block::{Block, ChunkMeta, ChunkScratch, PageCache};
use crate::head::SeriesRef;
use crate::series_data::SeriesSamples;
use crate::{HistogramSample, Labels, Matcher, Sample, StorageError};

/// A selected series whose samples are decoded by [`LazySeries::load`].
pub struct LazySeries {
    labels: Labels,
    /// Where the samples are, oldest source first (blocks in time order, then the head).
    parts: Vec<Part>,
    /// For a series with head data: the database's head truncation count and its value when
    /// the series was listed.
    head_epoch: Option<(Arc<AtomicU64>, u64)>,
}

enum Part {
    Block {
        block: Arc<Block>,
        ordinal: u32,
        chunks: Vec<ChunkMeta>,
    },
    Head(SeriesRef),
}

/// Reusable buffers for [`LazySeries::load`]: one per thread, used for a run of series (the
/// last decompressed page of each block is kept, and neighbouring series usually share it).
#[derive(Default)]
pub struct LoadScratch {
    /// Page caches by block (its address while the block is held by the series listed).
    caches: Vec<(usize, PageCache)>,
    chunk: ChunkScratch,
    part: SeriesSamples,
}

impl LoadScratch {
    fn cache_for(&mut self, block: &Arc<Block>) -> &mut PageCache {
        let id = Arc::as_ptr(block) as usize;
        let at = match self.caches.iter().position(|(b, _)| *b == id) {
            Some(at) => at,
            None => {
                self.caches.push((id, PageCache::default()));
                self.caches.len() - 1
            }
        };
        &mut self.caches[at].1
    }
}

impl LazySeries {
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Decodes the series' samples in `[mint, maxt]` into `floats` and `histograms` (both
    /// replaced; their allocations are reused). Samples found in several sources are merged by
    /// time as [`crate::SeriesSource::select`] merges them.
    pub fn load(
        &self,
        mint: i64,
        maxt: i64,
        scratch: &mut LoadScratch,
        floats: &mut Vec<Sample>,
        histograms: &mut Vec<HistogramSample>,
    ) -> Result<(), StorageError> {
        let mut merged = SeriesSamples {
            floats: std::mem::take(floats),
            hists: std::mem::take(histograms),
        };
        merged.clear();
        let mut result = self.load_parts(mint, maxt, scratch, &mut merged);
        // Checked after reading: a truncation that starts later cannot have removed what was
        // read, one that started earlier may have moved samples to a block not listed.
        if let Some((count, listed)) = &self.head_epoch {
            if result.is_ok() && count.load(Ordering::SeqCst) != *listed {
                result = Err(StorageError::Unsupported(
                    "the head was truncated while this read was deferred; read again".into(),
                ));
            }
        }
        *floats = merged.floats;
        *histograms = merged.hists;
        result
    }

    fn load_parts(
        &self,
        mint: i64,
        maxt: i64,
        scratch: &mut LoadScratch,
        merged: &mut SeriesSamples,
    ) -> Result<(), StorageError> {
        for (i, part) in self.parts.iter().enumerate() {
            // The first source decodes straight into the result; later ones (rare: a series
            // in an older block and the head) are merged in.
            let mut part_samples = std::mem::take(&mut scratch.part);
            part_samples.clear();
            let target = if i == 0 {
                &mut *merged
            } else {
                &mut part_samples
            };
            let read = match part {
                Part::Block {
                    block,
                    ordinal,
                    chunks,
                } => read_block_series(block, *ordinal, chunks, mint, maxt, scratch, target),
                Part::Head(series) => {
                    let s = series.lock();
                    if s.overlaps(mint, maxt) {
                        s.data_in(mint, maxt, target);
                    }
                    Ok(())
                }
            };
            if i > 0 {
                merge_samples(merged, &mut part_samples);
            }
            scratch.part = part_samples;
            read?;
        }
        Ok(())
    }
}

/// One block's samples of one series in `[mint, maxt]`, deleted ones removed.
fn read_block_series(
    block: &Arc<Block>,
    ordinal: u32,
    chunks: &[ChunkMeta],
    mint: i64,
    maxt: i64,
    scratch: &mut LoadScratch,
    out: &mut SeriesSamples,
) -> Result<(), StorageError> {
    let wanted = || chunks.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint);
    out.floats.reserve(
        wanted()
            .filter(|c| c.min_t >= mint && c.max_t <= maxt)
            .map(|c| c.samples as usize)
            .sum(),
    );
    let LoadScratch { chunk, .. } = scratch;
    let mut chunk_scratch = std::mem::take(chunk);
    let cache = scratch.cache_for(block);
    let mut read = || -> Result<(), StorageError> {
        for c in wanted() {
            if c.min_t < mint || c.max_t > maxt {
                block.read_chunk_in(c, (mint, maxt), cache, &mut chunk_scratch, out)?;
            } else {
                block.read_chunk(c, cache, out)?;
            }
        }
        Ok(())
    };
    let read = read();
    scratch.chunk = chunk_scratch;
    read?;
    let tombstones = block.tombstones();
    tombstones.remove_deleted(&ordinal, &mut out.floats, 0);
    tombstones.remove_deleted(&ordinal, &mut out.hists, 0);
    Ok(())
}

impl Db {
    /// The series matching every matcher that may have samples in `[mint, maxt]`, sorted by
    /// labels, with their samples left undecoded. A series listed here can turn out to have
    /// no sample in the range (a chunk that only straddles it, deletions); decoding tells.
    pub(super) fn select_lazy_impl(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<LazySeries>, StorageError> {
        // Read before the blocks are listed: a truncation after this point is noticed.
        let epoch = self.head_truncations.load(Ordering::SeqCst);
        let mut runs: Vec<Vec<LazySeries>> = Vec::new();
        for block in self.blocks_overlapping(mint, maxt) {
            let selected = block.select(matchers)?;
            let mut run = Vec::with_capacity(selected.len() as usize);
            for ordinal in &selected {
                let (labels, mut chunks) = block.series(ordinal)?;
                chunks.retain(|c| c.min_t <= maxt && c.max_t >= mint);
                if chunks.is_empty() {
                    continue;
                }
                run.push(LazySeries {
                    labels,
                    parts: vec![Part::Block {
                        block: Arc::clone(&block),
                        ordinal,
                        chunks,
                    }],
                    head_epoch: None,
                });
            }
            runs.push(run);
        }
        let mut head: Vec<LazySeries> = self
            .head
            .select(matchers)
            .into_iter()
            .filter(|s| s.lock().overlaps(mint, maxt))
            .map(|s| LazySeries {
                labels: s.labels(),
                parts: vec![Part::Head(s)],
                head_epoch: Some((Arc::clone(&self.head_truncations), epoch)),
            })
            .collect();
        head.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        runs.push(head);
        Ok(merge_runs(runs))
    }
}

/// Joins per-source runs (each sorted by labels, sources oldest first) into one list sorted by
/// labels, a series found in several sources keeping all its parts in source order.
fn merge_runs(runs: Vec<Vec<LazySeries>>) -> Vec<LazySeries> {
    let mut runs: Vec<Vec<LazySeries>> = runs.into_iter().filter(|r| !r.is_empty()).collect();
    if runs.len() <= 1 {
        return runs.pop().unwrap_or_default();
    }
    let mut all: Vec<LazySeries> = runs.into_iter().flatten().collect();
    // Stable: equal label sets keep source order.
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<LazySeries> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if last.labels == s.labels => {
                last.parts.extend(s.parts);
                if s.head_epoch.is_some() {
                    last.head_epoch = s.head_epoch;
                }
            }
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_fixtures::{lbl, opts};
    use crate::{Sample, SeriesSource, STALE_NAN_BITS};

    fn eager(db: &Db, m: &[Matcher], mint: i64, maxt: i64) -> Vec<(String, Vec<(i64, u64)>)> {
        db.select(m, mint, maxt)
            .unwrap()
            .into_iter()
            .map(|s| {
                let pts = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
                (s.labels.to_string(), pts)
            })
            .collect()
    }

    fn lazy(db: &Db, m: &[Matcher], mint: i64, maxt: i64) -> Vec<(String, Vec<(i64, u64)>)> {
        let listed = db.select_lazy(m, mint, maxt).unwrap().unwrap();
        let mut scratch = LoadScratch::default();
        let (mut floats, mut hists) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        for s in &listed {
            s.load(mint, maxt, &mut scratch, &mut floats, &mut hists)
                .unwrap();
            if floats.is_empty() && hists.is_empty() {
                continue;
            }
            let pts = floats.iter().map(|x| (x.t, x.v.to_bits())).collect();
            out.push((s.labels().to_string(), pts));
        }
        out
    }

    #[test]
    fn a_deferred_head_read_after_a_truncation_asks_to_be_redone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts()).unwrap();
        let samples = |t0: i64| {
            (0..10)
                .map(|k| Sample {
                    t: t0 + k * 15_000,
                    v: 1.0,
                })
                .collect()
        };
        db.append(&[(lbl(1), samples(0))]).unwrap();
        db.flush().unwrap();
        db.append(&[(lbl(1), samples(1_000_000)), (lbl(2), samples(1_000_000))])
            .unwrap();
        let m = [Matcher::equal("__name__", "m")];
        let listed = db.select_lazy(&m, 0, i64::MAX).unwrap().unwrap();
        assert_eq!(listed.len(), 2);
        let mut scratch = LoadScratch::default();
        let (mut floats, mut hists) = (Vec::new(), Vec::new());
        listed[0]
            .load(0, i64::MAX, &mut scratch, &mut floats, &mut hists)
            .unwrap();
        assert_eq!(floats.len(), 20);
        // The head moves into a block the listing does not know.
        db.flush().unwrap();
        for s in &listed {
            let err = s.load(0, i64::MAX, &mut scratch, &mut floats, &mut hists);
            assert!(matches!(err, Err(StorageError::Unsupported(_))), "{err:?}");
        }
        // Listed again, everything is there.
        let again = db.select_lazy(&m, 0, i64::MAX).unwrap().unwrap();
        let mut total = 0;
        for s in &again {
            s.load(0, i64::MAX, &mut scratch, &mut floats, &mut hists)
                .unwrap();
            total += floats.len();
        }
        assert_eq!(total, 30);
    }

    #[test]
    fn deferred_decoding_reads_what_select_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts()).unwrap();
        let batch = |t0: i64, series: std::ops::Range<usize>| -> Vec<(Labels, Vec<Sample>)> {
            series
                .map(|i| {
                    let samples = (0..300)
                        .map(|k| {
                            let v = if k % 97 == 5 {
                                f64::from_bits(STALE_NAN_BITS)
                            } else {
                                (i * 1000 + k) as f64 / 8.0
                            };
                            Sample {
                                t: t0 + k as i64 * 15_000,
                                v,
                            }
                        })
                        .collect();
                    (lbl(i), samples)
                })
                .collect()
        };
        // Two blocks, then the head; series 0..40 are in all three, 40..60 only in the first
        // block, 60..80 only in the head.
        db.append(&batch(0, 0..60)).unwrap();
        db.flush().unwrap();
        db.append(&batch(4_500_000, 0..40)).unwrap();
        db.flush().unwrap();
        let mut head = batch(9_000_000, 0..40);
        head.extend(batch(9_000_000, 60..80));
        db.append(&head).unwrap();
        db.delete_series(&[Matcher::equal("i", "3")], 1_000_000, 5_000_000)
            .unwrap();
        let all = [Matcher::equal("__name__", "m")];
        let some = [Matcher::new(crate::MatchOp::Regex, "i", "1.|3|4.|7.").unwrap()];
        let mut compared = 0;
        for m in [&all[..], &some[..]] {
            for (mint, maxt) in [
                (i64::MIN, i64::MAX),
                (0, 100_000),
                (1_234_567, 4_567_890),
                (4_400_000, 9_100_000),
                (13_000_000, 20_000_000),
                (50_000_000, 60_000_000),
            ] {
                let want = eager(&db, m, mint, maxt);
                assert_eq!(lazy(&db, m, mint, maxt), want, "{mint}..{maxt}");
                compared += want.iter().map(|s| s.1.len()).sum::<usize>();
            }
        }
        assert!(compared > 50_000, "compared only {compared} samples");
    }
}
