//! Parsers for the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text. One
//! pass over the body; metric and label names and (unescaped) label values stay borrowed from
//! it. Any malformed line fails the whole exposition, as in Prometheus.

use std::borrow::Cow;
use std::collections::HashMap;

/// Which parser a response needs, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample<'a> {
    pub name: Cow<'a, str>,
    /// Labels in exposition order (not sorted, possibly repeated: the caller decides).
    pub labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub value: f64,
    /// Milliseconds, when the line carries a timestamp.
    pub timestamp: Option<i64>,
    /// The OpenMetrics exemplar after ` # `, if any.
    pub exemplar: Option<ParsedExemplar<'a>>,
}

/// An OpenMetrics exemplar: `# {labels} value [timestamp]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedExemplar<'a> {
    pub labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub value: f64,
    /// Milliseconds, when the exemplar carries a timestamp (float seconds in the text).
    pub timestamp: Option<i64>,
}

/// `# TYPE`, `# HELP` and `# UNIT` of one metric family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyMetadata {
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

#[derive(Debug, Default)]
pub struct Exposition<'a> {
    pub samples: Vec<ParsedSample<'a>>,
    /// By family name, in first-seen order.
    pub metadata: Vec<(Cow<'a, str>, FamilyMetadata)>,
}

impl<'a> Exposition<'a> {
    fn meta_mut(
        &mut self,
        index: &mut HashMap<Cow<'a, str>, usize>,
        name: Cow<'a, str>,
    ) -> &mut FamilyMetadata {
        let i = match index.get(&name) {
            Some(&i) => i,
            None => {
                index.insert(name.clone(), self.metadata.len());
                self.metadata.push((name, FamilyMetadata::default()));
                self.metadata.len() - 1
            }
        };
        &mut self.metadata[i].1
    }
}

/// Parses `body` in `format`. Errors name the line.
pub fn parse(body: &str, format: Format) -> Result<Exposition<'_>, String> {
    let om = format == Format::OpenMetrics;
    let mut out = Exposition::default();
    let mut saw_eof = false;
    let mut index = HashMap::new();
    // OpenMetrics: one final newline ends the text; no line may be empty.
    let content = if om {
        body.strip_suffix('\n').unwrap_or(body)
    } else {
        body
    };
    for (i, raw) in content.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |what: &str| format!("line {}: {what}: {:?}", i + 1, truncate(line));
        if saw_eof {
            return Err(err("data after # EOF"));
        }
        if om {
            if line.is_empty() {
                return Err(err("unexpected empty line"));
            }
        } else if line.trim().is_empty() {
            continue;
        }
        let trimmed = if om { line } else { line.trim_start() };
        if let Some(comment) = trimmed.strip_prefix('#') {
            if om && comment == " EOF" {
                saw_eof = true;
                continue;
            }
            parse_comment(comment, om, &mut out, &mut index).map_err(|e| err(&e))?;
            continue;
        }
        let sample = parse_sample(trimmed, om).map_err(|e| err(&e))?;
        out.samples.push(sample);
    }
    if om && !saw_eof {
        return Err("data does not end with # EOF".into());
    }
    Ok(out)
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_comment<'a>(
    comment: &'a str,
    om: bool,
    out: &mut Exposition<'a>,
    index: &mut HashMap<Cow<'a, str>, usize>,
) -> Result<(), String> {
    let rest = if om {
        match comment.strip_prefix(' ') {
            Some(r) => r,
            None => return Err("invalid comment".into()),
        }
    } else {
        comment.trim_start_matches([' ', '\t'])
    };
    let (keyword, rest) = split_token(rest, om);
    let kind = match keyword {
        "HELP" => 0,
        "TYPE" => 1,
        "UNIT" if om => 2,
        // Other comments are ignored (the text format allows free comments).
        _ if !om => return Ok(()),
        _ => return Err(format!("unknown comment keyword {keyword:?}")),
    };
    let (name, rest) = if om {
        match rest.strip_prefix('"') {
            Some(q) => {
                let (name, after) = quoted(q)?;
                (name, after.strip_prefix(' ').unwrap_or(after))
            }
            None => {
                let (n, r) = split_token(rest, om);
                (Cow::Borrowed(n), r)
            }
        }
    } else {
        let (n, r) = split_token(rest, om);
        (Cow::Borrowed(n), r)
    };
    if name.is_empty() {
        return Err("metadata line without a metric name".into());
    }
    if let Cow::Borrowed(n) = name {
        if !valid_metric_name(n) {
            return Err(format!("invalid metric name {n:?}"));
        }
    }
    let meta = out.meta_mut(index, name);
    match kind {
        0 => meta.help = unescape_help(rest).into_owned(),
        1 => {
            let t = rest.trim();
            let t = match t {
                "counter" | "gauge" | "histogram" | "summary" => t,
                "untyped" if !om => "unknown",
                "unknown" | "gaugehistogram" | "stateset" | "info" if om => t,
                _ => return Err(format!("invalid metric type {t:?}")),
            };
            meta.metric_type = t.to_string();
        }
        _ => meta.unit = rest.trim().to_string(),
    }
    Ok(())
}

/// The next token up to a space (OpenMetrics: exactly one) or tab, and the rest after the
/// separator.
fn split_token(s: &str, om: bool) -> (&str, &str) {
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    let rest = &s[end..];
    let rest = if om {
        rest.strip_prefix(' ').unwrap_or(rest)
    } else {
        rest.trim_start_matches([' ', '\t'])
    };
    (&s[..end], rest)
}

fn unescape_help(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn valid_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && is_name_start(b[0]) && b[1..].iter().all(|&c| is_name_char(c))
}

/// Length of the bare name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) at the start of `s`.
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !is_name_start(b[0]) {
        return 0;
    }
    1 + b[1..].iter().take_while(|&&c| is_name_char(c)).count()
}

/// A label name (`[a-zA-Z_][a-zA-Z0-9_]*`) length at the start of `s`.
fn label_name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return 0;
    }
    1 + b[1..]
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_')
        .count()
}

/// A quoted string's content (after the opening quote), unescaped, and the rest after the
/// closing quote.
fn quoted(s: &str) -> Result<(Cow<'_, str>, &str), String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let raw = &s[..i];
                let rest = &s[i + 1..];
                if !escaped {
                    return Ok((Cow::Borrowed(raw), rest));
                }
                let mut out = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    if c != '\\' {
                        out.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('\\') => out.push('\\'),
                        Some('"') => out.push('"'),
                        Some(o) => {
                            out.push('\\');
                            out.push(o);
                        }
                        None => return Err("unterminated escape".into()),
                    }
                }
                return Ok((Cow::Owned(out), rest));
            }
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'\n' => return Err("newline in quoted string".into()),
            _ => i += 1,
        }
    }
    Err("unterminated quoted string".into())
}

fn parse_sample(line: &str, om: bool) -> Result<ParsedSample<'_>, String> {
    let n = name_len(line);
    let mut name: Option<Cow<'_, str>> = (n > 0).then(|| Cow::Borrowed(&line[..n]));
    let mut rest = &line[n..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if !om {
                r = r.trim_start_matches([' ', '\t']);
            }
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            // A label name, or (UTF-8 names) a quoted label name or metric name.
            let (label, after): (Cow<'_, str>, &str) = if let Some(q) = r.strip_prefix('"') {
                quoted(q)?
            } else {
                let l = label_name_len(r);
                if l == 0 {
                    return Err("invalid label name".into());
                }
                (Cow::Borrowed(&r[..l]), &r[l..])
            };
            let after = if om {
                after
            } else {
                after.trim_start_matches([' ', '\t'])
            };
            if let Some(v) = after.strip_prefix('=') {
                let v = if om {
                    v
                } else {
                    v.trim_start_matches([' ', '\t'])
                };
                let Some(q) = v.strip_prefix('"') else {
                    return Err("label value must be quoted".into());
                };
                let (value, after) = quoted(q)?;
                labels.push((label, value));
                r = after;
            } else if name.is_none() && r.starts_with('"') {
                // `{"metric.name", …}`
                name = Some(label);
                r = after;
            } else {
                return Err("expected '=' after label name".into());
            }
            if !om {
                r = r.trim_start_matches([' ', '\t']);
            }
            if let Some(after) = r.strip_prefix(',') {
                r = after;
            } else if !r.starts_with('}') {
                return Err("expected ',' or '}' in label set".into());
            }
        }
    }
    let Some(name) = name else {
        return Err("missing metric name".into());
    };
    if name.is_empty() {
        return Err("empty metric name".into());
    }
    // Value, optional timestamp, and (OpenMetrics) an optional exemplar.
    let rest = if om {
        rest.strip_prefix(' ')
            .ok_or_else(|| "expected a space before the value".to_string())?
    } else {
        let t = rest.trim_start_matches([' ', '\t']);
        if t.len() == rest.len() {
            return Err("expected whitespace before the value".into());
        }
        t
    };
    let (sample_part, exemplar_text) = if om {
        match rest.find(" # ") {
            Some(i) => (&rest[..i], Some(&rest[i + 3..])),
            None => (rest, None),
        }
    } else {
        (rest, None)
    };
    let mut fields = sample_part
        .split([' ', '\t'])
        .filter(|f| !f.is_empty() || om);
    let value_text = fields.next().unwrap_or("");
    let value = parse_float(value_text).ok_or_else(|| format!("invalid value {value_text:?}"))?;
    let timestamp = match fields.next() {
        None => None,
        Some(t) if om => {
            let secs = parse_float(t).ok_or_else(|| format!("invalid timestamp {t:?}"))?;
            if !secs.is_finite() {
                return Err(format!("invalid timestamp {t:?}"));
            }
            Some((secs * 1000.0).round() as i64)
        }
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("invalid timestamp {t:?}"))?,
        ),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the sample"));
    }
    let exemplar = exemplar_text.map(parse_exemplar).transpose()?;
    Ok(ParsedSample {
        name,
        labels,
        value,
        timestamp,
        exemplar,
    })
}

/// Parses the part after ` # `: `{name="value",…} value [timestamp seconds]`.
fn parse_exemplar(text: &str) -> Result<ParsedExemplar<'_>, String> {
    let Some(mut r) = text.strip_prefix('{') else {
        return Err("exemplar must start with a label set".into());
    };
    let mut labels = Vec::new();
    loop {
        if let Some(after) = r.strip_prefix('}') {
            r = after;
            break;
        }
        let (name, after): (Cow<'_, str>, &str) = if let Some(q) = r.strip_prefix('"') {
            quoted(q)?
        } else {
            let l = label_name_len(r);
            if l == 0 {
                return Err("invalid exemplar label name".into());
            }
            (Cow::Borrowed(&r[..l]), &r[l..])
        };
        let Some(v) = after.strip_prefix("=\"") else {
            return Err("expected '=\"' after exemplar label name".into());
        };
        let (value, after) = quoted(v)?;
        labels.push((name, value));
        r = after;
        if let Some(after) = r.strip_prefix(',') {
            r = after;
        } else if !r.starts_with('}') {
            return Err("expected ',' or '}' in exemplar label set".into());
        }
    }
    let Some(r) = r.strip_prefix(' ') else {
        return Err("expected a space before the exemplar value".into());
    };
    let mut fields = r.split(' ');
    let value_text = fields.next().unwrap_or("");
    let value =
        parse_float(value_text).ok_or_else(|| format!("invalid exemplar value {value_text:?}"))?;
    let timestamp = match fields.next() {
        None => None,
        Some(t) => {
            let secs = parse_float(t)
                .filter(|s| s.is_finite())
                .ok_or_else(|| format!("invalid exemplar timestamp {t:?}"))?;
            Some((secs * 1000.0).round() as i64)
        }
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the exemplar"));
    }
    Ok(ParsedExemplar {
        labels,
        value,
        timestamp,
    })
}

/// Go's `ParseFloat` for the forms expositions use: decimals, exponents, `±Inf`, `NaN`.
fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let body = "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
                    # TYPE node_cpu_seconds_total counter\n\
                    node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1.5e3\n\
                    \n\
                    # a free comment\n\
                    up_like{a=\"x\\\"y\\\\z\\n\", b=\"\",} +Inf 1700000000123\n\
                    plain -3\n\
                    nan_val NaN\n\
                    {\"utf8.name\", \"label.x\"=\"v\"} 2\n\
                    go_info{version=\"go1.21\"} 1\n\
                    # TYPE u untyped\n";
        let e = parse(body, Format::Text).unwrap();
        assert_eq!(e.samples.len(), 6);
        let s = &e.samples[0];
        assert_eq!(s.name, "node_cpu_seconds_total");
        assert_eq!(s.value, 1500.0);
        assert_eq!(s.labels[1], (Cow::Borrowed("mode"), Cow::Borrowed("idle")));
        assert!(matches!(s.labels[0].1, Cow::Borrowed(_)));
        let s = &e.samples[1];
        assert_eq!(s.labels[0].1, "x\"y\\z\n");
        assert_eq!(s.value, f64::INFINITY);
        assert_eq!(s.timestamp, Some(1_700_000_000_123));
        assert_eq!(e.samples[2].value, -3.0);
        assert!(e.samples[3].value.is_nan());
        assert_eq!(e.samples[4].name, "utf8.name");
        assert_eq!(e.samples[4].labels[0].0, "label.x");
        assert_eq!(e.metadata[0].1.metric_type, "counter");
        assert_eq!(e.metadata[0].1.help, "Seconds the CPUs spent in each mode.");
        assert_eq!(e.metadata[1].1.metric_type, "unknown");
    }

    #[test]
    fn text_errors() {
        for bad in [
            "metric{a=b} 1\n",
            "metric{a=\"b\" 1\n",
            "metric 1 2 3\n",
            "metric abc\n",
            "metric{a=\"b\"}1\n",
            "1metric 1\n",
            "metric 1 1.5\n",
            "# TYPE metric nonsense\n",
        ] {
            assert!(parse(bad, Format::Text).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn openmetrics_exemplars() {
        let body = "a_bucket{le=\"0.5\"} 3 # {trace_id=\"t\\\"q\",\"span.id\"=\"s\"} -0.25\n\
                    b_total 1 # {} 2e3 17\n\
                    # EOF\n";
        let e = parse(body, Format::OpenMetrics).unwrap();
        let x = e.samples[0].exemplar.as_ref().unwrap();
        assert_eq!(
            x.labels[0],
            (Cow::Borrowed("trace_id"), Cow::Borrowed("t\"q"))
        );
        assert_eq!(x.labels[1].0, "span.id");
        assert_eq!((x.value, x.timestamp), (-0.25, None));
        let x = e.samples[1].exemplar.as_ref().unwrap();
        assert_eq!(
            (x.labels.len(), x.value, x.timestamp),
            (0, 2000.0, Some(17_000))
        );
        for bad in [
            "a 1 # trace_id=\"x\" 1\n# EOF\n",
            "a 1 # {trace_id=\"x\"}1\n# EOF\n",
            "a 1 # {trace_id=\"x\"} one\n# EOF\n",
            "a 1 # {trace_id=x} 1\n# EOF\n",
            "a 1 # {trace_id=\"x\"} 1 2 3\n# EOF\n",
        ] {
            assert!(parse(bad, Format::OpenMetrics).is_err(), "{bad}");
        }
    }

    #[test]
    fn openmetrics() {
        let body = "# TYPE foo counter\n\
                    # UNIT foo seconds\n\
                    # HELP foo A counter.\n\
                    foo_total{a=\"1\"} 17.0 1520879607.789 # {trace_id=\"x\"} 1.0 1520879607.7\n\
                    foo_created{a=\"1\"} 1520872607.123\n\
                    # TYPE s stateset\n\
                    s{s=\"a\"} 1\n\
                    # EOF\n";
        let e = parse(body, Format::OpenMetrics).unwrap();
        assert_eq!(e.samples.len(), 3);
        assert_eq!(e.samples[0].timestamp, Some(1_520_879_607_789));
        assert_eq!(e.samples[0].value, 17.0);
        assert_eq!(
            e.samples[0].exemplar,
            Some(ParsedExemplar {
                labels: vec![(Cow::Borrowed("trace_id"), Cow::Borrowed("x"))],
                value: 1.0,
                timestamp: Some(1_520_879_607_700),
            })
        );
        assert_eq!(e.samples[1].exemplar, None);
        assert_eq!(e.metadata[0].1.unit, "seconds");
        assert_eq!(e.metadata[0].1.help, "A counter.");
        assert_eq!(e.metadata[1].1.metric_type, "stateset");
        assert!(parse("foo 1\n", Format::OpenMetrics)
            .unwrap_err()
            .contains("EOF"));
        assert!(parse("foo 1\n# EOF\nbar 2\n", Format::OpenMetrics).is_err());
        assert!(parse("foo 1\n\n# EOF\n", Format::OpenMetrics).is_err());
        assert!(parse("foo  1\n# EOF\n", Format::OpenMetrics).is_err());
        assert_eq!(
            Format::from_content_type(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain; version=0.0.4")),
            Format::Text
        );
    }
}
