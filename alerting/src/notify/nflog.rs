//! The notification log: per (aggregation group, receiver integration), which alerts were
//! firing and which resolved when the last notification went out, and when. Deduplication reads
//! it; it is persisted (`nflog.json`, written atomically on every change) so a restart neither
//! re-sends a notification nor forgets that a resolve is owed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One log entry. Times in Unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Entry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub timestamp_ms: i64,
    pub expires_at_ms: i64,
}

impl Entry {
    /// Alertmanager's `needsUpdate`: whether a notification with these firing and resolved
    /// fingerprints is owed given this previous one.
    pub fn needs_update(
        entry: Option<&Entry>,
        firing: &BTreeSet<u64>,
        resolved: &BTreeSet<u64>,
        send_resolved: bool,
        repeat_interval_ms: i64,
        now_ms: i64,
    ) -> Option<&'static str> {
        let Some(e) = entry else {
            return (!firing.is_empty()).then_some("first notification");
        };
        if !firing.is_subset(&e.firing) {
            return Some("new alerts added");
        }
        if firing.is_empty() {
            // Nothing fires now: owed only if the receiver was told something fires.
            return (!e.firing.is_empty()).then_some("all alerts resolved");
        }
        if send_resolved && !resolved.is_subset(&e.resolved) {
            return Some("alerts resolved");
        }
        (e.timestamp_ms + repeat_interval_ms <= now_ms).then_some("repeat interval elapsed")
    }
}

/// The log, keyed by `group key` + NUL + `receiver/integration/index`.
pub struct NotificationLog {
    entries: Mutex<BTreeMap<String, Entry>>,
    path: Option<PathBuf>,
    retention_ms: i64,
}

pub fn key(group_key: &str, receiver_key: &str) -> String {
    format!("{group_key}\u{0}{receiver_key}")
}

impl NotificationLog {
    /// Opens the log in `dir` (or an in-memory one for `None`), dropping expired entries.
    pub fn open(
        dir: Option<&Path>,
        retention_ms: i64,
        now_ms: i64,
    ) -> Result<NotificationLog, String> {
        let path = dir.map(|d| d.join("nflog.json"));
        let mut entries: BTreeMap<String, Entry> = match &path {
            Some(p) => read_json(p)?.unwrap_or_default(),
            None => BTreeMap::new(),
        };
        entries.retain(|_, e| e.expires_at_ms > now_ms);
        Ok(NotificationLog {
            entries: Mutex::new(entries),
            path,
            retention_ms,
        })
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.entries.lock().get(key).cloned()
    }

    /// Records sent notifications (`(key, firing, resolved)`) and persists the log once.
    pub fn log(
        &self,
        sent: impl IntoIterator<Item = (String, BTreeSet<u64>, BTreeSet<u64>)>,
        now_ms: i64,
    ) -> Result<(), String> {
        let mut entries = self.entries.lock();
        entries.retain(|_, e| e.expires_at_ms > now_ms);
        let mut changed = false;
        for (key, firing, resolved) in sent {
            changed = true;
            entries.insert(
                key,
                Entry {
                    firing,
                    resolved,
                    timestamp_ms: now_ms,
                    expires_at_ms: now_ms + self.retention_ms,
                },
            );
        }
        match &self.path {
            Some(p) if changed => write_json_atomic(p, &*entries),
            _ => Ok(()),
        }
    }
}

/// Reads a JSON file; `None` when it does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes JSON to `path` via a fsynced temporary file and a rename: never half-written.
pub(crate) fn write_json_atomic<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> Result<(), String> {
    use std::io::Write;
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn needs_update_follows_alertmanager() {
        let repeat = 4 * 3_600_000;
        assert_eq!(
            Entry::needs_update(None, &set(&[1]), &set(&[]), true, repeat, 0),
            Some("first notification")
        );
        assert_eq!(
            Entry::needs_update(None, &set(&[]), &set(&[1]), true, repeat, 0),
            None
        );
        let e = Entry {
            firing: set(&[1, 2]),
            resolved: set(&[]),
            timestamp_ms: 1000,
            expires_at_ms: i64::MAX,
        };
        assert_eq!(
            Entry::needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, repeat, 2000),
            None
        );
        assert_eq!(
            Entry::needs_update(Some(&e), &set(&[1]), &set(&[]), false, repeat, 2000),
            None
        );
        assert_eq!(
            Entry::needs_update(Some(&e), &set(&[1]), &set(&[2]), true, repeat, 2000),
            Some("alerts resolved")
        );
        assert_eq!(
            Entry::needs_update(Some(&e), &set(&[1, 3]), &set(&[]), true, repeat, 2000),
            Some("new alerts added")
        );
        assert_eq!(
            Entry::needs_update(Some(&e), &set(&[]), &set(&[1, 2]), false, repeat, 2000),
            Some("all alerts resolved")
        );
        assert_eq!(
            Entry::needs_update(Some(&e), &set(&[1]), &set(&[]), true, repeat, 1000 + repeat),
            Some("repeat interval elapsed")
        );
    }

    #[test]
    fn log_survives_reopen_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let log = NotificationLog::open(Some(dir.path()), 10_000, 0).unwrap();
        log.log([(key("g", "r/webhook/0"), set(&[7]), set(&[]))], 100)
            .unwrap();
        let again = NotificationLog::open(Some(dir.path()), 10_000, 5_000).unwrap();
        assert_eq!(
            again.get(&key("g", "r/webhook/0")).unwrap().firing,
            set(&[7])
        );
        let expired = NotificationLog::open(Some(dir.path()), 10_000, 20_000).unwrap();
        assert!(expired.get(&key("g", "r/webhook/0")).is_none());
    }
}
