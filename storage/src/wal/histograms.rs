//! WAL record 3, native histogram samples, and the histogram encoding it uses
//! (`storage/FORMAT.md`, "WAL segments and checkpoints").

use crate::varint::{read_uvarint, read_varint, write_uvarint, write_varint};
use crate::{CounterResetHint, FloatHistogram, HistogramSample, Span};

/// Payload after the record type: uvarint count, varint base timestamp, then per sample uvarint
/// series id, varint (t − base) and the histogram.
pub(super) fn encode_histograms(samples: &[(u32, &HistogramSample)], out: &mut Vec<u8>) {
    write_uvarint(out, samples.len() as u64);
    let base_t = samples.first().map_or(0, |(_, s)| s.t);
    write_varint(out, base_t);
    for (id, s) in samples {
        write_uvarint(out, u64::from(*id));
        write_varint(out, s.t.wrapping_sub(base_t));
        encode_histogram(&s.h, out);
    }
}

pub(super) fn decode_histograms(mut rest: &[u8]) -> Option<Vec<(u32, HistogramSample)>> {
    let n = read_uvarint(&mut rest)?;
    let base_t = read_varint(&mut rest)?;
    let mut out = Vec::with_capacity(n.min(rest.len() as u64) as usize);
    for _ in 0..n {
        let id = u32::try_from(read_uvarint(&mut rest)?).ok()?;
        let t = base_t.checked_add(read_varint(&mut rest)?)?;
        let h = decode_histogram(&mut rest)?;
        out.push((id, HistogramSample { t, h }));
    }
    rest.is_empty().then_some(out)
}

pub(crate) fn hint_code(h: CounterResetHint) -> u8 {
    match h {
        CounterResetHint::Unknown => 0,
        CounterResetHint::CounterReset => 1,
        CounterResetHint::NotCounterReset => 2,
        CounterResetHint::Gauge => 3,
    }
}

pub(crate) fn hint_from_code(c: u8) -> Option<CounterResetHint> {
    Some(match c {
        0 => CounterResetHint::Unknown,
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        3 => CounterResetHint::Gauge,
        _ => return None,
    })
}

/// u8 counter reset hint, varint schema, f64 zero threshold, zero count, count and sum,
/// positive then negative spans (uvarint n, then varint offset and uvarint length each),
/// positive then negative bucket counts and the custom bounds (uvarint n, then n f64 each).
/// Every f64 is its 8-byte little-endian bit pattern.
pub(crate) fn encode_histogram(h: &FloatHistogram, out: &mut Vec<u8>) {
    out.push(hint_code(h.counter_reset_hint));
    write_varint(out, i64::from(h.schema));
    for v in [h.zero_threshold, h.zero_count, h.count, h.sum] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for spans in [&h.positive_spans, &h.negative_spans] {
        write_spans(spans, out);
    }
    for values in [&h.positive_buckets, &h.negative_buckets, &h.custom_values] {
        write_uvarint(out, values.len() as u64);
        for v in values.iter() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

pub(crate) fn write_spans(spans: &[Span], out: &mut Vec<u8>) {
    write_uvarint(out, spans.len() as u64);
    for s in spans {
        write_varint(out, i64::from(s.offset));
        write_uvarint(out, u64::from(s.length));
    }
}

pub(crate) fn read_spans(buf: &mut &[u8]) -> Option<Vec<Span>> {
    let n = read_uvarint(buf)?;
    if n > buf.len() as u64 {
        return None;
    }
    let mut spans = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let offset = i32::try_from(read_varint(buf)?).ok()?;
        let length = u32::try_from(read_uvarint(buf)?).ok()?;
        spans.push(Span { offset, length });
    }
    Some(spans)
}

fn read_f64(buf: &mut &[u8]) -> Option<f64> {
    let (v, tail) = buf.split_first_chunk::<8>()?;
    *buf = tail;
    Some(f64::from_le_bytes(*v))
}

fn read_f64s(buf: &mut &[u8]) -> Option<Vec<f64>> {
    let n = read_uvarint(buf)?;
    if n > (buf.len() / 8) as u64 {
        return None;
    }
    (0..n).map(|_| read_f64(buf)).collect()
}

pub(crate) fn decode_histogram(buf: &mut &[u8]) -> Option<FloatHistogram> {
    let (&hint, rest) = buf.split_first()?;
    *buf = rest;
    let counter_reset_hint = hint_from_code(hint)?;
    let schema = i32::try_from(read_varint(buf)?).ok()?;
    let zero_threshold = read_f64(buf)?;
    let zero_count = read_f64(buf)?;
    let count = read_f64(buf)?;
    let sum = read_f64(buf)?;
    let positive_spans = read_spans(buf)?;
    let negative_spans = read_spans(buf)?;
    let positive_buckets = read_f64s(buf)?;
    let negative_buckets = read_f64s(buf)?;
    let custom_values = read_f64s(buf)?;
    Some(FloatHistogram {
        counter_reset_hint,
        schema,
        zero_threshold,
        zero_count,
        count,
        sum,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_roundtrip_is_bit_exact_and_truncation_is_rejected() {
        let h = FloatHistogram {
            counter_reset_hint: CounterResetHint::Gauge,
            schema: -3,
            zero_threshold: 1e-128,
            zero_count: 2.0,
            count: 7.5,
            sum: f64::from_bits(0x7ff8_0000_0000_1234),
            positive_spans: vec![Span {
                offset: -2,
                length: 2,
            }],
            negative_spans: vec![Span {
                offset: 5,
                length: 1,
            }],
            positive_buckets: vec![1.0, -0.0],
            negative_buckets: vec![3.25],
            custom_values: vec![],
        };
        let mut buf = Vec::new();
        encode_histogram(&h, &mut buf);
        let got = decode_histogram(&mut buf.as_slice()).unwrap();
        assert!(crate::series_data::histograms_identical(&h, &got));
        for cut in 0..buf.len() {
            assert!(decode_histogram(&mut &buf[..cut]).is_none(), "prefix {cut}");
        }
    }
}
