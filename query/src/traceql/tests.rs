//! Parser, pushdown and engine tests over a `NaiveTraceStore`.

use std::sync::Arc;

use sextant_storage::traces::{
    Attr, AttrScope, AttrValue, FilterOp, FilterValue, NaiveTraceStore, Resource, Scope, Span,
    SpanBatch, SpanField, SpanFilter, SpanKind, StatusCode, TraceAppender, TraceId,
};

use super::ast::*;
use super::*;

fn filter(q: &str) -> FieldExpr {
    match *parse(q).unwrap().source {
        SpansetExpr::Filter(f) => f,
        other => panic!("{q}: {other:?}"),
    }
}

fn attr(scope: AttrScope, key: &str) -> Box<FieldExpr> {
    Box::new(FieldExpr::Attr(Attribute::Scoped {
        scope,
        key: key.into(),
    }))
}

fn lit(s: Static) -> Box<FieldExpr> {
    Box::new(FieldExpr::Static(s))
}

#[test]
fn parses_attributes_literals_and_operators() {
    assert_eq!(filter("{}"), FieldExpr::Static(Static::Bool(true)));
    assert_eq!(
        filter(r#"{ resource.service.name = "a\"b\\c\n" }"#),
        FieldExpr::Cmp {
            op: CmpOp::Eq,
            lhs: attr(AttrScope::Resource, "service.name"),
            rhs: lit(Static::Str("a\"b\\c\n".into())),
        }
    );
    assert_eq!(
        filter(r#"{ span."http method" != `x\d` }"#),
        FieldExpr::Cmp {
            op: CmpOp::Ne,
            lhs: attr(AttrScope::Span, "http method"),
            rhs: lit(Static::Str("x\\d".into())),
        }
    );
    assert_eq!(
        filter("{ .http.status_code >= -5 }"),
        FieldExpr::Cmp {
            op: CmpOp::Ge,
            lhs: attr(AttrScope::Any, "http.status_code"),
            rhs: lit(Static::Int(-5)),
        }
    );
    let durations = [
        ("1ms", 1_000_000),
        ("2s", 2_000_000_000),
        ("1.5m", 90_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("250us", 250_000),
        ("7ns", 7),
    ];
    for (text, ns) in durations {
        assert_eq!(
            filter(&format!("{{ duration > {text} }}")),
            FieldExpr::Cmp {
                op: CmpOp::Gt,
                lhs: Box::new(FieldExpr::Attr(Attribute::Intrinsic(Intrinsic::Duration))),
                rhs: lit(Static::Duration(ns)),
            },
            "{text}"
        );
    }
    assert_eq!(
        filter("{ .x = 1.25 }"),
        FieldExpr::Cmp {
            op: CmpOp::Eq,
            lhs: attr(AttrScope::Any, "x"),
            rhs: lit(Static::Float(1.25)),
        }
    );
    assert_eq!(
        filter("{ status = error && kind = server || !(.ok = true) && .n != nil }"),
        FieldExpr::Or(
            Box::new(FieldExpr::And(
                Box::new(FieldExpr::Cmp {
                    op: CmpOp::Eq,
                    lhs: Box::new(FieldExpr::Attr(Attribute::Intrinsic(Intrinsic::Status))),
                    rhs: lit(Static::Status(StatusCode::Error)),
                }),
                Box::new(FieldExpr::Cmp {
                    op: CmpOp::Eq,
                    lhs: Box::new(FieldExpr::Attr(Attribute::Intrinsic(Intrinsic::Kind))),
                    rhs: lit(Static::Kind(SpanKind::Server)),
                }),
            )),
            Box::new(FieldExpr::And(
                Box::new(FieldExpr::Not(Box::new(FieldExpr::Cmp {
                    op: CmpOp::Eq,
                    lhs: attr(AttrScope::Any, "ok"),
                    rhs: lit(Static::Bool(true)),
                }))),
                Box::new(FieldExpr::Cmp {
                    op: CmpOp::Ne,
                    lhs: attr(AttrScope::Any, "n"),
                    rhs: lit(Static::Nil),
                }),
            )),
        )
    );
    for (q, i) in [
        ("{ span:duration > 1s }", Intrinsic::Duration),
        ("{ trace:duration > 1s }", Intrinsic::TraceDuration),
        ("{ trace:rootName = \"x\" }", Intrinsic::RootName),
        ("{ trace:rootService = \"x\" }", Intrinsic::RootServiceName),
        ("{ rootServiceName = \"x\" }", Intrinsic::RootServiceName),
        ("{ statusMessage = \"x\" }", Intrinsic::StatusMessage),
        ("{ span:status = ok }", Intrinsic::Status),
        ("{ span:kind = client }", Intrinsic::Kind),
        ("{ span:name = \"x\" }", Intrinsic::Name),
    ] {
        match filter(q) {
            FieldExpr::Cmp { lhs, .. } => {
                assert_eq!(*lhs, FieldExpr::Attr(Attribute::Intrinsic(i)), "{q}")
            }
            other => panic!("{q}: {other:?}"),
        }
    }
    for op in ["=~", "!~", "<", "<=", ">", ">=", "=", "!="] {
        let f = filter(&format!("{{ .a {op} \"x\" }}"));
        match f {
            FieldExpr::Cmp { op: got, .. } => assert_eq!(got.as_str(), op),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn parses_spanset_operators_and_pipelines() {
    let p = parse(r#"{ .a = 1 } && { .b = 2 } > { .c = 3 } || { .d = 4 } ~ { .e = 5 }"#).unwrap();
    // `>` and `~` bind tighter than `&&`, which binds tighter than `||`.
    match *p.source {
        SpansetExpr::Binary {
            op: SpansetOp::Or,
            lhs,
            rhs,
        } => {
            assert!(matches!(
                *lhs,
                SpansetExpr::Binary {
                    op: SpansetOp::And,
                    ..
                }
            ));
            assert!(matches!(
                *rhs,
                SpansetExpr::Binary {
                    op: SpansetOp::Sibling,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    for (q, op) in [
        ("{} >> {}", SpansetOp::Descendant),
        ("{} << {}", SpansetOp::Ancestor),
        ("{} < {}", SpansetOp::Parent),
        ("{} > {}", SpansetOp::Child),
    ] {
        match *parse(q).unwrap().source {
            SpansetExpr::Binary { op: got, .. } => assert_eq!(got, op, "{q}"),
            other => panic!("{other:?}"),
        }
    }
    let p = parse(
        "{ } | count() > 2 | avg(duration) >= 1.5s | select(.a, span.b, status) | by(resource.service.name) | { .x = 1 } | coalesce()",
    )
    .unwrap();
    assert_eq!(p.stages.len(), 6);
    assert_eq!(
        p.stages[0],
        Stage::Aggregate {
            func: AggFunc::Count,
            arg: None,
            op: CmpOp::Gt,
            value: Static::Int(2),
        }
    );
    assert_eq!(
        p.stages[1],
        Stage::Aggregate {
            func: AggFunc::Avg,
            arg: Some(FieldExpr::Attr(Attribute::Intrinsic(Intrinsic::Duration))),
            op: CmpOp::Ge,
            value: Static::Duration(1_500_000_000),
        }
    );
    assert_eq!(
        p.stages[2],
        Stage::Select(vec![
            Attribute::Scoped {
                scope: AttrScope::Any,
                key: "a".into()
            },
            Attribute::Scoped {
                scope: AttrScope::Span,
                key: "b".into()
            },
            Attribute::Intrinsic(Intrinsic::Status),
        ])
    );
    assert!(matches!(p.stages[5], Stage::Coalesce));
    // A parenthesised pipeline is a spanset operand.
    let p = parse("({ .a = 1 } | count() > 1) && { .b = 2 }").unwrap();
    match *p.source {
        SpansetExpr::Binary { lhs, .. } => assert!(matches!(*lhs, SpansetExpr::Pipeline(_))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_carry_positions() {
    let cases = [
        ("{ .a = }", 1, 8),
        ("{ .a = 1", 1, 9),
        ("{ foo = 1 }", 1, 3),
        ("{ .a = 1 } | nope()", 1, 14),
        ("{ .a = 1 }\n  && { .b = \"x }", 2, 13),
        ("{ .a = 1 } }", 1, 12),
        ("", 1, 1),
        ("{ duration > 5parsecs }", 1, 15),
        ("{ .a = 99999999999999999999 }", 1, 8),
    ];
    for (q, line, col) in cases {
        match parse(q) {
            Err(TraceqlError::Parse {
                line: l, col: c, ..
            }) => assert_eq!((l, c), (line, col), "{q}: {:?}", parse(q)),
            other => panic!("{q}: {other:?}"),
        }
    }
    let msg = parse("{ .a = 1").unwrap_err().to_string();
    assert_eq!(
        msg,
        "parse error at line 1, col 9: expected \"}\", found end of query"
    );
    assert!(matches!(
        compile(&parse("{ .a =~ \"(\" }").unwrap()),
        Err(TraceqlError::Unsupported(_))
    ));
    assert!(matches!(
        compile(&parse("{ .a = .b }").unwrap()),
        Err(TraceqlError::Unsupported(_))
    ));
}

fn cond(field: SpanField, op: FilterOp, value: FilterValue) -> String {
    format!("{:?}", SpanFilter::Cond { field, op, value })
}

fn svc(name: &str) -> String {
    cond(
        SpanField::Attr {
            scope: AttrScope::Resource,
            key: "service.name".into(),
        },
        FilterOp::Eq,
        FilterValue::Str(name.into()),
    )
}

fn pushdown(q: &str) -> Vec<String> {
    compile(&parse(q).unwrap())
        .unwrap()
        .pushdown
        .iter()
        .map(|f| format!("{f:?}"))
        .collect()
}

#[test]
fn pushdown_is_a_necessary_condition() {
    assert!(pushdown("{}").is_empty());
    assert_eq!(pushdown(r#"{ resource.service.name = "a" }"#), [svc("a")]);
    assert_eq!(
        pushdown(r#"{ resource.service.name = "a" } && { resource.service.name = "b" }"#),
        [svc("a"), svc("b")]
    );
    assert_eq!(
        pushdown(r#"{ resource.service.name = "a" } >> { resource.service.name = "b" }"#),
        [svc("a"), svc("b")]
    );
    let a = svc("a");
    let b = svc("b");
    assert_eq!(
        pushdown(r#"{ resource.service.name = "a" } || { resource.service.name = "b" }"#),
        [format!("Or([{a}, {b}])")]
    );
    // One side without a condition: nothing can be pushed.
    assert!(pushdown(r#"{ resource.service.name = "a" } || { }"#).is_empty());
    // `||` of `&&`s: every pair, until the product gets large.
    let four = pushdown(r#"({ .a = 1 } && { .b = 1 }) || ({ .c = 1 } && { .d = 1 })"#);
    assert_eq!(four.len(), 4);
    let branch = "({ .a = 1 } && { .b = 1 } && { .c = 1 } && { .d = 1 } && { .e = 1 })";
    let many = format!("{branch} || {branch} || {branch}");
    assert!(
        pushdown(&many).is_empty(),
        "25 pairs exceed the cap: dropped"
    );
    // Trace-level intrinsics, negations and nil tests are not pushed; `&&` keeps the rest.
    assert!(pushdown("{ traceDuration > 1s }").is_empty());
    assert!(pushdown(r#"{ !(resource.service.name = "a") }"#).is_empty());
    assert_eq!(
        pushdown(r#"{ rootName = "x" && resource.service.name = "a" && .z = nil }"#),
        [svc("a")]
    );
    assert!(pushdown(r#"{ resource.service.name = "a" || traceDuration > 1s }"#).is_empty());
    assert_eq!(
        pushdown(r#"{ } | { resource.service.name = "a" } | count() > 1"#),
        [svc("a")]
    );
    // Operands flipped onto the attribute side.
    assert_eq!(
        pushdown("{ 1s < duration }"),
        [cond(
            SpanField::Duration,
            FilterOp::Gt,
            FilterValue::Duration(1_000_000_000)
        )]
    );
    assert_eq!(
        pushdown("{ .x != nil }"),
        [cond(
            SpanField::Attr {
                scope: AttrScope::Any,
                key: "x".into()
            },
            FilterOp::Exists,
            FilterValue::Bool(true)
        )]
    );
}

fn store() -> NaiveTraceStore {
    // Trace t: root "r" (svc a, 100 ms) → "c1" (svc b, error, .n = 1) → "c2" (svc b, .n = 2);
    // root → "c3" (svc a). Trace ids 1..=3 start 1 s apart; trace 3 has no root.
    let store = NaiveTraceStore::new();
    let res = |svc: &str| {
        Arc::new(Resource {
            attributes: vec![Attr::new("service.name", AttrValue::Str(svc.into()))],
            ..Resource::default()
        })
    };
    let scope = Arc::new(Scope::default());
    for t in 1..=3u8 {
        let base = t as u64 * 1_000_000_000;
        let sp = |id: u8, parent: Option<u8>, name: &str, start: u64, dur: u64| Span {
            trace_id: TraceId([t; 16]),
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            name: name.into(),
            kind: SpanKind::Server,
            start_unix_nano: base + start * 1_000_000,
            end_unix_nano: base + (start + dur) * 1_000_000,
            ..Span::default()
        };
        let mut c1 = sp(2, Some(1), "c1", 10, 50);
        c1.status_code = StatusCode::Error;
        c1.attributes = vec![Attr::new("n", AttrValue::Int(1))];
        let mut c2 = sp(3, Some(2), "c2", 20, 10 * t as u64);
        c2.attributes = vec![Attr::new("n", AttrValue::Int(2))];
        let mut a_spans = vec![sp(4, Some(1), "c3", 30, 5)];
        if t != 3 {
            a_spans.insert(0, sp(1, None, "r", 0, 100));
        }
        store
            .append(vec![
                SpanBatch {
                    resource: res("a"),
                    scope: scope.clone(),
                    spans: a_spans,
                },
                SpanBatch {
                    resource: res("b"),
                    scope: scope.clone(),
                    spans: vec![c1, c2],
                },
            ])
            .unwrap();
    }
    store
}

fn run(q: &str, req: &SearchRequest) -> SearchResult {
    let compiled = compile(&parse(q).unwrap()).unwrap();
    search(&store(), &compiled, req).unwrap()
}

fn trace_ids(q: &str) -> Vec<u8> {
    let mut ids: Vec<u8> = run(q, &SearchRequest::default())
        .traces
        .iter()
        .map(|t| t.trace_id.0[0])
        .collect();
    ids.sort();
    ids
}

fn span_names(q: &str, trace: u8) -> Vec<String> {
    let r = run(
        q,
        &SearchRequest {
            spss: 100,
            ..SearchRequest::default()
        },
    );
    let t = r
        .traces
        .iter()
        .find(|t| t.trace_id.0[0] == trace)
        .unwrap_or_else(|| panic!("{q}: trace {trace} missing"));
    t.spansets
        .iter()
        .flat_map(|s| s.spans.iter().map(|sp| sp.name.clone()))
        .collect()
}

#[test]
fn structural_operators_select_the_right_spans() {
    assert_eq!(span_names(r#"{ name = "r" } > { }"#, 1), ["c1", "c3"]);
    assert_eq!(
        span_names(r#"{ name = "r" } >> { }"#, 1),
        ["c1", "c2", "c3"]
    );
    assert_eq!(span_names(r#"{ name = "c2" } < { }"#, 1), ["c1"]);
    assert_eq!(span_names(r#"{ name = "c2" } << { }"#, 1), ["r", "c1"]);
    assert_eq!(span_names(r#"{ name = "c1" } ~ { }"#, 1), ["c3"]);
    assert_eq!(
        span_names(r#"{ name = "c1" } && { name = "c3" }"#, 2),
        ["c1", "c3"]
    );
    assert_eq!(
        span_names(r#"{ name = "c1" } || { name = "zz" }"#, 2),
        ["c1"]
    );
    assert_eq!(
        trace_ids(r#"{ name = "c1" } && { name = "zz" }"#),
        Vec::<u8>::new()
    );
    // Trace 3 lost its root: no parent for c1, so `>` from the root finds nothing there.
    assert_eq!(trace_ids(r#"{ name = "r" } > { name = "c1" }"#), [1, 2]);
    assert_eq!(trace_ids(r#"{ .n = 1 } > { .n = 2 }"#), [1, 2, 3]);
    // Siblings by parent id: in trace 3 c1 and c3 share the missing root as parent.
    assert_eq!(trace_ids(r#"{ name = "c1" } ~ { name = "c3" }"#), [1, 2, 3]);
    assert_eq!(trace_ids(r#"{ name = "c2" } ~ { }"#), Vec::<u8>::new());
    assert_eq!(trace_ids(r#"{ name = "r" } >> { name = "c2" }"#), [1, 2]);
    assert_eq!(trace_ids(r#"{ name = "c2" } << { name = "r" }"#), [1, 2]);
}

#[test]
fn intrinsics_pipelines_and_results() {
    assert_eq!(trace_ids(r#"{ rootServiceName = "a" }"#), [1, 2]);
    assert_eq!(trace_ids(r#"{ rootName = "r" && status = error }"#), [1, 2]);
    assert_eq!(trace_ids("{ traceDuration > 80ms }"), [1, 2]);
    assert_eq!(trace_ids("{ name = \"c2\" && duration >= 20ms }"), [2, 3]);
    assert_eq!(trace_ids("{ .n > 0 } | sum(.n) = 3"), [1, 2, 3]);
    assert_eq!(trace_ids("{ } | min(duration) < 5ms"), Vec::<u8>::new());
    assert_eq!(
        trace_ids("{ name = \"c2\" } | max(duration) > 15ms"),
        [2, 3]
    );
    assert_eq!(trace_ids("{ } | count() = 4"), [1, 2]);
    assert_eq!(trace_ids("{ } | { .n = 2 } | count() = 1"), [1, 2, 3]);
    assert_eq!(trace_ids("{ .n = nil && name = \"c3\" }"), [1, 2, 3]);

    let r = run(
        "{ .n >= 1 } | select(status, resource.service.name)",
        &SearchRequest {
            spss: 1,
            ..SearchRequest::default()
        },
    );
    // Most recent first, limit respected, spss caps spans but not `matched`.
    let ids: Vec<u8> = r.traces.iter().map(|t| t.trace_id.0[0]).collect();
    assert_eq!(ids, [3, 2, 1]);
    let t = &r.traces[1];
    assert_eq!(t.root_service_name.as_deref(), Some("a"));
    assert_eq!(t.root_trace_name.as_deref(), Some("r"));
    assert_eq!(t.duration_ns, 100_000_000);
    assert_eq!(t.spansets[0].matched, 2);
    assert_eq!(t.spansets[0].spans.len(), 1);
    let sp = &t.spansets[0].spans[0];
    assert_eq!(sp.name, "c1");
    assert_eq!(
        sp.attributes,
        [
            ("service.name".to_string(), AttrValue::Str("b".into())),
            ("n".to_string(), AttrValue::Int(1)),
            ("status".to_string(), AttrValue::Str("error".into())),
        ]
    );
    assert_eq!(r.traces[0].root_service_name, None);

    let r = run(
        "{ }",
        &SearchRequest {
            limit: 2,
            ..SearchRequest::default()
        },
    );
    assert_eq!(r.traces.len(), 2);
    assert_eq!(r.inspected_traces, 2, "stops after limit");

    let r = run(
        "{ } | by(resource.service.name)",
        &SearchRequest {
            start_ns: 2_000_000_000,
            end_ns: 2_500_000_000,
            ..SearchRequest::default()
        },
    );
    assert_eq!(r.traces.len(), 1);
    let sets: Vec<(AttrValue, usize)> = r.traces[0]
        .spansets
        .iter()
        .map(|s| (s.attributes[0].1.clone(), s.matched))
        .collect();
    assert_eq!(
        sets,
        [
            (AttrValue::Str("a".into()), 2),
            (AttrValue::Str("b".into()), 2)
        ]
    );
    let r = run(
        "{ } | by(resource.service.name) | count() > 1 | coalesce()",
        &SearchRequest {
            start_ns: 2_000_000_000,
            end_ns: 2_500_000_000,
            ..SearchRequest::default()
        },
    );
    assert_eq!(r.traces[0].spansets.len(), 1);
    assert_eq!(r.traces[0].spansets[0].matched, 4);

    let r = run(
        "{}",
        &SearchRequest {
            min_trace_duration_ns: Some(90_000_000),
            ..SearchRequest::default()
        },
    );
    assert_eq!(r.traces.len(), 2);
}

#[test]
fn span_predicate_for_tag_narrowing() {
    let f = span_predicate(&parse(r#"{ resource.service.name = "b" }"#).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(format!("{f:?}"), svc("b"));
    assert!(span_predicate(&parse("{ } && { }").unwrap())
        .unwrap()
        .is_none());
    assert_eq!(
        parse_attribute("resource.service.name").unwrap(),
        Attribute::Scoped {
            scope: AttrScope::Resource,
            key: "service.name".into()
        }
    );
    assert_eq!(
        parse_attribute("span:name").unwrap(),
        Attribute::Intrinsic(Intrinsic::Name)
    );
    assert!(parse_attribute("span.").is_err());
    assert!(parse_attribute(".a b").is_err());
}

#[test]
fn deep_or_long_queries_are_refused_before_recursing() {
    let deep = format!("{}{{}}{}", "(".repeat(100_000), ")".repeat(100_000));
    match parse(&deep) {
        Err(TraceqlError::Parse { msg, col, .. }) => {
            assert!(msg.contains("nests deeper"), "{msg}");
            assert_eq!(col, MAX_NESTING + 1);
        }
        other => panic!("{other:?}"),
    }
    let nots = format!("{{ {}true }}", "!".repeat(50_000));
    assert!(matches!(parse(&nots), Err(TraceqlError::Parse { .. })));
    // Operators inside strings do not count.
    let quoted = format!("{{ .a = \"{}\" }}", "&|<>!~(".repeat(5_000));
    assert!(parse(&quoted).is_ok());
    // The largest allowed chain parses, compiles and runs.
    let terms: Vec<String> = (0..MAX_OPERATOR_CHARS / 2)
        .map(|i| format!(".n = {i}"))
        .collect();
    let long = format!("{{ {} }}", terms.join(" && "));
    let compiled = compile(&parse(&long).unwrap()).unwrap();
    let r = search(&store(), &compiled, &SearchRequest::default()).unwrap();
    assert!(r.traces.is_empty(), "no span has every value");
    let longer = format!("{long} && {{ }} && {{ }}");
    assert!(parse(&longer).is_err());
    // The deepest spanset chain with the deepest allowed parentheses.
    let sets: Vec<&str> = vec!["{ .n = 1 }"; MAX_OPERATOR_CHARS / 2 - MAX_NESTING];
    let nested = format!(
        "{}{}{}",
        "(".repeat(MAX_NESTING - 1),
        sets.join(" && "),
        ")".repeat(MAX_NESTING - 1)
    );
    let compiled = compile(&parse(&nested).unwrap()).unwrap();
    let r = search(&store(), &compiled, &SearchRequest::default()).unwrap();
    assert_eq!(r.traces.len(), 3);
}
