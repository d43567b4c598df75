//! Fixtures shared by the database's directory-backed tests.

use crate::{Db, DbOptions, FsyncPolicy, Labels, Matcher, SeriesSource};

/// Default options without fsyncs (tests do not crash the machine).
pub(crate) fn opts() -> DbOptions {
    DbOptions {
        fsync: FsyncPolicy::Never,
        ..DbOptions::default()
    }
}

/// `m{i="<i>"}`.
pub(crate) fn lbl(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "m"), ("i", &i.to_string() as &str)])
}

/// Every `m` series over all time: labels and (timestamp, value bits) pairs.
pub(crate) fn dump(db: &Db) -> Vec<(String, Vec<(i64, u64)>)> {
    db.select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
            )
        })
        .collect()
}
