//! The content index's keys: winnowed byte grams of each line (documented in
//! `storage/FORMAT.md`, "Logs").
//!
//! Lines are ASCII case-folded and cut into overlapping [`GRAM`]-byte grams; of every window of
//! [`WINDOW`] consecutive grams the smallest hash is kept (winnowing). Every window of a needle
//! is also a window of any line that contains the needle, so the needle's kept hashes are a
//! subset of the line's: a block whose filter lacks one cannot hold a matching line. Needles
//! shorter than `GRAM + WINDOW - 1` bytes prune nothing. Unlike whole-word tokens this is sound
//! for needles that start or end inside a word (LogQL's `|= "ERR42"` is a substring match).

/// Bytes per gram of the substring index.
pub(crate) const GRAM: usize = 8;
/// Grams per winnowing window: a needle of at least `GRAM + WINDOW - 1` bytes can prune.
pub(crate) const WINDOW: usize = 16;

/// Reusable buffers for [`for_each_winnowed`].
#[derive(Default)]
pub(crate) struct Winnower {
    folded: Vec<u8>,
    hashes: Vec<u64>,
    deque: std::collections::VecDeque<usize>,
}

fn gram_hash(g: &[u8]) -> u64 {
    let mut a = [0u8; GRAM];
    a.copy_from_slice(&g[..GRAM]);
    let mut h = u64::from_le_bytes(a) ^ 0x9e37_79b9_7f4a_7c15;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 32;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 29)
}

impl Winnower {
    /// Calls `f` with the winnowed gram hashes of `text` (ASCII case-folded bytes): the minimum
    /// hash of every window of [`WINDOW`] consecutive [`GRAM`]-byte grams (consecutive repeats
    /// reported once). Every window of a needle is a window of any line containing it, so a
    /// needle's winnowed hashes are a subset of the line's.
    pub(crate) fn for_each(&mut self, text: &str, mut f: impl FnMut(u64)) {
        let bytes = text.as_bytes();
        if bytes.len() < GRAM + WINDOW - 1 {
            return;
        }
        self.folded.clear();
        self.folded.extend(bytes.iter().map(u8::to_ascii_lowercase));
        self.hashes.clear();
        self.hashes.extend(self.folded.windows(GRAM).map(gram_hash));
        self.deque.clear();
        let mut last = None;
        for i in 0..self.hashes.len() {
            let h = self.hashes[i];
            while self.deque.back().is_some_and(|&j| self.hashes[j] >= h) {
                self.deque.pop_back();
            }
            self.deque.push_back(i);
            if self.deque.front().is_some_and(|&j| j + WINDOW <= i) {
                self.deque.pop_front();
            }
            if i + 1 >= WINDOW {
                if let Some(&j) = self.deque.front() {
                    let m = self.hashes[j];
                    if last != Some(m) {
                        f(m);
                        last = Some(m);
                    }
                }
            }
        }
    }
}

/// The winnowed gram hashes a needle requires (empty when it is too short, or when it is
/// case-insensitive with text whose case variants leave ASCII — any non-ASCII, `k` (Kelvin
/// sign) or `s` (long s) — where ASCII folding would not find every match).
pub(crate) fn needle_grams(needle: &str, case_insensitive: bool) -> Vec<u64> {
    if case_insensitive
        && needle
            .chars()
            .any(|c| !c.is_ascii() || matches!(c, 'k' | 'K' | 's' | 'S'))
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    Winnower::default().for_each(needle, |h| out.push(h));
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needle_grams_are_a_subset_of_the_line_grams() {
        let line =
            "level=ERROR request_id=1f18de36-6dc6-426c-a86c-44a1e4c9864c msg=\"deadline exceeded\"";
        let mut all = Vec::new();
        Winnower::default().for_each(line, |h| all.push(h));
        for a in 0..line.len() {
            for b in a + 1..=line.len() {
                for g in needle_grams(&line[a..b], false) {
                    assert!(all.contains(&g), "{:?}", &line[a..b]);
                }
            }
        }
        assert!(!needle_grams("1f18de36-6dc6-426c-a86c", false).is_empty());
        assert!(needle_grams("1f18de36-6dc6-426c-a86", false).is_empty());
        assert!(needle_grams("ERR7731Q", false).is_empty());
        assert_eq!(
            needle_grams("TRACE_ID=1F18DE36-6DC6-4", true),
            needle_grams("trace_id=1f18de36-6dc6-4", false)
        );
        assert!(needle_grams("request_id=1f18de36-6dc6-4", true).is_empty());
    }
}
