//! Compressed sample chunks: delta-of-delta timestamps and XOR-encoded floats (the Gorilla
//! scheme Prometheus also uses), so that head memory and later block files stay small.
//!
//! A chunk is a byte string plus its sample count; it is self-describing and decodes without
//! any other state. Every float, NaN payloads and the staleness marker included, round-trips
//! bit-exactly.

use crate::Sample;

/// Samples per chunk before it is sealed. Small enough that a query decoding one chunk to
/// reach a single sample stays cheap, large enough to amortise the first-sample header.
pub(crate) const SAMPLES_PER_CHUNK: u16 = 120;

/// An appendable chunk.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChunkEncoder {
    bits: BitWriter,
    count: u16,
    first_t: i64,
    last_t: i64,
    last_delta: i64,
    last_v: u64,
    leading: u8,
    trailing: u8,
}

/// A sealed, immutable chunk.
#[derive(Clone, Debug)]
pub(crate) struct Chunk {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) count: u16,
    pub(crate) data: ChunkBytes,
}

/// Where a sealed chunk's bytes live: on the heap, or in a head spill file (`head/spill.rs`).
#[derive(Clone, Debug)]
pub(crate) enum ChunkBytes {
    Mem(Box<[u8]>),
    Spilled {
        file: std::sync::Arc<crate::head::SpillFile>,
        offset: u32,
        len: u32,
    },
}

impl ChunkBytes {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            ChunkBytes::Mem(b) => b,
            ChunkBytes::Spilled { file, offset, len } => {
                let start = *offset as usize;
                file.bytes()
                    .get(start..start + *len as usize)
                    .unwrap_or_default()
            }
        }
    }
}

impl ChunkEncoder {
    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn min_t(&self) -> i64 {
        self.first_t
    }

    pub(crate) fn max_t(&self) -> i64 {
        self.last_t
    }

    #[cfg(test)]
    pub(crate) fn byte_len(&self) -> usize {
        self.bits.bytes.len()
    }

    /// Appends a sample. The caller guarantees `t` is greater than the previous timestamp.
    pub(crate) fn append(&mut self, t: i64, v: f64) {
        let v = v.to_bits();
        match self.count {
            0 => {
                self.bits.write_varint(t);
                self.bits.write_bits(v, 64);
                self.first_t = t;
            }
            1 => {
                let delta = t - self.last_t;
                self.bits.write_uvarint(delta as u64);
                self.write_value(v);
                self.last_delta = delta;
            }
            _ => {
                let delta = t - self.last_t;
                let dod = delta - self.last_delta;
                self.write_dod(dod);
                self.write_value(v);
                self.last_delta = delta;
            }
        }
        self.last_t = t;
        self.last_v = v;
        self.count += 1;
    }

    fn write_dod(&mut self, dod: i64) {
        let b = &mut self.bits;
        if dod == 0 {
            b.write_bit(false);
        } else if fits(dod, 14) {
            b.write_bits(0b10, 2);
            b.write_bits(dod as u64, 14);
        } else if fits(dod, 17) {
            b.write_bits(0b110, 3);
            b.write_bits(dod as u64, 17);
        } else if fits(dod, 20) {
            b.write_bits(0b1110, 4);
            b.write_bits(dod as u64, 20);
        } else {
            b.write_bits(0b1111, 4);
            b.write_bits(dod as u64, 64);
        }
    }

    fn write_value(&mut self, v: u64) {
        let xor = v ^ self.last_v;
        if xor == 0 {
            self.bits.write_bit(false);
            return;
        }
        self.bits.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        // Reuse the previous window when the new meaningful bits fit inside it.
        if self.count > 1 && leading >= self.leading && trailing >= self.trailing {
            self.bits.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.bits.write_bits(xor >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.bits.write_bit(true);
            self.bits.write_bits(u64::from(leading), 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits is stored as 0 in six bits.
            self.bits.write_bits(u64::from(sig & 0x3f), 6);
            self.bits.write_bits(xor >> trailing, sig);
        }
    }

    /// Freezes the chunk; the encoder is left empty, with room for a chunk of about this one's
    /// size (a series' chunks are alike, so the next one grows without reallocating).
    pub(crate) fn seal(&mut self) -> Chunk {
        let mut enc = std::mem::take(self);
        let len = enc.bits.bytes.len();
        let data = exact_copy(&enc.bits.bytes);
        let next = len + len / 8 + 8;
        if enc.bits.bytes.capacity() <= next + next / 4 {
            enc.bits.bytes.clear();
            self.bits.bytes = enc.bits.bytes;
        } else {
            self.bits.bytes = Vec::with_capacity(next);
        }
        Chunk {
            min_t: enc.first_t,
            max_t: enc.last_t,
            count: enc.count,
            data: ChunkBytes::Mem(data),
        }
    }

    /// Decodes the samples appended so far.
    pub(crate) fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.bits.bytes, self.count)
    }
}

impl Chunk {
    pub(crate) fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(self.data.bytes(), self.count)
    }
}

/// A heap copy of exactly `bytes`. Sealed chunks hold most of the head's memory; shrinking the
/// doubling encoder buffer in place instead (`Vec::into_boxed_slice`) lets an allocator keep the
/// whole block — mimalloc keeps a block that is at most half unused — so up to 2× the bytes.
pub(crate) fn exact_copy(bytes: &[u8]) -> Box<[u8]> {
    Box::from(bytes)
}

fn fits(v: i64, bits: u32) -> bool {
    let min = -(1i64 << (bits - 1)) + 1;
    let max = 1i64 << (bits - 1);
    v >= min && v <= max
}

/// Sign-extends the low `bits` bits of `v`, undoing the two's-complement truncation of
/// `write_dod` (the range `[-(2^(n-1)-1), 2^(n-1)]` maps the top value to itself).
fn sign_extend(v: u64, bits: u8) -> i64 {
    let v = v as i64;
    if bits == 64 {
        return v;
    }
    if v > (1i64 << (bits - 1)) {
        v - (1i64 << bits)
    } else {
        v
    }
}

/// Decodes a chunk. Truncated or corrupt data ends iteration early and sets `is_corrupt`.
pub(crate) struct ChunkIter<'a> {
    bits: BitReader<'a>,
    remaining: u16,
    total: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
    corrupt: bool,
}

impl<'a> ChunkIter<'a> {
    fn new(data: &'a [u8], count: u16) -> ChunkIter<'a> {
        ChunkIter {
            bits: BitReader::new(data),
            remaining: count,
            total: count,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            corrupt: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    fn next_inner(&mut self) -> Option<Sample> {
        let index = self.total - self.remaining;
        match index {
            0 => {
                self.t = self.bits.read_varint()?;
                self.v = self.bits.read_bits(64)?;
            }
            1 => {
                self.delta = self.bits.read_uvarint()? as i64;
                self.t += self.delta;
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.delta += dod;
                self.t += self.delta;
                self.read_value()?;
            }
        }
        Some(Sample {
            t: self.t,
            v: f64::from_bits(self.v),
        })
    }

    fn read_dod(&mut self) -> Option<i64> {
        let mut prefix = 0u8;
        while prefix < 4 {
            if !self.bits.read_bit()? {
                break;
            }
            prefix += 1;
        }
        let bits = match prefix {
            0 => return Some(0),
            1 => 14,
            2 => 17,
            3 => 20,
            _ => 64,
        };
        Some(sign_extend(self.bits.read_bits(bits)?, bits))
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.bits.read_bit()? {
            return Some(());
        }
        if self.bits.read_bit()? {
            self.leading = self.bits.read_bits(5)? as u8;
            let mut sig = self.bits.read_bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64u8.checked_sub(self.leading + sig)?;
        }
        let sig = 64 - self.leading - self.trailing;
        let xor = self.bits.read_bits(sig)? << self.trailing;
        self.v ^= xor;
        Some(())
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.remaining == 0 || self.corrupt {
            return None;
        }
        match self.next_inner() {
            Some(s) => {
                self.remaining -= 1;
                Some(s)
            }
            None => {
                self.corrupt = true;
                None
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Free bits in the last byte.
    free: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << (self.free - 1);
            }
        }
        self.free -= 1;
    }

    /// Writes the low `n` bits of `v`, most significant first: tops up the partial last byte,
    /// then appends whole bytes, then the remainder.
    fn write_bits(&mut self, v: u64, n: u8) {
        if n == 0 {
            return;
        }
        let mut n = n.min(64);
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        if self.free > 0 {
            let take = n.min(self.free);
            let chunk = ((v >> (n - take)) as u8) & (((1u16 << take) - 1) as u8);
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
        while n >= 8 {
            n -= 8;
            self.bytes.push((v >> n) as u8);
        }
        if n > 0 {
            self.bytes.push(((v & ((1u64 << n) - 1)) << (8 - n)) as u8);
            self.free = 8 - n;
        }
    }

    fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_bits((v as u8 | 0x80).into(), 8);
            v >>= 7;
        }
        self.write_bits(v, 8);
    }

    fn write_varint(&mut self, v: i64) {
        self.write_uvarint(((v << 1) ^ (v >> 63)) as u64);
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    fn read_bits(&mut self, n: u8) -> Option<u64> {
        let mut out = 0u64;
        let mut n = n;
        while n > 0 {
            let byte = *self.data.get(self.pos / 8)?;
            let avail = 8 - (self.pos % 8) as u8;
            let take = n.min(avail);
            let shift = avail - take;
            let chunk = (byte >> shift) & (((1u16 << take) - 1) as u8);
            out = if take == 64 {
                u64::from(chunk)
            } else {
                (out << take) | u64::from(chunk)
            };
            self.pos += usize::from(take);
            n -= take;
        }
        Some(out)
    }

    fn read_uvarint(&mut self) -> Option<u64> {
        let mut out = 0u64;
        for i in 0..10 {
            let b = self.read_bits(8)?;
            out |= (b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(out);
            }
        }
        None
    }

    fn read_varint(&mut self) -> Option<i64> {
        let u = self.read_uvarint()?;
        Some((u >> 1) as i64 ^ -((u & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(samples: &[(i64, u64)]) {
        let mut enc = ChunkEncoder::default();
        for &(t, v) in samples {
            enc.append(t, f64::from_bits(v));
        }
        let open: Vec<(i64, u64)> = enc.iter().map(|s| (s.t, s.v.to_bits())).collect();
        assert_eq!(open, samples);
        let sealed = enc.seal();
        let mut it = sealed.iter();
        let got: Vec<(i64, u64)> = it.by_ref().map(|s| (s.t, s.v.to_bits())).collect();
        assert!(!it.is_corrupt());
        assert_eq!(got, samples);
    }

    #[test]
    fn regular_scrape_compresses_well() {
        let mut enc = ChunkEncoder::default();
        for i in 0..120 {
            enc.append(1_700_000_000_000 + i * 15_000, 42.0);
        }
        // Constant value, constant interval: about 2 bits a sample after the header.
        assert!(enc.byte_len() < 50, "{} bytes", enc.byte_len());
        assert!(enc.iter().all(|s| s.v == 42.0));
    }

    #[test]
    fn special_floats_roundtrip() {
        let specials = [
            0u64,
            (-0.0f64).to_bits(),
            f64::NAN.to_bits(),
            crate::STALE_NAN_BITS,
            0x7ff8_dead_beef_0001,
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            f64::MIN_POSITIVE.to_bits(),
            1,
            u64::MAX,
        ];
        let samples: Vec<(i64, u64)> = specials
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 1000 - 5000, v))
            .collect();
        roundtrip(&samples);
    }

    #[test]
    fn extreme_timestamp_gaps_roundtrip() {
        roundtrip(&[
            (i64::MIN / 4, 1),
            (0, 2),
            (1, 3),
            (i64::MAX / 4, 4),
            (i64::MAX / 4 + 1, 5),
        ]);
        roundtrip(&[(0, 1), (8192, 2), (8192 * 2 + 8192, 3), (1 << 40, 4)]);
    }

    #[test]
    fn truncated_chunk_is_detected() {
        let mut enc = ChunkEncoder::default();
        for i in 0..50 {
            enc.append(i * 1000 + (i * i) % 7, i as f64 * 1.5);
        }
        let mut chunk = enc.seal();
        let short = chunk.data.bytes().len() / 2;
        chunk.data = ChunkBytes::Mem(chunk.data.bytes()[..short].into());
        let mut it = chunk.iter();
        let n = it.by_ref().count();
        assert!(n < 50);
        assert!(it.is_corrupt());
    }

    proptest! {
        #[test]
        fn random_series_roundtrip(
            start in any::<i32>(),
            deltas in proptest::collection::vec(1i64..10_000_000, 0..200),
            values in proptest::collection::vec(any::<u64>(), 200),
        ) {
            let mut t = i64::from(start);
            let mut samples = Vec::new();
            for (i, d) in std::iter::once(&0).chain(deltas.iter()).enumerate() {
                t += d;
                samples.push((t, values[i % values.len()]));
            }
            roundtrip(&samples);
        }

        #[test]
        fn slowly_changing_floats_roundtrip(
            base in -1e12f64..1e12,
            steps in proptest::collection::vec(-1000i32..1000, 1..150),
        ) {
            let mut v = base;
            let samples: Vec<(i64, u64)> = steps.iter().enumerate().map(|(i, s)| {
                v += f64::from(*s) * 0.25;
                (i as i64 * 15_000, v.to_bits())
            }).collect();
            roundtrip(&samples);
        }
    }
}
