//! Protobuf wire-format primitives over a borrowed buffer: varints, tags, fixed-width and
//! length-delimited fields, and skipping of unknown fields by wire type.
//!
//! Every read is bounds-checked: malformed or truncated input gives a [`WireError`], never a
//! panic, and nothing is copied.

use std::fmt;

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const START_GROUP: u8 = 3;
pub const END_GROUP: u8 = 4;
pub const FIXED32: u8 = 5;

/// How deeply unknown groups may nest before the input is refused.
const MAX_GROUP_DEPTH: u32 = 100;

/// Why a buffer is not a valid protobuf message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    VarintOverflow,
    InvalidKey,
    FieldNumberZero,
    InvalidWireType(u8),
    /// A known field arrived with another wire type than its declaration allows.
    UnexpectedWireType {
        field: u32,
        got: u8,
    },
    UnmatchedEndGroup,
    GroupTooDeep,
    InvalidUtf8String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("message is truncated"),
            WireError::VarintOverflow => f.write_str("invalid varint"),
            WireError::InvalidKey => f.write_str("invalid field key"),
            WireError::FieldNumberZero => f.write_str("invalid field number 0"),
            WireError::InvalidWireType(w) => write!(f, "invalid wire type {w}"),
            WireError::UnexpectedWireType { field, got } => {
                write!(f, "field {field} has unexpected wire type {got}")
            }
            WireError::UnmatchedEndGroup => f.write_str("unmatched end of group"),
            WireError::GroupTooDeep => f.write_str("groups nested too deeply"),
            WireError::InvalidUtf8String => f.write_str("string field is not valid UTF-8"),
        }
    }
}

impl std::error::Error for WireError {}

/// A cursor over one message's bytes.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        // Tags, lengths and most values in remote write fit one or two bytes.
        match *self.buf {
            [b0, ref rest @ ..] if b0 < 0x80 => {
                self.buf = rest;
                Ok(u64::from(b0))
            }
            [b0, b1, ref rest @ ..] if b1 < 0x80 => {
                self.buf = rest;
                Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7)
            }
            _ => self.varint_slow(),
        }
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut out = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(WireError::VarintOverflow);
                }
                self.buf = self.buf.get(i + 1..).unwrap_or_default();
                return Ok(out);
            }
        }
        Err(if self.buf.len() >= 10 {
            WireError::VarintOverflow
        } else {
            WireError::Truncated
        })
    }

    /// The next field's number and wire type.
    #[inline]
    pub fn tag(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| WireError::InvalidKey)?;
        let wire_type = (key & 7) as u8;
        let field = key >> 3;
        if field == 0 {
            return Err(WireError::FieldNumberZero);
        }
        Ok((field, wire_type))
    }

    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        let (bytes, rest) = self
            .buf
            .split_first_chunk::<8>()
            .ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(u64::from_le_bytes(*bytes))
    }

    #[inline]
    fn fixed32(&mut self) -> Result<u32, WireError> {
        let (bytes, rest) = self
            .buf
            .split_first_chunk::<4>()
            .ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(u32::from_le_bytes(*bytes))
    }

    /// A length-delimited field's bytes.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        let (bytes, rest) = self.buf.split_at_checked(len).ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(bytes)
    }

    /// A length-delimited field's position inside `whole`, the buffer this reader started on.
    #[inline]
    pub fn bytes_range(&mut self, whole: &[u8]) -> Result<(usize, usize), WireError> {
        let len = self.bytes()?.len();
        let end = whole.len().saturating_sub(self.buf.len());
        Ok((end.saturating_sub(len), end))
    }

    /// Bytes left to read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// A length-delimited field that must hold UTF-8 (proto3 `string`).
    pub fn string(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::InvalidUtf8String)
    }

    /// Skips the value of a field this decoder does not know.
    pub fn skip(&mut self, field: u32, wire_type: u8) -> Result<(), WireError> {
        self.skip_nested(field, wire_type, 0)
    }

    fn skip_nested(&mut self, field: u32, wire_type: u8, depth: u32) -> Result<(), WireError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.fixed32().map(drop),
            START_GROUP => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(WireError::GroupTooDeep);
                }
                loop {
                    let (inner, wt) = self.tag()?;
                    if wt == END_GROUP {
                        return if inner == field {
                            Ok(())
                        } else {
                            Err(WireError::UnmatchedEndGroup)
                        };
                    }
                    self.skip_nested(inner, wt, depth + 1)?;
                }
            }
            END_GROUP => Err(WireError::UnmatchedEndGroup),
            other => Err(WireError::InvalidWireType(other)),
        }
    }
}

/// The error for a known field that arrived with the wrong wire type.
pub fn unexpected(field: u32, got: u8) -> WireError {
    WireError::UnexpectedWireType { field, got }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_overflow_is_refused() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            let mut x = v;
            while x >= 0x80 {
                buf.push(x as u8 | 0x80);
                x >>= 7;
            }
            buf.push(x as u8);
            assert_eq!(Reader::new(&buf).varint(), Ok(v));
            assert!(Reader::new(&buf[..buf.len() - 1]).varint().is_err());
        }
        assert_eq!(
            Reader::new(&[0xff; 10]).varint(),
            Err(WireError::VarintOverflow)
        );
        assert_eq!(Reader::new(&[]).varint(), Err(WireError::Truncated));
    }

    #[test]
    fn unknown_fields_are_skipped_by_wire_type() {
        // field 5 varint, field 6 fixed64, field 7 bytes, field 8 fixed32,
        // field 9 group holding field 1 varint, then field 1 varint 42.
        let buf = [
            0x28, 0x96, 0x01, 0x31, 1, 2, 3, 4, 5, 6, 7, 8, 0x3a, 2, b'h', b'i', 0x45, 1, 2, 3, 4,
            0x4b, 0x08, 7, 0x4c, 0x08, 42,
        ];
        let mut r = Reader::new(&buf);
        loop {
            let (field, wt) = r.tag().unwrap();
            if field == 1 {
                assert_eq!(r.varint(), Ok(42));
                break;
            }
            r.skip(field, wt).unwrap();
        }
        assert!(r.is_empty());
        // An end-group of another field, and wire types 6 and 7, are refused.
        let mut r = Reader::new(&[0x4b, 0x54]);
        let (f, wt) = r.tag().unwrap();
        assert_eq!(r.skip(f, wt), Err(WireError::UnmatchedEndGroup));
        let mut r = Reader::new(&[0x0e]);
        let (f, wt) = r.tag().unwrap();
        assert_eq!(r.skip(f, wt), Err(WireError::InvalidWireType(6)));
    }

    #[test]
    fn deep_groups_are_refused_without_overflowing_the_stack() {
        let buf = vec![0x0b; 10_000];
        let mut r = Reader::new(&buf);
        let (f, wt) = r.tag().unwrap();
        assert_eq!(r.skip(f, wt), Err(WireError::GroupTooDeep));
    }
}
