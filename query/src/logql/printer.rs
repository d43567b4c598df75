//! Canonical LogQL text (`format_query`): the tree printed back with Go-quoted strings,
//! Prometheus-style durations and single spaces, so `parse(print(e))` gives `e` again.

use std::fmt::{self, Display, Formatter, Write as _};

use sextant_storage::Matcher;

use super::ast::*;

/// Go's `strconv.Quote` for the characters LogQL strings carry.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Nanoseconds as a Prometheus duration (`1h30m`, `500ms`; `1d` and `1w` are printed as
/// hours as Go's `time.Duration` does not have them, but Loki accepts both forms).
pub(crate) fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ns.unsigned_abs();
    if ns < 0 {
        out.push('-');
    }
    if !rest.is_multiple_of(1_000_000) {
        // Sub-millisecond precision: print as Go would, in the smallest exact unit.
        if rest.is_multiple_of(1000) {
            let _ = write!(out, "{}us", rest / 1000);
        } else {
            let _ = write!(out, "{rest}ns");
        }
        return out;
    }
    for (unit, mult) in [
        ("y", 365 * 86_400_000_000_000u64),
        ("w", 7 * 86_400_000_000_000),
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ] {
        if rest >= mult {
            let _ = write!(out, "{}{unit}", rest / mult);
            rest %= mult;
        }
    }
    out
}

fn fmt_matcher(m: &Matcher) -> String {
    format!("{}{}{}", m.name, m.op.as_str(), go_quote(&m.value))
}

/// A float as Go's `fmt.Sprint` prints it (`%v`: shortest form, exponent from 1e21).
fn fmt_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let exp = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    if (-4..21).contains(&exp) {
        return format!("{v}");
    }
    // Rust prints `1e21`/`1.5e-7`; Go prints `1e+21`/`1.5e-07`.
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((mant, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{mant}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Nanoseconds as Go's `time.Duration.String()` (`5m0s`, `1h30m0s`, `500ms`), which Loki
/// uses for `offset`.
pub(crate) fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let d = ns.unsigned_abs();
    let frac = |value: u64, unit: u64, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let width = (unit as f64).log10() as usize;
            let digits = format!("{rest:0>width$}");
            format!("{whole}.{}{suffix}", digits.trim_end_matches('0'))
        }
    };
    let body = if d < 1_000 {
        format!("{d}ns")
    } else if d < 1_000_000 {
        frac(d, 1_000, "µs")
    } else if d < 1_000_000_000 {
        frac(d, 1_000_000, "ms")
    } else {
        let h = d / 3_600_000_000_000;
        let m = (d % 3_600_000_000_000) / 60_000_000_000;
        let s = frac(d % 60_000_000_000, 1_000_000_000, "s");
        if h > 0 {
            format!("{h}h{m}m{s}")
        } else if m > 0 {
            format!("{m}m{s}")
        } else {
            s
        }
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// A byte count as Loki prints it (go-humanize's `Bytes` without spaces: `20MB`, `2.0kB`).
fn fmt_bytes(v: f64) -> String {
    if v < 10.0 {
        return format!("{}B", v as u64);
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = (v.log10() / 3.0).floor().clamp(0.0, 6.0);
    let val = (v / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = units[e as usize];
    if val < 10.0 {
        format!("{val:.1}{unit}")
    } else {
        format!("{val:.0}{unit}")
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::And(a, b) => write!(f, "( {a} , {b} )"),
            LabelFilter::Or(a, b) => write!(f, "( {a} or {b} )"),
            LabelFilter::Str(m) => f.write_str(&fmt_matcher(m)),
            LabelFilter::Ip {
                name, negate, text, ..
            } => {
                let op = if *negate { "!=" } else { "=" };
                write!(f, "{name}{op}ip({})", go_quote(text))
            }
            LabelFilter::Num {
                name,
                op,
                kind,
                value,
                ..
            } => {
                let v = match kind {
                    NumKind::Number => format!("{value}"),
                    NumKind::Duration => format_go_duration((value * 1e9).round() as i64),
                    NumKind::Bytes => fmt_bytes(*value),
                };
                write!(f, "{name}{}{v}", op.as_str())
            }
        }
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let params = |p: &[(String, String)]| {
            p.iter()
                .map(|(k, v)| format!("{k}={}", go_quote(v)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let sels = |s: &[LabelSel]| {
            s.iter()
                .map(|x| match x {
                    LabelSel::Name(n) => n.clone(),
                    LabelSel::Matcher(m) => fmt_matcher(m),
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Stage::LineFilter(lf) if lf.ips.is_some() => {
                let values: Vec<String> = lf
                    .values
                    .iter()
                    .map(|v| format!("ip({})", go_quote(v)))
                    .collect();
                write!(f, "{} {}", lf.op.as_str(), values.join(" or "))
            }
            Stage::LineFilter(lf) => {
                let values: Vec<String> = lf.values.iter().map(|v| go_quote(v)).collect();
                write!(f, "{} {}", lf.op.as_str(), values.join(" or "))
            }
            Stage::Json(p) if p.is_empty() => f.write_str("| json"),
            Stage::Json(p) => write!(f, "| json {}", params(p)),
            Stage::Logfmt {
                strict,
                keep_empty,
                params: p,
            } => {
                f.write_str("| logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                if !p.is_empty() {
                    write!(f, " {}", params(p))?;
                }
                Ok(())
            }
            Stage::Regexp(re, _) => write!(f, "| regexp {}", go_quote(re)),
            Stage::Pattern(p, _) => write!(f, "| pattern {}", go_quote(p)),
            Stage::Unpack => f.write_str("| unpack"),
            Stage::LabelFilter(lf) => write!(f, "| {lf}"),
            Stage::LineFormat(t, _) => write!(f, "| line_format {}", go_quote(t)),
            Stage::LabelFormat(rules) => {
                let parts: Vec<String> = rules
                    .iter()
                    .map(|r| match r {
                        LabelFmt::Rename { dst, src } => format!("{dst}={src}"),
                        LabelFmt::Template { dst, text, .. } => format!("{dst}={}", go_quote(text)),
                    })
                    .collect();
                write!(f, "| label_format {}", parts.join(","))
            }
            Stage::Drop(s) => write!(f, "| drop {}", sels(s)),
            Stage::Keep(s) => write!(f, "| keep {}", sels(s)),
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let ms: Vec<String> = self.matchers.iter().map(fmt_matcher).collect();
        write!(f, "{{{}}}", ms.join(", "))?;
        for s in &self.stages {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kw = if self.without { "without" } else { "by" };
        write!(f, "{kw} ({})", self.labels.join(","))
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Literal(v) => f.write_str(&fmt_number(*v)),
            MetricExpr::VectorFn(v) => write!(f, "vector({v:.6})"),
            // Binary operations print their own parentheses, as Loki's do.
            MetricExpr::Paren(inner) => inner.fmt(f),
            MetricExpr::LabelReplace(l) => write!(
                f,
                "label_replace({},{},{},{},{})",
                l.inner,
                go_quote(&l.dst),
                go_quote(&l.replacement),
                go_quote(&l.src),
                go_quote(&l.regex_text)
            ),
            MetricExpr::Range(r) => {
                write!(f, "{}(", r.op.as_str())?;
                if let Some(p) = r.param {
                    write!(f, "{},", fmt_number(p))?;
                }
                write!(f, "{}", r.log)?;
                if let Some(u) = &r.unwrap {
                    let conv = match u.conv {
                        Conversion::None => None,
                        Conversion::Duration => Some("duration"),
                        Conversion::DurationSeconds => Some("duration_seconds"),
                        Conversion::Bytes => Some("bytes"),
                    };
                    match conv {
                        Some(c) => write!(f, " | unwrap {c}({})", u.label)?,
                        None => write!(f, " | unwrap {}", u.label)?,
                    }
                    for pf in &u.post_filters {
                        write!(f, " | {pf}")?;
                    }
                }
                write!(f, "[{}]", format_duration(r.range_ns))?;
                if r.offset_ns != 0 {
                    write!(f, " offset {}", format_go_duration(r.offset_ns))?;
                }
                f.write_str(")")?;
                if let Some(g) = &r.grouping {
                    write!(f, " {g}")?;
                }
                Ok(())
            }
            MetricExpr::Vector(v) => {
                f.write_str(v.op.as_str())?;
                if let Some(g) = &v.grouping {
                    write!(f, " {g}")?;
                }
                f.write_str("(")?;
                if let Some(k) = v.param {
                    write!(f, "{k},")?;
                }
                write!(f, "{})", v.inner)
            }
            MetricExpr::Binary(b) => {
                // Loki's `(lhs op[ bool][ on|ignoring (labels) ] rhs)`, including the double
                // space its printer leaves after a matching clause.
                write!(f, "({} {}", b.lhs, b.op.as_str())?;
                if b.return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = &b.matching {
                    let kw = if m.on { "on" } else { "ignoring" };
                    let group = match &m.group {
                        None => String::new(),
                        Some(g) => {
                            let name = if g.left { "group_left" } else { "group_right" };
                            if g.include.is_empty() {
                                name.to_string()
                            } else {
                                format!("{name} ({})", g.include.join(","))
                            }
                        }
                    };
                    write!(f, " {kw} ({}) {group}", m.labels.join(","))?;
                }
                write!(f, " {})", b.rhs)
            }
        }
    }
}

impl Display for LogqlExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LogqlExpr::Log(l) => l.fmt(f),
            LogqlExpr::Metric(m) => m.fmt(f),
        }
    }
}
