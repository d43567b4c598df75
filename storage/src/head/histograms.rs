//! A head series' native histogram samples: sealed chunks in the block histogram encoding
//! (`block/hcodec.rs`, the same columns without the page compression) plus an open, decoded
//! chunk that takes appends. Like float chunks, a chunk is sealed at 120 samples and never
//! spans a multiple of the block range, so cutting a block never splits one.

use crate::block::hcodec;
use crate::chunk::SAMPLES_PER_CHUNK;
use crate::HistogramSample;

struct SealedChunk {
    min_t: i64,
    max_t: i64,
    count: usize,
    data: Box<[u8]>,
}

impl SealedChunk {
    fn decode_into(&self, out: &mut Vec<HistogramSample>) {
        let start = out.len();
        if hcodec::decode(&self.data, out).is_none() {
            // Only this process wrote these bytes; losing them would be a bug, not corruption.
            out.truncate(start);
            tracing::error!(
                min_t = self.min_t,
                count = self.count,
                "head histogram chunk does not decode"
            );
        }
    }
}

/// Histogram samples of one head series, sorted by time.
#[derive(Default)]
pub(crate) struct HistogramStore {
    sealed: Vec<SealedChunk>,
    open: Vec<HistogramSample>,
}

impl HistogramStore {
    /// Appends a sample newer than every stored one; `range` is the block range.
    pub(crate) fn push(&mut self, s: HistogramSample, range: i64) {
        if let Some(first) = self.open.first() {
            let crosses = s.t.div_euclid(range) != first.t.div_euclid(range);
            if crosses || self.open.len() >= usize::from(SAMPLES_PER_CHUNK) {
                self.seal();
            }
        }
        self.open.push(s);
    }

    fn seal(&mut self) {
        let (Some(first), Some(last)) = (self.open.first(), self.open.last()) else {
            return;
        };
        let mut data = Vec::new();
        hcodec::encode(&self.open, &mut data);
        self.sealed.push(SealedChunk {
            min_t: first.t,
            max_t: last.t,
            count: self.open.len(),
            data: crate::chunk::exact_copy(&data),
        });
        self.open.clear();
    }

    /// The newest sample (decoded from the last sealed chunk if the open one is empty).
    pub(crate) fn newest(&self) -> Option<HistogramSample> {
        if let Some(s) = self.open.last() {
            return Some(s.clone());
        }
        let mut out = Vec::new();
        self.sealed.last()?.decode_into(&mut out);
        out.pop()
    }

    pub(crate) fn min_t(&self) -> Option<i64> {
        match self.sealed.first() {
            Some(c) => Some(c.min_t),
            None => self.open.first().map(|s| s.t),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    pub(crate) fn num_chunks(&self) -> usize {
        self.sealed.len() + usize::from(!self.open.is_empty())
    }

    /// Appends the samples in `[mint, maxt]` to `out`, decoding only overlapping chunks.
    pub(crate) fn samples_in(&self, mint: i64, maxt: i64, out: &mut Vec<HistogramSample>) {
        let first = self.sealed.partition_point(|c| c.max_t < mint);
        for c in &self.sealed[first..] {
            if c.min_t > maxt {
                return;
            }
            let start = out.len();
            c.decode_into(out);
            if c.min_t < mint || c.max_t > maxt {
                let mut i = start;
                out.retain(|s| {
                    i += 1;
                    i <= start || (s.t >= mint && s.t <= maxt)
                });
            }
        }
        let start = self.open.partition_point(|s| s.t < mint);
        out.extend(
            self.open[start..]
                .iter()
                .take_while(|s| s.t <= maxt)
                .cloned(),
        );
    }

    /// Removes the samples in `[mint, maxt]` by re-encoding the rest; returns how many.
    pub(crate) fn delete_range(&mut self, mint: i64, maxt: i64, range: i64) -> u64 {
        let mut all = Vec::new();
        self.samples_in(i64::MIN, i64::MAX, &mut all);
        let total = all.len();
        all.retain(|s| s.t < mint || s.t > maxt);
        if all.len() == total {
            return 0;
        }
        let removed = (total - all.len()) as u64;
        self.sealed.clear();
        self.open.clear();
        for s in all {
            self.push(s, range);
        }
        removed
    }

    /// Drops the chunks that end before `before`; returns the samples dropped.
    pub(crate) fn truncate(&mut self, before: i64) -> u64 {
        let keep_from = self.sealed.partition_point(|c| c.max_t < before);
        let mut dropped: usize = self.sealed[..keep_from].iter().map(|c| c.count).sum();
        self.sealed.drain(..keep_from);
        if self.open.last().is_some_and(|s| s.t < before) {
            dropped += self.open.len();
            self.open.clear();
        }
        dropped as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FloatHistogram;

    fn h(t: i64) -> HistogramSample {
        HistogramSample {
            t,
            h: FloatHistogram {
                count: t as f64,
                sum: t as f64 * 0.5,
                ..Default::default()
            },
        }
    }

    #[test]
    fn chunks_seal_read_delete_and_truncate() {
        let mut store = HistogramStore::default();
        for t in 0..500 {
            store.push(h(t * 10), 1000);
        }
        // Sealed at every range boundary (100 samples each) — five chunks.
        assert_eq!(store.num_chunks(), 5);
        let mut out = Vec::new();
        store.samples_in(995, 2010, &mut out);
        let ts: Vec<i64> = out.iter().map(|s| s.t).collect();
        assert_eq!(ts, (100..=201).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(out[0].h.sum, 500.0);
        assert_eq!(store.delete_range(1000, 1990, 1000), 100);
        assert_eq!(store.num_chunks(), 4);
        assert_eq!(store.truncate(3000), 200);
        assert_eq!(store.min_t(), Some(3000));
        assert_eq!(store.newest().map(|s| s.t), Some(4990));
        assert_eq!(store.truncate(5000), 200);
        assert!(store.is_empty());
    }
}
