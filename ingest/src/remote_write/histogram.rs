//! Remote write 1.0 native histograms (`prometheus.Histogram`): decoding from the wire,
//! validation, and conversion to storage's [`FloatHistogram`] (absolute float bucket counts).
//!
//! Decoding fails only on malformed protobuf (the request is refused). A well-formed histogram
//! that breaks a histogram rule (schema, spans against buckets, negative counts, custom bucket
//! bounds, …) gives a [`HistogramError`], whose [`reason`](HistogramError::reason) is counted
//! for that one sample; the rest of the request is stored.

use sextant_storage::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_storage::{CounterResetHint, FloatHistogram, HistogramSample, Span};

use super::wire::{unexpected, Reader, WireError, FIXED64, LEN, VARINT};

/// Smallest and largest exponential schema.
const MIN_SCHEMA: i32 = -4;
const MAX_SCHEMA: i32 = 8;

/// The `count` and `zero_count` oneofs: integer, float, or not set.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Count {
    #[default]
    Unset,
    Int(u64),
    Float(f64),
}

/// A `prometheus.Histogram` as it arrived, before validation.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RawHistogram {
    pub count: Count,
    pub sum: f64,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: Count,
    pub negative_spans: Vec<Span>,
    pub negative_deltas: Vec<i64>,
    pub negative_counts: Vec<f64>,
    pub positive_spans: Vec<Span>,
    pub positive_deltas: Vec<i64>,
    pub positive_counts: Vec<f64>,
    pub reset_hint: i32,
    pub timestamp: i64,
    pub custom_values: Vec<f64>,
}

/// Which side of the zero bucket a bucket error is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Negative,
    Positive,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Negative => "negative side",
            Side::Positive => "positive side",
        })
    }
}

/// Why one histogram sample was refused. `reason()` is the metric label; `Display` the message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram has an invalid schema, which must be between {MIN_SCHEMA} and {MAX_SCHEMA} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets, got schema {0}")]
    InvalidSchema(i32),
    #[error("histogram mixes integer and float fields: {0}")]
    MixedCounts(&'static str),
    #[error("{side}: span number {number} with offset {offset}: histogram has a span whose offset is negative")]
    SpanNegativeOffset {
        side: Side,
        number: usize,
        offset: i32,
    },
    #[error("{side}: spans need {spans} buckets, have {buckets} buckets: histogram spans specify different number of buckets than provided")]
    SpansBucketsMismatch {
        side: Side,
        spans: u64,
        buckets: usize,
    },
    #[error("{side}: bucket number {number} has observation count of {count}: histogram has a bucket whose observation count is negative")]
    NegativeBucketCount {
        side: Side,
        number: usize,
        count: f64,
    },
    #[error("{side}: bucket number {number} overflows a 64-bit count")]
    BucketCountOverflow { side: Side, number: usize },
    #[error("histogram's observation count is negative")]
    NegativeCount,
    #[error("{buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)")]
    CountMismatch { buckets: u128, count: u64 },
    #[error("{buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets")]
    CountNotBigEnough { buckets: u128, count: u64 },
    #[error("custom buckets: {0}")]
    CustomBuckets(String),
    #[error("histogram with exponential schema must not have custom bounds")]
    ExponentialWithCustomBounds,
}

impl HistogramError {
    pub fn reason(&self) -> &'static str {
        match self {
            HistogramError::InvalidSchema(_) => "histogram_invalid_schema",
            HistogramError::MixedCounts(_) => "histogram_mixed_int_float",
            HistogramError::SpanNegativeOffset { .. } => "histogram_span_negative_offset",
            HistogramError::SpansBucketsMismatch { .. } => "histogram_spans_buckets_mismatch",
            HistogramError::NegativeBucketCount { .. } | HistogramError::NegativeCount => {
                "histogram_negative_count"
            }
            HistogramError::BucketCountOverflow { .. } => "histogram_count_overflow",
            HistogramError::CountMismatch { .. } | HistogramError::CountNotBigEnough { .. } => {
                "histogram_count_mismatch"
            }
            HistogramError::CustomBuckets(_) | HistogramError::ExponentialWithCustomBounds => {
                "histogram_custom_buckets_invalid"
            }
        }
    }
}

/// Reads one `Histogram` message.
pub fn decode(buf: &[u8]) -> Result<RawHistogram, WireError> {
    let mut h = RawHistogram::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, VARINT) => h.count = Count::Int(r.varint()?),
            (2, FIXED64) => h.count = Count::Float(f64::from_bits(r.fixed64()?)),
            (3, FIXED64) => h.sum = f64::from_bits(r.fixed64()?),
            (4, VARINT) => h.schema = zigzag32(r.varint()?),
            (5, FIXED64) => h.zero_threshold = f64::from_bits(r.fixed64()?),
            (6, VARINT) => h.zero_count = Count::Int(r.varint()?),
            (7, FIXED64) => h.zero_count = Count::Float(f64::from_bits(r.fixed64()?)),
            (8, LEN) => h.negative_spans.push(span(r.bytes()?)?),
            (9, wt) => sint64s(&mut r, wt, 9, &mut h.negative_deltas)?,
            (10, wt) => doubles(&mut r, wt, 10, &mut h.negative_counts)?,
            (11, LEN) => h.positive_spans.push(span(r.bytes()?)?),
            (12, wt) => sint64s(&mut r, wt, 12, &mut h.positive_deltas)?,
            (13, wt) => doubles(&mut r, wt, 13, &mut h.positive_counts)?,
            (14, VARINT) => h.reset_hint = r.varint()? as i32,
            (15, VARINT) => h.timestamp = r.varint()? as i64,
            (16, wt) => doubles(&mut r, wt, 16, &mut h.custom_values)?,
            (f @ (1..=8 | 11 | 14 | 15), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(h)
}

/// Protobuf `sint32`: zigzag-encoded in a varint (the upper 32 bits are dropped, as decoders do).
fn zigzag32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// One `BucketSpan`: `sint32 offset = 1; uint32 length = 2;`.
fn span(buf: &[u8]) -> Result<Span, WireError> {
    let mut s = Span {
        offset: 0,
        length: 0,
    };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, VARINT) => s.offset = zigzag32(r.varint()?),
            (2, VARINT) => s.length = r.varint()? as u32,
            (f @ (1 | 2), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(s)
}

/// A repeated `sint64`, packed or not.
fn sint64s(r: &mut Reader<'_>, wt: u8, field: u32, out: &mut Vec<i64>) -> Result<(), WireError> {
    match wt {
        VARINT => out.push(zigzag64(r.varint()?)),
        LEN => {
            let mut p = Reader::new(r.bytes()?);
            while !p.is_empty() {
                out.push(zigzag64(p.varint()?));
            }
        }
        _ => return Err(unexpected(field, wt)),
    }
    Ok(())
}

/// A repeated `double`, packed or not.
fn doubles(r: &mut Reader<'_>, wt: u8, field: u32, out: &mut Vec<f64>) -> Result<(), WireError> {
    match wt {
        FIXED64 => out.push(f64::from_bits(r.fixed64()?)),
        LEN => {
            let bytes = r.bytes()?;
            if bytes.len() % 8 != 0 {
                return Err(WireError::Truncated);
            }
            out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_bits(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))),
            );
        }
        _ => return Err(unexpected(field, wt)),
    }
    Ok(())
}

fn reset_hint(v: i32) -> CounterResetHint {
    match v {
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        3 => CounterResetHint::Gauge,
        // 0, and values a newer sender may define: let the reader decide.
        _ => CounterResetHint::Unknown,
    }
}

/// Checks that the spans cover exactly `buckets` buckets and that only the first span (or,
/// for custom buckets, none) has a negative offset. Returns the index range the spans cover.
fn check_spans(
    side: Side,
    spans: &[Span],
    buckets: usize,
    first_may_be_negative: bool,
) -> Result<u64, HistogramError> {
    let mut covered = 0u64;
    let mut extent = 0i64;
    for (i, s) in spans.iter().enumerate() {
        if s.offset < 0 && (i > 0 || !first_may_be_negative) {
            return Err(HistogramError::SpanNegativeOffset {
                side,
                number: i + 1,
                offset: s.offset,
            });
        }
        covered += u64::from(s.length);
        extent += i64::from(s.offset) + i64::from(s.length);
    }
    if covered != buckets as u64 {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            spans: covered,
            buckets,
        });
    }
    Ok(extent.max(0) as u64)
}

/// Delta-encoded integer bucket counts to absolute float counts; adds them to `total`.
fn integer_buckets(
    side: Side,
    deltas: &[i64],
    total: &mut u128,
) -> Result<Vec<f64>, HistogramError> {
    let mut out = Vec::with_capacity(deltas.len());
    let mut current = 0i64;
    for (i, &d) in deltas.iter().enumerate() {
        current = current
            .checked_add(d)
            .ok_or(HistogramError::BucketCountOverflow {
                side,
                number: i + 1,
            })?;
        if current < 0 {
            return Err(HistogramError::NegativeBucketCount {
                side,
                number: i + 1,
                count: current as f64,
            });
        }
        *total += current as u128;
        out.push(current as f64);
    }
    Ok(out)
}

fn float_buckets(side: Side, counts: &[f64]) -> Result<(), HistogramError> {
    match counts.iter().position(|&c| c < 0.0) {
        Some(i) => Err(HistogramError::NegativeBucketCount {
            side,
            number: i + 1,
            count: counts.get(i).copied().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

fn check_custom_bounds(bounds: &[f64]) -> Result<(), HistogramError> {
    let mut prev = f64::NEG_INFINITY;
    for &b in bounds {
        if b.is_nan() {
            return Err(HistogramError::CustomBuckets(
                "histogram custom bounds must not be NaN".into(),
            ));
        }
        if b <= prev {
            return Err(HistogramError::CustomBuckets(format!(
                "previous bound is {prev} and current is {b}: histogram custom bounds must be in strictly increasing order"
            )));
        }
        prev = b;
    }
    if prev == f64::INFINITY {
        return Err(HistogramError::CustomBuckets(
            "last +Inf bound must not be explicitly defined: histogram custom bounds must be finite"
                .into(),
        ));
    }
    Ok(())
}

impl RawHistogram {
    /// True when the sender used the float form (`count_float`); integer otherwise, as in
    /// Prometheus (a histogram without any count is an empty integer histogram).
    pub fn is_float(&self) -> bool {
        matches!(self.count, Count::Float(_))
    }

    /// Validates and converts to a storage sample.
    pub fn into_sample(self) -> Result<HistogramSample, HistogramError> {
        let custom = self.schema == CUSTOM_BUCKETS_SCHEMA;
        if !custom && !(MIN_SCHEMA..=MAX_SCHEMA).contains(&self.schema) {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        let float = self.is_float();
        if float {
            if !self.negative_deltas.is_empty() || !self.positive_deltas.is_empty() {
                return Err(HistogramError::MixedCounts(
                    "float histogram (count_float) with integer bucket deltas",
                ));
            }
            if matches!(self.zero_count, Count::Int(_)) {
                return Err(HistogramError::MixedCounts(
                    "float histogram (count_float) with zero_count_int",
                ));
            }
        } else {
            if !self.negative_counts.is_empty() || !self.positive_counts.is_empty() {
                return Err(HistogramError::MixedCounts(
                    "integer histogram with float bucket counts (float histograms set count_float)",
                ));
            }
            if matches!(self.zero_count, Count::Float(_)) {
                return Err(HistogramError::MixedCounts(
                    "integer histogram with zero_count_float (float histograms set count_float)",
                ));
            }
        }
        let n_negative = if float {
            self.negative_counts.len()
        } else {
            self.negative_deltas.len()
        };
        let n_positive = if float {
            self.positive_counts.len()
        } else {
            self.positive_deltas.len()
        };
        let zero_count = match self.zero_count {
            Count::Unset => 0.0,
            Count::Int(n) => n as f64,
            Count::Float(x) => x,
        };
        if custom {
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomBuckets(
                    "must not have negative spans".into(),
                ));
            }
            if n_negative > 0 {
                return Err(HistogramError::CustomBuckets(
                    "must not have negative buckets".into(),
                ));
            }
            if zero_count != 0.0 {
                return Err(HistogramError::CustomBuckets(
                    "must have zero count of 0".into(),
                ));
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBuckets(
                    "must have zero threshold of 0".into(),
                ));
            }
            check_custom_bounds(&self.custom_values)?;
            let extent = check_spans(Side::Positive, &self.positive_spans, n_positive, false)?;
            if extent > self.custom_values.len() as u64 + 1 {
                return Err(HistogramError::CustomBuckets(format!(
                    "only {} custom bounds defined which is insufficient to cover total span length of {extent}: histogram custom bounds are too few",
                    self.custom_values.len()
                )));
            }
        } else {
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialWithCustomBounds);
            }
            check_spans(Side::Negative, &self.negative_spans, n_negative, true)?;
            check_spans(Side::Positive, &self.positive_spans, n_positive, true)?;
        }
        let (count, negative_buckets, positive_buckets) = match self.count {
            Count::Float(c) => {
                if c < 0.0 {
                    return Err(HistogramError::NegativeCount);
                }
                float_buckets(Side::Negative, &self.negative_counts)?;
                float_buckets(Side::Positive, &self.positive_counts)?;
                // Like Prometheus, no check of the count against the buckets: float rounding
                // would give false alarms.
                (c, self.negative_counts, self.positive_counts)
            }
            Count::Int(_) | Count::Unset => {
                let count = match self.count {
                    Count::Int(c) => c,
                    _ => 0,
                };
                let mut in_buckets = match self.zero_count {
                    Count::Int(n) => u128::from(n),
                    _ => 0,
                };
                let negative =
                    integer_buckets(Side::Negative, &self.negative_deltas, &mut in_buckets)?;
                let positive =
                    integer_buckets(Side::Positive, &self.positive_deltas, &mut in_buckets)?;
                if self.sum.is_nan() {
                    // A NaN observation is counted but lands in no bucket.
                    if in_buckets > u128::from(count) {
                        return Err(HistogramError::CountNotBigEnough {
                            buckets: in_buckets,
                            count,
                        });
                    }
                } else if in_buckets != u128::from(count) {
                    return Err(HistogramError::CountMismatch {
                        buckets: in_buckets,
                        count,
                    });
                }
                (count as f64, negative, positive)
            }
        };
        Ok(HistogramSample {
            t: self.timestamp,
            h: FloatHistogram {
                counter_reset_hint: reset_hint(self.reset_hint),
                schema: self.schema,
                zero_threshold: self.zero_threshold,
                zero_count,
                count,
                sum: self.sum,
                positive_spans: self.positive_spans,
                negative_spans: self.negative_spans,
                positive_buckets,
                negative_buckets,
                custom_values: self.custom_values,
            },
        })
    }
}

impl From<&super::proto::Histogram> for RawHistogram {
    fn from(p: &super::proto::Histogram) -> Self {
        use super::proto::histogram::{Count as C, ZeroCount as Z};
        let spans = |v: &[super::proto::BucketSpan]| {
            v.iter()
                .map(|s| Span {
                    offset: s.offset,
                    length: s.length,
                })
                .collect()
        };
        RawHistogram {
            count: match p.count {
                None => Count::Unset,
                Some(C::CountInt(n)) => Count::Int(n),
                Some(C::CountFloat(x)) => Count::Float(x),
            },
            sum: p.sum,
            schema: p.schema,
            zero_threshold: p.zero_threshold,
            zero_count: match p.zero_count {
                None => Count::Unset,
                Some(Z::ZeroCountInt(n)) => Count::Int(n),
                Some(Z::ZeroCountFloat(x)) => Count::Float(x),
            },
            negative_spans: spans(&p.negative_spans),
            negative_deltas: p.negative_deltas.clone(),
            negative_counts: p.negative_counts.clone(),
            positive_spans: spans(&p.positive_spans),
            positive_deltas: p.positive_deltas.clone(),
            positive_counts: p.positive_counts.clone(),
            reset_hint: p.reset_hint,
            timestamp: p.timestamp,
            custom_values: p.custom_values.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::super::proto::{self, histogram as ph, BucketSpan};
    use super::*;

    fn sp(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    fn int_hist() -> RawHistogram {
        RawHistogram {
            count: Count::Int(10),
            sum: 18.4,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: Count::Int(2),
            negative_spans: vec![sp(-1, 2)],
            negative_deltas: vec![1, 1],
            positive_spans: vec![sp(0, 2), sp(1, 2)],
            positive_deltas: vec![1, 1, -1, 0],
            reset_hint: 2,
            timestamp: 1000,
            ..Default::default()
        }
    }

    fn float_hist() -> RawHistogram {
        RawHistogram {
            count: Count::Float(7.5),
            sum: 3.0,
            schema: 0,
            zero_count: Count::Float(0.5),
            positive_spans: vec![sp(0, 3)],
            positive_counts: vec![1.0, 0.0, 6.0],
            reset_hint: 3,
            timestamp: 5,
            ..Default::default()
        }
    }

    fn reason(h: RawHistogram) -> &'static str {
        h.into_sample().map(|_| "ok").unwrap_or_else(|e| e.reason())
    }

    #[test]
    fn integer_deltas_become_absolute_float_counts() {
        let s = int_hist().into_sample().unwrap();
        assert_eq!(s.t, 1000);
        let h = s.h;
        assert_eq!(h.counter_reset_hint, CounterResetHint::NotCounterReset);
        assert_eq!((h.schema, h.count, h.sum), (1, 10.0, 18.4));
        assert_eq!((h.zero_threshold, h.zero_count), (0.001, 2.0));
        assert_eq!(h.negative_buckets, vec![1.0, 2.0]);
        assert_eq!(h.positive_buckets, vec![1.0, 2.0, 1.0, 1.0]);
        assert_eq!(h.positive_spans, vec![sp(0, 2), sp(1, 2)]);
        assert_eq!(h.negative_spans, vec![sp(-1, 2)]);
        assert!(h.custom_values.is_empty());
    }

    #[test]
    fn float_counts_are_kept_and_hints_map() {
        let h = float_hist().into_sample().unwrap().h;
        assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
        assert_eq!((h.count, h.zero_count), (7.5, 0.5));
        assert_eq!(h.positive_buckets, vec![1.0, 0.0, 6.0]);
        for (raw, hint) in [
            (0, CounterResetHint::Unknown),
            (1, CounterResetHint::CounterReset),
            (2, CounterResetHint::NotCounterReset),
            (3, CounterResetHint::Gauge),
            (17, CounterResetHint::Unknown),
        ] {
            let h = RawHistogram {
                reset_hint: raw,
                ..float_hist()
            };
            assert_eq!(h.into_sample().unwrap().h.counter_reset_hint, hint);
        }
        // An empty integer histogram (no count at all) is valid.
        assert_eq!(reason(RawHistogram::default()), "ok");
    }

    #[test]
    fn schemas_outside_the_range_are_refused() {
        for (schema, want) in [
            (-4, "ok"),
            (8, "ok"),
            (-5, "histogram_invalid_schema"),
            (9, "histogram_invalid_schema"),
            (-52, "histogram_invalid_schema"),
        ] {
            let h = RawHistogram {
                schema,
                ..float_hist()
            };
            assert_eq!(reason(h), want, "schema {schema}");
        }
        let e = RawHistogram {
            schema: 9,
            ..float_hist()
        }
        .into_sample()
        .unwrap_err();
        assert!(e.to_string().ends_with("got schema 9"), "{e}");
    }

    #[test]
    fn spans_must_match_buckets() {
        let mut h = int_hist();
        h.positive_spans = vec![sp(0, 2), sp(-1, 2)];
        assert_eq!(reason(h), "histogram_span_negative_offset");
        let mut h = int_hist();
        h.positive_spans = vec![sp(0, 2), sp(1, 1)];
        let e = h.into_sample().unwrap_err();
        assert_eq!(e.reason(), "histogram_spans_buckets_mismatch");
        assert!(
            e.to_string()
                .starts_with("positive side: spans need 3 buckets, have 4"),
            "{e}"
        );
        let mut h = float_hist();
        h.negative_counts = vec![1.0];
        assert_eq!(reason(h), "histogram_spans_buckets_mismatch");
    }

    #[test]
    fn counts_must_not_be_negative_and_integer_counts_must_add_up() {
        let mut h = int_hist();
        h.positive_deltas = vec![1, 1, -3, 0];
        assert_eq!(reason(h), "histogram_negative_count");
        let mut h = float_hist();
        h.positive_counts = vec![1.0, -0.5, 6.0];
        assert_eq!(reason(h), "histogram_negative_count");
        let mut h = float_hist();
        h.count = Count::Float(-1.0);
        assert_eq!(reason(h), "histogram_negative_count");
        let mut h = int_hist();
        h.count = Count::Int(11);
        assert_eq!(reason(h), "histogram_count_mismatch");
        // With a NaN sum, NaN observations count but sit in no bucket: more is fine, less not.
        let mut h = int_hist();
        h.sum = f64::NAN;
        h.count = Count::Int(11);
        assert_eq!(reason(h.clone()), "ok");
        h.count = Count::Int(9);
        assert_eq!(reason(h), "histogram_count_mismatch");
        // Float histograms are not checked against their buckets (rounding).
        let mut h = float_hist();
        h.count = Count::Float(1.0);
        assert_eq!(reason(h), "ok");
        let mut h = int_hist();
        h.positive_deltas = vec![i64::MAX, 1, 0, 0];
        assert_eq!(reason(h), "histogram_count_overflow");
    }

    #[test]
    fn integer_and_float_fields_do_not_mix() {
        let mut h = int_hist();
        h.positive_counts = vec![1.0];
        assert_eq!(reason(h), "histogram_mixed_int_float");
        let mut h = int_hist();
        h.zero_count = Count::Float(2.0);
        assert_eq!(reason(h), "histogram_mixed_int_float");
        let mut h = float_hist();
        h.positive_deltas = vec![1, 0, 5];
        assert_eq!(reason(h), "histogram_mixed_int_float");
    }

    fn custom() -> RawHistogram {
        RawHistogram {
            count: Count::Int(6),
            sum: 4.0,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: vec![sp(0, 2), sp(1, 1)],
            positive_deltas: vec![1, 1, 1],
            custom_values: vec![0.5, 1.0, 2.0],
            ..Default::default()
        }
    }

    #[test]
    fn custom_bucket_rules() {
        let h = custom().into_sample().unwrap().h;
        assert!(h.uses_custom_buckets());
        assert_eq!(h.custom_values, vec![0.5, 1.0, 2.0]);
        assert_eq!(h.positive_buckets, vec![1.0, 2.0, 3.0]);
        type Edit = Box<dyn Fn(&mut RawHistogram)>;
        let bad: Vec<(&str, Edit)> = vec![
            (
                "negative spans",
                Box::new(|h| h.negative_spans = vec![sp(0, 0)]),
            ),
            ("zero count", Box::new(|h| h.zero_count = Count::Int(1))),
            ("zero threshold", Box::new(|h| h.zero_threshold = 0.1)),
            (
                "unsorted",
                Box::new(|h| h.custom_values = vec![0.5, 0.5, 2.0]),
            ),
            (
                "nan",
                Box::new(|h| h.custom_values = vec![0.5, f64::NAN, 2.0]),
            ),
            (
                "+inf",
                Box::new(|h| h.custom_values = vec![0.5, 1.0, f64::INFINITY]),
            ),
            ("too few", Box::new(|h| h.custom_values = vec![0.5, 1.0])),
        ];
        for (what, f) in bad {
            let mut h = custom();
            f(&mut h);
            assert_eq!(reason(h), "histogram_custom_buckets_invalid", "{what}");
        }
        let mut h = custom();
        h.positive_spans = vec![sp(-1, 2), sp(1, 1)];
        assert_eq!(reason(h), "histogram_span_negative_offset");
        // The last bucket (up to +Inf) needs no explicit bound.
        let mut h = custom();
        h.custom_values = vec![0.5, 1.0, 1.5];
        h.positive_spans = vec![sp(1, 2), sp(0, 1)];
        assert_eq!(reason(h), "ok");
        let mut h = float_hist();
        h.custom_values = vec![1.0];
        assert_eq!(reason(h), "histogram_custom_buckets_invalid");
    }

    fn proto_hist() -> proto::Histogram {
        proto::Histogram {
            count: Some(ph::Count::CountInt(12)),
            sum: 18.4,
            schema: -3,
            zero_threshold: 0.001,
            zero_count: Some(ph::ZeroCount::ZeroCountInt(2)),
            negative_spans: vec![BucketSpan {
                offset: -1,
                length: 2,
            }],
            negative_deltas: vec![1, 1],
            negative_counts: vec![],
            positive_spans: vec![
                BucketSpan {
                    offset: 0,
                    length: 2,
                },
                BucketSpan {
                    offset: 1,
                    length: 2,
                },
            ],
            positive_deltas: vec![1, 1, -1, 0],
            positive_counts: vec![],
            reset_hint: 1,
            timestamp: -7,
            custom_values: vec![],
        }
    }

    #[test]
    fn wire_decoding_matches_prost_packed_or_not() {
        let p = proto_hist();
        let raw = p.encode_to_vec();
        let ours = decode(&raw).unwrap();
        assert_eq!(ours, RawHistogram::from(&p));
        assert_eq!(ours.schema, -3);
        assert_eq!(ours.timestamp, -7);
        // The same repeated fields unpacked (one field per element), plus an unknown field.
        let mut unpacked = Vec::new();
        let mut f = p.clone();
        f.negative_deltas.clear();
        f.positive_deltas.clear();
        f.encode(&mut unpacked).unwrap();
        for d in [1i64, 1] {
            prost::encoding::sint64::encode(9, &d, &mut unpacked);
        }
        for d in [1i64, 1, -1, 0] {
            prost::encoding::sint64::encode(12, &d, &mut unpacked);
        }
        prost::encoding::double::encode(13, &2.5, &mut unpacked);
        prost::encoding::double::encode(13, &3.5, &mut unpacked);
        prost::encoding::uint64::encode(99, &5, &mut unpacked);
        let got = decode(&unpacked).unwrap();
        assert_eq!(got.negative_deltas, vec![1, 1]);
        assert_eq!(got.positive_deltas, vec![1, 1, -1, 0]);
        assert_eq!(got.positive_counts, vec![2.5, 3.5]);
        let float = proto::Histogram {
            count: Some(ph::Count::CountFloat(3.0)),
            zero_count: Some(ph::ZeroCount::ZeroCountFloat(0.0)),
            positive_counts: vec![1.0, 2.0],
            custom_values: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(
            decode(&float.encode_to_vec()).unwrap(),
            RawHistogram::from(&float)
        );
    }

    #[test]
    fn malformed_histograms_are_wire_errors() {
        // schema (field 4) as fixed64.
        let raw = [0x21, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode(&raw),
            Err(WireError::UnexpectedWireType { field: 4, got: 1 })
        );
        // packed doubles (field 13) of 7 bytes.
        let raw = [0x6a, 7, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&raw), Err(WireError::Truncated));
        // a span cut short.
        let raw = [0x5a, 2, 0x08];
        assert!(decode(&raw).is_err());
    }
}
