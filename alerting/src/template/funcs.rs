//! Template functions: Go's built-ins (`eq`, `printf`, `index`, `len`, …) and Prometheus'
//! (`humanize*`, `query`, `first`, `label`, `value`, `sortByLabel`, `reReplaceAll`, …).

use std::cmp::Ordering;
use std::rc::Rc;

use super::exec::{args_map, run_defined, Ctx};
use super::gofmt::format_g;
use super::printf::sprintf;
use super::value::Value;

const NAMES: &[&str] = &[
    // Go built-ins
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "call",
    // Prometheus
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "parseDuration",
    "title",
    "toUpper",
    "toLower",
    "match",
    "reReplaceAll",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "graphLink",
    "tableLink",
    "externalURL",
    "pathPrefix",
    "args",
    "tmpl",
];

/// Whether `name` is a function templates may call.
pub(crate) fn is_func(name: &str) -> bool {
    NAMES.contains(&name)
}

fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn str_arg(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "error calling {name}: wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// Prometheus' `convertToFloat`.
fn to_float(name: &str, v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Duration(ns) => Ok(*ns as f64 / 1e9),
        Value::Str(s) => parse_go_float(s).ok_or_else(|| {
            format!("error calling {name}: strconv.ParseFloat: parsing {s:?}: invalid syntax")
        }),
        other => Err(format!(
            "error calling {name}: can't convert {} to float",
            other.type_name()
        )),
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches('+');
    match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => {
            return Some(if s.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if t.is_empty() || t.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    t.parse().ok()
}

fn sample_arg(name: &str, v: &Value) -> Result<Rc<crate::template::QuerySample>, String> {
    match v {
        Value::Sample(s) => Ok(s.clone()),
        other => Err(format!(
            "error calling {name}: wrong type for value; expected *template.sample; got {}",
            other.type_name()
        )),
    }
}

/// Calls function `name` with evaluated `args` (the piped value last).
pub(crate) fn call(
    ctx: &mut Ctx<'_>,
    name: &str,
    args: Vec<Value>,
    _dot: &Value,
) -> Result<Value, String> {
    match name {
        "not" => {
            want(name, &args, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            want(name, &args, 1)?;
            let n = match &args[0] {
                Value::Str(s) => s.len(),
                Value::Labels(m) => m.len(),
                Value::Map(m) => m.len(),
                Value::Samples(v) => v.len(),
                other => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    ))
                }
            };
            Ok(Value::Int(n as i64))
        }
        "index" => {
            let Some((item, idx)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut cur = item.clone();
            for i in idx {
                cur = match (&cur, i) {
                    (Value::Labels(m), Value::Str(k)) => {
                        Value::Str(m.get(k).cloned().unwrap_or_default())
                    }
                    (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or(Value::Nil),
                    (Value::Samples(v), Value::Int(n)) => {
                        match usize::try_from(*n).ok().and_then(|n| v.get(n)) {
                            Some(s) => Value::Sample(Rc::new(s.clone())),
                            None => {
                                return Err(format!("error calling index: index out of range: {n}"))
                            }
                        }
                    }
                    (Value::Str(s), Value::Int(n)) => {
                        match usize::try_from(*n).ok().and_then(|n| s.as_bytes().get(n)) {
                            Some(b) => Value::Int(i64::from(*b)),
                            None => {
                                return Err(format!("error calling index: index out of range: {n}"))
                            }
                        }
                    }
                    (c, k) => {
                        return Err(format!(
                            "error calling index: cannot index {} with {}",
                            c.type_name(),
                            k.type_name()
                        ))
                    }
                };
            }
            Ok(cur)
        }
        "slice" => {
            let Some((item, idx)) = args.split_first() else {
                return Err("wrong number of args for slice: want at least 1 got 0".into());
            };
            let Value::Str(s) = item else {
                return Err(format!(
                    "error calling slice: can't slice item of type {}",
                    item.type_name()
                ));
            };
            let mut bounds = Vec::new();
            for i in idx {
                match i {
                    Value::Int(n) if *n >= 0 => bounds.push(*n as usize),
                    _ => {
                        return Err(
                            "error calling slice: cannot index slice/array with nonint".into()
                        )
                    }
                }
            }
            let lo = bounds.first().copied().unwrap_or(0);
            let hi = bounds.get(1).copied().unwrap_or(s.len());
            s.get(lo..hi)
                .map(|x| Value::Str(x.to_string()))
                .ok_or_else(|| format!("error calling slice: index out of range: {hi}"))
        }
        "print" => Ok(Value::Str(go_sprint(&args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(Value::print).collect();
            Ok(Value::Str(format!("{}\n", parts.join(" "))))
        }
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            let f = str_arg(name, f)?;
            Ok(Value::Str(sprintf(&f, rest)))
        }
        "html" => Ok(Value::Str(html_escape(&go_sprint(&args)))),
        "js" => Ok(Value::Str(js_escape(&go_sprint(&args)))),
        "urlquery" => Ok(Value::Str(query_escape(&go_sprint(&args)))),
        "eq" => {
            let Some((a, rest)) = args.split_first() else {
                return Err("error calling eq: missing argument for comparison".into());
            };
            if rest.is_empty() {
                return Err("error calling eq: missing argument for comparison".into());
            }
            for b in rest {
                if compare(a, b).map_err(|e| format!("error calling eq: {e}"))? == Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(name, &args, 2)?;
            if matches!(args[0], Value::Bool(_)) && name != "ne" {
                return Err(format!("error calling {name}: invalid type for comparison"));
            }
            let o =
                compare(&args[0], &args[1]).map_err(|e| format!("error calling {name}: {e}"))?;
            Ok(Value::Bool(match name {
                "ne" => o != Ordering::Equal,
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        "call" => Err("error calling call: functions cannot be called in alert templates".into()),
        "query" => {
            want(name, &args, 1)?;
            let q = str_arg(name, &args[0])?;
            let r = ctx
                .query
                .query(&q)
                .map_err(|e| format!("error calling query: error executing query: {e}"))?;
            Ok(Value::Samples(Rc::new(r)))
        }
        "first" => {
            want(name, &args, 1)?;
            match &args[0] {
                Value::Samples(v) => v
                    .first()
                    .map(|s| Value::Sample(Rc::new(s.clone())))
                    .ok_or_else(|| "error calling first: first() called on vector with no elements".into()),
                other => Err(format!(
                    "error calling first: wrong type for value; expected template.queryResult; got {}",
                    other.type_name()
                )),
            }
        }
        "label" => {
            want(name, &args, 2)?;
            let l = str_arg(name, &args[0])?;
            let s = sample_arg(name, &args[1])?;
            Ok(Value::Str(s.labels.get(&l).cloned().unwrap_or_default()))
        }
        "value" => {
            want(name, &args, 1)?;
            Ok(Value::Float(sample_arg(name, &args[0])?.value))
        }
        "strvalue" => {
            want(name, &args, 1)?;
            let s = sample_arg(name, &args[0])?;
            Ok(Value::Str(
                s.labels.get("__value__").cloned().unwrap_or_default(),
            ))
        }
        "sortByLabel" => {
            want(name, &args, 2)?;
            let l = str_arg(name, &args[0])?;
            let Value::Samples(v) = &args[1] else {
                return Err(format!(
                    "error calling sortByLabel: wrong type for value; expected template.queryResult; got {}",
                    args[1].type_name()
                ));
            };
            let mut v: Vec<_> = v.as_ref().clone();
            v.sort_by(|a, b| a.labels.get(&l).cmp(&b.labels.get(&l)));
            Ok(Value::Samples(Rc::new(v)))
        }
        "humanize" => {
            want(name, &args, 1)?;
            Ok(Value::Str(humanize_f(to_float(name, &args[0])?)))
        }
        "humanize1024" => {
            want(name, &args, 1)?;
            let mut v = to_float(name, &args[0])?;
            if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
                return Ok(Value::Str(g4(v)));
            }
            let mut prefix = "";
            for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
                if v.abs() < 1024.0 {
                    break;
                }
                prefix = p;
                v /= 1024.0;
            }
            Ok(Value::Str(format!("{}{prefix}", g4(v))))
        }
        "humanizeDuration" => {
            want(name, &args, 1)?;
            Ok(Value::Str(humanize_duration(to_float(name, &args[0])?)))
        }
        "humanizePercentage" => {
            want(name, &args, 1)?;
            Ok(Value::Str(format!(
                "{}%",
                g4(to_float(name, &args[0])? * 100.0)
            )))
        }
        "humanizeTimestamp" => {
            want(name, &args, 1)?;
            if let Value::Time(ms) = &args[0] {
                return Ok(Value::Str(Value::Time(*ms).print()));
            }
            let v = to_float(name, &args[0])?;
            if v.is_nan() || v.is_infinite() {
                return Ok(Value::Str(g4(v)));
            }
            Ok(Value::Str(Value::Time(float_to_ms(name, v)?).print()))
        }
        "toTime" => {
            want(name, &args, 1)?;
            let v = to_float(name, &args[0])?;
            if v.is_nan() || v.is_infinite() {
                return Err("error calling toTime: value is NaN or Inf".into());
            }
            Ok(Value::Time(float_to_ms(name, v)?))
        }
        "toDuration" => {
            want(name, &args, 1)?;
            let v = to_float(name, &args[0])?;
            if v.is_nan() || v.is_infinite() || (v * 1e9).abs() >= 9.2e18 {
                return Err(format!(
                    "error calling toDuration: {} cannot be represented as a duration",
                    g4(v)
                ));
            }
            Ok(Value::Duration((v * 1e9) as i64))
        }
        "parseDuration" => {
            want(name, &args, 1)?;
            let s = str_arg(name, &args[0])?;
            let d = crate::rules::file::parse_duration(&s)
                .map_err(|e| format!("error calling parseDuration: {e}"))?;
            Ok(Value::Float(d.as_secs_f64()))
        }
        "title" => {
            want(name, &args, 1)?;
            Ok(Value::Str(title(&str_arg(name, &args[0])?)))
        }
        "toUpper" => {
            want(name, &args, 1)?;
            Ok(Value::Str(str_arg(name, &args[0])?.to_uppercase()))
        }
        "toLower" => {
            want(name, &args, 1)?;
            Ok(Value::Str(str_arg(name, &args[0])?.to_lowercase()))
        }
        "match" => {
            want(name, &args, 2)?;
            let re = regex(name, &str_arg(name, &args[0])?)?;
            Ok(Value::Bool(re.is_match(&str_arg(name, &args[1])?)))
        }
        "reReplaceAll" => {
            want(name, &args, 3)?;
            let re = regex(name, &str_arg(name, &args[0])?)?;
            let repl = str_arg(name, &args[1])?;
            let text = str_arg(name, &args[2])?;
            Ok(Value::Str(
                re.replace_all(&text, repl.as_str()).into_owned(),
            ))
        }
        "safeHtml" => {
            want(name, &args, 1)?;
            Ok(Value::Str(str_arg(name, &args[0])?))
        }
        "stripPort" => {
            want(name, &args, 1)?;
            let hp = str_arg(name, &args[0])?;
            Ok(Value::Str(
                split_host_port(&hp).map(|(h, _)| h).unwrap_or(hp),
            ))
        }
        "stripDomain" => {
            want(name, &args, 1)?;
            let hp = str_arg(name, &args[0])?;
            let (host, port) = split_host_port(&hp).unwrap_or((hp.clone(), String::new()));
            if host.parse::<std::net::IpAddr>().is_ok() {
                return Ok(Value::Str(hp));
            }
            let short = host.split('.').next().unwrap_or("").to_string();
            Ok(Value::Str(if port.is_empty() {
                short
            } else if short.contains(':') {
                format!("[{short}]:{port}")
            } else {
                format!("{short}:{port}")
            }))
        }
        "graphLink" | "tableLink" => {
            want(name, &args, 1)?;
            let e = str_arg(name, &args[0])?;
            let tab = if name == "graphLink" { 0 } else { 1 };
            Ok(Value::Str(format!(
                "/graph?g0.expr={}&g0.tab={tab}",
                query_escape(&e)
            )))
        }
        "externalURL" => {
            want(name, &args, 0)?;
            Ok(Value::Str(ctx.data.external_url.clone()))
        }
        "pathPrefix" => {
            want(name, &args, 0)?;
            Ok(Value::Str(url_path(&ctx.data.external_url)))
        }
        "args" => Ok(args_map(args)),
        "tmpl" => {
            want(name, &args, 2)?;
            let t = str_arg(name, &args[0])?;
            run_defined(ctx, 0, &t, &args[1])
                .map(Value::Str)
                .map_err(|(_, e)| format!("error calling tmpl: {e}"))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// `%.4g`
fn g4(v: f64) -> String {
    format_g(v, Some(4), false)
}

/// Prometheus' `humanize`.
pub(crate) fn humanize_f(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus' `humanizeDuration` (seconds in).
fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Seconds (float) to milliseconds, truncating below the millisecond as Prometheus does.
fn float_to_ms(name: &str, v: f64) -> Result<i64, String> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "error calling {name}: {} cannot be represented as a nanoseconds timestamp since it overflows int64",
            super::gofmt::float_v(v)
        ));
    }
    Ok((ns as i64).div_euclid(1_000_000))
}

fn regex(name: &str, pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("error calling {name}: {e}"))
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.print());
    }
    out
}

/// Go's `strings.Title`: upper-cases the first letter of every word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !(c.is_alphanumeric()) && c.is_whitespace()
        };
    }
    out
}

/// Go's `net.SplitHostPort`.
fn split_host_port(hp: &str) -> Option<(String, String)> {
    if let Some(rest) = hp.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = hp.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The path of a URL (`http://host:9090/prefix` → `/prefix`).
fn url_path(u: &str) -> String {
    let rest = match u.split_once("://") {
        Some((_, r)) => r,
        None => return u.split(['?', '#']).next().unwrap_or("").to_string(),
    };
    match rest.find('/') {
        Some(p) => rest[p..].split(['?', '#']).next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Compares two basic values; numbers compare numerically across int and float.
fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Nil, Value::Nil) => Ok(Ordering::Equal),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y).unwrap_or(Ordering::Less)),
            _ => {
                let basic = |v: &Value| {
                    matches!(
                        v,
                        Value::Str(_) | Value::Bool(_) | Value::Int(_) | Value::Float(_)
                    )
                };
                if !basic(a) || !basic(b) {
                    Err(format!(
                        "non-comparable types {}: {}",
                        a.type_name(),
                        b.type_name()
                    ))
                } else {
                    Err("incompatible types for comparison".into())
                }
            }
        },
    }
}
