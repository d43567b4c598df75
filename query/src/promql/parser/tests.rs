//! Parser unit tests: table-driven checks of the printed form or the error of each input, and
//! a round trip `parse(print(e)) == e` over every valid case.

use sextant_storage::{MatchOp, Matcher};

use super::super::ast::{
    AggregateOp, AtModifier, BinaryOp, Expr, PosRange, VectorMatchCardinality,
};
use super::parse;

/// `expr` with every position zeroed, printed with `Debug` (so NaN equals NaN): the form in
/// which a reparsed expression must equal the original.
pub(crate) fn normalized(expr: &Expr) -> String {
    fn strip(e: &Expr) -> Expr {
        let z = PosRange::default();
        match e {
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => e.clone(),
            Expr::VectorSelector(vs) => {
                let mut vs = vs.clone();
                vs.pos = z;
                vs.matchers.sort_by_key(|m| m.to_string());
                Expr::VectorSelector(vs)
            }
            Expr::MatrixSelector(ms) => {
                let mut ms = ms.clone();
                ms.pos = z;
                ms.selector.pos = z;
                ms.selector.matchers.sort_by_key(|m| m.to_string());
                Expr::MatrixSelector(ms)
            }
            Expr::Subquery(sq) => {
                let mut sq = sq.clone();
                sq.pos = z;
                sq.expr = Box::new(strip(&sq.expr));
                Expr::Subquery(sq)
            }
            Expr::Paren(p) => Expr::Paren(Box::new(strip(p))),
            Expr::Unary(u) => {
                let mut u = u.clone();
                u.pos = z;
                u.expr = Box::new(strip(&u.expr));
                Expr::Unary(u)
            }
            Expr::Binary(b) => {
                let mut b = b.clone();
                b.pos = z;
                b.lhs = Box::new(strip(&b.lhs));
                b.rhs = Box::new(strip(&b.rhs));
                Expr::Binary(b)
            }
            Expr::Aggregate(a) => {
                let mut a = a.clone();
                a.pos = z;
                a.expr = Box::new(strip(&a.expr));
                a.param = a.param.as_deref().map(|p| Box::new(strip(p)));
                Expr::Aggregate(a)
            }
            Expr::Call(c) => {
                let mut c = c.clone();
                c.pos = z;
                c.args = c.args.iter().map(strip).collect();
                Expr::Call(c)
            }
        }
    }
    format!("{:?}", strip(expr))
}

/// Parses `input` and compares its printed form (or `ERR <error>`) with `want`.
fn check(input: &str, want: &str) {
    let got = match parse(input) {
        Ok(e) => {
            let printed = e.to_string();
            match parse(&printed) {
                Ok(again) => assert_eq!(
                    normalized(&again),
                    normalized(&e),
                    "round trip of {input:?} via {printed:?}"
                ),
                Err(err) => panic!("reparse of {printed:?} (from {input:?}) failed: {err}"),
            }
            printed
        }
        Err(e) => format!("ERR {e}"),
    };
    assert_eq!(got, want, "input: {input:?}");
}

fn ok(input: &str) -> Expr {
    match parse(input) {
        Ok(e) => e,
        Err(e) => panic!("{input:?}: {e}"),
    }
}

#[test]
fn literals() {
    for (i, w) in [
        ("1", "1"),
        ("1.5", "1.5"),
        (".5", "0.5"),
        ("5.", "5"),
        ("1e3", "1000"),
        ("1E-3", "0.001"),
        ("0x1f", "31"),
        ("0X1F", "31"),
        ("010", "8"),
        ("1_000", "1000"),
        ("Inf", "+Inf"),
        ("-inf", "-Inf"),
        ("+InF", "+Inf"),
        ("NaN", "NaN"),
        ("nan", "NaN"),
        ("-1", "-1"),
        ("+1", "1"),
        ("- -1", "1"),
        ("1h", "3600"),
        ("1h30m", "5400"),
        ("1y", "31536000"),
        ("100ms", "0.1"),
        ("'a'", "\"a\""),
        ("\"a\\tb\"", "\"a\\tb\""),
        ("`raw\\n`", "\"raw\\\\n\""),
        ("\"\\u00e4\\x41\\101\"", "\"äAA\""),
        ("'\"'", "\"\\\"\""),
        (
            "\"\\'\"",
            "ERR 1:1: parse error: unknown escape sequence U+0027 '''",
        ),
        ("\"abc", "ERR 1:1: parse error: unterminated quoted string"),
        (
            "\"a\\xc5z\"",
            // Go's unquoting keeps bytes that are not UTF-8 (count_values then rejects the
            // label name at evaluation).
            "\"a\\xc5z\"",
        ),
        ("a </ 1", "a </ 1"),
        ("a >/ on (x) b", "a >/ on (x) b"),
        ("`abc", "ERR 1:1: parse error: unterminated raw string"),
        (
            "\"a\nb\"",
            "ERR 1:1: parse error: unterminated quoted string",
        ),
        (
            "1x",
            "ERR 1:1: parse error: bad number or duration syntax: \"1\"",
        ),
        (
            "1.5m",
            "ERR 1:1: parse error: not a valid duration string: \"1.5m\"",
        ),
        (
            "1m1h",
            "ERR 1:1: parse error: not a valid duration string: \"1m1h\"",
        ),
        ("", "ERR 1:1: parse error: no expression found in input"),
        (
            "  # only a comment",
            "ERR 1:1: parse error: no expression found in input",
        ),
    ] {
        check(i, w);
    }
}

#[test]
fn precedence_and_associativity() {
    use BinaryOp::*;
    fn shape(e: &Expr) -> String {
        match e {
            Expr::Binary(b) => format!("({} {} {})", shape(&b.lhs), b.op.as_str(), shape(&b.rhs)),
            Expr::Unary(u) => format!("(u{:?} {})", u.op, shape(&u.expr)),
            Expr::Paren(p) => shape(p),
            other => other.to_string(),
        }
    }
    let cases = [
        ("1 + 2 * 3", "(1 + (2 * 3))"),
        ("1 * 2 + 3", "((1 * 2) + 3)"),
        ("1 - 2 - 3", "((1 - 2) - 3)"),
        ("2 ^ 3 ^ 2", "(2 ^ (3 ^ 2))"),
        ("-2 ^ 2", "(uNeg (2 ^ 2))"),
        ("-a * b", "((uNeg a) * b)"),
        ("-a ^ b * c", "((uNeg (a ^ b)) * c)"),
        ("a ^ -b * c", "((a ^ (uNeg b)) * c)"),
        ("a * -b + c", "((a * (uNeg b)) + c)"),
        ("a or b and c", "(a or (b and c))"),
        ("a and b unless c", "((a and b) unless c)"),
        ("a or b or c", "((a or b) or c)"),
        ("a == b + c", "(a == (b + c))"),
        ("a + b > c and d", "(((a + b) > c) and d)"),
        ("a atan2 b * c", "((a atan2 b) * c)"),
        ("a % b ^ c", "(a % (b ^ c))"),
        ("a / b % c", "((a / b) % c)"),
        ("(a + b) * c", "((a + b) * c)"),
        ("a + b offset 5m", "(a + b offset 5m)"),
        ("-a offset 5m", "(uNeg a offset 5m)"),
    ];
    for (input, want) in cases {
        assert_eq!(shape(&ok(input)), want, "{input}");
    }
    let e = ok("-2^2");
    assert!(matches!(&e, Expr::Unary(u) if matches!(&*u.expr, Expr::Binary(b) if b.op == Pow)));
    let _ = (Add, Sub);
}

#[test]
fn selectors() {
    for (i, w) in [
        ("foo", "foo"),
        ("foo{}", "foo"),
        ("foo{a=\"b\"}", "foo{a=\"b\"}"),
        ("foo{a=\"b\",}", "foo{a=\"b\"}"),
        ("foo{a!=\"b\", c=~\"d\", e!~'f'}", "foo{a!=\"b\",c=~\"d\",e!~\"f\"}"),
        ("{a=\"b\"}", "{a=\"b\"}"),
        ("{__name__=~\"x.*\"}", "{__name__=~\"x.*\"}"),
        ("{\"my.metric\"}", "{__name__=\"my.metric\"}"),
        ("{\"my.metric\", \"a.b\"=\"c\"}", "{\"a.b\"=\"c\",__name__=\"my.metric\"}"),
        ("foo:bar:baz", "foo:bar:baz"),
        (":foo", ":foo"),
        ("sum", "sum"),
        ("by", "by"),
        ("offset", "offset"),
        ("start", "start"),
        ("and", "and"),
        ("sum{a=\"b\"}", "sum{a=\"b\"}"),
        ("foo{sum=\"a\", by=\"b\", offset=\"c\"}", "foo{by=\"b\",offset=\"c\",sum=\"a\"}"),
        ("fill + fill", "fill + fill"),
        ("foo # comment\n", "foo"),
        ("foo{ # c\n a=\"b\" }", "foo{a=\"b\"}"),
        ("{}", "ERR 1:1: parse error: vector selector must contain at least one non-empty matcher"),
        ("{a=\"\"}", "ERR 1:1: parse error: vector selector must contain at least one non-empty matcher"),
        ("{a=~\".*\"}", "ERR 1:1: parse error: vector selector must contain at least one non-empty matcher"),
        ("{a!=\"x\"}", "ERR 1:1: parse error: vector selector must contain at least one non-empty matcher"),
        ("{a!=\"\"}", "{a!=\"\"}"),
        ("{a=~\".+\"}", "{a=~\".+\"}"),
        ("foo{__name__=\"bar\"}", "ERR 1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\""),
        ("foo{a=\"b\"", "ERR 1:10: parse error: unexpected end of input inside braces"),
        ("foo{a=}", "ERR 1:7: parse error: unexpected \"}\" in label matching, expected string"),
        ("foo{a}", "ERR 1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"),
        ("foo{=\"a\"}", "ERR 1:5: parse error: unexpected \"=\" in label matching, expected identifier or \"}\""),
        ("foo{a=\"b\" c=\"d\"}", "ERR 1:11: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""),
        ("foo{a:b=\"c\"}", "ERR 1:6: parse error: unexpected character inside braces: ':'"),
        ("foo}", "ERR 1:4: parse error: unexpected character: '}'"),
        ("foo{a=~\"(\"}", "ERR 1:5: parse error: invalid regular expression \"(\": unclosed group"),
        ("foo bar", "ERR 1:5: parse error: unexpected identifier \"bar\""),
    ] {
        check(i, w);
    }
    let e = ok("foo{a=\"b\"}");
    let Expr::VectorSelector(vs) = e else {
        panic!()
    };
    assert_eq!(vs.name.as_deref(), Some("foo"));
    assert_eq!(
        vs.matchers,
        vec![Matcher::equal("a", "b"), Matcher::equal("__name__", "foo")]
    );
    assert_eq!((vs.pos.start, vs.pos.end), (0, 10));
    let Expr::VectorSelector(vs) = ok("{\"a\\nb\"=~\"x\\\\d\"}") else {
        panic!()
    };
    assert_eq!(vs.matchers[0].op, MatchOp::Regex);
    assert_eq!(vs.matchers[0].name, "a\nb");
    assert_eq!(vs.matchers[0].value, "x\\d");
}

#[test]
fn ranges_and_modifiers() {
    for (i, w) in [
        ("foo[5m]", "foo[5m]"),
        ("foo[1h30m]", "foo[1h30m]"),
        ("foo[1y2w3d4h5m6s7ms]", "foo[382d4h5m6s7ms]"),
        ("foo[2y]", "foo[2y]"),
        ("foo[14d]", "foo[2w]"),
        ("foo[300]", "foo[5m]"),
        ("foo[1.5]", "foo[1s500ms]"),
        ("foo[ 5m ]", "foo[5m]"),
        ("foo[26m+4m]", "foo[30m]"),
        ("foo[2m*(10+5)]", "foo[30m]"),
        ("foo[1h30m % 1h]", "foo[30m]"),
        ("foo[min_of(1h, 30m)]", "foo[30m]"),
        ("foo offset 5m", "foo offset 5m"),
        ("foo offset -5m", "foo offset -5m"),
        ("foo offset 1.5", "foo offset 1s500ms"),
        ("foo OFFSET 1h", "foo offset 1h"),
        ("foo offset 1m + 1", "foo offset 1m + 1"),
        ("foo offset (1m + 1)", "foo offset 1m1s"),
        ("foo offset -(2 * 3s)", "foo offset -6s"),
        ("foo @ 1609746000", "foo @ 1609746000.000"),
        ("foo @ 1609746000.123", "foo @ 1609746000.123"),
        ("foo @ -100", "foo @ -100.000"),
        ("foo @ 5m", "foo @ 300.000"),
        ("foo @ start()", "foo @ start()"),
        ("foo @ end()", "foo @ end()"),
        ("foo offset 5m @ 10", "foo @ 10.000 offset 5m"),
        ("foo @ 10 offset 5m", "foo @ 10.000 offset 5m"),
        ("foo[5m] offset 1m @ 10", "foo[5m] @ 10.000 offset 1m"),
        ("foo[5m:1m]", "foo[5m:1m]"),
        ("foo[5m:]", "foo[5m:]"),
        ("rate(foo[5m])[1h:5m] @ end() offset 1m", "rate(foo[5m])[1h:5m] @ end() offset 1m"),
        ("(foo + bar)[5m:]", "(foo + bar)[5m:]"),
        ("sum(foo)[5m:] offset 1m", "sum(foo)[5m:] offset 1m"),
        ("foo[5m:][10m:]", "ERR 1:1: parse error: subquery is only allowed on instant vector, got matrix instead"),
        ("1[5m:]", "ERR 1:1: parse error: subquery is only allowed on instant vector, got scalar instead"),
        ("foo offset 5m[1m]", "ERR 1:14: parse error: no offset modifiers allowed before range"),
        ("foo @ 10[1m]", "ERR 1:9: parse error: no @ modifiers allowed before range"),
        ("rate(x[5m])[1m]", "ERR 1:12: parse error: ranges only allowed for vector selectors"),
        ("(foo)[1m]", "ERR 1:6: parse error: ranges only allowed for vector selectors"),
        ("foo[0]", "ERR 1:5: parse error: duration must be greater than 0"),
        ("foo[0s]", "ERR 1:5: parse error: duration must be greater than 0"),
        ("foo[5m:0]", "ERR 1:8: parse error: duration must be greater than 0"),
        ("foo[-5m]", "ERR 1:5: parse error: duration must be greater than 0"),
        ("foo[5m", "ERR 1:7: parse error: unclosed left bracket"),
        ("foo[", "ERR 1:5: parse error: unexpected end of input in duration expression"),
        ("foo[]", "ERR 1:5: parse error: unexpected \"]\" in subquery or range selector, expected number, duration, step(), or range()"),
        ("foo[5m 1m]", "ERR 1:8: parse error: unexpected duration \"1m\" in subquery or range, expected \":\" or \"]\""),
        ("foo[5m:1m 1m]", "ERR 1:11: parse error: unexpected duration \"1m\" in subquery selector, expected \"]\""),
        ("foo[5x]", "ERR 1:5: parse error: bad number or duration syntax: \"5\""),
        ("foo[step()]", "foo[step()]"),
        ("foo[step() + 1ms]", "foo[step() + 1ms]"),
        ("foo[(step())+1]", "foo[(step()) + 1]"),
        ("foo[1+(STep()-5)*2]", "foo[1 + (step() - 5) * 2]"),
        ("foo[max_of(min_of(step()+1,1h),1ms)]", "foo[max_of(min_of(step() + 1, 1h), 1ms)]"),
        ("foo[5m:step()] offset range()", "foo[5m:step()] offset range()"),
        ("foo offset -step()*2", "foo offset -step() * 2"),
        ("foo offset (-step()*2)", "foo offset (-step() * 2)"),
        ("foo offset -(min_of(step(), 2s)-5)+8000", "foo offset -(min_of(step(), 2s) - 5) + 8000"),
        ("foo offset step() offset 1m", "ERR 1:1: parse error: offset may not be set multiple times"),
        ("foo offset step()[1m]", "ERR 1:18: parse error: no offset modifiers allowed before range"),
        ("foo[step()/0]", "ERR 1:11: parse error: division by zero"),
        ("foo[5m] anchored", "foo[5m] anchored"),
        ("foo[5m] smoothed offset 1m", "foo[5m] smoothed offset 1m"),
        ("foo anchored", "foo anchored"),
        ("foo[5m] anchored smoothed", "ERR 1:1: parse error: anchored and smoothed modifiers cannot be used together"),
        ("foo smoothed anchored", "ERR 1:1: parse error: anchored and smoothed modifiers cannot be used together"),
        ("foo[5m:1m] anchored", "ERR 1:1: parse error: anchored modifier is not supported for subqueries"),
        ("(foo + bar) smoothed", "ERR 1:1: parse error: smoothed modifier not implemented"),
        ("foo offset 5m offset 1m", "ERR 1:1: parse error: offset may not be set multiple times"),
        ("foo @ 1 @ 2", "ERR 1:1: parse error: @ <timestamp> may not be set multiple times"),
        ("sum(foo) offset 5m", "ERR 1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
        ("1 @ 10", "ERR 1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
        ("foo offset", "ERR 1:11: parse error: unexpected end of input in offset, expected number, duration, step(), or range()"),
        ("foo offset bar", "ERR 1:12: parse error: unexpected identifier \"bar\" in offset, expected number, duration, step(), or range()"),
        ("foo @ bar", "ERR 1:7: parse error: unexpected identifier \"bar\" in @, expected timestamp"),
        ("foo @ Inf", "ERR 1:1: parse error: timestamp out of bounds for @ modifier: +Inf"),
        ("foo[5m] + 1", "ERR 1:1: parse error: binary expression must contain only scalar and instant vector types"),
        ("-foo[5m]", "ERR 1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"range vector\""),
    ] {
        check(i, w);
    }
    let Expr::MatrixSelector(ms) = ok("foo[5m] @ 1609746000.123 offset -1m") else {
        panic!()
    };
    assert_eq!(ms.range, 300_000);
    assert_eq!(ms.selector.offset, -60_000);
    assert_eq!(ms.selector.at, Some(AtModifier::At(1_609_746_000_123)));
    assert_eq!((ms.pos.start, ms.pos.end), (0, 35));
    let Expr::Subquery(sq) = ok("foo[1h:]") else {
        panic!()
    };
    assert_eq!((sq.range, sq.step), (3_600_000, None));
}

#[test]
fn binary_operators() {
    for (i, w) in [
        ("a + b", "a + b"),
        ("a == bool b", "a == bool b"),
        ("1 == bool 2", "1 == bool 2"),
        ("a + on(x, y) b", "a + on (x, y) b"),
        ("a + on() b", "a + on () b"),
        ("a + ignoring(x) b", "a + ignoring (x) b"),
        ("a + ignoring() b", "a + b"),
        ("a * on(x) group_left b", "a * on (x) group_left () b"),
        ("a * on(x) group_left(y,) b", "a * on (x) group_left (y) b"),
        ("a * ignoring(x) group_right(y) b", "a * ignoring (x) group_right (y) b"),
        ("a > bool on(x) b", "a > bool on (x) b"),
        ("a and on(x) b", "a and on (x) b"),
        ("a unless ignoring(x) b", "a unless ignoring (x) b"),
        ("a + on(\"x.y\") b", "a + on (\"x.y\") b"),
        ("a + on(sum, by, offset) b", "a + on (sum, by, offset) b"),
        ("1 + a", "1 + a"),
        ("a > 1", "a > 1"),
        ("a > bool 1", "a > bool 1"),
        ("1 == 1", "ERR 1:3: parse error: comparisons between scalars must use BOOL modifier"),
        ("a + bool b", "ERR 1:3: parse error: bool modifier can only be used on comparison operators"),
        ("a and 1", "ERR 1:1: parse error: set operator \"and\" not allowed in binary scalar expression"),
        ("1 or a", "ERR 1:1: parse error: set operator \"or\" not allowed in binary scalar expression"),
        ("a and on(x) group_left b", "ERR 1:1: parse error: no grouping allowed for \"and\" operation"),
        ("1 + on(x) a", "ERR 1:1: parse error: vector matching only allowed between instant vectors"),
        ("a * on(x) group_left(x) b", "ERR 1:3: parse error: label \"x\" must not occur in ON and GROUP clause at once"),
        ("\"a\" + \"b\"", "ERR 1:1: parse error: binary expression must contain only scalar and instant vector types"),
        ("a + group_left b", "ERR 1:5: parse error: unexpected <group_left>"),
        ("a + on b", "ERR 1:8: parse error: unexpected identifier \"b\" in grouping opts, expected \"(\""),
        ("a + on(x b", "ERR 1:10: parse error: unexpected identifier \"b\" in grouping opts, expected \",\" or \")\""),
        ("a + on(1) b", "ERR 1:8: parse error: unexpected number \"1\" in grouping opts, expected label"),
        ("a + fill(0) b", "a + fill (0) b"),
        ("a + fill_right(-1) fill_left(2) b", "a + fill_left (2) fill_right (-1) b"),
        ("a > bool on(x) group_left(y) fill(NaN) b", "a > bool on (x) group_left (y) fill (NaN) b"),
        ("fill + fill(0) fill", "fill + fill (0) fill"),
        ("a + fill_left(0) fill_left", "a + fill_left (0) fill_left"),
        ("a + fill(x) b", "ERR 1:10: parse error: unexpected identifier \"x\" in fill modifier, expected number"),
        ("a + fill(1 b", "ERR 1:12: parse error: unexpected identifier \"b\""),
        ("a +", "ERR 1:4: parse error: unexpected end of input"),
        ("a = b", "ERR 1:3: parse error: unexpected \"=\""),
        ("a =~ b", "ERR 1:3: parse error: unexpected character after '=': '~'"),
        ("a ! b", "ERR 1:3: parse error: unexpected character after '!': ' '"),
        ("(a + b", "ERR 1:7: parse error: unclosed left parenthesis"),
        ("a + b)", "ERR 1:7: parse error: unexpected right parenthesis ')'"),
    ] {
        check(i, w);
    }
    let Expr::Binary(b) = ok("a / on(x) group_left(y) b") else {
        panic!()
    };
    let m = b.matching.expect("matching");
    assert_eq!(m.card, VectorMatchCardinality::ManyToOne);
    assert!(m.on);
    assert_eq!(
        (m.labels, m.include),
        (vec!["x".to_string()], vec!["y".to_string()])
    );
    let Expr::Binary(b) = ok("a or b") else {
        panic!()
    };
    assert_eq!(
        b.matching.map(|m| m.card),
        Some(VectorMatchCardinality::ManyToMany)
    );
    let Expr::Binary(b) = ok("a - b") else {
        panic!()
    };
    let m = b.matching.expect("matching");
    assert_eq!(
        (m.card, m.on, m.labels.len()),
        (VectorMatchCardinality::OneToOne, false, 0)
    );
    let Expr::Binary(b) = ok("a - 1") else {
        panic!()
    };
    assert!(b.matching.is_none());
    assert_eq!((b.pos.start, b.pos.end), (0, 5));
}

#[test]
fn aggregations() {
    for (i, w) in [
        ("sum(x)", "sum(x)"),
        ("sum by (a) (x)", "sum by (a) (x)"),
        ("sum(x) by (a)", "sum by (a) (x)"),
        ("sum without (a, b,) (x)", "sum without (a, b) (x)"),
        ("sum by () (x)", "sum(x)"),
        ("SUM BY (a) (x)", "sum by (a) (x)"),
        ("topk(3, x)", "topk(3, x)"),
        ("bottomk by (a) (3, x)", "bottomk by (a) (3, x)"),
        ("quantile(0.9, x)", "quantile(0.9, x)"),
        ("count_values(\"v\", x)", "count_values(\"v\", x)"),
        ("limitk(2, x)", "limitk(2, x)"),
        ("limit_ratio(0.5, x)", "limit_ratio(0.5, x)"),
        ("group(x)", "group(x)"),
        ("stddev(x) + stdvar(x)", "stddev(x) + stdvar(x)"),
        ("sum by (\"a.b\") (x)", "sum by (\"a.b\") (x)"),
        ("sum by (a:b) (x)", "sum by (\"a:b\") (x)"),
        ("sum(rate(x[5m])) by (job)", "sum by (job) (rate(x[5m]))"),
        ("sum()", "ERR 1:1: parse error: no arguments for aggregate expression provided"),
        ("sum(a, b)", "ERR 1:1: parse error: wrong number of arguments for aggregate expression provided, expected 1, got 2"),
        ("topk(x)", "ERR 1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"),
        ("sum(x[5m])", "ERR 1:5: parse error: expected type instant vector in aggregation expression, got range vector"),
        ("topk(\"a\", x)", "ERR 1:6: parse error: expected type scalar in aggregation parameter, got string"),
        ("count_values(1, x)", "ERR 1:14: parse error: expected type string in aggregation parameter, got scalar"),
        ("sum by foo (x)", "ERR 1:8: parse error: unexpected identifier \"foo\" in grouping opts, expected \"(\""),
        ("sum(x y)", "ERR 1:7: parse error: unexpected identifier \"y\" in aggregation"),
        ("sum by (a)", "ERR 1:11: parse error: unexpected end of input in aggregation"),
        ("sum(x,)", "ERR 1:6: parse error: trailing commas not allowed in function call args"),
        ("sum by (\"\") (x)", "ERR 1:9: parse error: invalid label name for grouping: \"\""),
    ] {
        check(i, w);
    }
    let Expr::Aggregate(a) = ok("topk without (a) (5, x)") else {
        panic!()
    };
    assert_eq!(a.op, AggregateOp::Topk);
    assert!(a.without);
    assert_eq!(a.grouping, vec!["a".to_string()]);
    assert_eq!(a.param.as_deref(), Some(&Expr::NumberLiteral(5.0)));
    assert_eq!((a.pos.start, a.pos.end), (0, 23));
    let Expr::Aggregate(a) = ok("sum(x) by (a)") else {
        panic!()
    };
    assert_eq!((a.pos.start, a.pos.end), (0, 13));
}

#[test]
fn function_calls() {
    for (i, w) in [
        ("rate(x[5m])", "rate(x[5m])"),
        ("time()", "time()"),
        ("pi()", "pi()"),
        ("round(x)", "round(x)"),
        ("round(x, 5)", "round(x, 5)"),
        ("label_join(x, \"a\", \",\", \"b\", \"c\", \"d\")", "label_join(x, \"a\", \",\", \"b\", \"c\", \"d\")"),
        ("histogram_quantile(0.9, rate(x[5m]))", "histogram_quantile(0.9, rate(x[5m]))"),
        ("histogram_quantiles(x, \"q\", 0.1, 0.2)", "histogram_quantiles(x, \"q\", 0.1, 0.2)"),
        ("double_exponential_smoothing(x[5m], 0.5, 0.5)", "double_exponential_smoothing(x[5m], 0.5, 0.5)"),
        ("sort_by_label(x, \"a\", \"b\")", "sort_by_label(x, \"a\", \"b\")"),
        ("info(x, {a=\"b\"})", "info(x, {a=\"b\"})"),
        ("info(x, {a=~\".*\"})", "info(x, {a=~\".*\"})"),
        ("min_of(3, 5)", "min_of(3, 5)"),
        ("start_timestamp(x)", "start_timestamp(x)"),
        ("start()", "start()"),
        ("vector(1)", "vector(1)"),
        ("absent(nonexistent{job=\"x\"})", "absent(nonexistent{job=\"x\"})"),
        ("rate(x)", "ERR 1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"),
        ("rate(x[5m], 1)", "ERR 1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2"),
        ("round()", "ERR 1:1: parse error: expected at least 1 argument(s) in call to \"round\", got 0"),
        ("round(x, 1, 2)", "ERR 1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"),
        ("label_join(x)", "ERR 1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 1"),
        ("foo()", "ERR 1:1: parse error: unknown function with name \"foo\""),
        ("holt_winters(x[5m], 0.5, 0.5)", "ERR 1:1: parse error: unknown function with name \"holt_winters\""),
        ("rate(x[5m],)", "ERR 1:11: parse error: trailing commas not allowed in function call args"),
        ("rate(x[5m]", "ERR 1:11: parse error: unclosed left parenthesis"),
        ("abs(\"a\")", "ERR 1:5: parse error: expected type instant vector in call to function \"abs\", got string"),
        ("sort_by_label(x, 1)", "ERR 1:18: parse error: expected type string in call to function \"sort_by_label\", got scalar"),
        ("info(x, y)", "ERR 1:9: parse error: expected label selectors only, got vector selector instead"),
        ("time() > 1", "ERR 1:8: parse error: comparisons between scalars must use BOOL modifier"),
    ] {
        check(i, w);
    }
    let Expr::Call(c) = ok("rate(x[5m])") else {
        panic!()
    };
    assert_eq!(c.func.name, "rate");
    assert_eq!((c.pos.start, c.pos.end), (0, 11));
}

#[test]
fn errors_report_line_and_column() {
    let e = parse("sum(\n  rate(x[5m]\n)) by (a) }").unwrap_err();
    assert_eq!((e.line, e.col), (3, 11));
    assert_eq!(
        e.to_string(),
        "3:11: parse error: unexpected character: '}'"
    );
    let e = parse("foo{a=\"b\"}\n  + }").unwrap_err();
    assert_eq!(e.to_string(), "2:5: parse error: unexpected character: '}'");
    let e = parse("rate(foo[5m]) + \n\n  rate(bar)").unwrap_err();
    assert_eq!(e.to_string(), "3:8: parse error: expected type range vector in call to function \"rate\", got instant vector");
    // Syntax errors win over earlier type errors, as in Prometheus.
    let e = parse("rate(foo) + (").unwrap_err();
    assert_eq!(
        e.to_string(),
        "1:14: parse error: unclosed left parenthesis"
    );
}

#[test]
fn round_trip_many() {
    let exprs = [
        "sum by (job, instance) (rate(http_requests_total{job=~\"api.*\", code!=\"200\"}[5m] offset 1h))",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        "a / on (x) group_left (y, z) b * 2 ^ -3 ^ 2",
        "-(a + b) * c",
        "- -a",
        "1 - -1",
        "(1 + 2) * 3",
        "x offset -1w @ 1000.5",
        "max_over_time(deriv(rate(x[1m])[5m:1m])[10m:])",
        "topk(3, sum by (a) (x)) or bottomk(3, sum by (a) (x))",
        "count_values without (a) (\"value\", x)",
        "label_replace(up, \"foo\", \"$1\", \"job\", \"(.*)\")",
        "{__name__=~\"a|b\", job!~\"\"}",
        "{\"weird metric\\n\", \"lbl with space\"=\"v\"}",
        "vector(time()) > bool 1",
        "scalar(sum(x)) * on () group_left () y",
        "quantile(0.5, x) unless ignoring (a, b) y",
        "absent_over_time(nonexistent[1y])",
        "x @ start() + y @ end()",
        "sum(x)[1h:1m] @ 100",
        "+x",
        "\"\\u00ff\\t\"",
        "1e-300 * 1e300",
        "0.1 + 0.2",
        "123456789012345680000",
        "avg(x) by (\"utf8.label\")",
        "clamp(x, -Inf, +Inf)",
        "x and on (a) y or z unless w",
        "a atan2 b",
        "foo # trailing comment",
    ];
    for e in exprs {
        let first = ok(e);
        let printed = first.to_string();
        assert_eq!(
            normalized(&ok(&printed)),
            normalized(&first),
            "{e} -> {printed}"
        );
        assert_eq!(ok(&printed).to_string(), printed);
    }
}
