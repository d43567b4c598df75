//! The JSON envelope every endpoint answers with, the typed API error and its single mapping to
//! Prometheus' error shape, and JSON writing that matches Go's byte for byte (string escaping,
//! sample values, timestamps).

use std::fmt::Write as _;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::promql::QueryError;

/// Prometheus' `errorType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    NotFound,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::NotFound => "not_found",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// A failed request: `{"status":"error","errorType":…,"error":…}` with the type's HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::BadData, message)
    }

    /// Prometheus' `invalidParamError`: `invalid parameter "<name>": <reason>`.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::bad_data(format!("invalid parameter {name:?}: {reason}"))
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::Internal, message)
    }
}

/// The one place where evaluation failures become API error types.
impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let kind = match &e {
            QueryError::Parse(_) | QueryError::BadData(_) => ErrorType::BadData,
            QueryError::Timeout(_) => ErrorType::Timeout,
            QueryError::Limit(_) | QueryError::Execution(_) => ErrorType::Execution,
            QueryError::Storage(_) => ErrorType::Internal,
        };
        ApiError::new(kind, e.to_string())
    }
}

/// Storage failures outside a query (series, labels) are `execution` errors in Prometheus.
impl From<sextant_storage::StorageError> for ApiError {
    fn from(e: sextant_storage::StorageError) -> ApiError {
        ApiError::new(ErrorType::Execution, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(self.message.len() + 64);
        body.push_str("{\"status\":\"error\",\"errorType\":\"");
        body.push_str(self.kind.as_str());
        body.push_str("\",\"error\":");
        write_json_str(&mut body, &self.message);
        body.push('}');
        json_response(self.kind.status(), body)
    }
}

/// A successful answer: `data` (already JSON) and optional warnings and infos.
#[derive(Clone, Debug, Default)]
pub struct Success {
    data: String,
    /// `data` already starts with [`ENVELOPE`] (written by [`Success::buffer`]), so the body
    /// is completed in place instead of copied behind the envelope.
    enveloped: bool,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// The envelope's text up to the data value.
const ENVELOPE: &str = "{\"status\":\"success\",\"data\":";

impl Success {
    /// Wraps a JSON text written by hand (query results).
    pub fn from_json(data: String) -> Success {
        Success {
            data,
            ..Success::default()
        }
    }

    /// A buffer to write a large data value into, with room for `capacity` bytes of it; the
    /// envelope's opening is already in it. Hand it back through [`Success::from_buffer`].
    pub fn buffer(capacity: usize) -> String {
        let mut out = String::with_capacity(capacity.saturating_add(ENVELOPE.len() + 2));
        out.push_str(ENVELOPE);
        out
    }

    /// Wraps a buffer from [`Success::buffer`] holding the data value after the envelope.
    pub fn from_buffer(buffer: String) -> Success {
        match buffer.strip_prefix(ENVELOPE) {
            Some(_) => Success {
                data: buffer,
                enveloped: true,
                ..Success::default()
            },
            None => Success::from_json(buffer),
        }
    }

    /// Serializes a wire struct with Go's string escaping.
    pub fn of<T: Serialize + ?Sized>(data: &T) -> Result<Success, ApiError> {
        Ok(Success::from_json(to_go_json(data)?))
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Success {
        self.warnings.push(warning.into());
        self
    }

    /// The envelope's text.
    pub fn body(self) -> String {
        let mut body = if self.enveloped {
            self.data
        } else {
            let mut body = String::with_capacity(self.data.len() + ENVELOPE.len() + 1);
            body.push_str(ENVELOPE);
            body.push_str(&self.data);
            body
        };
        for (key, list) in [("warnings", &self.warnings), ("infos", &self.infos)] {
            if list.is_empty() {
                continue;
            }
            let _ = write!(body, ",\"{key}\":[");
            for (i, w) in list.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                write_json_str(&mut body, w);
            }
            body.push(']');
        }
        body.push('}');
        body
    }
}

impl IntoResponse for Success {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, self.body())
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Serializes with `serde_json`, escaping strings as Go's `encoding/json` does.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<String, ApiError> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut ser)
        .map_err(|e| ApiError::internal(format!("error marshaling json response: {e}")))?;
    String::from_utf8(out)
        .map_err(|e| ApiError::internal(format!("error marshaling json response: {e}")))
}

/// A `serde_json` formatter that also escapes `<`, `>`, `&`, U+2028 and U+2029, as Go does.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut s = String::with_capacity(fragment.len());
        escape_go_extra(&mut s, fragment);
        writer.write_all(s.as_bytes())
    }
}

/// Appends `s` escaping only what `serde_json` leaves alone but Go escapes.
fn escape_go_extra(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// Appends `s` as a JSON string literal, escaped as Go's `encoding/json` does. Runs of bytes
/// that need no escape are copied at once.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !NEEDS_LOOK[usize::from(b)] {
            i += 1;
            continue;
        }
        // `b` starts a character that may need escaping: everything before it is plain.
        let Some(c) = s.get(i..).and_then(|rest| rest.chars().next()) else {
            i += 1;
            continue;
        };
        let escaped: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&s[plain..i]);
                let _ = write!(out, "\\u{:04x}", c as u32);
                plain = i + c.len_utf8();
                i = plain;
                continue;
            }
            _ => None,
        };
        if let Some(e) = escaped {
            out.push_str(&s[plain..i]);
            out.push_str(e);
            plain = i + c.len_utf8();
        }
        i += c.len_utf8();
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// Bytes that start a character [`write_json_str`] may escape: control characters, `"`,
/// `\`, `<`, `>`, `&`, and 0xE2, the lead byte of U+2028 and U+2029. Every other byte,
/// continuation bytes included, is copied as it is.
const NEEDS_LOOK: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xE2] = true;
    t
};

/// Appends a millisecond timestamp as Prometheus writes it: seconds, then `.` and exactly three
/// digits when the milliseconds are not zero (`4`, `1435781451.781`, `1.500`).
pub fn write_timestamp(out: &mut String, t_ms: i64) {
    let abs = t_ms.unsigned_abs();
    if t_ms < 0 {
        out.push('-');
    }
    write_u64(out, abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        // Three digits, zero-padded (`frac` < 1000).
        out.push('.');
        for d in [frac / 100, frac / 10 % 10, frac % 10] {
            out.push(char::from(b'0' + d as u8));
        }
    }
}

/// Appends `n` in decimal without going through `core::fmt`.
fn write_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Formats a sample value as Prometheus does: Go's shortest representation, plain decimal
/// notation except below 1e-6 and from 1e21 up (`1e-07`, `1e+21`); `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is the shortest round-trip form too; Go writes the exponent with a
        // sign and at least two digits.
        let s = format!("{v:e}");
        return match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        };
    }
    // Rust's `Display` is the shortest round-trip form without an exponent, like Go's 'f', -1.
    format!("{v}")
}

/// Whether two shortest round-trip candidates can be equally near `v` (finite, non-zero):
/// `…536.25` prints as `…536.2` or `…536.3`, and ryu and `core::fmt` break such ties
/// differently. A tie needs the exact decimal expansion of `v` to be the midpoint of the
/// shortest grid: at least two fractional digits (`v` = odd × 2^-f with f ≥ 2; with fewer,
/// half an ulp is too small to reach both neighbours) and at most 18 significant digits
/// (shortest forms have at most 17). Values computed by queries have ~50 fractional bits and
/// raw counters are integers, so this is rare.
fn may_tie(v: f64) -> bool {
    let abs = v.abs();
    let bits = abs.to_bits();
    let biased = (bits >> 52) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exp) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let f = -(exp + i64::from(mantissa.trailing_zeros()));
    if f < 2 {
        return false;
    }
    // Significant digits of the exact expansion, from below: the integer digits plus `f`
    // fractional ones, or (below 1) `f` minus the zeros after the point.
    // The zeros after the point are at most -b·log10(2) for abs ≥ 2^b (b < 0): bounded
    // from above in integers, which keeps the test conservative.
    let significant = if abs >= 1.0 {
        f + 1
    } else {
        let b = biased.max(1) - 1023;
        f - ((-b) * 30_103 + 99_999) / 100_000 - 1
    };
    significant <= 18
}

/// Appends [`format_value`]`(v)`, without a temporary string: the shortest round-trip digits
/// come from `ryu` and are laid out here in Go's notation.
pub fn write_value(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str(if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    if may_tie(v) {
        out.push_str(&format_value(v));
        return;
    }
    let abs = v.abs();
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v);
    if !text.contains('e') && (1e-6..1e21).contains(&abs) {
        // ryu wrote plain decimal notation with the same digits: only its `.0` on integral
        // values differs from Go's.
        out.push_str(text.strip_suffix(".0").unwrap_or(text));
        return;
    }
    let d = Digits::of(text);
    let (digits, point) = (d.as_str(), d.point);
    if digits.is_empty() {
        // Not reached for a finite non-zero value; keep the reference formatting.
        out.push_str(&format_value(v));
        return;
    }
    if d.neg {
        out.push('-');
    }
    if (1e-6..1e21).contains(&abs) {
        // Plain decimal: `digits` with the point after `point` of them.
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..point.unsigned_abs() {
                out.push('0');
            }
            out.push_str(digits);
        } else {
            let point = point as usize;
            if point >= digits.len() {
                out.push_str(digits);
                for _ in digits.len()..point {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        // `d.ddde±XX`, the exponent with at least two digits.
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp = point - 1;
        out.push_str(if exp < 0 { "e-" } else { "e+" });
        if exp.unsigned_abs() < 10 {
            out.push('0');
        }
        write_u64(out, u64::from(exp.unsigned_abs()));
    }
}

/// The significant digits of a finite non-zero value (no leading or trailing zeros), from
/// ryu's rendering (`-1.25e-7`, `123.0`, `1e21`, `0.001`), and the position of the decimal
/// point relative to them: value = ±0.`digits` × 10^`point`.
struct Digits {
    neg: bool,
    buf: [u8; 32],
    len: usize,
    point: i32,
}

impl Digits {
    fn of(s: &str) -> Digits {
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (mantissa, exp) = match s.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
            None => (s, 0),
        };
        let int_len = mantissa.find('.').unwrap_or(mantissa.len());
        let mut d = Digits {
            neg,
            buf: [0; 32],
            len: 0,
            point: int_len as i32 + exp,
        };
        for b in mantissa.bytes().filter(u8::is_ascii_digit) {
            if d.len == 0 && b == b'0' {
                // A leading zero moves the point instead.
                d.point -= 1;
                continue;
            }
            if d.len < d.buf.len() {
                d.buf[d.len] = b;
                d.len += 1;
            }
        }
        while d.len > 0 && d.buf[d.len - 1] == b'0' {
            d.len -= 1;
        }
        d
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Appends `[<timestamp>,"<value>"]`.
pub fn write_point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t_ms);
    out.push_str(",\"");
    write_value(out, v);
    out.push_str("\"]");
}

/// The openings `[<t>,"` of the points of a matrix, formatted once per position: the series
/// of a range query share the step grid, so the `j`-th point of most series repeats the
/// `j`-th timestamp of the one before.
#[derive(Default)]
pub struct PointOpenings {
    slots: Vec<(i64, String)>,
}

impl PointOpenings {
    /// Appends the `j`-th point of a series, `[t,"v"]`.
    pub fn write_point(&mut self, out: &mut String, j: usize, t_ms: i64, v: f64) {
        if self.slots.len() <= j {
            self.slots.resize_with(j + 1, || (0, String::new()));
        }
        if let Some((t, text)) = self.slots.get_mut(j) {
            if text.is_empty() || *t != t_ms {
                text.clear();
                text.push('[');
                write_timestamp(text, t_ms);
                text.push_str(",\"");
                *t = t_ms;
            }
            out.push_str(text);
        }
        write_value(out, v);
        out.push_str("\"]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ryu-based writer agrees with the `core::fmt` reference on values of every
    /// magnitude, around the notation switches and on pseudo-random bit patterns.
    #[test]
    fn write_value_matches_reference_formatting() {
        let mut values = vec![
            1e-6,
            f64::from_bits(1e-6f64.to_bits() - 1),
            1e21,
            f64::from_bits(1e21f64.to_bits() - 1),
            5e-324,
            0.1 + 0.2,
            100.0,
            1234.5,
            0.001_25,
            -0.000_001_5,
            123_456_789_012_345_680.0,
            f64::MIN_POSITIVE,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..100_000 {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            values.push(f64::from_bits(bits));
            // Values of everyday magnitudes too, with few and many digits.
            values.push((bits % 10_000_000) as f64 / 1000.0);
            values.push((bits >> 11) as f64 / (1u64 << 53) as f64 * 1e6);
            // Dyadic fractions of every magnitude, where shortest forms can tie.
            let k = 2 + (bits % 9) as u32;
            let shift = 11 + (bits >> 60) as u32 * 3;
            values.push((bits >> shift) as f64 / f64::from(1u32 << k));
        }
        // …536.25 and -…871.03125: exact midpoints between two shortest candidates.
        values.extend([
            f64::from_bits(0x4313_d27d_a8ac_08c1),
            f64::from_bits(0xc26b_c627_7093_e100),
        ]);
        for v in values {
            for v in [v, -v] {
                let mut out = String::new();
                write_value(&mut out, v);
                assert_eq!(out, format_value(v), "{v:e} ({:#x})", v.to_bits());
            }
        }
    }

    #[test]
    fn timestamps_and_strings() {
        let mut out = String::new();
        for t in [
            0,
            4_000,
            1_435_781_451_781,
            1_500,
            -1_500,
            -7,
            999,
            i64::MIN + 1,
        ] {
            out.clear();
            write_timestamp(&mut out, t);
            let secs = t.unsigned_abs() / 1000;
            let frac = t.unsigned_abs() % 1000;
            let sign = if t < 0 { "-" } else { "" };
            let want = if frac == 0 {
                format!("{sign}{secs}")
            } else {
                format!("{sign}{secs}.{frac:03}")
            };
            assert_eq!(out, want);
        }
        out.clear();
        write_json_str(&mut out, "a\"b\\c\n\u{1}<x>&\u{2028}é\t");
        assert_eq!(
            out,
            "\"a\\\"b\\\\c\\n\\u0001\\u003cx\\u003e\\u0026\\u2028é\\t\""
        );
    }

    #[test]
    fn value_formatting() {
        let table: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-07"),
            (1e-6, "0.000001"),
            (1.234e-300, "1.234e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123456789.0, "123456789"),
        ];
        for (v, want) in table {
            assert_eq!(format_value(*v), *want, "{v:?}");
            let mut out = String::from("x");
            write_value(&mut out, *v);
            assert_eq!(out, format!("x{want}"), "{v:?}");
        }
    }

    #[test]
    fn timestamps() {
        for (t, want) in [
            (4000, "4"),
            (1_435_781_451_781, "1435781451.781"),
            (1500, "1.500"),
            (5, "0.005"),
            (-1500, "-1.500"),
            (0, "0"),
        ] {
            let mut s = String::new();
            write_timestamp(&mut s, t);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn string_escaping_matches_go() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\n<&>\u{1}\u{2028}é");
        assert_eq!(s, r#""a\"b\\c\n\u003c\u0026\u003e\u0001\u2028é""#);
        let via_serde = to_go_json(&["a\"b\\c\n<&>\u{1}\u{2028}é"]).unwrap_or_default();
        assert_eq!(via_serde, format!("[{s}]"));
    }

    #[test]
    fn string_escaping_agrees_with_the_serde_path() {
        // 0xE2 leads U+2028/U+2029 (escaped) and many other characters (not escaped).
        let pieces = [
            "plain",
            "\u{2028}",
            "\u{2029}",
            "\u{2027}",
            "€",
            "—",
            "\u{1f}",
            "\u{7f}",
            "é",
            "<",
            ">",
            "&",
            "\"",
            "\\",
            "\n",
            "\u{8}",
            "\u{c}",
            "日本",
            "\u{10ffff}",
            "",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let text = format!("{a}{b}x{c}");
                    let mut direct = String::new();
                    write_json_str(&mut direct, &text);
                    let via_serde = to_go_json(&text).unwrap_or_default();
                    assert_eq!(direct, via_serde, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn envelopes() {
        let ok = Success::from_json("[]".into()).with_warning("w");
        assert_eq!(
            ok.body(),
            r#"{"status":"success","data":[],"warnings":["w"]}"#
        );
        let err = ApiError::invalid_param("time", "boom");
        assert_eq!(err.message, r#"invalid parameter "time": boom"#);
    }
}
