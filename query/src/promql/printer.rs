//! Prints expressions back as PromQL: `Display` gives the canonical one-line form of
//! Prometheus' `String()`, and [`pretty`] the multi-line form of Prometheus' `Pretty(0)`
//! (used by `/api/v1/format_query`).

use std::fmt;

use sextant_storage::{Matcher, METRIC_NAME};

use super::ast::{
    AggregateExpr, AtModifier, BinaryExpr, DurationExpr, Expr, MatrixSelector, SubqueryExpr,
    UnaryOp, VectorMatchCardinality, VectorMatching, VectorSelector,
};
use super::engine::fmt_g;
use super::parser::literals::{format_duration, go_quote};

/// Lines longer than this are split by [`pretty`].
const MAX_LINE: usize = 100;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_string(self))
    }
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn is_legacy_label(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn write_labels(out: &mut String, labels: &[String]) {
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_legacy_label(l) {
            out.push_str(l);
        } else {
            out.push_str(&go_quote(l));
        }
    }
}

fn matcher_string(m: &Matcher) -> String {
    let name = if is_legacy_label(&m.name) {
        m.name.clone()
    } else {
        go_quote(&m.name)
    };
    format!("{name}{}{}", m.op.as_str(), go_quote(&m.value))
}

fn at_string(at: Option<AtModifier>) -> String {
    match at {
        None => String::new(),
        Some(AtModifier::Start) => " @ start()".into(),
        Some(AtModifier::End) => " @ end()".into(),
        Some(AtModifier::At(ms)) => {
            let sign = if ms < 0 { "-" } else { "" };
            let abs = ms.unsigned_abs();
            format!(" @ {sign}{}.{:03}", abs / 1000, abs % 1000)
        }
    }
}

fn offset_string(offset: i64) -> String {
    match offset {
        0 => String::new(),
        o if o > 0 => format!(" offset {}", format_duration(o)),
        o => format!(" offset -{}", format_duration(o.saturating_neg())),
    }
}

/// The selector without its `@` and `offset` modifiers.
fn selector_core(vs: &VectorSelector) -> String {
    let name = vs.name.as_deref().unwrap_or("");
    let mut parts: Vec<String> = vs
        .matchers
        .iter()
        .filter(|m| {
            !(m.name == METRIC_NAME
                && m.op == sextant_storage::MatchOp::Equal
                && m.value == name
                && !m.value.is_empty())
        })
        .map(matcher_string)
        .collect();
    let mut out = name.to_string();
    if !parts.is_empty() {
        parts.sort();
        out.push('{');
        out.push_str(&parts.join(","));
        out.push('}');
    }
    out
}

/// ` offset <d>`, preferring an unresolved duration expression.
fn offset_or_expr(offset: i64, expr: Option<&DurationExpr>) -> String {
    match expr {
        Some(e) => format!(" offset {e}"),
        None => offset_string(offset),
    }
}

fn extended_string(vs: &VectorSelector) -> &'static str {
    if vs.anchored {
        " anchored"
    } else if vs.smoothed {
        " smoothed"
    } else {
        ""
    }
}

fn vector_selector(vs: &VectorSelector) -> String {
    format!(
        "{}{}{}{}",
        selector_core(vs),
        at_string(vs.at),
        extended_string(vs),
        offset_or_expr(vs.offset, vs.offset_expr.as_ref())
    )
}

fn matrix_selector(ms: &MatrixSelector) -> String {
    let range = match &ms.range_expr {
        Some(e) => e.to_string(),
        None => format_duration(ms.range),
    };
    format!(
        "{}[{}]{}{}{}",
        selector_core(&ms.selector),
        range,
        extended_string(&ms.selector),
        at_string(ms.selector.at),
        offset_or_expr(ms.selector.offset, ms.selector.offset_expr.as_ref())
    )
}

fn subquery_suffix(sq: &SubqueryExpr) -> String {
    let step = match (&sq.step_expr, sq.step) {
        (Some(e), _) => e.to_string(),
        (None, Some(s)) => format_duration(s),
        (None, None) => String::new(),
    };
    let range = match &sq.range_expr {
        Some(e) => e.to_string(),
        None => format_duration(sq.range),
    };
    format!(
        "[{range}:{step}]{}{}",
        at_string(sq.at),
        offset_or_expr(sq.offset, sq.offset_expr.as_ref())
    )
}

fn aggregate_prefix(a: &AggregateExpr) -> String {
    let mut out = a.op.as_str().to_string();
    if a.without || !a.grouping.is_empty() {
        out.push_str(if a.without { " without (" } else { " by (" });
        write_labels(&mut out, &a.grouping);
        out.push_str(") ");
    }
    out
}

fn matching_string(m: Option<&VectorMatching>) -> String {
    let Some(vm) = m else {
        return String::new();
    };
    let grouped = matches!(
        vm.card,
        VectorMatchCardinality::ManyToOne | VectorMatchCardinality::OneToMany
    );
    let mut out = String::new();
    if !vm.labels.is_empty() || vm.on || grouped {
        out.push_str(if vm.on { " on (" } else { " ignoring (" });
        write_labels(&mut out, &vm.labels);
        out.push(')');
    }
    if grouped {
        out.push_str(if vm.card == VectorMatchCardinality::ManyToOne {
            " group_left ("
        } else {
            " group_right ("
        });
        write_labels(&mut out, &vm.include);
        out.push(')');
    }
    match (vm.fill.lhs, vm.fill.rhs) {
        (Some(l), Some(r)) if l.to_bits() == r.to_bits() => {
            out.push_str(&format!(" fill ({})", fmt_g(l)));
        }
        (l, r) => {
            if let Some(l) = l {
                out.push_str(&format!(" fill_left ({})", fmt_g(l)));
            }
            if let Some(r) = r {
                out.push_str(&format!(" fill_right ({})", fmt_g(r)));
            }
        }
    }
    out
}

fn binary_operator(b: &BinaryExpr) -> String {
    format!(
        "{}{}{}",
        b.op.as_str(),
        if b.return_bool { " bool" } else { "" },
        matching_string(b.matching.as_ref())
    )
}

fn unary_op(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "-",
        UnaryOp::Pos => "+",
    }
}

fn to_string(e: &Expr) -> String {
    match e {
        Expr::NumberLiteral(v) => format_number(*v),
        Expr::StringLiteral(s) => go_quote(s),
        Expr::VectorSelector(vs) => vector_selector(vs),
        Expr::MatrixSelector(ms) => matrix_selector(ms),
        Expr::Subquery(sq) => format!("{}{}", to_string(&sq.expr), subquery_suffix(sq)),
        Expr::Paren(inner) => format!("({})", to_string(inner)),
        Expr::Unary(u) => format!("{}{}", unary_op(u.op), to_string(&u.expr)),
        Expr::Binary(b) => format!(
            "{} {} {}",
            to_string(&b.lhs),
            binary_operator(b),
            to_string(&b.rhs)
        ),
        Expr::Aggregate(a) => {
            let mut out = aggregate_prefix(a);
            out.push('(');
            if let Some(p) = &a.param {
                out.push_str(&to_string(p));
                out.push_str(", ");
            }
            out.push_str(&to_string(&a.expr));
            out.push(')');
            out
        }
        Expr::Call(c) => {
            let args: Vec<String> = c.args.iter().map(to_string).collect();
            format!("{}({})", c.func.name, args.join(", "))
        }
    }
}

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

/// Formats `expr` over several lines when its one-line form is longer than 100 characters,
/// like Prometheus' `Pretty(0)`.
pub fn pretty(expr: &Expr) -> String {
    pretty_at(expr, 0)
}

fn pretty_at(e: &Expr, level: usize) -> String {
    let flat = to_string(e);
    let split = flat.len() > MAX_LINE;
    let ind = indent(level);
    match e {
        Expr::Aggregate(a) if split => {
            let mut out = format!("{ind}{}(\n", aggregate_prefix(a));
            if let Some(p) = &a.param {
                out.push_str(&pretty_at(p, level + 1));
                out.push_str(",\n");
            }
            out.push_str(&format!("{}\n{ind})", pretty_at(&a.expr, level + 1)));
            out
        }
        Expr::Binary(b) if split => format!(
            "{}\n{ind}{}\n{}",
            pretty_at(&b.lhs, level + 1),
            binary_operator(b),
            pretty_at(&b.rhs, level + 1)
        ),
        Expr::Call(c) if split => {
            let args: Vec<String> = c.args.iter().map(|a| pretty_at(a, level + 1)).collect();
            format!("{ind}{}(\n{}\n{ind})", c.func.name, args.join(",\n"))
        }
        Expr::Paren(inner) if split => {
            format!("{ind}(\n{}\n{ind})", pretty_at(inner, level + 1))
        }
        Expr::Subquery(sq) if split => {
            format!("{}{}", pretty_at(&sq.expr, level), subquery_suffix(sq))
        }
        // Prometheus prints short subqueries without indentation.
        Expr::Subquery(_) => flat,
        Expr::Unary(u) => {
            let child = pretty_at(&u.expr, level);
            format!("{ind}{}{}", unary_op(u.op), child.trim())
        }
        _ => format!("{ind}{flat}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    fn p(s: &str) -> Expr {
        match parse(s) {
            Ok(e) => e,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(format_number(1.0), "1");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(1e21), "1000000000000000000000");
        assert_eq!(format_number(1e-7), "0.0000001");
        assert_eq!(format_number(f64::INFINITY), "+Inf");
        assert_eq!(format_number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(format_number(-0.0), "-0");
    }

    #[test]
    fn one_line_forms() {
        let cases = [
            ("sum by(a,b)(x)", "sum by (a, b) (x)"),
            ("sum(x) without(a)", "sum without (a) (x)"),
            ("sum by () (x)", "sum(x)"),
            ("sum without () (x)", "sum without () (x)"),
            ("topk(3,x)", "topk(3, x)"),
            ("a+on(b)group_left(c)d", "a + on (b) group_left (c) d"),
            (
                "a * ignoring(b) group_right d",
                "a * ignoring (b) group_right () d",
            ),
            ("a and on() b", "a and on () b"),
            ("a or b", "a or b"),
            ("a > bool 1", "a > bool 1"),
            ("foo{b='x', a=~\"y\"}", "foo{a=~\"y\",b=\"x\"}"),
            ("{__name__=\"foo\"}", "{__name__=\"foo\"}"),
            (
                "{\"my.metric\", \"a.b\"=\"c\"}",
                "{\"a.b\"=\"c\",__name__=\"my.metric\"}",
            ),
            (
                "foo[90m] @ 100 offset -1d",
                "foo[1h30m] @ 100.000 offset -1d",
            ),
            ("foo offset 1w @ start()", "foo @ start() offset 1w"),
            ("rate(x[5m])[1h:] @ end()", "rate(x[5m])[1h:] @ end()"),
            ("x[1h:5m] offset 1m", "x[1h:5m] offset 1m"),
            ("\"a\\nb\"", "\"a\\nb\""),
            ("-x", "-x"),
            ("- 1", "-1"),
            ("-(1)", "-(1)"),
            ("foo @ 1609746000.123", "foo @ 1609746000.123"),
            ("foo @ -1.5", "foo @ -1.500"),
            ("sum by (\"a.b\") (x)", "sum by (\"a.b\") (x)"),
            ("0x1F", "31"),
            ("a + fill(0) b", "a + fill (0) b"),
            (
                "a + on(x) group_left fill_left(1) fill_right(-Inf) b",
                "a + on (x) group_left () fill_left (1) fill_right (-Inf) b",
            ),
            (
                "a == bool fill_right(1e21) b",
                "a == bool fill_right (1e+21) b",
            ),
            ("rate(x[1m] anchored)", "rate(x[1m] anchored)"),
            (
                "x[5m] smoothed @ 10 offset 1m",
                "x[5m] smoothed @ 10.000 offset 1m",
            ),
            ("x @ 10 offset 1m smoothed", "x @ 10.000 smoothed offset 1m"),
            ("x[step()+1ms]", "x[step() + 1ms]"),
            ("x offset -step()", "x offset -step()"),
            ("x offset (STEP() * 2)", "x offset (step() * 2)"),
            (
                "x[min_of(range(), 1h):step()]",
                "x[min_of(range(), 1h):step()]",
            ),
            ("x[5m+1m]", "x[6m]"),
            ("1e3", "1000"),
            ("5m", "300"),
            (
                "label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")",
                "label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).to_string(), want, "input {input}");
        }
    }

    #[test]
    fn pretty_splits_long_lines() {
        let short = p("sum(rate(x[5m]))");
        assert_eq!(pretty(&short), "sum(rate(x[5m]))");
        let long = p("sum by (job) (rate(http_requests_total{job=\"apiserver\", handler=\"/api/comments\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))");
        let want = "  sum by (job) (rate(http_requests_total{handler=\"/api/comments\",job=\"apiserver\"}[5m]))\n/\n  sum by (job) (rate(http_requests_total[5m]))";
        assert_eq!(pretty(&long), want);
        let nested = p("sum by (job, instance, handler) (rate(http_requests_total{job=\"apiserver\", handler=\"/api/comments\", code=~\"5..\"}[5m]))");
        let want = "sum by (job, instance, handler) (\n  rate(http_requests_total{code=~\"5..\",handler=\"/api/comments\",job=\"apiserver\"}[5m])\n)";
        assert_eq!(pretty(&nested), want);
        let reparsed = p(&pretty(&long).replace('\n', " "));
        assert_eq!(
            super::super::parser::tests_normalized(&reparsed),
            super::super::parser::tests_normalized(&long)
        );
        let unary = p("-(sum by (job) (rate(http_requests_total{job=\"apiserver\", handler=\"/api/comments\"}[5m])) + 123456789012345)");
        assert_eq!(
            pretty(&unary),
            "-(\n    sum by (job) (rate(http_requests_total{handler=\"/api/comments\",job=\"apiserver\"}[5m]))\n  +\n    123456789012345\n)"
        );
    }
}
