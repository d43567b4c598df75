//! Tombstones: which samples `delete_series` removed, as closed time intervals per series.
//!
//! A block records its deletions in `blocks/<id>/tombstones`, keyed by series ordinal; the head
//! records its own in `<data>/head_tombstones`, keyed by label set (head series ids are not
//! stable across restarts). Both use one small checksummed format (`storage/FORMAT.md`,
//! "Tombstones"). A file is replaced as a whole: written to a temporary name, fsynced, renamed,
//! and the directory fsynced, so readers see the old or the new set, never a torn one. Block
//! files stay immutable: only the tombstones file beside them changes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::Block;
use crate::series_data::{SeriesSamples, Timed};
use crate::{Label, Labels, StorageError};

/// File name of a block's tombstones.
pub(crate) const TOMBSTONES_FILE: &str = "tombstones";
const MAGIC: &[u8; 8] = b"SXTTOMB1";
const VERSION: u32 = 1;
/// Magic, version, kind and entry count.
const HEADER_LEN: usize = 8 + 4 + 4 + 4;

/// A closed interval `[mint, maxt]` of deleted timestamps (milliseconds).
pub(crate) type Interval = (i64, i64);

/// What a tombstone entry is keyed by, and how that key is written.
pub(crate) trait TombstoneKey: Ord + Clone {
    /// Stored in the header so a block file is never read as a head file or vice versa.
    const KIND: u32;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(buf: &mut &[u8]) -> Option<Self>;
}

/// Block tombstones: the series ordinal within the block.
impl TombstoneKey for u32 {
    const KIND: u32 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(buf: &mut &[u8]) -> Option<u32> {
        take_u32(buf)
    }
}

/// Head tombstones: the series' label set.
impl TombstoneKey for Labels {
    const KIND: u32 = 2;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for l in self {
            for s in [&l.name, &l.value] {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    fn decode(buf: &mut &[u8]) -> Option<Labels> {
        let n = take_u32(buf)?;
        let mut labels = Vec::with_capacity(n.min(256) as usize);
        for _ in 0..n {
            let name = take_str(buf)?;
            let value = take_str(buf)?;
            labels.push(Label::new(name, value));
        }
        Some(Labels::from_sorted(labels))
    }
}

/// Deleted intervals per series: sorted, disjoint and non-adjacent within each series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tombstones<K> {
    entries: BTreeMap<K, Vec<Interval>>,
}

impl<K> Default for Tombstones<K> {
    fn default() -> Self {
        Tombstones {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: TombstoneKey> Tombstones<K> {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of series with at least one deleted interval.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Deletes `[mint, maxt]` of `key`, merging with overlapping or adjacent intervals.
    pub(crate) fn add(&mut self, key: K, mint: i64, maxt: i64) {
        if mint > maxt {
            return;
        }
        let list = self.entries.entry(key).or_default();
        list.push((mint, maxt));
        list.sort_unstable();
        let mut merged: Vec<Interval> = Vec::with_capacity(list.len());
        for &(lo, hi) in list.iter() {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        *list = merged;
    }

    /// Adds every interval of `other`.
    pub(crate) fn merge(&mut self, other: &Tombstones<K>) {
        for (k, list) in &other.entries {
            for &(lo, hi) in list {
                self.add(k.clone(), lo, hi);
            }
        }
    }

    /// The deleted intervals of `key` (empty when none).
    pub(crate) fn intervals(&self, key: &K) -> &[Interval] {
        self.entries.get(key).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &[Interval])> {
        self.entries.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// Keeps the intervals for which `keep` is true; series left without any are dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, Interval) -> bool) {
        self.entries.retain(|k, list| {
            list.retain(|&iv| keep(k, iv));
            !list.is_empty()
        });
    }

    /// Removes the deleted samples of `key` from `samples[from..]` (sorted by time or not).
    pub(crate) fn remove_deleted<S: Timed>(&self, key: &K, samples: &mut Vec<S>, from: usize) {
        let list = self.intervals(key);
        if list.is_empty() || from >= samples.len() {
            return;
        }
        let mut kept = from;
        for i in from..samples.len() {
            if !is_deleted(list, samples[i].t()) {
                samples.swap(kept, i);
                kept += 1;
            }
        }
        samples.truncate(kept);
    }

    /// The file image (see the module docs for the layout).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * 32 + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&K::KIND.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (k, list) in &self.entries {
            k.encode(&mut out);
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for &(lo, hi) in list {
                out.extend_from_slice(&lo.to_le_bytes());
                out.extend_from_slice(&hi.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a file image; `Err` says what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Tombstones<K>, String> {
        if bytes.len() < HEADER_LEN + 4 || !bytes.starts_with(MAGIC) {
            return Err("tombstones file is too short or has a bad magic".into());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != crc {
            return Err("tombstones checksum mismatch".into());
        }
        let mut buf = &body[MAGIC.len()..];
        let version = take_u32(&mut buf).unwrap_or(0);
        if version != VERSION {
            return Err(format!("unsupported tombstones version {version}"));
        }
        let kind = take_u32(&mut buf).unwrap_or(0);
        if kind != K::KIND {
            return Err(format!("tombstones of kind {kind}, expected {}", K::KIND));
        }
        let truncated = || "tombstones entry is truncated".to_string();
        let n = take_u32(&mut buf).ok_or_else(truncated)?;
        let mut out = Tombstones::default();
        for _ in 0..n {
            let key = K::decode(&mut buf).ok_or_else(truncated)?;
            let m = take_u32(&mut buf).ok_or_else(truncated)?;
            for _ in 0..m {
                let lo = take_i64(&mut buf).ok_or_else(truncated)?;
                let hi = take_i64(&mut buf).ok_or_else(truncated)?;
                out.add(key.clone(), lo, hi);
            }
        }
        if !buf.is_empty() {
            return Err("trailing bytes after the last tombstones entry".into());
        }
        Ok(out)
    }

    /// Reads `path`; a missing file is an empty set, a damaged one a `Corruption` error.
    pub(crate) fn read(path: &Path) -> Result<Tombstones<K>, StorageError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tombstones::default()),
            Err(e) => return Err(StorageError::io(path, e)),
        };
        Tombstones::decode(&bytes).map_err(|reason| StorageError::Corruption {
            path: path.to_path_buf(),
            offset: 0,
            reason,
        })
    }

    /// Durably replaces `path` with this set (removes it when the set is empty).
    pub(crate) fn write(&self, path: &Path) -> Result<(), StorageError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        if self.is_empty() {
            match fs::remove_file(path) {
                Ok(()) => return super::writer::sync_dir(dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp_name);
        let mut f = File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        f.write_all(&self.encode())
            .and_then(|_| f.sync_all())
            .map_err(|e| StorageError::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
        super::writer::sync_dir(dir)
    }
}

/// True when `t` lies in one of the sorted, disjoint `intervals`.
pub(crate) fn is_deleted(intervals: &[Interval], t: i64) -> bool {
    let i = intervals.partition_point(|iv| iv.1 < t);
    intervals.get(i).is_some_and(|iv| iv.0 <= t)
}

fn take_u32(buf: &mut &[u8]) -> Option<u32> {
    let (head, rest) = buf.split_first_chunk::<4>()?;
    *buf = rest;
    Some(u32::from_le_bytes(*head))
}

fn take_i64(buf: &mut &[u8]) -> Option<i64> {
    let (head, rest) = buf.split_first_chunk::<8>()?;
    *buf = rest;
    Some(i64::from_le_bytes(*head))
}

fn take_str(buf: &mut &[u8]) -> Option<String> {
    let len = take_u32(buf)? as usize;
    let s = buf.get(..len)?;
    let out = std::str::from_utf8(s).ok()?.to_string();
    *buf = &buf[len..];
    Some(out)
}

/// Loads a block's tombstones when the block is opened.
pub(super) fn load(block_dir: &Path) -> Result<Tombstones<u32>, StorageError> {
    Tombstones::read(&block_dir.join(TOMBSTONES_FILE))
}

impl Block {
    /// The block's current deletions (a snapshot; later deletions do not change it).
    pub(crate) fn tombstones(&self) -> Arc<Tombstones<u32>> {
        self.tombstones.read().clone()
    }

    /// Adds deletions: persisted first, then visible to new reads.
    pub(crate) fn add_tombstones(&self, add: &Tombstones<u32>) -> Result<(), StorageError> {
        if add.is_empty() {
            return Ok(());
        }
        let mut current = self.tombstones.write();
        let mut next = Tombstones::clone(&current);
        next.merge(add);
        next.write(&self.dir.join(TOMBSTONES_FILE))?;
        *current = Arc::new(next);
        Ok(())
    }

    /// True when series `ordinal` has a sample in `[mint, maxt]` that is not deleted. Decodes
    /// chunks only when the series has tombstones.
    pub(crate) fn has_live_samples(
        &self,
        tombstones: &Tombstones<u32>,
        ordinal: u32,
        chunks: &[super::ChunkMeta],
        mint: i64,
        maxt: i64,
        cache: &mut super::PageCache,
    ) -> Result<bool, StorageError> {
        let deleted = tombstones.intervals(&ordinal);
        let mut samples = SeriesSamples::default();
        let live = |t: i64| t >= mint && t <= maxt && !is_deleted(deleted, t);
        for c in chunks.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint) {
            if deleted.is_empty() {
                return Ok(true);
            }
            samples.clear();
            self.read_chunk(c, cache, &mut samples)?;
            if samples.floats.iter().any(|s| live(s.t)) || samples.hists.iter().any(|s| live(s.t)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;

    #[test]
    fn intervals_merge_and_filter() {
        let mut t: Tombstones<u32> = Tombstones::default();
        t.add(3, 10, 20);
        t.add(3, 21, 30);
        t.add(3, 50, 60);
        t.add(3, 5, 12);
        t.add(1, 7, 6);
        assert_eq!(t.intervals(&3), &[(5, 30), (50, 60)]);
        assert!(t.intervals(&1).is_empty());
        let mut s: Vec<Sample> = [0, 5, 30, 31, 49, 50, 61]
            .iter()
            .map(|&t| Sample { t, v: 1.0 })
            .collect();
        t.remove_deleted(&3, &mut s, 1);
        let ts: Vec<i64> = s.iter().map(|s| s.t).collect();
        assert_eq!(ts, vec![0, 31, 49, 61]);
    }

    #[test]
    fn file_roundtrip_and_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("head_tombstones");
        let mut t: Tombstones<Labels> = Tombstones::default();
        t.add(Labels::from_pairs([("__name__", "up"), ("job", "a")]), 1, 2);
        t.add(Labels::from_pairs([("__name__", "up")]), i64::MIN, i64::MAX);
        t.write(&path).unwrap();
        assert_eq!(Tombstones::<Labels>::read(&path).unwrap(), t);
        // A block file cannot be read as a head file.
        assert!(Tombstones::<u32>::read(&path).is_err());
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Tombstones::<Labels>::read(&path),
            Err(StorageError::Corruption { .. })
        ));
        Tombstones::<Labels>::default().write(&path).unwrap();
        assert!(!path.exists());
        assert!(Tombstones::<Labels>::read(&path).unwrap().is_empty());
    }
}
