//! Decodes a protobuf `ExportMetricsServiceRequest` body straight into a [`RequestView`]
//! borrowing from the body: one pass, strings UTF-8-checked in place, packed and unpacked
//! repeated numbers both accepted, unknown fields skipped — what prost accepts, without its
//! per-string and per-message allocations. Malformed input is an error, never a panic.
//!
//! Duplicate fields follow protobuf's merge rules where the conversion can tell: scalars keep
//! the last value, repeated fields and repeated occurrences of a message concatenate, a
//! `Metric`'s data oneof keeps the last variant (merging when the same variant repeats).

use std::borrow::Cow;
use std::fmt;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use prost::Message;

use super::view::{
    Attr, AttrValue, BucketsView, DataView, ExemplarView, ExpPoint, HistogramPoint, MetricView,
    NumberPoint, RequestView, ResourceView, SummaryPoint,
};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// How deeply unknown groups may nest.
const MAX_GROUP_DEPTH: u32 = 64;

/// Why a body is not a valid `ExportMetricsServiceRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    BadVarint,
    BadKey,
    BadWireType { field: u32, wire_type: u8 },
    BadGroup,
    BadUtf8,
    BadAnyValue(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("message is truncated"),
            DecodeError::BadVarint => f.write_str("invalid varint"),
            DecodeError::BadKey => f.write_str("invalid field key"),
            DecodeError::BadWireType { field, wire_type } => {
                write!(f, "field {field} has unexpected wire type {wire_type}")
            }
            DecodeError::BadGroup => f.write_str("invalid or too deeply nested group"),
            DecodeError::BadUtf8 => f.write_str("string field is not valid UTF-8"),
            DecodeError::BadAnyValue(e) => write!(f, "invalid AnyValue: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

type Result<T> = std::result::Result<T, DecodeError>;

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut out = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(DecodeError::BadVarint);
                }
                self.buf = &self.buf[i + 1..];
                return Ok(out);
            }
        }
        Err(if self.buf.len() < 10 {
            DecodeError::Truncated
        } else {
            DecodeError::BadVarint
        })
    }

    /// The next field number and wire type.
    fn key(&mut self) -> Result<(u32, u8)> {
        let k = self.varint()?;
        let field = u32::try_from(k >> 3).map_err(|_| DecodeError::BadKey)?;
        if field == 0 {
            return Err(DecodeError::BadKey);
        }
        Ok((field, (k & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn fixed64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
        self.take(n)
    }

    fn string(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::BadUtf8)
    }

    /// Skips a field of an unknown number.
    fn skip(&mut self, field: u32, wire_type: u8, depth: u32) -> Result<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(DecodeError::BadGroup);
                }
                loop {
                    let (f, w) = self.key()?;
                    if w == END_GROUP {
                        return if f == field {
                            Ok(())
                        } else {
                            Err(DecodeError::BadGroup)
                        };
                    }
                    self.skip(f, w, depth + 1)?;
                }
            }
            END_GROUP => Err(DecodeError::BadGroup),
            w => Err(DecodeError::BadWireType {
                field,
                wire_type: w,
            }),
        }
    }
}

/// Checks that a known field has the wire type its declaration needs.
fn expect(field: u32, got: u8, want: u8) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(DecodeError::BadWireType {
            field,
            wire_type: got,
        })
    }
}

/// Iterates the fields of a message: `f(reader, field, wire_type)` returns `Ok(true)` when it
/// consumed the field, `Ok(false)` to have it skipped.
fn fields<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(&mut Reader<'a>, u32, u8) -> Result<bool>,
) -> Result<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        if !f(&mut r, field, wire_type)? {
            r.skip(field, wire_type, 0)?;
        }
    }
    Ok(())
}

/// Decodes a protobuf `ExportMetricsServiceRequest`.
pub fn decode(body: &[u8]) -> Result<RequestView<'_>> {
    let mut req = RequestView::default();
    fields(body, |r, field, wt| {
        if field != 1 {
            return Ok(false);
        }
        expect(field, wt, LEN)?;
        req.resources.push(resource_metrics(r.bytes()?)?);
        Ok(true)
    })?;
    Ok(req)
}

fn resource_metrics(buf: &[u8]) -> Result<ResourceView<'_>> {
    let mut out = ResourceView::default();
    fields(buf, |r, field, wt| match field {
        1 => {
            expect(field, wt, LEN)?;
            fields(r.bytes()?, |r, field, wt| match field {
                1 => {
                    expect(field, wt, LEN)?;
                    out.attributes.push(key_value(r.bytes()?)?);
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            Ok(true)
        }
        2 => {
            expect(field, wt, LEN)?;
            // ScopeMetrics: only its metrics (field 2) matter.
            fields(r.bytes()?, |r, field, wt| match field {
                2 => {
                    expect(field, wt, LEN)?;
                    out.metrics.push(metric(r.bytes()?)?);
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(out)
}

fn key_value(buf: &[u8]) -> Result<Attr<'_>> {
    let mut out = Attr {
        key: "",
        value: AttrValue::Absent,
    };
    fields(buf, |r, field, wt| match field {
        1 => {
            expect(field, wt, LEN)?;
            out.key = r.string()?;
            Ok(true)
        }
        2 => {
            expect(field, wt, LEN)?;
            out.value = any_value(r.bytes()?)?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(out)
}

fn any_value(buf: &[u8]) -> Result<AttrValue<'_>> {
    let mut out = AttrValue::Absent;
    let mut complex_last = false;
    fields(buf, |r, field, wt| {
        complex_last = false;
        match field {
            1 => {
                expect(field, wt, LEN)?;
                out = AttrValue::Str(r.string()?);
            }
            2 => {
                expect(field, wt, VARINT)?;
                out = AttrValue::Bool(r.varint()? != 0);
            }
            3 => {
                expect(field, wt, VARINT)?;
                out = AttrValue::Int(r.varint()? as i64);
            }
            4 => {
                expect(field, wt, FIXED64)?;
                out = AttrValue::Double(f64::from_bits(r.fixed64()?));
            }
            5 | 6 => {
                expect(field, wt, LEN)?;
                r.bytes()?;
                complex_last = true;
            }
            7 => {
                expect(field, wt, LEN)?;
                out = AttrValue::Bytes(r.bytes()?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if complex_last {
        // Arrays and key-value lists are rare: prost decodes the value (the oneof's last
        // member wins there as here).
        let v = AnyValue::decode(buf).map_err(|e| DecodeError::BadAnyValue(e.to_string()))?;
        out = match v.value {
            Some(v @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => {
                AttrValue::Complex(Cow::Owned(v))
            }
            _ => AttrValue::Absent,
        };
    }
    Ok(out)
}

fn metric(buf: &[u8]) -> Result<MetricView<'_>> {
    let mut out = MetricView::default();
    fields(buf, |r, field, wt| {
        match field {
            1 => {
                expect(field, wt, LEN)?;
                out.name = r.string()?;
            }
            2 => {
                expect(field, wt, LEN)?;
                out.description = r.string()?;
            }
            3 => {
                expect(field, wt, LEN)?;
                out.unit = r.string()?;
            }
            5 | 7 | 9 | 10 | 11 => {
                expect(field, wt, LEN)?;
                let data = data(field, r.bytes()?)?;
                out.data = Some(merge_data(out.data.take(), data));
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(out)
}

/// A repeated data member: the same variant merges (points append, set scalars win), another
/// variant replaces.
fn merge_data<'a>(prev: Option<DataView<'a>>, next: DataView<'a>) -> DataView<'a> {
    match (prev, next) {
        (Some(DataView::Gauge(mut a)), DataView::Gauge(b)) => {
            a.extend(b);
            DataView::Gauge(a)
        }
        (Some(DataView::Summary(mut a)), DataView::Summary(b)) => {
            a.extend(b);
            DataView::Summary(a)
        }
        (
            Some(DataView::Sum {
                points: mut a,
                temporality: ta,
                monotonic: ma,
            }),
            DataView::Sum {
                points: b,
                temporality: tb,
                monotonic: mb,
            },
        ) => {
            a.extend(b);
            DataView::Sum {
                points: a,
                temporality: if tb != 0 { tb } else { ta },
                monotonic: ma || mb,
            }
        }
        (
            Some(DataView::Histogram {
                points: mut a,
                temporality: ta,
            }),
            DataView::Histogram {
                points: b,
                temporality: tb,
            },
        ) => {
            a.extend(b);
            DataView::Histogram {
                points: a,
                temporality: if tb != 0 { tb } else { ta },
            }
        }
        (
            Some(DataView::Exponential {
                points: mut a,
                temporality: ta,
            }),
            DataView::Exponential {
                points: b,
                temporality: tb,
            },
        ) => {
            a.extend(b);
            DataView::Exponential {
                points: a,
                temporality: if tb != 0 { tb } else { ta },
            }
        }
        (_, next) => next,
    }
}

/// One of `Metric`'s data messages, by its field number.
fn data(which: u32, buf: &[u8]) -> Result<DataView<'_>> {
    let mut temporality = 0i32;
    let mut monotonic = false;
    let mut numbers = Vec::new();
    let mut hists = Vec::new();
    let mut exps = Vec::new();
    let mut summaries = Vec::new();
    fields(buf, |r, field, wt| {
        match (which, field) {
            (_, 1) => {
                expect(field, wt, LEN)?;
                let b = r.bytes()?;
                match which {
                    5 | 7 => numbers.push(number_point(b)?),
                    9 => hists.push(histogram_point(b)?),
                    10 => exps.push(exp_point(b)?),
                    _ => summaries.push(summary_point(b)?),
                }
            }
            (7 | 9 | 10, 2) => {
                expect(field, wt, VARINT)?;
                temporality = r.varint()? as i32;
            }
            (7, 3) => {
                expect(field, wt, VARINT)?;
                monotonic = r.varint()? != 0;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(match which {
        5 => DataView::Gauge(numbers),
        7 => DataView::Sum {
            points: numbers,
            temporality,
            monotonic,
        },
        9 => DataView::Histogram {
            points: hists,
            temporality,
        },
        10 => DataView::Exponential {
            points: exps,
            temporality,
        },
        _ => DataView::Summary(summaries),
    })
}

fn fixed(r: &mut Reader<'_>, field: u32, wt: u8) -> Result<u64> {
    expect(field, wt, FIXED64)?;
    r.fixed64()
}

fn flags(r: &mut Reader<'_>, field: u32, wt: u8) -> Result<u32> {
    expect(field, wt, VARINT)?;
    Ok(r.varint()? as u32)
}

fn double(r: &mut Reader<'_>, field: u32, wt: u8) -> Result<f64> {
    Ok(f64::from_bits(fixed(r, field, wt)?))
}

fn attr<'a>(r: &mut Reader<'a>, field: u32, wt: u8, out: &mut Vec<Attr<'a>>) -> Result<()> {
    expect(field, wt, LEN)?;
    out.push(key_value(r.bytes()?)?);
    Ok(())
}

fn number_point(buf: &[u8]) -> Result<NumberPoint<'_>> {
    let mut p = NumberPoint::default();
    fields(buf, |r, field, wt| {
        match field {
            7 => attr(r, field, wt, &mut p.attributes)?,
            2 => p.start_time_unix_nano = fixed(r, field, wt)?,
            3 => p.time_unix_nano = fixed(r, field, wt)?,
            4 => p.value = Some(double(r, field, wt)?),
            6 => p.value = Some(fixed(r, field, wt)? as i64 as f64),
            5 => {
                expect(field, wt, LEN)?;
                p.exemplars.push(exemplar(r.bytes()?)?);
            }
            8 => p.flags = flags(r, field, wt)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(p)
}

/// Appends a repeated fixed64 field, packed or not.
fn repeated_fixed64(r: &mut Reader<'_>, field: u32, wt: u8, out: &mut Vec<u64>) -> Result<()> {
    match wt {
        FIXED64 => out.push(r.fixed64()?),
        LEN => {
            let b = r.bytes()?;
            if b.len() % 8 != 0 {
                return Err(DecodeError::Truncated);
            }
            out.extend(b.chunks_exact(8).map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            }));
        }
        _ => {
            return Err(DecodeError::BadWireType {
                field,
                wire_type: wt,
            })
        }
    }
    Ok(())
}

/// Appends a repeated varint field, packed or not.
fn repeated_varint(r: &mut Reader<'_>, field: u32, wt: u8, out: &mut Vec<u64>) -> Result<()> {
    match wt {
        VARINT => out.push(r.varint()?),
        LEN => {
            let mut packed = Reader::new(r.bytes()?);
            while !packed.is_empty() {
                out.push(packed.varint()?);
            }
        }
        _ => {
            return Err(DecodeError::BadWireType {
                field,
                wire_type: wt,
            })
        }
    }
    Ok(())
}

fn histogram_point(buf: &[u8]) -> Result<HistogramPoint<'_>> {
    let mut p = HistogramPoint::default();
    let mut counts = Vec::new();
    let mut bounds = Vec::new();
    fields(buf, |r, field, wt| {
        match field {
            9 => attr(r, field, wt, &mut p.attributes)?,
            2 => p.start_time_unix_nano = fixed(r, field, wt)?,
            3 => p.time_unix_nano = fixed(r, field, wt)?,
            4 => p.count = fixed(r, field, wt)?,
            5 => p.sum = Some(double(r, field, wt)?),
            6 => repeated_fixed64(r, field, wt, &mut counts)?,
            7 => repeated_fixed64(r, field, wt, &mut bounds)?,
            8 => {
                expect(field, wt, LEN)?;
                p.exemplars.push(exemplar(r.bytes()?)?);
            }
            10 => p.flags = flags(r, field, wt)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    p.bucket_counts = Cow::Owned(counts);
    p.explicit_bounds = Cow::Owned(bounds.into_iter().map(f64::from_bits).collect());
    Ok(p)
}

fn zigzag32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

fn buckets(buf: &[u8]) -> Result<BucketsView<'_>> {
    let mut offset = 0;
    let mut counts = Vec::new();
    fields(buf, |r, field, wt| {
        match field {
            1 => {
                expect(field, wt, VARINT)?;
                offset = zigzag32(r.varint()?);
            }
            2 => repeated_varint(r, field, wt, &mut counts)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(BucketsView {
        offset,
        bucket_counts: Cow::Owned(counts),
    })
}

fn exp_point(buf: &[u8]) -> Result<ExpPoint<'_>> {
    let mut p = ExpPoint::default();
    fields(buf, |r, field, wt| {
        match field {
            1 => attr(r, field, wt, &mut p.attributes)?,
            2 => p.start_time_unix_nano = fixed(r, field, wt)?,
            3 => p.time_unix_nano = fixed(r, field, wt)?,
            4 => p.count = fixed(r, field, wt)?,
            5 => p.sum = Some(double(r, field, wt)?),
            6 => {
                expect(field, wt, VARINT)?;
                p.scale = zigzag32(r.varint()?);
            }
            7 => p.zero_count = fixed(r, field, wt)?,
            8 | 9 => {
                expect(field, wt, LEN)?;
                let mut b = buckets(r.bytes()?)?;
                let slot = if field == 8 {
                    &mut p.positive
                } else {
                    &mut p.negative
                };
                // A repeated message field merges: later counts append.
                if let Some(prev) = slot.take() {
                    let mut counts = prev.bucket_counts.into_owned();
                    counts.extend_from_slice(&b.bucket_counts);
                    b.bucket_counts = Cow::Owned(counts);
                }
                *slot = Some(b);
            }
            10 => p.flags = flags(r, field, wt)?,
            11 => {
                expect(field, wt, LEN)?;
                p.exemplars.push(exemplar(r.bytes()?)?);
            }
            14 => p.zero_threshold = double(r, field, wt)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(p)
}

fn summary_point(buf: &[u8]) -> Result<SummaryPoint<'_>> {
    let mut p = SummaryPoint::default();
    fields(buf, |r, field, wt| {
        match field {
            7 => attr(r, field, wt, &mut p.attributes)?,
            3 => p.time_unix_nano = fixed(r, field, wt)?,
            4 => p.count = fixed(r, field, wt)?,
            5 => p.sum = double(r, field, wt)?,
            6 => {
                expect(field, wt, LEN)?;
                let (mut q, mut v) = (0.0, 0.0);
                fields(r.bytes()?, |r, field, wt| {
                    match field {
                        1 => q = double(r, field, wt)?,
                        2 => v = double(r, field, wt)?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                p.quantiles.push((q, v));
            }
            8 => p.flags = flags(r, field, wt)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(p)
}

fn exemplar(buf: &[u8]) -> Result<ExemplarView<'_>> {
    let mut e = ExemplarView::default();
    fields(buf, |r, field, wt| {
        match field {
            7 => attr(r, field, wt, &mut e.filtered_attributes)?,
            2 => e.time_unix_nano = fixed(r, field, wt)?,
            3 => e.value = Some(double(r, field, wt)?),
            6 => e.value = Some(fixed(r, field, wt)? as i64 as f64),
            4 => {
                expect(field, wt, LEN)?;
                e.span_id = r.bytes()?;
            }
            5 => {
                expect(field, wt, LEN)?;
                e.trace_id = r.bytes()?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(e)
}

#[cfg(test)]
mod tests;
