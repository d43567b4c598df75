//! Literals with Go semantics: number parsing (`strconv.ParseInt(s, 0, 64)` then
//! `ParseFloat`), Prometheus durations (`model.ParseDuration` / `Duration.String`), and Go
//! string quoting and unquoting.

/// Milliseconds per duration unit, in the order units must appear.
const UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// The largest duration Go's `time.Duration` can hold, in milliseconds.
const MAX_DURATION_MS: i64 = i64::MAX / 1_000_000;

/// Parses a Prometheus duration (`1h30m`, `0`, `1y2w3d4h5m6s7ms`) into milliseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(invalid());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "unknown unit {} in duration {}",
                go_quote(unit),
                go_quote(s)
            ));
        };
        if last_unit.is_some_and(|l| idx <= l) {
            return Err(invalid());
        }
        last_unit = Some(idx);
        let mult = UNITS[idx].1;
        if value > (MAX_DURATION_MS / mult) as u64 {
            return Err("duration out of range".into());
        }
        total = total
            .checked_add(value as i64 * mult)
            .filter(|t| *t <= MAX_DURATION_MS)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(total)
}

/// Formats milliseconds like Prometheus' `model.Duration.String()` (`1h30m`, `0s`).
pub(crate) fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut left = ms;
    if left < 0 {
        out.push('-');
        left = -left;
    }
    for (i, (unit, mult)) in UNITS.iter().enumerate() {
        // Years and weeks are only used when they divide the rest exactly.
        if i < 2 && left % mult != 0 {
            continue;
        }
        let v = left / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            left -= v * mult;
        }
    }
    out
}

/// Go's rules for underscores in number literals: only between digits, or after a base prefix.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut saw = b'^';
    let hex = b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'x' | b'o' | b'b');
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'x' | b'o' | b'b') {
        i = 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

fn parse_int_base0(s: &str) -> Option<i64> {
    if s.contains('_') && !underscores_ok(s) {
        return None;
    }
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let (digits, radix) = if let Some(r) = lower.strip_prefix("0x") {
        (r, 16)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (r, 8)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (r, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    i64::from_str_radix(digits, radix).ok()
}

/// Parses a number token the way Prometheus does.
pub(crate) fn parse_number(s: &str) -> Result<f64, String> {
    if let Some(i) = parse_int_base0(s) {
        return Ok(i as f64);
    }
    let err = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(s)
        )
    };
    if s.contains('_') && !underscores_ok(s) {
        return Err(err());
    }
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        // An integer too large for int64: Go's ParseFloat wants a 'p' exponent here.
        if hex.bytes().all(|c| c.is_ascii_hexdigit()) && !hex.is_empty() {
            return Err(format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                go_quote(s)
            ));
        }
        return Err(err());
    }
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Ok(f64::INFINITY),
        "-inf" | "-infinity" => return Ok(f64::NEG_INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    if !lower
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'))
    {
        return Err(err());
    }
    lower.parse::<f64>().map_err(|_| err())
}

fn hex_val(c: char) -> Option<u32> {
    c.to_digit(16)
}

/// Checks a quoted string starting at `start` (which holds the quote) as Prometheus' lexer
/// does and returns the end offset (after the closing quote).
pub(crate) fn scan_string(b: &[u8], start: usize, quote: u8) -> Result<usize, String> {
    let s = std::str::from_utf8(&b[start..]).map_err(|_| "invalid UTF-8 rune".to_string())?;
    let mut it = s.char_indices().skip(1).peekable();
    if quote == b'`' {
        for (i, c) in it {
            if c == '`' {
                return Ok(start + i + 1);
            }
        }
        return Err("unterminated raw string".into());
    }
    while let Some((i, c)) = it.next() {
        match c {
            '\n' => return Err("unterminated quoted string".into()),
            c if c as u32 == quote as u32 => return Ok(start + i + 1),
            '\\' => {
                let Some((_, e)) = it.next() else {
                    return Err("escape sequence not terminated".into());
                };
                let (n, base, max) = match e {
                    'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => continue,
                    e if e as u32 == quote as u32 => continue,
                    '0'..='7' => (3, 8, 255),
                    'x' => (2, 16, 255),
                    'u' => (4, 16, 0x10ffff),
                    'U' => (8, 16, 0x10ffff),
                    other => return Err(format!("unknown escape sequence {}", go_sharp_u(other))),
                };
                let mut x: u32 = 0;
                let mut left = n;
                let mut ch = Some(e);
                if e == 'x' || e == 'u' || e == 'U' {
                    ch = it.next().map(|(_, c)| c);
                }
                while left > 0 {
                    let Some(c) = ch else {
                        return Err("escape sequence not terminated".into());
                    };
                    let d = hex_val(c).filter(|d| *d < base);
                    let Some(d) = d else {
                        return Err(format!(
                            "illegal character {} in escape sequence",
                            go_sharp_u(c)
                        ));
                    };
                    x = x * base + d;
                    left -= 1;
                    if left > 0 {
                        ch = it.next().map(|(_, c)| c);
                    }
                }
                if x > max || (0xD800..0xE000).contains(&x) {
                    return Err("escape sequence is an invalid Unicode code point".into());
                }
            }
            _ => {}
        }
    }
    Err("unterminated quoted string".into())
}

/// Unquotes a string token (already validated by [`scan_string`]) into its value.
pub(crate) fn unquote(raw: &str) -> Result<String, String> {
    let quote = raw.chars().next().ok_or("invalid syntax")?;
    let body = raw
        .get(1..raw.len().saturating_sub(1))
        .ok_or("invalid syntax")?;
    if quote == '`' {
        return Ok(body.replace('\r', ""));
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut it = body.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = it.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or("invalid syntax")?;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '\'' | '"' => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (n, base, byte) = match e {
            '0'..='7' => (2, 8, true),
            'x' => (2, 16, true),
            'u' => (4, 16, false),
            'U' => (8, 16, false),
            _ => return Err("invalid syntax".into()),
        };
        let mut x: u32 = if base == 8 { e as u32 - '0' as u32 } else { 0 };
        for _ in 0..n {
            let d = it
                .next()
                .and_then(hex_val)
                .filter(|d| *d < base)
                .ok_or("invalid syntax")?;
            x = x * base + d;
        }
        if byte {
            out.push(u8::try_from(x).map_err(|_| "invalid syntax")?);
        } else {
            let c = char::from_u32(x).ok_or("invalid syntax")?;
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Ok(decode_lossless(&out))
}

/// Where bytes of a string literal that are not UTF-8 (`"\xc5"`) are kept: byte `b` becomes
/// the private-use character `RAW_BYTE_BASE + b`, so that Go-style quoting
/// ([`go_quote`]) writes it back as `\xc5`, and no label name validates.
pub(crate) const RAW_BYTE_BASE: u32 = 0x10_FF00;

/// `bytes` as a string, each byte of an invalid UTF-8 sequence kept as a raw-byte character.
fn decode_lossless(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len()).max(1);
                for b in rest.iter().take(bad) {
                    out.extend(char::from_u32(RAW_BYTE_BASE + u32::from(*b)));
                }
                bytes = rest.get(bad..).unwrap_or_default();
            }
        }
    }
}

/// Go's `unicode.IsPrint`, approximated.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF)
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (RAW_BYTE_BASE..=RAW_BYTE_BASE + 0xff).contains(&(c as u32)) => {
            out.push_str(&format!("\\x{:02x}", c as u32 - RAW_BYTE_BASE));
        }
        c if is_print(c) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune`.
pub(crate) fn go_quote_rune(c: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

/// Go's `%#U` verb: `U+0071 'q'`.
fn go_sharp_u(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(
            parse_duration("1y2w3d4h5m6s7ms"),
            Ok(31_536_000_000 + 1_209_600_000 + 259_200_000 + 14_400_000 + 300_000 + 6000 + 7)
        );
        assert!(parse_duration("1m1h").is_err());
        assert_eq!(
            parse_duration("1.5m"),
            Err("not a valid duration string: \"1.5m\"".into())
        );
        assert_eq!(
            parse_duration("5x"),
            Err("unknown unit \"x\" in duration \"5x\"".into())
        );
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(90 * 86_400_000), "90d");
        assert_eq!(format_duration(14 * 86_400_000), "2w");
        assert_eq!(format_duration(365 * 86_400_000 + 1), "365d1ms");
        assert_eq!(format_duration(1500), "1s500ms");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x1f"), Ok(31.0));
        assert_eq!(parse_number("010"), Ok(8.0));
        assert_eq!(parse_number("09"), Ok(9.0));
        assert_eq!(parse_number("1e3"), Ok(1000.0));
        assert_eq!(parse_number(".5"), Ok(0.5));
        assert_eq!(parse_number("5."), Ok(5.0));
        assert_eq!(parse_number("1_000"), Ok(1000.0));
        assert_eq!(parse_number("Inf"), Ok(f64::INFINITY));
        assert!(parse_number("NaN").is_ok_and(f64::is_nan));
        assert_eq!(parse_number("1e400"), Ok(f64::INFINITY));
    }

    #[test]
    fn strings() {
        assert_eq!(unquote(r#""a\nb\"c""#).as_deref(), Ok("a\nb\"c"));
        assert_eq!(unquote(r#"'a\'b'"#).as_deref(), Ok("a'b"));
        assert_eq!(
            unquote(r#""\u00e4\x41\101\U0001F600""#).as_deref(),
            Ok("äAA😀")
        );
        assert_eq!(unquote(r#""\xc3\xa4""#).as_deref(), Ok("ä"));
        // Bytes that are not UTF-8 survive and quote back as Go writes them.
        let s = unquote(r#""a\xc5z""#).unwrap();
        assert_eq!(s.chars().count(), 3);
        assert_eq!(go_quote(&s), r#""a\xc5z""#);
        assert_eq!(unquote("`a\\nb`").as_deref(), Ok("a\\nb"));
        assert_eq!(
            scan_string(br#""a\qb""#, 0, b'"'),
            Err("unknown escape sequence U+0071 'q'".into())
        );
        assert_eq!(
            scan_string(br#""\u12""#, 0, b'"'),
            Err("illegal character U+0022 '\"' in escape sequence".into())
        );
        assert_eq!(
            scan_string(br#""\ud800""#, 0, b'"'),
            Err("escape sequence is an invalid Unicode code point".into())
        );
        assert_eq!(go_quote("a\"b\\c\n\u{1}ä"), "\"a\\\"b\\\\c\\n\\x01ä\"");
        assert_eq!(go_quote_rune('}'), "'}'");
        assert_eq!(go_quote_rune('\''), "'\\''");
    }
}
