//! Request parameters: the merged form (query string plus form-encoded body), and parsers for
//! the times, durations, limits, `match[]` selectors and escaped label names the API accepts.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, Method};
use sextant_storage::Matcher;

use super::response::ApiError;
use super::timefmt;
use crate::promql::{parse, Expr, ParseError};

/// Default `start` of optional ranges: Prometheus' `minTime`, in milliseconds.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
/// Default `end` of optional ranges: Prometheus' `maxTime`, in milliseconds.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;

/// Prometheus' `minTime` and `maxTime` as Go prints them; its time parser accepts these two
/// strings although their years have more than four digits.
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

/// Largest request body read (Go's `ParseForm` reads at most 10 MB).
pub const MAX_BODY_BYTES: usize = 10 << 20;

/// The request's parameters, merged as Go's `r.Form`: form-encoded body values first, then
/// query-string values. [`Params::get`] is `r.FormValue`, [`Params::all`] is `r.Form[name]`.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Builds parameters from a form body (if any) and a query string (if any).
    pub fn from_parts(body: Option<&[u8]>, query: Option<&str>) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(body) = body {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// The first value of `name`, or `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`, body values first.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Params, ApiError> {
        let query = req.uri().query().map(str::to_string);
        let is_form = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| {
                    v.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                });
        let body = if is_form {
            let bytes = Bytes::from_request(req, state).await.map_err(|e| {
                ApiError::bad_data(format!("error parsing form values: {}", e.body_text()))
            })?;
            Some(bytes)
        } else {
            None
        };
        Ok(Params::from_parts(body.as_deref(), query.as_deref()))
    }
}

/// Why a parameter was rejected; `Display` gives Prometheus' wording.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("cannot parse {0:?} to a valid timestamp")]
    Timestamp(String),
    /// A timestamp in an optional parameter (`start`, `end`, `time`): names the parameter.
    #[error("Invalid time value for '{param}': cannot parse {value:?} to a valid timestamp")]
    TimeValue { param: &'static str, value: String },
    #[error("cannot parse {0:?} to a valid duration")]
    Duration(String),
    #[error("cannot parse {0:?} to a valid duration. It overflows int64")]
    DurationOverflow(String),
    #[error("strconv.Atoi: parsing {0:?}: invalid syntax")]
    IntSyntax(String),
    #[error("strconv.Atoi: parsing {0:?}: value out of range")]
    IntRange(String),
    #[error("limit must be non-negative")]
    NegativeLimit,
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("match[] must contain at least one non-empty matcher")]
    EmptyMatchers,
}

/// Parses a timestamp as Prometheus does: unix seconds as a float (rounded to milliseconds), or
/// RFC 3339 with optional fractional seconds. Returns milliseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, ParamError> {
    if let Some(t) = parse_go_float(s) {
        if !t.is_finite() {
            return Err(ParamError::Timestamp(s.to_string()));
        }
        let secs = t.trunc();
        let frac_ms = ((t - secs) * 1000.0).round();
        // `as` saturates, which keeps absurd inputs at the ends of the range.
        return Ok((secs as i64)
            .saturating_mul(1000)
            .saturating_add(frac_ms as i64));
    }
    if let Some(ms) = timefmt::parse_rfc3339_ms(s) {
        return Ok(ms);
    }
    match s {
        MIN_TIME_TEXT => Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => Ok(MAX_TIME_MS),
        _ => Err(ParamError::Timestamp(s.to_string())),
    }
}

/// An optional time parameter: `default` when empty.
pub fn parse_time_param(
    params: &Params,
    name: &'static str,
    default: i64,
) -> Result<i64, ParamError> {
    let v = params.get(name);
    if v.is_empty() {
        return Ok(default);
    }
    parse_time(v).map_err(|_| ParamError::TimeValue {
        param: name,
        value: v.to_string(),
    })
}

/// Parses a duration as Prometheus does: float seconds or a PromQL duration (`1h30m`).
/// Returns nanoseconds, like Go's `time.Duration`.
pub fn parse_duration(s: &str) -> Result<i64, ParamError> {
    if let Some(d) = parse_go_float(s) {
        if d.is_nan() {
            // Go converts NaN to the most negative int64 on the platforms Prometheus ships for.
            return Ok(i64::MIN);
        }
        let ns = d * 1e9;
        if !(i64::MIN as f64..=i64::MAX as f64).contains(&ns) {
            return Err(ParamError::DurationOverflow(s.to_string()));
        }
        return Ok(ns as i64);
    }
    parse_promql_duration_ns(s).ok_or_else(|| ParamError::Duration(s.to_string()))
}

/// `[0-9]+y?[0-9]+w?...ms?` in that unit order, or `0`. Nanoseconds; `None` when malformed or
/// out of range.
fn parse_promql_duration_ns(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    const MS: i128 = 1_000_000;
    // Units in the order they must appear, with their length in nanoseconds.
    const UNITS: [(&str, i128); 7] = [
        ("y", 365 * 86_400_000 * MS),
        ("w", 7 * 86_400_000 * MS),
        ("d", 86_400_000 * MS),
        ("h", 3_600_000 * MS),
        ("m", 60_000 * MS),
        ("s", 1_000 * MS),
        ("ms", MS),
    ];
    let mut rest = s;
    let mut next_unit = 0usize;
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i128 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (idx, unit) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())?;
        rest = &rest[unit.0.len()..];
        next_unit = idx + 1;
        total = total.checked_add(n.checked_mul(unit.1)?)?;
        if total > i64::MAX as i128 {
            return None;
        }
    }
    i64::try_from(total).ok()
}

/// Go's `strconv.ParseFloat` for the inputs that matter here (decimal, exponent, `Inf`, `NaN`).
fn parse_go_float(s: &str) -> Option<f64> {
    // Rust also accepts these spellings, as Go does; it rejects Go's hex floats and
    // underscores, which no client sends.
    s.parse::<f64>().ok()
}

/// A `limit` parameter: 0 (also when empty) means no limit.
pub fn parse_limit(s: &str) -> Result<usize, ParamError> {
    if s.is_empty() {
        return Ok(0);
    }
    let n = parse_go_int(s)?;
    usize::try_from(n).map_err(|_| ParamError::NegativeLimit)
}

/// Go's `strconv.Atoi`.
pub fn parse_go_int(s: &str) -> Result<i64, ParamError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::IntSyntax(s.to_string()));
    }
    s.parse::<i64>()
        .map_err(|_| ParamError::IntRange(s.to_string()))
}

/// Parses `match[]` selectors. Each must be a plain vector selector with at least one matcher
/// that does not match the empty string.
pub fn parse_matcher_sets(selectors: &[&str]) -> Result<Vec<Vec<Matcher>>, ParamError> {
    let mut sets = Vec::with_capacity(selectors.len());
    for s in selectors {
        let matchers = match parse(s)? {
            Expr::VectorSelector(vs) if vs.offset == 0 && vs.at.is_none() => vs.matchers,
            other => {
                return Err(ParamError::Parse(ParseError {
                    line: 1,
                    col: 1,
                    message: format!(
                        "expected a metric selector, got {}",
                        other.value_type().doc_name()
                    ),
                }))
            }
        };
        if matchers.iter().all(Matcher::matches_empty) {
            return Err(ParamError::EmptyMatchers);
        }
        sets.push(matchers);
    }
    Ok(sets)
}

/// Undoes Prometheus' value-encoding escape of a label name (`U__` prefix, `__` for `_`,
/// `_<hex code point>_` for any other character). Names without the prefix come back as they
/// are; `None` when the escape is malformed.
pub fn unescape_label_name(name: &str) -> Option<String> {
    let Some(escaped) = name.strip_prefix("U__") else {
        return Some(name.to_string());
    };
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            match chars.next()? {
                '_' if digits == 0 => {
                    out.push('_');
                    break;
                }
                '_' => {
                    out.push(char::from_u32(code)?);
                    break;
                }
                h => {
                    digits += 1;
                    if digits > 6 {
                        return None;
                    }
                    code = code * 16 + h.to_digit(16)?;
                }
            }
        }
    }
    Some(out)
}

/// Go's `%q` rendering of a string, used in error messages.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("4"), Ok(4000));
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("1e3"), Ok(1_000_000));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00.123456789Z"), Ok(123));
        assert_eq!(parse_time(MIN_TIME_TEXT), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_TEXT), Ok(MAX_TIME_MS));
        for bad in [
            "",
            "abc",
            "NaN",
            "Inf",
            "2015-07-01",
            "2015-13-01T00:00:00Z",
        ] {
            assert_eq!(
                parse_time(bad),
                Err(ParamError::Timestamp(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Ok(15_000_000_000));
        assert_eq!(parse_duration("0.5"), Ok(500_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("1d2h3m4s5ms"), Ok(93_784_005_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "1x", "s", "1s1m", "1m1m", "-1m", "1.5m"] {
            assert_eq!(
                parse_duration(bad),
                Err(ParamError::Duration(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            parse_duration("1e30").unwrap_err().to_string(),
            "cannot parse \"1e30\" to a valid duration. It overflows int64"
        );
        assert!(parse_duration("1000y").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(""), Ok(0));
        assert_eq!(parse_limit("5"), Ok(5));
        assert_eq!(parse_limit("-1"), Err(ParamError::NegativeLimit));
        assert_eq!(
            parse_limit("x").unwrap_err().to_string(),
            "strconv.Atoi: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn label_name_unescaping() {
        assert_eq!(unescape_label_name("job").as_deref(), Some("job"));
        assert_eq!(unescape_label_name("U__a_2e_b").as_deref(), Some("a.b"));
        assert_eq!(unescape_label_name("U__a__b").as_deref(), Some("a_b"));
        assert_eq!(unescape_label_name("U___1f600_").as_deref(), Some("😀"));
        assert_eq!(unescape_label_name("U__a_2E_b").as_deref(), Some("a.b"));
        assert_eq!(unescape_label_name("U__a_zz_b"), None);
        assert_eq!(unescape_label_name("U__a_2e"), None);
        assert_eq!(unescape_label_name("U__a_"), None);
        assert_eq!(unescape_label_name("U___d800_"), None);
        assert_eq!(unescape_label_name("U__a_1234567_"), None);
    }

    #[test]
    fn form_merging() {
        let p = Params::from_parts(Some(b"a=1&m=x"), Some("a=2&m=y&b=%20z"));
        assert_eq!(p.get("a"), "1");
        assert_eq!(p.get("b"), " z");
        assert_eq!(p.get("c"), "");
        assert_eq!(p.all("m"), vec!["x", "y"]);
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
