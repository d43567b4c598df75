//! Label extraction from lines: `json` (nested keys flattened with `_`), `logfmt`, `pattern`,
//! `unpack`, and `decolorize`. Each extractor reports pairs to a callback and returns an
//! error text (Loki's `__error_details__`) for malformed input.

use serde_json::Value;

/// A label name Loki would accept: invalid characters become `_`, a leading digit gets a `_`
/// prefix.
pub(crate) fn sanitize_key(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn parse_object(line: &str) -> Result<serde_json::Map<String, Value>, String> {
    if !line.trim_start().starts_with('{') {
        return Err("Value looks like object, but can't find closing '}' symbol".into());
    }
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("Value is not an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A JSON scalar as found in the line: strings unescaped, numbers as written.
enum Scalar {
    Str(String),
    /// Number, `true`/`false`: the text as written.
    Raw(String),
    Null,
}

/// A forward-only reader over JSON text that keeps number text as written (Loki reports
/// `1.50` as `1.50`) and reports fields seen before a syntax error.
struct JsonReader<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> JsonReader<'a> {
    fn new(s: &'a str) -> Self {
        JsonReader {
            b: s.as_bytes(),
            s,
            i: 0,
        }
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn error(&self) -> String {
        match self.b.get(self.i) {
            None => "Value looks like object, but can't find closing '}' symbol".into(),
            Some(c) => format!("unexpected character '{}' at offset {}", *c as char, self.i),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| "invalid unicode escape".to_string())?;
        self.i += 4;
        Ok(h)
    }

    /// A string (the opening quote is next), unescaped.
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.b.len() && self.b[self.i] != b'"' && self.b[self.i] != b'\\' {
                self.i += 1;
            }
            out.push_str(self.s.get(start..self.i).ok_or("invalid string")?);
            match self.b.get(self.i) {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {
                    self.i += 1;
                    let e = *self.b.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\x08'),
                        b'f' => out.push('\x0c'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) && self.s[self.i..].starts_with("\\u")
                            {
                                self.i += 2;
                                let low = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xD800) << 10)
                                    + (low.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        }
                        c => out.push(c as char),
                    }
                }
            }
        }
    }

    /// A number, `true`, `false` or `null`: the text as written.
    fn bare(&mut self) -> Result<&'a str, String> {
        self.ws();
        let start = self.i;
        while self.i < self.b.len()
            && matches!(self.b[self.i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z')
        {
            self.i += 1;
        }
        let t = &self.s[start..self.i];
        let valid = matches!(t, "true" | "false" | "null")
            || (!t.is_empty() && t.parse::<f64>().is_ok() && !t.starts_with('+'));
        if valid {
            Ok(t)
        } else {
            self.i = start;
            Err(self.error())
        }
    }

    fn scalar(&mut self) -> Result<Scalar, String> {
        if self.peek() == Some(b'"') {
            return self.string().map(Scalar::Str);
        }
        Ok(match self.bare()? {
            "null" => Scalar::Null,
            t => Scalar::Raw(t.to_string()),
        })
    }

    /// Skips any value; returns its text.
    fn skip(&mut self) -> Result<&'a str, String> {
        self.ws();
        let start = self.i;
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.string()?;
                        self.expect(b':')?;
                        self.skip()?;
                        if self.peek() == Some(b',') {
                            self.i += 1;
                            continue;
                        }
                        self.expect(b'}')?;
                        break;
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.skip()?;
                        if self.peek() == Some(b',') {
                            self.i += 1;
                            continue;
                        }
                        self.expect(b']')?;
                        break;
                    }
                }
            }
            Some(b'"') => {
                self.string()?;
            }
            _ => {
                self.bare()?;
            }
        }
        Ok(&self.s[start..self.i])
    }

    /// Walks an object (the `{` is next), reporting scalars under `prefix` (keys joined with
    /// `_`); nested arrays are skipped.
    fn object(&mut self, prefix: &str, out: &mut dyn FnMut(String, String)) -> Result<(), String> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = sanitize_key(&self.string()?);
            let key = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}_{key}")
            };
            self.expect(b':')?;
            match self.peek() {
                Some(b'{') => self.object(&key, out)?,
                Some(b'[') => {
                    self.skip()?;
                }
                _ => match self.scalar()? {
                    Scalar::Str(v) | Scalar::Raw(v) => out(key, v),
                    Scalar::Null => {}
                },
            }
            if self.peek() == Some(b',') {
                self.i += 1;
                continue;
            }
            return self.expect(b'}');
        }
    }

    /// The value at `steps` (the root value is next): scalars as text (strings unescaped),
    /// objects and arrays as their JSON text; `None` when the path does not exist.
    fn find(&mut self, steps: &[PathStep]) -> Result<Option<String>, String> {
        let Some((step, rest)) = steps.split_first() else {
            return Ok(match self.peek() {
                Some(b'{') | Some(b'[') => Some(self.skip()?.to_string()),
                _ => match self.scalar()? {
                    Scalar::Str(v) | Scalar::Raw(v) => Some(v),
                    Scalar::Null => Some(String::new()),
                },
            });
        };
        match (self.peek(), step) {
            (Some(b'{'), PathStep::Key(k)) => {
                self.i += 1;
                if self.peek() == Some(b'}') {
                    return Ok(None);
                }
                loop {
                    let key = self.string()?;
                    self.expect(b':')?;
                    if &key == k {
                        return self.find(rest);
                    }
                    self.skip()?;
                    if self.peek() == Some(b',') {
                        self.i += 1;
                        continue;
                    }
                    self.expect(b'}')?;
                    return Ok(None);
                }
            }
            (Some(b'['), PathStep::Index(n)) => {
                self.i += 1;
                if self.peek() == Some(b']') {
                    return Ok(None);
                }
                let mut idx = 0;
                loop {
                    if idx == *n {
                        return self.find(rest);
                    }
                    self.skip()?;
                    idx += 1;
                    if self.peek() == Some(b',') {
                        self.i += 1;
                        continue;
                    }
                    self.expect(b']')?;
                    return Ok(None);
                }
            }
            _ => Ok(None),
        }
    }
}

/// Every scalar field of a JSON object line, nested keys joined with `_`; arrays and nulls
/// are skipped; numbers keep their text. Fields before a syntax error are still reported.
pub(crate) fn json_all(line: &str, out: &mut dyn FnMut(String, String)) -> Result<(), String> {
    let mut r = JsonReader::new(line);
    if r.peek() != Some(b'{') {
        return Err("Value looks like object, but can't find closing '}' symbol".into());
    }
    r.object("", out)
}

/// One step of a `json` parameter path: `a.b[0]["c d"]`.
#[derive(Debug, PartialEq)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<PathStep>> {
    let mut steps = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                steps.push(PathStep::Key(q.to_string()));
            } else {
                steps.push(PathStep::Index(inner.parse().ok()?));
            }
            rest = &r[end + 1..];
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        steps.push(PathStep::Key(rest[..end].to_string()));
        rest = &rest[end..];
    }
    Some(steps)
}

/// `json label="path", ...`: the value at each path (strings unquoted, numbers as written,
/// objects and arrays as their JSON text; missing paths give an empty value).
pub(crate) fn json_params(
    line: &str,
    params: &[(String, String)],
    out: &mut dyn FnMut(String, String),
) -> Result<(), String> {
    if !matches!(
        line.trim_start().as_bytes().first(),
        Some(b'{' | b'[' | b'"')
    ) {
        return Err("Value looks like object, but can't find closing '}' symbol".into());
    }
    for (label, path) in params {
        let steps = parse_path(path).unwrap_or_default();
        let found = JsonReader::new(line).find(&steps)?;
        out(label.clone(), found.unwrap_or_default());
    }
    Ok(())
}

/// `unpack`: string fields become labels; `_entry` replaces the line (returned).
pub(crate) fn unpack(
    line: &str,
    out: &mut dyn FnMut(String, String),
) -> Result<Option<String>, String> {
    let m = parse_object(line)?;
    let mut entry = None;
    for (k, v) in m {
        if let Value::String(s) = v {
            if k == "_entry" {
                entry = Some(s);
            } else {
                out(sanitize_key(&k), s);
            }
        }
    }
    Ok(entry)
}

/// logfmt pairs (`k=v`, `k="quoted \" v"`, bare `k`). With `strict`, the first malformed pair
/// is an error; otherwise malformed text is skipped. Bare keys and empty values are reported
/// only with `keep_empty`.
pub(crate) fn logfmt(
    line: &str,
    strict: bool,
    keep_empty: bool,
    out: &mut dyn FnMut(String, String),
) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    let n = b.len();
    while i < n {
        while i < n && b[i] <= b' ' {
            i += 1;
        }
        if i >= n {
            break;
        }
        let key_start = i;
        while i < n && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[key_start..i];
        if key.is_empty() {
            if strict {
                return Err(format!(
                    "logfmt syntax error at pos {}: unexpected '{}'",
                    i + 1,
                    b[i] as char
                ));
            }
            // Skip the malformed token.
            while i < n && b[i] > b' ' {
                i += 1;
            }
            continue;
        }
        if i >= n || b[i] != b'=' {
            if i < n && b[i] == b'"' {
                if strict {
                    return Err(format!(
                        "logfmt syntax error at pos {}: unexpected '\"'",
                        i + 1
                    ));
                }
                while i < n && b[i] > b' ' {
                    i += 1;
                }
                continue;
            }
            if keep_empty {
                out(sanitize_key(key), String::new());
            }
            continue;
        }
        i += 1; // '='
        let value = if i < n && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            let mut chars = line[i..].char_indices();
            while let Some((p, c)) = chars.next() {
                match c {
                    '"' => {
                        i += p + 1;
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, 't')) => v.push('\t'),
                        Some((_, 'r')) => v.push('\r'),
                        Some((_, e)) => v.push(e),
                        None => break,
                    },
                    c => v.push(c),
                }
            }
            if !closed {
                if strict {
                    return Err(format!(
                        "logfmt syntax error at pos {}: unterminated quoted value",
                        n + 1
                    ));
                }
                i = n;
            }
            v
        } else {
            let s = i;
            while i < n && b[i] > b' ' {
                i += 1;
            }
            line[s..i].to_string()
        };
        if !value.is_empty() || keep_empty {
            out(sanitize_key(key), value);
        }
    }
    Ok(())
}

/// A compiled `pattern` expression: literals and `<name>` captures (`<_>` captures nothing).
#[derive(Clone, Debug)]
pub struct Pattern {
    nodes: Vec<PatNode>,
}

#[derive(Clone, Debug)]
enum PatNode {
    Lit(String),
    Cap(Option<String>),
}

impl Pattern {
    /// A pattern for the `pattern` parser: at least one named capture.
    pub fn compile(p: &str) -> Result<Pattern, String> {
        let pat = Pattern::compile_filter(p)?;
        if !pat.nodes.iter().any(|n| matches!(n, PatNode::Cap(Some(_)))) {
            return Err("at least one capture is required".into());
        }
        Ok(pat)
    }

    /// The literal pieces, all of which a matching line contains (pushdown needles).
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            PatNode::Lit(l) => Some(l.as_str()),
            PatNode::Cap(_) => None,
        })
    }

    /// A pattern for the `|>` / `!>` line filters: captures are optional.
    pub fn compile_filter(p: &str) -> Result<Pattern, String> {
        let mut nodes = Vec::new();
        let mut rest = p;
        let mut lit = String::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('<') {
                let end = r.find('>');
                let name = end.map(|e| &r[..e]);
                if let (Some(end), Some(name)) = (end, name) {
                    let valid = name == "_"
                        || (name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    if valid && !name.is_empty() {
                        if !lit.is_empty() {
                            nodes.push(PatNode::Lit(std::mem::take(&mut lit)));
                        }
                        if matches!(nodes.last(), Some(PatNode::Cap(_))) {
                            return Err("found consecutive capture: invalid expression".into());
                        }
                        nodes.push(PatNode::Cap((name != "_").then(|| name.to_string())));
                        rest = &r[end + 1..];
                        continue;
                    }
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            nodes.push(PatNode::Lit(lit));
        }
        let names: Vec<&String> = nodes
            .iter()
            .filter_map(|n| match n {
                PatNode::Cap(Some(name)) => Some(name),
                _ => None,
            })
            .collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(format!("duplicate capture name ({n}): invalid expression"));
            }
        }
        Ok(Pattern { nodes })
    }

    /// The captures of `line`, or `None` when the line does not have the pattern's shape.
    pub fn matches<'l>(&self, line: &'l str) -> Option<Vec<(&str, &'l str)>> {
        let mut out = Vec::new();
        let mut rest = line;
        let mut pending: Option<&Option<String>> = None;
        for node in &self.nodes {
            match node {
                PatNode::Cap(name) => pending = Some(name),
                PatNode::Lit(l) => match pending.take() {
                    None => rest = rest.strip_prefix(l.as_str())?,
                    Some(name) => {
                        let pos = rest.find(l.as_str())?;
                        if let Some(name) = name {
                            out.push((name.as_str(), &rest[..pos]));
                        }
                        rest = &rest[pos + l.len()..];
                    }
                },
            }
        }
        if let Some(Some(name)) = pending {
            out.push((name.as_str(), rest));
        }
        Some(out)
    }
}

/// An `ip("...")` pattern: one address, a CIDR block, or an inclusive range `a-b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpPattern {
    Single(std::net::IpAddr),
    Cidr(std::net::IpAddr, u8),
    Range(std::net::IpAddr, std::net::IpAddr),
}

fn ip_bits(ip: &std::net::IpAddr) -> (u128, u32) {
    match ip {
        std::net::IpAddr::V4(v) => (u128::from(u32::from(*v)), 32),
        std::net::IpAddr::V6(v) => (u128::from(*v), 128),
    }
}

impl IpPattern {
    pub fn parse(s: &str) -> Result<IpPattern, String> {
        let s = s.trim();
        let bad = || format!("ip: invalid pattern {s:?}");
        if let Some((a, b)) = s.split_once('-') {
            let a: std::net::IpAddr = a.trim().parse().map_err(|_| bad())?;
            let b: std::net::IpAddr = b.trim().parse().map_err(|_| bad())?;
            if a.is_ipv4() != b.is_ipv4() || ip_bits(&a).0 > ip_bits(&b).0 {
                return Err(bad());
            }
            return Ok(IpPattern::Range(a, b));
        }
        if let Some((a, p)) = s.split_once('/') {
            let a: std::net::IpAddr = a.parse().map_err(|_| bad())?;
            let p: u8 = p.parse().map_err(|_| bad())?;
            if u32::from(p) > ip_bits(&a).1 {
                return Err(bad());
            }
            return Ok(IpPattern::Cidr(a, p));
        }
        s.parse().map(IpPattern::Single).map_err(|_| bad())
    }

    pub fn matches(&self, ip: &std::net::IpAddr) -> bool {
        let (v, width) = ip_bits(ip);
        match self {
            IpPattern::Single(a) => a == ip,
            IpPattern::Cidr(a, p) => {
                let (base, w) = ip_bits(a);
                if w != width {
                    return false;
                }
                let shift = width - u32::from(*p);
                shift >= 128 || (v >> shift) == (base >> shift)
            }
            IpPattern::Range(a, b) => {
                a.is_ipv4() == ip.is_ipv4() && ip_bits(a).0 <= v && v <= ip_bits(b).0
            }
        }
    }

    /// True when `text` contains an address (v4 or v6, optionally with a `:port`) that the
    /// pattern matches.
    pub fn matches_in(&self, text: &str) -> bool {
        let is_ip_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
        text.split(|c: char| !is_ip_char(c))
            .filter(|t| t.len() >= 2)
            .any(|tok| {
                let tok = tok.trim_matches(|c| c == '.' || c == ':');
                if let Ok(ip) = tok.parse::<std::net::IpAddr>() {
                    return self.matches(&ip);
                }
                // `1.2.3.4:8080`
                tok.rsplit_once(':')
                    .filter(|(a, _)| a.contains('.'))
                    .and_then(|(a, _)| a.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| self.matches(&ip))
            })
    }
}

/// Removes ANSI escape sequences (colours, cursor movement) from a line.
pub(crate) fn decolorize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                // Parameters and intermediates, then one final byte in @..~.
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}
