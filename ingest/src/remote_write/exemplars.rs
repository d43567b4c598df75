//! Exemplars of remote write 1.0 (`prometheus.Exemplar`: labels, value, timestamp) and 2.0
//! (`io.prometheus.write.v2.Exemplar`: label refs into the symbol table, value, timestamp).
//!
//! A malformed message fails the request like any other protobuf error; an exemplar whose
//! labels are not valid UTF-8 or (2.0) refer outside the symbol table is dropped on its own and
//! counted as invalid. Exemplars never make a request fail otherwise: storage counts duplicates
//! and refusals (out of order, labels over 128 characters, storage disabled), as Prometheus does.

use sextant_storage::{Exemplar, Labels};

use super::wire::{unexpected, Reader, WireError, FIXED64, LEN, VARINT};

/// Decodes a 1.0 `Exemplar`; `Ok(None)` when a label is not valid UTF-8.
pub(super) fn exemplar_v1(buf: &[u8]) -> Result<Option<Exemplar>, WireError> {
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    let (mut value, mut t) = (0.0, 0);
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, LEN) => pairs.push(label(r.bytes()?)?),
            (2, FIXED64) => value = f64::from_bits(r.fixed64()?),
            (3, VARINT) => t = r.varint()? as i64,
            (f @ 1..=3, wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    let mut labels = Vec::with_capacity(pairs.len());
    for (n, v) in pairs {
        match (std::str::from_utf8(n), std::str::from_utf8(v)) {
            (Ok(n), Ok(v)) => labels.push((n, v)),
            _ => return Ok(None),
        }
    }
    Ok(Some(Exemplar {
        labels: Labels::from_pairs(labels),
        value,
        t,
    }))
}

/// One `Label` message: name and value bytes.
fn label(buf: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, LEN) => name = r.bytes()?,
            (2, LEN) => value = r.bytes()?,
            (f @ (1 | 2), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok((name, value))
}

/// Decodes a 2.0 `Exemplar` against the request's symbols; `Ok(None)` when its label refs are
/// odd in number or point outside the table.
pub(super) fn exemplar_v2(buf: &[u8], symbols: &[&str]) -> Result<Option<Exemplar>, WireError> {
    let mut refs: Vec<u32> = Vec::new();
    let (mut value, mut t) = (0.0, 0);
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, VARINT) => refs.push(r.varint()? as u32),
            (1, LEN) => {
                let mut packed = Reader::new(r.bytes()?);
                while !packed.is_empty() {
                    refs.push(packed.varint()? as u32);
                }
            }
            (2, FIXED64) => value = f64::from_bits(r.fixed64()?),
            (3, VARINT) => t = r.varint()? as i64,
            (f @ 1..=3, wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    if !refs.len().is_multiple_of(2) {
        return Ok(None);
    }
    let mut labels = Vec::with_capacity(refs.len() / 2);
    for pair in refs.chunks_exact(2) {
        let name = symbols.get(pair[0] as usize);
        let value = symbols.get(pair[1] as usize);
        match (name, value) {
            (Some(n), Some(v)) => labels.push((*n, *v)),
            _ => return Ok(None),
        }
    }
    Ok(Some(Exemplar {
        labels: Labels::from_pairs(labels),
        value,
        t,
    }))
}
