//! Reads over blocks and head together. Each source yields series sorted by labels; samples of
//! a series found in several sources (overlapping blocks, or a block and a head that has not
//! been truncated yet) are merged by time, keeping one sample per timestamp.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Db;
use crate::block::{Block, PageCache};
use crate::series_data::SeriesSamples;
use crate::{Labels, Matcher, Series, SeriesSource, StorageError};

impl Db {
    fn blocks_overlapping(&self, mint: i64, maxt: i64) -> Vec<Arc<Block>> {
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
        let mut out: BTreeSet<Labels> = BTreeSet::new();
        for block in self.blocks_overlapping(mint, maxt) {
            let (tombstones, mut cache) = (block.tombstones(), PageCache::default());
            for ordinal in &block.select(matchers)? {
                let (labels, chunks) = block.series(ordinal)?;
                if block.has_live_samples(&tombstones, ordinal, &chunks, mint, maxt, &mut cache)? {
                    out.insert(labels);
                }
            }
        }
        for series in self.head.select(matchers) {
            if series.lock().overlaps(mint, maxt) {
                out.insert(series.labels());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Label names and values can come from the indexes alone when there are no matchers and
    /// no deletions: like Prometheus, every block and the head contribute their whole index
    /// when their time range overlaps the query's, without opening series.
    fn index_only(&self, matchers: &[Matcher]) -> bool {
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

/// Accumulates series from several sources.
#[derive(Default)]
struct Merger {
    series: BTreeMap<Labels, (SeriesSamples, bool)>,
}

impl Merger {
    fn add(&mut self, labels: Labels, samples: SeriesSamples) {
        if samples.is_empty() {
            return;
        }
        match self.series.get_mut(&labels) {
            None => {
                self.series.insert(labels, (samples, false));
            }
            Some((existing, unsorted)) => {
                // Sources are read oldest first, so usually the new samples just follow.
                let in_order = match (existing.max_t(), samples.min_t()) {
                    (Some(last), Some(first)) => first > last,
                    _ => true,
                };
                *unsorted |= !in_order;
                existing.floats.extend(samples.floats);
                existing.hists.extend(samples.hists);
            }
        }
    }

    fn finish(self) -> Vec<Series> {
        self.series
            .into_iter()
            .map(|(labels, (mut samples, unsorted))| {
                if unsorted {
                    samples.normalize();
                }
                Series {
                    labels,
                    samples: samples.floats,
                    histograms: samples.hists,
                }
            })
            .collect()
    }
}

/// Adds the block's samples of matching series in `[mint, maxt]` to `merger`.
fn read_block(
    block: &Block,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
    merger: &mut Merger,
) -> Result<(), StorageError> {
    let mut cache = PageCache::default();
    let tombstones = block.tombstones();
    for ordinal in &block.select(matchers)? {
        let (labels, chunks) = block.series(ordinal)?;
        let mut samples = SeriesSamples::default();
        for c in chunks.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint) {
            block.read_chunk(c, &mut cache, &mut samples)?;
        }
        if chunks.iter().any(|c| c.min_t < mint || c.max_t > maxt) {
            samples.retain_range(mint, maxt);
        }
        tombstones.remove_deleted(&ordinal, &mut samples.floats, 0);
        tombstones.remove_deleted(&ordinal, &mut samples.hists, 0);
        merger.add(labels, samples);
    }
    Ok(())
}

impl SeriesSource for Db {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let mut merger = Merger::default();
        for block in self.blocks_overlapping(mint, maxt) {
            if let Err(e) = read_block(&block, matchers, mint, maxt, &mut merger) {
                // This query fails, but the block is moved aside so later ones answer from
                // the rest.
                self.quarantine_corrupt(&e);
                return Err(e);
            }
        }
        for series in self.head.select(matchers) {
            let s = series.lock();
            if !s.overlaps(mint, maxt) {
                continue;
            }
            let mut samples = SeriesSamples::default();
            s.data_in(mint, maxt, &mut samples);
            drop(s);
            merger.add(series.labels(), samples);
        }
        Ok(merger.finish())
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
