//! promtool's input-series notation: a series descriptor (`up{job="x"}`, equality matchers
//! only) and its values in the expanding notation of PromQL test scripts: `1 2 3`, `1+2x3`
//! (4 values), `5-1x2`, `7x2` (3 copies), `_` and `_x3` (missing samples), `stale`, and
//! native histograms `{{schema:0 sum:5 count:4 buckets:[1 2 1]}}` (with `x`/`+`/`-` forms).

use sextant_query::promql::{parse, Expr};
use sextant_storage::{FloatHistogram, Labels, MatchOp, STALE_NAN_BITS};

pub(crate) use sextant_storage::histogram::notation as histogram_notation;

/// One position of an expanded series.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SeqValue {
    /// `_`: no sample at this step.
    Omitted,
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

/// Parses a series descriptor into labels (promtool's `ParseMetric`): a metric name and/or
/// `{name="value", …}` with equality matchers only.
pub(crate) fn parse_series(desc: &str) -> Result<Labels, String> {
    let expr = parse(desc).map_err(|e| e.to_string())?;
    let Expr::VectorSelector(sel) = expr else {
        return Err(format!("{desc:?} is not a series descriptor"));
    };
    if sel.offset != 0 || sel.at.is_some() {
        return Err(format!("{desc:?} is not a series descriptor"));
    }
    let mut pairs = Vec::with_capacity(sel.matchers.len());
    for m in &sel.matchers {
        if m.op != MatchOp::Equal {
            return Err(format!(
                "only equality matchers may describe a series, got {}{}{:?}",
                m.name,
                m.op.as_str(),
                m.value
            ));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Expands a `values:` string.
pub(crate) fn expand_values(s: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for token in tokens(s)? {
        if token.starts_with("{{") {
            for h in expand_histogram(token)? {
                out.push(SeqValue::Histogram(Box::new(h)));
            }
        } else {
            expand_float(token, &mut out)?;
        }
    }
    Ok(out)
}

/// Splits on whitespace, keeping `{{ … }}` literals (which contain spaces) whole.
fn tokens(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if s[i..].starts_with("{{") {
                let end = s[i..]
                    .find("}}")
                    .ok_or_else(|| format!("unterminated histogram in {s:?}"))?;
                i += end + 2;
            } else {
                i += 1;
            }
        }
        out.push(&s[start..i]);
    }
    Ok(out)
}

/// Reads a number at the start of `s` (sign, digits, fraction, exponent, `Inf`, `NaN`).
fn scan_number(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let rest = &s[i..];
    for word in ["Inf", "inf", "NaN", "nan"] {
        if rest.starts_with(word) {
            let v: f64 = s[..i + 3].parse().ok()?;
            return Some((v, i + 3));
        }
    }
    let digits_start = i;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i == digits_start {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_digits = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_digits {
            i = j;
        }
    }
    s[..i].parse().ok().map(|v| (v, i))
}

fn parse_times(s: &str, token: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("invalid repetition in series values {token:?}"))
}

fn expand_float(token: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    let invalid = || format!("invalid value in series values {token:?}");
    if token == "_" {
        out.push(SeqValue::Omitted);
        return Ok(());
    }
    if let Some(n) = token.strip_prefix("_x") {
        for _ in 0..parse_times(n, token)? {
            out.push(SeqValue::Omitted);
        }
        return Ok(());
    }
    if token == "stale" {
        out.push(SeqValue::Float(f64::from_bits(STALE_NAN_BITS)));
        return Ok(());
    }
    let (start, used) = scan_number(token).ok_or_else(invalid)?;
    let mut rest = &token[used..];
    if rest.is_empty() {
        out.push(SeqValue::Float(start));
        return Ok(());
    }
    let mut step = 0.0;
    if rest.starts_with(['+', '-']) {
        let neg = rest.starts_with('-');
        let (v, used) = scan_number(&rest[1..]).ok_or_else(invalid)?;
        step = if neg { -v } else { v };
        rest = &rest[1 + used..];
    }
    let n = rest.strip_prefix('x').ok_or_else(invalid)?;
    let n = parse_times(n, token)?;
    let mut v = start;
    for _ in 0..=n {
        out.push(SeqValue::Float(v));
        v += step;
    }
    Ok(())
}

fn expand_histogram(token: &str) -> Result<Vec<FloatHistogram>, String> {
    let invalid = || format!("invalid histogram value {token:?}");
    let end = token.find("}}").ok_or_else(invalid)? + 2;
    let base = histogram_notation::parse_histogram(&token[..end])?;
    let mut rest = &token[end..];
    let mut step: Option<(FloatHistogram, bool)> = None;
    if let Some(after) = rest.strip_prefix(['+', '-']) {
        let neg = rest.starts_with('-');
        let e = after.find("}}").ok_or_else(invalid)? + 2;
        step = Some((histogram_notation::parse_histogram(&after[..e])?, neg));
        rest = &after[e..];
    }
    if rest.is_empty() {
        return if step.is_some() {
            Err(invalid())
        } else {
            Ok(vec![base])
        };
    }
    let n = rest.strip_prefix('x').ok_or_else(invalid)?;
    let n = usize::try_from(parse_times(n, token)?).map_err(|_| invalid())?;
    match step {
        Some((s, neg)) => histogram_notation::expand_series(&base, &s, n, neg),
        None => Ok(vec![base; n + 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(s: &str) -> Vec<Option<f64>> {
        expand_values(s)
            .unwrap_or_default()
            .into_iter()
            .map(|v| match v {
                SeqValue::Float(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn expands_the_notation() {
        assert_eq!(
            floats("0+10x3"),
            vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
        );
        assert_eq!(floats("1-1x2"), vec![Some(1.0), Some(0.0), Some(-1.0)]);
        assert_eq!(floats("7x2"), vec![Some(7.0); 3]);
        assert_eq!(
            floats("1 _ _x2 -2.5e1"),
            vec![Some(1.0), None, None, None, Some(-25.0)]
        );
        assert_eq!(floats("1e-3+1e-3x1"), vec![Some(0.001), Some(0.002)]);
        let stale = expand_values("stale").unwrap_or_default();
        assert!(matches!(stale.as_slice(), [SeqValue::Float(f)] if f.to_bits() == STALE_NAN_BITS));
        assert!(expand_values("1+x3").is_err());
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn expands_histograms() {
        let v = expand_values("{{sum:3 count:2 buckets:[2]}}+{{sum:1 count:1 buckets:[1]}}x2")
            .unwrap_or_default();
        let counts: Vec<f64> = v
            .iter()
            .filter_map(|x| match x {
                SeqValue::Histogram(h) => Some(h.count),
                _ => None,
            })
            .collect();
        assert_eq!(counts, vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn parses_series_descriptors() {
        let l = parse_series("up{job=\"a\", instance=\"x:1\"}").ok();
        assert_eq!(
            l,
            Some(Labels::from_pairs([
                ("__name__", "up"),
                ("instance", "x:1"),
                ("job", "a")
            ]))
        );
        assert!(parse_series("up{job=~\"a\"}").is_err());
        assert!(parse_series("up{job=\"a\"").is_err());
    }
}
