//! Alertmanager label matchers: the `name="value"` / `!=` / `=~` / `!~` syntax of `matchers:`
//! lists (one string may hold several, comma-separated, optionally in braces; values quoted or
//! bare), legacy `match`/`match_re` maps, and the `{a="b",c=~"d"}` form used in group keys.
//! Regexes are anchored; a missing label matches as the empty string.

use std::collections::BTreeMap;
use std::fmt;

use sextant_storage::{MatchOp, Matcher};

/// A conjunction of matchers, kept sorted as Alertmanager sorts a route's matchers (by name,
/// then value, then operator) so that its string form is stable.
#[derive(Clone, Debug, Default)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parses a `matchers:` list plus legacy `match` / `match_re` maps.
    pub fn from_config(
        lines: &[String],
        eq: &BTreeMap<String, String>,
        re: &BTreeMap<String, String>,
    ) -> Result<Matchers, String> {
        let mut out = Vec::new();
        for line in lines {
            out.extend(parse_matchers(line)?);
        }
        for (k, v) in eq {
            out.push(Matcher::equal(k.clone(), v.clone()));
        }
        for (k, v) in re {
            out.push(
                Matcher::new(MatchOp::Regex, k.clone(), v.clone()).map_err(|e| e.to_string())?,
            );
        }
        out.sort_by(|a, b| {
            (a.name.as_str(), a.value.as_str(), op_rank(a.op)).cmp(&(
                b.name.as_str(),
                b.value.as_str(),
                op_rank(b.op),
            ))
        });
        Ok(Matchers(out))
    }

    /// Whether every matcher accepts `labels` (an empty list matches everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map(String::as_str).unwrap_or("")))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn op_rank(op: MatchOp) -> u8 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Regex => 2,
        MatchOp::NotRegex => 3,
    }
}

impl fmt::Display for Matchers {
    /// `{a="b",c=~"d"}`: the form Alertmanager puts in route keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}{}{}", m.name, m.op.as_str(), quote(&m.value))?;
        }
        f.write_str("}")
    }
}

/// Quotes a string as Go's `strconv.Quote` does for the characters label values contain.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{a="b", c="d"}` with Go's `%q` quoting: the form of Alertmanager's `LabelSet.String()`.
pub fn label_set_string(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Parses one matcher string, which may hold several comma-separated matchers.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, String> {
    let mut s = input.trim();
    if let Some(inner) = s.strip_prefix('{') {
        s = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("bad matcher {input:?}: missing closing '}}'"))?
            .trim();
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    let mut pieces = Vec::new();
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            ',' if !in_quote => {
                pieces.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quote {
        return Err(format!("bad matcher {input:?}: unterminated quoted string"));
    }
    pieces.push(&s[start..]);
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        out.push(parse_one(piece).map_err(|e| format!("bad matcher {piece:?}: {e}"))?);
    }
    if out.is_empty() {
        return Err(format!("bad matcher {input:?}: no matcher"));
    }
    Ok(out)
}

fn parse_one(s: &str) -> Result<Matcher, String> {
    let (name, rest) = if let Some(quoted) = s.strip_prefix('"') {
        let (name, used) = unquote_prefix(quoted)?;
        (name, &quoted[used..])
    } else {
        let end = s
            .find(['=', '!', '~', ' '])
            .ok_or_else(|| "missing operator".to_string())?;
        (s[..end].to_string(), &s[end..])
    };
    if name.is_empty() {
        return Err("empty label name".into());
    }
    let rest = rest.trim_start();
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchOp::Regex, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchOp::Equal, r)
    } else {
        return Err("missing operator (=, !=, =~, !~)".into());
    };
    let rest = rest.trim();
    let value = if let Some(q) = rest.strip_prefix('"') {
        let (v, used) = unquote_prefix(q)?;
        if !q[used..].trim().is_empty() {
            return Err("unexpected text after the quoted value".into());
        }
        v
    } else {
        rest.to_string()
    };
    Matcher::new(op, name, value).map_err(|e| e.to_string())
}

/// Reads a quoted string body (after the opening quote) up to its closing quote; returns the
/// unescaped text and the bytes consumed including the closing quote.
fn unquote_prefix(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, other)) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_all_operators_and_forms() {
        let ms = parse_matchers(r#"{a="b", c!="d",e=~"f.*" , g!~h}"#).unwrap();
        let ops: Vec<_> = ms
            .iter()
            .map(|m| (m.name.as_str(), m.op, m.value.as_str()))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("a", MatchOp::Equal, "b"),
                ("c", MatchOp::NotEqual, "d"),
                ("e", MatchOp::Regex, "f.*"),
                ("g", MatchOp::NotRegex, "h"),
            ]
        );
        let m = parse_matchers(r#"msg="a, \"quoted\" value""#).unwrap();
        assert_eq!(m[0].value, "a, \"quoted\" value");
        assert!(parse_matchers("novalue").is_err());
        assert!(parse_matchers(r#"a="unterminated"#).is_err());
        assert!(parse_matchers(r#"a=~"(""#).is_err());
    }

    #[test]
    fn matching_is_anchored_and_missing_is_empty() {
        let m = Matchers::from_config(
            &[
                r#"service=~"foo|bar""#.to_string(),
                r#"team!="x""#.to_string(),
            ],
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(m.matches(&labels(&[("service", "foo")])));
        assert!(!m.matches(&labels(&[("service", "foobar")])));
        assert!(!m.matches(&labels(&[("service", "foo"), ("team", "x")])));
        let absent =
            Matchers::from_config(&[r#"x="""#.to_string()], &BTreeMap::new(), &BTreeMap::new())
                .unwrap();
        assert!(absent.matches(&labels(&[("y", "1")])));
    }

    #[test]
    fn string_forms_match_alertmanager() {
        let m = Matchers::from_config(
            &[
                r#"link_z_device=~".+""#.to_string(),
                r#"link_a_device=~".+""#.to_string(),
            ],
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            m.to_string(),
            r#"{link_a_device=~".+",link_z_device=~".+"}"#
        );
        assert_eq!(
            label_set_string(&labels(&[
                ("database", "orders"),
                ("alertname", "DiskFull")
            ])),
            r#"{alertname="DiskFull", database="orders"}"#
        );
        let legacy = Matchers::from_config(
            &[],
            &labels(&[("service", "files")]),
            &labels(&[("severity", "crit.*")]),
        )
        .unwrap();
        assert_eq!(
            legacy.to_string(),
            r#"{service="files",severity=~"crit.*"}"#
        );
    }
}
