//! Expansion tests with exact expected strings (cases after Prometheus' `template_test.go`).

use super::*;

struct FakeQuery;

impl TemplateQuery for FakeQuery {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
        let s = |pairs: &[(&str, &str)], value: f64| QuerySample {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        };
        match expr {
            "metric" => Ok(vec![
                s(&[("instance", "b"), ("__name__", "metric")], 12.0),
                s(&[("instance", "a"), ("__name__", "metric")], 11.0),
            ]),
            "1" => Ok(vec![s(&[], 1.0)]),
            "none" => Ok(vec![]),
            "str" => Ok(vec![s(&[("__value__", "hello")], 0.0)]),
            _ => Err(format!("unknown query {expr}")),
        }
    }
}

fn data() -> TemplateData {
    TemplateData {
        labels: [
            ("instance".to_string(), "host1:9100".to_string()),
            ("job".to_string(), "node".to_string()),
        ]
        .into_iter()
        .collect(),
        external_labels: [("cluster".to_string(), "eu1".to_string())]
            .into_iter()
            .collect(),
        external_url: "https://prom.example.com/prefix".into(),
        value: 1234567.0,
    }
}

fn run(t: &str) -> String {
    match Template::parse(t) {
        Ok(t) => t
            .expand(&data(), &FakeQuery)
            .unwrap_or_else(|e| format!("EXEC ERROR: {e}")),
        Err(e) => format!("PARSE ERROR: {e}"),
    }
}

fn run_err(t: &str) -> String {
    match Template::parse(t) {
        Ok(t) => match t.expand(&data(), &FakeQuery) {
            Ok(s) => format!("unexpected success: {s}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[test]
fn variables_fields_and_text() {
    assert_eq!(run("plain text"), "plain text");
    assert_eq!(
        run("{{ $labels.instance }} of {{ .Labels.job }}"),
        "host1:9100 of node"
    );
    assert_eq!(
        run("{{ $externalLabels.cluster }} {{ $externalURL }}"),
        "eu1 https://prom.example.com/prefix"
    );
    assert_eq!(run("{{ $value }}"), "1.234567e+06");
    assert_eq!(run("{{ .Value }}"), "1.234567e+06");
    assert_eq!(run("{{ $labels.missing }}|"), "|");
    assert_eq!(run("{{ index $labels \"job\" }}"), "node");
    assert_eq!(run("{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}"), "12");
    assert_eq!(
        run("{{ 0.1 }} {{ 1e6 }} {{ 11 }} {{ \"a\" }} {{ true }}"),
        "0.1 1e+06 11 a true"
    );
    assert_eq!(run("a {{- \" b \" -}} c"), "a b c");
    assert_eq!(run("x{{/* comment */}}y  {{- /* c */ -}}  z"), "xyz");
}

#[test]
fn control_structures() {
    assert_eq!(
        run("{{ if gt $value 100.0 }}big{{ else }}small{{ end }}"),
        "big"
    );
    assert_eq!(
        run("{{ if lt $value 100 }}a{{ else if eq $labels.job \"node\" }}b{{ else }}c{{ end }}"),
        "b"
    );
    assert_eq!(run("{{ with $labels.job }}job={{ . }}{{ end }}{{ with $labels.nope }}x{{ else }}none{{ end }}"), "job=nodenone");
    assert_eq!(
        run("{{ range query \"metric\" }}{{ .Labels.instance }}:{{ .Value }} {{ end }}"),
        "b:12 a:11 "
    );
    assert_eq!(
        run("{{ range $i, $s := query \"metric\" | sortByLabel \"instance\" }}{{ $i }}={{ $s.Labels.instance }};{{ end }}"),
        "0=a;1=b;"
    );
    assert_eq!(
        run("{{ range query \"none\" }}x{{ else }}empty{{ end }}"),
        "empty"
    );
    assert_eq!(
        run("{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}"),
        "instance=host1:9100,job=node,"
    );
    assert_eq!(run("{{ range query \"metric\" }}{{ if eq .Value 12.0 }}{{ continue }}{{ end }}{{ .Value }}{{ end }}"), "11");
    assert_eq!(
        run("{{ and 1 0 }} {{ or 0 \"x\" }} {{ not false }} {{ len $labels }}"),
        "0 x true 2"
    );
    assert_eq!(
        run("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" \"in\" }}{{ tmpl \"t\" 5 }}"),
        "[in][5]"
    );
}

#[test]
fn prometheus_functions() {
    assert_eq!(run("{{ query \"1\" | first | value }}"), "1");
    assert_eq!(
        run("{{ with query \"metric\" }}{{ . | first | label \"instance\" }}{{ end }}"),
        "b"
    );
    assert_eq!(run("{{ query \"str\" | first | strvalue }}"), "hello");
    assert_eq!(run("{{ humanize 1234567.0 }}"), "1.235M");
    assert_eq!(run("{{ $value | humanize }}"), "1.235M");
    assert_eq!(run("{{ humanize 0.0001234 }}"), "123.4u");
    assert_eq!(
        run("{{ humanize 0 }} {{ humanize 1 }} {{ humanize -1234 }}"),
        "0 1 -1.234k"
    );
    assert_eq!(
        run("{{ humanize1024 1048576.0 }} {{ humanize1024 1.0 }} {{ humanize1024 1234567.0 }}"),
        "1Mi 1 1.177Mi"
    );
    assert_eq!(
        run_durations(),
        "0s|100ms|100us|123.5ms|1m 0s|1h 0m 0s|1d 0h 0m 0s|1.5s|-1d 1h 1m 1s|"
    );
    assert_eq!(run("{{ humanizePercentage 0.1234567 }}"), "12.35%");
    assert_eq!(
        run("{{ humanizeTimestamp 1435065584.128 }}"),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(
        run("{{ 1435065584.128 | toTime }}"),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(run("{{ humanize \"1234\" }}"), "1.234k");
    assert_eq!(
        run("{{ title \"aa bb-cc\" }} {{ toUpper \"a\" }} {{ toLower \"B\" }}"),
        "Aa Bb-Cc A b"
    );
    assert_eq!(
        run("{{ match \"a+\" \"baa\" }} {{ reReplaceAll \"(a)b\" \"x$1\" \"abab\" }}"),
        "true xaxa"
    );
    assert_eq!(
        run(
            "{{ stripPort \"foo.com:9090\" }} {{ stripPort \"[::1]:80\" }} {{ stripPort \"foo\" }}"
        ),
        "foo.com ::1 foo"
    );
    assert_eq!(
        run("{{ stripDomain \"foo.example.com:9090\" }} {{ stripDomain \"10.0.0.1:80\" }}"),
        "foo:9090 10.0.0.1:80"
    );
    assert_eq!(
        run("{{ graphLink \"up == 0\" }}"),
        "/graph?g0.expr=up+%3D%3D+0&g0.tab=0"
    );
    assert_eq!(run("{{ tableLink \"up\" }}"), "/graph?g0.expr=up&g0.tab=1");
    assert_eq!(
        run("{{ externalURL }} {{ pathPrefix }}"),
        "https://prom.example.com/prefix /prefix"
    );
    assert_eq!(
        run("{{ with args 1 \"x\" }}{{ .arg0 }}{{ .arg1 }}{{ .arg2 }}{{ end }}"),
        "1x<no value>"
    );
    assert_eq!(run("{{ printf \"%.2f%%\" 1.23456 }} {{ printf \"%s=%d\" \"a\" 4 }} {{ printf \"%q\" \"x\" }}"), "1.23% a=4 \"x\"");
    assert_eq!(
        run("{{ 90 | toDuration }} {{ parseDuration \"1h30m\" }}"),
        "1m30s 5400"
    );
    assert_eq!(
        run("{{ safeHtml \"<b>\" }} {{ html \"<b>\" }}"),
        "<b> &lt;b&gt;"
    );
}

fn run_durations() -> String {
    // Facts from Prometheus' template tests for humanizeDuration.
    let cases: [(f64, &str); 9] = [
        (0.0, "0s"),
        (0.1, "100ms"),
        (0.0001, "100us"),
        (0.12345, "123.5ms"),
        (60.1, "1m 0s"),
        (3600.0, "1h 0m 0s"),
        (86400.0, "1d 0h 0m 0s"),
        (1.5, "1.5s"),
        (-90061.0, "-1d 1h 1m 1s"),
    ];
    let t = match Template::parse("{{ humanizeDuration .Value }}") {
        Ok(t) => t,
        Err(e) => return e.to_string(),
    };
    let mut got = String::new();
    for (v, want) in cases {
        let d = TemplateData {
            value: v,
            ..Default::default()
        };
        let out = t.expand(&d, &NoQuery).unwrap_or_else(|e| e.to_string());
        assert_eq!(out, want, "humanizeDuration {v}");
        got.push_str(&out);
        got.push('|');
    }
    got
}

#[test]
fn parse_and_exec_errors() {
    assert_eq!(
        run_err("{{ $label.x }}"),
        "template: __alert:1: undefined variable \"$label\""
    );
    assert_eq!(
        run_err("a\n{{ nofunc 1 }}"),
        "template: __alert:2: function \"nofunc\" not defined"
    );
    assert_eq!(
        run_err("{{ if true }}x"),
        "template: __alert:1: unexpected EOF"
    );
    assert_eq!(
        run_err("{{ end }}"),
        "template: __alert:1: unexpected {{end}}"
    );
    assert_eq!(run_err("{{ 1"), "template: __alert:1: unclosed action");
    assert_eq!(
        run_err("{{ query \"none\" | first }}"),
        "template: __alert:1: error calling first: first() called on vector with no elements"
    );
    assert_eq!(
        run_err("{{ query \"bad\" }}"),
        "template: __alert:1: error calling query: error executing query: unknown query bad"
    );
    assert_eq!(
        run_err("{{ .labels }}"),
        "template: __alert:1: can't evaluate field labels in type *template.tmplData"
    );
    assert_eq!(run_err("{{ humanize \"x\" }}"), "template: __alert:1: error calling humanize: strconv.ParseFloat: parsing \"x\": invalid syntax");
}

#[test]
fn runaway_templates_fail_cleanly() {
    let rec = run_err("{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" 1 }}");
    assert!(rec.contains("exceeded maximum template depth"), "{rec}");
    let deep = format!(
        "{}1{}",
        "{{ if true }}".repeat(150),
        "{{ end }}".repeat(150)
    );
    assert!(run_err(&deep).contains("nesting deeper than 100 levels"));
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(150), ")".repeat(150));
    assert!(run_err(&parens).contains("nesting deeper than 100 levels"));
    assert!(run_err("{{ range 100000000 }}x{{ end }}").contains("too large"));
    assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}"), "012");
}

#[test]
fn templates_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<TemplateError>();
}

#[test]
fn else_with_and_scoping() {
    assert_eq!(
        run("{{ with $labels.nope }}a{{ else with $labels.job }}b={{ . }}{{ end }}"),
        "b=node"
    );
    assert_eq!(
        run_err("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}"),
        "template: __alert:1: undefined variable \"$y\""
    );
    assert_eq!(
        run("{{ range query \"metric\" }}{{ with .Value }}{{ break }}{{ end }}x{{ end }}done"),
        "done"
    );
}
