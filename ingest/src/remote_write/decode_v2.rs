//! Zero-copy decoding of remote write 2.0 (`io.prometheus.write.v2.Request`).
//!
//! The request is read in one pass over its top level, which borrows the symbol table and each
//! `TimeSeries` message from the decompressed buffer (senders put the symbols first, but the
//! wire does not promise it). Each series is then decoded once: its label refs are resolved to
//! symbols (already-checked UTF-8 strings, so label pairs are borrowed without copying or
//! re-validation) and checked like a 1.0 series; samples, native histograms (the 1.0 histogram
//! decoder and validation, which skip 2.0's `start_timestamp`) and metadata land in the same
//! per-thread buffers and the same [`Decoded`] as 1.0.
//!
//! Refused as a whole (400, nothing stored): malformed protobuf, a symbol that is not UTF-8, a
//! symbol table that does not start with `""`. Refused per series (its samples counted, the
//! rest stored): an odd number of label refs or a ref outside the symbol table
//! (`invalid_symbol_ref`), and every 1.0 label and histogram rule. Exemplars are decoded (so a
//! malformed one refuses the request) with their label refs resolved (`exemplars.rs`); one with
//! bad refs is dropped on its own and counted as invalid, without failing the request.
//! Start timestamps are accepted and ignored. Metadata of a valid series is recorded under its
//! metric family name (the metric name, without `_bucket`/`_count`/`_sum`/`_gcount`/`_gsum`
//! for histogram and summary types).

use std::fmt;

use sextant_storage::labels::SeriesHasher;
use sextant_storage::METRIC_NAME;

use super::decode::{decode_parts, sample, Buffers, Decoded, MetadataRef, Parts, Scratch};
use super::exemplars::exemplar_v2;
use super::histogram;
use super::validate::{LabelCheck, RemoteWriteLimits};
use super::wire::{unexpected, Reader, WireError, LEN, VARINT};

/// Why a 2.0 request was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    Wire(WireError),
    /// The symbol table is empty (while series refer to it) or does not start with `""`.
    FirstSymbol(Option<String>),
}

impl From<WireError> for RequestError {
    fn from(e: WireError) -> Self {
        RequestError::Wire(e)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Wire(e) => e.fmt(f),
            RequestError::FirstSymbol(None) => {
                f.write_str("the symbols table is empty; it must start with the empty string")
            }
            RequestError::FirstSymbol(Some(s)) => write!(
                f,
                "symbols[0] must be the empty string, got {:?}",
                s.chars().take(64).collect::<String>()
            ),
        }
    }
}

impl std::error::Error for RequestError {}

/// Why one 2.0 series was refused before its labels were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefError {
    OddLabelRefs(usize),
    /// Which ref (`label`, `help_ref`, `unit_ref`), its value, and the symbol table's length.
    OutOfRange {
        what: &'static str,
        index: u32,
        symbols: usize,
    },
}

impl RefError {
    pub fn reason(&self) -> &'static str {
        "invalid_symbol_ref"
    }
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefError::OddLabelRefs(n) => write!(
                f,
                "series has {n} label refs, an odd number: labels_refs must be name/value pairs"
            ),
            RefError::OutOfRange {
                what,
                index,
                symbols,
            } => write!(
                f,
                "{what} {index} is out of range: the request has {symbols} symbols"
            ),
        }
    }
}

/// The family name metadata is recorded under.
pub fn metadata_family(name: &str, metric_type: i32) -> &str {
    const SUFFIXES: [&str; 5] = ["_bucket", "_count", "_sum", "_gcount", "_gsum"];
    if matches!(metric_type, 3..=5) {
        if let Some(family) = SUFFIXES
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| !f.is_empty())
        {
            return family;
        }
    }
    name
}

/// Decodes `raw` (an uncompressed 2.0 `Request`) and hands the result to `f`.
pub fn decode_v2_with<R>(
    raw: &[u8],
    limits: &RemoteWriteLimits,
    f: impl FnOnce(&mut Decoded<'_>) -> R,
) -> Result<R, RequestError> {
    let mut scratch = Scratch::take();
    let result = decode_v2_in(&mut scratch.bufs, raw, limits, f);
    scratch.put();
    result
}

pub(crate) fn decode_v2_in<R>(
    bufs: &mut Buffers,
    raw: &[u8],
    limits: &RemoteWriteLimits,
    f: impl FnOnce(&mut Decoded<'_>) -> R,
) -> Result<R, RequestError> {
    decode_parts(bufs, raw, |raw, parts| walk(raw, limits, parts), f)
}

fn walk<'r>(
    raw: &'r [u8],
    limits: &RemoteWriteLimits,
    p: &mut Parts<'r>,
) -> Result<(), RequestError> {
    let mut r = Reader::new(raw);
    while !r.is_empty() {
        match r.tag()? {
            (4, LEN) => p.symbols.push(r.string()?),
            (5, LEN) => p.bodies.push(r.bytes()?),
            (f @ (4 | 5), wt) => return Err(unexpected(f, wt).into()),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    match p.symbols.first() {
        Some(s) if !s.is_empty() => return Err(RequestError::FirstSymbol(Some(s.to_string()))),
        None if !p.bodies.is_empty() => return Err(RequestError::FirstSymbol(None)),
        _ => {}
    }
    let bodies = std::mem::take(&mut p.bodies);
    let result = bodies.iter().try_for_each(|body| series(body, limits, p));
    p.bodies = bodies;
    Ok(result?)
}

/// A `Metadata` message: type and symbol refs.
#[derive(Clone, Copy, Default)]
struct RawMetadata {
    metric_type: i32,
    help_ref: u32,
    unit_ref: u32,
}

/// One `TimeSeries`: decoded whole, then its refs resolved and its labels checked.
fn series<'r>(
    buf: &'r [u8],
    limits: &RemoteWriteLimits,
    p: &mut Parts<'r>,
) -> Result<(), WireError> {
    let samples_start = p.samples.len();
    let hists_start = p.histograms.len();
    let exemplars_start = p.exemplars.len();
    let mut meta = RawMetadata::default();
    p.refs.clear();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, wt) => uint32s(&mut r, wt, 1, &mut p.refs)?,
            (2, LEN) => p.samples.push(sample(r.bytes()?)?),
            (3, LEN) => match histogram::decode(r.bytes()?)?.into_sample() {
                Ok(h) => p.histograms.push(h),
                Err(e) => p.report.reject_histogram(&e),
            },
            (4, LEN) => match exemplar_v2(r.bytes()?, &p.symbols)? {
                Some(e) => p.exemplars.push(e),
                None => p.invalid_exemplars += 1,
            },
            (5, LEN) => metadata(r.bytes()?, &mut meta)?,
            (f @ 2..=5, wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    let n_samples = p.samples.len() - samples_start + p.histograms.len() - hists_start;
    let n_exemplars = p.exemplars.len() - exemplars_start;
    let pairs_start = p.pairs.len();
    let refused = match resolve(limits, p, meta) {
        Ok((hash, metadata)) => {
            if let Some(m) = metadata {
                p.metadata.push(m);
            }
            if n_samples + n_exemplars > 0 {
                p.push_ends(hash);
            } else {
                p.pairs.truncate(pairs_start);
            }
            None
        }
        Err(refusal) => Some(refusal),
    };
    if let Some((reason, message)) = refused {
        p.pairs.truncate(pairs_start);
        p.samples.truncate(samples_start);
        p.histograms.truncate(hists_start);
        p.exemplars.truncate(exemplars_start);
        p.invalid_exemplars += n_exemplars;
        p.report.add(reason, n_samples);
        if p.report.first_invalid.is_none() {
            p.report.first_invalid = Some(message);
        }
    }
    Ok(())
}

/// Resolves the current series' refs, pushes its valid label pairs and returns their hash and
/// its metadata; or the reason and message it is refused with.
fn resolve<'r>(
    limits: &RemoteWriteLimits,
    p: &mut Parts<'r>,
    meta: RawMetadata,
) -> Result<(u64, Option<MetadataRef<'r>>), (&'static str, String)> {
    let refused = |e: RefError| (e.reason(), e.to_string());
    let symbols = &p.symbols;
    let symbol = |what: &'static str, index: u32| {
        symbols
            .get(index as usize)
            .copied()
            .ok_or(RefError::OutOfRange {
                what,
                index,
                symbols: symbols.len(),
            })
    };
    if !p.refs.len().is_multiple_of(2) {
        return Err(refused(RefError::OddLabelRefs(p.refs.len())));
    }
    let mut check = LabelCheck::new(limits);
    let mut hash = SeriesHasher::default();
    let mut name = "";
    for pair in p.refs.chunks_exact(2) {
        let (n, v) = match pair {
            &[n, v] => (n, v),
            _ => continue,
        };
        let n = symbol("label ref", n).map_err(refused)?;
        let v = symbol("label ref", v).map_err(refused)?;
        if let Some(pair) = check.push(n.as_bytes(), v.as_bytes(), Some((n, v))) {
            if pair.0 == METRIC_NAME {
                name = pair.1;
            }
            hash.add(pair.0);
            hash.add(pair.1);
            p.pairs.push(pair);
        }
    }
    let help = symbol("help_ref", meta.help_ref).map_err(refused)?;
    let unit = symbol("unit_ref", meta.unit_ref).map_err(refused)?;
    check.finish().map_err(|e| (e.reason(), e.to_string()))?;
    let metadata =
        (meta.metric_type != 0 || !help.is_empty() || !unit.is_empty()).then(|| MetadataRef {
            metric_type: meta.metric_type,
            family: metadata_family(name, meta.metric_type),
            help,
            unit,
        });
    Ok((hash.finish(), metadata))
}

/// A repeated `uint32`, packed or not (truncated to 32 bits, as protobuf decoders do).
fn uint32s(r: &mut Reader<'_>, wt: u8, field: u32, out: &mut Vec<u32>) -> Result<(), WireError> {
    match wt {
        VARINT => out.push(r.varint()? as u32),
        LEN => {
            let mut packed = Reader::new(r.bytes()?);
            while !packed.is_empty() {
                out.push(packed.varint()? as u32);
            }
        }
        _ => return Err(unexpected(field, wt)),
    }
    Ok(())
}

/// A `Metadata` message, merged into `m` (a repeated occurrence overrides the fields it sets).
fn metadata(buf: &[u8], m: &mut RawMetadata) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, VARINT) => m.metric_type = r.varint()? as i32,
            (3, VARINT) => m.help_ref = r.varint()? as u32,
            (4, VARINT) => m.unit_ref = r.varint()? as u32,
            (f @ (1 | 3 | 4), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(())
}
