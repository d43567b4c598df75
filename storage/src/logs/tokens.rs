//! The tokeniser of the log content index (documented in `storage/FORMAT.md`, "Logs").
//!
//! A token is a maximal run of word characters (Unicode alphanumerics and `_`), where a joiner
//! (`-`, `.`, `:`) with a word character on both sides also belongs to the token. So UUIDs,
//! hex ids, dotted names, IPv4 addresses, `host:port` and ISO dates stay whole, while spaces,
//! `/`, `=`, quotes, brackets, commas and everything else separate tokens. Tokens are case-folded
//! ([`fold_char`]) and hashed ([`token_hash`]); only tokens of [`MIN_TOKEN_BYTES`] to
//! [`MAX_TOKEN_BYTES`] bytes are indexed.
//!
//! Because the rule is local (a character's role depends only on its neighbours), every token
//! of a needle that is bounded inside the needle by definite separators is a whole token of any
//! line containing the needle: such tokens may prune; a needle's first and last partial tokens
//! may not.

/// Shortest indexed token, in bytes of its folded form.
pub(crate) const MIN_TOKEN_BYTES: usize = 2;
/// Longest indexed token, in bytes of its folded form (longer tokens are not indexed).
pub(crate) const MAX_TOKEN_BYTES: usize = 128;

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_joiner(c: char) -> bool {
    matches!(c, '-' | '.' | ':')
}

/// Case folding used by the index: Unicode lowercase, plus the characters whose simple case
/// fold differs from their lowercase (so a `(?i)` needle finds what the regex would match).
pub(crate) fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let mapped = match c {
        '\u{017F}' => 's',             // long s
        '\u{212A}' => 'k',             // Kelvin sign
        '\u{212B}' => '\u{00E5}',      // Angstrom sign
        '\u{03C2}' => '\u{03C3}',      // final sigma
        '\u{03D0}' => '\u{03B2}',      // beta symbol
        '\u{03D1}' => '\u{03B8}',      // theta symbol
        '\u{03D5}' => '\u{03C6}',      // phi symbol
        '\u{03D6}' => '\u{03C0}',      // pi symbol
        '\u{03F0}' => '\u{03BA}',      // kappa symbol
        '\u{03F1}' => '\u{03C1}',      // rho symbol
        '\u{03F5}' => '\u{03B5}',      // lunate epsilon
        '\u{1E9E}' => '\u{00DF}',      // capital sharp s
        '\u{1FBE}' => '\u{03B9}',      // prosgegrammeni
        _ => {
            out.extend(c.to_lowercase());
            return;
        }
    };
    out.push(mapped);
}

/// A stable 64-bit hash of a folded token (FNV-1a with a final avalanche), part of the on-disk
/// format: never change it without a format version bump.
pub(crate) fn token_hash(folded: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in folded.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn indexable(folded: &str) -> bool {
    (MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&folded.len())
}

/// Calls `f` with the hash of every indexable token of `text`.
pub(crate) fn for_each_token_hash(text: &str, scratch: &mut String, mut f: impl FnMut(u64)) {
    scratch.clear();
    let mut chars = text.chars().peekable();
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        let in_token = if is_word(c) {
            true
        } else if is_joiner(c) {
            prev_word && chars.peek().copied().is_some_and(is_word)
        } else {
            false
        };
        if in_token {
            fold_char(c, scratch);
        } else if !scratch.is_empty() {
            if indexable(scratch) {
                f(token_hash(scratch));
            }
            scratch.clear();
        }
        prev_word = is_word(c);
    }
    if indexable(scratch) {
        f(token_hash(scratch));
    }
}

/// The folded tokens that every line containing `needle` (under case folding when the caller
/// matches case-insensitively) also contains as whole tokens; empty when the needle cannot prune.
pub(crate) fn needle_tokens(needle: &str) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Role {
        Token,
        Sep,
        Unknown,
    }
    let chars: Vec<char> = needle.chars().collect();
    let n = chars.len();
    let roles: Vec<Role> = (0..n)
        .map(|i| {
            let c = chars[i];
            if is_word(c) {
                Role::Token
            } else if is_joiner(c) {
                if i == 0 || i + 1 == n {
                    Role::Unknown
                } else if is_word(chars[i - 1]) && is_word(chars[i + 1]) {
                    Role::Token
                } else {
                    Role::Sep
                }
            } else {
                Role::Sep
            }
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if roles[i] != Role::Token {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && roles[i] == Role::Token {
            i += 1;
        }
        let bounded_left = start > 0 && roles[start - 1] == Role::Sep;
        let bounded_right = i < n && roles[i] == Role::Sep;
        if bounded_left && bounded_right {
            let mut folded = String::new();
            for &c in &chars[start..i] {
                fold_char(c, &mut folded);
            }
            if indexable(&folded) && !out.contains(&folded) {
                out.push(folded);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<u64> {
        let mut out = Vec::new();
        let mut s = String::new();
        for_each_token_hash(text, &mut s, |h| out.push(h));
        out
    }

    fn h(t: &str) -> u64 {
        token_hash(t)
    }

    #[test]
    fn identifiers_stay_whole_and_separators_split() {
        let line = r#"GET /api/v1/users?id=42 req=550e8400-e29b-41d4-a716-446655440000 ip=10.0.0.17:8080 "Done." ERROR"#;
        let t = tokens(line);
        for want in [
            "get",
            "api",
            "v1",
            "users",
            "id",
            "42",
            "req",
            "550e8400-e29b-41d4-a716-446655440000",
            "ip",
            "10.0.0.17:8080",
            "done",
            "error",
        ] {
            assert!(t.contains(&h(want)), "missing token {want}");
        }
        // A trailing joiner is not part of a token, and split pieces of a UUID are not tokens.
        assert!(!t.contains(&h("done.")));
        assert!(!t.contains(&h("e29b")));
        assert_eq!(t.len(), 12);
    }

    #[test]
    fn needle_uses_only_tokens_bounded_inside_it() {
        assert!(needle_tokens("abc").is_empty());
        assert!(needle_tokens("trace_id=abc").is_empty());
        assert_eq!(needle_tokens("id=abc123 "), vec!["abc123"]);
        assert_eq!(needle_tokens(" Timeout Connecting "), vec!["timeout", "connecting"]);
        // A joiner at the needle's edge could join with unseen characters: not a bound.
        assert!(needle_tokens(".abc.").is_empty());
        assert_eq!(needle_tokens("x .abc. y"), vec!["abc"]);
        assert_eq!(needle_tokens("\"10.1.2.3\""), vec!["10.1.2.3"]);
    }

    #[test]
    fn every_needle_token_is_a_token_of_lines_containing_it() {
        let lines = [
            "ts=2024-01-01T00:00:00Z level=error msg=\"db timeout\" trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
            "Caused by: java.io.IOException: Broken pipe at com.example.Foo.bar(Foo.java:42)",
            "10.2.3.4 - - [01/Jan/2024:00:00:00 +0000] \"GET /x-y/z HTTP/1.1\" 500 1234",
        ];
        for line in lines {
            let t = tokens(line);
            let chars: Vec<(usize, char)> = line.char_indices().collect();
            for a in 0..chars.len() {
                for b in a + 1..=chars.len() {
                    let end = chars.get(b).map_or(line.len(), |c| c.0);
                    let needle = &line[chars[a].0..end];
                    for tok in needle_tokens(needle) {
                        assert!(t.contains(&h(&tok)), "{needle:?} gave {tok:?} not in {line:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn folding_matches_case_insensitive_regex_for_special_letters() {
        let mut a = String::new();
        for c in "KELVIN\u{212A}ſ".chars() {
            fold_char(c, &mut a);
        }
        assert_eq!(a, "kelvinks");
        assert_eq!(tokens("ERROR"), tokens("error"));
        assert_eq!(tokens("ÉCOLE"), tokens("école"));
    }
}

/// Bytes per gram of the substring index.
pub(crate) const GRAM: usize = 4;
/// Grams per winnowing window: a needle of at least `GRAM + WINDOW - 1` bytes can prune.
pub(crate) const WINDOW: usize = 12;

/// Reusable buffers for [`for_each_winnowed`].
#[derive(Default)]
pub(crate) struct Winnower {
    folded: Vec<u8>,
    hashes: Vec<u64>,
    deque: std::collections::VecDeque<usize>,
}

fn gram_hash(g: &[u8]) -> u64 {
    let mut h = u64::from(u32::from_le_bytes([g[0], g[1], g[2], g[3]])) ^ 0x9e37_79b9_7f4a_7c15;
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
        self.hashes
            .extend(self.folded.windows(GRAM).map(gram_hash));
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
mod gram_tests {
    use super::*;

    #[test]
    fn needle_grams_are_a_subset_of_the_line_grams() {
        let line = "level=ERROR request_id=1f18de36-6dc6-426c-a86c-44a1e4c9864c msg=\"deadline exceeded\"";
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
        assert!(needle_grams("ERR7731Q", false).is_empty());
        assert_eq!(needle_grams("TRACE_ID=1F18DE36", true), needle_grams("trace_id=1f18de36", false));
        assert!(needle_grams("request_id=1f18de36", true).is_empty());
    }
}
