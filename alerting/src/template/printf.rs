//! Go's `fmt.Sprintf` for template values: verbs `%v %s %d %f %F %e %E %g %G %q %x %X %t %c %%`,
//! flags `+ - # 0 space`, width and precision, and Go's `%!verb(type=value)` for mismatches.

use super::gofmt::{format_e, format_f, format_g};
use super::value::Value;

/// Formats `args` by `format` as Go's `fmt.Sprintf` does.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '+' => spec.plus = true,
                '-' => spec.minus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(read_num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let body = format_one(verb, &spec, arg);
        out.push_str(&pad(body, &spec, verb));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.print()))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

#[derive(Default)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn read_num(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(&d) = chars.peek() {
        let Some(v) = d.to_digit(10) else { break };
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(v as usize));
        chars.next();
    }
    n
}

fn bad(verb: char, arg: &Value) -> String {
    format!("%!{verb}({}={})", arg.type_name(), arg.print())
}

fn sign(s: String, spec: &Spec) -> String {
    if s.starts_with('-') || s.starts_with('+') {
        return s;
    }
    if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    match verb {
        'v' => match arg {
            Value::Float(f) => sign(format_g(*f, spec.prec, false), spec),
            Value::Int(i) => sign(i.to_string(), spec),
            Value::Str(s) if spec.sharp => quote(s),
            other => other.print(),
        },
        's' => match arg {
            Value::Str(s) => truncate(s, spec.prec),
            Value::Labels(_) | Value::Map(_) | Value::Time(_) | Value::Duration(_) => {
                truncate(&arg.print(), spec.prec)
            }
            Value::Nil => "%!s(<nil>)".into(),
            other => bad('s', other),
        },
        'q' => match arg {
            Value::Str(s) => quote(s),
            Value::Int(i) => match char::from_u32(*i as u32) {
                Some(c) => format!("{c:?}"),
                None => bad('q', arg),
            },
            other => bad('q', other),
        },
        'd' => match arg {
            Value::Int(i) => sign(i.to_string(), spec),
            other => bad('d', other),
        },
        'c' => match arg {
            Value::Int(i) => char::from_u32(*i as u32)
                .map(|c| c.to_string())
                .unwrap_or_else(|| "\u{FFFD}".into()),
            other => bad('c', other),
        },
        't' => match arg {
            Value::Bool(b) => b.to_string(),
            other => bad('t', other),
        },
        'x' | 'X' => {
            let s = match arg {
                Value::Int(i) => {
                    let h = format!("{:x}", i.unsigned_abs());
                    let h = if spec.sharp { format!("0x{h}") } else { h };
                    if *i < 0 {
                        format!("-{h}")
                    } else {
                        h
                    }
                }
                Value::Str(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                other => return bad(verb, other),
            };
            if verb == 'X' {
                s.to_uppercase()
            } else {
                s
            }
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let Value::Float(f) = arg else {
                return bad(verb, arg);
            };
            let s = match verb {
                'e' | 'E' => format_e(*f, spec.prec.unwrap_or(6), verb == 'E'),
                'f' | 'F' => format_f(*f, spec.prec.unwrap_or(6)),
                _ => format_g(*f, spec.prec, verb == 'G'),
            };
            sign(s, spec)
        }
        other => bad(other, arg),
    }
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn pad(body: String, spec: &Spec, verb: char) -> String {
    let Some(w) = spec.width else { return body };
    let len = body.chars().count();
    if len >= w {
        return body;
    }
    let fill = w - len;
    if spec.minus {
        return format!("{body}{}", " ".repeat(fill));
    }
    let numeric = matches!(
        verb,
        'd' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' | 'x' | 'X' | 'v'
    );
    if spec.zero && numeric && !body.ends_with("Inf") && body != "NaN" {
        let (sgn, digits) = match body.strip_prefix(['-', '+', ' ']) {
            Some(d) => (&body[..1], d),
            None => ("", body.as_str()),
        };
        return format!("{sgn}{}{digits}", "0".repeat(fill));
    }
    format!("{}{body}", " ".repeat(fill))
}

/// Go's `strconv.Quote`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
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

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn verbs_match_go() {
        assert_eq!(sprintf("%s=%d", &[s("a"), Value::Int(5)]), "a=5");
        assert_eq!(sprintf("%.2f", &[Value::Float(1.23456)]), "1.23");
        assert_eq!(
            sprintf("%5.1f|%-4d|", &[Value::Float(2.25), Value::Int(7)]),
            "  2.2|7   |"
        );
        assert_eq!(sprintf("%q", &[s("a\"b")]), "\"a\\\"b\"");
        assert_eq!(sprintf("%x %X", &[Value::Int(255), s("hi")]), "ff 6869");
        assert_eq!(
            sprintf("%g %v", &[Value::Float(1e6), Value::Float(0.5)]),
            "1e+06 0.5"
        );
        assert_eq!(sprintf("%03d", &[Value::Int(7)]), "007");
        assert_eq!(sprintf("100%%", &[]), "100%");
    }

    #[test]
    fn mismatches_are_reported_like_go() {
        assert_eq!(sprintf("%d", &[Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(sprintf("%d", &[]), "%!d(MISSING)");
        assert_eq!(sprintf("x", &[Value::Int(1)]), "x%!(EXTRA int=1)");
    }
}
