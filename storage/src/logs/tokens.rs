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

/// Reusable buffers for [`Winnower::for_each`].
#[derive(Default)]
pub(crate) struct Winnower {
    folded: Vec<u8>,
    hashes: Vec<u64>,
    /// Per gram: the minimum of its [`WINDOW`]-aligned run up to and including it.
    prefix: Vec<u64>,
    /// Per gram: the minimum from it to the end of its aligned run.
    suffix: Vec<u64>,
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
    ///
    /// Window minima are computed with aligned runs of `WINDOW` grams (van Herk / Gil-Werman):
    /// a window starting at `s` spans the end of one run and the start of the next, so its
    /// minimum is `min(suffix[s], prefix[s + WINDOW - 1])` — three comparisons per gram, no
    /// branches on the data.
    pub(crate) fn for_each(&mut self, text: &str, mut f: impl FnMut(u64)) {
        let bytes = text.as_bytes();
        if bytes.len() < GRAM + WINDOW - 1 {
            return;
        }
        self.folded.clear();
        self.folded.extend(bytes.iter().map(u8::to_ascii_lowercase));
        self.hashes.clear();
        self.hashes.extend(self.folded.windows(GRAM).map(gram_hash));
        let h = &self.hashes;
        let n = h.len();
        self.prefix.clear();
        self.prefix.resize(n, 0);
        self.suffix.clear();
        self.suffix.resize(n, 0);
        for (run, (p, s)) in h.chunks(WINDOW).zip(
            self.prefix
                .chunks_mut(WINDOW)
                .zip(self.suffix.chunks_mut(WINDOW)),
        ) {
            let mut m = u64::MAX;
            for (x, o) in run.iter().zip(p.iter_mut()) {
                m = m.min(*x);
                *o = m;
            }
            let mut m = u64::MAX;
            for (x, o) in run.iter().zip(s.iter_mut()).rev() {
                m = m.min(*x);
                *o = m;
            }
        }
        let mut last = None;
        for (s, p) in self.suffix[..n + 1 - WINDOW]
            .iter()
            .zip(&self.prefix[WINDOW - 1..])
        {
            let m = (*s).min(*p);
            if last != Some(m) {
                f(m);
                last = Some(m);
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

    /// The straightforward definition: every window's minimum, consecutive repeats once.
    fn reference(text: &str) -> Vec<u64> {
        let folded: Vec<u8> = text.bytes().map(|b| b.to_ascii_lowercase()).collect();
        if folded.len() < GRAM + WINDOW - 1 {
            return Vec::new();
        }
        let h: Vec<u64> = folded.windows(GRAM).map(gram_hash).collect();
        let mut out: Vec<u64> = Vec::new();
        for w in h.windows(WINDOW) {
            let m = w.iter().copied().min().unwrap_or(u64::MAX);
            if out.last() != Some(&m) {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn winnowing_matches_the_window_by_window_definition() {
        let mut w = Winnower::default();
        let mut x = 0x1234_5678_u64;
        for len in (0..40).chain([63, 64, 65, 100, 257, 1000]) {
            for alphabet in [2u8, 4, 26, 90] {
                let text: String = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        char::from(b'A' + ((x >> 33) % u64::from(alphabet)) as u8)
                    })
                    .collect();
                let mut got = Vec::new();
                w.for_each(&text, |h| got.push(h));
                assert_eq!(got, reference(&text), "{text:?}");
            }
        }
    }

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
