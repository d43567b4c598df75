//! The column codec for block chunks: one chunk holds up to a few thousand samples of one
//! series as two columns, timestamps then values.
//!
//! Each column stores its first value and first delta as varints, then the remaining residuals
//! (deltas or deltas of deltas, whichever needs fewer bytes) as *byte planes*: all low bytes,
//! then all second bytes, and so on. Scrape data has small, similar residuals, so the planes
//! hold long runs that zstd (applied over whole pages by the block writer) squeezes well.
//!
//! Values are stored as decimal-scaled integers when every value of the chunk is `m / 10^e`
//! for one small `e` and round-trips bit-exactly (counters in centiseconds, byte gauges,
//! ratios with few digits); otherwise as XOR of consecutive IEEE-754 bit patterns. Either way
//! every float, NaN payloads, −0 and the staleness marker included, reads back bit-exactly.
//! The byte layout is specified in `storage/FORMAT.md`.

use crate::varint::{read_uvarint, unzigzag, write_uvarint, zigzag};
use crate::Sample;

/// Value kind byte for XOR-encoded floats; kinds 0..=MAX_DECIMAL_EXPONENT are decimal exponents.
const KIND_XOR: u8 = 255;
const MAX_DECIMAL_EXPONENT: u8 = 15;
/// Integers beyond this lose precision as f64, so decimal scaling stops there.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Writers cut chunks well below this; a larger count can only come from corruption.
pub(crate) const MAX_CHUNK_SAMPLES: usize = 1 << 16;

const MODE_DELTA: u8 = 1;
const MODE_DOD: u8 = 2;

/// Encodes samples (sorted by time, at least one) into `out`.
pub fn encode(samples: &[Sample], out: &mut Vec<u8>) {
    write_uvarint(out, samples.len() as u64);
    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    encode_ints(&ts, out);
    match decimal_exponent(samples) {
        Some(e) => {
            out.push(e);
            let scale = POW10[e as usize];
            let ms: Vec<i64> = samples
                .iter()
                .map(|s| (s.v * scale).round() as i64)
                .collect();
            encode_ints(&ms, out);
        }
        None => {
            out.push(KIND_XOR);
            let mut prev = 0u64;
            let xors: Vec<u64> = samples
                .iter()
                .map(|s| {
                    let bits = s.v.to_bits();
                    let x = bits ^ prev;
                    prev = bits;
                    x
                })
                .collect();
            write_planes(&xors, out);
        }
    }
}

/// Decodes one chunk, appending to `out`. `None` means the bytes are not a valid chunk.
pub fn decode(mut data: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    let n = usize::try_from(read_uvarint(&mut data)?).ok()?;
    if n > MAX_CHUNK_SAMPLES {
        return None;
    }
    let start = out.len();
    out.reserve(n);
    // Timestamps go straight into the output (values filled in below), so decoding allocates
    // nothing beyond `out` itself.
    let ok = for_each_int(&mut data, n, |t| out.push(Sample { t, v: 0.0 })).and_then(|()| {
        let (&kind, rest) = data.split_first()?;
        data = rest;
        let decoded = &mut out[start..];
        if kind == KIND_XOR {
            let mut bits = 0u64;
            let mut it = decoded.iter_mut();
            for_each_plane_value(&mut data, n, |x| {
                bits ^= x;
                if let Some(s) = it.next() {
                    s.v = f64::from_bits(bits);
                }
            })
        } else if kind <= MAX_DECIMAL_EXPONENT {
            let mut it = decoded.iter_mut();
            for_each_int(&mut data, n, |m| {
                if let Some(s) = it.next() {
                    s.v = from_decimal(m, kind);
                }
            })
        } else {
            None
        }
    });
    if ok.is_none() || out.len() - start != n || !data.is_empty() {
        out.truncate(start);
        return None;
    }
    Some(())
}

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

fn from_decimal(m: i64, e: u8) -> f64 {
    if e == 0 {
        m as f64
    } else {
        m as f64 / POW10[e as usize]
    }
}

/// The smallest exponent at which every value is an exact decimal, if one exists. If `v` is
/// exact at `e` it is exact at every larger `e` (both are correctly rounded quotients of the
/// same real number), so the exponent only ever grows while scanning.
fn decimal_exponent(samples: &[Sample]) -> Option<u8> {
    let mut e = 0u8;
    for s in samples {
        loop {
            let scaled = (s.v * POW10[e as usize]).round();
            if scaled.abs() <= MAX_EXACT_INT
                && from_decimal(scaled as i64, e).to_bits() == s.v.to_bits()
            {
                break;
            }
            e += 1;
            if e > MAX_DECIMAL_EXPONENT {
                return None;
            }
        }
    }
    Some(e)
}

/// First value and first delta as varints, then residuals of the cheaper mode as planes.
pub(crate) fn encode_ints(xs: &[i64], out: &mut Vec<u8>) {
    let Some(&first) = xs.first() else {
        return;
    };
    write_uvarint(out, zigzag(first));
    if xs.len() < 2 {
        return;
    }
    let first_delta = xs[1].wrapping_sub(xs[0]);
    write_uvarint(out, zigzag(first_delta));
    if xs.len() < 3 {
        return;
    }
    let deltas: Vec<u64> = xs
        .windows(2)
        .skip(1)
        .map(|w| zigzag(w[1].wrapping_sub(w[0])))
        .collect();
    let mut prev_delta = first_delta;
    let dods: Vec<u64> = xs
        .windows(2)
        .skip(1)
        .map(|w| {
            let d = w[1].wrapping_sub(w[0]);
            let dod = d.wrapping_sub(prev_delta);
            prev_delta = d;
            zigzag(dod)
        })
        .collect();
    let width = |v: &[u64]| v.iter().fold(0u64, |acc, x| acc | x);
    if width(&dods) <= width(&deltas) {
        out.push(MODE_DOD);
        write_planes(&dods, out);
    } else {
        out.push(MODE_DELTA);
        write_planes(&deltas, out);
    }
}

pub(crate) fn decode_ints(data: &mut &[u8], n: usize) -> Option<Vec<i64>> {
    let mut out = Vec::with_capacity(n);
    for_each_int(data, n, |v| out.push(v))?;
    Some(out)
}

/// Decodes a column of `n` integers written by `encode_ints`, handing each to `f` in order.
/// On `None` (invalid bytes) `f` may have seen a prefix of the column.
pub(crate) fn for_each_int(data: &mut &[u8], n: usize, mut f: impl FnMut(i64)) -> Option<()> {
    if n == 0 {
        return Some(());
    }
    let first = unzigzag(read_uvarint(data)?);
    f(first);
    if n == 1 {
        return Some(());
    }
    let first_delta = unzigzag(read_uvarint(data)?);
    let mut prev = first.wrapping_add(first_delta);
    f(prev);
    if n == 2 {
        return Some(());
    }
    let (&mode, rest) = data.split_first()?;
    *data = rest;
    let mut delta = first_delta;
    match mode {
        MODE_DELTA => for_each_plane_value(data, n - 2, |r| {
            delta = unzigzag(r);
            prev = prev.wrapping_add(delta);
            f(prev);
        }),
        MODE_DOD => for_each_plane_value(data, n - 2, |r| {
            delta = delta.wrapping_add(unzigzag(r));
            prev = prev.wrapping_add(delta);
            f(prev);
        }),
        _ => None,
    }
}

/// Reads `n` values stored by `write_planes`, handing each to `f` in order, without an
/// intermediate buffer: value `i` gathers byte `i` of every plane.
pub(crate) fn for_each_plane_value(
    data: &mut &[u8],
    n: usize,
    mut f: impl FnMut(u64),
) -> Option<()> {
    let (&width, rest) = data.split_first()?;
    let width = usize::from(width);
    if width > 8 {
        return None;
    }
    let bytes = rest.get(..width.checked_mul(n)?)?;
    *data = rest.get(width * n..)?;
    if n == 0 {
        return Some(());
    }
    match width {
        0 => (0..n).for_each(|_| f(0)),
        1 => bytes.iter().for_each(|&b| f(u64::from(b))),
        2 => {
            let (lo, hi) = bytes.split_at(n);
            for (&a, &b) in lo.iter().zip(hi) {
                f(u64::from(a) | u64::from(b) << 8);
            }
        }
        _ => {
            let planes: Vec<&[u8]> = bytes.chunks_exact(n).collect();
            for i in 0..n {
                let mut v = 0u64;
                for (p, plane) in planes.iter().enumerate() {
                    v |= u64::from(plane[i]) << (8 * p);
                }
                f(v);
            }
        }
    }
    Some(())
}

/// `width` (bytes per value, 0..=8) followed by `width` planes of `values.len()` bytes.
pub(crate) fn write_planes(values: &[u64], out: &mut Vec<u8>) {
    let all = values.iter().fold(0u64, |acc, v| acc | v);
    let width = (64 - all.leading_zeros()).div_ceil(8) as usize;
    out.push(width as u8);
    for plane in 0..width {
        let shift = plane * 8;
        out.extend(values.iter().map(|v| (v >> shift) as u8));
    }
}

pub(crate) fn read_planes(data: &mut &[u8], n: usize) -> Option<Vec<u64>> {
    let (&width, rest) = data.split_first()?;
    let width = usize::from(width);
    if width > 8 {
        return None;
    }
    let bytes = rest.get(..width.checked_mul(n)?)?;
    *data = rest.get(width * n..)?;
    let mut values = vec![0u64; n];
    for (plane, chunk) in bytes.chunks_exact(n.max(1)).take(width).enumerate() {
        let shift = plane * 8;
        for (v, b) in values.iter_mut().zip(chunk) {
            *v |= u64::from(*b) << shift;
        }
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(samples: &[Sample]) -> usize {
        let mut buf = Vec::new();
        encode(samples, &mut buf);
        let mut got = Vec::new();
        assert!(decode(&buf, &mut got).is_some(), "decode failed");
        assert_eq!(got.len(), samples.len());
        for (a, b) in got.iter().zip(samples) {
            assert_eq!((a.t, a.v.to_bits()), (b.t, b.v.to_bits()));
        }
        buf.len()
    }

    fn series(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample {
                t: 1_700_000_000_000 + i as i64 * 15_000,
                v,
            })
            .collect()
    }

    #[test]
    fn decimal_counters_are_small() {
        let values: Vec<f64> = (0..480)
            .map(|i| 2_575_720.29 + f64::from(i) * 15.07)
            .collect();
        let values: Vec<f64> = values.iter().map(|v| (v * 100.0).round() / 100.0).collect();
        let bytes = roundtrip(&series(&values));
        // Regular timestamps cost ~1 byte each before zstd, values ~2.
        assert!(bytes < 480 * 4, "{bytes}");
    }

    #[test]
    fn specials_fall_back_to_xor() {
        let v = [
            1.0,
            -0.0,
            f64::NAN,
            f64::from_bits(crate::STALE_NAN_BITS),
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324,
            f64::MAX,
        ];
        roundtrip(&series(&v));
        roundtrip(&series(&[0.1, 0.2, 0.30000000000000004]));
    }

    #[test]
    fn tiny_chunks_and_irregular_times() {
        roundtrip(&[Sample { t: -5, v: 1.5 }]);
        roundtrip(&[
            Sample {
                t: i64::MIN,
                v: 1.0,
            },
            Sample {
                t: i64::MAX,
                v: 2.0,
            },
        ]);
        roundtrip(&[
            Sample { t: 0, v: 1.0 },
            Sample { t: 1, v: 2.0 },
            Sample {
                t: i64::MAX,
                v: 3.0,
            },
        ]);
    }

    #[test]
    fn corrupt_input_is_rejected_not_panicking() {
        let mut buf = Vec::new();
        encode(&series(&[1.0, 2.0, 3.0, 4.5]), &mut buf);
        for cut in 0..buf.len() {
            let mut out = Vec::new();
            assert!(
                decode(&buf[..cut], &mut out).is_none(),
                "prefix {cut} decoded"
            );
        }
        let mut out = Vec::new();
        assert!(decode(&[0xff; 12], &mut out).is_none());
    }

    proptest! {
        #[test]
        fn random_floats_roundtrip(
            deltas in proptest::collection::vec(1i64..100_000, 1..300),
            bits in proptest::collection::vec(any::<u64>(), 300),
        ) {
            let mut t = 0i64;
            let s: Vec<Sample> = deltas.iter().enumerate().map(|(i, d)| { t += d; Sample { t, v: f64::from_bits(bits[i]) } }).collect();
            roundtrip(&s);
        }

        #[test]
        fn decimal_walks_roundtrip(
            start in -1_000_000i64..1_000_000,
            steps in proptest::collection::vec(-5000i64..5000, 1..300),
            e in 0u32..6,
        ) {
            let mut m = start;
            let scale = 10f64.powi(e as i32);
            let s: Vec<Sample> = steps.iter().enumerate().map(|(i, d)| { m += d; Sample { t: i as i64 * 1000, v: m as f64 / scale } }).collect();
            roundtrip(&s);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            let _ = decode(&data, &mut out);
        }
    }
}
