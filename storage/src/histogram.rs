//! Native histograms: the sparse, exponential-bucket (or custom-bucket) histogram of
//! Prometheus 3.x, in its float form.
//!
//! Integer histograms from remote write are converted to this form on ingest (counts up to
//! 2^53 convert exactly). Bucket counts are absolute, not deltas.
//!
//! # Arithmetic (semantics of Prometheus 3.x `model/histogram` and `promql/quantile.go`)
//!
//! * [`FloatHistogram::add`] / [`FloatHistogram::sub`]: schema conversion (the result takes the
//!   smaller schema), zero-bucket reconciliation (the wider threshold wins, buckets inside it are
//!   merged into the zero bucket), counter-reset-hint propagation with collision detection, and
//!   custom-bucket (NHCB) bound reconciliation: histograms with different custom bounds are
//!   mapped onto the intersection of both bound sets and [`AddInfo::custom_buckets_reconciled`]
//!   is set (Prometheus then emits the "mismatched custom buckets were reconciled" info).
//!   `sub` keeps the hint logic of `add`; the PromQL `-` operator must set
//!   [`CounterResetHint::Gauge`] on the result itself.
//! * Extra, beyond the published signatures:
//!   - [`FloatHistogram::kahan_add`]: Kahan–Neumaier compensated addition, used by Prometheus for
//!     `sum`, `avg`, `sum_over_time`, `avg_over_time` of histograms. Usage:
//!     `let mut c = None; for h in rest { c = Some(acc.kahan_add(h, c)?.0); }` and at the end
//!     `if let Some(c) = c { acc.add(&c)?; }` (then `compact(0)`). For the incremental mean,
//!     scale both the accumulator and the compensation with [`FloatHistogram::mul`] first.
//!   - [`kahan_sum_inc`]: the float Kahan–Neumaier step (`kahansum.Inc`).
//!   - [`histogram_quantile_with_info`] / [`histogram_fraction_with_info`]: the same results as
//!     [`histogram_quantile`] / [`histogram_fraction`], plus whether Prometheus would attach the
//!     "input to histogram_quantile has NaN observations, result is NaN / skewed higher" or the
//!     "input to histogram_fraction has NaN observations, which are excluded from all fractions"
//!     info annotation.
//!   - [`FloatHistogram::trim_upper`] / [`FloatHistogram::trim_lower`]: the `</` and `>/`
//!     operators (Prometheus 3.11+ `TRIM_UPPER` / `TRIM_LOWER`).
//!   - [`FloatHistogram::test_expression`] (also `Display`): the test-script notation.
//!   - [`FloatHistogram::all_buckets_reverse`], [`FloatHistogram::zero_bucket`],
//!     [`bucket_bound`] and [`spans_match`].

/// A run of consecutive buckets: `offset` empty buckets skipped since the end of the previous
/// span (from bucket index 0 for the first span), then `length` populated buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What the writer said about a counter reset between this histogram and the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// Not known; the reader decides by comparing with the previous histogram.
    #[default]
    Unknown,
    /// A counter reset happened.
    CounterReset,
    /// No counter reset happened.
    NotCounterReset,
    /// The histogram is a gauge: counter resets do not apply.
    Gauge,
}

/// Schema of histograms with custom bucket boundaries (`custom_values`).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A native histogram with float counts.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    /// -4..=8 for exponential buckets (bucket boundaries grow by 2^(2^-schema)), or
    /// [`CUSTOM_BUCKETS_SCHEMA`].
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// Absolute counts, one per bucket covered by `positive_spans`.
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (only with [`CUSTOM_BUCKETS_SCHEMA`]).
    pub custom_values: Vec<f64>,
}

impl FloatHistogram {
    /// True for histograms with custom bucket boundaries.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }
}

/// Largest exponential schema (highest resolution).
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;
/// Smallest exponential schema (lowest resolution).
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;

/// True for the schemas of exponential buckets (-4..=8).
pub fn is_exponential_schema(schema: i32) -> bool {
    (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

/// Errors of histogram arithmetic and validation. The texts are those of Prometheus.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// Exponential and custom-bucket histograms were combined.
    #[error("cannot apply this operation on histograms with a mix of exponential and custom bucket schemas")]
    MixedSchemas,
    /// Two custom-bucket histograms with different bounds were combined (Prometheus 3.x
    /// reconciles the bounds in `add`/`sub` instead, so those never return this).
    #[error(
        "cannot apply this operation on custom buckets histograms with different custom bounds"
    )]
    IncompatibleCustomBuckets,
    /// The histogram is malformed (text as Prometheus' `Validate`).
    #[error("{0}")]
    Invalid(String),
}

/// Side information of [`FloatHistogram::add`] / [`FloatHistogram::sub`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AddInfo {
    /// One operand said `CounterReset`, the other `NotCounterReset`; the result is `Unknown`.
    pub counter_reset_collision: bool,
    /// Custom-bucket histograms with different bounds were mapped onto their common bounds.
    pub custom_buckets_reconciled: bool,
}

/// One bucket as seen by the bucket iterators.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    /// Bucket index within the schema (irrelevant for the zero bucket, which reports 0).
    pub index: i32,
}

/// Which NaN-related info annotation [`histogram_quantile_with_info`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantileNanInfo {
    /// "input to histogram_quantile has NaN observations, result is NaN"
    ResultIsNan,
    /// "input to histogram_quantile has NaN observations, result is skewed higher"
    SkewedHigher,
}

// ---------------------------------------------------------------------------------------------
// Bucket boundaries.

/// `x * 2^exp`, saturating to 0 / infinity outside the float range.
fn times_pow2(x: f64, exp: i64) -> f64 {
    let mut e = exp.clamp(-2200, 2200);
    let mut v = x;
    // Scale in steps that stay exact (powers of two in the normal range).
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    v * 2f64.powi(e as i32)
}

/// Upper bound of exponential bucket `idx` in `schema` (Prometheus `getBoundExponential`).
fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = i64::from(idx) << (-schema).min(62);
        if exp == 1024 {
            // Last bucket before the one for ±Inf observations.
            return f64::MAX;
        }
        return times_pow2(1.0, exp);
    }
    let schema = schema.min(30);
    let frac_idx = idx & ((1i32 << schema) - 1);
    let frac = 0.5 * (f64::from(frac_idx) / f64::from(1i32 << schema)).exp2();
    let exp = i64::from(idx >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    times_pow2(frac, exp)
}

/// Upper bound of bucket `idx`: exponential for schemas -4..=8, `custom_values[idx]` for custom
/// buckets (with -Inf for index -1 and +Inf from index `custom_values.len()` on).
pub fn bucket_bound(idx: i32, schema: i32, custom_values: &[f64]) -> f64 {
    if schema == CUSTOM_BUCKETS_SCHEMA {
        if idx < 0 {
            return f64::NEG_INFINITY;
        }
        return custom_values
            .get(idx as usize)
            .copied()
            .unwrap_or(f64::INFINITY);
    }
    exponential_bound(idx, schema)
}

/// Bucket index in `target` schema for bucket `idx` of the finer `origin` schema.
fn target_index(idx: i32, origin: i32, target: i32) -> i32 {
    let shift = (origin - target).clamp(0, 31);
    ((idx.wrapping_sub(1)) >> shift).wrapping_add(1)
}

// ---------------------------------------------------------------------------------------------
// Sparse bucket lists as (index, count) pairs.

type Pairs = Vec<(i32, f64)>;

/// The populated buckets of `spans`/`buckets` as ascending `(index, count)` pairs. A span list
/// that promises more buckets than there are is cut short.
fn to_pairs(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx: i32 = 0;
    let mut b = 0usize;
    for (n, span) in spans.iter().enumerate() {
        if n == 0 {
            idx = span.offset;
        } else {
            idx = idx.wrapping_add(span.offset);
        }
        for _ in 0..span.length {
            let Some(&count) = buckets.get(b) else {
                return out;
            };
            out.push((idx, count));
            idx = idx.wrapping_add(1);
            b += 1;
        }
    }
    out
}

/// Spans and buckets for ascending `(index, count)` pairs: one span per run of consecutive
/// indexes.
fn from_pairs(pairs: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(pairs.len());
    let mut prev: Option<i32> = None;
    for &(idx, count) in pairs {
        match prev {
            Some(p) if idx == p.wrapping_add(1) => {
                if let Some(last) = spans.last_mut() {
                    last.length += 1;
                }
            }
            Some(p) => spans.push(Span {
                offset: idx.wrapping_sub(p).wrapping_sub(1),
                length: 1,
            }),
            None => spans.push(Span {
                offset: idx,
                length: 1,
            }),
        }
        buckets.push(count);
        prev = Some(idx);
    }
    (spans, buckets)
}

/// Merges the pairs of `origin` schema into the coarser `target` schema (counts summed in
/// ascending order).
fn reduce_pairs(pairs: &[(i32, f64)], origin: i32, target: i32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(pairs.len());
    for &(idx, count) in pairs {
        let t = target_index(idx, origin, target);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += count,
            _ => out.push((t, count)),
        }
    }
    out
}

/// Drops the leading pairs whose (exponential) upper bound is ≤ `threshold`.
fn skip_below_threshold(pairs: &[(i32, f64)], schema: i32, threshold: f64) -> &[(i32, f64)] {
    if !is_exponential_schema(schema) {
        return pairs;
    }
    let first = pairs
        .iter()
        .position(|&(idx, _)| exponential_bound(idx, schema) > threshold)
        .unwrap_or(pairs.len());
    &pairs[first..]
}

/// `a ± b` by bucket index; buckets of either side appear in the result.
fn merge_pairs(a: &[(i32, f64)], b: &[(i32, f64)], negate: bool) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && a[i].0 < b[j].0);
        let take_b = i >= a.len() || (j < b.len() && b[j].0 < a[i].0);
        if take_a {
            out.push(a[i]);
            i += 1;
        } else if take_b {
            let v = if negate { -b[j].1 } else { b[j].1 };
            out.push((b[j].0, v));
            j += 1;
        } else {
            let v = if negate {
                a[i].1 - b[j].1
            } else {
                a[i].1 + b[j].1
            };
            out.push((a[i].0, v));
            i += 1;
            j += 1;
        }
    }
    out
}

/// The Kahan–Neumaier summation step of Prometheus (`kahansum.Inc`): adds `inc` to `sum` with
/// running compensation `c`; the accurate total is `sum + c`.
pub fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Kahan-adds `b` into `a` with compensation `ca`, all by bucket index. Returns the new sums
/// and the new compensations.
fn kahan_merge_pairs(a: &[(i32, f64)], ca: &[(i32, f64)], b: &[(i32, f64)]) -> (Pairs, Pairs) {
    let mut indexes: Vec<i32> = a
        .iter()
        .chain(ca.iter())
        .chain(b.iter())
        .map(|p| p.0)
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    let lookup = |v: &[(i32, f64)], idx: i32| -> Option<f64> {
        v.binary_search_by_key(&idx, |p| p.0).ok().map(|k| v[k].1)
    };
    let mut sums = Vec::with_capacity(indexes.len());
    let mut comps = Vec::with_capacity(indexes.len());
    for idx in indexes {
        let av = lookup(a, idx);
        let cv = lookup(ca, idx).unwrap_or(0.0);
        let bv = lookup(b, idx);
        let (s, c) = match bv {
            Some(bv) => kahan_sum_inc(bv, av.unwrap_or(0.0), cv),
            None => (av.unwrap_or(0.0), cv),
        };
        if av.is_some() || bv.is_some() {
            sums.push((idx, s));
        }
        comps.push((idx, c));
    }
    (sums, comps)
}

/// Common bounds of two ascending custom bound lists.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Maps custom buckets with `bounds` onto the (coarser) `target` bounds: each bucket goes to the
/// first target bucket whose upper bound is ≥ its own. Returns one dense entry per target bucket.
fn map_custom_pairs(pairs: &[(i32, f64)], bounds: &[f64], target: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; target.len() + 1];
    let mut t = 0usize;
    for &(idx, count) in pairs {
        let mut dest = target.len();
        if idx >= 0 {
            if let Some(&bound) = bounds.get(idx as usize) {
                while t < target.len() {
                    if target[t] >= bound {
                        dest = t;
                        break;
                    }
                    t += 1;
                }
            }
        }
        out[dest] += count;
    }
    out
}

fn custom_bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Removes zero-length spans (their offset moves to the next span) for span comparison.
fn normalized_spans(spans: &[Span]) -> Vec<Span> {
    let mut out = Vec::with_capacity(spans.len());
    let mut carry: i32 = 0;
    for s in spans {
        if s.length == 0 {
            carry = carry.wrapping_add(s.offset);
            continue;
        }
        out.push(Span {
            offset: s.offset.wrapping_add(carry),
            length: s.length,
        });
        carry = 0;
    }
    out
}

/// Whether two span lists describe the same bucket layout (zero-length spans ignored), as
/// Prometheus' `spansMatch`.
pub fn spans_match(a: &[Span], b: &[Span]) -> bool {
    normalized_spans(a) == normalized_spans(b)
}

/// Go's `%f` for the validation messages.
fn go_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:.6}")
    }
}

/// Go's `%v` for a float in the validation messages.
fn go_v(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

const ERR_NEGATIVE_BUCKET: &str = "histogram has a bucket whose observation count is negative";
const ERR_SPAN_NEGATIVE_OFFSET: &str = "histogram has a span whose offset is negative";
const ERR_SPANS_BUCKETS_MISMATCH: &str =
    "histogram spans specify different number of buckets than provided";

fn check_spans(spans: &[Span], n_buckets: usize, custom: bool) -> Result<(), String> {
    let mut need: u64 = 0;
    for (n, span) in spans.iter().enumerate() {
        if (custom || n > 0) && span.offset < 0 {
            return Err(format!(
                "span number {} with offset {}: {ERR_SPAN_NEGATIVE_OFFSET}",
                n + 1,
                span.offset
            ));
        }
        need += u64::from(span.length);
    }
    if need != n_buckets as u64 {
        return Err(format!(
            "spans need {need} buckets, have {n_buckets} buckets: {ERR_SPANS_BUCKETS_MISMATCH}"
        ));
    }
    Ok(())
}

fn check_buckets(buckets: &[f64]) -> Result<(), String> {
    for (i, &c) in buckets.iter().enumerate() {
        if c < 0.0 {
            return Err(format!(
                "bucket number {} has observation count of {}: {ERR_NEGATIVE_BUCKET}",
                i + 1,
                go_v(c)
            ));
        }
    }
    Ok(())
}

impl FloatHistogram {
    // -----------------------------------------------------------------------------------------
    // Validation and layout.

    /// Checks spans against buckets, negative counts and the fields that must be unused for the
    /// schema, with Prometheus' error texts.
    pub fn validate(&self) -> Result<(), HistogramError> {
        let invalid = HistogramError::Invalid;
        if self.uses_custom_buckets() {
            let mut prev = f64::NEG_INFINITY;
            for &curr in &self.custom_values {
                if curr.is_nan() {
                    return Err(invalid(
                        "custom buckets: histogram custom bounds must not be NaN".into(),
                    ));
                }
                if curr <= prev {
                    return Err(invalid(format!(
                        "custom buckets: previous bound is {} and current is {}: histogram custom bounds must be in strictly increasing order",
                        go_f(prev),
                        go_f(curr)
                    )));
                }
                prev = curr;
            }
            if prev == f64::INFINITY {
                return Err(invalid(
                    "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds must be finite".into(),
                ));
            }
            check_spans(&self.positive_spans, self.positive_buckets.len(), true)
                .map_err(|e| invalid(format!("custom buckets: {e}")))?;
            let total: i64 = self
                .positive_spans
                .iter()
                .map(|s| i64::from(s.offset) + i64::from(s.length))
                .sum();
            if (self.custom_values.len() as i64 + 1) < total {
                return Err(invalid(format!(
                    "custom buckets: only {} custom bounds defined which is insufficient to cover total span length of {total}: histogram custom bounds are too few",
                    self.custom_values.len()
                )));
            }
            if self.zero_count != 0.0 {
                return Err(invalid("custom buckets: must have zero count of 0".into()));
            }
            if self.zero_threshold != 0.0 {
                return Err(invalid(
                    "custom buckets: must have zero threshold of 0".into(),
                ));
            }
            if !self.negative_spans.is_empty() {
                return Err(invalid(
                    "custom buckets: must not have negative spans".into(),
                ));
            }
            if !self.negative_buckets.is_empty() {
                return Err(invalid(
                    "custom buckets: must not have negative buckets".into(),
                ));
            }
        } else if is_exponential_schema(self.schema) {
            check_spans(&self.positive_spans, self.positive_buckets.len(), false)
                .map_err(|e| invalid(format!("positive side: {e}")))?;
            check_spans(&self.negative_spans, self.negative_buckets.len(), false)
                .map_err(|e| invalid(format!("negative side: {e}")))?;
            check_buckets(&self.negative_buckets)
                .map_err(|e| invalid(format!("negative side: {e}")))?;
            if self.zero_count < 0.0 {
                return Err(invalid(format!(
                    "zero bucket has observation count of {}: {ERR_NEGATIVE_BUCKET}",
                    go_v(self.zero_count)
                )));
            }
            if !self.custom_values.is_empty() {
                return Err(invalid(
                    "histogram with exponential schema must not have custom bounds".into(),
                ));
            }
        } else {
            return Err(invalid(format!(
                "histogram has an invalid schema, which must be between {EXPONENTIAL_SCHEMA_MIN} and {EXPONENTIAL_SCHEMA_MAX} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets, got schema {}",
                self.schema
            )));
        }
        if self.count < 0.0 {
            return Err(invalid(format!(
                "observation count is  {}: histogram's observation count is negative",
                go_v(self.count)
            )));
        }
        check_buckets(&self.positive_buckets)
            .map_err(|e| invalid(format!("positive side: {e}")))?;
        Ok(())
    }

    /// Removes empty buckets at the edges of spans and runs of more than `max_empty_buckets`
    /// empty buckets inside spans, and merges spans at most `max_empty_buckets` apart (filling
    /// the gap with empty buckets). `compact(0)` leaves no empty bucket and no adjacent spans.
    pub fn compact(&mut self, max_empty_buckets: usize) {
        const MAX_FILLED_GAP: u64 = 1 << 16;
        fn compact_side(spans: &mut Vec<Span>, buckets: &mut Vec<f64>, max_empty: usize) {
            let populated: Vec<(i32, f64)> = to_pairs(spans, buckets)
                .into_iter()
                .filter(|p| p.1 != 0.0)
                .collect();
            let mut filled: Vec<(i32, f64)> = Vec::with_capacity(populated.len());
            for (idx, count) in populated {
                if let Some(&(prev, _)) = filled.last() {
                    let gap = i64::from(idx) - i64::from(prev) - 1;
                    // Gaps are filled up to `max_empty` (capped, so that `usize::MAX` cannot
                    // allocate billions of empty buckets).
                    if gap > 0 && gap as u64 <= (max_empty as u64).min(MAX_FILLED_GAP) {
                        for k in 1..=gap {
                            filled.push(((i64::from(prev) + k) as i32, 0.0));
                        }
                    }
                }
                filled.push((idx, count));
            }
            let (s, b) = from_pairs(&filled);
            *spans = s;
            *buckets = b;
        }
        compact_side(
            &mut self.positive_spans,
            &mut self.positive_buckets,
            max_empty_buckets,
        );
        compact_side(
            &mut self.negative_spans,
            &mut self.negative_buckets,
            max_empty_buckets,
        );
    }

    /// Merges buckets into the coarser exponential `target_schema`. Does nothing for custom
    /// buckets, a custom target, or a target that is not coarser than the current schema.
    pub fn reduce_resolution(&mut self, target_schema: i32) {
        if self.uses_custom_buckets()
            || !is_exponential_schema(target_schema)
            || target_schema >= self.schema
        {
            return;
        }
        let pos = reduce_pairs(
            &to_pairs(&self.positive_spans, &self.positive_buckets),
            self.schema,
            target_schema,
        );
        let neg = reduce_pairs(
            &to_pairs(&self.negative_spans, &self.negative_buckets),
            self.schema,
            target_schema,
        );
        (self.positive_spans, self.positive_buckets) = from_pairs(&pos);
        (self.negative_spans, self.negative_buckets) = from_pairs(&neg);
        self.schema = target_schema;
    }

    /// A copy in the (coarser or equal) exponential `target_schema` (Prometheus `CopyToSchema`);
    /// a plain copy for custom buckets or a finer target.
    pub fn copy_to_schema(&self, target_schema: i32) -> FloatHistogram {
        let mut c = self.clone();
        c.reduce_resolution(target_schema);
        c
    }

    // -----------------------------------------------------------------------------------------
    // Zero bucket.

    /// The zero bucket `[-zero_threshold, zero_threshold]`.
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// What the zero count would be with the (larger or equal) threshold `larger`; a threshold
    /// inside a populated bucket is moved up to that bucket's outer edge. Returns the count and
    /// the adjusted threshold.
    fn zero_count_for_larger_threshold(&self, mut larger: f64) -> (f64, f64) {
        if larger <= self.zero_threshold {
            return (self.zero_count, self.zero_threshold.max(larger));
        }
        'outer: loop {
            let mut count = self.zero_count;
            for b in self.positive_bucket_iter() {
                if b.lower >= larger {
                    break;
                }
                count += b.count;
                if b.upper > larger {
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for b in self.negative_bucket_iter() {
                if b.upper <= -larger {
                    break;
                }
                count += b.count;
                if b.lower < -larger {
                    if b.count != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (count, larger);
        }
    }

    /// Empties the buckets inside the zero bucket (their counts must already be part of the
    /// zero count) and compacts.
    fn trim_buckets_in_zero_bucket(&mut self) {
        let t = self.zero_threshold;
        let n_pos = self
            .positive_bucket_iter()
            .take_while(|b| b.lower < t)
            .count();
        for c in self.positive_buckets.iter_mut().take(n_pos) {
            *c = 0.0;
        }
        let n_neg = self
            .negative_bucket_iter()
            .take_while(|b| b.upper > -t)
            .count();
        for c in self.negative_buckets.iter_mut().take(n_neg) {
            *c = 0.0;
        }
        self.compact(0);
    }

    /// Widens the zero buckets of `self` or (virtually) `other` until both agree; returns the
    /// zero count `other` would have.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        while other_threshold != self.zero_threshold {
            if other_threshold.is_nan() || self.zero_threshold.is_nan() {
                break;
            }
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_count
    }

    // -----------------------------------------------------------------------------------------
    // Arithmetic.

    /// Prometheus' counter-reset-hint rules for `+`/`-`; true on a reset/not-reset collision.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (mine, theirs) = (self.counter_reset_hint, other.counter_reset_hint);
        if mine == theirs || mine == Gauge {
            return false;
        }
        if theirs == Gauge {
            self.counter_reset_hint = Gauge;
            return false;
        }
        if mine == Unknown {
            return false;
        }
        self.counter_reset_hint = Unknown;
        // Remaining cases: theirs is Unknown (no collision) or a CounterReset/NotCounterReset
        // clash.
        theirs != Unknown
    }

    fn add_or_sub(
        &mut self,
        other: &FloatHistogram,
        negate: bool,
    ) -> Result<AddInfo, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedSchemas);
        }
        let mut info = AddInfo {
            counter_reset_collision: self.adjust_counter_reset(other),
            custom_buckets_reconciled: false,
        };
        let sign = if negate { -1.0 } else { 1.0 };
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other);
            if negate {
                self.zero_count -= other_zero;
            } else {
                self.zero_count += other_zero;
            }
        }
        if negate {
            self.count -= other.count;
            self.sum -= other.sum;
        } else {
            self.count += other.count;
            self.sum += other.sum;
        }
        let mine_pos = to_pairs(&self.positive_spans, &self.positive_buckets);
        let other_pos = to_pairs(&other.positive_spans, &other.positive_buckets);
        if self.uses_custom_buckets() {
            if custom_bounds_match(&self.custom_values, &other.custom_values) {
                let merged = merge_pairs(&mine_pos, &other_pos, negate);
                (self.positive_spans, self.positive_buckets) = from_pairs(&merged);
            } else {
                info.custom_buckets_reconciled = true;
                let common = intersect_bounds(&self.custom_values, &other.custom_values);
                let a = map_custom_pairs(&mine_pos, &self.custom_values, &common);
                let b = map_custom_pairs(&other_pos, &other.custom_values, &common);
                let pairs: Vec<(i32, f64)> = a
                    .iter()
                    .zip(&b)
                    .enumerate()
                    .map(|(i, (x, y))| (i as i32, x + sign * y))
                    .filter(|p| p.1 != 0.0)
                    .collect();
                (self.positive_spans, self.positive_buckets) = from_pairs(&pairs);
                self.custom_values = common;
            }
            return Ok(info);
        }
        let mut mine_pos = mine_pos;
        let mut mine_neg = to_pairs(&self.negative_spans, &self.negative_buckets);
        let mut other_pos = other_pos;
        let mut other_neg = to_pairs(&other.negative_spans, &other.negative_buckets);
        if other.schema < self.schema {
            mine_pos = reduce_pairs(&mine_pos, self.schema, other.schema);
            mine_neg = reduce_pairs(&mine_neg, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            other_pos = reduce_pairs(&other_pos, other.schema, self.schema);
            other_neg = reduce_pairs(&other_neg, other.schema, self.schema);
        }
        let t = self.zero_threshold;
        let pos = merge_pairs(
            &mine_pos,
            skip_below_threshold(&other_pos, self.schema, t),
            negate,
        );
        let neg = merge_pairs(
            &mine_neg,
            skip_below_threshold(&other_neg, self.schema, t),
            negate,
        );
        (self.positive_spans, self.positive_buckets) = from_pairs(&pos);
        (self.negative_spans, self.negative_buckets) = from_pairs(&neg);
        Ok(info)
    }

    /// Adds `other` (Prometheus `FloatHistogram.Add`). The result may contain empty buckets;
    /// call [`FloatHistogram::compact`] to normalise.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<AddInfo, HistogramError> {
        self.add_or_sub(other, false)
    }

    /// Subtracts `other` (Prometheus `FloatHistogram.Sub`); same hint logic as
    /// [`FloatHistogram::add`] (the PromQL `-` operator sets the gauge hint afterwards).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<AddInfo, HistogramError> {
        self.add_or_sub(other, true)
    }

    /// Kahan–Neumaier compensated addition (Prometheus `FloatHistogram.KahanAdd`): adds `other`
    /// into `self`, carrying the lost low-order parts in the compensation histogram `comp`
    /// (`None` at the start). Returns the updated compensation, which has the schema, zero
    /// threshold, custom bounds and hint of `self`; the accurate result is `self.add(&comp)`.
    pub fn kahan_add(
        &mut self,
        other: &FloatHistogram,
        comp: Option<FloatHistogram>,
    ) -> Result<(FloatHistogram, AddInfo), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedSchemas);
        }
        let mut c = comp.unwrap_or_else(|| FloatHistogram {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            custom_values: self.custom_values.clone(),
            ..FloatHistogram::default()
        });
        let mut info = AddInfo {
            counter_reset_collision: self.adjust_counter_reset(other),
            custom_buckets_reconciled: false,
        };
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other);
            // Fold compensation buckets that are now inside the zero bucket into its
            // compensation.
            if c.zero_threshold < self.zero_threshold {
                let t = self.zero_threshold;
                let mut moved = 0.0;
                let pos = to_pairs(&c.positive_spans, &c.positive_buckets);
                let neg = to_pairs(&c.negative_spans, &c.negative_buckets);
                let keep = |pairs: Vec<(i32, f64)>, moved: &mut f64| -> Vec<(i32, f64)> {
                    pairs
                        .into_iter()
                        .filter(|&(idx, v)| {
                            let lower = exponential_bound(idx - 1, c.schema);
                            if lower < t {
                                *moved += v;
                                false
                            } else {
                                true
                            }
                        })
                        .collect()
                };
                let pos = keep(pos, &mut moved);
                let neg = keep(neg, &mut moved);
                (c.positive_spans, c.positive_buckets) = from_pairs(&pos);
                (c.negative_spans, c.negative_buckets) = from_pairs(&neg);
                c.zero_count += moved;
                c.zero_threshold = t;
            }
            (self.zero_count, c.zero_count) =
                kahan_sum_inc(other_zero, self.zero_count, c.zero_count);
        }
        (self.count, c.count) = kahan_sum_inc(other.count, self.count, c.count);
        (self.sum, c.sum) = kahan_sum_inc(other.sum, self.sum, c.sum);

        let mine_pos = to_pairs(&self.positive_spans, &self.positive_buckets);
        let comp_pos = to_pairs(&c.positive_spans, &c.positive_buckets);
        let other_pos = to_pairs(&other.positive_spans, &other.positive_buckets);
        if self.uses_custom_buckets() {
            let (sums, comps) = if custom_bounds_match(&self.custom_values, &other.custom_values)
                && custom_bounds_match(&c.custom_values, &self.custom_values)
            {
                kahan_merge_pairs(&mine_pos, &comp_pos, &other_pos)
            } else {
                info.custom_buckets_reconciled =
                    !custom_bounds_match(&self.custom_values, &other.custom_values);
                let common = intersect_bounds(&self.custom_values, &other.custom_values);
                let dense = |pairs: &[(i32, f64)], bounds: &[f64]| -> Vec<(i32, f64)> {
                    map_custom_pairs(pairs, bounds, &common)
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (i as i32, v))
                        .filter(|p| p.1 != 0.0)
                        .collect()
                };
                let a = dense(&mine_pos, &self.custom_values);
                let ca = dense(&comp_pos, &c.custom_values);
                let b = dense(&other_pos, &other.custom_values);
                self.custom_values = common.clone();
                c.custom_values = common;
                kahan_merge_pairs(&a, &ca, &b)
            };
            (self.positive_spans, self.positive_buckets) = from_pairs(&sums);
            (c.positive_spans, c.positive_buckets) = from_pairs(&comps);
            c.counter_reset_hint = self.counter_reset_hint;
            return Ok((c, info));
        }

        let mut mine_pos = mine_pos;
        let mut comp_pos = comp_pos;
        let mut other_pos = other_pos;
        let mut mine_neg = to_pairs(&self.negative_spans, &self.negative_buckets);
        let mut comp_neg = to_pairs(&c.negative_spans, &c.negative_buckets);
        let mut other_neg = to_pairs(&other.negative_spans, &other.negative_buckets);
        if c.schema > self.schema {
            comp_pos = reduce_pairs(&comp_pos, c.schema, self.schema);
            comp_neg = reduce_pairs(&comp_neg, c.schema, self.schema);
        }
        if other.schema < self.schema {
            mine_pos = reduce_pairs(&mine_pos, self.schema, other.schema);
            mine_neg = reduce_pairs(&mine_neg, self.schema, other.schema);
            comp_pos = reduce_pairs(&comp_pos, self.schema, other.schema);
            comp_neg = reduce_pairs(&comp_neg, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            other_pos = reduce_pairs(&other_pos, other.schema, self.schema);
            other_neg = reduce_pairs(&other_neg, other.schema, self.schema);
        }
        c.schema = self.schema;
        let t = self.zero_threshold;
        let (pos, cpos) = kahan_merge_pairs(
            &mine_pos,
            &comp_pos,
            skip_below_threshold(&other_pos, self.schema, t),
        );
        let (neg, cneg) = kahan_merge_pairs(
            &mine_neg,
            &comp_neg,
            skip_below_threshold(&other_neg, self.schema, t),
        );
        (self.positive_spans, self.positive_buckets) = from_pairs(&pos);
        (self.negative_spans, self.negative_buckets) = from_pairs(&neg);
        (c.positive_spans, c.positive_buckets) = from_pairs(&cpos);
        (c.negative_spans, c.negative_buckets) = from_pairs(&cneg);
        c.counter_reset_hint = self.counter_reset_hint;
        Ok((c, info))
    }

    /// Scales count, sum, zero count and all buckets by `factor`; a negative factor makes the
    /// histogram a gauge (Prometheus `Mul`).
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        for b in self
            .positive_buckets
            .iter_mut()
            .chain(self.negative_buckets.iter_mut())
        {
            *b *= factor;
        }
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Divides like [`FloatHistogram::mul`] multiplies (Prometheus `Div`). Division by zero sets
    /// count, sum and zero count to ±Inf/NaN and removes all buckets.
    pub fn div(&mut self, divisor: f64) {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        if divisor == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return;
        }
        for b in self
            .positive_buckets
            .iter_mut()
            .chain(self.negative_buckets.iter_mut())
        {
            *b /= divisor;
        }
        if divisor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Counter resets and equality.

    /// True if `self`, following `previous`, means the counter was reset (Prometheus
    /// `DetectReset`): any count (total, zero bucket, a bucket; not the sum) went down, a
    /// populated bucket disappeared, the resolution increased or the zero bucket shrank. The
    /// hints `CounterReset`/`NotCounterReset` short-cut the answer.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !custom_bounds_match(&self.custom_values, &previous.custom_values) {
                return self.detect_reset_mismatched_custom(previous);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, new_threshold) =
            previous.zero_count_for_larger_threshold(self.zero_threshold);
        if new_threshold != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zero {
            return true;
        }
        let sides = [
            (
                (&self.positive_spans, &self.positive_buckets),
                (&previous.positive_spans, &previous.positive_buckets),
            ),
            (
                (&self.negative_spans, &self.negative_buckets),
                (&previous.negative_spans, &previous.negative_buckets),
            ),
        ];
        for ((cs, cb), (ps, pb)) in sides {
            let cur =
                skip_below_threshold(&to_pairs(cs, cb), self.schema, self.zero_threshold).to_vec();
            let mut prev = to_pairs(ps, pb);
            if previous.schema > self.schema && !previous.uses_custom_buckets() {
                prev = reduce_pairs(&prev, previous.schema, self.schema);
            }
            let prev = skip_below_threshold(&prev, self.schema, self.zero_threshold);
            for &(idx, pc) in prev {
                match cur.binary_search_by_key(&idx, |p| p.0) {
                    Ok(k) => {
                        if cur[k].1 < pc {
                            return true;
                        }
                    }
                    Err(_) => {
                        if pc != 0.0 {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// Reset detection between custom-bucket histograms with different bounds: compares the
    /// cumulative counts at every bound both share.
    fn detect_reset_mismatched_custom(&self, previous: &FloatHistogram) -> bool {
        let common = intersect_bounds(&self.custom_values, &previous.custom_values);
        let cur = map_custom_pairs(
            &to_pairs(&self.positive_spans, &self.positive_buckets),
            &self.custom_values,
            &common,
        );
        let prev = map_custom_pairs(
            &to_pairs(&previous.positive_spans, &previous.positive_buckets),
            &previous.custom_values,
            &common,
        );
        cur.iter().zip(&prev).any(|(c, p)| c < p)
    }

    /// Prometheus `Equals`: same schema, zero threshold, custom bounds and bucket layout, and
    /// bit-identical count, sum, zero count and bucket counts. The hint is not compared.
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
        let same_all =
            |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(*x, *y));
        if self.schema != other.schema
            || !same(self.count, other.count)
            || !same(self.sum, other.sum)
        {
            return false;
        }
        if self.uses_custom_buckets()
            && !custom_bounds_match(&self.custom_values, &other.custom_values)
        {
            return false;
        }
        self.zero_threshold == other.zero_threshold
            && same(self.zero_count, other.zero_count)
            && spans_match(&self.negative_spans, &other.negative_spans)
            && same_all(&self.negative_buckets, &other.negative_buckets)
            && spans_match(&self.positive_spans, &other.positive_spans)
            && same_all(&self.positive_buckets, &other.positive_buckets)
    }

    // -----------------------------------------------------------------------------------------
    // Bucket iteration.

    fn make_bucket(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        let cv = &self.custom_values;
        let (lower, upper) = if positive {
            (
                bucket_bound(idx.wrapping_sub(1), self.schema, cv),
                bucket_bound(idx, self.schema, cv),
            )
        } else {
            (
                -bucket_bound(idx, self.schema, cv),
                -bucket_bound(idx.wrapping_sub(1), self.schema, cv),
            )
        };
        let (lower_inclusive, upper_inclusive) = if self.uses_custom_buckets() {
            (idx == 0, true)
        } else {
            (lower < 0.0, upper > 0.0)
        };
        Bucket {
            lower,
            upper,
            lower_inclusive,
            upper_inclusive,
            count,
            index: idx,
        }
    }

    /// Positive buckets in ascending order (all buckets of a custom-bucket histogram).
    pub fn positive_bucket_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        to_pairs(&self.positive_spans, &self.positive_buckets)
            .into_iter()
            .map(move |(idx, count)| self.make_bucket(idx, count, true))
    }

    /// Negative buckets from the one next to zero downwards (ascending index).
    pub fn negative_bucket_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        to_pairs(&self.negative_spans, &self.negative_buckets)
            .into_iter()
            .map(move |(idx, count)| self.make_bucket(idx, count, false))
    }

    /// Clamps a bucket overlapping the zero bucket to the zero threshold.
    fn clamp_to_zero_bucket(&self, mut b: Bucket) -> Bucket {
        let t = self.zero_threshold;
        if b.upper < 0.0 && b.upper > -t {
            b.upper = -t;
        } else if b.lower > 0.0 && b.lower < t {
            b.lower = t;
        }
        b
    }

    /// All buckets in ascending order of their bounds: negative buckets, the zero bucket (when
    /// its count is positive), positive buckets (Prometheus `AllBucketIterator`).
    pub fn all_buckets(&self) -> impl Iterator<Item = Bucket> + '_ {
        let mut out: Vec<Bucket> = self.negative_bucket_iter().collect();
        out.reverse();
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        out.extend(self.positive_bucket_iter());
        out.into_iter().map(move |b| self.clamp_to_zero_bucket(b))
    }

    /// All buckets in descending order (Prometheus `AllReverseBucketIterator`).
    pub fn all_buckets_reverse(&self) -> impl Iterator<Item = Bucket> + '_ {
        let mut out: Vec<Bucket> = self.positive_bucket_iter().collect();
        out.reverse();
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        out.extend(self.negative_bucket_iter());
        out.into_iter().map(move |b| self.clamp_to_zero_bucket(b))
    }
}

/// Go's `%g` (`strconv.FormatFloat(v, 'g', -1, 64)`): the shortest representation, in
/// exponent form (`1e+06`, `1.5e-05`) for decimal exponents below -4 or from 6 on.
pub fn format_go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde<exp>".
    let e = format!("{:e}", v.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = (exp + 1) as usize;
    if digits.len() <= int_len {
        let zeros = "0".repeat(int_len - digits.len());
        format!("{sign}{digits}{zeros}")
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

impl FloatHistogram {
    /// The test-script notation of this histogram (Prometheus `TestExpression`), e.g.
    /// `{{schema:1 count:3 sum:5 offset:-1 buckets:[1 2]}}`, for messages.
    pub fn test_expression(&self) -> String {
        let mut m = self.clone();
        m.compact(1 << 16);
        let mut parts: Vec<String> = Vec::new();
        if m.schema != 0 {
            parts.push(format!("schema:{}", m.schema));
        }
        if m.count != 0.0 {
            parts.push(format!("count:{}", format_go_g(m.count)));
        }
        if m.sum != 0.0 {
            parts.push(format!("sum:{}", format_go_g(m.sum)));
        }
        if m.zero_count != 0.0 {
            parts.push(format!("z_bucket:{}", format_go_g(m.zero_count)));
        }
        if m.zero_threshold != 0.0 {
            parts.push(format!("z_bucket_w:{}", format_go_g(m.zero_threshold)));
        }
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format_go_g(*x))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if m.uses_custom_buckets() {
            parts.push(format!("custom_values:[{}]", list(&m.custom_values)));
        }
        match m.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => parts.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotCounterReset => parts.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
        }
        for (spans, buckets, bkey, okey) in [
            (&m.positive_spans, &m.positive_buckets, "buckets", "offset"),
            (
                &m.negative_spans,
                &m.negative_buckets,
                "n_buckets",
                "n_offset",
            ),
        ] {
            if spans.len() > 1 {
                // Cannot happen after compaction unless buckets are very far apart.
                let desc: Vec<String> = spans
                    .iter()
                    .map(|s| format!("{}:{}", s.offset, s.length))
                    .collect();
                parts.push(format!("{okey}_spans:[{}]", desc.join(" ")));
            } else if let Some(s) = spans.first() {
                if s.offset != 0 {
                    parts.push(format!("{okey}:{}", s.offset));
                }
            }
            if !buckets.is_empty() {
                parts.push(format!("{bkey}:[{}]", list(buckets)));
            }
        }
        format!("{{{{{}}}}}", parts.join(" "))
    }
}

impl std::fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.test_expression())
    }
}

/// The part of one bucket that a trim keeps: its count and the value its observations are
/// assumed to have (for the re-estimated sum).
struct KeptPart {
    count: f64,
    value: f64,
}

/// Linear interpolation within `[lower, upper]` (custom buckets and the zero bucket).
fn trim_linear(lower: f64, upper: f64, count: f64, cut: f64, keep_below: bool) -> KeptPart {
    let none = KeptPart {
        count: 0.0,
        value: 0.0,
    };
    if keep_below {
        if cut >= upper {
            KeptPart {
                count,
                value: (lower + upper) / 2.0,
            }
        } else if cut <= lower {
            none
        } else {
            KeptPart {
                count: count * (cut - lower) / (upper - lower),
                value: (lower + cut) / 2.0,
            }
        }
    } else if cut <= lower {
        KeptPart {
            count,
            value: (lower + upper) / 2.0,
        }
    } else if cut >= upper {
        none
    } else {
        KeptPart {
            count: count * (upper - cut) / (upper - lower),
            value: (cut + upper) / 2.0,
        }
    }
}

/// Exponential interpolation within an exponential bucket (both bounds of the same sign);
/// observations are valued at the geometric mean of the kept range.
fn trim_exponential(lower: f64, upper: f64, count: f64, cut: f64, keep_below: bool) -> KeptPart {
    let none = KeptPart {
        count: 0.0,
        value: 0.0,
    };
    let geo = |a: f64, b: f64| {
        let g = (a * b).sqrt();
        if b <= 0.0 {
            -g
        } else {
            g
        }
    };
    let (kept_lower, kept_upper) = if keep_below {
        if cut >= upper {
            (lower, upper)
        } else if cut <= lower {
            return none;
        } else {
            (lower, cut)
        }
    } else if cut <= lower {
        (lower, upper)
    } else if cut >= upper {
        return none;
    } else {
        (cut, upper)
    };
    if (kept_lower, kept_upper) == (lower, upper) {
        return KeptPart {
            count,
            value: geo(lower, upper),
        };
    }
    let (ll, lu) = (lower.abs().log2(), upper.abs().log2());
    let (kl, ku) = (kept_lower.abs().log2(), kept_upper.abs().log2());
    let fraction = (ku - kl) / (lu - ll);
    KeptPart {
        count: count * fraction,
        value: geo(kept_lower, kept_upper),
    }
}

/// Trim of one custom bucket, with Prometheus' treatment of the infinite edge buckets: the
/// first bucket counts as `(0, upper]` when its upper bound is positive (else all its
/// observations sit at its upper bound, or at the cut), the `+Inf` bucket's observations sit at
/// its lower bound (or at the cut), and a bucket cut by the threshold that cannot be
/// interpolated is dropped.
fn trim_custom(lower: f64, upper: f64, count: f64, cut: f64, keep_below: bool) -> KeptPart {
    let none = KeptPart {
        count: 0.0,
        value: 0.0,
    };
    match (lower == f64::NEG_INFINITY, upper == f64::INFINITY) {
        (true, true) => none,
        (false, true) => {
            if keep_below || cut == f64::INFINITY {
                none
            } else {
                KeptPart {
                    count,
                    value: cut.max(lower),
                }
            }
        }
        (true, false) => {
            if upper > 0.0 {
                if !keep_below && cut < 0.0 {
                    return none;
                }
                trim_linear(0.0, upper, count, cut, keep_below)
            } else if keep_below {
                KeptPart {
                    count,
                    value: cut.min(upper),
                }
            } else {
                none
            }
        }
        (false, false) => trim_linear(lower, upper, count, cut, keep_below),
    }
}

impl FloatHistogram {
    /// The `</` operator (Prometheus `TRIM_UPPER`): removes the observations above `cut`,
    /// interpolating within the bucket that contains it (exponentially for exponential buckets,
    /// linearly for custom buckets and the zero bucket). Count and sum are re-estimated from the
    /// remaining buckets; when nothing is removed the histogram is returned unchanged.
    pub fn trim_upper(&self, cut: f64) -> FloatHistogram {
        self.trim(cut, true)
    }

    /// The `>/` operator (Prometheus `TRIM_LOWER`): removes the observations below `cut`; see
    /// [`FloatHistogram::trim_upper`].
    pub fn trim_lower(&self, cut: f64) -> FloatHistogram {
        self.trim(cut, false)
    }

    fn trim(&self, cut: f64, keep_below: bool) -> FloatHistogram {
        if (keep_below && cut == f64::INFINITY) || (!keep_below && cut == f64::NEG_INFINITY) {
            return self.clone();
        }
        let mut out = self.clone();
        let mut changed = false;
        let (mut count, mut count_c) = (0.0, 0.0);
        let (mut sum, mut sum_c) = (0.0, 0.0);
        let mut account = |part: &KeptPart, original: f64, changed: &mut bool| {
            if part.count != original {
                *changed = true;
            }
            if part.count != 0.0 {
                (count, count_c) = kahan_sum_inc(part.count, count, count_c);
                (sum, sum_c) = kahan_sum_inc(part.count * part.value, sum, sum_c);
            }
        };
        if self.uses_custom_buckets() {
            let parts: Vec<KeptPart> = self
                .positive_bucket_iter()
                .map(|b| trim_custom(b.lower, b.upper, b.count, cut, keep_below))
                .collect();
            for (slot, part) in out.positive_buckets.iter_mut().zip(&parts) {
                account(part, *slot, &mut changed);
                *slot = part.count;
            }
        } else {
            let t = self.zero_threshold;
            let (zl, zu) = if self.negative_buckets.is_empty() && !self.positive_buckets.is_empty()
            {
                (0.0, t)
            } else if self.positive_buckets.is_empty() && !self.negative_buckets.is_empty() {
                (-t, 0.0)
            } else {
                (-t, t)
            };
            if self.zero_count != 0.0 {
                let part = trim_linear(zl, zu, self.zero_count, cut, keep_below);
                account(&part, self.zero_count, &mut changed);
                out.zero_count = part.count;
            }
            let neg: Vec<KeptPart> = self
                .negative_bucket_iter()
                .map(|b| {
                    let b = self.clamp_to_zero_bucket(b);
                    trim_exponential(b.lower, b.upper, b.count, cut, keep_below)
                })
                .collect();
            for (slot, part) in out.negative_buckets.iter_mut().zip(&neg) {
                account(part, *slot, &mut changed);
                *slot = part.count;
            }
            let pos: Vec<KeptPart> = self
                .positive_bucket_iter()
                .map(|b| {
                    let b = self.clamp_to_zero_bucket(b);
                    trim_exponential(b.lower, b.upper, b.count, cut, keep_below)
                })
                .collect();
            for (slot, part) in out.positive_buckets.iter_mut().zip(&pos) {
                account(part, *slot, &mut changed);
                *slot = part.count;
            }
        }
        if !changed {
            return self.clone();
        }
        out.count = count + count_c;
        out.sum = sum + sum_c;
        out
    }
}

// ---------------------------------------------------------------------------------------------
// PromQL functions.

/// `histogram_quantile` of a native histogram (Prometheus 3.x `HistogramQuantile`).
pub fn histogram_quantile(q: f64, h: &FloatHistogram) -> f64 {
    histogram_quantile_with_info(q, h).0
}

/// [`histogram_quantile`] plus the NaN-observation info annotation Prometheus would attach.
pub fn histogram_quantile_with_info(q: f64, h: &FloatHistogram) -> (f64, Option<QuantileNanInfo>) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, None);
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let buckets: Vec<Bucket> = if forward {
        h.all_buckets().collect()
    } else {
        h.all_buckets_reverse().collect()
    };
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut bucket = Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
        index: 0,
    };
    let mut count = 0.0;
    let mut pos = 0usize;
    while pos < buckets.len() {
        bucket = buckets[pos];
        pos += 1;
        if bucket.count == 0.0 {
            continue;
        }
        count += bucket.count;
        if count >= rank {
            break;
        }
    }
    let custom = h.uses_custom_buckets();
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, None);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, None);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            return (f64::NAN, Some(QuantileNanInfo::ResultIsNan));
        }
        return (bucket.upper, None);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut info = None;
    if h.sum.is_nan() {
        let total = count + buckets[pos..].iter().map(|b| b.count).sum::<f64>();
        if total < h.count {
            info = Some(QuantileNanInfo::SkewedHigher);
        }
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (
            bucket.lower + (bucket.upper - bucket.lower) * fraction,
            info,
        );
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            info,
        );
    }
    (
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
        info,
    )
}

/// `histogram_fraction` of a native histogram (Prometheus 3.x `HistogramFraction`).
pub fn histogram_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    histogram_fraction_with_info(lower, upper, h).0
}

/// [`histogram_fraction`] plus whether NaN observations were excluded (Prometheus then attaches
/// "input to histogram_fraction has NaN observations, which are excluded from all fractions").
pub fn histogram_fraction_with_info(lower: f64, upper: f64, h: &FloatHistogram) -> (f64, bool) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, false);
    }
    if lower >= upper {
        return (0.0, false);
    }
    let custom = h.uses_custom_buckets();
    let buckets: Vec<Bucket> = h.all_buckets().collect();
    let mut count = 0.0;
    let mut rank = 0.0;
    let (mut lower_rank, mut upper_rank) = (0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut pos = 0usize;
    while pos < buckets.len() {
        let mut b = buckets[pos];
        pos += 1;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = |v: f64| -> f64 {
            if b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * (v - b.lower) / (b.upper - b.lower)
        };
        let exponential = |v: f64| -> f64 {
            let log_lower = b.lower.abs().log2();
            let log_upper = b.upper.abs().log2();
            let log_v = v.abs().log2();
            let fraction = if v > 0.0 {
                (log_v - log_lower) / (log_upper - log_lower)
            } else {
                1.0 - ((log_v - log_upper) / (log_lower - log_upper))
            };
            rank + b.count * fraction
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = if custom || zero_bucket {
                linear(lower)
            } else {
                exponential(lower)
            };
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = if custom || zero_bucket {
                linear(upper)
            } else {
                exponential(upper)
            };
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut nans_excluded = false;
    if h.sum.is_nan() {
        count += buckets[pos..].iter().map(|b| b.count).sum::<f64>();
        nans_excluded = count < h.count;
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, nans_excluded)
}

fn histogram_variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut variance, mut comp) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -g
            } else {
                g
            }
        };
        let delta = val - mean;
        (variance, comp) = kahan_sum_inc(b.count * delta * delta, variance, comp);
    }
    (variance + comp) / h.count
}

/// `histogram_stddev`: estimated standard deviation of the observations (geometric bucket
/// midpoints for exponential buckets, arithmetic ones for custom buckets, 0 in the zero bucket).
pub fn histogram_stddev(h: &FloatHistogram) -> f64 {
    histogram_variance(h).sqrt()
}

/// `histogram_stdvar`: the square of [`histogram_stddev`].
pub fn histogram_stdvar(h: &FloatHistogram) -> f64 {
    histogram_variance(h)
}

pub mod notation;

#[cfg(test)]
mod tests;
