//! Reads over blocks and head together. Each source yields series sorted by labels; samples of
//! a series found in several sources (overlapping blocks, or a block and a head that has not
//! been truncated yet) are merged by time, keeping one sample per timestamp.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Db;
use crate::block::{Block, ChunkScratch, PageCache};
use crate::series_data::SeriesSamples;
use crate::{Labels, Matcher, Series, SeriesSource, StorageError};

impl Db {
    pub(super) fn blocks_overlapping(&self, mint: i64, maxt: i64) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .iter()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect()
    }

    /// Labels of matching series with data in the range, sorted (blocks and head).
    fn matching_labels(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        let all = self.series_if_few(matchers, mint, maxt, usize::MAX)?;
        Ok(all.unwrap_or_default())
    }

    /// [`SeriesSource::series`] when the indexes select at most `max` series (counted over
    /// blocks and head before any series is opened), `None` otherwise: a caller can answer
    /// small lookups inline and hand large ones to a blocking thread.
    pub fn series_if_few(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max: usize,
    ) -> Result<Option<Vec<Labels>>, StorageError> {
        let blocks = self.blocks_overlapping(mint, maxt);
        let mut selections = Vec::with_capacity(blocks.len());
        let mut selected_total = 0usize;
        for block in &blocks {
            let selected = block.select(matchers)?;
            selected_total = selected_total.saturating_add(selected.len() as usize);
            selections.push(selected);
        }
        let head_selected = self.head.select(matchers);
        if selected_total.saturating_add(head_selected.len()) > max {
            return Ok(None);
        }
        // Each source yields its series sorted by labels (a block's ordinals are in label
        // order); the runs are merged at the end.
        let mut runs: Vec<Vec<Labels>> = Vec::new();
        for (block, selected) in blocks.iter().zip(selections) {
            let (tombstones, mut cache) = (block.tombstones(), PageCache::default());
            let mut run = Vec::with_capacity(selected.len() as usize);
            for ordinal in &selected {
                let (labels, chunks) = block.series(ordinal)?;
                if block.has_live_samples(&tombstones, ordinal, &chunks, mint, maxt, &mut cache)? {
                    run.push(labels);
                }
            }
            runs.push(run);
        }
        let mut head: Vec<Labels> = head_selected
            .iter()
            .filter(|series| series.lock().overlaps(mint, maxt))
            .map(|series| series.labels())
            .collect();
        head.sort_unstable();
        runs.push(head);
        Ok(Some(merge_label_runs(runs)))
    }

    /// Label names and values can come from the indexes alone when there are no matchers and
    /// no deletions: like Prometheus, every block and the head contribute their whole index
    /// when their time range overlaps the query's, without opening series.
    fn index_only(&self, matchers: &[Matcher]) -> bool {
        self.label_lookup_is_index_only(matchers)
    }

    /// Whether [`SeriesSource::label_names`] and [`SeriesSource::label_values`] answer from the
    /// indexes alone for `matchers` (no matchers, no deletions): cheap enough to run without
    /// moving to a blocking thread.
    pub fn label_lookup_is_index_only(&self, matchers: &[Matcher]) -> bool {
        matchers.is_empty()
            && !self.has_deletions()
            && self.head.total_ids() == self.head.num_series() as u64
    }

    fn head_overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.head
            .time_range()
            .is_some_and(|(lo, hi)| lo <= maxt && hi >= mint)
    }
}

/// Joins runs of label sets, each sorted, into one sorted list without duplicates.
fn merge_label_runs(runs: Vec<Vec<Labels>>) -> Vec<Labels> {
    let mut runs: Vec<Vec<Labels>> = runs.into_iter().filter(|r| !r.is_empty()).collect();
    if runs.len() <= 1 {
        return runs.pop().unwrap_or_default();
    }
    let mut all: Vec<Labels> = runs.into_iter().flatten().collect();
    // A concatenation of sorted runs: the standard sort merges them in O(n log runs).
    all.sort();
    all.dedup();
    all
}

/// Series read from one source (a block or the head), sorted by labels.
type SourceSeries = Vec<(Labels, SeriesSamples)>;

/// Below this many selected series a source is read on the calling thread: spawning costs
/// more than it saves.
const PARALLEL_MIN_SERIES: usize = 256;

/// Threads for reading one source: the available cores, capped so each gets a fair share.
fn read_threads(series: usize) -> usize {
    if series < PARALLEL_MIN_SERIES {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(series / (PARALLEL_MIN_SERIES / 2))
        .clamp(1, 16)
}

/// Runs `read` over contiguous slices of `items` on up to [`read_threads`] threads and
/// concatenates the results in order. Contiguous slices keep each thread on its own run of
/// series, so a block page is rarely decompressed by two threads.
fn read_parallel<T: Sync, R: Send>(
    items: &[T],
    read: impl Fn(&[T]) -> Result<Vec<R>, StorageError> + Sync,
) -> Result<Vec<R>, StorageError> {
    let threads = read_threads(items.len());
    if threads <= 1 {
        return read(items);
    }
    let per = items.len().div_ceil(threads);
    let read = &read;
    let parts: Vec<Result<Vec<R>, StorageError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .skip(1)
            .map(|part| scope.spawn(move || read(part)))
            .collect();
        // The first slice runs here while the others run on their threads.
        let mut parts = vec![read(&items[..per.min(items.len())])];
        for h in handles {
            match h.join() {
                Ok(part) => parts.push(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Merges per-source results (each sorted by labels, sources oldest first) into one list sorted
/// by labels, joining the samples of a series found in several sources by time and keeping one
/// sample per timestamp.
fn merge_sources(sources: Vec<SourceSeries>) -> Vec<Series> {
    let into_series = |(labels, samples): (Labels, SeriesSamples)| Series {
        labels,
        samples: samples.floats,
        histograms: samples.hists,
    };
    let mut sources: Vec<SourceSeries> = sources.into_iter().filter(|s| !s.is_empty()).collect();
    if sources.len() <= 1 {
        // One source: already sorted, nothing overlaps.
        return sources
            .pop()
            .unwrap_or_default()
            .into_iter()
            .map(into_series)
            .collect();
    }
    let mut all: SourceSeries = sources.into_iter().flatten().collect();
    // Stable: equal label sets keep source order (oldest first). The input is a concatenation
    // of sorted runs, which the standard stable sort merges in O(n log sources).
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<Series> = Vec::with_capacity(all.len());
    for (labels, mut samples) in all {
        match out.last_mut() {
            Some(last) if last.labels == labels => {
                let mut acc = SeriesSamples {
                    floats: std::mem::take(&mut last.samples),
                    hists: std::mem::take(&mut last.histograms),
                };
                merge_samples(&mut acc, &mut samples);
                last.samples = acc.floats;
                last.histograms = acc.hists;
            }
            _ => out.push(into_series((labels, samples))),
        }
    }
    out
}

/// Adds a later source's samples of one series to those of the earlier sources, emptying
/// `later`: appended when they follow in time (the usual case), otherwise merged by time
/// keeping the earlier source's sample where both have one.
pub(super) fn merge_samples(acc: &mut SeriesSamples, later: &mut SeriesSamples) {
    let last_t = match (acc.floats.last(), acc.hists.last()) {
        (Some(a), Some(b)) => Some(a.t.max(b.t)),
        (a, b) => a.map(|s| s.t).or(b.map(|h| h.t)),
    };
    let in_order = match (last_t, later.min_t()) {
        (Some(last), Some(first)) => first > last,
        _ => true,
    };
    acc.floats.append(&mut later.floats);
    acc.hists.append(&mut later.hists);
    if !in_order {
        acc.normalize();
    }
}

/// The block's samples of the selected series in `[mint, maxt]`, in label order.
fn read_block(
    block: &Block,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<SourceSeries, StorageError> {
    let ordinals: Vec<u32> = block.select(matchers)?.iter().collect();
    let tombstones = block.tombstones();
    read_parallel(&ordinals, |part| {
        let mut cache = PageCache::default();
        // Chunks that reach outside the range are decoded keeping only their samples in
        // range: an instant query's lookback window is a few samples of a chunk that may hold
        // thousands, and 100k series would otherwise each keep a whole-chunk allocation.
        let mut scratch = ChunkScratch::default();
        let mut out = Vec::with_capacity(part.len());
        for &ordinal in part {
            let (labels, chunks) = block.series(ordinal)?;
            let mut samples = SeriesSamples::default();
            let wanted = || chunks.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint);
            samples.floats.reserve(
                wanted()
                    .filter(|c| c.min_t >= mint && c.max_t <= maxt)
                    .map(|c| c.samples as usize)
                    .sum(),
            );
            for c in wanted() {
                if c.min_t < mint || c.max_t > maxt {
                    block.read_chunk_in(c, (mint, maxt), &mut cache, &mut scratch, &mut samples)?;
                } else {
                    block.read_chunk(c, &mut cache, &mut samples)?;
                }
            }
            tombstones.remove_deleted(&ordinal, &mut samples.floats, 0);
            tombstones.remove_deleted(&ordinal, &mut samples.hists, 0);
            if samples.floats.is_empty() {
                // Reserved for float chunks that turned out to be histogram chunks.
                samples.floats = Vec::new();
            }
            if !samples.is_empty() {
                out.push((labels, samples));
            }
        }
        Ok(out)
    })
}

/// The head's samples of the selected series in `[mint, maxt]`, in label order.
fn read_head(db: &Db, matchers: &[Matcher], mint: i64, maxt: i64) -> SourceSeries {
    let selected = db.head.select(matchers);
    let read = |part: &[crate::head::SeriesRef]| -> Result<SourceSeries, StorageError> {
        let mut out = Vec::with_capacity(part.len());
        for series in part {
            let s = series.lock();
            if !s.overlaps(mint, maxt) {
                continue;
            }
            let mut samples = SeriesSamples::default();
            s.data_in(mint, maxt, &mut samples);
            drop(s);
            if !samples.is_empty() {
                out.push((series.labels(), samples));
            }
        }
        Ok(out)
    };
    // Reading the head cannot fail.
    let mut out = read_parallel(&selected, read).unwrap_or_default();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

impl SeriesSource for Db {
    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Option<Vec<crate::LazySeries>>, StorageError> {
        match self.select_lazy_impl(matchers, mint, maxt) {
            Ok(series) => Ok(Some(series)),
            Err(e) => {
                self.quarantine_corrupt(&e);
                Err(e)
            }
        }
    }

    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let mut sources: Vec<SourceSeries> = Vec::new();
        for block in self.blocks_overlapping(mint, maxt) {
            match read_block(&block, matchers, mint, maxt) {
                Ok(series) => sources.push(series),
                Err(e) => {
                    // This query fails, but the block is moved aside so later ones answer
                    // from the rest.
                    self.quarantine_corrupt(&e);
                    return Err(e);
                }
            }
        }
        sources.push(read_head(self, matchers, mint, maxt));
        Ok(merge_sources(sources))
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let names: BTreeSet<String> = if self.index_only(matchers) {
            let mut set: BTreeSet<String> = BTreeSet::new();
            if self.head_overlaps(mint, maxt) {
                set.extend(self.head.all_label_names());
            }
            for block in self.blocks_overlapping(mint, maxt) {
                set.extend(block.label_names());
            }
            set
        } else {
            self.matching_labels(matchers, mint, maxt)?
                .iter()
                .flat_map(|l| l.iter().map(|l| l.name.clone()))
                .collect()
        };
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let values: BTreeSet<String> = if self.index_only(matchers) {
            let mut set: BTreeSet<String> = BTreeSet::new();
            if self.head_overlaps(mint, maxt) {
                set.extend(self.head.all_label_values(name));
            }
            for block in self.blocks_overlapping(mint, maxt) {
                set.extend(block.label_values(name));
            }
            set
        } else {
            self.matching_labels(matchers, mint, maxt)?
                .iter()
                .filter_map(|l| l.get(name).map(str::to_string))
                .collect()
        };
        Ok(values.into_iter().collect())
    }

    fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        self.matching_labels(matchers, mint, maxt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FloatHistogram, HistogramSample, Sample};

    fn floats(ts: &[i64], v: f64) -> SeriesSamples {
        SeriesSamples {
            floats: ts.iter().map(|&t| Sample { t, v }).collect(),
            hists: Vec::new(),
        }
    }

    fn name(n: &str) -> Labels {
        Labels::from_pairs([("__name__", n)])
    }

    #[test]
    fn merge_sources_orders_series_and_joins_overlaps() {
        let old = vec![
            (name("a"), floats(&[1, 2, 3], 1.0)),
            (name("c"), floats(&[1], 1.0)),
        ];
        // "a" overlaps the older source at t=3 (the first source's sample wins) and goes back
        // in time; "b" only exists here.
        let new = vec![
            (name("a"), floats(&[0, 3, 4], 2.0)),
            (name("b"), floats(&[5], 2.0)),
        ];
        let head = vec![(name("c"), floats(&[2], 3.0))];
        let out = merge_sources(vec![old, new, head]);
        let names: Vec<_> = out.iter().map(|s| s.labels.metric_name()).collect();
        assert_eq!(names, vec![Some("a"), Some("b"), Some("c")]);
        let a: Vec<_> = out[0].samples.iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(a, vec![(0, 2.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 2.0)]);
        let c: Vec<_> = out[2].samples.iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(c, vec![(1, 1.0), (2, 3.0)]);
    }

    #[test]
    fn merge_sources_drops_histograms_shadowed_by_floats_on_overlap() {
        let h = |t| HistogramSample {
            t,
            h: FloatHistogram::default(),
        };
        let first = vec![(name("x"), floats(&[5], 1.0))];
        let second = vec![(
            name("x"),
            SeriesSamples {
                floats: Vec::new(),
                hists: vec![h(4), h(5), h(6)],
            },
        )];
        let out = merge_sources(vec![first, second]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples.len(), 1);
        let ht: Vec<_> = out[0].histograms.iter().map(|h| h.t).collect();
        assert_eq!(ht, vec![4, 6]);
    }

    #[test]
    fn series_if_few_answers_small_selections_and_declines_large_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), crate::DbOptions::default()).expect("open");
        let batch = |t: i64, ids: std::ops::Range<usize>| -> Vec<(Labels, Vec<Sample>)> {
            ids.map(|i| {
                let l = Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:03}"))]);
                (l, vec![Sample { t, v: 1.0 }])
            })
            .collect()
        };
        db.append(&batch(0, 0..30)).expect("append");
        db.flush().expect("flush");
        db.append(&batch(100, 20..40)).expect("append");
        let m = [Matcher::equal("__name__", "m")];
        let all = db.series(&m, 0, 1000).expect("series");
        assert_eq!(all.len(), 40);
        // 30 in the block and 20 in the head are selected before opening any series.
        assert_eq!(db.series_if_few(&m, 0, 1000, 49).expect("lookup"), None);
        assert_eq!(
            db.series_if_few(&m, 0, 1000, 50).expect("lookup"),
            Some(all)
        );
        let late = db.series_if_few(&m, 50, 1000, 50).expect("lookup");
        assert_eq!(late.map(|l| l.len()), Some(20));
    }

    #[test]
    fn merge_label_runs_sorts_and_drops_duplicates() {
        let runs = vec![
            vec![name("a"), name("c"), name("e")],
            vec![],
            vec![name("b"), name("c"), name("f")],
            vec![name("a"), name("d")],
        ];
        let got: Vec<_> = merge_label_runs(runs)
            .iter()
            .map(|l| l.metric_name().unwrap_or_default().to_string())
            .collect();
        assert_eq!(got, ["a", "b", "c", "d", "e", "f"]);
        let one = merge_label_runs(vec![vec![], vec![name("x"), name("y")]]);
        assert_eq!(one, vec![name("x"), name("y")]);
    }

    #[test]
    fn read_parallel_keeps_order_and_propagates_errors() {
        let items: Vec<u32> = (0..10_000).collect();
        let out = read_parallel(&items, |part| Ok(part.iter().map(|x| x * 2).collect()));
        let expected: Vec<u32> = items.iter().map(|x| x * 2).collect();
        assert_eq!(out.ok(), Some(expected));
        let failed = read_parallel(&items, |part| {
            if part.contains(&9_999) {
                Err(StorageError::Closed)
            } else {
                Ok(part.to_vec())
            }
        });
        assert!(matches!(failed, Err(StorageError::Closed)));
    }

    #[test]
    fn select_reads_many_series_from_block_and_head_in_label_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), crate::DbOptions::default()).expect("open");
        let batch = |t0: i64| -> Vec<(Labels, Vec<Sample>)> {
            (0..1000)
                .map(|i| {
                    let l = Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:04}"))]);
                    let s = (0..10)
                        .map(|k| Sample {
                            t: t0 + k,
                            v: i as f64,
                        })
                        .collect();
                    (l, s)
                })
                .collect()
        };
        db.append(&batch(0)).expect("append");
        db.flush().expect("flush");
        db.append(&batch(100)).expect("append");
        let m = [Matcher::equal("__name__", "m")];
        let got = db.select(&m, 0, 1000).expect("select");
        assert_eq!(got.len(), 1000);
        assert!(got.windows(2).all(|w| w[0].labels < w[1].labels));
        for (i, s) in got.iter().enumerate() {
            assert_eq!(s.samples.len(), 20, "series {i}");
            assert!(s.samples.iter().all(|x| x.v == i as f64));
            assert!(s.samples.windows(2).all(|w| w[0].t < w[1].t));
        }
        // A window inside the block only.
        let got = db.select(&m, 3, 5).expect("select");
        assert!(got.iter().all(|s| s.samples.len() == 3));
    }
}
