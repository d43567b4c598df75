//! The column codec for block chunks: one chunk holds up to a few thousand samples of one
//! series as two columns, timestamps then values.
//!
//! Each column stores its first value and first delta as varints, then the remaining residuals
//! (deltas or deltas of deltas, whichever is cheaper, divided by their greatest common divisor
//! when it exceeds 1) as *byte planes*: all low bytes, then all second bytes, and so on. Scrape
//! data has small, similar residuals, so the planes hold long runs that zstd (applied over whole
//! pages by the block writer) squeezes well.
//!
//! Values are stored as decimal-scaled integers when every value of the chunk is `m / 10^e`
//! for one small `e` and round-trips bit-exactly (counters in centiseconds, byte gauges,
//! ratios with few digits); otherwise as their IEEE-754 bit patterns, either XORed with the
//! previous one or as an integer column of the patterns (float counters grow steadily, so
//! their patterns' deltas are small). Every float, NaN payloads, −0 and the staleness marker
//! included, reads back bit-exactly.
//!
//! A *split* chunk (block format 3) sends every column's lower byte planes to a separate
//! low-plane stream of the page (`Dst::lo`), so that the nearly random low bytes of all
//! chunks sit together and the compressible headers and top planes sit together: zstd's
//! per-block entropy tables then fit each. The byte layout is specified in `storage/FORMAT.md`.

use crate::varint::{read_uvarint, unzigzag, write_uvarint, zigzag};
use crate::Sample;

/// Value kind byte for XOR-encoded floats; kinds 0..=MAX_DECIMAL_EXPONENT are decimal exponents.
const KIND_XOR: u8 = 255;
/// Value kind byte for floats stored as their bit patterns (read as i64) in an integer column.
const KIND_BITS: u8 = 254;
const MAX_DECIMAL_EXPONENT: u8 = 15;
/// Integers beyond this lose precision as f64, so decimal scaling stops there.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Writers cut chunks well below this; a larger count can only come from corruption.
pub(crate) const MAX_CHUNK_SAMPLES: usize = 1 << 16;

const MODE_DELTA: u8 = 1;
const MODE_DOD: u8 = 2;
/// As `MODE_DELTA` / `MODE_DOD`, with a uvarint common divisor (≥ 2) before the planes.
const MODE_DELTA_SCALED: u8 = 3;
const MODE_DOD_SCALED: u8 = 4;

/// Where encoded bytes go: everything to `hi`, except, when `lo` is given, each byte-plane
/// column's planes below its top one.
pub(crate) struct Dst<'a> {
    pub(crate) hi: &'a mut Vec<u8>,
    pub(crate) lo: Option<&'a mut Vec<u8>>,
}

/// The read side of [`Dst`]: cursors over the chunk's bytes and, for split chunks, over its
/// part of the page's low-plane stream.
struct Src<'a> {
    hi: &'a [u8],
    lo: Option<&'a [u8]>,
}

/// Encodes samples (sorted by time, at least one) into `out` as one unsplit chunk.
pub fn encode(samples: &[Sample], out: &mut Vec<u8>) {
    encode_into(samples, &mut Dst { hi: out, lo: None });
}

/// Encodes samples (sorted by time, at least one) as a split chunk: the chunk itself goes to
/// `hi`, its lower byte planes to the end of `lo_stream` (the page's low-plane stream), and the
/// chunk records where in that stream they start.
pub(crate) fn encode_split(samples: &[Sample], hi: &mut Vec<u8>, lo_stream: &mut Vec<u8>) {
    write_uvarint(hi, samples.len() as u64);
    write_uvarint(hi, lo_stream.len() as u64);
    encode_columns(
        samples,
        &mut Dst {
            hi,
            lo: Some(lo_stream),
        },
    );
}

fn encode_into(samples: &[Sample], out: &mut Dst<'_>) {
    write_uvarint(out.hi, samples.len() as u64);
    encode_columns(samples, out);
}

fn encode_columns(samples: &[Sample], out: &mut Dst<'_>) {
    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    encode_ints_to(&ts, out);
    match decimal_exponent(samples) {
        Some(e) => {
            out.hi.push(e);
            let scale = POW10[e as usize];
            let ms: Vec<i64> = samples
                .iter()
                .map(|s| (s.v * scale).round() as i64)
                .collect();
            encode_ints_to(&ms, out);
        }
        None => {
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
            let bits: Vec<i64> = samples.iter().map(|s| s.v.to_bits() as i64).collect();
            match (bits.len() >= 3).then(|| plan_ints(&bits)) {
                Some(plan) if plan.cost < bit_cost(xors.iter().skip(2).copied()) => {
                    out.hi.push(KIND_BITS);
                    write_uvarint(out.hi, zigzag(bits[0]));
                    write_uvarint(out.hi, zigzag(bits[1].wrapping_sub(bits[0])));
                    plan.write(out);
                }
                _ => {
                    out.hi.push(KIND_XOR);
                    write_planes_to(&xors, out);
                }
            }
        }
    }
}

/// Decodes one unsplit chunk, appending to `out`. `None` means the bytes are not a valid chunk.
pub fn decode(mut data: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    let n = usize::try_from(read_uvarint(&mut data)?).ok()?;
    decode_columns(Src { hi: data, lo: None }, n, out)
}

/// Decodes one split chunk whose low planes are in `lo_stream` (the page's low-plane stream).
pub(crate) fn decode_split(mut data: &[u8], lo_stream: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    let n = usize::try_from(read_uvarint(&mut data)?).ok()?;
    let lo_at = usize::try_from(read_uvarint(&mut data)?).ok()?;
    let lo = lo_stream.get(lo_at..)?;
    decode_columns(
        Src {
            hi: data,
            lo: Some(lo),
        },
        n,
        out,
    )
}

fn decode_columns(mut src: Src<'_>, n: usize, out: &mut Vec<Sample>) -> Option<()> {
    if n > MAX_CHUNK_SAMPLES {
        return None;
    }
    let start = out.len();
    // The samples are written in place (timestamps, then values): no per-sample growth
    // checks, and decoding allocates nothing beyond `out` itself.
    out.resize(start + n, Sample { t: 0, v: 0.0 });
    let dst = out.get_mut(start..).unwrap_or_default();
    if decode_into(&mut src, dst).is_none() || !src.hi.is_empty() {
        out.truncate(start);
        return None;
    }
    Some(())
}

/// Fills `dst` (one slot per sample of the chunk) with the chunk's timestamps and values.
fn decode_into(src: &mut Src<'_>, dst: &mut [Sample]) -> Option<()> {
    let n = dst.len();
    if let Some(Times::Regular { first, step }) = regular_times(src, n) {
        let mut t = first;
        for s in dst.iter_mut() {
            s.t = t;
            t = t.wrapping_add(step);
        }
    } else {
        let mut slots = dst.iter_mut();
        src.for_each_int(n, |t| {
            if let Some(s) = slots.next() {
                s.t = t;
            }
        })?;
        if slots.next().is_some() {
            return None;
        }
    }
    let (&kind, rest) = src.hi.split_first()?;
    src.hi = rest;
    let mut slots = dst.iter_mut();
    let mut set = |v: f64| {
        if let Some(s) = slots.next() {
            s.v = v;
        }
    };
    if kind == KIND_XOR {
        let mut bits = 0u64;
        src.for_each_plane_value(n, |x| {
            bits ^= x;
            set(f64::from_bits(bits));
        })
    } else if kind == KIND_BITS {
        src.for_each_int(n, |b| set(f64::from_bits(b as u64)))
    } else if kind <= MAX_DECIMAL_EXPONENT {
        let scale = POW10[usize::from(kind)];
        if kind == 0 {
            src.for_each_int(n, |m| set(m as f64))
        } else {
            src.for_each_int(n, |m| set(m as f64 / scale))
        }
    } else {
        None
    }
}

/// Inclusive time bounds of the samples a caller wants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeRange {
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
}

/// Decodes the samples of a chunk (split when `lo_stream` is given) whose timestamps lie in
/// `range`, appending them to `out`. All timestamps are decoded into `ts`; values outside the
/// range are only carried along (their deltas and XORs are needed for the ones after them),
/// never converted or stored. `None` means the bytes are not a valid chunk.
pub(crate) fn decode_in(
    mut data: &[u8],
    lo_stream: Option<&[u8]>,
    range: TimeRange,
    ts: &mut Vec<i64>,
    out: &mut Vec<Sample>,
) -> Option<()> {
    let n = usize::try_from(read_uvarint(&mut data)?).ok()?;
    let lo = match lo_stream {
        Some(stream) => {
            let at = usize::try_from(read_uvarint(&mut data)?).ok()?;
            Some(stream.get(at..)?)
        }
        None => None,
    };
    if n > MAX_CHUNK_SAMPLES {
        return None;
    }
    let mut src = Src { hi: data, lo };
    let times = match regular_times(&mut src, n) {
        Some(regular) => regular,
        None => {
            ts.clear();
            ts.reserve(n);
            src.for_each_int(n, |t| ts.push(t))?;
            if ts.len() != n {
                return None;
            }
            Times::Listed(ts)
        }
    };
    let (&kind, rest) = src.hi.split_first()?;
    src.hi = rest;
    // Chunks are sorted by time, so the wanted samples are one run `[first, end)`.
    let (first, end) = times.index_range(n, range);
    let start = out.len();
    out.reserve(end - first);
    let mut keep = Keep {
        i: 0,
        first,
        end,
        times,
        out,
    };
    let ok = if kind == KIND_XOR {
        let mut bits = 0u64;
        src.for_each_plane_value(n, |x| {
            bits ^= x;
            keep.push(|| f64::from_bits(bits));
        })
    } else if kind == KIND_BITS {
        src.for_each_int(n, |b| keep.push(|| f64::from_bits(b as u64)))
    } else if kind <= MAX_DECIMAL_EXPONENT {
        src.for_each_int(n, |m| keep.push(|| from_decimal(m, kind)))
    } else {
        None
    };
    let seen = keep.i;
    if ok.is_none() || seen != n || !src.hi.is_empty() {
        out.truncate(start);
        return None;
    }
    Some(())
}

/// The timestamps of a chunk being decoded.
enum Times<'a> {
    /// Decoded one by one.
    Listed(&'a [i64]),
    /// A regular interval (what scrapes usually produce: every delta of delta zero), known
    /// from the column's header without decoding it: `first + i × step`, `step > 0`.
    Regular { first: i64, step: i64 },
}

impl Times<'_> {
    #[inline]
    fn at(&self, i: usize) -> Option<i64> {
        match self {
            Times::Listed(ts) => ts.get(i).copied(),
            // In range: `regular_times` checked that the last timestamp fits.
            Times::Regular { first, step } => Some(first.wrapping_add(step.wrapping_mul(i as i64))),
        }
    }

    /// The indexes `[first, end)` of the `n` timestamps in `range` (sorted timestamps).
    fn index_range(&self, n: usize, range: TimeRange) -> (usize, usize) {
        match self {
            Times::Listed(ts) => {
                let first = ts.partition_point(|&t| t < range.mint);
                (first, ts.partition_point(|&t| t <= range.maxt).max(first))
            }
            Times::Regular { first: t0, step } => {
                let (t0, step) = (i128::from(*t0), i128::from(*step));
                // Timestamps below `t`: those with t0 + i·step < t, i.e. i < (t - t0) / step.
                let below = |t: i128| -> usize {
                    if t <= t0 {
                        return 0;
                    }
                    let k = (t - t0 + step - 1) / step;
                    usize::try_from(k).map_or(n, |k| k.min(n))
                };
                let first = below(i128::from(range.mint));
                let end = below(i128::from(range.maxt) + 1).max(first);
                (first, end)
            }
        }
    }
}

/// Reads the header of a timestamp column that holds a regular interval (delta-of-delta mode,
/// zero-width residual planes) and moves `src` past it; `None` (with `src` untouched) for any
/// other column, which is then decoded.
fn regular_times<'t>(src: &mut Src<'_>, n: usize) -> Option<Times<'t>> {
    if n < 3 {
        return None;
    }
    let mut hi = src.hi;
    let first = unzigzag(read_uvarint(&mut hi)?);
    let step = unzigzag(read_uvarint(&mut hi)?);
    let (&mode, rest) = hi.split_first()?;
    hi = rest;
    match mode {
        MODE_DOD => {}
        MODE_DOD_SCALED => {
            read_uvarint(&mut hi)?;
        }
        _ => return None,
    }
    let (&width, rest) = hi.split_first()?;
    if width != 0 || step <= 0 {
        return None;
    }
    // The last timestamp must not overflow (the decoder would wrap).
    let span = step.checked_mul(i64::try_from(n - 1).ok()?)?;
    first.checked_add(span)?;
    src.hi = rest;
    Some(Times::Regular { first, step })
}

/// Stores the values of a chunk whose index lies in `[first, end)` with their timestamps.
struct Keep<'a> {
    i: usize,
    first: usize,
    end: usize,
    times: Times<'a>,
    out: &'a mut Vec<Sample>,
}

impl Keep<'_> {
    #[inline]
    fn push(&mut self, v: impl FnOnce() -> f64) {
        if self.i >= self.first && self.i < self.end {
            if let Some(t) = self.times.at(self.i) {
                self.out.push(Sample { t, v: v() });
            }
        }
        self.i += 1;
    }
}

/// Whether an encoded unsplit chunk stores its values as XOR floats (measurement tools).
#[cfg(test)]
pub(crate) fn is_xor_chunk(mut data: &[u8]) -> bool {
    let Some(n) = read_uvarint(&mut data).and_then(|n| usize::try_from(n).ok()) else {
        return false;
    };
    let mut src = Src { hi: data, lo: None };
    src.for_each_int(n, |_| ()).is_some() && src.hi.first() == Some(&KIND_XOR)
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

/// First value and first delta as varints, then the residuals of the cheapest mode as planes.
pub(crate) fn encode_ints(xs: &[i64], out: &mut Vec<u8>) {
    encode_ints_to(xs, &mut Dst { hi: out, lo: None });
}

fn encode_ints_to(xs: &[i64], out: &mut Dst<'_>) {
    let Some(&first) = xs.first() else {
        return;
    };
    write_uvarint(out.hi, zigzag(first));
    if xs.len() < 2 {
        return;
    }
    write_uvarint(out.hi, zigzag(xs[1].wrapping_sub(xs[0])));
    if xs.len() < 3 {
        return;
    }
    plan_ints(xs).write(out);
}

/// How the residuals (values 2..n) of an integer column are stored.
struct IntPlan {
    mode: u8,
    /// Common divisor of the residuals (1: none).
    divisor: u64,
    /// zigzag(residual / divisor).
    planes: Vec<u64>,
    /// Estimated size: the significant bits of every stored residual.
    cost: u64,
}

impl IntPlan {
    fn write(&self, out: &mut Dst<'_>) {
        out.hi.push(self.mode);
        if self.divisor > 1 {
            write_uvarint(out.hi, self.divisor);
        }
        write_planes_to(&self.planes, out);
    }
}

/// Significant bits of all values: a proxy for their size once byte planes are compressed.
fn bit_cost(values: impl Iterator<Item = u64>) -> u64 {
    values.map(|v| u64::from(64 - v.leading_zeros())).sum()
}

/// Picks, for a column of at least three values, the cheaper of deltas and delta-of-deltas,
/// each divided by the greatest common divisor of its residuals when that exceeds 1 (byte
/// counts in multiples of 4096, frequencies in whole MHz, ...). Ties keep delta-of-deltas.
fn plan_ints(xs: &[i64]) -> IntPlan {
    let first_delta = xs[1].wrapping_sub(xs[0]);
    let deltas: Vec<i64> = xs
        .windows(2)
        .skip(1)
        .map(|w| w[1].wrapping_sub(w[0]))
        .collect();
    let mut prev = first_delta;
    let dods: Vec<i64> = deltas
        .iter()
        .map(|&d| {
            let dod = d.wrapping_sub(prev);
            prev = d;
            dod
        })
        .collect();
    let dod = scaled_plan(&dods, MODE_DOD, MODE_DOD_SCALED);
    let delta = scaled_plan(&deltas, MODE_DELTA, MODE_DELTA_SCALED);
    if dod.cost <= delta.cost {
        dod
    } else {
        delta
    }
}

fn scaled_plan(residuals: &[i64], mode: u8, scaled_mode: u8) -> IntPlan {
    let mut g = 0u64;
    for r in residuals {
        g = gcd(g, r.unsigned_abs());
        if g == 1 {
            break;
        }
    }
    // A divisor must fit an i64 (2^63 does not: the residual is then i64::MIN alone).
    let divisor = match i64::try_from(g) {
        Ok(d) if d > 1 => d,
        _ => 1,
    };
    let planes: Vec<u64> = residuals.iter().map(|r| zigzag(r / divisor)).collect();
    IntPlan {
        mode: if divisor > 1 { scaled_mode } else { mode },
        divisor: divisor as u64,
        cost: bit_cost(planes.iter().copied()),
        planes,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

pub(crate) fn decode_ints(data: &mut &[u8], n: usize) -> Option<Vec<i64>> {
    let mut out = Vec::with_capacity(n);
    let mut src = Src { hi: data, lo: None };
    src.for_each_int(n, |v| out.push(v))?;
    *data = src.hi;
    Some(out)
}

impl<'a> Src<'a> {
    /// Decodes a column of `n` integers written by `encode_ints_to`, handing each to `f` in
    /// order. On `None` (invalid bytes) `f` may have seen a prefix of the column.
    fn for_each_int(&mut self, n: usize, mut f: impl FnMut(i64)) -> Option<()> {
        if n == 0 {
            return Some(());
        }
        let first = unzigzag(read_uvarint(&mut self.hi)?);
        f(first);
        if n == 1 {
            return Some(());
        }
        let first_delta = unzigzag(read_uvarint(&mut self.hi)?);
        let mut prev = first.wrapping_add(first_delta);
        f(prev);
        if n == 2 {
            return Some(());
        }
        let (&mode, rest) = self.hi.split_first()?;
        self.hi = rest;
        let divisor = match mode {
            MODE_DELTA | MODE_DOD => 1,
            MODE_DELTA_SCALED | MODE_DOD_SCALED => {
                let d = i64::try_from(read_uvarint(&mut self.hi)?).ok()?;
                if d < 2 {
                    return None;
                }
                d
            }
            _ => return None,
        };
        let mut delta = first_delta;
        if mode == MODE_DELTA || mode == MODE_DELTA_SCALED {
            self.for_each_plane_value(n - 2, |r| {
                delta = unzigzag(r).wrapping_mul(divisor);
                prev = prev.wrapping_add(delta);
                f(prev);
            })
        } else {
            self.for_each_plane_value(n - 2, |r| {
                delta = delta.wrapping_add(unzigzag(r).wrapping_mul(divisor));
                prev = prev.wrapping_add(delta);
                f(prev);
            })
        }
    }

    /// Reads `n` values stored by `write_planes_to`, handing each to `f` in order, without an
    /// intermediate buffer: value `i` gathers byte `i` of every plane.
    fn for_each_plane_value(&mut self, n: usize, mut f: impl FnMut(u64)) -> Option<()> {
        let (&width, rest) = self.hi.split_first()?;
        self.hi = rest;
        let width = usize::from(width);
        if width > 8 {
            return None;
        }
        let mut planes: [&[u8]; 8] = [&[]; 8];
        for (p, plane) in planes.iter_mut().enumerate().take(width) {
            let from_lo = p + 1 < width && self.lo.is_some();
            let cursor = match (from_lo, self.lo.as_mut()) {
                (true, Some(lo)) => lo,
                _ => &mut self.hi,
            };
            *plane = cursor.get(..n)?;
            *cursor = cursor.get(n..)?;
        }
        if n == 0 {
            return Some(());
        }
        match width {
            0 => (0..n).for_each(|_| f(0)),
            1 => planes[0].iter().for_each(|&b| f(u64::from(b))),
            2 => {
                for (&a, &b) in planes[0].iter().zip(planes[1]) {
                    f(u64::from(a) | u64::from(b) << 8);
                }
            }
            _ => {
                for i in 0..n {
                    let mut v = 0u64;
                    for (p, plane) in planes.iter().enumerate().take(width) {
                        v |= u64::from(plane[i]) << (8 * p);
                    }
                    f(v);
                }
            }
        }
        Some(())
    }
}

/// `width` (bytes per value, 0..=8) followed by `width` planes of `values.len()` bytes.
pub(crate) fn write_planes(values: &[u64], out: &mut Vec<u8>) {
    write_planes_to(values, &mut Dst { hi: out, lo: None });
}

/// As [`write_planes`]; with a low-plane stream, the planes below the top one go there.
fn write_planes_to(values: &[u64], out: &mut Dst<'_>) {
    let all = values.iter().fold(0u64, |acc, v| acc | v);
    let width = (64 - all.leading_zeros()).div_ceil(8) as usize;
    out.hi.push(width as u8);
    for plane in 0..width {
        let shift = plane * 8;
        let dest = match out.lo.as_deref_mut() {
            Some(lo) if plane + 1 < width => lo,
            _ => &mut *out.hi,
        };
        dest.extend(values.iter().map(|v| (v >> shift) as u8));
    }
}

pub(crate) fn read_planes(data: &mut &[u8], n: usize) -> Option<Vec<u64>> {
    let mut values = Vec::with_capacity(n);
    let mut src = Src { hi: data, lo: None };
    src.for_each_plane_value(n, |v| values.push(v))?;
    *data = src.hi;
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

    /// Encodes each piece as a split chunk into one shared page (chunks after a 3-byte prefix,
    /// low planes after 5 unrelated bytes) and decodes them back.
    fn split_roundtrip(pieces: &[Vec<Sample>]) -> (usize, usize) {
        let mut hi = vec![9u8; 3];
        let mut lo = vec![7u8; 5];
        let mut spans = Vec::new();
        for p in pieces {
            let at = hi.len();
            encode_split(p, &mut hi, &mut lo);
            spans.push(at..hi.len());
        }
        for (p, span) in pieces.iter().zip(&spans) {
            let mut got = Vec::new();
            assert!(decode_split(&hi[span.clone()], &lo, &mut got).is_some());
            assert_eq!(got.len(), p.len());
            for (a, b) in got.iter().zip(p) {
                assert_eq!((a.t, a.v.to_bits()), (b.t, b.v.to_bits()));
            }
        }
        (hi.len(), lo.len())
    }

    #[test]
    fn common_divisors_are_divided_out() {
        // Frequencies in whole MHz and byte gauges in pages: residuals share a large divisor.
        let mut f = 2.4e9;
        let mut m = 5_000_000i64;
        let freqs: Vec<f64> = (0..480i64)
            .map(|i| {
                f += ((i * 7919 % 401) - 200) as f64 * 1e6;
                f
            })
            .collect();
        let pages: Vec<f64> = (0..480i64)
            .map(|i| {
                m += (i * 104_729 % 2001) - 1000;
                (m * 4096) as f64
            })
            .collect();
        // Without the divisor the MHz residuals need 4 bytes each and the page counts 3.
        assert!(roundtrip(&series(&freqs)) < 480 * 2 + 64);
        assert!(roundtrip(&series(&pages)) < 480 * 2 + 64);
    }

    #[test]
    fn float_counters_store_bit_pattern_deltas() {
        // A float counter with full-precision increments: XOR would cost about 7 bytes a sample.
        let mut v = 1234.5678f64;
        let values: Vec<f64> = (0..480)
            .map(|i| {
                v += 0.25 + f64::from(i % 17) * 0.001_234_567_89;
                v
            })
            .collect();
        let mut buf = Vec::new();
        encode(&series(&values), &mut buf);
        assert!(!is_xor_chunk(&buf));
        assert!(roundtrip(&series(&values)) < 480 * 6, "{}", buf.len());
    }

    #[test]
    fn split_chunks_put_low_planes_apart() {
        let random: Vec<f64> = (0..300u64)
            .map(|i| {
                f64::from_bits(
                    0x3f50_0000_0000_0000 | (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 12),
                )
            })
            .collect();
        let mut c = 0i64;
        let counter: Vec<f64> = (0..300i64)
            .map(|i| {
                c += 1000 + i * 37 % 500;
                c as f64 / 100.0
            })
            .collect();
        let (hi, lo) = split_roundtrip(&[series(&random), series(&counter), series(&[1.0])]);
        // Six of the seven XOR planes and the counter's low plane go to the low stream.
        assert!(lo >= 5 + 298 * 6 + 298, "{lo}");
        assert!(hi < 300 * 2 + 300 + 64, "{hi}");
    }

    #[test]
    fn split_chunk_with_bad_low_stream_is_rejected() {
        let values: Vec<f64> = (0..50).map(|i| f64::from(i) * 0.1 + 1e-3).collect();
        let (mut hi, mut lo) = (Vec::new(), Vec::new());
        encode_split(&series(&values), &mut hi, &mut lo);
        assert!(!lo.is_empty());
        for cut in 0..lo.len() {
            let mut out = Vec::new();
            assert!(
                decode_split(&hi, &lo[..cut], &mut out).is_none(),
                "cut {cut}"
            );
            assert!(out.is_empty());
        }
        for cut in 0..hi.len() {
            assert!(decode_split(&hi[..cut], &lo, &mut Vec::new()).is_none());
        }
        // A divisor below 2 is not a valid encoding.
        let mut buf = Vec::new();
        encode_ints(&[0, 4, 8, 20], &mut buf);
        let mode_at = buf
            .iter()
            .position(|&b| b == MODE_DOD_SCALED || b == MODE_DELTA_SCALED);
        let mode_at = mode_at.expect("scaled mode");
        buf[mode_at + 1] = 1;
        assert!(decode_ints(&mut buf.as_slice(), 4).is_none());
    }

    proptest! {
        #[test]
        fn split_and_scaled_roundtrip(
            bits in proptest::collection::vec(any::<u64>(), 1..200),
            start in -1_000_000i64..1_000_000,
            steps in proptest::collection::vec(-50i64..50, 1..200),
            unit in prop_oneof![Just(1i64), Just(7), Just(4096), Just(1_000_000), Just(1 << 40)],
            e in 0u32..4,
        ) {
            let floats: Vec<Sample> = bits.iter().enumerate().map(|(i, b)| Sample { t: i as i64 * 15_000, v: f64::from_bits(*b) }).collect();
            let mut m = start;
            let scale = 10f64.powi(e as i32);
            let scaled: Vec<Sample> = steps.iter().enumerate().map(|(i, d)| { m += d; Sample { t: i as i64 * 15_000 + i as i64 % 3, v: (m * unit) as f64 / scale } }).collect();
            let counter: Vec<Sample> = steps.iter().enumerate().map(|(i, d)| Sample { t: i as i64, v: 1e3 + (i as f64) * 0.37 + (*d as f64) * 1e-9 }).collect();
            roundtrip(&floats);
            roundtrip(&scaled);
            roundtrip(&counter);
            split_roundtrip(&[floats, scaled, counter]);
        }

        #[test]
        fn extreme_integer_columns_roundtrip(xs in proptest::collection::vec(prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(0)], 3..40)) {
            let mut buf = Vec::new();
            encode_ints(&xs, &mut buf);
            let mut data = buf.as_slice();
            prop_assert_eq!(decode_ints(&mut data, xs.len()), Some(xs));
            prop_assert!(data.is_empty());
        }

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
        fn range_decoding_keeps_exactly_the_samples_in_range(
            bits in proptest::collection::vec(any::<u64>(), 1..150),
            steps in proptest::collection::vec(-50i64..50, 1..150),
            gaps in proptest::collection::vec(1i64..40_000, 150),
            a in -20_000i64..2_500_000,
            len in 0i64..2_500_000,
        ) {
            let mut t = 0i64;
            let times: Vec<i64> = gaps.iter().map(|g| { t += g; t }).collect();
            let xor: Vec<Sample> = bits.iter().zip(&times).map(|(b, &t)| Sample { t, v: f64::from_bits(*b) }).collect();
            let mut m = 0i64;
            let decimal: Vec<Sample> = steps.iter().zip(&times).map(|(d, &t)| { m += d; Sample { t, v: m as f64 / 100.0 } }).collect();
            let counter: Vec<Sample> = steps.iter().zip(&times).enumerate().map(|(i, (d, &t))| Sample { t, v: 1e3 + (i as f64) * 0.37 + (*d as f64) * 1e-9 }).collect();
            let range = TimeRange { mint: a, maxt: a + len };
            let mut lo = vec![7u8; 3];
            let mut ts = Vec::new();
            for samples in [&xor, &decimal, &counter] {
                let expected: Vec<(i64, u64)> = samples.iter().filter(|s| s.t >= range.mint && s.t <= range.maxt).map(|s| (s.t, s.v.to_bits())).collect();
                let mut plain = Vec::new();
                encode(samples, &mut plain);
                let mut hi = Vec::new();
                encode_split(samples, &mut hi, &mut lo);
                for (data, stream) in [(&plain, None), (&hi, Some(lo.as_slice()))] {
                    // Appends after what `out` already holds.
                    let mut out = vec![Sample { t: -1, v: 0.5 }];
                    prop_assert!(decode_in(data, stream, range, &mut ts, &mut out).is_some());
                    prop_assert_eq!(out.first().map(|s| s.t), Some(-1));
                    let got: Vec<(i64, u64)> = out[1..].iter().map(|s| (s.t, s.v.to_bits())).collect();
                    prop_assert_eq!(&got, &expected);
                }
            }
        }

        #[test]
        fn range_decoding_of_regular_timestamps(
            n in 1usize..300,
            t0 in -5_000_000i64..5_000_000,
            step in prop_oneof![Just(15_000i64), 1i64..100_000],
            a in -6_000_000i64..40_000_000,
            len in prop_oneof![Just(0i64), Just(300_000), 0i64..40_000_000],
            scaled in any::<bool>(),
        ) {
            // A regular interval, possibly in multiples of a common divisor of the deltas.
            let step = if scaled { step * 1000 } else { step };
            let samples: Vec<Sample> = (0..n).map(|i| Sample { t: t0 + i as i64 * step, v: i as f64 * 0.25 }).collect();
            let range = TimeRange { mint: a, maxt: a + len };
            let expected: Vec<(i64, u64)> = samples.iter().filter(|s| s.t >= range.mint && s.t <= range.maxt).map(|s| (s.t, s.v.to_bits())).collect();
            let mut plain = Vec::new();
            encode(&samples, &mut plain);
            let mut hi = Vec::new();
            let mut lo = vec![1u8; 2];
            encode_split(&samples, &mut hi, &mut lo);
            let mut ts = Vec::new();
            for (data, stream) in [(&plain, None), (&hi, Some(lo.as_slice()))] {
                let mut out = Vec::new();
                prop_assert!(decode_in(data, stream, range, &mut ts, &mut out).is_some());
                let got: Vec<(i64, u64)> = out.iter().map(|s| (s.t, s.v.to_bits())).collect();
                prop_assert_eq!(&got, &expected);
            }
            // The header shortcut applies to these columns (and only reads the header).
            let mut data = &plain[..];
            let _ = read_uvarint(&mut data);
            let mut src = Src { hi: data, lo: None };
            let shortcut = regular_times(&mut src, n);
            prop_assert_eq!(shortcut.is_some(), n >= 3);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            let _ = decode(&data, &mut out);
            let range = TimeRange { mint: 0, maxt: 100 };
            let mut ts = Vec::new();
            // A rejected chunk leaves `out` as it was.
            let before = out.len();
            if decode_in(&data, None, range, &mut ts, &mut out).is_none() {
                prop_assert_eq!(out.len(), before);
            }
            let before = out.len();
            if decode_in(&data, Some(&data), range, &mut ts, &mut out).is_none() {
                prop_assert_eq!(out.len(), before);
            }
        }
    }
}
