//! Push bodies → streams: Loki's JSON (v1 `{"streams":[{"stream":{..},"values":[[ts,line,{meta}]]}]}`
//! and the legacy `{"streams":[{"labels":"{..}","entries":[{"ts":..,"line":..}]}]}`) and
//! protobuf `logproto.PushRequest`, plus the label-selector text Loki uses for stream labels.
//!
//! A body that cannot be read at all is an error for the whole request; a stream whose labels
//! do not parse is kept with its error so that the other streams are still stored (Loki's
//! partial acceptance).

use std::str::FromStr;

use prost::Message;
use serde_json::Value;
use sextant_storage::logs::LogEntry;
use sextant_storage::Labels;

use super::proto::PushRequest;

/// One stream of a push request as decoded, before validation.
#[derive(Clone, Debug, PartialEq)]
pub struct PushStream {
    /// The stream's labels as the client wrote them (used in error messages).
    pub labels_text: String,
    /// The parsed label set, or why it does not parse.
    pub labels: Result<Labels, String>,
    pub entries: Vec<LogEntry>,
}

/// Decodes a protobuf `PushRequest` (already decompressed).
pub fn decode_protobuf(raw: &[u8]) -> Result<Vec<PushStream>, String> {
    let req = PushRequest::decode(raw).map_err(|e| format!("failed to decode protobuf: {e}"))?;
    Ok(req
        .streams
        .into_iter()
        .map(|s| PushStream {
            labels: parse_labels(&s.labels),
            entries: s
                .entries
                .into_iter()
                .map(|e| LogEntry {
                    ts_ns: e.timestamp.unwrap_or_default().to_ns(),
                    line: e.line,
                    metadata: normalize_metadata(
                        e.structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    ),
                })
                .collect(),
            labels_text: s.labels,
        })
        .collect())
}

/// Decodes a JSON push body, v1 or legacy (told apart per stream by its keys).
pub fn decode_json(raw: &[u8]) -> Result<Vec<PushStream>, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let streams = match v.get("streams") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("streams: expected an array".into()),
    };
    streams
        .iter()
        .enumerate()
        .map(|(i, s)| json_stream(s).map_err(|e| format!("streams[{i}]: {e}")))
        .collect()
}

fn json_stream(s: &Value) -> Result<PushStream, String> {
    let o = s.as_object().ok_or("expected an object")?;
    if let Some(stream) = o.get("stream") {
        let map = stream
            .as_object()
            .ok_or("stream: expected an object of label names to values")?;
        let mut pairs = Vec::with_capacity(map.len());
        for (name, value) in map {
            let value = value
                .as_str()
                .ok_or_else(|| format!("stream: label {name:?} must have a string value"))?;
            pairs.push((name.as_str(), value));
        }
        let labels_text = selector_text(&pairs);
        let labels = labels_from_pairs(&pairs);
        let values = match o.get("values") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => return Err("values: expected an array".into()),
        };
        let entries = values
            .iter()
            .enumerate()
            .map(|(j, v)| json_value_entry(v).map_err(|e| format!("values[{j}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(PushStream {
            labels_text,
            labels,
            entries,
        });
    }
    // Legacy shape.
    let labels_text = match o.get("labels") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err("labels: expected a string".into()),
    };
    let entries = match o.get("entries") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(j, e)| json_legacy_entry(e).map_err(|m| format!("entries[{j}]: {m}")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("entries: expected an array".into()),
    };
    Ok(PushStream {
        labels: parse_labels(&labels_text),
        labels_text,
        entries,
    })
}

fn json_value_entry(v: &Value) -> Result<LogEntry, String> {
    let a = v
        .as_array()
        .ok_or("expected [\"<unix epoch in nanoseconds>\", \"<log line>\"]")?;
    if a.len() < 2 || a.len() > 3 {
        return Err(format!(
            "expected 2 or 3 elements (timestamp, line, structured metadata), got {}",
            a.len()
        ));
    }
    let ts_ns = match &a[0] {
        Value::String(s) => s
            .parse::<i64>()
            .map_err(|_| format!("timestamp {s:?} is not an integer of nanoseconds"))?,
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("timestamp {n} is not an integer of nanoseconds"))?,
        _ => return Err("timestamp: expected a string of nanoseconds".into()),
    };
    let line = a[1].as_str().ok_or("line: expected a string")?.to_string();
    let metadata = match a.get(2) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => {
            let mut pairs = Vec::with_capacity(m.len());
            for (k, v) in m {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("structured metadata {k:?} must have a string value"))?;
                pairs.push((k.clone(), v.to_string()));
            }
            normalize_metadata(pairs)
        }
        Some(_) => return Err("structured metadata: expected an object".into()),
    };
    Ok(LogEntry {
        ts_ns,
        line,
        metadata,
    })
}

fn json_legacy_entry(v: &Value) -> Result<LogEntry, String> {
    let o = v.as_object().ok_or("expected an object")?;
    let ts = o
        .get("ts")
        .or_else(|| o.get("timestamp"))
        .ok_or("missing \"ts\"")?;
    let ts_ns = match ts {
        Value::String(s) => parse_rfc3339_ns(s)?,
        Value::Number(n) => n.as_i64().ok_or("ts: expected an RFC 3339 time")?,
        _ => return Err("ts: expected an RFC 3339 time".into()),
    };
    let line = match o.get("line") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err("line: expected a string".into()),
    };
    let mut metadata = Vec::new();
    if let Some(sm) = o
        .get("structuredMetadata")
        .or_else(|| o.get("structured_metadata"))
    {
        let list = sm
            .as_array()
            .ok_or("structuredMetadata: expected an array")?;
        for p in list {
            let name = p.get("name").and_then(Value::as_str);
            let value = p.get("value").and_then(Value::as_str);
            match (name, value) {
                (Some(n), Some(v)) => metadata.push((n.to_string(), v.to_string())),
                _ => return Err("structuredMetadata: expected {\"name\":..,\"value\":..}".into()),
            }
        }
    }
    Ok(LogEntry {
        ts_ns,
        line,
        metadata: normalize_metadata(metadata),
    })
}

/// Parses an RFC 3339 time with optional fraction and offset into nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Result<i64, String> {
    let t = jiff::Timestamp::from_str(s)
        .map_err(|e| format!("cannot parse {s:?} as an RFC 3339 time: {e}"))?;
    i64::try_from(t.as_nanosecond()).map_err(|_| format!("time {s:?} is out of range"))
}

/// Sorts metadata by name and keeps the last value of a repeated name (the
/// [`LogEntry::metadata`] invariant). Pairs with an empty value are dropped, as Loki does.
pub fn normalize_metadata(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.retain(|(_, v)| !v.is_empty());
    // Stable sort keeps arrival order within a name, so the last one wins below.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for p in pairs {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    out
}

fn selector_text(pairs: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = pairs.iter().collect();
    sorted.sort();
    let body: Vec<String> = sorted
        .iter()
        .map(|(n, v)| format!("{n}={}", quote(v)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// Double-quotes a label value as Go's `%q` would for printable text.
pub fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn labels_from_pairs(pairs: &[(&str, &str)]) -> Result<Labels, String> {
    let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
    for (name, _) in pairs {
        if !sextant_storage::labels::is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if seen.contains(name) {
            return Err(format!("duplicate label name {name:?}"));
        }
        seen.push(name);
    }
    Ok(Labels::from_pairs(pairs.iter().copied()))
}

/// Parses stream labels written as a selector with equality matchers only:
/// `{job="x", level="info"}` (double-quoted Go strings or backquoted raw strings).
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut p = Cursor {
        s: text.as_bytes(),
        text,
        at: 0,
    };
    p.skip_ws();
    p.expect(b'{')?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    loop {
        p.skip_ws();
        if p.peek() == Some(b'}') {
            p.at += 1;
            break;
        }
        if !pairs.is_empty() {
            p.expect(b',')?;
            p.skip_ws();
            if p.peek() == Some(b'}') {
                p.at += 1;
                break;
            }
        }
        let name = p.ident()?;
        p.skip_ws();
        match (p.peek(), p.s.get(p.at + 1).copied()) {
            (Some(b'='), Some(b'~')) | (Some(b'!'), _) => {
                return Err(p.error("only equality matchers (=) are allowed in stream labels"))
            }
            (Some(b'='), _) => p.at += 1,
            _ => return Err(p.error("expecting =")),
        }
        p.skip_ws();
        let value = p.string()?;
        pairs.push((name, value));
    }
    p.skip_ws();
    if p.at != p.s.len() {
        return Err(p.error("unexpected text after }"));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    labels_from_pairs(&refs)
}

struct Cursor<'a> {
    s: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        let col = self.text[..self.at.min(self.text.len())].chars().count() + 1;
        format!("parse error at line 1, col {col}: syntax error: {what}")
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expecting {:?}", b as char)))
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        let start = self.at;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.at += 1;
        }
        let name = &self.text[start..self.at];
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return Err(self.error("expecting a label name"));
        }
        Ok(name.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(b'`') => {
                self.at += 1;
                let rest = &self.text[self.at..];
                let end = rest
                    .find('`')
                    .ok_or_else(|| self.error("unterminated raw string"))?;
                self.at += end + 1;
                Ok(rest[..end].to_string())
            }
            Some(b'"') => {
                self.at += 1;
                let mut out = String::new();
                let mut chars = self.text[self.at..].char_indices();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            self.at += i + 1;
                            return Ok(out);
                        }
                        '\\' => {
                            let (_, e) = chars
                                .next()
                                .ok_or_else(|| self.error("unterminated string"))?;
                            match e {
                                'n' => out.push('\n'),
                                't' => out.push('\t'),
                                'r' => out.push('\r'),
                                'a' => out.push('\u{7}'),
                                'b' => out.push('\u{8}'),
                                'f' => out.push('\u{c}'),
                                'v' => out.push('\u{b}'),
                                '\\' => out.push('\\'),
                                '"' => out.push('"'),
                                '\'' => out.push('\''),
                                'u' | 'U' | 'x' => {
                                    let n = match e {
                                        'u' => 4,
                                        'U' => 8,
                                        _ => 2,
                                    };
                                    let hex: String =
                                        (0..n).filter_map(|_| chars.next().map(|p| p.1)).collect();
                                    let code = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .filter(|_| hex.len() == n)
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| self.error("invalid escape in string"))?;
                                    out.push(code);
                                }
                                _ => return Err(self.error("invalid escape in string")),
                            }
                        }
                        c => out.push(c),
                    }
                }
                Err(self.error("unterminated string"))
            }
            _ => Err(self.error("expecting a quoted label value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../shared/conformance/loki/push/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_selector_labels_with_escapes_and_raw_strings() {
        let l = parse_labels(r#"{job="a\"b", level=`x\y`,  svc = "é\u00e9" }"#).unwrap();
        assert_eq!(l.get("job"), Some("a\"b"));
        assert_eq!(l.get("level"), Some("x\\y"));
        assert_eq!(l.get("svc"), Some("éé"));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn refuses_bad_selector_labels() {
        for bad in [
            "job=\"x\"",
            "{job}",
            "{job=~\"x\"}",
            "{job=\"x\"",
            "{1job=\"x\"}",
            "{job=\"x\", job=\"y\"}",
            "{job=\"x\"} trailing",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad} should be refused");
        }
        let e = parse_labels("{job}").unwrap_err();
        assert!(e.starts_with("parse error at line 1, col 5"), "{e}");
        assert_eq!(parse_labels("{}").unwrap().len(), 0);
    }

    #[test]
    fn protobuf_fixture_matches_its_json_view() {
        let pb = decode_protobuf(&fixture("push-request.pb")).unwrap();
        let json = decode_json(&fixture("push-request.json")).unwrap();
        assert_eq!(pb, json);
        assert_eq!(pb.len(), 2);
        assert_eq!(pb[0].entries.len(), 3);
        assert_eq!(pb[0].entries[1].ts_ns, 1_714_557_600_250_000_000);
        assert_eq!(
            pb[0].entries[2].metadata,
            vec![(
                "trace_id".to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736".to_string()
            )]
        );
        let labels = pb[1].labels.as_ref().unwrap();
        assert_eq!(labels.get("level"), Some("error"));
    }

    #[test]
    fn snappy_fixture_decodes_to_the_same_request() {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&fixture("push-request.pb.snappy"))
            .unwrap();
        assert_eq!(
            decode_protobuf(&raw).unwrap(),
            decode_protobuf(&fixture("push-request.pb")).unwrap()
        );
    }

    #[test]
    fn v1_json_with_structured_metadata() {
        let s = decode_json(&fixture("v1-structured-metadata.json")).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].labels_text,
            r#"{job="conformance", service_name="frontend"}"#
        );
        let e = &s[0].entries;
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0].metadata,
            vec![
                ("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into()),
                ("user_id".into(), "u-17".into())
            ]
        );
        assert!(e[1].metadata.is_empty());
        assert_eq!(e[2].line, "multi-line\nentry with a tab\tand unicode é");
        assert_eq!(e[2].ts_ns, 1_714_557_600_200_000_000);
    }

    #[test]
    fn v1_and_legacy_json_agree_on_times() {
        let v1 = decode_json(&fixture("v1-basic.json")).unwrap();
        assert_eq!(v1[0].entries[0].ts_ns, 1_714_557_600_000_000_000);
        let legacy = decode_json(&fixture("v0-legacy.json")).unwrap();
        assert_eq!(legacy[0].entries[0].ts_ns, 1_714_557_600_000_000_000);
        // 12:00:01.5+02:00 is 10:00:01.5Z.
        assert_eq!(legacy[0].entries[1].ts_ns, 1_714_557_601_500_000_000);
        assert_eq!(
            legacy[0].labels.as_ref().unwrap().get("job"),
            Some("conformance")
        );
    }

    #[test]
    fn bad_json_bodies_name_the_problem() {
        let e = decode_json(br#"{"streams":[{"stream":{"a":"b"},"values":[["12x","l"]]}]}"#)
            .unwrap_err();
        assert!(
            e.contains("streams[0]: values[0]: timestamp \"12x\""),
            "{e}"
        );
        let e = decode_json(br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#).unwrap_err();
        assert!(e.contains("label \"a\" must have a string value"), "{e}");
        assert!(decode_json(b"{not json")
            .unwrap_err()
            .starts_with("invalid JSON"));
        // A bad label name is per stream, not for the whole request.
        let s =
            decode_json(br#"{"streams":[{"stream":{"a-b":"c"},"values":[["1","x"]]}]}"#).unwrap();
        assert!(s[0].labels.is_err());
    }

    #[test]
    fn metadata_is_sorted_unique_and_non_empty() {
        let m = normalize_metadata(vec![
            ("b".into(), "1".into()),
            ("a".into(), "2".into()),
            ("b".into(), "3".into()),
            ("c".into(), String::new()),
        ]);
        assert_eq!(m, vec![("a".into(), "2".into()), ("b".into(), "3".into())]);
    }
}
