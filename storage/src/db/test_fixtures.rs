//! Fixtures shared by the database's directory-backed tests.

use crate::{DbOptions, FsyncPolicy, Labels};

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
