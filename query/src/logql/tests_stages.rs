//! Pipeline stages (parsers, label filters, formatting), unwrap metric queries, parse errors,
//! printer round-trips and needle pushdown, over the fixed dataset of `tests.rs`.

use sextant_storage::logs::{Direction, LogEntry, Needle};

use super::tests::{dataset, engine, instant, labels, VecSource, SEC, T0};
use super::*;

/// Every kept entry across streams, in time order: `(second, labels, line)`.
fn entries_of(src: &VecSource, q: &str) -> Vec<(i64, String, String)> {
    let r = engine().query_range(src, q, T0, T0 + 100 * SEC, SEC, 0, 1000, Direction::Forward);
    let Ok(LogqlResult::Streams(streams)) = r else {
        panic!("{q}: {r:?}")
    };
    let mut out: Vec<(i64, String, String)> = streams
        .into_iter()
        .flat_map(|s| {
            let l = s.labels.to_string();
            s.entries
                .into_iter()
                .map(move |e| ((e.ts_ns - T0) / SEC, l.clone(), e.line))
        })
        .collect();
    out.sort();
    out
}

fn secs(q: &str) -> Vec<i64> {
    entries_of(&dataset(), q).into_iter().map(|e| e.0).collect()
}

fn lines(q: &str) -> Vec<String> {
    entries_of(&dataset(), q).into_iter().map(|e| e.2).collect()
}

fn one_stream(rows: &[(&str, &str)]) -> VecSource {
    let stream = labels(&[("app", "x")]);
    VecSource::new(
        rows.iter()
            .enumerate()
            .map(|(i, (line, _))| {
                (
                    stream.clone(),
                    LogEntry {
                        ts_ns: T0 + (i as i64 + 1) * SEC,
                        line: line.to_string(),
                        metadata: Vec::new(),
                    },
                )
            })
            .collect(),
    )
}

#[test]
fn label_filters_on_numbers_durations_and_bytes() {
    let cases: Vec<(&str, Vec<i64>)> = vec![
        (r#"{app="api"} | logfmt | status >= 500"#, vec![11, 15]),
        (r#"{app="api"} | logfmt | status == 200"#, vec![1, 31]),
        (r#"{app="api"} | logfmt | status = 201"#, vec![21]),
        (
            r#"{app="api"} | logfmt | status != 200"#,
            vec![5, 11, 15, 21],
        ),
        (r#"{app="api"} | logfmt | duration > 1s"#, vec![11, 15, 31]),
        (
            r#"{app="api"} | logfmt | duration <= 250ms"#,
            vec![1, 5, 21],
        ),
        (r#"{app="api"} | logfmt | size >= 2KB"#, vec![21, 31]),
        (r#"{app="api"} | logfmt | size < 0.1kb"#, vec![5, 11]),
        (
            r#"{app="api"} | logfmt | level="error" or status=404"#,
            vec![5, 11, 15],
        ),
        (
            r#"{app="api"} | logfmt | level="info" and status=201"#,
            vec![21],
        ),
        (
            r#"{app="api"} | logfmt | (level="info" or level="warn"), status=200"#,
            vec![1, 31],
        ),
        (
            r#"{app="api"} | logfmt | level=~"err.*|warn" | status < 510"#,
            vec![11, 15, 31],
        ),
        (
            r#"{app="api"} | logfmt | msg!~".*users.*""#,
            vec![5, 11, 15, 31],
        ),
        // A missing label never satisfies a numeric filter.
        (r#"{app="api"} | logfmt | nosuch > 1"#, vec![]),
    ];
    for (q, want) in cases {
        assert_eq!(secs(q), want, "{q}");
    }
}

#[test]
fn json_parser_flattens_and_reports_errors() {
    let got = entries_of(&dataset(), r#"{app="web"} | json | level="error""#);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1,
        r#"{app="web", env="prod", latency_ms="250", level="error", msg="Boom", user_id="8", user_name="bob"}"#
    );
    assert_eq!(secs(r#"{app="web"} | json | user_name="ann""#), vec![2, 32]);
    assert_eq!(
        secs(r#"{app="web"} | json | __error__="JSONParserErr""#),
        vec![22]
    );
    assert_eq!(
        secs(r#"{app="web"} | json | __error__="""#),
        vec![2, 12, 32]
    );
    // A numeric filter drops entries without the label (the JSON error line has none).
    assert_eq!(secs(r#"{app="web"} | json | latency_ms > 100"#), vec![12]);
    // A value that does not convert keeps the entry, flagged with LabelFilterErr, unless an
    // earlier error is there already.
    let got = entries_of(&dataset(), r#"{app="web"} | json | msg > 1"#);
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|e| e.1.contains(r#"__error__="LabelFilterErr""#)),
        "{got:?}"
    );
    let got = entries_of(
        &dataset(),
        r#"{app="web"} | json | __error__!="" | level > 1"#,
    );
    assert_eq!(got.len(), 0);
    let err_entry = entries_of(&dataset(), r#"{app="web"} |= "not json" | json"#);
    assert!(
        err_entry[0].1.contains(r#"__error__="JSONParserErr""#),
        "{:?}",
        err_entry
    );
    assert!(
        err_entry[0].1.contains("__error_details__="),
        "{:?}",
        err_entry
    );
}

#[test]
fn json_parameters_pick_paths() {
    let got = lines(
        r#"{app="web"} | json name="user.name", lvl="level", id="user[\"id\"]" | __error__="" | line_format "{{.lvl}}:{{.name}}:{{.id}}""#,
    );
    assert_eq!(got, vec!["info:ann:7", "error:bob:8", "info:ann:7"]);
    let src = one_stream(&[(r#"{"a":[{"b":"x"},{"b":"y"}],"o":{"k":1}}"#, "")]);
    let got = entries_of(&src, r#"{app="x"} | json second="a[1].b", whole="o""#);
    assert_eq!(got[0].1, r#"{app="x", second="y", whole="{\"k\":1}"}"#);
}

#[test]
fn logfmt_flags_and_label_collisions() {
    let src = one_stream(&[
        (
            r#"app=inner level=info empty= bare msg="a \"quoted\" b""#,
            "",
        ),
        (r#"level=warn =broken k=v"#, ""),
    ]);
    let got = entries_of(&src, r#"{app="x"} | logfmt"#);
    // An extracted key that is already a stream label gets `_extracted`.
    assert_eq!(
        got[0].1,
        r#"{app="x", app_extracted="inner", level="info", msg="a \"quoted\" b"}"#
    );
    assert_eq!(got[1].1, r#"{app="x", k="v", level="warn"}"#);
    let strict = entries_of(
        &src,
        r#"{app="x"} | logfmt --strict | __error__="LogfmtParserErr""#,
    );
    assert_eq!(strict.len(), 1);
    assert_eq!(strict[0].0, 2);
    let params = entries_of(
        &src,
        r#"{app="x"} | logfmt lvl="level" | line_format "{{.lvl}}""#,
    );
    assert_eq!(
        params.iter().map(|e| e.2.as_str()).collect::<Vec<_>>(),
        vec!["info", "warn"]
    );
}

#[test]
fn regexp_pattern_and_unpack_parsers() {
    assert_eq!(
        secs(r#"{app="api", env="dev"} | regexp "status=(?P<code>\\d+)" | code="504""#),
        vec![15]
    );
    assert_eq!(
        lines(
            r#"{app="api", env="dev"} | pattern "level=<level> msg=<_> status=<status> <_>" | line_format "{{.level}} {{.status}}""#
        ),
        vec!["debug 404", "error 504"]
    );
    // A line without the pattern's shape extracts nothing.
    assert_eq!(
        secs(r#"{app="web"} | pattern "level=<level> <_>" | level!="""#),
        Vec::<i64>::new()
    );
    let src = one_stream(&[(r#"{"_entry":"original line","pod":"p1","n":3}"#, "")]);
    let got = entries_of(&src, r#"{app="x"} | unpack"#);
    assert_eq!(got[0].1, r#"{app="x", pod="p1"}"#);
    assert_eq!(got[0].2, "original line");
}

#[test]
fn line_format_label_format_drop_keep_decolorize() {
    assert_eq!(
        lines(
            r#"{app="api", env="dev"} | logfmt | line_format "{{ .level | ToUpper }} {{ if eq .status \"404\" }}missing{{ else }}{{ .msg | trunc 7 }}{{ end }}""#
        ),
        vec!["DEBUG missing", "ERROR timeout"]
    );
    assert_eq!(
        lines(
            r#"{app="api", env="dev"} |= "db" | line_format "{{ __line__ | len }} {{.nosuch}}|{{ printf \"%s-%d\" .app 7 }}""#
        ),
        vec!["73 |api-7"]
    );
    let src = dataset();
    let r = engine().query_range(
        &src,
        r#"{app="api", env="dev"} | logfmt | label_format lvl=level, summary="{{.level}}-{{.status}}" | keep app, lvl, summary"#,
        T0,
        T0 + 100 * SEC,
        SEC,
        0,
        100,
        Direction::Forward,
    );
    let Ok(LogqlResult::Streams(s)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[0].labels.to_string(),
        r#"{app="api", lvl="debug", summary="debug-404"}"#
    );
    assert_eq!(s[0].stream_labels.to_string(), r#"{app="api"}"#);
    assert_eq!(
        s[0].entries[0].parsed,
        vec![
            ("lvl".to_string(), "debug".to_string()),
            ("summary".to_string(), "debug-404".to_string())
        ]
    );
    let got = entries_of(
        &dataset(),
        r#"{app="api", env="dev"} | logfmt | drop msg, duration, size, level="debug""#,
    );
    assert_eq!(got[0].1, r#"{app="api", env="dev", status="404"}"#);
    assert_eq!(
        got[1].1,
        r#"{app="api", env="dev", level="error", status="504"}"#
    );
    let src = one_stream(&[("\x1b[31mred\x1b[0m text \x1b[1;32mok\x1b[m", "")]);
    let got = entries_of(&src, r#"{app="x"} | decolorize |= "red text""#);
    assert_eq!(got[0].2, "red text ok");
}

fn close(got: Vec<(String, f64)>, want: &[(&str, f64)], q: &str) {
    assert_eq!(got.len(), want.len(), "{q}: {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0, "{q}");
        assert!((g.1 - w.1).abs() < 1e-9, "{q}: {} != {}", g.1, w.1);
    }
}

#[test]
fn unwrap_range_aggregations() {
    let cases: Vec<(&str, Vec<(&str, f64)>)> = vec![
        (
            r#"sum by (env) (sum_over_time({app="api"} | logfmt | unwrap duration(duration) [1m]))"#,
            vec![(r#"{env="dev"}"#, 30.002), (r#"{env="prod"}"#, 4.765)],
        ),
        (
            r#"max_over_time({app="api"} | logfmt | unwrap bytes(size) [1m]) by (app)"#,
            vec![(r#"{app="api"}"#, 10_000.0)],
        ),
        (
            r#"min_over_time({app="api"} | logfmt | unwrap status [1m]) without (level, msg, duration, size)"#,
            vec![
                (r#"{app="api", env="dev"}"#, 404.0),
                (r#"{app="api", env="prod"}"#, 200.0),
            ],
        ),
        (
            r#"avg_over_time({app="web"} | json | __error__="" | unwrap latency_ms [1m]) by (app)"#,
            vec![(r#"{app="web"}"#, 292.0 / 3.0)],
        ),
        (
            r#"quantile_over_time(0.5, {app="web"} | json | __error__="" | unwrap latency_ms [1m]) by (app)"#,
            vec![(r#"{app="web"}"#, 30.0)],
        ),
        (
            r#"first_over_time({app="web"} | json | unwrap latency_ms | __error__="" [1m]) by (app)"#,
            vec![(r#"{app="web"}"#, 12.0)],
        ),
        (
            r#"last_over_time({app="web"} | json | __error__="" | unwrap latency_ms [1m]) by (app)"#,
            vec![(r#"{app="web"}"#, 30.0)],
        ),
        (
            r#"stddev_over_time({app="web"} | json | __error__="" | unwrap latency_ms [1m]) by (app)"#,
            vec![(r#"{app="web"}"#, 108.20145819514428)],
        ),
        (
            r#"sum(rate({app="web"} | json | __error__="" | unwrap latency_ms [1m]))"#,
            vec![("{}", 292.0 / 60.0)],
        ),
        (
            r#"bytes_rate({app="api", env="dev"}[1m])"#,
            vec![(r#"{app="api", env="dev"}"#, 133.0 / 60.0)],
        ),
    ];
    for (q, want) in cases {
        close(instant(q, 59), &want, q);
    }
    // The unwrapped label leaves the series labels.
    let got = instant(
        r#"sum_over_time({app="api", env="dev"} | logfmt | unwrap status [1m])"#,
        59,
    );
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(l, _)| !l.contains("status=")), "{got:?}");
}

#[test]
fn pipeline_errors_fail_metric_queries() {
    let src = dataset();
    let err = engine().query_instant(
        &src,
        r#"sum_over_time({app="web"} | json | unwrap latency_ms [1m])"#,
        T0 + 59 * SEC,
        100,
        Direction::Backward,
    );
    match err {
        Err(e @ LogqlError::Pipeline(_)) => {
            assert_eq!(e.http_status(), 400);
            assert!(
                e.to_string().starts_with("pipeline error: 'JSONParserErr'"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let err = engine().query_instant(
        &src,
        r#"count_over_time({app="api"} | logfmt | msg > 1 [1m])"#,
        T0 + 59 * SEC,
        100,
        Direction::Backward,
    );
    assert!(
        matches!(err, Err(LogqlError::Pipeline(ref m)) if m.contains("LabelFilterErr")),
        "{err:?}"
    );
}

fn parse_err(q: &str) -> String {
    match parse(q) {
        Err(e @ LogqlError::Parse { .. }) => e.to_string(),
        other => panic!("{q}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn parse_errors_are_shaped_like_loki() {
    let cases = [
        (r#"{app="api""#, "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,"),
        ("{}", "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
        (r#"{app=~".*"}"#, "parse error : queries require at least one regexp"),
        (r#"{app="a"} |= 5"#, "parse error at line 1, col 14: syntax error: unexpected NUMBER, expecting STRING"),
        ("{app=\"a\"}\n  | foo", "parse error at line 2, col 8: syntax error: unexpected $end, expecting a comparison operator"),
        (r#"count_over_time({app="a"})"#, "parse error at line 1, col 26: syntax error: unexpected ), expecting ["),
        (r#"sum_over_time({app="a"}[1m])"#, "invalid aggregation sum_over_time without unwrap"),
        (r#"rate({app="a"}[1m]) by (x)"#, "grouping not allowed for rate aggregation"),
        (r#"count_over_time({app="a"}[1m]) or 1"#, "parse error : unexpected literal for right leg of logical/set binary operation (or): 1.000000"),
        (r#"sum_over_time({app="a"} | unwrap x [1m]) by (x)"#, "parse error : grouping not allowed for sum_over_time aggregation"),
        (r#"count_over_time({app="a"} | unwrap x [1m])"#, "parse error : invalid aggregation count_over_time with unwrap"),
        (r#"{app="a"} |~ "(""#, "error parsing regexp"),
        (r#"{app="a"} | regexp "(\\d+)""#, "at least one named capture must be supplied"),
        (r#"{app="a"} | pattern "<a><b>""#, "found consecutive capture"),
        (r#"{app="a"} | line_format "{{.a""#, "invalid line template"),
        (r#"{app="a"} | line_format "{{ nosuch .a }}""#, "function \"nosuch\" not defined"),
        (r#"{app="a"} | status > 5xyz"#, "invalid duration or bytes"),
        (r#"sum(count_over_time({app="a"}[1m])"#, "syntax error: unexpected $end, expecting )"),
        (r#"{app="a"} extra"#, "syntax error: unexpected IDENTIFIER"),
        ("", "syntax error: unexpected $end"),
        (r#"topk(0, count_over_time({app="a"}[1m]))"#, "invalid parameter"),
    ];
    for (q, want) in cases {
        let got = parse_err(q);
        assert!(got.contains(want), "{q}: {got}");
    }
}

#[test]
fn format_is_canonical_and_round_trips() {
    let cases = [
        (
            r#"{app="api",env=~"p.*"}|="x"   or "y" !~ `a\d`"#,
            r#"{app="api", env=~"p.*"} |= "x" or "y" !~ "a\\d""#,
        ),
        (
            r#"{app="a"} | json | logfmt --strict --keep-empty a="b" | level = "x""#,
            r#"{app="a"} | json | logfmt --strict --keep-empty a="b" | level="x""#,
        ),
        (
            r#"{app="a"} | logfmt | duration > 90s and (size < 2KiB or status != 200), x=~"y""#,
            r#"{app="a"} | logfmt | ( ( duration>1m30s , ( size<2.0kB or status!=200 ) ) , x=~"y" )"#,
        ),
        (
            r#"sum by(app)(count_over_time({app="a"}[5m]))"#,
            r#"sum by (app)(count_over_time({app="a"}[5m]))"#,
        ),
        (
            r#"sum(rate({app="a"} |= "x" [1h30m] offset 5m)) without (a, b)"#,
            r#"sum without (a,b)(rate({app="a"} |= "x"[1h30m] offset 5m0s))"#,
        ),
        (
            r#"count_over_time({a="b"}[1m]) / on(a) count_over_time({a="c"}[1m]) > bool 0.5"#,
            r#"((count_over_time({a="b"}[1m]) / on (a)  count_over_time({a="c"}[1m])) > bool 0.5)"#,
        ),
        ("2 * (3 + 1) - 1 / 0", "NaN"),
        ("2 * 3 + 1", "7"),
        ("1e21 + 1.5e-7 * 0", "1e+21"),
        (
            r#"quantile_over_time(0.99, {app="a"} | logfmt | unwrap duration(d) | __error__="" [1m]) by (x)"#,
            r#"quantile_over_time(0.99,{app="a"} | logfmt | unwrap duration(d) | __error__=""[1m]) by (x)"#,
        ),
        (
            "vector(1)+vector(1)",
            "(vector(1.000000) + vector(1.000000))",
        ),
        (r#"topk(3, rate({a="b"}[1m])) / on(a) group_x"#, ""),
    ];
    for (q, want) in cases {
        if want.is_empty() {
            assert!(LogqlEngine::format(q).is_err(), "{q}");
            continue;
        }
        let got = LogqlEngine::format(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(got, want, "{q}");
        let again = LogqlEngine::format(&got).unwrap_or_else(|e| panic!("{got}: {e}"));
        assert_eq!(again, got, "not a fixed point: {q}");
    }
    // Round trips over more shapes: printing a parsed query and parsing it again gives the
    // same text.
    for q in [
        r#"{app="a"} | pattern "<ip> - <_>" | regexp "(?P<x>a+)" | unpack | decolorize"#,
        r#"{app="a"} | label_format a=b, c="{{.d}}" | line_format "{{ .a | ToUpper }}" | drop x, y="z" | keep a"#,
        r#"count_over_time({app="a"} | json a="x.y"[1m]) > bool 2 or vector(0)"#,
        r#"-sum(bytes_rate({app="a"}[1m])) * (2 + 3) ^ 2 ^ 1 % 7"#,
        r#"absent_over_time({app="a"}[1m]) unless ignoring(b) count_over_time({app="a"}[1m])"#,
        r#"avg by (a) (rate_counter({app="a"} | logfmt | unwrap c [1m]))"#,
    ] {
        let once = LogqlEngine::format(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let twice = LogqlEngine::format(&once).unwrap_or_else(|e| panic!("{once}: {e}"));
        assert_eq!(once, twice, "{q}");
    }
}

#[test]
fn needles_from_line_filters_before_line_changes() {
    let LogqlExpr::Log(e) = parse(
        r#"{a="b"} |= "foo" |~ "abc.*def" != "x" |~ "(?i)Err(or)?" |~ "a|b" |= "p" or "q" | json |= "foo" | line_format "x" |= "after""#,
    )
    .unwrap_or_else(|e| panic!("{e}")) else {
        panic!("not a log query")
    };
    let got = needles::needles(&e.stages);
    let n = |t: &str, ci: bool| Needle {
        text: t.to_string(),
        case_insensitive: ci,
    };
    assert_eq!(
        got,
        vec![
            n("foo", false),
            n("abc", false),
            n("def", false),
            n("Err", true)
        ]
    );
    assert_eq!(
        needles::regex_needles(r"GET /api/v\d+/users/(\w+) took"),
        vec![
            n("GET /api/v", false),
            n("/users/", false),
            n(" took", false)
        ]
    );
    assert_eq!(
        needles::regex_needles("(foo|bar)baz?"),
        vec![n("ba", false)]
    );
    assert!(needles::regex_needles("(foo|bar).*").is_empty());
    // The engine hands the needles to the store.
    let src = dataset();
    let r = engine().query_range(
        &src,
        r#"{app="api"} |~ "(?i)TIMEOUT.*DB""#,
        T0,
        T0 + 100 * SEC,
        SEC,
        0,
        100,
        Direction::Backward,
    );
    assert!(
        matches!(r, Ok(LogqlResult::Streams(ref s)) if s.len() == 1 && s[0].entries.len() == 1)
    );
    let seen = src
        .seen_needles
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    assert_eq!(seen, vec![vec![n("TIMEOUT", true), n("DB", true)]]);
}

#[test]
fn pattern_line_filters_match_shape_and_push_down_literals() {
    assert_eq!(
        secs(r#"{app=~".+"} |> "<_> msg=\"<_> /users\" <_>""#),
        vec![1, 21]
    );
    assert_eq!(
        secs(r#"{app="api"} !> "level=info <_>" !> "level=debug <_>""#),
        vec![11, 15, 31]
    );
    assert_eq!(
        secs(r#"{app="api"} |> "<_>timeout<_>" or "<_>cache<_>""#),
        vec![5, 15]
    );
    let LogqlExpr::Log(e) =
        parse(r#"{a="b"} |> "<_> GET <path> took <_>""#).unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("not a log query")
    };
    let texts: Vec<String> = needles::needles(&e.stages)
        .into_iter()
        .map(|n| n.text)
        .collect();
    assert_eq!(texts, vec![" GET ", " took "]);
    let err = parse_err(r#"{a="b"} |> "<x><y>""#);
    assert!(err.contains("invalid pattern"), "{err}");
}

#[test]
fn label_replace_rewrites_series_labels() {
    let got = instant(
        r#"label_replace(sum by (app) (count_over_time({env=~".+"}[1m])), "svc", "s-$1", "app", "(a.*)")"#,
        59,
    );
    close(
        got,
        &[
            (r#"{app="api", svc="s-api"}"#, 6.0),
            (r#"{app="web"}"#, 4.0),
        ],
        "label_replace",
    );
    assert_eq!(
        LogqlEngine::format(r#"label_replace(vector(1), "a", "$1", "b", "(.*)")"#)
            .unwrap_or_else(|e| panic!("{e}")),
        r#"label_replace(vector(1.000000),"a","$1","b","(.*)")"#
    );
    let err = parse_err(r#"label_replace(vector(1), "a", "$1", "b", "(")"#);
    assert!(
        err.starts_with("parse error : invalid regex in label_replace"),
        "{err}"
    );
}

/// The log volume query Grafana's Explore sends, over a range with a step.
#[test]
fn grafana_log_volume_query() {
    let src = dataset();
    let q = r#"sum by (level, detected_level) (count_over_time({app="api"} | logfmt | drop __error__[30s]))"#;
    let r = engine().query_range(
        &src,
        q,
        T0 + 30 * SEC,
        T0 + 60 * SEC,
        30 * SEC,
        0,
        1000,
        Direction::Backward,
    );
    let Ok(LogqlResult::Matrix(m)) = r else {
        panic!("{r:?}")
    };
    let got: Vec<(String, Vec<(i64, f64)>)> = m
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.points
                    .into_iter()
                    .map(|(t, v)| ((t - T0) / SEC, v))
                    .collect(),
            )
        })
        .collect();
    let want: Vec<(String, Vec<(i64, f64)>)> = vec![
        (r#"{level="debug"}"#.into(), vec![(30, 1.0)]),
        (r#"{level="error"}"#.into(), vec![(30, 2.0)]),
        (r#"{level="info"}"#.into(), vec![(30, 2.0)]),
        (r#"{level="warn"}"#.into(), vec![(60, 1.0)]),
    ];
    assert_eq!(got, want);
}

#[test]
fn rate_counter_extrapolates_like_prometheus() {
    let stream = labels(&[("app", "c")]);
    let src = VecSource::new(
        [(10, "n=10"), (20, "n=20"), (30, "n=5"), (40, "n=15")]
            .iter()
            .map(|(s, l)| {
                (
                    stream.clone(),
                    LogEntry {
                        ts_ns: T0 + s * SEC,
                        line: l.to_string(),
                        metadata: Vec::new(),
                    },
                )
            })
            .collect(),
    );
    let r = engine().query_instant(
        &src,
        r#"sum(rate_counter({app="c"} | logfmt | unwrap n [1m]))"#,
        T0 + 45 * SEC,
        10,
        Direction::Backward,
    );
    let Ok(LogqlResult::Vector(v)) = r else {
        panic!("{r:?}")
    };
    // Increase 25 (with one reset), extrapolated from 30s of samples to 40s, over 60s.
    assert_eq!(v.len(), 1);
    assert!(
        (v[0].value - 25.0 * 40.0 / 30.0 / 60.0).abs() < 1e-12,
        "{}",
        v[0].value
    );
}

#[test]
fn extreme_times_do_not_overflow() {
    let src = dataset();
    let r = engine().query_range(
        &src,
        r#"count_over_time({app="api"}[1y] offset 1y)"#,
        i64::MIN + 1,
        i64::MIN + 10,
        1,
        0,
        10,
        Direction::Forward,
    );
    assert!(
        matches!(r, Ok(LogqlResult::Matrix(ref m)) if m.is_empty()),
        "{r:?}"
    );
    let r = engine().query_range(
        &src,
        r#"count_over_time({app="api"}[1m])"#,
        i64::MIN,
        i64::MAX,
        1,
        0,
        10,
        Direction::Forward,
    );
    assert!(
        matches!(r, Err(LogqlError::BadRequest(ref m)) if m.contains("maximum resolution of 11,000 points")),
        "{r:?}"
    );
}

/// `sum by` over summable range aggregations groups while extracting (Loki's pushdown), so
/// a unique trace id per entry in structured metadata does not explode into series.
#[test]
fn sum_grouping_is_pushed_into_extraction() {
    let stream = labels(&[("app", "pay")]);
    let src = VecSource::new(
        (0..50)
            .map(|i| {
                (
                    stream.clone(),
                    LogEntry {
                        ts_ns: T0 + i * SEC,
                        line: format!(
                            "level={} payment {i}",
                            if i % 5 == 0 { "error" } else { "info" }
                        ),
                        metadata: vec![("trace_id".to_string(), format!("t{i:04}"))],
                    },
                )
            })
            .collect(),
    );
    let tight = LogqlEngine::new(LogqlOptions {
        max_series: 10,
        ..LogqlOptions::default()
    });
    let at = T0 + 60 * SEC;
    let r = tight.query_instant(
        &src,
        r#"sum by (app) (count_over_time({app="pay"}[5m]))"#,
        at,
        10,
        Direction::Backward,
    );
    let Ok(LogqlResult::Vector(v)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        (v.len(), v[0].labels.to_string(), v[0].value),
        (1, r#"{app="pay"}"#.to_string(), 50.0)
    );
    let r = tight.query_instant(
        &src,
        r#"sum by (level) (rate({app="pay"} |= "payment" | logfmt [5m]))"#,
        at,
        10,
        Direction::Backward,
    );
    let Ok(LogqlResult::Vector(v)) = r else {
        panic!("{r:?}")
    };
    let got: Vec<(String, f64)> = v
        .into_iter()
        .map(|s| (s.labels.to_string(), s.value * 300.0))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, r#"{level="error"}"#);
    assert!(
        (got[0].1 - 10.0).abs() < 1e-9 && (got[1].1 - 40.0).abs() < 1e-9,
        "{got:?}"
    );
    // Without the aggregation every trace id is a series, and the limit says so.
    let err = tight.query_instant(
        &src,
        r#"count_over_time({app="pay"}[5m])"#,
        at,
        10,
        Direction::Backward,
    );
    assert!(matches!(err, Err(LogqlError::Limit(_))), "{err:?}");
}

/// Counting through cells (count/bytes/rate) must agree with the per-sample path, which
/// `sum_over_time` over an unwrapped constant takes, for any range/step/offset alignment.
#[test]
fn cell_totals_agree_with_per_sample_windows() {
    let shapes: [(&str, i64, i64, i64, i64); 7] = [
        // (range, step s, offset s, start s, end s)
        ("10s", 10, 0, 0, 40),
        ("30s", 7, 0, 3, 60),
        ("1m", 15, 5, -10, 70),
        ("7s", 3, 0, 1, 35),
        ("45s", 45, 2, 0, 90),
        ("5s", 1, 0, 0, 33),
        ("1h", 600, 0, 0, 1200),
    ];
    for (range, step, offset, start, end) in shapes {
        let off = if offset == 0 {
            String::new()
        } else {
            format!(" offset {offset}s")
        };
        let pairs = [
            (
                format!(r#"count_over_time({{env=~".+"}}[{range}]{off})"#),
                format!(
                    r#"sum_over_time({{env=~".+"}} | label_format one="1" | unwrap one [{range}]{off})"#
                ),
            ),
            (
                format!(r#"bytes_over_time({{env=~".+"}} |= "e" [{range}]{off})"#),
                format!(
                    r#"sum_over_time({{env=~".+"}} |= "e" | label_format n="{{{{ __line__ | len }}}}" | unwrap n [{range}]{off})"#
                ),
            ),
            (
                format!(r#"sum by (app) (rate({{env=~".+"}}[{range}]{off}))"#),
                format!(
                    r#"sum by (app) (rate({{env=~".+"}} | label_format one="1" | unwrap one [{range}]{off}))"#
                ),
            ),
        ];
        for (fast, slow) in pairs {
            let a = super::tests::matrix(&fast, start, end, step);
            let b = super::tests::matrix(&slow, start, end, step);
            assert!(!a.is_empty(), "{fast}");
            assert_eq!(a, b, "{fast} vs {slow} ({start}..{end} step {step})");
        }
    }
}

#[test]
fn json_keeps_number_text_and_fields_before_an_error() {
    let src = one_stream(&[
        (
            r#"{"a":1.50,"b":1e3,"c":null,"d":[1,2],"e":{"f":true},"g":"x\"y\u00e9","h-i":-0}"#,
            "",
        ),
        (r#"{"a":"ok","b": "#, ""),
    ]);
    let got = entries_of(&src, r#"{app="x"} | json"#);
    assert_eq!(
        got[0].1,
        r#"{a="1.50", app="x", b="1e3", e_f="true", g="x\"yé", h_i="-0"}"#
    );
    assert!(
        got[1]
            .1
            .starts_with(r#"{__error__="JSONParserErr", __error_details__="#),
        "{}",
        got[1].1
    );
    assert!(got[1].1.contains(r#"a="ok""#), "{}", got[1].1);
    let got = entries_of(
        &src,
        r#"{app="x"} | json v="a", arr="d", o="e", f="e.f", second="d[1]" | __error__="""#,
    );
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1,
        r#"{app="x", arr="[1,2]", f="true", o="{\"f\":true}", second="2", v="1.50"}"#
    );
}

/// Every prefix and many single-character mutations of real queries parse to a result or a
/// positioned parse error (never a panic), and whatever parses prints to a fixed point.
#[test]
fn mangled_queries_never_panic() {
    let seeds = [
        r#"sum by (level) (count_over_time({app="api", env=~"p.*"} |= "x" or "y" | json a="b.c[0]" | logfmt --strict | status >= 400 and duration > 5s, size < 2KB | line_format "{{ .a | ToUpper }}" | label_format x=y, z="{{.a}}" | drop k, l="m" | keep a | decolorize [5m] offset 1h))"#,
        r#"quantile_over_time(0.9, {app="a"} | pattern "<ip> - <_>" | regexp "(?P<x>\\d+)" | unwrap duration(x) | __error__="" [1m]) by (ip) / on (ip) topk(3, rate({app="a"} |> "<_> GET <_>" [1m])) > bool 0.5 or vector(1)"#,
        r#"label_replace(absent_over_time({app="a"} | unpack !~ `(?i)err` [1m]), "d", "$1", "s", "(.*)") unless ignoring(x) -2 * bytes_rate({b="c"}[30s])"#,
    ];
    let subs = [
        '(', ')', '{', '}', '[', ']', '"', '`', '|', '=', '~', '!', ',', ' ', 'x', '0', '<', '>',
        '\\', '\u{e9}',
    ];
    let mut checked = 0;
    for seed in seeds {
        let chars: Vec<char> = seed.chars().collect();
        let mut variants: Vec<String> = (0..=chars.len())
            .map(|n| chars[..n].iter().collect())
            .collect();
        for (i, _) in chars.iter().enumerate() {
            let mut v = chars.clone();
            v[i] = subs[i % subs.len()];
            variants.push(v.into_iter().collect());
        }
        for q in variants {
            checked += 1;
            match parse(&q) {
                Ok(e) => {
                    let once = e.to_string();
                    let twice = LogqlEngine::format(&once)
                        .unwrap_or_else(|err| panic!("{q} → {once}: {err}"));
                    assert_eq!(once, twice, "{q}");
                }
                Err(LogqlError::Parse { msg, .. }) => assert!(!msg.is_empty(), "{q}"),
                Err(other) => panic!("{q}: not a parse error: {other:?}"),
            }
        }
    }
    assert!(checked > 1000);
}

#[test]
fn group_left_and_group_right_matching() {
    let per_env = r#"sum by (app, env) (count_over_time({env=~".+"}[1m]))"#;
    let per_app = r#"sum by (app) (count_over_time({env=~".+"}[1m]))"#;
    let q = format!(
        r#"{per_env} / on (app) group_left (owner) label_replace({per_app}, "owner", "team-$1", "app", "(.*)")"#
    );
    close(
        instant(&q, 59),
        &[
            (r#"{app="api", env="dev", owner="team-api"}"#, 2.0 / 6.0),
            (r#"{app="api", env="prod", owner="team-api"}"#, 4.0 / 6.0),
            (r#"{app="web", env="prod", owner="team-web"}"#, 1.0),
        ],
        &q,
    );
    let q = format!("{per_app} * on (app) group_right {per_env}");
    close(
        instant(&q, 59),
        &[
            (r#"{app="api", env="dev"}"#, 12.0),
            (r#"{app="api", env="prod"}"#, 24.0),
            (r#"{app="web", env="prod"}"#, 16.0),
        ],
        &q,
    );
    // Without grouping, many-to-one matching is refused.
    let src = dataset();
    let q = format!("{per_env} / on (app) {per_app}");
    let err = engine().query_instant(&src, &q, T0 + 59 * SEC, 10, Direction::Backward);
    assert!(
        matches!(err, Err(LogqlError::BadRequest(ref m)) if m.starts_with("multiple matches for labels")),
        "{err:?}"
    );
    assert_eq!(
        LogqlEngine::format(r#"vector(1) / on(a) group_left(b, c) vector(2)"#)
            .unwrap_or_else(|e| panic!("{e}")),
        "(vector(1.000000) / on (a) group_left (b,c) vector(2.000000))"
    );
    let err = parse_err(r#"vector(1) and on(a) group_left vector(2)"#);
    assert!(
        err.contains(r#"no grouping allowed for "and" operation"#),
        "{err}"
    );
}

#[test]
fn ip_line_and_label_filters() {
    let src = one_stream(&[
        ("client 10.0.0.5 connected", ""),
        ("from 192.168.1.20:8080 ok", ""),
        ("v6 fe80::1 up", ""),
        ("no ip here 999.1.1.1", ""),
    ]);
    let secs_of = |q: &str| -> Vec<i64> { entries_of(&src, q).into_iter().map(|e| e.0).collect() };
    assert_eq!(secs_of(r#"{app="x"} |= ip("10.0.0.0/8")"#), vec![1]);
    assert_eq!(
        secs_of(r#"{app="x"} |= ip("192.168.1.10-192.168.1.30")"#),
        vec![2]
    );
    assert_eq!(secs_of(r#"{app="x"} |= ip("fe80::/16")"#), vec![3]);
    assert_eq!(secs_of(r#"{app="x"} != ip("10.0.0.5")"#), vec![2, 3, 4]);
    assert_eq!(
        secs_of(
            r#"{app="x"} | regexp "(?P<addr>\\d+\\.\\d+\\.\\d+\\.\\d+)" | addr = ip("192.168.0.0/16")"#
        ),
        vec![2]
    );
    assert_eq!(
        secs_of(
            r#"{app="x"} | regexp "(?P<addr>\\d+\\.\\d+\\.\\d+\\.\\d+)" | addr != ip("192.168.0.0/16")"#
        ),
        vec![1, 3, 4]
    );
    let q = r#"{app="x"} |= ip("10.0.0.0/8") | addr != ip("1.2.3.4")"#;
    assert_eq!(
        LogqlEngine::format(q).unwrap_or_else(|e| panic!("{e}")),
        r#"{app="x"} |= ip("10.0.0.0/8") | addr!=ip("1.2.3.4")"#
    );
    let LogqlExpr::Log(e) = parse(q).unwrap_or_else(|e| panic!("{e}")) else {
        panic!("not a log query")
    };
    assert!(needles::needles(&e.stages).is_empty());
    assert!(parse_err(r#"{app="x"} |~ ip("1.2.3.4")"#).contains("only support |= and !="));
    assert!(parse_err(r#"{app="x"} |= ip("1.2.3")"#).contains("invalid pattern"));
}

#[test]
fn line_format_timestamps() {
    let got = lines(
        r#"{app="api", env="prod"} |= "GET /users" | line_format "{{ __timestamp__ | date \"2006-01-02T15:04:05.000Z07:00 Mon Jan _2 3PM\" }} {{ __timestamp__ | unixEpoch }} {{ __timestamp__ }}""#,
    );
    assert_eq!(
        got,
        vec!["2023-11-14T22:13:21.000Z Tue Nov 14 10PM 1700000001 2023-11-14 22:13:21 +0000 UTC"]
    );
}
