//! Byte encodings shared by the log WAL and log segments: strings, label sets, entries, and the
//! columnar block payload (before zstd). Decoders return `None` on malformed input.

use crate::logs::LogEntry;
use crate::varint::{read_uvarint, read_varint, write_uvarint, write_varint};
use crate::{Label, Labels};

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    write_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn get_bytes<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::try_from(read_uvarint(buf)?).ok()?;
    if n > buf.len() {
        return None;
    }
    let (s, rest) = buf.split_at(n);
    *buf = rest;
    Some(s)
}

pub(crate) fn get_str(buf: &mut &[u8]) -> Option<String> {
    std::str::from_utf8(get_bytes(buf)?).ok().map(str::to_owned)
}

pub(crate) fn get_len(buf: &mut &[u8], max: usize) -> Option<usize> {
    let n = usize::try_from(read_uvarint(buf)?).ok()?;
    (n <= max).then_some(n)
}

pub(crate) fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    write_uvarint(out, labels.len() as u64);
    for l in labels.iter() {
        put_str(out, &l.name);
        put_str(out, &l.value);
    }
}

pub(crate) fn get_labels(buf: &mut &[u8]) -> Option<Labels> {
    let n = get_len(buf, buf.len())?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let name = get_str(buf)?;
        let value = get_str(buf)?;
        v.push(Label::new(name, value));
    }
    Some(Labels::from_sorted(v))
}

/// One entry, row-wise (WAL records).
pub(crate) fn put_entry(out: &mut Vec<u8>, e: &LogEntry) {
    write_varint(out, e.ts_ns);
    put_str(out, &e.line);
    write_uvarint(out, e.metadata.len() as u64);
    for (k, v) in &e.metadata {
        put_str(out, k);
        put_str(out, v);
    }
}

pub(crate) fn get_entry(buf: &mut &[u8]) -> Option<LogEntry> {
    let ts_ns = read_varint(buf)?;
    let line = get_str(buf)?;
    let n = get_len(buf, buf.len())?;
    let mut metadata = Vec::with_capacity(n);
    for _ in 0..n {
        metadata.push((get_str(buf)?, get_str(buf)?));
    }
    Some(LogEntry {
        ts_ns,
        line,
        metadata,
    })
}

/// A block payload: count, first timestamp then deltas (entries are time-sorted), stream
/// indexes, line lengths, metadata pair counts and pairs, then all lines back to back.
/// Grouping like with like is what lets zstd do well.
pub(crate) fn encode_block(entries: &[(u32, &LogEntry)], out: &mut Vec<u8>) {
    write_uvarint(out, entries.len() as u64);
    let mut prev = 0i64;
    for (i, (_, e)) in entries.iter().enumerate() {
        if i == 0 {
            write_varint(out, e.ts_ns);
        } else {
            write_uvarint(out, e.ts_ns.wrapping_sub(prev) as u64);
        }
        prev = e.ts_ns;
    }
    for (s, _) in entries {
        write_uvarint(out, u64::from(*s));
    }
    for (_, e) in entries {
        write_uvarint(out, e.line.len() as u64);
    }
    for (_, e) in entries {
        write_uvarint(out, e.metadata.len() as u64);
    }
    for (_, e) in entries {
        for (k, v) in &e.metadata {
            put_str(out, k);
            put_str(out, v);
        }
    }
    for (_, e) in entries {
        out.extend_from_slice(e.line.as_bytes());
    }
}

/// Decodes the entries for which `keep(stream, ts, line)` holds (others are never allocated),
/// and returns them with the block's entry count. A line for which `may(start, len)` is false
/// (its byte range in `buf`) is skipped before any other check, UTF-8 included.
pub(crate) fn decode_block_where(
    mut buf: &[u8],
    mut may: impl FnMut(usize, usize) -> bool,
    mut keep: impl FnMut(u32, i64, &str) -> bool,
) -> Option<(Vec<(u32, LogEntry)>, usize)> {
    let total = buf.len();
    let b = &mut buf;
    let n = get_len(b, b.len())?;
    let mut ts = Vec::with_capacity(n);
    let mut prev = 0i64;
    for i in 0..n {
        let t = if i == 0 {
            read_varint(b)?
        } else {
            prev.wrapping_add(read_uvarint(b)? as i64)
        };
        ts.push(t);
        prev = t;
    }
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(u32::try_from(read_uvarint(b)?).ok()?);
    }
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        lens.push(get_len(b, b.len())?);
    }
    let mut meta_counts = Vec::with_capacity(n);
    for _ in 0..n {
        meta_counts.push(get_len(b, b.len())?);
    }
    let mut metas = Vec::with_capacity(n);
    for &m in &meta_counts {
        let mut pairs = Vec::with_capacity(m);
        for _ in 0..m {
            pairs.push((get_bytes(b)?, get_bytes(b)?));
        }
        metas.push(pairs);
    }
    let mut out = Vec::new();
    for (((t, len), pairs), stream) in ts.into_iter().zip(lens).zip(metas).zip(streams) {
        if len > b.len() {
            return None;
        }
        let at = total - b.len();
        let (line, rest) = b.split_at(len);
        *b = rest;
        if !may(at, len) {
            continue;
        }
        let line = std::str::from_utf8(line).ok()?;
        if !keep(stream, t, line) {
            continue;
        }
        let mut metadata = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            metadata.push((
                std::str::from_utf8(k).ok()?.to_owned(),
                std::str::from_utf8(v).ok()?.to_owned(),
            ));
        }
        out.push((
            stream,
            LogEntry {
                ts_ns: t,
                line: line.to_owned(),
                metadata,
            },
        ));
    }
    b.is_empty().then_some((out, n))
}
