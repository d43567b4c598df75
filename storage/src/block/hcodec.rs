//! The block chunk codec for native histograms: up to a few hundred histogram samples of one
//! series, stored column-wise so that zstd (applied over whole pages by the block writer)
//! sees long runs of similar bytes.
//!
//! What rarely changes — schema, zero threshold, spans, custom bounds — is stored once per
//! distinct *layout*, and each sample refers to its layout by index. The float columns (zero
//! count, count, sum, and all bucket counts) store each value against its predecessor (the
//! previous sample's value; for a bucket, the same bucket of the previous sample when both
//! samples share a layout): as integer differences when every value of the column is an exact
//! integer, else as XOR of the IEEE-754 bit patterns. Either way every float reads back
//! bit-exactly (NaN payloads, −0, ±Inf). Layout in `storage/FORMAT.md`, "Histogram chunk".

use super::codec::{decode_ints, encode_ints, read_planes, write_planes};
use crate::varint::{read_uvarint, read_varint, write_uvarint, write_varint};
use crate::wal::{hint_code, hint_from_code, read_spans, write_spans};
use crate::{FloatHistogram, HistogramSample, Span};

/// First byte of a histogram chunk. A float chunk starts with its sample count, never 0.
const MARKER: u8 = 0;
const VERSION: u8 = 1;
const MODE_INT: u8 = 0;
const MODE_XOR: u8 = 1;
/// Writers cut chunks well below this; larger counts can only come from corruption.
const MAX_SAMPLES: usize = 1 << 16;
/// Upper bound on the bucket values of one chunk (corruption guard).
const MAX_BUCKET_VALUES: usize = 1 << 26;
const MAX_LAYOUT_BUCKETS: u64 = 1 << 20;

/// True when `data` is a histogram chunk rather than a float chunk.
pub(crate) fn is_histogram_chunk(data: &[u8]) -> bool {
    data.first() == Some(&MARKER)
}

/// Everything of a histogram except its counts and sum.
#[derive(Clone, Debug)]
struct Layout {
    schema: i32,
    zero_threshold: u64,
    positive_spans: Vec<Span>,
    negative_spans: Vec<Span>,
    n_positive: usize,
    n_negative: usize,
    custom_values: Vec<u64>,
}

impl Layout {
    fn of(h: &FloatHistogram) -> Layout {
        Layout {
            schema: h.schema,
            zero_threshold: h.zero_threshold.to_bits(),
            positive_spans: h.positive_spans.clone(),
            negative_spans: h.negative_spans.clone(),
            n_positive: h.positive_buckets.len(),
            n_negative: h.negative_buckets.len(),
            custom_values: h.custom_values.iter().map(|v| v.to_bits()).collect(),
        }
    }

    fn matches(&self, h: &FloatHistogram) -> bool {
        self.schema == h.schema
            && self.zero_threshold == h.zero_threshold.to_bits()
            && self.positive_spans == h.positive_spans
            && self.negative_spans == h.negative_spans
            && self.n_positive == h.positive_buckets.len()
            && self.n_negative == h.negative_buckets.len()
            && self.custom_values.len() == h.custom_values.len()
            && self
                .custom_values
                .iter()
                .zip(&h.custom_values)
                .all(|(a, b)| *a == b.to_bits())
    }

    fn n_buckets(&self) -> usize {
        self.n_positive + self.n_negative
    }

    fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, i64::from(self.schema));
        out.extend_from_slice(&self.zero_threshold.to_le_bytes());
        write_spans(&self.positive_spans, out);
        write_spans(&self.negative_spans, out);
        write_uvarint(out, self.n_positive as u64);
        write_uvarint(out, self.n_negative as u64);
        write_uvarint(out, self.custom_values.len() as u64);
        for v in &self.custom_values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn decode(data: &mut &[u8]) -> Option<Layout> {
        let schema = i32::try_from(read_varint(data)?).ok()?;
        let zero_threshold = read_u64(data)?;
        let positive_spans = read_spans(data)?;
        let negative_spans = read_spans(data)?;
        let n_positive = read_uvarint(data)?;
        let n_negative = read_uvarint(data)?;
        if n_positive > MAX_LAYOUT_BUCKETS || n_negative > MAX_LAYOUT_BUCKETS {
            return None;
        }
        let n_custom = read_uvarint(data)?;
        if n_custom > (data.len() / 8) as u64 {
            return None;
        }
        let custom_values = (0..n_custom)
            .map(|_| read_u64(data))
            .collect::<Option<_>>()?;
        Some(Layout {
            schema,
            zero_threshold,
            positive_spans,
            negative_spans,
            n_positive: n_positive as usize,
            n_negative: n_negative as usize,
            custom_values,
        })
    }
}

fn read_u64(data: &mut &[u8]) -> Option<u64> {
    let (v, tail) = data.split_first_chunk::<8>()?;
    *data = tail;
    Some(u64::from_le_bytes(*v))
}

/// Encodes histogram samples (sorted by time, at least one) into `out`.
pub(crate) fn encode(samples: &[HistogramSample], out: &mut Vec<u8>) {
    out.push(MARKER);
    out.push(VERSION);
    write_uvarint(out, samples.len() as u64);
    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    encode_ints(&ts, out);
    out.extend(samples.iter().map(|s| hint_code(s.h.counter_reset_hint)));

    let mut layouts: Vec<Layout> = Vec::new();
    let mut which: Vec<i64> = Vec::with_capacity(samples.len());
    for s in samples {
        // Layouts usually repeat the previous sample's; look there first.
        let prev = which.last().map(|&i| i as usize);
        let found = prev
            .filter(|&i| layouts[i].matches(&s.h))
            .or_else(|| layouts.iter().position(|l| l.matches(&s.h)));
        let idx = match found {
            Some(i) => i,
            None => {
                layouts.push(Layout::of(&s.h));
                layouts.len() - 1
            }
        };
        which.push(idx as i64);
    }
    write_uvarint(out, layouts.len() as u64);
    for l in &layouts {
        l.encode(out);
    }
    if layouts.len() > 1 {
        encode_ints(&which, out);
    }

    let scalar = |f: fn(&FloatHistogram) -> f64| -> Vec<(f64, Option<f64>)> {
        let mut prev = None;
        samples
            .iter()
            .map(|s| {
                let v = f(&s.h);
                (v, prev.replace(v))
            })
            .collect()
    };
    encode_floats(&scalar(|h| h.zero_count), out);
    encode_floats(&scalar(|h| h.count), out);
    encode_floats(&scalar(|h| h.sum), out);

    let mut buckets: Vec<(f64, Option<f64>)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let prev = (i > 0 && which[i] == which[i - 1]).then(|| &samples[i - 1].h);
        let cur = s.h.positive_buckets.iter().chain(&s.h.negative_buckets);
        match prev {
            Some(p) => {
                let before = p.positive_buckets.iter().chain(&p.negative_buckets);
                buckets.extend(cur.zip(before).map(|(v, q)| (*v, Some(*q))));
            }
            None => buckets.extend(cur.map(|v| (*v, None))),
        }
    }
    encode_floats(&buckets, out);
}

/// The integer a float column stores for `v` in integer mode, if `v` is exactly one.
fn as_int(v: f64) -> Option<i64> {
    let i = v as i64;
    ((i as f64).to_bits() == v.to_bits()).then_some(i)
}

/// A column of `(value, predecessor)` pairs: a mode byte, then byte planes of the residuals.
fn encode_floats(values: &[(f64, Option<f64>)], out: &mut Vec<u8>) {
    let ints: Option<Vec<u64>> = values
        .iter()
        .map(|&(v, p)| {
            let base = match p {
                Some(p) => as_int(p)?,
                None => 0,
            };
            Some(crate::varint::zigzag(as_int(v)?.wrapping_sub(base)))
        })
        .collect();
    match ints {
        Some(residuals) => {
            out.push(MODE_INT);
            write_planes(&residuals, out);
        }
        None => {
            out.push(MODE_XOR);
            let residuals: Vec<u64> = values
                .iter()
                .map(|&(v, p)| v.to_bits() ^ p.map_or(0, f64::to_bits))
                .collect();
            write_planes(&residuals, out);
        }
    }
}

/// Reads a column of `preds.len()` values; `preds[i]` indexes the predecessor among the values
/// already decoded (`None`: no predecessor).
fn decode_floats(data: &mut &[u8], preds: &[Option<usize>]) -> Option<Vec<f64>> {
    let (&mode, rest) = data.split_first()?;
    *data = rest;
    let residuals = read_planes(data, preds.len())?;
    let mut out: Vec<f64> = Vec::with_capacity(preds.len());
    for (r, p) in residuals.into_iter().zip(preds) {
        let prev = match p {
            Some(i) => Some(*out.get(*i)?),
            None => None,
        };
        let v = match mode {
            MODE_INT => {
                let base = prev.map_or(0, |p| p as i64);
                base.wrapping_add(crate::varint::unzigzag(r)) as f64
            }
            MODE_XOR => f64::from_bits(r ^ prev.map_or(0, f64::to_bits)),
            _ => return None,
        };
        out.push(v);
    }
    Some(out)
}

/// Decodes one histogram chunk, appending to `out`. `None` means the bytes are not a valid
/// histogram chunk.
pub(crate) fn decode(mut data: &[u8], out: &mut Vec<HistogramSample>) -> Option<()> {
    let (&marker, rest) = data.split_first()?;
    let (&version, rest) = rest.split_first()?;
    if marker != MARKER || version != VERSION {
        return None;
    }
    data = rest;
    let n = usize::try_from(read_uvarint(&mut data)?).ok()?;
    if n == 0 || n > MAX_SAMPLES {
        return None;
    }
    let ts = decode_ints(&mut data, n)?;
    let hints = data.get(..n)?;
    data = &data[n..];
    let n_layouts = usize::try_from(read_uvarint(&mut data)?).ok()?;
    if n_layouts == 0 || n_layouts > n {
        return None;
    }
    let layouts = (0..n_layouts)
        .map(|_| Layout::decode(&mut data))
        .collect::<Option<Vec<_>>>()?;
    let which: Vec<usize> = if n_layouts > 1 {
        decode_ints(&mut data, n)?
            .into_iter()
            .map(|i| usize::try_from(i).ok().filter(|&i| i < n_layouts))
            .collect::<Option<_>>()?
    } else {
        vec![0; n]
    };

    let scalar_preds: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
    let zero_counts = decode_floats(&mut data, &scalar_preds)?;
    let counts = decode_floats(&mut data, &scalar_preds)?;
    let sums = decode_floats(&mut data, &scalar_preds)?;

    let mut total = 0usize;
    let mut starts = Vec::with_capacity(n);
    let mut bucket_preds: Vec<Option<usize>> = Vec::new();
    for i in 0..n {
        let len = layouts[which[i]].n_buckets();
        starts.push(total);
        if total + len > MAX_BUCKET_VALUES {
            return None;
        }
        let same = i > 0 && which[i] == which[i - 1];
        bucket_preds.extend((0..len).map(|k| same.then(|| starts[i - 1] + k)));
        total += len;
    }
    let buckets = decode_floats(&mut data, &bucket_preds)?;
    if !data.is_empty() {
        return None;
    }

    out.reserve(n);
    for i in 0..n {
        let l = &layouts[which[i]];
        let b = &buckets[starts[i]..starts[i] + l.n_buckets()];
        out.push(HistogramSample {
            t: ts[i],
            h: FloatHistogram {
                counter_reset_hint: hint_from_code(hints[i])?,
                schema: l.schema,
                zero_threshold: f64::from_bits(l.zero_threshold),
                zero_count: zero_counts[i],
                count: counts[i],
                sum: sums[i],
                positive_spans: l.positive_spans.clone(),
                negative_spans: l.negative_spans.clone(),
                positive_buckets: b[..l.n_positive].to_vec(),
                negative_buckets: b[l.n_positive..].to_vec(),
                custom_values: l.custom_values.iter().map(|&v| f64::from_bits(v)).collect(),
            },
        });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::CUSTOM_BUCKETS_SCHEMA;
    use crate::series_data::histograms_identical;
    use crate::CounterResetHint;
    use proptest::prelude::*;

    fn roundtrip(samples: &[HistogramSample]) -> usize {
        let mut buf = Vec::new();
        encode(samples, &mut buf);
        assert!(is_histogram_chunk(&buf));
        let mut got = Vec::new();
        assert!(decode(&buf, &mut got).is_some(), "decode failed");
        assert_eq!(got.len(), samples.len());
        for (a, b) in got.iter().zip(samples) {
            assert_eq!(a.t, b.t);
            assert!(histograms_identical(&a.h, &b.h), "{:?} != {:?}", a.h, b.h);
        }
        buf.len()
    }

    fn exp(i: i64) -> FloatHistogram {
        let c = i as f64;
        FloatHistogram {
            counter_reset_hint: if i == 0 {
                CounterResetHint::CounterReset
            } else {
                CounterResetHint::NotCounterReset
            },
            schema: 3,
            zero_threshold: 2.938735877055719e-39,
            zero_count: c,
            count: 10.0 * c,
            sum: 0.1 * c,
            positive_spans: vec![
                Span {
                    offset: -1,
                    length: 3,
                },
                Span {
                    offset: 2,
                    length: 2,
                },
            ],
            negative_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![c, 2.0 * c, 3.0 * c, c, 2.0 * c],
            negative_buckets: vec![c],
            custom_values: vec![],
        }
    }

    #[test]
    fn regular_histograms_roundtrip_compactly() {
        let samples: Vec<HistogramSample> = (0..200)
            .map(|i| HistogramSample {
                t: 1_700_000_000_000 + i * 15_000,
                h: exp(i),
            })
            .collect();
        let bytes = roundtrip(&samples);
        // One layout; integer counts grow steadily, so the residual planes are one byte wide.
        assert!(bytes < 200 * 20, "{bytes}");
    }

    #[test]
    fn changing_layouts_specials_and_custom_buckets_roundtrip() {
        let mut samples = Vec::new();
        for i in 0..10 {
            let mut h = exp(i);
            if i % 3 == 1 {
                h.positive_spans.push(Span {
                    offset: 4,
                    length: 1,
                });
                h.positive_buckets.push(0.5);
            }
            if i == 4 {
                h.sum = f64::NAN;
                h.count = f64::INFINITY;
                h.zero_count = -0.0;
            }
            if i == 5 {
                h.sum = f64::from_bits(crate::STALE_NAN_BITS);
            }
            samples.push(HistogramSample { t: i, h });
        }
        samples.push(HistogramSample {
            t: 100,
            h: FloatHistogram {
                counter_reset_hint: CounterResetHint::Gauge,
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3.0,
                sum: 1.5,
                positive_spans: vec![Span {
                    offset: 0,
                    length: 2,
                }],
                positive_buckets: vec![1.0, 2.0],
                custom_values: vec![0.1, 1.0],
                ..Default::default()
            },
        });
        // A histogram whose bucket count does not match its spans is stored as given.
        samples.push(HistogramSample {
            t: 101,
            h: FloatHistogram {
                positive_buckets: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
        });
        roundtrip(&samples);
        roundtrip(&samples[..1]);
        roundtrip(&samples[..2]);
    }

    #[test]
    fn corrupt_input_is_rejected_not_panicking() {
        let samples: Vec<HistogramSample> = (0..5)
            .map(|i| HistogramSample { t: i, h: exp(i) })
            .collect();
        let mut buf = Vec::new();
        encode(&samples, &mut buf);
        for cut in 0..buf.len() {
            let mut out = Vec::new();
            assert!(decode(&buf[..cut], &mut out).is_none(), "prefix {cut}");
        }
    }

    proptest! {
        #[test]
        fn random_histograms_roundtrip(
            bits in proptest::collection::vec(any::<u64>(), 1..60),
            layout_change in proptest::collection::vec(any::<bool>(), 60),
        ) {
            let samples: Vec<HistogramSample> = bits.iter().enumerate().map(|(i, &b)| {
                let mut h = exp(i as i64);
                h.sum = f64::from_bits(b);
                h.positive_buckets[1] = f64::from_bits(b.rotate_left(7));
                if layout_change[i] {
                    h.schema = -1;
                }
                HistogramSample { t: i as i64 * 1000, h }
            }).collect();
            roundtrip(&samples);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            let mut d = data.clone();
            if let Some(first) = d.first_mut() { *first = MARKER; }
            let _ = decode(&d, &mut out);
        }
    }
}
