//! The segment word index (segment format 2, `storage/FORMAT.md`, "Logs"): for short needles,
//! which the winnowed-gram Bloom filters cannot prune.
//!
//! A *word* is a maximal run of ASCII `[A-Za-z0-9_]` in a line. Only words with at least one
//! byte outside `[0-9A-Fa-f]` are indexed: the high-cardinality parts of logs (UUIDs, hex ids,
//! numbers, IPs, timestamps) are hex or digit runs, so the vocabulary stays small (measured:
//! 1,317 distinct words in 100 MiB of the bench corpus). Each word maps to the blocks holding it.
//!
//! Lookup is exact (never drops a block with a matching line): a line containing needle `N`
//! contains every word-character run `R` of `N` inside one of its own words `W` (a run cannot
//! straddle a separator). If `R` has a non-hex byte, so has `W`, so `W` is indexed; the blocks
//! of all vocabulary words containing `R` as a substring are therefore a superset of the
//! blocks with matches.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::logs::codec::{get_bytes, get_len};
use crate::varint::{read_uvarint, write_uvarint};

/// Largest vocabulary written; a segment with more distinct words gets no word index (its
/// blocks are then never pruned by it), which bounds the cost on adversarial logs.
const MAX_WORDS: usize = 1 << 18;

/// Byte classes: 0 separator, 1 hex digit, 2 other word byte (`[G-Zg-z_]`).
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_hexdigit() {
            1
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            2
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Calls `f` with each indexed word of `text` (maximal word run with a non-hex byte).
pub(crate) fn for_each_word<'a>(text: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut i = 0;
    let n = text.len();
    while i < n {
        if CLASS[usize::from(text[i])] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut class = 0u8;
        while i < n {
            let c = CLASS[usize::from(text[i])];
            if c == 0 {
                break;
            }
            class |= c;
            i += 1;
        }
        if class & 2 != 0 {
            f(&text[start..i]);
        }
    }
}

/// FNV-1a over the word's bytes: words are short, and std's SipHash costs more than the scan.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Collects the words of a segment's blocks while it is built.
#[derive(Default)]
pub(crate) struct WordIndexBuilder<'a> {
    /// Word → its position in `postings`.
    map: HashMap<&'a [u8], usize, BuildHasherDefault<WordHasher>>,
    postings: Vec<(&'a [u8], Vec<u32>)>,
    overflow: bool,
    /// Direct-mapped cache of (word, block) pairs already recorded: most words repeat within a
    /// block, and a hit skips the map.
    recent: Vec<(&'a [u8], u32)>,
}

const RECENT_SLOTS: usize = 4096;

fn slot(w: &[u8]) -> usize {
    let n = w.len();
    let key = u64::from(w[0])
        | u64::from(w[n - 1]) << 8
        | u64::from(w[n / 2]) << 16
        | u64::from(w[n / 3]) << 24
        | (n as u64) << 32;
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize
}

impl<'a> WordIndexBuilder<'a> {
    /// Records the words of `line`, which lies in block `block` (blocks added in order).
    pub(crate) fn add_line(&mut self, line: &'a str, block: u32) {
        if self.overflow {
            return;
        }
        if self.recent.is_empty() {
            self.recent = vec![(&[][..], u32::MAX); RECENT_SLOTS];
        }
        let (map, postings, recent) = (&mut self.map, &mut self.postings, &mut self.recent);
        for_each_word(line.as_bytes(), |w| {
            let r = &mut recent[slot(w)];
            if r.1 == block && r.0 == w {
                return;
            }
            *r = (w, block);
            let at = *map.entry(w).or_insert_with(|| {
                postings.push((w, Vec::new()));
                postings.len() - 1
            });
            let blocks = &mut postings[at].1;
            if blocks.last() != Some(&block) {
                blocks.push(block);
            }
        });
        if self.postings.len() > MAX_WORDS {
            self.overflow = true;
            self.map = HashMap::default();
            self.postings = Vec::new();
        }
    }

    /// The section's bytes (one zstd frame), or `None` when the vocabulary is over the cap.
    /// Raw layout: `uvarint words`, per word (sorted by bytes) `str word`, `uvarint blocks`,
    /// then the block indexes as `uvarint` deltas (first from 0).
    pub(crate) fn finish(mut self) -> Option<Vec<u8>> {
        if self.overflow {
            return None;
        }
        self.postings.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut raw = Vec::new();
        write_uvarint(&mut raw, self.postings.len() as u64);
        for (w, blocks) in &self.postings {
            write_uvarint(&mut raw, w.len() as u64);
            raw.extend_from_slice(w);
            write_uvarint(&mut raw, blocks.len() as u64);
            let mut prev = 0u32;
            for &b in blocks {
                write_uvarint(&mut raw, u64::from(b - prev));
                prev = b;
            }
        }
        zstd::bulk::compress(&raw, 3).ok()
    }
}

/// A segment's word index, decoded at open.
pub(crate) struct WordIndex {
    /// Sorted; with their ASCII-lowercased forms for case-insensitive needles.
    words: Vec<String>,
    folded: Vec<String>,
    blocks: Vec<Vec<u32>>,
}

impl WordIndex {
    /// Parses a section written by [`WordIndexBuilder::finish`]; `None` when malformed.
    pub(crate) fn decode(section: &[u8], nblocks: usize) -> Option<WordIndex> {
        let raw = zstd::bulk::decompress(section, 1 << 28).ok()?;
        let b = &mut &raw[..];
        let n = get_len(b, MAX_WORDS)?;
        let mut words = Vec::with_capacity(n);
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            let w = std::str::from_utf8(get_bytes(b)?).ok()?.to_owned();
            let k = get_len(b, nblocks)?;
            let mut v = Vec::with_capacity(k);
            let mut prev = 0u64;
            for _ in 0..k {
                prev += read_uvarint(b)?;
                if prev >= nblocks as u64 {
                    return None;
                }
                v.push(prev as u32);
            }
            words.push(w);
            blocks.push(v);
        }
        if !b.is_empty() {
            return None;
        }
        let folded = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        Some(WordIndex {
            words,
            folded,
            blocks,
        })
    }

    /// Marks in `allowed` (one flag per block, all true on entry) the blocks that may hold a
    /// line containing `needle`, clearing the others; leaves it untouched when the needle has
    /// no indexed run (or is case-insensitive with letters whose case variants leave ASCII).
    pub(crate) fn restrict(&self, needle: &str, case_insensitive: bool, allowed: &mut [bool]) {
        if case_insensitive
            && needle
                .chars()
                .any(|c| !c.is_ascii() || matches!(c, 'k' | 'K' | 's' | 'S'))
        {
            return;
        }
        let text = if case_insensitive {
            needle.to_ascii_lowercase()
        } else {
            needle.to_owned()
        };
        let vocab = if case_insensitive {
            &self.folded
        } else {
            &self.words
        };
        let mut runs: Vec<&[u8]> = Vec::new();
        for_each_word(text.as_bytes(), |r| runs.push(r));
        for run in runs {
            let finder = memchr::memmem::Finder::new(run);
            let mut hit = vec![false; allowed.len()];
            for (w, blocks) in vocab.iter().zip(&self.blocks) {
                if w.len() >= run.len() && finder.find(w.as_bytes()).is_some() {
                    for &b in blocks {
                        if let Some(h) = hit.get_mut(b as usize) {
                            *h = true;
                        }
                    }
                }
            }
            for (a, h) in allowed.iter_mut().zip(hit) {
                *a &= h;
            }
        }
    }

    /// Distinct words (for reports).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_words_with_a_non_hex_byte_are_indexed() {
        let mut got = Vec::new();
        for_each_word(
            b"ERR7731Q at 10.2.3.4 id=1f18de36-6dc6 user u-22725 dead_beef deadbeef x",
            |w| got.push(String::from_utf8_lossy(w).into_owned()),
        );
        assert_eq!(got, ["ERR7731Q", "at", "id", "user", "u", "dead_beef", "x"]);
    }

    #[test]
    fn lookup_is_a_superset_of_the_blocks_with_matches() {
        let lines = [
            ("code=ERR7731Q failed", 0u32),
            ("ok request done", 1),
            ("xERR7731Qy", 2),
            ("err7731q lower", 3),
        ];
        let mut b = WordIndexBuilder::default();
        for (l, blk) in lines {
            b.add_line(l, blk);
        }
        let idx = WordIndex::decode(&b.finish().unwrap(), 4).unwrap();
        let allowed = |needle: &str, ci: bool| {
            let mut a = vec![true; 4];
            idx.restrict(needle, ci, &mut a);
            a
        };
        assert_eq!(allowed("ERR7731Q", false), [true, false, true, false]);
        assert_eq!(allowed("R7731", false), [true, false, true, false]);
        assert_eq!(
            allowed("=ERR7731Q fail", false),
            [true, false, false, false]
        );
        assert_eq!(allowed("err7731Q", true), [true, false, true, true]);
        // Needles with only hex/digit runs, or none, prune nothing.
        assert_eq!(allowed("7731", false), [true; 4]);
        assert_eq!(allowed("==", false), [true; 4]);
        // (?i) with `s`/`k`: their Unicode case variants are not ASCII word bytes.
        assert_eq!(allowed("request", true), [true; 4]);
        assert_eq!(idx.len(), 9);
    }
}
