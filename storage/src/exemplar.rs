//! Exemplar storage: a bounded, in-memory ring of exemplars shared by all series, with the
//! semantics of Prometheus' circular exemplar storage.
//!
//! Every stored exemplar occupies one slot of a ring of `capacity` slots; when the ring is full,
//! the oldest slot is overwritten, whichever series it belonged to. The exemplars of one series
//! form a singly linked list through the ring, oldest to newest, so a series' exemplars are kept
//! in strictly increasing time. Per series, an exemplar equal to the newest one is a duplicate
//! (ignored), and one at or before the newest one's timestamp is out of order (refused). Labels
//! longer than [`MAX_EXEMPLAR_LABEL_CHARS`] characters in total are refused. Capacity 0 disables
//! the storage: every exemplar is refused as `disabled`.
//!
//! Series are identified by their label set (not by a head id), so exemplars outlive the head
//! series they were attached to until the ring overwrites them, as in Prometheus.

use std::collections::HashMap;

use crate::{Labels, Matcher};

/// Largest total length of an exemplar's label names and values, in UTF-8 characters (not
/// bytes), as in OpenMetrics and Prometheus.
pub const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// One exemplar: its own labels (such as `trace_id`), a value and a timestamp in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub t: i64,
}

impl Exemplar {
    /// Same labels, timestamp and value bits.
    fn same(&self, other: &Exemplar) -> bool {
        self.t == other.t
            && self.value.to_bits() == other.value.to_bits()
            && self.labels == other.labels
    }

    /// Total characters of the label names and values.
    pub fn label_chars(&self) -> usize {
        self.labels
            .iter()
            .map(|l| l.name.chars().count() + l.value.chars().count())
            .sum()
    }
}

/// A series and its exemplars inside a queried time range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct ExemplarSeries {
    pub series_labels: Labels,
    pub exemplars: Vec<Exemplar>,
}

/// What happened to the exemplars of one append. Nothing here is an error for the request:
/// refused exemplars are counted, as Prometheus does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExemplarOutcome {
    /// Stored (and logged).
    pub appended: usize,
    /// Identical to the series' newest exemplar: a resend, ignored.
    pub duplicates: usize,
    /// At or before the series' newest exemplar's timestamp.
    pub out_of_order: usize,
    /// Labels longer than [`MAX_EXEMPLAR_LABEL_CHARS`] characters.
    pub labels_too_long: usize,
    /// Exemplar storage is disabled (`max_exemplars: 0`).
    pub disabled: usize,
}

impl ExemplarOutcome {
    /// Exemplars that were neither stored nor duplicates.
    pub fn refused(&self) -> usize {
        self.out_of_order + self.labels_too_long + self.disabled
    }
}

/// The verdict on one exemplar for one series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExemplarCheck {
    Ok,
    Duplicate,
    OutOfOrder,
    LabelsTooLong,
    Disabled,
}

impl ExemplarCheck {
    /// Counts this verdict in `out`.
    pub(crate) fn count(self, out: &mut ExemplarOutcome) {
        match self {
            ExemplarCheck::Ok => out.appended += 1,
            ExemplarCheck::Duplicate => out.duplicates += 1,
            ExemplarCheck::OutOfOrder => out.out_of_order += 1,
            ExemplarCheck::LabelsTooLong => out.labels_too_long += 1,
            ExemplarCheck::Disabled => out.disabled += 1,
        }
    }
}

/// Marks the end of a series' list.
const NONE: u32 = u32::MAX;

struct Slot {
    exemplar: Exemplar,
    /// Index into `entries` of the series owning this slot.
    owner: u32,
    /// The owner's next newer exemplar, or `NONE`.
    next: u32,
}

struct Entry {
    labels: Labels,
    oldest: u32,
    newest: u32,
}

/// The ring. Not synchronised: the database wraps it in a lock.
pub(crate) struct ExemplarRing {
    capacity: usize,
    /// Grows to `capacity`, then slots are overwritten in ring order.
    slots: Vec<Slot>,
    /// The slot the next exemplar goes to once `slots` is full.
    next: usize,
    entries: Vec<Option<Entry>>,
    free_entries: Vec<u32>,
    by_labels: HashMap<Labels, u32>,
}

impl ExemplarRing {
    /// A ring holding at most `capacity` exemplars (0 disables it). Capacity is capped at
    /// `u32::MAX - 1` slots.
    pub(crate) fn new(capacity: usize) -> ExemplarRing {
        ExemplarRing {
            capacity: capacity.min(NONE as usize - 1),
            slots: Vec::new(),
            next: 0,
            entries: Vec::new(),
            free_entries: Vec::new(),
            by_labels: HashMap::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Exemplars currently stored.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Series with at least one stored exemplar.
    pub(crate) fn num_series(&self) -> usize {
        self.by_labels.len()
    }

    /// The newest stored exemplar of a series.
    pub(crate) fn newest(&self, series: &Labels) -> Option<&Exemplar> {
        let &e = self.by_labels.get(series)?;
        let entry = self.entries.get(e as usize)?.as_ref()?;
        Some(&self.slots.get(entry.newest as usize)?.exemplar)
    }

    /// Judges `e` for a series whose newest exemplar is `newest`.
    pub(crate) fn check_against(&self, newest: Option<&Exemplar>, e: &Exemplar) -> ExemplarCheck {
        if self.capacity == 0 {
            return ExemplarCheck::Disabled;
        }
        if e.label_chars() > MAX_EXEMPLAR_LABEL_CHARS {
            return ExemplarCheck::LabelsTooLong;
        }
        match newest {
            Some(n) if n.same(e) => ExemplarCheck::Duplicate,
            Some(n) if e.t <= n.t => ExemplarCheck::OutOfOrder,
            _ => ExemplarCheck::Ok,
        }
    }

    /// Checks and, when acceptable, stores `e` for `series`, evicting the oldest exemplar of the
    /// ring when it is full.
    pub(crate) fn add(&mut self, series: &Labels, e: Exemplar) -> ExemplarCheck {
        let check = self.check_against(self.newest(series), &e);
        if check != ExemplarCheck::Ok {
            return check;
        }
        let slot = if self.slots.len() < self.capacity {
            self.slots.len()
        } else {
            self.evict(self.next);
            self.next
        };
        self.next = (slot + 1) % self.capacity;
        let slot_id = slot as u32;
        let owner = match self.by_labels.get(series) {
            Some(&owner) => {
                if let Some(entry) = self.entries[owner as usize].as_mut() {
                    let prev = entry.newest as usize;
                    entry.newest = slot_id;
                    self.slots[prev].next = slot_id;
                }
                owner
            }
            None => {
                let entry = Entry {
                    labels: series.clone(),
                    oldest: slot_id,
                    newest: slot_id,
                };
                let owner = match self.free_entries.pop() {
                    Some(free) => {
                        self.entries[free as usize] = Some(entry);
                        free
                    }
                    None => {
                        self.entries.push(Some(entry));
                        (self.entries.len() - 1) as u32
                    }
                };
                self.by_labels.insert(series.clone(), owner);
                owner
            }
        };
        let new = Slot {
            exemplar: e,
            owner,
            next: NONE,
        };
        if slot == self.slots.len() {
            self.slots.push(new);
        } else {
            self.slots[slot] = new;
        }
        ExemplarCheck::Ok
    }

    /// Unlinks the exemplar in `slot` (always its series' oldest, since the ring overwrites in
    /// insertion order) from its series, dropping the series when it was the last one.
    fn evict(&mut self, slot: usize) {
        let Some(old) = self.slots.get(slot) else {
            return;
        };
        let (owner, next) = (old.owner as usize, old.next);
        let Some(entry) = self.entries.get_mut(owner).and_then(Option::as_mut) else {
            return;
        };
        if next == NONE {
            let labels = std::mem::take(&mut entry.labels);
            self.entries[owner] = None;
            self.free_entries.push(owner as u32);
            self.by_labels.remove(&labels);
        } else {
            entry.oldest = next;
        }
    }

    /// Exemplars in `[mint, maxt]` (inclusive, ms) of series matching every matcher of at least
    /// one set, sorted by series labels. No sets select nothing, as in Prometheus.
    pub(crate) fn select(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<ExemplarSeries> {
        let mut out = Vec::new();
        for entry in self.entries.iter().flatten() {
            let (Some(oldest), Some(newest)) = (
                self.slots.get(entry.oldest as usize),
                self.slots.get(entry.newest as usize),
            ) else {
                continue;
            };
            if oldest.exemplar.t > maxt || newest.exemplar.t < mint {
                continue;
            }
            if !matcher_sets
                .iter()
                .any(|set| set.iter().all(|m| m.matches_labels(&entry.labels)))
            {
                continue;
            }
            let mut exemplars = Vec::new();
            let mut at = entry.oldest;
            while let Some(slot) = self.slots.get(at as usize) {
                if slot.exemplar.t > maxt {
                    break;
                }
                if slot.exemplar.t >= mint {
                    exemplars.push(slot.exemplar.clone());
                }
                at = slot.next;
            }
            if !exemplars.is_empty() {
                out.push(ExemplarSeries {
                    series_labels: entry.labels.clone(),
                    exemplars,
                });
            }
        }
        out.sort_by(|a, b| a.series_labels.cmp(&b.series_labels));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    fn ex(trace: &str, value: f64, t: i64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs([("trace_id", trace)]),
            value,
            t,
        }
    }

    fn all(ring: &ExemplarRing) -> Vec<(String, Vec<i64>)> {
        ring.select(&[vec![]], i64::MIN, i64::MAX)
            .into_iter()
            .map(|s| {
                (
                    s.series_labels
                        .metric_name()
                        .unwrap_or_default()
                        .to_string(),
                    s.exemplars.iter().map(|e| e.t).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn full_ring_evicts_the_oldest_exemplar_of_any_series() {
        let mut ring = ExemplarRing::new(3);
        assert_eq!(ring.add(&series("a"), ex("1", 1.0, 10)), ExemplarCheck::Ok);
        assert_eq!(ring.add(&series("b"), ex("2", 1.0, 5)), ExemplarCheck::Ok);
        assert_eq!(ring.add(&series("a"), ex("3", 1.0, 20)), ExemplarCheck::Ok);
        assert_eq!(ring.len(), 3);
        // Overwrites a@10, then b@5 (b's only exemplar: b disappears), then a@20.
        ring.add(&series("c"), ex("4", 1.0, 1));
        assert_eq!(
            all(&ring),
            vec![
                ("a".into(), vec![20]),
                ("b".into(), vec![5]),
                ("c".into(), vec![1])
            ]
        );
        ring.add(&series("a"), ex("5", 1.0, 30));
        assert_eq!(
            all(&ring),
            vec![("a".into(), vec![20, 30]), ("c".into(), vec![1])]
        );
        assert_eq!(ring.num_series(), 2);
        ring.add(&series("c"), ex("6", 1.0, 2));
        assert_eq!(
            all(&ring),
            vec![("a".into(), vec![30]), ("c".into(), vec![1, 2])]
        );
        assert_eq!(ring.len(), 3);
        // A series that lost all its exemplars starts over: any timestamp is accepted.
        assert_eq!(ring.add(&series("b"), ex("7", 1.0, 1)), ExemplarCheck::Ok);
        assert_eq!(ring.newest(&series("b")).map(|e| e.t), Some(1));
    }

    #[test]
    fn duplicates_and_out_of_order_are_refused_per_series() {
        let mut ring = ExemplarRing::new(10);
        assert_eq!(ring.add(&series("a"), ex("1", 1.0, 10)), ExemplarCheck::Ok);
        assert_eq!(
            ring.add(&series("a"), ex("1", 1.0, 10)),
            ExemplarCheck::Duplicate
        );
        // Same time, other value or labels: out of order, as in Prometheus.
        assert_eq!(
            ring.add(&series("a"), ex("1", 2.0, 10)),
            ExemplarCheck::OutOfOrder
        );
        assert_eq!(
            ring.add(&series("a"), ex("9", 1.0, 9)),
            ExemplarCheck::OutOfOrder
        );
        // Other series have their own timeline.
        assert_eq!(ring.add(&series("b"), ex("1", 1.0, 9)), ExemplarCheck::Ok);
        assert_eq!(ring.len(), 2);
    }

    #[test]
    fn label_length_counts_characters_and_zero_capacity_disables() {
        let mut ring = ExemplarRing::new(10);
        // 8 + 120 = 128 characters of which many are multi-byte: accepted.
        let ok = Exemplar {
            labels: Labels::from_pairs([("trace_id", "é".repeat(120))]),
            value: 1.0,
            t: 1,
        };
        assert_eq!(ring.add(&series("a"), ok), ExemplarCheck::Ok);
        let long = Exemplar {
            labels: Labels::from_pairs([("trace_id", "x".repeat(121))]),
            value: 1.0,
            t: 2,
        };
        assert_eq!(ring.add(&series("a"), long), ExemplarCheck::LabelsTooLong);
        let mut off = ExemplarRing::new(0);
        assert_eq!(
            off.add(&series("a"), ex("1", 1.0, 1)),
            ExemplarCheck::Disabled
        );
        assert!(all(&off).is_empty());
    }

    #[test]
    fn select_filters_by_time_and_matcher_sets() {
        let mut ring = ExemplarRing::new(100);
        for t in 0..10 {
            ring.add(&series("a"), ex("x", t as f64, t * 10));
            ring.add(&series("b"), ex("y", t as f64, t * 10 + 5));
        }
        let got = ring.select(&[vec![Matcher::equal("__name__", "b")]], 20, 50);
        assert_eq!(got.len(), 1);
        let ts: Vec<i64> = got[0].exemplars.iter().map(|e| e.t).collect();
        assert_eq!(ts, vec![25, 35, 45]);
        // Two sets: union.
        let got = ring.select(
            &[
                vec![Matcher::equal("__name__", "a")],
                vec![Matcher::equal("__name__", "b")],
            ],
            90,
            90,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].series_labels, series("a"));
        assert!(ring.select(&[], i64::MIN, i64::MAX).is_empty());
        assert!(ring.select(&[vec![]], 100, 200).is_empty());
    }
}
