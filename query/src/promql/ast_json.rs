//! The JSON form of a syntax tree returned by `/api/v1/parse_query`, in the shape of
//! Prometheus 3's `web/api/v1/translate_ast.go` (the tree view of the UI).

use serde_json::{json, Map, Value};
use sextant_storage::Matcher;

use super::ast::{AtModifier, Expr, UnaryOp, ValueType, VectorMatchCardinality, VectorSelector};
use super::printer::format_number;

fn card_name(c: VectorMatchCardinality) -> &'static str {
    match c {
        VectorMatchCardinality::OneToOne => "one-to-one",
        VectorMatchCardinality::ManyToOne => "many-to-one",
        VectorMatchCardinality::OneToMany => "one-to-many",
        VectorMatchCardinality::ManyToMany => "many-to-many",
    }
}

fn matchers(ms: &[Matcher]) -> Value {
    Value::Array(
        ms.iter()
            .map(|m| json!({"name": m.name, "value": m.value, "type": m.op.as_str()}))
            .collect(),
    )
}

/// `timestamp` (ms or null) and `startOrEnd` ("start", "end" or null).
fn at_fields(at: Option<AtModifier>) -> (Value, Value) {
    match at {
        None => (Value::Null, Value::Null),
        Some(AtModifier::At(ms)) => (json!(ms), Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
    }
}

fn value_type(t: ValueType) -> &'static str {
    t.name()
}

fn selector_fields(vs: &VectorSelector, kind: &str) -> Map<String, Value> {
    let (timestamp, start_or_end) = at_fields(vs.at);
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    m.insert("name".into(), json!(vs.name.as_deref().unwrap_or("")));
    m.insert("offset".into(), json!(vs.offset));
    m.insert("matchers".into(), matchers(&vs.matchers));
    m.insert("timestamp".into(), timestamp);
    m.insert("startOrEnd".into(), start_or_end);
    m.insert("anchored".into(), json!(vs.anchored));
    m.insert("smoothed".into(), json!(vs.smoothed));
    m
}

/// A fill value: a JSON number, or a string for NaN and infinities (which JSON cannot hold).
fn fill_value(v: Option<f64>) -> Value {
    match v {
        None => Value::Null,
        Some(x) if x.is_finite() => json!(x),
        Some(x) => json!(format_number(x)),
    }
}

/// Translates `expr` into the JSON tree of Prometheus' `/api/v1/parse_query`.
pub fn to_json(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate(a) => json!({
            "type": "aggregation",
            "op": a.op.as_str(),
            "expr": to_json(&a.expr),
            "param": a.param.as_deref().map(to_json).unwrap_or(Value::Null),
            "grouping": a.grouping,
            "without": a.without,
        }),
        Expr::Binary(b) => {
            let matching = match &b.matching {
                None => Value::Null,
                Some(m) => json!({
                    "card": card_name(m.card),
                    "labels": m.labels,
                    "on": m.on,
                    "include": m.include,
                    "fillValues": {"lhs": fill_value(m.fill.lhs), "rhs": fill_value(m.fill.rhs)},
                }),
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.as_str(),
                "lhs": to_json(&b.lhs),
                "rhs": to_json(&b.rhs),
                "matching": matching,
                "bool": b.return_bool,
            })
        }
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(|t| value_type(*t)).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": value_type(c.func.return_type),
            },
            "args": c.args.iter().map(to_json).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(ms) => {
            let mut m = selector_fields(&ms.selector, "matrixSelector");
            m.insert("range".into(), json!(ms.range));
            Value::Object(m)
        }
        Expr::Subquery(sq) => {
            let (timestamp, start_or_end) = at_fields(sq.at);
            json!({
                "type": "subquery",
                "expr": to_json(&sq.expr),
                "range": sq.range,
                "offset": sq.offset,
                "step": sq.step.unwrap_or(0),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
                "alignEvalTime": false,
            })
        }
        Expr::NumberLiteral(v) => json!({"type": "numberLiteral", "val": format_number(*v)}),
        Expr::Paren(e) => json!({"type": "parenExpr", "expr": to_json(e)}),
        Expr::StringLiteral(s) => json!({"type": "stringLiteral", "val": s}),
        Expr::Unary(u) => json!({
            "type": "unaryExpr",
            "op": if u.op == UnaryOp::Neg { "-" } else { "+" },
            "expr": to_json(&u.expr),
        }),
        Expr::VectorSelector(vs) => Value::Object(selector_fields(vs, "vectorSelector")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    fn j(s: &str) -> Value {
        match parse(s) {
            Ok(e) => to_json(&e),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn selector_shape() {
        assert_eq!(
            j("foo{a=~\"b\"} offset 5m @ 10"),
            json!({
                "type": "vectorSelector", "name": "foo", "offset": 300000,
                "matchers": [
                    {"name": "a", "value": "b", "type": "=~"},
                    {"name": "__name__", "value": "foo", "type": "="}
                ],
                "timestamp": 10000, "startOrEnd": null, "anchored": false, "smoothed": false
            })
        );
        assert_eq!(
            j("rate(x[5m] @ end())")["args"][0],
            json!({
                "type": "matrixSelector", "name": "x", "offset": 0, "range": 300000,
                "matchers": [{"name": "__name__", "value": "x", "type": "="}],
                "timestamp": null, "startOrEnd": "end", "anchored": false, "smoothed": false
            })
        );
    }

    #[test]
    fn other_shapes() {
        let v = j("sum by (a) (rate(x[1m])) / on (a) group_left (b) y");
        assert_eq!(v["type"], "binaryExpr");
        assert_eq!(v["op"], "/");
        assert_eq!(v["bool"], false);
        assert_eq!(
            v["matching"],
            json!({"card": "many-to-one", "labels": ["a"], "on": true, "include": ["b"],
                   "fillValues": {"lhs": null, "rhs": null}})
        );
        assert_eq!(v["lhs"]["type"], "aggregation");
        assert_eq!(v["lhs"]["grouping"], json!(["a"]));
        assert_eq!(v["lhs"]["param"], Value::Null);
        assert_eq!(
            v["lhs"]["expr"]["func"],
            json!({"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"})
        );
        assert_eq!(j("1 + 2")["matching"], Value::Null);
        assert_eq!(j("-(1)")["op"], "-");
        assert_eq!(j("-1"), json!({"type": "numberLiteral", "val": "-1"}));
        assert_eq!(j("\"x\""), json!({"type": "stringLiteral", "val": "x"}));
        let sq = j("x[1h:]");
        assert_eq!(sq["step"], 0);
        assert_eq!(sq["range"], 3_600_000);
        assert_eq!(sq["alignEvalTime"], false);
        assert_eq!(j("a and b")["matching"]["card"], "many-to-many");
    }

    #[test]
    fn new_modifiers() {
        assert_eq!(
            j("a + fill_left(1) fill_right(NaN) b")["matching"]["fillValues"],
            json!({"lhs": 1.0, "rhs": "NaN"})
        );
        assert_eq!(
            j("a - fill(-2) b")["matching"]["fillValues"],
            json!({"lhs": -2.0, "rhs": -2.0})
        );
        let m = j("rate(x[5m] anchored)")["args"][0].clone();
        assert_eq!(
            (m["anchored"].clone(), m["smoothed"].clone()),
            (json!(true), json!(false))
        );
        assert_eq!(j("x smoothed")["smoothed"], json!(true));
    }
}
