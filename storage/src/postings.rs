//! The inverted index from label pairs to series ids, as `roaring` bitmaps, and the matcher
//! evaluation over it.

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

use crate::{Labels, MatchOp, Matcher};

/// Label name → value → ids of the series carrying that pair.
#[derive(Default)]
pub(crate) struct Postings {
    by_name: HashMap<String, BTreeMap<String, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl Postings {
    pub(crate) fn add(&mut self, id: u32, labels: &Labels) {
        self.all.insert(id);
        for l in labels {
            self.by_name
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .insert(id);
        }
    }

    /// Forgets series `id` (garbage-collected from the head).
    pub(crate) fn remove(&mut self, id: u32, labels: &Labels) {
        self.all.remove(id);
        for l in labels {
            let Some(values) = self.by_name.get_mut(&l.name) else {
                continue;
            };
            if let Some(bm) = values.get_mut(&l.value) {
                bm.remove(id);
                if bm.is_empty() {
                    values.remove(&l.value);
                }
            }
            if values.is_empty() {
                self.by_name.remove(&l.name);
            }
        }
    }

    pub(crate) fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub(crate) fn values(&self, name: &str) -> impl Iterator<Item = (&str, &RoaringBitmap)> {
        self.by_name
            .get(name)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// Ids of series with any value for `name`.
    fn with_name(&self, name: &str) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        if let Some(values) = self.by_name.get(name) {
            for bm in values.values() {
                out |= bm;
            }
        }
        out
    }

    /// Ids of series for which the matcher holds.
    fn select_one(&self, m: &Matcher) -> RoaringBitmap {
        let values = self.by_name.get(&m.name);
        let mut out = RoaringBitmap::new();
        match (m.op, values) {
            (MatchOp::Equal, Some(values)) if !m.value.is_empty() => {
                if let Some(bm) = values.get(&m.value) {
                    out |= bm;
                }
                return out;
            }
            (MatchOp::Regex, Some(values)) => {
                if let Some(alternatives) = m.literal_alternatives() {
                    // Literal alternations look values up directly instead of scanning.
                    for alt in alternatives.iter().filter(|a| !a.is_empty()) {
                        if let Some(bm) = values.get(alt) {
                            out |= bm;
                        }
                    }
                } else {
                    for (value, bm) in values {
                        if m.matches(value) {
                            out |= bm;
                        }
                    }
                }
            }
            (_, Some(values)) => {
                for (value, bm) in values {
                    if m.matches(value) {
                        out |= bm;
                    }
                }
            }
            (_, None) => {}
        }
        // A matcher that accepts "" also selects series that lack the label.
        if m.matches_empty() {
            let mut missing = self.all.clone();
            missing -= self.with_name(&m.name);
            out |= missing;
        }
        out
    }

    /// Ids of series for which every matcher holds; the most selective matchers go first so the
    /// intersection shrinks early.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> RoaringBitmap {
        if matchers.is_empty() {
            return self.all.clone();
        }
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| match m.op {
            MatchOp::Equal if !m.value.is_empty() => 0,
            MatchOp::Regex => 1,
            _ => 2,
        });
        let mut acc: Option<RoaringBitmap> = None;
        for m in ordered {
            let bm = self.select_one(m);
            acc = Some(match acc {
                None => bm,
                Some(a) => a & bm,
            });
            if acc.as_ref().is_some_and(RoaringBitmap::is_empty) {
                break;
            }
        }
        acc.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(series: &[Labels]) -> Postings {
        let mut p = Postings::default();
        for (i, l) in series.iter().enumerate() {
            p.add(i as u32, l);
        }
        p
    }

    fn naive(series: &[Labels], matchers: &[Matcher]) -> Vec<u32> {
        series
            .iter()
            .enumerate()
            .filter(|(_, l)| matchers.iter().all(|m| m.matches_labels(l)))
            .map(|(i, _)| i as u32)
            .collect()
    }

    proptest! {
        #[test]
        fn select_agrees_with_naive_scan(
            raw in proptest::collection::vec(proptest::collection::vec((0u8..3, 0u8..4), 0..4), 1..40),
            mraw in proptest::collection::vec((0u8..3, 0u8..4, 0u8..5), 1..4),
        ) {
            let series: Vec<Labels> = raw.iter().map(|pairs| {
                Labels::from_pairs(pairs.iter().map(|(n, v)| (format!("l{n}"), format!("v{v}"))))
            }).collect();
            let matchers: Vec<Matcher> = mraw.iter().map(|(n, v, op)| {
                let name = format!("l{n}");
                match op {
                    0 => Matcher::equal(name, format!("v{v}")),
                    1 => Matcher::new(MatchOp::NotEqual, name, format!("v{v}")).unwrap(),
                    2 => Matcher::new(MatchOp::Regex, name, format!("v{v}|v{}", (v + 1) % 4)).unwrap(),
                    3 => Matcher::new(MatchOp::NotRegex, name, "v[01]").unwrap(),
                    _ => Matcher::equal(name, ""),
                }
            }).collect();
            let p = index(&series);
            let got: Vec<u32> = p.select(&matchers).iter().collect();
            prop_assert_eq!(got, naive(&series, &matchers));
        }
    }
}
