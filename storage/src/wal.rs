//! The write-ahead log: every accepted sample is framed, checksummed and written (and, by
//! policy, fsynced) here before the write is acknowledged; startup replays it into the head.
//!
//! Layout: `<data>/wal/<8-digit segment number>`. A segment is a sequence of frames
//! `[u32 LE payload length][u32 LE CRC-32 of payload][payload]`; the payload's first byte is the
//! record type. Segments are never rewritten: each start of the process opens a new one, so a
//! torn tail can only be at the end of a segment written by an earlier process.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::db::FsyncPolicy;
use crate::varint::{read_uvarint, read_varint, write_uvarint, write_varint};
use crate::{Label, Labels, Sample, StorageError};

mod exemplars;
mod histograms;
mod read_only;
use exemplars::{decode_exemplars, encode_exemplars};
#[cfg(test)]
pub(crate) use histograms::encode_histogram;
use histograms::{decode_histograms, encode_histograms};
pub(crate) use histograms::{hint_code, hint_from_code, read_spans, write_spans};
pub(crate) use read_only::replay_read_only;

const SEGMENT_MAX_BYTES: u64 = 128 * 1024 * 1024;
const FRAME_HEADER: usize = 8;
/// Upper bound on one record; larger lengths in a header mean corruption.
const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

const RECORD_SERIES: u8 = 1;
const RECORD_SAMPLES: u8 = 2;
const RECORD_HISTOGRAMS: u8 = 3;
const RECORD_EXEMPLARS: u8 = 4;

/// A decoded WAL record.
#[derive(Debug, PartialEq)]
pub(crate) enum Record {
    /// New series with the ids the head gave them.
    Series(Vec<(u32, Labels)>),
    /// Samples for series ids defined by earlier `Series` records.
    Samples(Vec<(u32, Sample)>),
    /// Native histogram samples for series ids defined by earlier `Series` records.
    Histograms(Vec<(u32, crate::HistogramSample)>),
    /// Exemplars for series ids defined by earlier `Series` records.
    Exemplars(Vec<(u32, crate::Exemplar)>),
}

pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    segment: u32,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    last_sync: Instant,
    scratch: Vec<u8>,
}

/// What a replay found.
#[derive(Debug, Default)]
pub(crate) struct ReplayStats {
    pub(crate) records: u64,
    pub(crate) segments: u32,
    pub(crate) truncated_bytes: u64,
}

impl Wal {
    /// Replays every segment through `apply`, truncating torn or corrupt tails, then opens a new
    /// segment for writing.
    pub(crate) fn open(
        dir: &Path,
        fsync: FsyncPolicy,
        mut apply: impl FnMut(Record),
    ) -> Result<(Wal, ReplayStats), StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let mut stats = ReplayStats::default();
        let checkpoint = latest_checkpoint(dir)?;
        if let Some(upto) = checkpoint {
            let path = checkpoint_path(dir, upto);
            let data = fs::read(&path).map_err(|e| StorageError::io(&path, e))?;
            let (good_len, records) = decode_segment(&data);
            if good_len < data.len() {
                tracing::error!(checkpoint = %path.display(), offset = good_len, "wal checkpoint is corrupt; replaying what precedes the damage");
                stats.truncated_bytes += (data.len() - good_len) as u64;
            }
            for r in records {
                stats.records += 1;
                apply(r);
            }
        }
        let mut segments = list_segments(dir)?;
        if let Some(upto) = checkpoint {
            // Segments folded into the checkpoint (left behind by a crash during cleanup).
            for &n in segments.iter().filter(|&&n| n <= upto) {
                let _ = fs::remove_file(segment_path(dir, n));
            }
            segments.retain(|&n| n > upto);
        }
        for &n in &segments {
            let path = segment_path(dir, n);
            let data = fs::read(&path).map_err(|e| StorageError::io(&path, e))?;
            let (good_len, records) = decode_segment(&data);
            for r in records {
                stats.records += 1;
                apply(r);
            }
            stats.segments += 1;
            if good_len < data.len() {
                let lost = (data.len() - good_len) as u64;
                stats.truncated_bytes += lost;
                tracing::warn!(
                    segment = %path.display(),
                    offset = good_len,
                    dropped_bytes = lost,
                    "wal segment has a torn or corrupt tail; truncating it and keeping everything before"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| StorageError::io(&path, e))?;
                f.set_len(good_len as u64)
                    .map_err(|e| StorageError::io(&path, e))?;
                f.sync_all().map_err(|e| StorageError::io(&path, e))?;
            }
        }
        let segment = segments
            .last()
            .map_or(checkpoint.map_or(0, |c| c + 1), |n| n + 1);
        let file = create_segment(dir, segment)?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
                segment,
                segment_bytes: 0,
                fsync,
                last_sync: Instant::now(),
                scratch: Vec::new(),
            },
            stats,
        ))
    }

    /// Writes records as one `write` call and syncs according to the policy. Returns the bytes
    /// written and whether it fsynced.
    pub(crate) fn log(
        &mut self,
        series: &[(u32, &Labels)],
        samples: &[(u32, Sample)],
    ) -> Result<(u64, bool), StorageError> {
        self.log_record(series, RECORD_SAMPLES, !samples.is_empty(), |payload| {
            encode_samples(samples, payload)
        })
    }

    /// [`Wal::log`] for native histogram samples.
    pub(crate) fn log_histograms(
        &mut self,
        series: &[(u32, &Labels)],
        samples: &[(u32, crate::HistogramSample)],
    ) -> Result<(u64, bool), StorageError> {
        self.log_record(series, RECORD_HISTOGRAMS, !samples.is_empty(), |payload| {
            let refs: Vec<(u32, &crate::HistogramSample)> =
                samples.iter().map(|(id, s)| (*id, s)).collect();
            encode_histograms(&refs, payload)
        })
    }

    /// [`Wal::log`] for exemplars.
    pub(crate) fn log_exemplars(
        &mut self,
        series: &[(u32, &Labels)],
        exemplars: &[(u32, crate::Exemplar)],
    ) -> Result<(u64, bool), StorageError> {
        self.log_record(series, RECORD_EXEMPLARS, !exemplars.is_empty(), |payload| {
            let refs: Vec<(u32, &crate::Exemplar)> =
                exemplars.iter().map(|(id, e)| (*id, e)).collect();
            encode_exemplars(&refs, payload)
        })
    }

    /// A `Series` record for new series (if any), then one record of type `kind` (if `has_data`)
    /// whose body `encode` appends, written and synced together.
    fn log_record(
        &mut self,
        series: &[(u32, &Labels)],
        kind: u8,
        has_data: bool,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(u64, bool), StorageError> {
        self.scratch.clear();
        if !series.is_empty() {
            let mut payload = vec![RECORD_SERIES];
            encode_series(series, &mut payload);
            push_frame(&mut self.scratch, &payload);
        }
        if has_data {
            let mut payload = vec![kind];
            encode(&mut payload);
            push_frame(&mut self.scratch, &payload);
        }
        self.write_scratch()
    }

    /// Writes the frames in `scratch` as one `write` call and syncs according to the policy.
    fn write_scratch(&mut self) -> Result<(u64, bool), StorageError> {
        if self.scratch.is_empty() {
            return Ok((0, false));
        }
        if self.segment_bytes > 0
            && self.segment_bytes + self.scratch.len() as u64 > SEGMENT_MAX_BYTES
        {
            self.rotate()?;
        }
        let path = segment_path(&self.dir, self.segment);
        self.file
            .write_all(&self.scratch)
            .map_err(|e| StorageError::io(&path, e))?;
        self.segment_bytes += self.scratch.len() as u64;
        let due = match self.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
            FsyncPolicy::Never => false,
        };
        if due {
            self.sync()?;
        }
        Ok((self.scratch.len() as u64, due))
    }

    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        let path = segment_path(&self.dir, self.segment);
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&path, e))?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The segment being written.
    pub(crate) fn current_segment(&self) -> u32 {
        self.segment
    }

    /// Closes the current segment and starts the next.
    pub(crate) fn rotate(&mut self) -> Result<(), StorageError> {
        self.sync()?;
        self.segment += 1;
        self.file = create_segment(&self.dir, self.segment)?;
        self.segment_bytes = 0;
        Ok(())
    }
}

/// Folds the previous checkpoint and every segment up to and including `upto` into a new
/// checkpoint, keeping only series in `live` and samples at or after `min_t` (older ones are in
/// blocks), then deletes what it replaced. Segments after `upto` are untouched, so this runs
/// while appends continue. Returns the checkpoint's size in bytes.
pub(crate) fn write_checkpoint(
    dir: &Path,
    upto: u32,
    live: &roaring::RoaringBitmap,
    min_t: i64,
) -> Result<u64, StorageError> {
    let previous = latest_checkpoint(dir)?;
    let mut inputs: Vec<PathBuf> = previous
        .map(|c| checkpoint_path(dir, c))
        .into_iter()
        .collect();
    let segments: Vec<u32> = list_segments(dir)?
        .into_iter()
        .filter(|&n| n <= upto)
        .collect();
    inputs.extend(segments.iter().map(|&n| segment_path(dir, n)));

    let mut out = Vec::new();
    let mut payload = Vec::new();
    for path in &inputs {
        let data = fs::read(path).map_err(|e| StorageError::io(path, e))?;
        let (_, records) = decode_segment(&data);
        for r in records {
            match r {
                Record::Series(series) => {
                    let kept: Vec<(u32, &Labels)> = series
                        .iter()
                        .filter(|(id, _)| live.contains(*id))
                        .map(|(id, l)| (*id, l))
                        .collect();
                    if !kept.is_empty() {
                        payload.clear();
                        payload.push(RECORD_SERIES);
                        encode_series(&kept, &mut payload);
                        push_frame(&mut out, &payload);
                    }
                }
                Record::Samples(samples) => {
                    let kept: Vec<(u32, Sample)> = samples
                        .into_iter()
                        .filter(|(id, s)| s.t >= min_t && live.contains(*id))
                        .collect();
                    if !kept.is_empty() {
                        payload.clear();
                        payload.push(RECORD_SAMPLES);
                        encode_samples(&kept, &mut payload);
                        push_frame(&mut out, &payload);
                    }
                }
                Record::Histograms(samples) => {
                    let kept: Vec<(u32, &crate::HistogramSample)> = samples
                        .iter()
                        .filter(|(id, s)| s.t >= min_t && live.contains(*id))
                        .map(|(id, s)| (*id, s))
                        .collect();
                    if !kept.is_empty() {
                        payload.clear();
                        payload.push(RECORD_HISTOGRAMS);
                        encode_histograms(&kept, &mut payload);
                        push_frame(&mut out, &payload);
                    }
                }
                Record::Exemplars(exemplars) => {
                    let kept: Vec<(u32, &crate::Exemplar)> = exemplars
                        .iter()
                        .filter(|(id, e)| e.t >= min_t && live.contains(*id))
                        .map(|(id, e)| (*id, e))
                        .collect();
                    if !kept.is_empty() {
                        payload.clear();
                        payload.push(RECORD_EXEMPLARS);
                        encode_exemplars(&kept, &mut payload);
                        push_frame(&mut out, &payload);
                    }
                }
            }
        }
    }
    let final_path = checkpoint_path(dir, upto);
    let tmp = dir.join(format!("checkpoint.{upto:08}.tmp"));
    {
        let mut f = File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        f.write_all(&out)
            .and_then(|_| f.sync_all())
            .map_err(|e| StorageError::io(&tmp, e))?;
    }
    fs::rename(&tmp, &final_path).map_err(|e| StorageError::io(&final_path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))?;
    for path in inputs {
        if path != final_path {
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        }
    }
    Ok(out.len() as u64)
}

fn checkpoint_path(dir: &Path, upto: u32) -> PathBuf {
    dir.join(format!("checkpoint.{upto:08}"))
}

/// The numbers of the complete checkpoints in `dir`, ascending.
pub(crate) fn checkpoints(dir: &Path) -> Result<Vec<u32>, StorageError> {
    let mut out: Vec<u32> = fs::read_dir(dir)
        .map_err(|e| StorageError::io(dir, e))?
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|s| s.strip_prefix("checkpoint."))
                .and_then(|s| s.parse::<u32>().ok())
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// The highest complete checkpoint. Leftover temporary files and superseded checkpoints (a
/// crash may leave either) are removed.
fn latest_checkpoint(dir: &Path) -> Result<Option<u32>, StorageError> {
    for entry in fs::read_dir(dir)
        .map_err(|e| StorageError::io(dir, e))?
        .flatten()
    {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("checkpoint.") && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    let all = checkpoints(dir)?;
    let latest = all.last().copied();
    for &n in all.iter().filter(|&&n| Some(n) < latest) {
        let _ = fs::remove_file(checkpoint_path(dir, n));
    }
    Ok(latest)
}

fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08}"))
}

fn list_segments(dir: &Path) -> Result<Vec<u32>, StorageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn create_segment(dir: &Path, n: u32) -> Result<File, StorageError> {
    let path = segment_path(dir, n);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))?;
    // Make the new directory entry durable too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))?;
    Ok(file)
}

fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes frames until the first bad one; returns the length of the good prefix.
fn decode_segment(data: &[u8]) -> (usize, Vec<Record>) {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Some(header) = data.get(pos..pos + FRAME_HEADER) else {
            break;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD_BYTES {
            break;
        }
        let Some(payload) = data.get(pos + FRAME_HEADER..pos + FRAME_HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        match decode_record(payload) {
            Some(r) => records.push(r),
            None => break,
        }
        pos += FRAME_HEADER + len;
    }
    (pos, records)
}

fn decode_record(payload: &[u8]) -> Option<Record> {
    let (&kind, mut rest) = payload.split_first()?;
    match kind {
        RECORD_SERIES => {
            let n = read_uvarint(&mut rest)?;
            let mut series = Vec::with_capacity(n.min(1 << 16) as usize);
            for _ in 0..n {
                let id = u32::try_from(read_uvarint(&mut rest)?).ok()?;
                let n_labels = read_uvarint(&mut rest)?;
                let mut labels = Vec::with_capacity(n_labels.min(256) as usize);
                for _ in 0..n_labels {
                    let name = read_str(&mut rest)?;
                    let value = read_str(&mut rest)?;
                    labels.push(Label { name, value });
                }
                series.push((
                    id,
                    Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value))),
                ));
            }
            Some(Record::Series(series))
        }
        RECORD_SAMPLES => {
            let n = read_uvarint(&mut rest)?;
            let base_t = read_varint(&mut rest)?;
            let mut samples = Vec::with_capacity(n.min(1 << 20) as usize);
            for _ in 0..n {
                let id = u32::try_from(read_uvarint(&mut rest)?).ok()?;
                let t = base_t.checked_add(read_varint(&mut rest)?)?;
                let (v, tail) = rest.split_first_chunk::<8>()?;
                rest = tail;
                samples.push((
                    id,
                    Sample {
                        t,
                        v: f64::from_le_bytes(*v),
                    },
                ));
            }
            Some(Record::Samples(samples))
        }
        RECORD_HISTOGRAMS => decode_histograms(rest).map(Record::Histograms),
        RECORD_EXEMPLARS => decode_exemplars(rest).map(Record::Exemplars),
        _ => None,
    }
}

fn encode_series(series: &[(u32, &Labels)], out: &mut Vec<u8>) {
    write_uvarint(out, series.len() as u64);
    for (id, labels) in series {
        write_uvarint(out, u64::from(*id));
        encode_label_pairs(labels, out);
    }
}

/// uvarint label count, then per label uvarint name length, name, uvarint value length, value.
fn encode_label_pairs(labels: &Labels, out: &mut Vec<u8>) {
    write_uvarint(out, labels.len() as u64);
    for l in labels.iter() {
        write_uvarint(out, l.name.len() as u64);
        out.extend_from_slice(l.name.as_bytes());
        write_uvarint(out, l.value.len() as u64);
        out.extend_from_slice(l.value.as_bytes());
    }
}

fn encode_samples(samples: &[(u32, Sample)], out: &mut Vec<u8>) {
    write_uvarint(out, samples.len() as u64);
    let base_t = samples.first().map_or(0, |(_, s)| s.t);
    write_varint(out, base_t);
    for (id, s) in samples {
        write_uvarint(out, u64::from(*id));
        write_varint(out, s.t.wrapping_sub(base_t));
        out.extend_from_slice(&s.v.to_le_bytes());
    }
}

fn read_str(buf: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(read_uvarint(buf)?).ok()?;
    let bytes = buf.get(..len)?;
    *buf = buf.get(len..)?;
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(dir: &Path) -> (Vec<Record>, ReplayStats) {
        let mut out = Vec::new();
        let (_, stats) = Wal::open(dir, FsyncPolicy::Never, |r| out.push(r)).unwrap();
        (out, stats)
    }

    #[test]
    fn records_roundtrip_and_torn_tail_is_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        {
            let (mut wal, _) = Wal::open(&dir, FsyncPolicy::Always, |_| {}).unwrap();
            wal.log(&[(7, &labels)], &[(7, Sample { t: 1000, v: 1.5 })])
                .unwrap();
            wal.log(
                &[],
                &[(
                    7,
                    Sample {
                        t: 2000,
                        v: f64::from_bits(crate::STALE_NAN_BITS),
                    },
                )],
            )
            .unwrap();
        }
        // Tear the last frame in half.
        let seg = segment_path(&dir, 0);
        let len = fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 5).unwrap();

        let (records, stats) = replay(&dir);
        assert_eq!(
            records,
            vec![
                Record::Series(vec![(7, labels.clone())]),
                Record::Samples(vec![(7, Sample { t: 1000, v: 1.5 })]),
            ]
        );
        assert!(stats.truncated_bytes > 0);
        // The truncation is persistent and a second replay sees the same records.
        let (again, stats2) = replay(&dir);
        assert_eq!(again.len(), 2);
        assert_eq!(stats2.truncated_bytes, 0);
    }

    #[test]
    fn checkpoint_keeps_live_series_and_recent_samples() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        let upto;
        {
            let (mut wal, _) = Wal::open(&dir, FsyncPolicy::Never, |_| {}).unwrap();
            wal.log(
                &[(0, &a), (1, &b)],
                &[(0, Sample { t: 10, v: 1.0 }), (1, Sample { t: 10, v: 2.0 })],
            )
            .unwrap();
            wal.log(&[], &[(0, Sample { t: 20, v: 3.0 })]).unwrap();
            upto = wal.current_segment();
            wal.rotate().unwrap();
            wal.log(&[], &[(0, Sample { t: 30, v: 4.0 })]).unwrap();
            let mut live = roaring::RoaringBitmap::new();
            live.insert(0);
            write_checkpoint(&dir, upto, &live, 15).unwrap();
        }
        assert!(!segment_path(&dir, upto).exists());
        let (records, _) = replay(&dir);
        assert_eq!(
            records,
            vec![
                Record::Series(vec![(0, a)]),
                Record::Samples(vec![(0, Sample { t: 20, v: 3.0 })]),
                Record::Samples(vec![(0, Sample { t: 30, v: 4.0 })]),
            ]
        );
    }

    #[test]
    fn histogram_records_roundtrip_through_segments_and_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let a = Labels::from_pairs([("__name__", "h")]);
        let h = |t: i64, sum: f64| crate::HistogramSample {
            t,
            h: crate::FloatHistogram {
                count: 2.0,
                sum,
                positive_spans: vec![crate::Span {
                    offset: 1,
                    length: 1,
                }],
                positive_buckets: vec![2.0],
                ..Default::default()
            },
        };
        {
            let (mut wal, _) = Wal::open(&dir, FsyncPolicy::Never, |_| {}).unwrap();
            wal.log_histograms(&[(0, &a)], &[(0, h(10, 1.5)), (0, h(20, f64::NAN))])
                .unwrap();
            let upto = wal.current_segment();
            wal.rotate().unwrap();
            wal.log_histograms(&[], &[(0, h(30, 3.0))]).unwrap();
            let mut live = roaring::RoaringBitmap::new();
            live.insert(0);
            write_checkpoint(&dir, upto, &live, 15).unwrap();
            wal.log_histograms(&[], &[(0, h(40, 4.0))]).unwrap();
        }
        // Tear the last record.
        let seg = segment_path(&dir, 1);
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (records, stats) = replay(&dir);
        assert!(stats.truncated_bytes > 0);
        let mut got = Vec::new();
        for r in records {
            match r {
                Record::Series(s) => assert_eq!(s, vec![(0, a.clone())]),
                Record::Histograms(hs) => got.extend(hs),
                Record::Samples(_) | Record::Exemplars(_) => {
                    panic!("only histograms were logged")
                }
            }
        }
        let ts: Vec<(u32, i64, u64)> = got
            .iter()
            .map(|(id, s)| (*id, s.t, s.h.sum.to_bits()))
            .collect();
        assert_eq!(
            ts,
            vec![(0, 20, f64::NAN.to_bits()), (0, 30, 3.0f64.to_bits())]
        );
    }

    #[test]
    fn exemplar_records_roundtrip_and_checkpoint_keeps_live_recent_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        let ex = |t: i64, v: f64| crate::Exemplar {
            labels: Labels::from_pairs([("span_id", "00f067aa0ba902b7"), ("trace_id", "é")]),
            value: v,
            t,
        };
        {
            let (mut wal, _) = Wal::open(&dir, FsyncPolicy::Never, |_| {}).unwrap();
            wal.log_exemplars(
                &[(0, &a), (1, &b)],
                &[(0, ex(10, 1.0)), (1, ex(10, 2.0)), (0, ex(20, f64::NAN))],
            )
            .unwrap();
            let upto = wal.current_segment();
            wal.rotate().unwrap();
            wal.log_exemplars(&[], &[(0, ex(30, -0.0))]).unwrap();
            let mut live = roaring::RoaringBitmap::new();
            live.insert(0);
            write_checkpoint(&dir, upto, &live, 15).unwrap();
        }
        let (records, _) = replay(&dir);
        let mut got = Vec::new();
        for r in records {
            match r {
                Record::Series(s) => assert_eq!(s, vec![(0, a.clone())]),
                Record::Exemplars(list) => got.extend(list),
                other => panic!("unexpected record {other:?}"),
            }
        }
        let summary: Vec<(u32, i64, u64)> = got
            .iter()
            .map(|(id, e)| (*id, e.t, e.value.to_bits()))
            .collect();
        assert_eq!(
            summary,
            vec![(0, 20, f64::NAN.to_bits()), (0, 30, (-0.0f64).to_bits())]
        );
        assert_eq!(got[0].1.labels, ex(0, 0.0).labels);
    }

    #[test]
    fn flipped_byte_stops_replay_at_that_frame() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        {
            let (mut wal, _) = Wal::open(&dir, FsyncPolicy::Never, |_| {}).unwrap();
            for i in 0..10 {
                wal.log(&[], &[(1, Sample { t: i, v: i as f64 })]).unwrap();
            }
        }
        let seg = segment_path(&dir, 0);
        let mut data = fs::read(&seg).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0x40;
        fs::write(&seg, &data).unwrap();
        let (records, stats) = replay(&dir);
        assert!(records.len() < 10 && !records.is_empty());
        assert!(stats.truncated_bytes > 0);
    }
}
