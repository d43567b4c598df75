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
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Success {
    /// Wraps a JSON text written by hand (query results).
    pub fn from_json(data: String) -> Success {
        Success {
            data,
            ..Success::default()
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
    pub fn body(&self) -> String {
        let mut body = String::with_capacity(self.data.len() + 40);
        body.push_str("{\"status\":\"success\",\"data\":");
        body.push_str(&self.data);
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

/// Appends `s` as a JSON string literal, escaped as Go's `encoding/json` does.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a millisecond timestamp as Prometheus writes it: seconds, then `.` and exactly three
/// digits when the milliseconds are not zero (`4`, `1435781451.781`, `1.500`).
pub fn write_timestamp(out: &mut String, t_ms: i64) {
    let abs = t_ms.unsigned_abs();
    if t_ms < 0 {
        out.push('-');
    }
    let _ = write!(out, "{}", abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
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

/// Appends [`format_value`]`(v)`, without a temporary string in the common plain-decimal case.
pub fn write_value(out: &mut String, v: f64) {
    let abs = v.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        let _ = write!(out, "{v}");
    } else {
        out.push_str(&format_value(v));
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

#[cfg(test)]
mod tests {
    use super::*;

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
