//! The native-histogram notation of the PromQL test scripts (`{{schema:1 count:3 …}}`), the
//! series expansion `{{A}}+{{B}}xN`, and the histogram comparison of Prometheus' test framework
//! (`promql/promqltest`).
//!
//! Entry points:
//! * [`parse_histogram`] / [`parse_histogram_with_hint`] — one literal (with or without the
//!   surrounding `{{ }}`); the latter also says whether `counter_reset_hint` was spelled out.
//! * [`expand_series`] — `{{A}}xN`, `{{A}}+{{B}}xN`, `{{A}}-{{B}}xN` (N+1 histograms).
//! * [`histograms_match`] / [`histograms_match_hint`] — expected-vs-result comparison:
//!   both sides compacted, schema / zero threshold / custom bounds exact, counts with the float
//!   tolerance, counter-reset hint only when the expectation spells it out.

use super::{spans_match, CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

/// Relative tolerance of the reference test framework (`defaultEpsilon`).
pub const EPSILON: f64 = 0.000001;
/// Smallest positive normal float (`minNormal` of Prometheus' `almost` package).
const MIN_NORMAL: f64 = 2.2250738585072014e-308;
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Prometheus' `almost.Equal`: both NaN (and both or neither the staleness marker), identical,
/// or within relative `epsilon` (absolute `epsilon * minNormal` when either side is zero).
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return (a.to_bits() == STALE_NAN_BITS) == (b.to_bits() == STALE_NAN_BITS);
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Parses one histogram literal. All keys are optional and may appear once each.
pub fn parse_histogram(text: &str) -> Result<FloatHistogram, String> {
    parse_histogram_with_hint(text).map(|(h, _)| h)
}

/// Like [`parse_histogram`]; the flag is true when the literal spells out `counter_reset_hint`
/// (the test framework compares the hint only then).
pub fn parse_histogram_with_hint(text: &str) -> Result<(FloatHistogram, bool), String> {
    let mut body = text.trim();
    if let Some(rest) = body.strip_prefix("{{") {
        body = rest
            .strip_suffix("}}")
            .ok_or_else(|| format!("unterminated histogram literal: {text}"))?;
    }
    let items = split_items(body)?;

    let mut h = FloatHistogram::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut pos_buckets: Option<Vec<f64>> = None;
    let mut neg_buckets: Option<Vec<f64>> = None;
    let mut pos_offset = 0i32;
    let mut neg_offset = 0i32;
    let mut hint_explicit = false;
    for (key, value) in items {
        if seen.contains(&key) {
            return Err(format!("duplicate key \"{key}\" in histogram"));
        }
        seen.push(key);
        match key {
            "schema" => h.schema = parse_int(key, value)?,
            "sum" => h.sum = parse_float(key, value)?,
            "count" => h.count = parse_float(key, value)?,
            "z_bucket" => h.zero_count = parse_float(key, value)?,
            "z_bucket_w" => h.zero_threshold = parse_float(key, value)?,
            "buckets" => pos_buckets = Some(parse_list(key, value)?),
            "n_buckets" => neg_buckets = Some(parse_list(key, value)?),
            "offset" => pos_offset = parse_int(key, value)?,
            "n_offset" => neg_offset = parse_int(key, value)?,
            "custom_values" => h.custom_values = parse_list(key, value)?,
            "counter_reset_hint" => {
                hint_explicit = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => {
                        return Err(format!(
                            "error parsing counter_reset_hint: unknown value {other}"
                        ))
                    }
                };
            }
            other => return Err(format!("unknown histogram key \"{other}\"")),
        }
    }
    let side = |buckets: Option<Vec<f64>>, offset: i32| -> (Vec<Span>, Vec<f64>) {
        match buckets {
            Some(b) if !b.is_empty() => (
                vec![Span {
                    offset,
                    length: b.len() as u32,
                }],
                b,
            ),
            _ => (Vec::new(), Vec::new()),
        }
    };
    (h.positive_spans, h.positive_buckets) = side(pos_buckets, pos_offset);
    (h.negative_spans, h.negative_buckets) = side(neg_buckets, neg_offset);
    Ok((h, hint_explicit))
}

/// Splits `key:value key:[a b c] …` into (key, value) pairs; list values keep their brackets.
fn split_items(body: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut items = Vec::new();
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("expected key:value in histogram at \"{rest}\""))?;
        let key = rest[..colon].trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("bad histogram key at \"{rest}\""));
        }
        let after = rest[colon + 1..].trim_start();
        let end = if after.starts_with('[') {
            after
                .find(']')
                .map(|i| i + 1)
                .ok_or_else(|| format!("unterminated list in histogram at \"{after}\""))?
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        let value = &after[..end];
        if value.is_empty() {
            return Err(format!("missing value for histogram key \"{key}\""));
        }
        items.push((key, value));
        rest = after[end..].trim_start();
    }
    Ok(items)
}

/// A number as the PromQL lexer reads it: integers in Go notation (decimal, `0x…`, `0o…`,
/// `0b…`), else a float (including `Inf`, `NaN`, exponents).
fn parse_number(text: &str) -> Option<f64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let radix = |p: &str| digits.strip_prefix(p);
    let int = if let Some(h) = radix("0x").or_else(|| radix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = radix("0o").or_else(|| radix("0O")) {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = radix("0b").or_else(|| radix("0B")) {
        i64::from_str_radix(b, 2).ok()
    } else {
        None
    };
    if let Some(i) = int {
        let v = i as f64;
        return Some(if neg { -v } else { v });
    }
    let lower = digits.to_ascii_lowercase();
    if lower.is_empty()
        || !(lower
            .chars()
            .all(|c| c.is_ascii_digit() || ".e+-_".contains(c))
            || lower == "inf"
            || lower == "infinity"
            || lower == "nan")
    {
        return None;
    }
    let v: f64 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -v } else { v })
}

fn parse_float(key: &str, value: &str) -> Result<f64, String> {
    parse_number(value).ok_or_else(|| format!("error parsing {key} number: {value}"))
}

fn parse_int(key: &str, value: &str) -> Result<i32, String> {
    let v = parse_number(value).ok_or_else(|| format!("error parsing {key} number: {value}"))?;
    if v.fract() != 0.0 || !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v) {
        return Err(format!("error parsing {key} number: {value}"));
    }
    Ok(v as i32)
}

fn parse_list(key: &str, value: &str) -> Result<Vec<f64>, String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| format!("error parsing {key} float array: {value}"))?;
    inner
        .split_whitespace()
        .map(|t| parse_number(t).ok_or_else(|| format!("error parsing {key} float array: {value}")))
        .collect()
}

/// The N+1 histograms of `{{start}}+{{step}}xN` (`negative`: `-`). A `step` equal to
/// `FloatHistogram::default()` with `negative == false` is the plain repetition `{{start}}xN`
/// (N+1 copies, as the reference grammar does). Like the reference, the running value may not
/// be finer than the step (`cannot merge from schema …`).
pub fn expand_series(
    start: &FloatHistogram,
    step: &FloatHistogram,
    times: usize,
    negative: bool,
) -> Result<Vec<FloatHistogram>, String> {
    let mut out = Vec::with_capacity(times + 1);
    out.push(start.clone());
    if !negative && *step == FloatHistogram::default() {
        out.extend(std::iter::repeat_n(start.clone(), times));
        return Ok(out);
    }
    let mut cur = start.clone();
    for _ in 0..times {
        if cur.schema > step.schema {
            return Err(format!(
                "error combining histograms: cannot merge from schema {} to {}",
                step.schema, cur.schema
            ));
        }
        let mut next = cur.clone();
        if !next.uses_custom_buckets() {
            next.custom_values.clear();
        }
        let result = if negative {
            next.sub(step)
        } else {
            next.add(step)
        };
        result.map_err(|e| e.to_string())?;
        out.push(next.clone());
        cur = next;
    }
    Ok(out)
}

/// The reference framework's histogram comparison; the counter-reset hint is compared when the
/// expectation's hint is not `Unknown` (use [`histograms_match_hint`] when it is known whether
/// the literal spelled the hint out, so that an explicit `counter_reset_hint:unknown` is checked
/// too).
pub fn histograms_match(expected: &FloatHistogram, got: &FloatHistogram) -> bool {
    let explicit = expected.counter_reset_hint != CounterResetHint::Unknown;
    histograms_match_hint(expected, got, explicit)
}

/// [`histograms_match`] with explicit control over the hint check.
pub fn histograms_match_hint(
    expected: &FloatHistogram,
    got: &FloatHistogram,
    check_hint: bool,
) -> bool {
    if check_hint && expected.counter_reset_hint != got.counter_reset_hint {
        return false;
    }
    let mut exp = expected.clone();
    exp.compact(0);
    let mut cur = got.clone();
    cur.compact(0);
    let eq = |a: f64, b: f64| almost_equal(a, b, EPSILON);
    let all_eq =
        |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq(*x, *y));
    if exp.schema != cur.schema || !eq(exp.count, cur.count) || !eq(exp.sum, cur.sum) {
        return false;
    }
    if exp.schema == CUSTOM_BUCKETS_SCHEMA
        && (exp.custom_values.len() != cur.custom_values.len()
            || exp
                .custom_values
                .iter()
                .zip(&cur.custom_values)
                .any(|(a, b)| a != b))
    {
        return false;
    }
    exp.zero_threshold == cur.zero_threshold
        && eq(exp.zero_count, cur.zero_count)
        && spans_match(&exp.negative_spans, &cur.negative_spans)
        && all_eq(&exp.negative_buckets, &cur.negative_buckets)
        && spans_match(&exp.positive_spans, &cur.positive_spans)
        && all_eq(&exp.positive_buckets, &cur.positive_buckets)
}

/// Self-checks of the notation: returns the names of the failed checks.
#[cfg(test)]
fn self_check() -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |name: &str, ok: bool| {
        if !ok {
            failures.push(name.to_string());
        }
    };
    let full = parse_histogram(
        "{{schema:1 sum:-0.3 count:3.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5 counter_reset_hint:gauge}}",
    );
    check(
        "full literal",
        full.as_ref().is_ok_and(|h| {
            h.schema == 1
                && h.sum == -0.3
                && h.count == 3.1
                && h.zero_count == 7.1
                && h.zero_threshold == 0.05
                && h.positive_spans
                    == [Span {
                        offset: -3,
                        length: 3,
                    }]
                && h.positive_buckets == [5.1, 10.0, 7.0]
                && h.negative_spans
                    == [Span {
                        offset: -5,
                        length: 2,
                    }]
                && h.negative_buckets == [4.1, 5.0]
                && h.counter_reset_hint == CounterResetHint::Gauge
        }),
    );
    check(
        "empty literal",
        parse_histogram("{{}}").is_ok_and(|h| h == FloatHistogram::default()),
    );
    check(
        "custom values",
        parse_histogram("{{schema:-53 sum:4 count:5 custom_values:[2 4] buckets:[1 3 1]}}")
            .is_ok_and(|h| h.custom_values == [2.0, 4.0] && h.positive_buckets.len() == 3),
    );
    check(
        "inf and nan",
        parse_histogram("{{count:Inf sum:NaN}}")
            .is_ok_and(|h| h.count.is_infinite() && h.sum.is_nan()),
    );
    check(
        "duplicate key rejected",
        parse_histogram("{{count:1 count:2}}").is_err(),
    );
    check(
        "unknown key rejected",
        parse_histogram("{{foo:1}}").is_err(),
    );
    check(
        "explicit unknown hint",
        parse_histogram_with_hint("{{counter_reset_hint:unknown}}").is_ok_and(|(_, e)| e),
    );

    // `{{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{sum:2 count:1 buckets:[1] offset:1}}x10`
    let base = parse_histogram("{{schema:0 sum:4 count:4 buckets:[1 2 1]}}");
    let inc = parse_histogram("{{sum:2 count:1 buckets:[1] offset:1}}");
    if let (Ok(base), Ok(inc)) = (base, inc) {
        let series = expand_series(&base, &inc, 10, false);
        check(
            "increasing series",
            series.as_ref().is_ok_and(|s| {
                s.len() == 11
                    && s[10].count == 14.0
                    && s[10].sum == 24.0
                    && s[10].positive_buckets == [1.0, 12.0, 1.0]
            }),
        );
        let down = expand_series(&base, &inc, 2, true);
        check(
            "decreasing series",
            down.is_ok_and(|s| {
                s.len() == 3 && s[2].count == 2.0 && s[2].positive_buckets == [1.0, 0.0, 1.0]
            }),
        );
        let copies = expand_series(&base, &FloatHistogram::default(), 3, false);
        check(
            "repetition",
            copies.is_ok_and(|s| s.len() == 4 && s.iter().all(|h| *h == base)),
        );
        let fine = FloatHistogram {
            schema: 2,
            ..base.clone()
        };
        check(
            "finer base than step is an error",
            expand_series(&fine, &inc, 1, false).is_err(),
        );
    } else {
        check("series literals", false);
    }

    // Comparison: compaction, tolerance, hints.
    let a = parse_histogram("{{count:3 sum:2 buckets:[1 0 2]}}");
    let b = parse_histogram("{{count:3.0000001 sum:2 buckets:[1] offset:0}}");
    if let (Ok(mut a), Ok(b)) = (a, b) {
        check("different buckets differ", !histograms_match(&a, &b));
        a.positive_buckets = vec![1.0, 0.0, 0.0];
        check("compaction and tolerance", histograms_match(&a, &b));
        let gauge = FloatHistogram {
            counter_reset_hint: CounterResetHint::Gauge,
            ..a.clone()
        };
        check(
            "hint compared when spelled out",
            !histograms_match(&gauge, &b),
        );
        check("hint ignored when absent", histograms_match(&a, &gauge));
        check(
            "explicit unknown hint compared",
            !histograms_match_hint(&a, &gauge, true),
        );
        let c = FloatHistogram {
            count: 3.1,
            ..b.clone()
        };
        check("count outside tolerance", !histograms_match(&a, &c));
    } else {
        check("comparison literals", false);
    }
    failures
}

#[cfg(test)]
mod tests {
    #[test]
    fn notation_parses_expands_and_compares_as_the_test_framework_does() {
        assert_eq!(super::self_check(), Vec::<String>::new());
    }
}
