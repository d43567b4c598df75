//! `detected_fields`: the fields Grafana's Explore offers for a selection, found in the newest
//! `line_limit` entries: structured metadata keys, and keys of lines that parse as JSON objects
//! (nested keys joined with `_`, parser `json`) or as logfmt (parser `logfmt`). Each field gets
//! Loki's type name (`int`, `float`, `boolean`, `duration`, `bytes`, `string`; mixed types are
//! `string`) and the number of distinct values seen.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sextant_storage::logs::{Direction, LogQuery, LogSource};
use sextant_storage::{Matcher, StorageError};

/// One detected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedField {
    pub name: String,
    pub kind: &'static str,
    pub cardinality: usize,
    /// `json` and/or `logfmt`; empty for structured metadata.
    pub parsers: Vec<&'static str>,
}

#[derive(Default)]
struct Acc {
    kind: Option<&'static str>,
    values: BTreeSet<String>,
    parsers: BTreeSet<&'static str>,
}

impl Acc {
    fn add(&mut self, value: &str, parser: Option<&'static str>) {
        let k = value_kind(value);
        self.kind = Some(match self.kind {
            None => k,
            Some(prev) if prev == k => k,
            Some("int") if k == "float" => "float",
            Some("float") if k == "int" => "float",
            Some(_) => "string",
        });
        if self.values.len() < 10_000 {
            self.values.insert(value.to_string());
        }
        if let Some(p) = parser {
            self.parsers.insert(p);
        }
    }
}

/// Scans the newest `line_limit` entries of the selection and reports their fields by name.
pub fn detect(
    src: &dyn LogSource,
    matchers: &[Matcher],
    start_ns: i64,
    end_ns: i64,
    line_limit: usize,
) -> Result<Vec<DetectedField>, StorageError> {
    let mut fields: BTreeMap<String, Acc> = BTreeMap::new();
    let mut seen = 0usize;
    let query = LogQuery {
        matchers,
        start_ns,
        end_ns,
        direction: Direction::Backward,
        needles: &[],
    };
    src.scan(&query, &mut |labels, entry| {
        for (k, v) in &entry.metadata {
            if labels.get(k).is_none() {
                fields.entry(k.clone()).or_default().add(v, None);
            }
        }
        for (k, v, parser) in parse_line(&entry.line) {
            if labels.get(&k).is_none() {
                fields.entry(k).or_default().add(&v, Some(parser));
            }
        }
        seen += 1;
        seen < line_limit
    })?;
    Ok(fields
        .into_iter()
        .map(|(name, acc)| DetectedField {
            name,
            kind: acc.kind.unwrap_or("string"),
            cardinality: acc.values.len(),
            parsers: acc.parsers.into_iter().collect(),
        })
        .collect())
}

/// Key/value pairs of a JSON-object or logfmt line, with the parser that found them.
fn parse_line(line: &str) -> Vec<(String, String, &'static str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(trimmed) {
            let mut out = Vec::new();
            flatten("", &Value::Object(o), &mut out);
            return out.into_iter().map(|(k, v)| (k, v, "json")).collect();
        }
    }
    logfmt(line)
        .into_iter()
        .map(|(k, v)| (k, v, "logfmt"))
        .collect()
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                let key = if prefix.is_empty() {
                    sanitize(k)
                } else {
                    format!("{prefix}_{}", sanitize(k))
                };
                flatten(&key, child, out);
            }
        }
        Value::Null | Value::Array(_) => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn sanitize(k: &str) -> String {
    k.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `key=value key2="quoted value"` pairs; a line without any `=` pair yields nothing.
fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &line[ks..i];
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch_len = line[i..].chars().next().map_or(1, char::len_utf8);
                v.push_str(&line[i..i + ch_len]);
                i += ch_len;
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            line[vs..i].to_string()
        };
        if !key.is_empty()
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
        {
            out.push((sanitize(key), value));
        }
    }
    out
}

/// Loki's detected type of one value.
fn value_kind(v: &str) -> &'static str {
    if v.parse::<i64>().is_ok() {
        "int"
    } else if v.parse::<f64>().is_ok() {
        "float"
    } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
        "boolean"
    } else if is_duration(v) {
        "duration"
    } else if is_bytes(v) {
        "bytes"
    } else {
        "string"
    }
}

fn split_number(v: &str) -> Option<(&str, &str)> {
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    (end > 0).then(|| v.split_at(end))
}

fn is_duration(v: &str) -> bool {
    let mut rest = v;
    let mut any = false;
    while !rest.is_empty() {
        let Some((num, tail)) = split_number(rest) else {
            return false;
        };
        if num.parse::<f64>().is_err() {
            return false;
        }
        let unit_len = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| tail.starts_with(*u))
            .map(|u| u.len())
            .max();
        let Some(n) = unit_len else { return false };
        rest = &tail[n..];
        any = true;
    }
    any
}

fn is_bytes(v: &str) -> bool {
    let Some((num, unit)) = split_number(v) else {
        return false;
    };
    num.parse::<f64>().is_ok()
        && matches!(
            unit.trim().to_ascii_lowercase().as_str(),
            "b" | "kb"
                | "mb"
                | "gb"
                | "tb"
                | "pb"
                | "kib"
                | "mib"
                | "gib"
                | "tib"
                | "pib"
                | "k"
                | "m"
                | "g"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(value_kind("42"), "int");
        assert_eq!(value_kind("4.2"), "float");
        assert_eq!(value_kind("TRUE"), "boolean");
        assert_eq!(value_kind("1m30s"), "duration");
        assert_eq!(value_kind("12ms"), "duration");
        assert_eq!(value_kind("20MB"), "bytes");
        assert_eq!(value_kind("GET"), "string");
    }

    #[test]
    fn json_and_logfmt_lines() {
        let j = parse_line(r#"{"a":{"b":1},"msg":"hi","list":[1]}"#);
        assert_eq!(
            j,
            vec![
                ("a_b".to_string(), "1".to_string(), "json"),
                ("msg".to_string(), "hi".to_string(), "json")
            ]
        );
        let l = parse_line(r#"level=info msg="hello world" dur=5ms"#);
        assert_eq!(
            l,
            vec![
                ("level".to_string(), "info".to_string(), "logfmt"),
                ("msg".to_string(), "hello world".to_string(), "logfmt"),
                ("dur".to_string(), "5ms".to_string(), "logfmt")
            ]
        );
        assert!(parse_line("GET /index.html 200").is_empty());
    }
}
