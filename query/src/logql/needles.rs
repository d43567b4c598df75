//! Pushdown: the literals every kept line must contain, handed to the store as
//! [`Needle`]s so it can answer from its inverted index. Only line filters that run before
//! the line can change (`line_format`, `decolorize`, `unpack`) qualify; `|=` gives its
//! literal, `|~` the literals its regex requires (`abc.*def` → `abc`, `def`), and a leading
//! `(?i)` makes them case-insensitive. Negated filters and `or` alternatives give none.

use regex_syntax::hir::{Hir, HirKind};
use sextant_storage::logs::Needle;

use super::ast::{LineFilterOp, Stage};

/// The needles of a pipeline (deduplicated, in filter order).
pub fn needles(stages: &[Stage]) -> Vec<Needle> {
    let mut out: Vec<Needle> = Vec::new();
    for stage in stages {
        if super::ast::LogExpr::stage_mutates_line(stage) {
            break;
        }
        let Stage::LineFilter(f) = stage else {
            continue;
        };
        if f.values.len() != 1 || f.ips.is_some() {
            continue;
        }
        let v = &f.values[0];
        let found = match f.op {
            LineFilterOp::Contains if !v.is_empty() => vec![Needle {
                text: v.clone(),
                case_insensitive: false,
            }],
            LineFilterOp::Match => regex_needles(v),
            LineFilterOp::PatternMatch => f
                .patterns
                .iter()
                .flat_map(|p| p.literals())
                .filter(|l| !l.is_empty())
                .map(|l| Needle {
                    text: l.to_string(),
                    case_insensitive: false,
                })
                .collect(),
            _ => Vec::new(),
        };
        for n in found {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Literals a match of `pattern` must contain.
pub fn regex_needles(pattern: &str) -> Vec<Needle> {
    let (ci, body) = match pattern.strip_prefix("(?i)") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let Ok(hir) = regex_syntax::Parser::new().parse(body) else {
        return Vec::new();
    };
    let mut lits = Vec::new();
    required(&hir, &mut lits);
    lits.into_iter()
        .filter(|l| !l.is_empty())
        .map(|text| Needle {
            text,
            case_insensitive: ci,
        })
        .collect()
}

/// The exact text `h` matches, when it matches exactly one string.
fn exact(h: &Hir) -> Option<String> {
    match h.kind() {
        HirKind::Literal(l) => String::from_utf8(l.0.to_vec()).ok(),
        HirKind::Capture(c) => exact(&c.sub),
        HirKind::Concat(parts) => {
            let mut s = String::new();
            for p in parts {
                s.push_str(&exact(p)?);
            }
            Some(s)
        }
        HirKind::Empty => Some(String::new()),
        _ => None,
    }
}

/// Appends literals that every match of `h` contains.
fn required(h: &Hir, out: &mut Vec<String>) {
    if let Some(s) = exact(h) {
        out.push(s);
        return;
    }
    match h.kind() {
        HirKind::Capture(c) => required(&c.sub, out),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub, out),
        HirKind::Concat(parts) => {
            let mut run = String::new();
            for p in parts {
                match exact(p) {
                    Some(s) => run.push_str(&s),
                    None => {
                        if !run.is_empty() {
                            out.push(std::mem::take(&mut run));
                        }
                        required(p, out);
                    }
                }
            }
            if !run.is_empty() {
                out.push(run);
            }
        }
        _ => {}
    }
}
