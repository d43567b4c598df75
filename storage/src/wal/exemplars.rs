//! WAL record 4, exemplars (`storage/FORMAT.md`, "WAL segments and checkpoints").

use super::{encode_label_pairs, read_str};
use crate::exemplar::Exemplar;
use crate::varint::{read_uvarint, read_varint, write_uvarint, write_varint};
use crate::Labels;

/// Payload after the record type: uvarint count, varint base timestamp, then per exemplar
/// uvarint series id, varint (t − base), f64 value bits, and its labels as in a series record.
pub(super) fn encode_exemplars(exemplars: &[(u32, &Exemplar)], out: &mut Vec<u8>) {
    write_uvarint(out, exemplars.len() as u64);
    let base_t = exemplars.first().map_or(0, |(_, e)| e.t);
    write_varint(out, base_t);
    for (id, e) in exemplars {
        write_uvarint(out, u64::from(*id));
        write_varint(out, e.t.wrapping_sub(base_t));
        out.extend_from_slice(&e.value.to_le_bytes());
        encode_label_pairs(&e.labels, out);
    }
}

/// The inverse of [`encode_exemplars`]; `None` for a malformed payload or trailing bytes.
pub(super) fn decode_exemplars(mut rest: &[u8]) -> Option<Vec<(u32, Exemplar)>> {
    let n = read_uvarint(&mut rest)?;
    let base_t = read_varint(&mut rest)?;
    let mut out = Vec::with_capacity(n.min(rest.len() as u64) as usize);
    for _ in 0..n {
        let id = u32::try_from(read_uvarint(&mut rest)?).ok()?;
        let t = base_t.checked_add(read_varint(&mut rest)?)?;
        let (v, tail) = rest.split_first_chunk::<8>()?;
        rest = tail;
        let n_labels = read_uvarint(&mut rest)?;
        let mut pairs = Vec::with_capacity(n_labels.min(64) as usize);
        for _ in 0..n_labels {
            let name = read_str(&mut rest)?;
            let value = read_str(&mut rest)?;
            pairs.push((name, value));
        }
        out.push((
            id,
            Exemplar {
                labels: Labels::from_pairs(pairs),
                value: f64::from_le_bytes(*v),
                t,
            },
        ));
    }
    rest.is_empty().then_some(out)
}
