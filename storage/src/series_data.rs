//! The samples of one series as they move between the head, the WAL, blocks and readers: float
//! samples and native histogram samples, each list sorted by time. A series may switch kinds
//! over time; the two lists never share a timestamp.

use crate::{FloatHistogram, HistogramSample, Sample};

/// Anything with a timestamp (float and histogram samples).
pub(crate) trait Timed {
    fn t(&self) -> i64;
}

impl Timed for Sample {
    fn t(&self) -> i64 {
        self.t
    }
}

impl Timed for HistogramSample {
    fn t(&self) -> i64 {
        self.t
    }
}

/// Float and histogram samples of one series.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SeriesSamples {
    pub(crate) floats: Vec<Sample>,
    pub(crate) hists: Vec<HistogramSample>,
}

impl SeriesSamples {
    pub(crate) fn clear(&mut self) {
        self.floats.clear();
        self.hists.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.floats.is_empty() && self.hists.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.floats.len() + self.hists.len()
    }

    /// The earliest timestamp (lists sorted).
    pub(crate) fn min_t(&self) -> Option<i64> {
        let f = self.floats.first().map(|s| s.t);
        let h = self.hists.first().map(|s| s.t);
        match (f, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The latest timestamp (lists sorted).
    pub(crate) fn max_t(&self) -> Option<i64> {
        let f = self.floats.last().map(|s| s.t);
        let h = self.hists.last().map(|s| s.t);
        match (f, h) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Appends the samples in `[mint, maxt]` to `out`, allocating exactly what they need.
    pub(crate) fn copy_range_into(&self, mint: i64, maxt: i64, out: &mut SeriesSamples) {
        let floats = in_range(&self.floats, mint, maxt);
        out.floats.reserve_exact(floats.len());
        out.floats.extend_from_slice(&floats);
        let hists = in_range(&self.hists, mint, maxt);
        out.hists.reserve_exact(hists.len());
        out.hists.extend_from_slice(&hists);
    }

    /// Sorts both lists by time, keeps one sample per timestamp, and drops histogram samples
    /// at timestamps that have a float sample (after merging overlapping sources).
    pub(crate) fn normalize(&mut self) {
        self.floats.sort_by_key(|s| s.t);
        self.floats.dedup_by_key(|s| s.t);
        self.hists.sort_by_key(|s| s.t);
        self.hists.dedup_by_key(|s| s.t);
        if !self.floats.is_empty() && !self.hists.is_empty() {
            let floats = &self.floats;
            self.hists
                .retain(|h| floats.binary_search_by_key(&h.t, |s| s.t).is_err());
        }
    }
}

/// The part of a list in `[mint, maxt]`, found by binary search when the list is sorted by
/// time (it always is when read from a block; the check is cheap next to decoding).
fn in_range<T: Timed + Clone>(list: &[T], mint: i64, maxt: i64) -> std::borrow::Cow<'_, [T]> {
    if list.windows(2).all(|w| w[0].t() <= w[1].t()) {
        let lo = list.partition_point(|s| s.t() < mint);
        let hi = list.partition_point(|s| s.t() <= maxt).max(lo);
        std::borrow::Cow::Borrowed(&list[lo..hi])
    } else {
        let keep = |s: &&T| s.t() >= mint && s.t() <= maxt;
        std::borrow::Cow::Owned(list.iter().filter(keep).cloned().collect())
    }
}

fn bits_eq(x: &[f64], y: &[f64]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
}

/// True when both histograms are the same bit for bit (NaN sums and the counter reset hint
/// included): what storage must give back.
#[cfg(test)]
pub(crate) fn histograms_identical(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.counter_reset_hint == b.counter_reset_hint
        && same_histogram_value(a, b)
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
}

/// The duplicate check of an append, as Prometheus' `Equals`: the same layout and bit-identical
/// counts and sum (so a resend with a NaN sum is recognised); the counter reset hint is not
/// compared.
pub(crate) fn same_histogram_value(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.schema == b.schema
        && a.zero_threshold == b.zero_threshold
        && a.zero_count.to_bits() == b.zero_count.to_bits()
        && a.count.to_bits() == b.count.to_bits()
        && a.sum.to_bits() == b.sum.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && bits_eq(&a.positive_buckets, &b.positive_buckets)
        && bits_eq(&a.negative_buckets, &b.negative_buckets)
        && bits_eq(&a.custom_values, &b.custom_values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_sorts_dedups_and_prefers_floats_on_shared_timestamps() {
        let h = |t| HistogramSample {
            t,
            h: FloatHistogram::default(),
        };
        let mut s = SeriesSamples {
            floats: vec![Sample { t: 5, v: 1.0 }, Sample { t: 1, v: 2.0 }],
            hists: vec![h(3), h(5), h(3), h(7)],
        };
        s.normalize();
        assert_eq!(s.floats.iter().map(|x| x.t).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(s.hists.iter().map(|x| x.t).collect::<Vec<_>>(), vec![3, 7]);
        assert_eq!((s.min_t(), s.max_t(), s.len()), (Some(1), Some(7), 4));
    }

    #[test]
    fn copy_range_into_keeps_inclusive_bounds_sorted_or_not() {
        let h = |t| HistogramSample {
            t,
            h: FloatHistogram::default(),
        };
        let f = |t| Sample { t, v: t as f64 };
        let ts = |s: &SeriesSamples| {
            let f: Vec<i64> = s.floats.iter().map(|x| x.t).collect();
            let h: Vec<i64> = s.hists.iter().map(|x| x.t).collect();
            (f, h)
        };
        let sorted = SeriesSamples {
            floats: (0..10).map(|i| f(i * 10)).collect(),
            hists: vec![h(5), h(15), h(95)],
        };
        let mut out = SeriesSamples::default();
        sorted.copy_range_into(20, 50, &mut out);
        assert_eq!(ts(&out), (vec![20, 30, 40, 50], vec![]));
        assert_eq!(out.floats.capacity(), 4);
        let mut out = SeriesSamples::default();
        sorted.copy_range_into(15, 95, &mut out);
        assert_eq!(
            ts(&out),
            (vec![20, 30, 40, 50, 60, 70, 80, 90], vec![15, 95])
        );
        let mut out = SeriesSamples::default();
        sorted.copy_range_into(91, 94, &mut out);
        assert!(out.is_empty());
        // Unsorted input is filtered, not binary-searched.
        let unsorted = SeriesSamples {
            floats: vec![f(30), f(10), f(50), f(20)],
            hists: vec![h(40), h(5)],
        };
        let mut out = SeriesSamples::default();
        unsorted.copy_range_into(10, 40, &mut out);
        assert_eq!(ts(&out), (vec![30, 10, 20], vec![40]));
    }

    #[test]
    fn identical_compares_bits() {
        let a = FloatHistogram {
            sum: f64::NAN,
            positive_buckets: vec![1.0],
            ..Default::default()
        };
        let mut b = a.clone();
        assert!(histograms_identical(&a, &b));
        b.positive_buckets[0] = -0.0;
        assert!(!histograms_identical(&a, &b));
        let mut c = a.clone();
        c.counter_reset_hint = crate::CounterResetHint::Gauge;
        assert!(!histograms_identical(&a, &c));
        // A resend that differs only in its hint is the same value (Prometheus' `Equals`).
        assert!(same_histogram_value(&a, &c));
        assert!(!same_histogram_value(&a, &b));
    }
}
