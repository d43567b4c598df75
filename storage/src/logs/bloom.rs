//! Per-block Bloom filters over winnowed gram hashes: the content index of log segments.
//!
//! A filter is `m` bits (a multiple of 64, stored as little-endian bytes) probed [`PROBES`]
//! times by double hashing of the 64-bit token hash: bit `(lo + i·hi) mod m` for `i` in
//! `0..PROBES`, where `lo`/`hi` are the hash's 32-bit halves (`hi` forced odd). With
//! [`BITS_PER_TOKEN`] bits per distinct key the false-positive rate is about 0.5%.

/// Probes per lookup.
pub(crate) const PROBES: u32 = 7;
/// Filter bits per distinct key of the block.
pub(crate) const BITS_PER_TOKEN: usize = 11;

fn positions(hash: u64, m_bits: u64) -> impl Iterator<Item = u64> {
    let lo = hash & 0xffff_ffff;
    let hi = (hash >> 32) | 1;
    (0..u64::from(PROBES)).map(move |i| lo.wrapping_add(i.wrapping_mul(hi)) % m_bits)
}

/// Builds the filter bytes for a set of distinct key hashes.
pub(crate) fn build(hashes: &[u64]) -> Vec<u8> {
    let words = (hashes.len() * BITS_PER_TOKEN).div_ceil(64).max(1);
    let m_bits = (words * 64) as u64;
    let mut bits = vec![0u64; words];
    for &h in hashes {
        for p in positions(h, m_bits) {
            bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }
    bits.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// True when the filter may contain `hash` (false means it certainly does not).
pub(crate) fn may_contain(filter: &[u8], hash: u64) -> bool {
    let m_bits = (filter.len() as u64) * 8;
    if m_bits == 0 {
        return true;
    }
    positions(hash, m_bits).all(|p| filter[(p / 8) as usize] & (1 << (p % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitmix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    #[test]
    fn members_are_found_and_false_positives_are_rare() {
        let members: Vec<u64> = (0..5000).map(splitmix).collect();
        let f = build(&members);
        assert!(members.iter().all(|&h| may_contain(&f, h)));
        let fp = (100_000..120_000)
            .filter(|&i| may_contain(&f, splitmix(i)))
            .count();
        assert!(fp < 300, "false positives: {fp} of 20000");
        assert!(f.len() <= 5000 * BITS_PER_TOKEN / 8 + 8);
    }
}
