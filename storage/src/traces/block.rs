//! Columnar trace blocks (`blocks/<20-digit seq>.trb`): writer, reader, filter push-down.
//!
//! A block holds whole traces sorted by trace id, cut into row groups of about
//! `row_group_spans` spans. Inside a row group each column is one zstd frame, so a read
//! decompresses only the columns it needs; spans of a trace are sorted by start. Resources and
//! scopes live once in the block's index and spans refer to a (resource, scope) pair by number.
//! The sorted trace-id table is stored raw at the end of the file and binary-searched straight
//! from the memory map. Each row group also has a directory column (per trace, its byte
//! segment in every variable-width column, so reads decode only wanted traces) and a search
//! index column (trace lists per status, kind, name, pair, duration bucket and low-cardinality
//! attribute value; see [`super::index`]). See `storage/FORMAT.md` ("Traces") for the layout.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codec::{
    self, get_bytes, get_count, get_fixed, get_i, get_str, get_u, get_u32, get_u8,
    get_value_tagged, kind_status_byte, put_bytes, put_str, split_kind_status, FastMap, FastSet,
    TAG_STR,
};
use super::encoder::RawSpan;
use super::index::{Bits, IndexBuilder, Malformed, SearchIndex};
use super::store::{add_value, BlockSink, TraceStoreOptions};
use super::{
    AttrScope, AttrValue, FilterOp, FilterValue, Resource, Scope, Span, SpanField, SpanFilter,
    SpanKind, SpanView, StatusCode, TraceId, TraceSearch,
};
use crate::mmap::MappedFile;
use crate::varint::{write_uvarint, write_varint};
use crate::StorageError;

/// A trace's spans with their resource and scope (one block's or head's share of a trace).
pub(crate) type Part = Vec<(Arc<Resource>, Arc<Scope>, Span)>;

const MAGIC: &[u8; 8] = b"SXTRBLK2";
const END_MAGIC: &[u8; 8] = b"SXTREND1";
const FOOTER: usize = 5 * 8 + 2 * 4 + 8;

const C_TRACES: usize = 0;
const C_SPAN_ID: usize = 1;
const C_PARENT: usize = 2;
const C_EXT_PARENT: usize = 3;
const C_START: usize = 4;
const C_DUR: usize = 5;
const C_NAME: usize = 6;
const C_KIND_STATUS: usize = 7;
const C_PAIR: usize = 8;
const C_STATUS_MSG: usize = 9;
const C_TRACE_STATE: usize = 10;
const C_MISC: usize = 11;
const C_ATTR_KEYS: usize = 12;
const C_EVENTS_LINKS: usize = 13;
/// Per trace, the byte length of its segment in each of [`DIR_COLS`] and each key's value
/// column: lets a read decode only the traces it wants.
const C_DIR: usize = 14;
/// Per row group search index (see [`SearchIndex`]).
const C_SEARCH: usize = 15;
/// Fixed columns; the attribute value column of key code `k` is column `N_FIXED + k`.
const N_FIXED: usize = 16;
/// Variable-width columns the directory covers (for dictionary columns: the code stream).
const DIR_COLS: [usize; 11] = [
    C_PARENT,
    C_EXT_PARENT,
    C_START,
    C_DUR,
    C_NAME,
    C_PAIR,
    C_STATUS_MSG,
    C_TRACE_STATE,
    C_MISC,
    C_ATTR_KEYS,
    C_EVENTS_LINKS,
];
/// Block format version (kept in the index; blocks of other versions are not readable).
const FORMAT_VERSION: u64 = 2;

#[derive(Clone, Copy, Debug)]
struct ColMeta {
    len: u32,
    raw: u32,
    crc: u32,
}

#[derive(Clone, Debug)]
struct RgMeta {
    first_trace: u32,
    traces: u32,
    spans: u32,
    min_start: u64,
    max_end: u64,
    kinds: u8,
    statuses: u8,
    min_dur: u64,
    max_dur: u64,
    /// Sorted indices into the block's (resource, scope) pairs used by the row group.
    pairs: Vec<u32>,
    offset: u64,
    cols: Vec<ColMeta>,
    /// Attribute keys of the row group's spans; a key's code is its position.
    keys: Vec<String>,
}

/// A string dictionary column: `uvarint n`, `n × str`, then the per-row codes. Strings are
/// kept as bytes (they come from span bodies whose strings were checked when encoded).
#[derive(Default)]
struct Dict {
    map: FastMap<Box<[u8]>, u32>,
    list: Vec<Box<[u8]>>,
    codes: Vec<u8>,
}

impl Dict {
    fn code(&mut self, s: &[u8]) -> u32 {
        if let Some(&c) = self.map.get(s) {
            return c;
        }
        let c = self.list.len() as u32;
        self.map.insert(s.into(), c);
        self.list.push(s.into());
        c
    }

    /// Appends `s`'s code to the column and returns it.
    fn push(&mut self, s: &[u8]) -> u32 {
        let c = self.code(s);
        write_uvarint(&mut self.codes, u64::from(c));
        c
    }

    fn into_column(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.codes.len() + self.list.iter().map(|s| s.len() + 2).sum::<usize>() + 5,
        );
        write_uvarint(&mut out, self.list.len() as u64);
        for s in &self.list {
            put_bytes(&mut out, s);
        }
        out.extend_from_slice(&self.codes);
        out
    }
}

/// The strings of a dictionary, unvalidated: UTF-8 is checked when one is used ([`utf8`]).
fn read_dict<'a>(b: &mut &'a [u8]) -> Option<Vec<&'a [u8]>> {
    let n = get_count(b)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get_bytes(b)?);
    }
    Some(out)
}

/// Dictionary entry `code` as an owned string; `None` if absent or not UTF-8.
fn utf8(dict: &[&[u8]], code: usize) -> Option<String> {
    std::str::from_utf8(dict.get(code)?).ok().map(str::to_owned)
}

/// Streams traces (ascending id) into a block file (or an in-memory buffer).
///
/// Spans are written from their encoded bodies ([`RawSpan`]): head traces straight from the
/// head's buffers ([`BlockSink::add_encoded_trace`]), decoded spans after re-encoding them.
/// Each trace goes into the row group being built at once; the row group is compressed and
/// written when it reaches `row_group_spans`.
pub(crate) struct BlockWriter<W: Write> {
    out: W,
    off: u64,
    rg_spans: usize,
    resources: Vec<Arc<Resource>>,
    res_ids: HashMap<Vec<u8>, u32>,
    res_ptr: FastMap<*const Resource, u32>,
    scopes: Vec<Arc<Scope>>,
    scope_ids: HashMap<Vec<u8>, u32>,
    scope_ptr: FastMap<*const Scope, u32>,
    pairs: Vec<(u32, u32)>,
    pair_ids: FastMap<(u32, u32), u32>,
    ids: Vec<TraceId>,
    /// The row group being filled.
    rg: RgBuilder,
    rgs: Vec<RgMeta>,
    min_time: u64,
    max_time: u64,
    spans: u64,
    tmp: Vec<u8>,
    /// Bodies of decoded spans being added (re-encoded for [`RawSpan`]).
    bodies: Vec<u8>,
    /// Span ids of the trace being added (duplicates are dropped, first wins).
    seen: FastSet<[u8; 8]>,
    zstd: zstd::bulk::Compressor<'static>,
}

fn write_err(e: std::io::Error) -> StorageError {
    StorageError::io("<trace block being written>", e)
}

/// The row group a [`BlockWriter`] is filling: its columns grow trace by trace.
struct RgBuilder {
    cols: Vec<Vec<u8>>,
    names: Dict,
    smsgs: Dict,
    tstates: Dict,
    keys: FastMap<Box<[u8]>, u32>,
    key_list: Vec<String>,
    /// By key code: the value dictionary and the value stream.
    key_cols: Vec<(Dict, Vec<u8>)>,
    /// Per trace: span count, earliest start, latest end.
    traces: Vec<(u32, u64, u64)>,
    spans: usize,
    max_end: u64,
    kinds: u8,
    statuses: u8,
    min_dur: u64,
    max_dur: u64,
    pairs: BTreeSet<u32>,
    /// Per trace, its segment length in each directory column (keys first seen later are 0).
    dir: Vec<Vec<u64>>,
    sx: IndexBuilder,
    span_codes: Vec<u32>,
    /// Span id → position in the trace being added (parent references).
    pos: FastMap<[u8; 8], usize>,
}

impl Default for RgBuilder {
    fn default() -> RgBuilder {
        RgBuilder {
            cols: vec![Vec::new(); N_FIXED],
            names: Dict::default(),
            smsgs: Dict::default(),
            tstates: Dict::default(),
            keys: FastMap::default(),
            key_list: Vec::new(),
            key_cols: Vec::new(),
            traces: Vec::new(),
            spans: 0,
            max_end: 0,
            kinds: 0,
            statuses: 0,
            min_dur: u64::MAX,
            max_dur: 0,
            pairs: BTreeSet::new(),
            dir: Vec::new(),
            sx: IndexBuilder::default(),
            span_codes: Vec::new(),
            pos: FastMap::default(),
        }
    }
}

impl RgBuilder {
    /// Current length of each directory column's stream.
    fn seg_lens(&self) -> Vec<u64> {
        let mut v: Vec<u64> = DIR_COLS
            .iter()
            .map(|&c| match c {
                C_NAME => self.names.codes.len(),
                C_STATUS_MSG => self.smsgs.codes.len(),
                C_TRACE_STATE => self.tstates.codes.len(),
                c => self.cols[c].len(),
            } as u64)
            .collect();
        v.extend(self.key_cols.iter().map(|k| k.1.len() as u64));
        v
    }

    /// Appends one trace (spans sorted by start, each with its pair number) to the columns.
    fn add_trace(&mut self, spans: &[(u32, RawSpan<'_>)]) {
        let t = self.traces.len() as u32;
        let tmin = spans.iter().map(|s| s.1.start_unix_nano).min().unwrap_or(0);
        let tmax = spans
            .iter()
            .map(|s| s.1.end_unix_nano)
            .max()
            .unwrap_or(tmin);
        self.traces.push((spans.len() as u32, tmin, tmax));
        self.spans += spans.len();
        let before = self.seg_lens();
        self.pos.clear();
        for (i, s) in spans.iter().enumerate() {
            self.pos.insert(s.1.span_id, i);
        }
        let cols = &mut self.cols;
        for (pair, s) in spans {
            cols[C_SPAN_ID].extend_from_slice(&s.span_id);
            match s.parent_span_id {
                None => cols[C_PARENT].push(0),
                Some(p) => match self.pos.get(&p) {
                    Some(&k) => write_uvarint(&mut cols[C_PARENT], k as u64 + 2),
                    None => {
                        cols[C_PARENT].push(1);
                        cols[C_EXT_PARENT].extend_from_slice(&p);
                    }
                },
            }
            write_uvarint(&mut cols[C_START], s.start_unix_nano - tmin);
            write_varint(
                &mut cols[C_DUR],
                s.end_unix_nano.wrapping_sub(s.start_unix_nano) as i64,
            );
            let name_code = self.names.push(s.name);
            cols[C_KIND_STATUS].push(kind_status_byte(s.kind, s.status_code));
            write_uvarint(&mut cols[C_PAIR], u64::from(*pair));
            let d = s.end_unix_nano.saturating_sub(s.start_unix_nano);
            self.sx
                .span(t, (s.kind, s.status_code, d), name_code, *pair);
            self.smsgs.push(s.status_message);
            self.tstates.push(s.trace_state);
            for v in [
                s.flags,
                s.dropped_attributes_count,
                s.dropped_events_count,
                s.dropped_links_count,
            ] {
                write_uvarint(&mut cols[C_MISC], u64::from(v));
            }
            write_uvarint(&mut cols[C_ATTR_KEYS], s.attr_count() as u64);
            self.span_codes.clear();
            for (key, value) in s.attrs() {
                let code = match self.keys.get(key) {
                    Some(&c) => c,
                    None => {
                        let c = self.key_list.len() as u32;
                        self.keys.insert(key.into(), c);
                        self.key_list
                            .push(String::from_utf8_lossy(key).into_owned());
                        self.key_cols.push((Dict::default(), Vec::new()));
                        c
                    }
                };
                write_uvarint(&mut cols[C_ATTR_KEYS], u64::from(code));
                let (dict, vals) = &mut self.key_cols[code as usize];
                let mut rest = value;
                let str_code = match get_u8(&mut rest) {
                    Some(TAG_STR) => {
                        // A string body was checked by `RawSpan::parse`; a malformed one
                        // cannot get here, and would be stored as an empty string.
                        let text = get_bytes(&mut rest).unwrap_or_default();
                        let c = dict.code(text);
                        vals.push(TAG_STR);
                        write_uvarint(vals, u64::from(c));
                        Some(c)
                    }
                    _ => {
                        vals.extend_from_slice(value);
                        None
                    }
                };
                if !self.span_codes.contains(&code) {
                    // Only a span's first attribute with a key counts (as in filters).
                    self.span_codes.push(code);
                    self.sx.attr(t, code, *pair, value, str_code);
                }
            }
            cols[C_EVENTS_LINKS].extend_from_slice(s.events);
            cols[C_EVENTS_LINKS].extend_from_slice(s.links);
            self.max_end = self.max_end.max(s.end_unix_nano);
            self.kinds |= 1 << (s.kind as u8);
            self.statuses |= 1 << (s.status_code as u8);
            self.min_dur = self.min_dur.min(d);
            self.max_dur = self.max_dur.max(d);
            self.pairs.insert(*pair);
        }
        let after = self.seg_lens();
        self.dir.push(
            after
                .iter()
                .enumerate()
                .map(|(i, a)| a - before.get(i).copied().unwrap_or(0))
                .collect(),
        );
    }
}

impl<W: Write> BlockWriter<W> {
    pub(crate) fn new(
        mut out: W,
        opts: &TraceStoreOptions,
    ) -> Result<BlockWriter<W>, StorageError> {
        out.write_all(MAGIC).map_err(write_err)?;
        Ok(BlockWriter {
            zstd: zstd::bulk::Compressor::new(opts.zstd_level).map_err(write_err)?,
            out,
            off: MAGIC.len() as u64,
            rg_spans: opts.row_group_spans.max(1),
            resources: Vec::new(),
            res_ids: HashMap::new(),
            res_ptr: FastMap::default(),
            scopes: Vec::new(),
            scope_ids: HashMap::new(),
            scope_ptr: FastMap::default(),
            pairs: Vec::new(),
            pair_ids: FastMap::default(),
            ids: Vec::new(),
            rg: RgBuilder::default(),
            rgs: Vec::new(),
            min_time: u64::MAX,
            max_time: 0,
            spans: 0,
            tmp: Vec::new(),
            bodies: Vec::new(),
            seen: FastSet::default(),
        })
    }

    fn pair(&mut self, r: &Arc<Resource>, s: &Arc<Scope>) -> u32 {
        let ri = match self.res_ptr.get(&Arc::as_ptr(r)) {
            Some(&i) => i,
            None => {
                self.tmp.clear();
                codec::put_resource(&mut self.tmp, r);
                let i = match self.res_ids.get(&self.tmp) {
                    Some(&i) => i,
                    None => {
                        let i = self.resources.len() as u32;
                        self.res_ids.insert(self.tmp.clone(), i);
                        self.resources.push(r.clone());
                        i
                    }
                };
                // Keeping `r` alive (in `resources` or via the caller's part for this trace)
                // is not guaranteed, so only cache pointers of Arcs we hold.
                if Arc::ptr_eq(&self.resources[i as usize], r) {
                    self.res_ptr.insert(Arc::as_ptr(r), i);
                }
                i
            }
        };
        let si = match self.scope_ptr.get(&Arc::as_ptr(s)) {
            Some(&i) => i,
            None => {
                self.tmp.clear();
                codec::put_scope(&mut self.tmp, s);
                let i = match self.scope_ids.get(&self.tmp) {
                    Some(&i) => i,
                    None => {
                        let i = self.scopes.len() as u32;
                        self.scope_ids.insert(self.tmp.clone(), i);
                        self.scopes.push(s.clone());
                        i
                    }
                };
                if Arc::ptr_eq(&self.scopes[i as usize], s) {
                    self.scope_ptr.insert(Arc::as_ptr(s), i);
                }
                i
            }
        };
        let next = self.pairs.len() as u32;
        let p = *self.pair_ids.entry((ri, si)).or_insert(next);
        if p == next {
            self.pairs.push((ri, si));
        }
        p
    }

    /// Checks that `id` comes after the previous trace.
    fn check_order(&self, id: TraceId) -> Result<(), StorageError> {
        if self.ids.last().is_some_and(|last| *last >= id) {
            return Err(StorageError::Unsupported(format!(
                "trace block writer got trace {id} out of order"
            )));
        }
        Ok(())
    }

    /// Adds one trace's spans (not empty, no duplicate span ids) to the row group.
    fn add_raw(
        &mut self,
        id: TraceId,
        mut spans: Vec<(u32, RawSpan<'_>)>,
    ) -> Result<(), StorageError> {
        spans.sort_by(|a, b| {
            (a.1.start_unix_nano, a.1.span_id).cmp(&(b.1.start_unix_nano, b.1.span_id))
        });
        for (_, s) in &spans {
            self.min_time = self.min_time.min(s.start_unix_nano);
            self.max_time = self.max_time.max(s.end_unix_nano);
        }
        self.ids.push(id);
        self.rg.add_trace(&spans);
        if self.rg.spans >= self.rg_spans {
            self.write_rg()?;
        }
        Ok(())
    }

    /// Compresses and writes the row group being built.
    fn write_rg(&mut self) -> Result<(), StorageError> {
        if self.rg.traces.is_empty() {
            return Ok(());
        }
        let rg = std::mem::take(&mut self.rg);
        let RgBuilder {
            mut cols,
            names,
            smsgs,
            tstates,
            key_list,
            key_cols,
            traces,
            spans: n_spans,
            max_end,
            kinds,
            statuses,
            min_dur,
            max_dur,
            pairs,
            dir,
            mut sx,
            ..
        } = rg;
        let first_trace = (self.ids.len() - traces.len()) as u32;
        let rg_min = traces.iter().map(|t| t.1).min().unwrap_or(0);
        for &(cnt, tmin, tmax) in &traces {
            write_uvarint(&mut cols[C_TRACES], u64::from(cnt));
            write_uvarint(&mut cols[C_TRACES], tmin - rg_min);
            write_uvarint(&mut sx.times, tmin - rg_min);
            write_uvarint(&mut sx.times, tmax.saturating_sub(tmin));
        }
        let mut meta = RgMeta {
            first_trace,
            traces: traces.len() as u32,
            spans: n_spans as u32,
            min_start: rg_min,
            max_end,
            kinds,
            statuses,
            min_dur,
            max_dur,
            pairs: pairs.into_iter().collect(),
            offset: self.off,
            cols: Vec::new(),
            keys: key_list,
        };
        let n_keys = key_cols.len();
        for seg in &dir {
            for i in 0..DIR_COLS.len() + n_keys {
                write_uvarint(&mut cols[C_DIR], seg.get(i).copied().unwrap_or(0));
            }
        }
        let key_strs: Vec<&[Box<[u8]>]> = key_cols.iter().map(|(d, _)| &d.list[..]).collect();
        cols[C_SEARCH] = sx.finish(traces.len(), &names.list, &key_strs);
        cols[C_NAME] = names.into_column();
        cols[C_STATUS_MSG] = smsgs.into_column();
        cols[C_TRACE_STATE] = tstates.into_column();
        for (dict, vals) in key_cols {
            let mut c = dict.into_column();
            c.extend_from_slice(&vals);
            cols.push(c);
        }
        for col in &cols {
            let z = self.zstd.compress(col).map_err(write_err)?;
            self.out.write_all(&z).map_err(write_err)?;
            self.off += z.len() as u64;
            meta.cols.push(ColMeta {
                len: z.len() as u32,
                raw: col.len() as u32,
                crc: crc32fast::hash(&z),
            });
        }
        self.spans += n_spans as u64;
        self.rgs.push(meta);
        Ok(())
    }

    /// Writes the remaining row group, the index, the trace-id table and the footer.
    pub(crate) fn finish(mut self, seq: u64, covers: &[u64]) -> Result<W, StorageError> {
        self.write_rg()?;
        let mut idx = Vec::new();
        write_uvarint(&mut idx, FORMAT_VERSION);
        write_uvarint(&mut idx, seq);
        write_uvarint(&mut idx, covers.len() as u64);
        for c in covers {
            write_uvarint(&mut idx, *c);
        }
        let (min_time, max_time) = if self.spans == 0 {
            (0, 0)
        } else {
            (self.min_time, self.max_time)
        };
        write_uvarint(&mut idx, min_time);
        write_uvarint(&mut idx, max_time);
        write_uvarint(&mut idx, self.spans);
        let mut tmp = Vec::new();
        write_uvarint(&mut idx, self.resources.len() as u64);
        for r in &self.resources {
            tmp.clear();
            codec::put_resource(&mut tmp, r);
            put_bytes(&mut idx, &tmp);
        }
        write_uvarint(&mut idx, self.scopes.len() as u64);
        for s in &self.scopes {
            tmp.clear();
            codec::put_scope(&mut tmp, s);
            put_bytes(&mut idx, &tmp);
        }
        write_uvarint(&mut idx, self.pairs.len() as u64);
        for (r, s) in &self.pairs {
            write_uvarint(&mut idx, u64::from(*r));
            write_uvarint(&mut idx, u64::from(*s));
        }
        write_uvarint(&mut idx, self.rgs.len() as u64);
        for rg in &self.rgs {
            for v in [
                u64::from(rg.first_trace),
                u64::from(rg.traces),
                u64::from(rg.spans),
                rg.min_start,
                rg.max_end.saturating_sub(rg.min_start),
            ] {
                write_uvarint(&mut idx, v);
            }
            idx.push(rg.kinds);
            idx.push(rg.statuses);
            write_uvarint(&mut idx, rg.min_dur);
            write_uvarint(&mut idx, rg.max_dur);
            write_uvarint(&mut idx, rg.pairs.len() as u64);
            for p in &rg.pairs {
                write_uvarint(&mut idx, u64::from(*p));
            }
            write_uvarint(&mut idx, rg.offset);
            write_uvarint(&mut idx, rg.cols.len() as u64);
            for c in &rg.cols {
                write_uvarint(&mut idx, u64::from(c.len));
                write_uvarint(&mut idx, u64::from(c.raw));
                idx.extend_from_slice(&c.crc.to_le_bytes());
            }
            write_uvarint(&mut idx, rg.keys.len() as u64);
            for k in &rg.keys {
                put_str(&mut idx, k);
            }
        }
        let bloom = bloom_build(&self.ids);
        write_uvarint(&mut idx, bloom.len() as u64);
        for w in &bloom {
            idx.extend_from_slice(&w.to_le_bytes());
        }
        let z = self.zstd.compress(&idx).map_err(write_err)?;
        let index_off = self.off;
        self.out.write_all(&z).map_err(write_err)?;
        self.off += z.len() as u64;
        let ids_off = self.off;
        let mut ids = Vec::with_capacity(self.ids.len() * 16);
        for id in &self.ids {
            ids.extend_from_slice(&id.0);
        }
        self.out.write_all(&ids).map_err(write_err)?;
        let mut footer = Vec::with_capacity(FOOTER);
        for v in [
            index_off,
            z.len() as u64,
            idx.len() as u64,
            ids_off,
            self.ids.len() as u64,
        ] {
            footer.extend_from_slice(&v.to_le_bytes());
        }
        footer.extend_from_slice(&crc32fast::hash(&z).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&ids).to_le_bytes());
        footer.extend_from_slice(END_MAGIC);
        self.out.write_all(&footer).map_err(write_err)?;
        self.out.flush().map_err(write_err)?;
        Ok(self.out)
    }
}

impl<W: Write> BlockSink for BlockWriter<W> {
    fn add_trace(&mut self, id: TraceId, part: Part) -> Result<(), StorageError> {
        if part.is_empty() {
            return Ok(());
        }
        self.check_order(id)?;
        let mut bodies = std::mem::take(&mut self.bodies);
        bodies.clear();
        let mut at = Vec::with_capacity(part.len());
        for (r, s, span) in &part {
            let pair = self.pair(r, s);
            let start = bodies.len();
            codec::put_span_body(&mut bodies, span);
            at.push((pair, start..bodies.len()));
        }
        let spans: Option<Vec<(u32, RawSpan<'_>)>> = at
            .into_iter()
            .map(|(pair, r)| Some((pair, RawSpan::parse(bodies.get(r)?)?)))
            .collect();
        let result = match spans {
            Some(spans) => self.add_raw(id, spans),
            None => Err(StorageError::Unsupported(format!(
                "trace {id}: a span does not re-encode"
            ))),
        };
        self.bodies = bodies;
        result
    }

    fn add_encoded_trace(
        &mut self,
        id: TraceId,
        buf: &[u8],
        resources: &[Arc<Resource>],
        scopes: &[Arc<Scope>],
    ) -> Result<bool, StorageError> {
        self.check_order(id)?;
        let mut spans: Vec<(u32, RawSpan<'_>)> = Vec::new();
        let mut ok = true;
        let mut last: Option<((u32, u32), u32)> = None;
        self.seen.clear();
        let walked = super::head::for_each_entry(buf, |r, s, body| {
            if !ok {
                return;
            }
            let Some(span) = RawSpan::parse(body) else {
                ok = false;
                return;
            };
            if !self.seen.insert(span.span_id) {
                return;
            }
            let pair = match last {
                Some((k, p)) if k == (r, s) => p,
                _ => {
                    let (Some(res), Some(scope)) =
                        (resources.get(r as usize), scopes.get(s as usize))
                    else {
                        ok = false;
                        return;
                    };
                    let p = self.pair(res, scope);
                    last = Some(((r, s), p));
                    p
                }
            };
            spans.push((pair, span));
        });
        if walked.is_none() || !ok {
            return Ok(false);
        }
        if !spans.is_empty() {
            self.add_raw(id, spans)?;
        }
        Ok(true)
    }
}

enum Data {
    Mapped(MappedFile),
    Owned(Vec<u8>),
}

/// An open, immutable block.
pub(crate) struct Block {
    pub seq: u64,
    /// Blocks this one replaced (compaction); they are deleted if still present at open.
    pub covers: Vec<u64>,
    /// Earliest span start and latest span end, Unix ns.
    pub min_time: u64,
    pub max_time: u64,
    pub spans: u64,
    pub traces: u64,
    /// File size.
    pub bytes: u64,
    path: PathBuf,
    data: Data,
    pairs: Vec<(Arc<Resource>, Arc<Scope>)>,
    rgs: Vec<RgMeta>,
    ids_off: usize,
    /// See [`bloom_build`]; checked before the binary search of the id table.
    bloom: Vec<u64>,
    /// This block's key in the [`ColumnCache`] (unique per opened block in the process).
    uid: u64,
}

/// Bytes of decompressed columns kept by the process-wide [`ColumnCache`].
const COLUMN_CACHE_BYTES: usize = 256 << 20;

/// (block uid, row group, column); column [`DIR_KEY`] is the row group's [`RgDir`].
type ColKey = (u64, u32, u32);

/// The [`ColKey`] column number under which a row group's [`RgDir`] is cached.
const DIR_KEY: u32 = u32::MAX;

/// A [`ColumnCache`] entry.
#[derive(Clone)]
enum Cached {
    Col(Arc<Vec<u8>>),
    Dir(Arc<RgDir>),
}

impl Cached {
    fn bytes(&self) -> usize {
        match self {
            Cached::Col(c) => c.len(),
            Cached::Dir(d) => d.bytes(),
        }
    }
}

/// A process-wide LRU cache of decompressed, checksum-verified row group columns (and of the
/// row groups' parsed [`RgDir`]s), keyed by (block uid, row group, column). Searches and
/// trace reads of recently read row groups then skip zstd and the directory walk; entries of
/// deleted blocks age out.
struct ColumnCache {
    /// Key → (entry, last use tick).
    map: HashMap<ColKey, (Cached, u64)>,
    /// Use tick → key, oldest first.
    order: BTreeMap<u64, ColKey>,
    bytes: usize,
    tick: u64,
}

static COLUMN_CACHE: std::sync::LazyLock<parking_lot::Mutex<ColumnCache>> =
    std::sync::LazyLock::new(|| {
        parking_lot::Mutex::new(ColumnCache {
            map: HashMap::new(),
            order: BTreeMap::new(),
            bytes: 0,
            tick: 0,
        })
    });

static NEXT_BLOCK_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ColumnCache {
    fn get(&mut self, key: ColKey) -> Option<Cached> {
        self.tick += 1;
        let tick = self.tick;
        let (entry, used) = self.map.get_mut(&key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key);
        Some(entry.clone())
    }

    fn put(&mut self, key: ColKey, entry: Cached) {
        let size = entry.bytes();
        if size > COLUMN_CACHE_BYTES / 8 || self.map.contains_key(&key) {
            return;
        }
        self.tick += 1;
        self.bytes += size;
        self.order.insert(self.tick, key);
        self.map.insert(key, (entry, self.tick));
        while self.bytes > COLUMN_CACHE_BYTES {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((c, _)) = self.map.remove(&old) {
                self.bytes -= c.bytes();
            }
        }
    }
}

/// A row group's directory, parsed: per trace its first span number, its earliest start and
/// where its segment starts in each directory column ([`DIR_COLS`], then the key value
/// columns). Lets a read go straight to one trace instead of walking every earlier one.
/// Built (and checked for consistency) once per row group from `C_TRACES` and `C_DIR`.
struct RgDir {
    /// Directory columns per trace.
    ncols: usize,
    /// `traces + 1` entries: trace `t`'s spans are `first_span[t]..first_span[t + 1]`.
    first_span: Vec<u32>,
    /// Per trace, its earliest span start (Unix ns).
    tmin: Vec<u64>,
    /// `(traces + 1) × ncols`: trace `t`'s segment of column `i` is
    /// `offs[t × ncols + i]..offs[(t + 1) × ncols + i]`; the last row holds each column's
    /// length.
    offs: Vec<u32>,
}

impl RgDir {
    fn bytes(&self) -> usize {
        self.first_span.len() * 4 + self.tmin.len() * 8 + self.offs.len() * 4
    }

    /// Parses the trace list and directory columns of a row group; `None` when they are
    /// malformed or disagree with the row group's span count.
    fn build(meta: &RgMeta, traces: &[u8], dir: &[u8]) -> Option<RgDir> {
        let nt = meta.traces as usize;
        let n = meta.spans as usize;
        let ncols = DIR_COLS.len() + meta.keys.len();
        let mut traces = traces;
        let mut dir = dir;
        let mut first_span = Vec::with_capacity(nt + 1);
        let mut tmin = Vec::with_capacity(nt);
        let mut offs = vec![0u32; (nt + 1) * ncols];
        let mut g = 0usize;
        first_span.push(0);
        for t in 0..nt {
            let cnt = get_u(&mut traces)? as usize;
            tmin.push(meta.min_start.checked_add(get_u(&mut traces)?)?);
            g = g.checked_add(cnt).filter(|&g| g <= n)?;
            first_span.push(g as u32);
            let (row, next) = offs.split_at_mut((t + 1) * ncols);
            let row = &row[t * ncols..];
            for i in 0..ncols {
                let len = u32::try_from(get_u(&mut dir)?).ok()?;
                next[i] = row[i].checked_add(len)?;
            }
        }
        (g == n && traces.is_empty() && dir.is_empty()).then_some(RgDir {
            ncols,
            first_span,
            tmin,
            offs,
        })
    }

    /// Trace `t`'s segment of directory column `i` (as a range of the column's stream).
    fn seg(&self, t: usize, i: usize) -> std::ops::Range<usize> {
        let at = t * self.ncols + i;
        self.offs[at] as usize..self.offs[at + self.ncols] as usize
    }

    /// The length of directory column `i`'s stream.
    fn col_len(&self, i: usize) -> usize {
        self.offs[self.offs.len() - self.ncols + i] as usize
    }
}

/// Fails with a `Corruption` error naming the block.
fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corruption {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

impl Block {
    /// Maps and validates a block file (header, footer, index and trace-id table checksums).
    pub(crate) fn open(path: &Path, seq: u64) -> Result<Block, StorageError> {
        let map = MappedFile::open(path)?;
        Block::parse(Data::Mapped(map), path.to_path_buf(), seq)
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>, seq: u64) -> Result<Block, StorageError> {
        Block::parse(
            Data::Owned(bytes),
            PathBuf::from(format!("<in-memory trace block {seq}>")),
            seq,
        )
    }

    fn data(&self) -> &[u8] {
        match &self.data {
            Data::Mapped(m) => m.bytes(),
            Data::Owned(v) => v,
        }
    }

    fn parse(data: Data, path: PathBuf, seq: u64) -> Result<Block, StorageError> {
        let b: &[u8] = match &data {
            Data::Mapped(m) => m.bytes(),
            Data::Owned(v) => v,
        };
        let len = b.len();
        if len < MAGIC.len() + FOOTER || &b[..8] != MAGIC || &b[len - 8..] != END_MAGIC {
            return Err(corrupt(
                &path,
                0,
                "not a trace block (bad magic or too short)",
            ));
        }
        let f = len - FOOTER;
        let index_off = u64_at(b, f);
        let index_len = u64_at(b, f + 8);
        let index_raw = u64_at(b, f + 16);
        let ids_off = u64_at(b, f + 24);
        let n_ids = u64_at(b, f + 32);
        let index_crc = u32_at(b, f + 40);
        let ids_crc = u32_at(b, f + 44);
        let ids_end = n_ids
            .checked_mul(16)
            .and_then(|x| x.checked_add(ids_off))
            .filter(|&e| e == f as u64);
        if ids_end.is_none()
            || index_off.checked_add(index_len) != Some(ids_off)
            || index_off < MAGIC.len() as u64
            || index_raw > (1 << 32)
        {
            return Err(corrupt(&path, f as u64, "inconsistent block footer"));
        }
        let zidx = &b[index_off as usize..ids_off as usize];
        if crc32fast::hash(zidx) != index_crc {
            return Err(corrupt(&path, index_off, "index checksum mismatch"));
        }
        if crc32fast::hash(&b[ids_off as usize..f]) != ids_crc {
            return Err(corrupt(&path, ids_off, "trace id table checksum mismatch"));
        }
        let idx = zstd::bulk::decompress(zidx, index_raw as usize)
            .map_err(|e| corrupt(&path, index_off, format!("index does not decompress: {e}")))?;
        let parsed = parse_index(&idx, n_ids, index_off)
            .ok_or_else(|| corrupt(&path, index_off, "malformed block index"))?;
        if parsed.seq != seq {
            tracing::warn!(block = %path.display(), file_seq = seq, index_seq = parsed.seq,
                "trace block name and index disagree on the sequence number; using the name");
        }
        Ok(Block {
            seq,
            covers: parsed.covers,
            min_time: parsed.min_time,
            max_time: parsed.max_time,
            spans: parsed.spans,
            traces: n_ids,
            bytes: len as u64,
            path,
            data,
            pairs: parsed.pairs,
            rgs: parsed.rgs,
            ids_off: ids_off as usize,
            bloom: parsed.bloom,
            uid: NEXT_BLOCK_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub(crate) fn row_groups(&self) -> usize {
        self.rgs.len()
    }

    fn id_at(&self, i: usize) -> TraceId {
        let at = self.ids_off + 16 * i;
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.data()[at..at + 16]);
        TraceId(id)
    }

    /// The index of `id` in the sorted trace-id table (binary search over the map).
    fn find(&self, id: &TraceId) -> Option<usize> {
        let bits = self.bloom.len() as u64 * 64;
        if !bloom_probes(id, bits).all(|p| self.bloom[(p / 64) as usize] & (1 << (p % 64)) != 0) {
            return None;
        }
        let (mut lo, mut hi) = (0usize, self.traces as usize);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.id_at(mid).cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Decompresses one column of a row group, checking its CRC.
    fn column(&self, rg: usize, col: usize) -> Result<Vec<u8>, StorageError> {
        let meta = &self.rgs[rg];
        let mut off = meta.offset as usize;
        for c in &meta.cols[..col] {
            off += c.len as usize;
        }
        let c = meta.cols[col];
        let z = self
            .data()
            .get(off..off + c.len as usize)
            .ok_or_else(|| corrupt(&self.path, off as u64, "column outside the file"))?;
        if crc32fast::hash(z) != c.crc {
            return Err(corrupt(&self.path, off as u64, "column checksum mismatch"));
        }
        let raw = codec::decompress(z, c.raw as usize)
            .map_err(|e| corrupt(&self.path, off as u64, format!("column: {e}")))?;
        if raw.len() != c.raw as usize {
            return Err(corrupt(
                &self.path,
                off as u64,
                "column has the wrong length",
            ));
        }
        Ok(raw)
    }

    /// [`Block::column`] through the process-wide [`ColumnCache`].
    fn column_cached(&self, rg: usize, col: usize) -> Result<Arc<Vec<u8>>, StorageError> {
        let key = (self.uid, rg as u32, col as u32);
        if let Some(Cached::Col(c)) = COLUMN_CACHE.lock().get(key) {
            return Ok(c);
        }
        let mut raw = self.column(rg, col)?;
        raw.shrink_to_fit();
        let c = Arc::new(raw);
        COLUMN_CACHE.lock().put(key, Cached::Col(c.clone()));
        Ok(c)
    }

    /// The row group's parsed directory ([`RgDir`]), through the [`ColumnCache`].
    fn rg_dir(&self, rg: usize) -> Result<Arc<RgDir>, StorageError> {
        let key = (self.uid, rg as u32, DIR_KEY);
        if let Some(Cached::Dir(d)) = COLUMN_CACHE.lock().get(key) {
            return Ok(d);
        }
        let traces = self.column_cached(rg, C_TRACES)?;
        let dir = self.column_cached(rg, C_DIR)?;
        let d =
            Arc::new(RgDir::build(&self.rgs[rg], &traces, &dir).ok_or_else(|| self.bad_rg(rg))?);
        COLUMN_CACHE.lock().put(key, Cached::Dir(d.clone()));
        Ok(d)
    }

    fn bad_rg(&self, rg: usize) -> StorageError {
        corrupt(&self.path, self.rgs[rg].offset, "malformed row group")
    }

    /// This block's spans of `id`, or `None` when the block does not hold the trace.
    /// With `proj`, only the span attributes whose key it holds and no events or links (see
    /// [`super::TraceSource::search_projected`]).
    pub(crate) fn trace_part(
        &self,
        id: &TraceId,
        proj: Option<&BTreeSet<String>>,
    ) -> Result<Option<Part>, StorageError> {
        let Some(t) = self.find(id) else {
            return Ok(None);
        };
        let rg = self
            .rgs
            .partition_point(|r| r.first_trace as usize <= t)
            .saturating_sub(1);
        let local = t - self.rgs[rg].first_trace as usize;
        let mut out = None;
        self.decode_rg(rg, &[local], proj, &mut |_, _, part| out = Some(part))?;
        Ok(out)
    }

    /// Every trace of a row group with its spans, in id order.
    pub(crate) fn decode_row_group(&self, rg: usize) -> Result<Vec<(TraceId, Part)>, StorageError> {
        let all: Vec<usize> = (0..self.rgs[rg].traces as usize).collect();
        let mut out = Vec::with_capacity(all.len());
        self.decode_rg(rg, &all, None, &mut |_, id, part| out.push((id, part)))?;
        Ok(out)
    }

    /// Decodes the traces of row group `rg` whose local numbers `wanted` lists (ascending).
    fn decode_rg(
        &self,
        rg: usize,
        wanted: &[usize],
        proj: Option<&BTreeSet<String>>,
        emit: &mut dyn FnMut(usize, TraceId, Part),
    ) -> Result<(), StorageError> {
        let meta = &self.rgs[rg];
        if wanted.is_empty() {
            return Ok(());
        }
        // A projection leaves out the value columns of other keys and events/links.
        let keep: Vec<bool> = meta
            .keys
            .iter()
            .map(|k| proj.is_none_or(|p| p.contains(k)))
            .collect();
        // Columns no wanted trace has bytes in (events, external parents, attribute values of
        // keys the wanted traces lack) are not decompressed.
        let dir = self.rg_dir(rg)?;
        let nt = meta.traces as usize;
        let mut need = vec![false; dir.ncols];
        for &t in wanted {
            if t >= nt {
                return Err(self.bad_rg(rg));
            }
            for (i, n) in need.iter_mut().enumerate() {
                *n |= !dir.seg(t, i).is_empty();
            }
        }
        let empty = Arc::new(Vec::new());
        let mut cols: Vec<Arc<Vec<u8>>> = Vec::with_capacity(meta.cols.len());
        for c in 0..meta.cols.len() {
            let skip = match c {
                C_SEARCH | C_TRACES | C_DIR => true,
                C_EXT_PARENT => !need[1],
                C_EVENTS_LINKS => !need[DIR_COLS.len() - 1] || proj.is_some(),
                c if c >= N_FIXED => !need[DIR_COLS.len() + c - N_FIXED] || !keep[c - N_FIXED],
                _ => false,
            };
            if skip {
                cols.push(empty.clone());
            } else {
                cols.push(self.column_cached(rg, c)?);
            }
        }
        let mut loaded = vec![true; DIR_COLS.len()];
        loaded[DIR_COLS.len() - 1] = proj.is_none();
        loaded.extend_from_slice(&keep);
        for (i, n) in need.iter().enumerate() {
            loaded[i] &= *n;
        }
        decode_spans(self, meta, &dir, &cols, &loaded, wanted, emit).ok_or_else(|| self.bad_rg(rg))
    }

    /// Calls `f(id, prepare(id, part))` for each trace with a part in this block that overlaps
    /// the search range and in which some span may satisfy some filter of the search (every
    /// overlapping trace when the filter list is empty), until `f` returns false. `prepare`
    /// runs on the worker threads that decode row groups; `f` runs on the caller's thread.
    pub(crate) fn search_candidates<T: Send>(
        &self,
        search: &TraceSearch<'_>,
        proj: Option<&BTreeSet<String>>,
        prepare: &(dyn Fn(TraceId, Part) -> Result<T, StorageError> + Sync),
        f: &mut dyn FnMut(TraceId, T) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        use rayon::prelude::*;
        let rgs: Vec<usize> = (0..self.rgs.len())
            .rev()
            .filter(|&rg| {
                let meta = &self.rgs[rg];
                meta.min_start <= search.end_ns
                    && meta.max_end >= search.start_ns
                    && (search.filter.is_empty()
                        || search.filter.iter().any(|f| self.may_match(f, meta)))
            })
            .collect();
        // Row groups are scanned in parallel a few at a time, so that a caller that stops
        // early (a search limit) wastes little work.
        for chunk in rgs.chunks(8) {
            let found: Vec<Result<Vec<(TraceId, T)>, StorageError>> = chunk
                .par_iter()
                .map(|&rg| {
                    self.rg_candidates(rg, search, proj)?
                        .into_iter()
                        .map(|(id, part)| Ok((id, prepare(id, part)?)))
                        .collect()
                })
                .collect();
            for r in found {
                for (id, x) in r? {
                    if !f(id, x)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// The candidate traces of one row group (see [`Block::search_candidates`]): judged from
    /// the row group's search index when it can answer for every filter, else by scanning
    /// the filter's columns; only the candidates are decoded.
    fn rg_candidates(
        &self,
        rg: usize,
        search: &TraceSearch<'_>,
        proj: Option<&BTreeSet<String>>,
    ) -> Result<Vec<(TraceId, Part)>, StorageError> {
        let hit = match self.index_hits(rg, search)? {
            Some(h) => h,
            None => self.scan_hits(rg, search)?,
        };
        let wanted: Vec<usize> = (0..self.rgs[rg].traces as usize)
            .filter(|t| hit.get(*t))
            .collect();
        let mut found = Vec::with_capacity(wanted.len());
        self.decode_rg(rg, &wanted, proj, &mut |_, id, part| found.push((id, part)))?;
        Ok(found)
    }

    /// A superset of the row group's traces that overlap the search and have a span matching
    /// some filter, from the search index alone; `None` when the index cannot tell.
    fn index_hits(
        &self,
        rg: usize,
        search: &TraceSearch<'_>,
    ) -> Result<Option<Bits>, StorageError> {
        let meta = &self.rgs[rg];
        let nt = meta.traces as usize;
        let col = self.column_cached(rg, C_SEARCH)?;
        (|| {
            let idx =
                SearchIndex::parse(&col, nt, meta.keys.len()).ok_or_else(|| self.bad_rg(rg))?;
            let mut hits = if search.filter.is_empty() {
                Bits::full(nt)
            } else {
                let mut acc = Bits::empty(nt);
                let resource = |p: u32| self.pairs.get(p as usize).map(|x| &*x.0);
                for f in search.filter {
                    match idx.eval(f, &meta.keys, &resource) {
                        Err(Malformed) => return Err(self.bad_rg(rg)),
                        Ok(None) => return Ok(None),
                        Ok(Some(b)) => acc.or(&b),
                    }
                }
                acc
            };
            if meta.min_start < search.start_ns || meta.max_end > search.end_ns {
                let times = idx.times().ok_or_else(|| self.bad_rg(rg))?;
                for (t, (off, len)) in times.iter().enumerate() {
                    let tmin = meta.min_start.saturating_add(*off);
                    let tmax = tmin.saturating_add(*len);
                    if tmin > search.end_ns || tmax < search.start_ns {
                        hits.clear(t);
                    }
                }
            }
            Ok(Some(hits))
        })()
    }

    /// The row group's traces that overlap the search and have a span matching some filter,
    /// by evaluating the filters on the decoded columns.
    fn scan_hits(&self, rg: usize, search: &TraceSearch<'_>) -> Result<Bits, StorageError> {
        let meta = &self.rgs[rg];
        let mut needs = Needs {
            times: true,
            ..Needs::default()
        };
        for flt in search.filter {
            needs.add_filter(flt);
        }
        let view = self.view(rg, &needs)?;
        let nt = meta.traces as usize;
        let mut hit = Bits::empty(nt);
        let mut tmin = vec![u64::MAX; nt];
        let mut tmax = vec![0u64; nt];
        for i in 0..view.n {
            let t = view.span_trace[i] as usize;
            tmin[t] = tmin[t].min(view.starts[i]);
            tmax[t] = tmax[t].max(view.ends[i]);
            if hit.get(t) {
                continue;
            }
            let row = Row { v: &view, i };
            if search.filter.is_empty() || search.filter.iter().any(|f| f.matches_view(&row)) {
                hit.set(t);
            }
        }
        for t in 0..nt {
            if tmin[t] > search.end_ns || tmax[t] < search.start_ns {
                hit.clear(t);
            }
        }
        Ok(hit)
    }

    /// False when no span of the row group can satisfy `f` (judged from the index alone).
    fn may_match(&self, f: &SpanFilter, rg: &RgMeta) -> bool {
        match f {
            SpanFilter::True => true,
            SpanFilter::And(p) => p.iter().all(|x| self.may_match(x, rg)),
            SpanFilter::Or(p) => p.iter().any(|x| self.may_match(x, rg)),
            SpanFilter::Cond { field, op, value } => match (field, value) {
                (SpanField::Status, FilterValue::Status(s)) => {
                    let bit = 1u8 << (*s as u8);
                    match op {
                        FilterOp::Eq => rg.statuses & bit != 0,
                        FilterOp::Ne => rg.statuses & !bit != 0,
                        _ => true,
                    }
                }
                (SpanField::Kind, FilterValue::Kind(k)) => {
                    let bit = 1u8 << (*k as u8);
                    match op {
                        FilterOp::Eq => rg.kinds & bit != 0,
                        FilterOp::Ne => rg.kinds & !bit != 0,
                        _ => true,
                    }
                }
                (SpanField::Duration, FilterValue::Duration(_) | FilterValue::Int(_)) => {
                    let d: i128 = match value {
                        FilterValue::Duration(d) => i128::from(*d),
                        FilterValue::Int(i) => i128::from(*i),
                        _ => return true,
                    };
                    let (lo, hi) = (i128::from(rg.min_dur), i128::from(rg.max_dur));
                    match op {
                        FilterOp::Gt => hi > d,
                        FilterOp::Ge => hi >= d,
                        FilterOp::Lt => lo < d,
                        FilterOp::Le => lo <= d,
                        FilterOp::Eq => lo <= d && d <= hi,
                        _ => true,
                    }
                }
                (SpanField::Attr { scope, key }, _) => {
                    let span_has = || rg.keys.iter().any(|k| k == key);
                    let res_ok = || {
                        rg.pairs.iter().any(|p| match self.pairs.get(*p as usize) {
                            Some((r, _)) => f.matches_view(&ResourceOnly(r)),
                            None => true,
                        })
                    };
                    match scope {
                        AttrScope::Span => span_has(),
                        AttrScope::Resource => res_ok(),
                        AttrScope::Any => span_has() || res_ok(),
                    }
                }
                _ => true,
            },
        }
    }

    /// Decodes the columns `needs` asks for (plus span → trace numbering) of a row group.
    fn view(&self, rg: usize, needs: &Needs) -> Result<RgView<'_>, StorageError> {
        let meta = &self.rgs[rg];
        let n = meta.spans as usize;
        let bad = || self.bad_rg(rg);
        let mut v = RgView {
            block: self,
            n,
            span_trace: Vec::with_capacity(n),
            starts: Vec::new(),
            ends: Vec::new(),
            names: (Vec::new(), Vec::new()),
            smsgs: (Vec::new(), Vec::new()),
            ks: Vec::new(),
            pairs: Vec::new(),
            attrs: FastMap::default(),
            span_keys: Vec::new(),
        };
        let traces_col = self.column(rg, C_TRACES)?;
        let mut tb = traces_col.as_slice();
        let mut tstarts = Vec::with_capacity(meta.traces as usize);
        for t in 0..meta.traces {
            let cnt = get_u(&mut tb).ok_or_else(bad)?;
            let off = get_u(&mut tb).ok_or_else(bad)?;
            if cnt > n as u64 {
                return Err(bad());
            }
            tstarts.push(meta.min_start.wrapping_add(off));
            v.span_trace.extend(std::iter::repeat_n(t, cnt as usize));
        }
        if v.span_trace.len() != n {
            return Err(bad());
        }
        if needs.times || needs.duration {
            let sc = self.column(rg, C_START)?;
            let dc = self.column(rg, C_DUR)?;
            let (mut sb, mut db) = (sc.as_slice(), dc.as_slice());
            v.starts.reserve(n);
            v.ends.reserve(n);
            for i in 0..n {
                let s =
                    tstarts[v.span_trace[i] as usize].wrapping_add(get_u(&mut sb).ok_or_else(bad)?);
                let d = get_i(&mut db).ok_or_else(bad)?;
                v.starts.push(s);
                v.ends.push(s.wrapping_add(d as u64));
            }
            codec::recycle([sc, dc]);
        }
        if needs.name {
            v.names = owned(dict_codes(&self.column(rg, C_NAME)?, n)).ok_or_else(bad)?;
        }
        if needs.status_message {
            v.smsgs = owned(dict_codes(&self.column(rg, C_STATUS_MSG)?, n)).ok_or_else(bad)?;
        }
        if needs.kind_status {
            v.ks = self.column(rg, C_KIND_STATUS)?;
            if v.ks.len() != n || v.ks.iter().any(|b| split_kind_status(*b).is_none()) {
                return Err(bad());
            }
        }
        if needs.resource {
            let pc = self.column(rg, C_PAIR)?;
            let mut pb = pc.as_slice();
            for _ in 0..n {
                let p = get_u32(&mut pb).ok_or_else(bad)?;
                if p as usize >= self.pairs.len() {
                    return Err(bad());
                }
                v.pairs.push(p);
            }
            codec::recycle([pc]);
        }
        if !needs.keys.is_empty() || needs.all_keys {
            let kc = self.column(rg, C_ATTR_KEYS)?;
            let mut kb = kc.as_slice();
            let mut key_cols: Vec<(u32, Vec<u8>)> = Vec::new();
            for key in &needs.keys {
                if let Some(code) = meta.keys.iter().position(|k| k == key) {
                    key_cols.push((code as u32, self.column(rg, N_FIXED + code)?));
                } else {
                    v.attrs.insert(key.clone(), (Vec::new(), vec![u32::MAX; n]));
                }
            }
            // Wanted key code → its cursor (see `KeyCursor`).
            let mut wanted: Vec<Option<KeyCursor<'_>>> = Vec::new();
            wanted.resize_with(meta.keys.len(), || None);
            for (code, col) in &key_cols {
                let mut cb = col.as_slice();
                let dict = read_dict(&mut cb).ok_or_else(bad)?;
                wanted[*code as usize] = Some(KeyCursor {
                    rest: cb,
                    slots: vec![u32::MAX; dict.len()],
                    dict,
                    arena: Vec::new(),
                    first: vec![u32::MAX; n],
                });
            }
            for i in 0..n {
                let cnt = get_count(&mut kb).ok_or_else(bad)?;
                let mut keys_here = Vec::new();
                for _ in 0..cnt {
                    let code = get_u32(&mut kb).ok_or_else(bad)?;
                    if code as usize >= meta.keys.len() {
                        return Err(bad());
                    }
                    if needs.all_keys {
                        keys_here.push(code);
                    }
                    if let Some(Some(k)) = wanted.get_mut(code as usize) {
                        let tag = get_u8(&mut k.rest).ok_or_else(bad)?;
                        let at = if tag == TAG_STR {
                            let c = get_u(&mut k.rest).ok_or_else(bad)? as usize;
                            let slot = k.slots.get_mut(c).ok_or_else(bad)?;
                            if *slot == u32::MAX {
                                *slot = k.arena.len() as u32;
                                k.arena
                                    .push(AttrValue::Str(utf8(&k.dict, c).ok_or_else(bad)?));
                            }
                            *slot
                        } else {
                            k.arena
                                .push(get_value_tagged(&mut k.rest, tag, 0).ok_or_else(bad)?);
                            k.arena.len() as u32 - 1
                        };
                        if k.first[i] == u32::MAX {
                            k.first[i] = at;
                        }
                    }
                }
                if needs.all_keys {
                    v.span_keys.push(keys_here);
                }
            }
            for (code, k) in wanted
                .into_iter()
                .enumerate()
                .filter_map(|(c, k)| Some((c, k?)))
            {
                v.attrs.insert(meta.keys[code].clone(), (k.arena, k.first));
            }
            codec::recycle(key_cols.into_iter().map(|c| c.1));
            codec::recycle([kc]);
        }
        codec::recycle([traces_col]);
        Ok(v)
    }

    /// Adds attribute keys of spans overlapping `[start_ns, end_ns]` to `names`.
    pub(crate) fn tag_names(
        &self,
        scope: AttrScope,
        start_ns: u64,
        end_ns: u64,
        names: &mut BTreeSet<String>,
    ) -> Result<(), StorageError> {
        let span_scope = matches!(scope, AttrScope::Span | AttrScope::Any);
        let res_scope = matches!(scope, AttrScope::Resource | AttrScope::Any);
        for (rg, meta) in self.rgs.iter().enumerate() {
            if meta.min_start > end_ns || meta.max_end < start_ns {
                continue;
            }
            let add_res = |names: &mut BTreeSet<String>, p: u32| {
                if let Some((r, _)) = self.pairs.get(p as usize) {
                    for a in &r.attributes {
                        if !names.contains(&a.key) {
                            names.insert(a.key.clone());
                        }
                    }
                }
            };
            if meta.min_start >= start_ns && meta.max_end <= end_ns {
                // Every span of the row group is inside the range.
                if span_scope {
                    names.extend(meta.keys.iter().cloned());
                }
                if res_scope {
                    for p in &meta.pairs {
                        add_res(names, *p);
                    }
                }
                continue;
            }
            let needs = Needs {
                times: true,
                resource: res_scope,
                all_keys: span_scope,
                ..Needs::default()
            };
            let v = self.view(rg, &needs)?;
            let mut pairs_seen = BTreeSet::new();
            let mut keys_seen = BTreeSet::new();
            for i in 0..v.n {
                if v.starts[i] > end_ns || v.ends[i] < start_ns {
                    continue;
                }
                if res_scope {
                    pairs_seen.insert(v.pairs[i]);
                }
                if span_scope {
                    keys_seen.extend(v.span_keys[i].iter().copied());
                }
            }
            for p in pairs_seen {
                add_res(names, p);
            }
            for k in keys_seen {
                names.insert(meta.keys[k as usize].clone());
            }
        }
        Ok(())
    }

    /// Adds the values of `field` on spans in the range that satisfy `filter` to `values`.
    pub(crate) fn tag_values(
        &self,
        field: &SpanField,
        filter: &SpanFilter,
        start_ns: u64,
        end_ns: u64,
        values: &mut BTreeMap<String, AttrValue>,
    ) -> Result<(), StorageError> {
        if matches!(
            field,
            SpanField::Kind | SpanField::Status | SpanField::Duration
        ) {
            return Ok(());
        }
        let mut needs = Needs {
            times: true,
            ..Needs::default()
        };
        needs.add_filter(filter);
        needs.add_field(field);
        for (rg, meta) in self.rgs.iter().enumerate() {
            if meta.min_start > end_ns || meta.max_end < start_ns || !self.may_match(filter, meta) {
                continue;
            }
            let inside = meta.min_start >= start_ns && meta.max_end <= end_ns;
            if inside
                && matches!(filter, SpanFilter::True)
                && self.index_tag_values(rg, field, values)?
            {
                continue;
            }
            if let SpanField::Attr {
                scope: AttrScope::Span,
                key,
            } = field
            {
                if !meta.keys.iter().any(|k| k == key) {
                    continue;
                }
            }
            let v = self.view(rg, &needs)?;
            for i in 0..v.n {
                if v.starts[i] > end_ns || v.ends[i] < start_ns {
                    continue;
                }
                let row = Row { v: &v, i };
                if !filter.matches_view(&row) {
                    continue;
                }
                let val = match field {
                    SpanField::Name => Some(AttrValue::Str(row.name().to_owned())),
                    SpanField::StatusMessage => {
                        Some(AttrValue::Str(row.status_message().to_owned()))
                    }
                    SpanField::Attr { scope, key } => match scope {
                        AttrScope::Span => row.span_attr(key).cloned(),
                        AttrScope::Resource => row.resource_attr(key).cloned(),
                        AttrScope::Any => row
                            .span_attr(key)
                            .or_else(|| row.resource_attr(key))
                            .cloned(),
                    },
                    _ => None,
                };
                if let Some(val) = val {
                    add_value(values, val);
                }
            }
        }
        Ok(())
    }
}

impl Block {
    /// Adds the values of `field` over every span of row group `rg` from the block index and
    /// the search index alone; false when they cannot tell (nothing added then).
    fn index_tag_values(
        &self,
        rg: usize,
        field: &SpanField,
        values: &mut BTreeMap<String, AttrValue>,
    ) -> Result<bool, StorageError> {
        let meta = &self.rgs[rg];
        let res_value = |p: u32, key: &str| {
            self.pairs
                .get(p as usize)
                .and_then(|(r, _)| super::find_attr(&r.attributes, key))
                .cloned()
        };
        let (scope, key) = match field {
            SpanField::Attr { scope, key } => (*scope, key),
            SpanField::Name => {
                let col = self.column(rg, C_SEARCH)?;
                let r = (|| {
                    let idx = SearchIndex::parse(&col, meta.traces as usize, meta.keys.len())
                        .ok_or_else(|| self.bad_rg(rg))?;
                    for n in idx.names() {
                        let n = std::str::from_utf8(n).map_err(|_| self.bad_rg(rg))?;
                        add_value(values, AttrValue::Str(n.to_owned()));
                    }
                    Ok(true)
                })();
                codec::recycle([col]);
                return r;
            }
            _ => return Ok(false),
        };
        if scope == AttrScope::Resource {
            for p in &meta.pairs {
                if let Some(v) = res_value(*p, key) {
                    add_value(values, v);
                }
            }
            return Ok(true);
        }
        let (vals, lacking) = match meta.keys.iter().position(|k| k == key) {
            None => (Vec::new(), meta.pairs.clone()),
            Some(code) => {
                let col = self.column(rg, C_SEARCH)?;
                let r = SearchIndex::parse(&col, meta.traces as usize, meta.keys.len())
                    .ok_or(Malformed)
                    .and_then(|idx| idx.key_values(code));
                codec::recycle([col]);
                match r {
                    Err(Malformed) => return Err(self.bad_rg(rg)),
                    Ok(None) => return Ok(false),
                    Ok(Some(x)) => x,
                }
            }
        };
        for v in vals {
            add_value(values, v);
        }
        if scope == AttrScope::Any {
            for p in lacking {
                if let Some(v) = res_value(p, key) {
                    add_value(values, v);
                }
            }
        }
        Ok(true)
    }
}

struct ParsedIndex {
    seq: u64,
    covers: Vec<u64>,
    min_time: u64,
    max_time: u64,
    spans: u64,
    pairs: Vec<(Arc<Resource>, Arc<Scope>)>,
    rgs: Vec<RgMeta>,
    bloom: Vec<u64>,
}

/// Bloom filter probes of a trace id: 7 positions from two hashes of its halves.
fn bloom_probes(id: &TraceId, bits: u64) -> impl Iterator<Item = u64> {
    let fmix = |mut h: u64| {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    };
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&id.0[..8]);
    hi.copy_from_slice(&id.0[8..]);
    let h1 = fmix(u64::from_le_bytes(lo) ^ 0x9e37_79b9_7f4a_7c15);
    let h2 = fmix(u64::from_le_bytes(hi)) | 1;
    (0..7u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// A Bloom filter over the block's trace ids: 10 bits per id (about 1% false positives).
fn bloom_build(ids: &[TraceId]) -> Vec<u64> {
    let words = (ids.len() * 10).div_ceil(64).max(1);
    let mut bloom = vec![0u64; words];
    let bits = words as u64 * 64;
    for id in ids {
        for p in bloom_probes(id, bits) {
            bloom[(p / 64) as usize] |= 1 << (p % 64);
        }
    }
    bloom
}

fn parse_index(idx: &[u8], n_ids: u64, data_end: u64) -> Option<ParsedIndex> {
    let b = &mut &idx[..];
    if get_u(b)? != FORMAT_VERSION {
        return None;
    }
    let seq = get_u(b)?;
    let nc = get_count(b)?;
    let covers = (0..nc).map(|_| get_u(b)).collect::<Option<Vec<_>>>()?;
    let min_time = get_u(b)?;
    let max_time = get_u(b)?;
    let spans = get_u(b)?;
    let nr = get_count(b)?;
    let mut resources = Vec::with_capacity(nr);
    for _ in 0..nr {
        let mut x = get_bytes(b)?;
        resources.push(Arc::new(codec::get_resource(&mut x)?));
    }
    let ns = get_count(b)?;
    let mut scopes = Vec::with_capacity(ns);
    for _ in 0..ns {
        let mut x = get_bytes(b)?;
        scopes.push(Arc::new(codec::get_scope(&mut x)?));
    }
    let np = get_count(b)?;
    let mut pairs = Vec::with_capacity(np);
    for _ in 0..np {
        let r = resources.get(get_u(b)? as usize)?.clone();
        let s = scopes.get(get_u(b)? as usize)?.clone();
        pairs.push((r, s));
    }
    let ng = get_count(b)?;
    let mut rgs = Vec::with_capacity(ng);
    let mut next_trace = 0u64;
    for _ in 0..ng {
        let first_trace = get_u32(b)?;
        let traces = get_u32(b)?;
        let n_spans = get_u32(b)?;
        let min_start = get_u(b)?;
        let max_end = min_start.checked_add(get_u(b)?)?;
        let kinds = get_u8(b)?;
        let statuses = get_u8(b)?;
        let min_dur = get_u(b)?;
        let max_dur = get_u(b)?;
        let npp = get_count(b)?;
        let rg_pairs = (0..npp)
            .map(|_| get_u32(b).filter(|p| (*p as usize) < pairs.len()))
            .collect::<Option<Vec<_>>>()?;
        let offset = get_u(b)?;
        let ncol = get_count(b)?;
        let mut cols = Vec::with_capacity(ncol);
        let mut end = offset;
        for _ in 0..ncol {
            let len = get_u32(b)?;
            let raw = get_u32(b)?;
            let crc = u32::from_le_bytes(get_fixed(b)?);
            end = end.checked_add(u64::from(len))?;
            cols.push(ColMeta { len, raw, crc });
        }
        let nk = get_count(b)?;
        let keys = (0..nk).map(|_| get_str(b)).collect::<Option<Vec<_>>>()?;
        if u64::from(first_trace) != next_trace
            || traces == 0
            || end > data_end
            || ncol != N_FIXED + nk
        {
            return None;
        }
        next_trace += u64::from(traces);
        rgs.push(RgMeta {
            first_trace,
            traces,
            spans: n_spans,
            min_start,
            max_end,
            kinds,
            statuses,
            min_dur,
            max_dur,
            pairs: rg_pairs,
            offset,
            cols,
            keys,
        });
    }
    let nw = get_u(b)?;
    if nw.checked_mul(8)? > b.len() as u64 {
        return None;
    }
    let bloom = (0..nw)
        .map(|_| get_fixed::<8>(b).map(u64::from_le_bytes))
        .collect::<Option<Vec<_>>>()?;
    (next_trace == n_ids && b.is_empty() && !bloom.is_empty()).then_some(ParsedIndex {
        seq,
        covers,
        min_time,
        max_time,
        spans,
        pairs,
        rgs,
        bloom,
    })
}

fn owned(d: Option<(Vec<&[u8]>, Vec<u32>)>) -> Option<(Vec<String>, Vec<u32>)> {
    let (dict, codes) = d?;
    let dict = (0..dict.len())
        .map(|i| utf8(&dict, i))
        .collect::<Option<Vec<_>>>()?;
    Some((dict, codes))
}

/// Splits a dictionary column into its strings and `n` codes (checked against the dictionary).
fn dict_codes(col: &[u8], n: usize) -> Option<(Vec<&[u8]>, Vec<u32>)> {
    let mut b = col;
    let dict = read_dict(&mut b)?;
    let mut codes = Vec::with_capacity(n);
    for _ in 0..n {
        let c = get_u32(&mut b)?;
        if c as usize >= dict.len() {
            return None;
        }
        codes.push(c);
    }
    b.is_empty().then_some((dict, codes))
}

/// Splits a dictionary column into its strings and the code stream that follows.
fn split_dict(col: &[u8]) -> Option<(Vec<&[u8]>, &[u8])> {
    let mut b = col;
    let dict = read_dict(&mut b)?;
    Some((dict, b))
}

/// Rebuilds the spans of the traces `wanted` lists (local numbers) from the columns of a row
/// group, going to each through the row group's [`RgDir`]. `loaded[i]`: directory column `i`
/// was decompressed (else its segments read as empty). `None` on malformed data.
fn decode_spans(
    block: &Block,
    meta: &RgMeta,
    dir: &RgDir,
    cols: &[Arc<Vec<u8>>],
    loaded: &[bool],
    wanted: &[usize],
    emit: &mut dyn FnMut(usize, TraceId, Part),
) -> Option<()> {
    let n = meta.spans as usize;
    let nk = meta.keys.len();
    let span_ids = cols[C_SPAN_ID].as_slice();
    let ks = cols[C_KIND_STATUS].as_slice();
    if span_ids.len() != n * 8 || ks.len() != n {
        return None;
    }
    let (names, name_codes) = split_dict(&cols[C_NAME])?;
    let (smsgs, smsg_codes) = split_dict(&cols[C_STATUS_MSG])?;
    let (tstates, tstate_codes) = split_dict(&cols[C_TRACE_STATE])?;
    let mut bases: Vec<&[u8]> = Vec::with_capacity(DIR_COLS.len() + nk);
    for c in DIR_COLS {
        bases.push(match c {
            C_NAME => name_codes,
            C_STATUS_MSG => smsg_codes,
            C_TRACE_STATE => tstate_codes,
            c => cols[c].as_slice(),
        });
    }
    let mut key_dicts: Vec<Vec<&[u8]>> = Vec::with_capacity(nk);
    for (k, c) in cols[N_FIXED..].iter().enumerate() {
        // A column not loaded was skipped (no wanted trace uses the key, or not projected).
        let (dict, vals) = if loaded.get(DIR_COLS.len() + k) == Some(&true) {
            split_dict(c)?
        } else {
            (Vec::new(), &[][..])
        };
        key_dicts.push(dict);
        bases.push(vals);
    }
    if key_dicts.len() != nk || loaded.len() != bases.len() || dir.ncols != bases.len() {
        return None;
    }
    // Every loaded stream must be exactly as long as the directory says.
    for (i, b) in bases.iter().enumerate() {
        if loaded[i] && b.len() != dir.col_len(i) {
            return None;
        }
    }
    let mut cur: Vec<&[u8]> = vec![&[]; bases.len()];
    for &t in wanted {
        let g = *dir.first_span.get(t)? as usize;
        let cnt = *dir.first_span.get(t + 1)? as usize - g;
        for (i, c) in cur.iter_mut().enumerate() {
            *c = if loaded[i] {
                bases[i].get(dir.seg(t, i))?
            } else {
                &[]
            };
        }
        let id = block.id_at(meta.first_trace as usize + t);
        let part = decode_trace_spans(
            block,
            meta,
            (span_ids, ks),
            [&names, &smsgs, &tstates],
            &key_dicts,
            loaded,
            &mut cur,
            id,
            g,
            cnt,
            *dir.tmin.get(t)?,
        )?;
        emit(t, id, part);
    }
    Some(())
}

/// Decodes the `cnt` spans of one trace (first span number `g`) from its column segments
/// (`cur`, in [`DIR_COLS`] order then key value columns); every segment must be used up.
#[allow(clippy::too_many_arguments)]
fn decode_trace_spans(
    block: &Block,
    meta: &RgMeta,
    (span_ids, ks): (&[u8], &[u8]),
    [names, smsgs, tstates]: [&[&[u8]]; 3],
    key_dicts: &[Vec<&[u8]>],
    loaded: &[bool],
    cur: &mut [&[u8]],
    id: TraceId,
    g: usize,
    cnt: usize,
    tmin: u64,
) -> Option<Part> {
    let (fixed, key_segs) = cur.split_at_mut(DIR_COLS.len());
    let (fixed_loaded, key_loaded) = loaded.split_at(DIR_COLS.len());
    let events_loaded = fixed_loaded.last().copied().unwrap_or(true);
    // With a projection most spans keep few or no attributes: no room reserved for all.
    let all_keys = key_loaded.iter().all(|k| *k);
    let [parents, ext, starts, durs, name_c, pairs, smsg_c, tstate_c, misc, keys, evl] = fixed
    else {
        return None;
    };
    let mut part: Part = Vec::with_capacity(cnt);
    for j in 0..cnt {
        let at = (g + j) * 8;
        let span_id: [u8; 8] = span_ids.get(at..at + 8)?.try_into().ok()?;
        let parent = match get_u(parents)? {
            0 => None,
            1 => Some(get_fixed::<8>(ext)?),
            k => {
                let k = (k - 2) as usize;
                if k >= cnt {
                    return None;
                }
                let at = (g + k) * 8;
                Some(span_ids.get(at..at + 8)?.try_into().ok()?)
            }
        };
        let start = tmin.checked_add(get_u(starts)?)?;
        let end = start.wrapping_add(get_i(durs)? as u64);
        let (kind, status) = split_kind_status(*ks.get(g + j)?)?;
        let name = utf8(names, get_u(name_c)? as usize)?;
        let pair = get_u(pairs)? as usize;
        let status_message = utf8(smsgs, get_u(smsg_c)? as usize)?;
        let trace_state = utf8(tstates, get_u(tstate_c)? as usize)?;
        let flags = get_u32(misc)?;
        let d_attrs = get_u32(misc)?;
        let d_events = get_u32(misc)?;
        let d_links = get_u32(misc)?;
        let na = get_count(keys)?;
        let mut attrs = Vec::with_capacity(if all_keys { na } else { 0 });
        for _ in 0..na {
            let code = get_u(keys)? as usize;
            if !*key_loaded.get(code)? {
                continue;
            }
            let cb = key_segs.get_mut(code)?;
            let tag = get_u8(cb)?;
            let value = if tag == TAG_STR {
                AttrValue::Str(utf8(key_dicts.get(code)?, get_u(cb)? as usize)?)
            } else {
                get_value_tagged(cb, tag, 0)?
            };
            attrs.push(super::Attr {
                key: meta.keys.get(code)?.clone(),
                value,
            });
        }
        let (events, links) = if events_loaded {
            (codec::get_events(evl)?, codec::get_links(evl)?)
        } else {
            (Vec::new(), Vec::new())
        };
        let (res, scope) = block.pairs.get(pair)?.clone();
        part.push((
            res,
            scope,
            Span {
                trace_id: id,
                span_id,
                parent_span_id: parent,
                trace_state,
                flags,
                name,
                kind,
                start_unix_nano: start,
                end_unix_nano: end,
                attributes: attrs,
                dropped_attributes_count: d_attrs,
                events,
                dropped_events_count: d_events,
                links,
                dropped_links_count: d_links,
                status_code: status,
                status_message,
            },
        ));
    }
    cur.iter().all(|c| c.is_empty()).then_some(part)
}

/// A key's value column being walked: `rest` is the unread value stream; values are
/// materialised into `arena` (each dictionary string once, via `slots`); `first[span]` is the
/// arena index of the span's first value of the key (`u32::MAX`: none).
struct KeyCursor<'a> {
    rest: &'a [u8],
    dict: Vec<&'a [u8]>,
    slots: Vec<u32>,
    arena: Vec<AttrValue>,
    first: Vec<u32>,
}

/// Which columns a filter evaluation needs.
#[derive(Default)]
struct Needs {
    times: bool,
    duration: bool,
    name: bool,
    status_message: bool,
    kind_status: bool,
    resource: bool,
    keys: BTreeSet<String>,
    /// Per-span key lists (for tag names).
    all_keys: bool,
}

impl Needs {
    fn add_filter(&mut self, f: &SpanFilter) {
        match f {
            SpanFilter::True => {}
            SpanFilter::And(p) | SpanFilter::Or(p) => p.iter().for_each(|x| self.add_filter(x)),
            SpanFilter::Cond { field, .. } => self.add_field(field),
        }
    }

    fn add_field(&mut self, field: &SpanField) {
        match field {
            SpanField::Name => self.name = true,
            SpanField::StatusMessage => self.status_message = true,
            SpanField::Kind | SpanField::Status => self.kind_status = true,
            SpanField::Duration => self.duration = true,
            SpanField::Attr { scope, key } => {
                if matches!(scope, AttrScope::Span | AttrScope::Any) {
                    self.keys.insert(key.clone());
                }
                if matches!(scope, AttrScope::Resource | AttrScope::Any) {
                    self.resource = true;
                }
            }
        }
    }
}

/// Decoded columns of one row group, for filter evaluation without building spans.
struct RgView<'a> {
    block: &'a Block,
    n: usize,
    span_trace: Vec<u32>,
    starts: Vec<u64>,
    ends: Vec<u64>,
    names: (Vec<String>, Vec<u32>),
    smsgs: (Vec<String>, Vec<u32>),
    ks: Vec<u8>,
    pairs: Vec<u32>,
    /// Key → (values, per span the index of its first value of the key or `u32::MAX`).
    attrs: FastMap<String, (Vec<AttrValue>, Vec<u32>)>,
    span_keys: Vec<Vec<u32>>,
}

struct Row<'a> {
    v: &'a RgView<'a>,
    i: usize,
}

impl SpanView for Row<'_> {
    fn name(&self) -> &str {
        let (d, c) = &self.v.names;
        c.get(self.i)
            .and_then(|c| d.get(*c as usize))
            .map_or("", |s| s.as_str())
    }
    fn status_message(&self) -> &str {
        let (d, c) = &self.v.smsgs;
        c.get(self.i)
            .and_then(|c| d.get(*c as usize))
            .map_or("", |s| s.as_str())
    }
    fn kind(&self) -> SpanKind {
        self.v
            .ks
            .get(self.i)
            .and_then(|b| split_kind_status(*b))
            .map_or(SpanKind::Unspecified, |x| x.0)
    }
    fn status(&self) -> StatusCode {
        self.v
            .ks
            .get(self.i)
            .and_then(|b| split_kind_status(*b))
            .map_or(StatusCode::Unset, |x| x.1)
    }
    fn duration_nanos(&self) -> u64 {
        match (self.v.starts.get(self.i), self.v.ends.get(self.i)) {
            (Some(s), Some(e)) => e.saturating_sub(*s),
            _ => 0,
        }
    }
    fn span_attr(&self, key: &str) -> Option<&AttrValue> {
        let (arena, first) = self.v.attrs.get(key)?;
        arena.get(*first.get(self.i)? as usize)
    }
    fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        let p = *self.v.pairs.get(self.i)?;
        let (r, _) = self.v.block.pairs.get(p as usize)?;
        super::find_attr(&r.attributes, key)
    }
}

/// A view with only resource attributes (for judging resource conditions per row group).
struct ResourceOnly<'a>(&'a Resource);

impl SpanView for ResourceOnly<'_> {
    fn name(&self) -> &str {
        ""
    }
    fn status_message(&self) -> &str {
        ""
    }
    fn kind(&self) -> SpanKind {
        SpanKind::Unspecified
    }
    fn status(&self) -> StatusCode {
        StatusCode::Unset
    }
    fn duration_nanos(&self) -> u64 {
        0
    }
    fn span_attr(&self, _key: &str) -> Option<&AttrValue> {
        None
    }
    fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        super::find_attr(&self.0.attributes, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::Attr;

    /// The row-group search index alone yields the traces with an error span, or with a given
    /// attribute value (exact here), and declines keys it does not index.
    #[test]
    fn search_index_answers_without_scanning() {
        let opts = TraceStoreOptions {
            row_group_spans: 16,
            ..TraceStoreOptions::default()
        };
        let mut w = BlockWriter::new(Vec::new(), &opts).unwrap();
        let res = Arc::new(Resource {
            attributes: vec![Attr::new("service.name", AttrValue::Str("a".into()))],
            ..Resource::default()
        });
        let scope = Arc::new(Scope::default());
        let (mut errors, mut v1) = (BTreeSet::new(), BTreeSet::new());
        for t in 0..40u8 {
            let id = TraceId([t + 1; 16]);
            let part: Part = (0..3u8)
                .map(|i| {
                    let span = Span {
                        trace_id: id,
                        span_id: [i + 1; 8],
                        name: "op".into(),
                        start_unix_nano: 1_000 + u64::from(i),
                        end_unix_nano: 2_000,
                        status_code: if t % 7 == 0 && i == 1 {
                            StatusCode::Error
                        } else {
                            StatusCode::Ok
                        },
                        attributes: vec![
                            Attr::new("k", AttrValue::Str(format!("v{}", (t + i) % 3))),
                            Attr::new("arr", AttrValue::Array(vec![AttrValue::Int(1)])),
                        ],
                        ..Span::default()
                    };
                    (res.clone(), scope.clone(), span)
                })
                .collect();
            if t % 7 == 0 {
                errors.insert(id);
            }
            if (0..3).any(|i| (t + i) % 3 == 1) {
                v1.insert(id);
            }
            w.add_trace(id, part).unwrap();
        }
        let block = Block::from_bytes(w.finish(1, &[]).unwrap(), 1).unwrap();
        assert!(block.row_groups() > 2);
        let hits = |filter: &[SpanFilter]| -> Option<BTreeSet<TraceId>> {
            let search = TraceSearch {
                start_ns: 0,
                end_ns: u64::MAX,
                filter,
            };
            let mut out = BTreeSet::new();
            for rg in 0..block.row_groups() {
                let bits = block.index_hits(rg, &search).unwrap()?;
                let meta = &block.rgs[rg];
                for t in 0..meta.traces as usize {
                    if bits.get(t) {
                        out.insert(block.id_at(meta.first_trace as usize + t));
                    }
                }
            }
            Some(out)
        };
        let cond = |field, op, value| SpanFilter::Cond { field, op, value };
        let err = cond(
            SpanField::Status,
            FilterOp::Eq,
            FilterValue::Status(StatusCode::Error),
        );
        assert_eq!(hits(std::slice::from_ref(&err)), Some(errors));
        let k = SpanField::Attr {
            scope: AttrScope::Any,
            key: "k".into(),
        };
        let k_v1 = cond(k, FilterOp::Eq, FilterValue::Str("v1".into()));
        assert_eq!(hits(&[k_v1]), Some(v1));
        let arr = SpanField::Attr {
            scope: AttrScope::Span,
            key: "arr".into(),
        };
        assert_eq!(
            hits(&[cond(arr, FilterOp::Exists, FilterValue::Bool(true))]),
            None
        );
        // Outside every trace's time range: nothing.
        let search = TraceSearch {
            start_ns: 5_000,
            end_ns: 6_000,
            filter: &[],
        };
        assert!((0..block.row_groups()).all(|rg| block
            .index_hits(rg, &search)
            .unwrap()
            .is_some_and(|b| b.0.iter().all(|w| *w == 0))));
    }

    /// A trace's spans, each with its resource and scope number.
    type NumberedTrace = (TraceId, Vec<(u32, u32, Span)>);

    /// Spans with every kind of field a body holds (nested values, events, links, external
    /// parents, trace state, dropped counts, each status), in a few traces.
    fn varied_traces() -> Vec<NumberedTrace> {
        use crate::traces::{SpanEvent, SpanKind, SpanLink};
        (0..30u8)
            .map(|t| {
                let id = TraceId([t + 1; 16]);
                let spans = (0..(1 + t % 5))
                    .map(|i| {
                        let mut attributes = vec![
                            Attr::new("http.route", AttrValue::Str(format!("/r/{}", t % 4))),
                            Attr::new("code", AttrValue::Int(200 + i64::from(i))),
                            Attr::new("ratio", AttrValue::Double(0.5 * f64::from(i))),
                            Attr::new("ok", AttrValue::Bool(i % 2 == 0)),
                        ];
                        if t % 3 == 0 {
                            attributes.push(Attr::new(
                                "nested",
                                AttrValue::Array(vec![
                                    AttrValue::Int(1),
                                    AttrValue::KvList(vec![Attr::new(
                                        "x",
                                        AttrValue::Bytes(vec![1, 2, 3]),
                                    )]),
                                ]),
                            ));
                            attributes.push(Attr::new("code", AttrValue::Str("dup key".into())));
                        }
                        let span = Span {
                            trace_id: id,
                            span_id: [i + 1, t, 0, 0, 0, 0, 0, 9],
                            parent_span_id: match i {
                                0 if t % 4 == 1 => Some([0xee; 8]),
                                0 => None,
                                _ => Some([i, t, 0, 0, 0, 0, 0, 9]),
                            },
                            trace_state: if t % 2 == 0 {
                                "k=v".into()
                            } else {
                                String::new()
                            },
                            flags: u32::from(t % 3),
                            name: format!("op{}", i % 3),
                            kind: SpanKind::from_i32(i32::from(i % 6)),
                            start_unix_nano: 1_000_000 + u64::from(t) * 1000 + u64::from(5 - i),
                            end_unix_nano: 2_000_000 + u64::from(i),
                            attributes,
                            dropped_attributes_count: u32::from(i),
                            events: if i == 1 {
                                vec![SpanEvent {
                                    time_unix_nano: 1_500_000,
                                    name: "exception".into(),
                                    attributes: vec![Attr::new(
                                        "exception.type",
                                        AttrValue::Str("E".into()),
                                    )],
                                    dropped_attributes_count: 1,
                                }]
                            } else {
                                Vec::new()
                            },
                            dropped_events_count: u32::from(t % 2),
                            links: if t % 5 == 2 {
                                vec![SpanLink {
                                    trace_id: TraceId([7; 16]),
                                    span_id: [8; 8],
                                    trace_state: "l=1".into(),
                                    attributes: vec![Attr::new("k", AttrValue::Int(3))],
                                    dropped_attributes_count: 2,
                                    flags: 1,
                                }]
                            } else {
                                Vec::new()
                            },
                            dropped_links_count: 0,
                            status_code: StatusCode::from_i32(i32::from(t % 3)),
                            status_message: if t % 3 == 2 {
                                "boom".into()
                            } else {
                                String::new()
                            },
                        };
                        (u32::from(t % 2), u32::from(i % 2), span)
                    })
                    .collect();
                (id, spans)
            })
            .collect()
    }

    /// A head trace buffer: `uvarint resource`, `uvarint scope`, body length, body.
    fn head_buf(spans: &[(u32, u32, Span)]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut body = Vec::new();
        for (r, s, span) in spans {
            body.clear();
            codec::put_span_body(&mut body, span);
            write_uvarint(&mut buf, u64::from(*r));
            write_uvarint(&mut buf, u64::from(*s));
            put_bytes(&mut buf, &body);
        }
        buf
    }

    /// Writing head traces straight from their encoded buffers gives the very same block as
    /// writing the decoded spans (duplicate span ids dropped, first wins), and it reads back
    /// as the spans sorted by start.
    #[test]
    fn encoded_head_traces_write_the_same_block_as_decoded_spans() {
        let opts = TraceStoreOptions {
            row_group_spans: 20,
            ..TraceStoreOptions::default()
        };
        let resources: Vec<Arc<Resource>> = (0..2)
            .map(|i| {
                Arc::new(Resource {
                    attributes: vec![Attr::new("service.name", AttrValue::Str(format!("s{i}")))],
                    ..Resource::default()
                })
            })
            .collect();
        let scopes: Vec<Arc<Scope>> = (0..2)
            .map(|i| {
                Arc::new(Scope {
                    name: format!("lib{i}"),
                    ..Scope::default()
                })
            })
            .collect();
        let traces = varied_traces();
        let mut encoded = BlockWriter::new(Vec::new(), &opts).unwrap();
        let mut decoded = BlockWriter::new(Vec::new(), &opts).unwrap();
        for (id, spans) in &traces {
            // Every span twice in the head buffer (as after a WAL replayed twice), the copy
            // with another name: the first copy must win.
            let mut doubled = spans.clone();
            for (r, s, span) in spans {
                let mut copy = span.clone();
                copy.name = "replayed".into();
                doubled.push((*r, *s, copy));
            }
            assert!(encoded
                .add_encoded_trace(*id, &head_buf(&doubled), &resources, &scopes)
                .unwrap());
            let part: Part = spans
                .iter()
                .map(|(r, s, span)| {
                    (
                        resources[*r as usize].clone(),
                        scopes[*s as usize].clone(),
                        span.clone(),
                    )
                })
                .collect();
            decoded.add_trace(*id, part).unwrap();
        }
        let a = encoded.finish(3, &[]).unwrap();
        let b = decoded.finish(3, &[]).unwrap();
        assert!(a == b, "blocks differ");
        let block = Block::from_bytes(a, 3).unwrap();
        assert!(block.row_groups() > 2);
        let mut got = Vec::new();
        for rg in 0..block.row_groups() {
            got.extend(block.decode_row_group(rg).unwrap());
        }
        assert_eq!(got.len(), traces.len());
        for ((id, part), (want_id, want)) in got.iter().zip(&traces) {
            assert_eq!(id, want_id);
            let mut want: Vec<(u32, u32, Span)> = want.clone();
            want.sort_by_key(|(_, _, s)| (s.start_unix_nano, s.span_id));
            assert_eq!(part.len(), want.len());
            for ((res, scope, span), (r, s, w)) in part.iter().zip(&want) {
                assert_eq!(span, w);
                assert_eq!(**res, *resources[*r as usize]);
                assert_eq!(**scope, *scopes[*s as usize]);
            }
        }
        // One trace read alone (through the row group directory) is the same.
        let (id, want) = &traces[17];
        let part = block.trace_part(id, None).unwrap().unwrap();
        assert_eq!(part.len(), want.len());
        assert!(block
            .trace_part(&TraceId([0xff; 16]), None)
            .unwrap()
            .is_none());
    }

    /// A malformed head buffer is refused whole, and the writer goes on with the next trace.
    #[test]
    fn malformed_encoded_trace_is_skipped() {
        let opts = TraceStoreOptions::default();
        let resources = vec![Arc::new(Resource::default())];
        let scopes = vec![Arc::new(Scope::default())];
        let traces = varied_traces();
        let mut w = BlockWriter::new(Vec::new(), &opts).unwrap();
        let good = head_buf(&traces[3].1);
        let mut truncated = good.clone();
        truncated.pop();
        let mut bad_resource = Vec::new();
        write_uvarint(&mut bad_resource, 5);
        bad_resource.extend_from_slice(&good[1..]);
        let mut body = Vec::new();
        codec::put_span_body(&mut body, &traces[3].1[0].2);
        let mut bad_body = vec![0, 0];
        body[8] = 9; // parent tag neither 0 nor 1
        put_bytes(&mut bad_body, &body);
        for (i, buf) in [&truncated, &bad_resource, &bad_body]
            .into_iter()
            .enumerate()
        {
            let id = TraceId([i as u8 + 1; 16]);
            assert!(!w.add_encoded_trace(id, buf, &resources, &scopes).unwrap());
        }
        let id = TraceId([9; 16]);
        // `varied_traces` uses resource and scope 0 and 1: map all to 0 here.
        let buf = head_buf(
            &traces[3]
                .1
                .iter()
                .map(|(_, _, s)| (0, 0, s.clone()))
                .collect::<Vec<_>>(),
        );
        assert!(w.add_encoded_trace(id, &buf, &resources, &scopes).unwrap());
        let block = Block::from_bytes(w.finish(1, &[]).unwrap(), 1).unwrap();
        assert_eq!(block.traces, 1);
        let part = block.trace_part(&id, None).unwrap().unwrap();
        assert_eq!(part.len(), traces[3].1.len());
    }

    #[test]
    fn bloom_has_every_id_and_few_false_positives() {
        let id = |i: u64| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            b[8..].copy_from_slice(&(i ^ 0xabcdef).to_le_bytes());
            TraceId(b)
        };
        let ids: Vec<TraceId> = (0..5000).map(id).collect();
        let bloom = bloom_build(&ids);
        let bits = bloom.len() as u64 * 64;
        let has = |t: &TraceId| {
            bloom_probes(t, bits).all(|p| bloom[(p / 64) as usize] & (1 << (p % 64)) != 0)
        };
        assert!(ids.iter().all(has));
        let fp = (5000..25_000).map(id).filter(|t| has(t)).count();
        assert!(fp < 20_000 / 50, "{fp} false positives of 20000");
    }
}
