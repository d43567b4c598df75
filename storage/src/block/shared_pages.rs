//! Decompressed chunk pages shared by every reader of every block, most recently used last,
//! up to [`BUDGET_BYTES`] in total.
//!
//! A page holds the chunks of hundreds of consecutive series (by labels). A query for a few
//! series that lie far apart in label order (one host's CPU series, sorted by `cpu` before
//! `instance`) inflates a whole page per series, and a dashboard repeats the same queries
//! every refresh; with this cache the repeats find their pages inflated. Scans over more
//! pages than the budget holds simply cycle through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most bytes of decompressed pages kept (pages are about 1 MiB).
pub(crate) const BUDGET_BYTES: usize = 32 << 20;

static PAGES: Mutex<Recent> = Mutex::new(Recent::new(BUDGET_BYTES));
static NEXT_BLOCK_KEY: AtomicU64 = AtomicU64::new(1);

/// A key for a newly opened block, never reused in this process, so pages of a block that
/// was replaced or removed are never found for another.
pub(crate) fn new_block_key() -> u64 {
    NEXT_BLOCK_KEY.fetch_add(1, Ordering::Relaxed)
}

/// The decompressed page at `offset` of block `block`, if cached.
pub(crate) fn get(block: u64, offset: u64) -> Option<Arc<Vec<u8>>> {
    // The list is consistent after every operation, so a panic elsewhere cannot spoil it.
    PAGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(block, offset)
}

/// Caches a decompressed page, evicting the least recently used ones beyond the budget.
pub(crate) fn put(block: u64, offset: u64, data: Arc<Vec<u8>>) {
    PAGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(block, offset, data);
}

struct Entry {
    block: u64,
    offset: u64,
    data: Arc<Vec<u8>>,
}

/// Pages, least recently used first. A few dozen entries: a linear scan is cheaper than the
/// page inflation it saves by orders of magnitude.
struct Recent {
    entries: Vec<Entry>,
    budget: usize,
}

impl Recent {
    const fn new(budget: usize) -> Recent {
        Recent {
            entries: Vec::new(),
            budget,
        }
    }

    fn get(&mut self, block: u64, offset: u64) -> Option<Arc<Vec<u8>>> {
        let i = self
            .entries
            .iter()
            .position(|e| e.block == block && e.offset == offset)?;
        let entry = self.entries.remove(i);
        let data = Arc::clone(&entry.data);
        self.entries.push(entry);
        Some(data)
    }

    fn put(&mut self, block: u64, offset: u64, data: Arc<Vec<u8>>) {
        if data.len() > self.budget
            || self
                .entries
                .iter()
                .any(|e| e.block == block && e.offset == offset)
        {
            return;
        }
        self.entries.push(Entry {
            block,
            offset,
            data,
        });
        let mut total: usize = self.entries.iter().map(|e| e.data.len()).sum();
        while total > self.budget && self.entries.len() > 1 {
            total -= self.entries.remove(0).data.len();
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.entries.iter().map(|e| e.data.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_recently_used_pages_within_budget() {
        let page = |byte: u8| Arc::new(vec![byte; 100]);
        let mut r = Recent::new(300);
        r.put(1, 0, page(1));
        r.put(2, 0, page(2));
        r.put(1, 8, page(3));
        assert_eq!(r.get(2, 0).map(|d| d[0]), Some(2));
        assert_eq!(r.get(1, 0).map(|d| d[0]), Some(1));
        assert!(r.get(3, 0).is_none());
        // Over budget: the least recently used page (block 1, offset 8) goes.
        r.put(4, 0, page(4));
        assert!(r.get(1, 8).is_none());
        assert_eq!(r.get(2, 0).map(|d| d[0]), Some(2));
        assert_eq!(r.get(4, 0).map(|d| d[0]), Some(4));
        assert_eq!(r.held(), 300);
        // A page larger than the whole budget is not kept.
        r.put(5, 0, Arc::new(vec![0; 301]));
        assert!(r.get(5, 0).is_none());
        assert_eq!(r.held(), 300);
    }

    #[test]
    fn block_keys_are_unique() {
        let (a, b) = (new_block_key(), new_block_key());
        assert_ne!(a, b);
    }
}
