//! LEB128 varints (and zigzag for signed values), shared by the WAL and block formats.

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    (u >> 1) as i64 ^ -((u & 1) as i64)
}

pub(crate) fn write_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`write_uvarint`] writes for `v`.
pub(crate) fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
pub(crate) fn read_uvarint(buf: &mut &[u8]) -> Option<u64> {
    let mut out = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        out |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(out);
        }
    }
    None
}

pub(crate) fn write_varint(out: &mut Vec<u8>, v: i64) {
    write_uvarint(out, zigzag(v));
}

pub(crate) fn read_varint(buf: &mut &[u8]) -> Option<i64> {
    read_uvarint(buf).map(unzigzag)
}
