//! The exemplar side of [`Db`]: appends (validated against the ring, logged as WAL record 4,
//! then applied, under the append lock like samples) and time-range selection.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::{created_series, Db};
use crate::exemplar::{Exemplar, ExemplarCheck, ExemplarOutcome, ExemplarRing, ExemplarSeries};
use crate::head::{IdHasher, SeriesRef};
use crate::labels::SeriesLabels;
use crate::metrics::StorageMetrics;
use crate::{Labels, Matcher, StorageError};

/// Sets the exemplar gauges from the ring's state.
pub(super) fn publish_gauges(metrics: &StorageMetrics, ring: &ExemplarRing) {
    metrics.exemplars_in_storage.set(ring.len() as i64);
    metrics.series_with_exemplars.set(ring.num_series() as i64);
    metrics.max_exemplars.set(ring.capacity() as i64);
}

impl Db {
    /// Stores exemplars for series (created in the head, without samples, when they do not
    /// exist yet). Exemplars of one series must come in time order. Each exemplar is checked
    /// against its series' newest one: identical ones are ignored as resends, older or
    /// same-time ones are refused as out of order, labels over 128 characters are refused; all
    /// of these are counted in the outcome, never an error. Accepted exemplars are in the WAL
    /// before this returns. With `max_exemplars: 0` everything is refused as `disabled` and
    /// nothing is created.
    pub fn append_exemplars<'a, L: SeriesLabels + 'a>(
        &self,
        batch: impl Iterator<Item = (&'a L, &'a [Exemplar])>,
    ) -> Result<ExemplarOutcome, StorageError> {
        let mut wal = self.wal.lock();
        let mut out = ExemplarOutcome::default();
        if self.exemplars.read().capacity() == 0 {
            for (_, list) in batch {
                out.disabled += list.len();
            }
            return Ok(out);
        }
        struct Entry {
            series: SeriesRef,
            created: bool,
            labels: Labels,
            /// Index in `accepted` of this batch's newest accepted exemplar of the series.
            newest: Option<usize>,
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut position: HashMap<u32, usize, BuildHasherDefault<IdHasher>> = HashMap::default();
        let mut accepted: Vec<(u32, Exemplar)> = Vec::new();
        {
            let ring = self.exemplars.read();
            for (labels, list) in batch {
                if list.is_empty() {
                    continue;
                }
                let (id, series, created) = self.head.get_or_create(labels);
                let at = *position.entry(id).or_insert_with(|| {
                    let labels = series.labels();
                    entries.push(Entry {
                        series,
                        created,
                        labels,
                        newest: None,
                    });
                    entries.len() - 1
                });
                let entry = &mut entries[at];
                for e in list {
                    let newest = match entry.newest {
                        Some(i) => Some(&accepted[i].1),
                        None => ring.newest(&entry.labels),
                    };
                    let check = ring.check_against(newest, e);
                    check.count(&mut out);
                    if check == ExemplarCheck::Ok {
                        entry.newest = Some(accepted.len());
                        accepted.push((id, e.clone()));
                    }
                }
            }
        }
        let n_created = entries.iter().filter(|e| e.created).count();
        if let Some(wal) = wal.as_mut() {
            let created = created_series(
                position
                    .iter()
                    .map(|(&id, &at)| (id, entries[at].created, &entries[at].series)),
            );
            let new_labels: Vec<(u32, &Labels)> = created.iter().map(|(id, l)| (*id, l)).collect();
            let (bytes, synced) = wal.log_exemplars(&new_labels, &accepted)?;
            self.metrics.wal_bytes_written.inc_by(bytes);
            if synced {
                self.metrics.wal_fsyncs.inc();
            }
        }
        {
            let mut ring = self.exemplars.write();
            for (id, e) in accepted {
                if let Some(&at) = position.get(&id) {
                    ring.add(&entries[at].labels, e);
                }
            }
            publish_gauges(&self.metrics, &ring);
        }
        drop(wal);
        self.metrics.exemplars_appended.inc_by(out.appended as u64);
        self.metrics
            .out_of_order_exemplars
            .inc_by(out.out_of_order as u64);
        self.metrics.series_created.inc_by(n_created as u64);
        self.metrics
            .active_series
            .set(self.head.num_series() as i64);
        Ok(out)
    }

    /// Exemplars with timestamps in `[mint, maxt]` (inclusive, ms) of series matching all
    /// matchers of at least one set, sorted by series labels, each series' exemplars oldest
    /// first. An empty list of sets selects nothing.
    pub fn select_exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<ExemplarSeries>, StorageError> {
        Ok(self.exemplars.read().select(matcher_sets, mint, maxt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DbOptions, Sample};

    fn series(job: &str) -> Labels {
        Labels::from_pairs([
            ("__name__", "rpc_seconds_bucket"),
            ("job", job),
            ("le", "1"),
        ])
    }

    fn ex(trace: &str, value: f64, t: i64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs([("trace_id", trace)]),
            value,
            t,
        }
    }

    fn all(db: &Db) -> Vec<(String, Vec<(String, i64)>)> {
        db.select_exemplars(&[vec![]], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.series_labels.get("job").unwrap_or_default().to_string(),
                    s.exemplars
                        .iter()
                        .map(|e| {
                            (
                                e.labels.get("trace_id").unwrap_or_default().to_string(),
                                e.t,
                            )
                        })
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn append_counts_refusals_and_replay_restores_exactly_what_was_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (series("a"), series("b"));
        {
            let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
            db.append(&[(a.clone(), vec![Sample { t: 10, v: 1.0 }])])
                .unwrap();
            let list_a = vec![ex("t1", 0.5, 10), ex("t1", 0.5, 10), ex("t2", 0.7, 5)];
            // `b` has no samples: the series is created for its exemplar.
            let list_b = vec![ex("t3", 0.1, 7)];
            let out = db
                .append_exemplars([(&a, list_a.as_slice()), (&b, list_b.as_slice())].into_iter())
                .unwrap();
            assert_eq!(
                out,
                ExemplarOutcome {
                    appended: 2,
                    duplicates: 1,
                    out_of_order: 1,
                    ..Default::default()
                }
            );
            // A resend of the stored newest exemplar in a later request is a duplicate.
            let again = vec![ex("t1", 0.5, 10), ex("t4", 0.9, 20)];
            let out = db
                .append_exemplars(std::iter::once((&a, again.as_slice())))
                .unwrap();
            assert_eq!((out.appended, out.duplicates), (1, 1));
            assert_eq!(db.metrics().exemplars_appended.get(), 3);
            assert_eq!(db.metrics().out_of_order_exemplars.get(), 1);
            assert_eq!(db.metrics().exemplars_in_storage.get(), 3);
        }
        let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
        let want = vec![
            (
                "a".to_string(),
                vec![("t1".to_string(), 10), ("t4".to_string(), 20)],
            ),
            ("b".to_string(), vec![("t3".to_string(), 7)]),
        ];
        assert_eq!(all(&db), want);
        assert_eq!(db.metrics().exemplars_in_storage.get(), 3);
        // After replay the per-series order still holds.
        let late = vec![ex("t5", 1.0, 15)];
        let out = db
            .append_exemplars(std::iter::once((&a, late.as_slice())))
            .unwrap();
        assert_eq!(out.out_of_order, 1);
        // And the replayed values are bit-exact.
        let got = db
            .select_exemplars(&[vec![Matcher::equal("job", "a")]], 20, 20)
            .unwrap();
        assert_eq!(got[0].exemplars, vec![ex("t4", 0.9, 20)]);
    }

    #[test]
    fn replay_into_a_smaller_ring_keeps_the_newest_and_zero_disables() {
        let tmp = tempfile::tempdir().unwrap();
        let a = series("a");
        {
            let db = Db::open(tmp.path(), DbOptions::default()).unwrap();
            let list: Vec<Exemplar> = (0..10).map(|i| ex(&format!("t{i}"), 1.0, i)).collect();
            db.append_exemplars(std::iter::once((&a, list.as_slice())))
                .unwrap();
        }
        let small = DbOptions {
            max_exemplars: 4,
            ..DbOptions::default()
        };
        let db = Db::open(tmp.path(), small).unwrap();
        let ts: Vec<i64> = all(&db)[0].1.iter().map(|(_, t)| *t).collect();
        assert_eq!(ts, vec![6, 7, 8, 9]);
        drop(db);
        let off = DbOptions {
            max_exemplars: 0,
            ..DbOptions::default()
        };
        let db = Db::open(tmp.path(), off).unwrap();
        assert!(all(&db).is_empty());
        let before = db.head_stats().num_series;
        let list = vec![ex("x", 1.0, 100)];
        let out = db
            .append_exemplars(std::iter::once((&series("new"), list.as_slice())))
            .unwrap();
        assert_eq!(out.disabled, 1);
        assert_eq!(db.head_stats().num_series, before, "no series created");
    }
}
