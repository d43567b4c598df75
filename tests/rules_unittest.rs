//! `sextant test rules` against the promtool unit-test fixtures of
//! `../shared/conformance/promtool-tests/`: every entry of its `expectations.yaml` is run through
//! the binary (with `--run` filters and `--ignore-unknown-fields` where a case asks for them)
//! and its exit code compared; a few outputs are checked line by line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/promtool-tests")
}

fn run(args: &[String]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .arg("test")
        .arg("rules")
        .args(args)
        .current_dir(dir())
        .output()
        .expect("run sextant");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn promtool_unit_test_fixtures_match_expectations() {
    let manifest: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir().join("expectations.yaml")).expect("manifest"),
    )
    .expect("manifest parses");
    let cases = manifest["unit_tests"].as_sequence().expect("unit_tests");
    let mut ran = 0;
    for case in cases {
        let file = case["file"].as_str().expect("file").to_string();
        // The engine always has the @ modifier and negative offsets.
        let default_exit = case["exit"]
            .as_i64()
            .or_else(|| case["exit_when_enabled"].as_i64());
        let runs: Vec<(Vec<String>, i64)> = match case["cases"].as_sequence() {
            Some(list) => list
                .iter()
                .map(|c| {
                    let mut args = Vec::new();
                    for r in c["run"].as_sequence().into_iter().flatten() {
                        args.push(format!("--run={}", r.as_str().expect("run filter")));
                    }
                    if c["ignore_unknown_fields"].as_bool() == Some(true) {
                        args.push("--ignore-unknown-fields".into());
                    }
                    (args, c["exit"].as_i64().expect("case exit"))
                })
                .collect(),
            None => vec![(Vec::new(), default_exit.expect("exit code"))],
        };
        for (mut args, want) in runs {
            args.push(file.clone());
            let (code, out, err) = run(&args);
            assert_eq!(
                i64::from(code),
                want,
                "{args:?}: exit {code}\nstdout:\n{out}\nstderr:\n{err}"
            );
            assert!(
                out.starts_with(&format!("Unit Testing:  {file}\n")),
                "{out}"
            );
            if want == 0 {
                assert!(out.contains("  SUCCESS\n"), "{out}");
            } else {
                assert!(err.starts_with("  FAILED:\n"), "{err}");
            }
            ran += 1;
        }
    }
    assert!(ran >= 18, "only {ran} runs");
}

#[test]
fn failures_show_expected_and_got() {
    let (code, _, err) = run(&["failing.yml".to_string()]);
    assert_eq!(code, 1);
    let want_promql = "    name: Failing test,\n    expr: \"test\", time: 0s,\n        exp: test 1E+00\n        got: test 0E+00\n";
    assert!(err.contains(want_promql), "{err}");
    let want_alert = "    name: Failing alert test,\n    alertname: AlwaysFiring, time: 5m0s, \n        exp:[], \n        got:[\n            0:\n              Labels:{alertname=\"AlwaysFiring\"}\n              Annotations:{}\n            ]\n";
    assert!(err.contains(want_alert), "{err}");
    // InstanceDown fires at 5m (`for: 5m` on a series that is 0 from the start).
    assert!(
        err.contains("alertname: InstanceDown, time: 5m0s, \n        exp:[], \n        got:[\n            0:\n              Labels:{alertname=\"InstanceDown\", job=\"test\", severity=\"page\"}\n"),
        "{err}"
    );

    let (code, _, err) = run(&["bad-rules-error-test.yml".to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("    rule: joined, time: 0s, err: "), "{err}");
    assert!(err.contains("many-to-many matching not allowed"), "{err}");

    let (code, _, err) = run(&["bad-input-series.yml".to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("parse series"), "{err}");

    let (code, _, err) = run(&["rules_run_no_fuzzy.yml".to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("got: test_low 2.9999999999999996E+00"),
        "{err}"
    );
}

#[test]
fn several_files_report_each_and_fail_if_any_fails() {
    let (code, out, _) = run(&["unittest.yml".to_string(), "failing.yml".to_string()]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("Unit Testing:  unittest.yml\n  SUCCESS\n\nUnit Testing:  failing.yml\n"),
        "{out}"
    );
}

/// Alert templates covering the language and Prometheus' functions. `pathPrefix` and
/// `externalURL` are left out:
/// Debian's promtool (2.42) crashes on them in unit tests.
const TEMPLATED_RULES: &str = r#"groups:
  - name: tmpl
    rules:
      - alert: Templated
        expr: sum by (job, instance) (metric) * 1234.5678
        annotations:
          value: '{{ $value }}|{{ .Value }}|{{ printf "%.2f" $value }}|{{ printf "%d %s %q %5.1f|%-6s|%x %g %e %v" 42 "s" "q" 3.14159 "ab" 255 0.000012345 123456.789 $value }}'
          humanize: '{{ humanize $value }}|{{ humanize1024 $value }}|{{ humanizePercentage 0.0123456 }}|{{ humanizeDuration 93784.5 }}|{{ humanizeDuration 0.0012 }}|{{ humanizeDuration 59.99 }}|{{ humanizeTimestamp 1435065584.128 }}|{{ humanize 0.000001234 }}|{{ humanize 1e30 }}|{{ humanize -12345 }}|{{ "2048" | humanize1024 }}'
          labels: '{{ $labels.job }}/{{ .Labels.instance }}/{{ index $labels "job" }}/{{ $externalLabels.cluster }}/{{ $externalURL }}/{{ $labels.missing }}'
          query: '{{ range query "metric" | sortByLabel "instance" }}{{ .Labels.instance }}={{ .Value }};{{ end }}{{ with query "sum(metric)" }}{{ . | first | value | humanize }}{{ end }}|{{ query "metric" | first | label "job" }}|{{ range $i, $s := query "metric" }}{{ $i }}{{ end }}'
          strings: '{{ title "hello world-x" }}|{{ toUpper "a" }}{{ toLower "B" }}|{{ match "^a.c$" "abc" }}|{{ reReplaceAll "(a)(b)" "${2}$1" "abab" }}|{{ stripPort "h.example.com:80" }}|{{ stripDomain "h.example.com:80" }}|{{ graphLink "rate(x[5m]) > 1" }}|{{ tableLink "up" }}|{{ safeHtml "<b>" }}|{{ html "<a&b>" }}|{{ urlquery "a b&c" }}'
          control: '{{ $x := 0 }}{{ range $i, $s := query "metric" }}{{ $x = $i }}{{ end }}{{ $x }}|{{ if and (eq $labels.job "api") (ne $labels.instance "") }}yes{{ else if true }}no{{ end }}|{{ len $labels }}|{{ with $labels.nope }}x{{ else }}empty{{ end }}|{{ or "" "dflt" }}|{{ not 0 }}|{{- "  trimmed  " -}}|{{/* c */}}|{{ define "t" }}<{{ . }}>{{ end }}{{ template "t" "tt" }}|{{ args 1 "b" }}|{{ print 1 2 "a" 3 }}|{{ println "x" }}|{{ if lt $value 1000.0 }}low{{ else }}high{{ end }}'
          numbers: '{{ 0.1 }} {{ 1e6 }} {{ 100000.0 }} {{ 1e21 }} {{ 123456789.0 }} {{ 0.00001 }} {{ -0.0 }} {{ 1.5e-7 }} {{ 3 }} {{ 0x1F }} {{ 1e100 }} {{ 2.5e-5 }} {{ 1234567.0 }}'
          errors: '{{ query "metric" | first | first }}'
"#;

const TEMPLATED_TEST: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    external_labels:
      cluster: eu-1
    external_url: http://prom.example.com:9090/some/prefix
    input_series:
      - series: 'metric{job="api", instance="b:1"}'
        values: '1+1x5'
      - series: 'metric{job="api", instance="a:1"}'
        values: '0.25x5'
    alert_rule_test:
      - eval_time: 2m
        alertname: Templated
        exp_alerts: []
"#;

/// Unquotes a Go `strconv.Quote` string starting at `s[0] == '"'`; returns it and the rest.
fn go_unquote(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => match it.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('x') => {
                    let h: String = (0..2).filter_map(|_| it.next().map(|(_, d)| d)).collect();
                    out.push(u8::from_str_radix(&h, 16).map(char::from).unwrap_or('?'));
                }
                Some('u') => {
                    let h: String = (0..4).filter_map(|_| it.next().map(|(_, d)| d)).collect();
                    let cp = u32::from_str_radix(&h, 16).ok().and_then(char::from_u32);
                    out.push(cp.unwrap_or('?'));
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    (out, "")
}

/// `{a="x", b="y"}` as printed by promtool into pairs.
fn parse_label_set(mut s: &str) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    s = s.trim_start_matches('{');
    while let Some(eq) = s.find("=\"") {
        let name = s[..eq].trim_start_matches([',', ' ']).to_string();
        let (value, rest) = go_unquote(&s[eq + 1..]);
        m.insert(name, value);
        s = rest;
    }
    m
}

/// The got-alerts of a promtool/sextant failure report: (labels, annotations) per alert.
type LabelSet = std::collections::BTreeMap<String, String>;

fn reported_alerts(report: &str) -> Vec<(LabelSet, LabelSet)> {
    let got = report.split("got:").nth(1).unwrap_or("");
    let mut out = Vec::new();
    let mut labels = None;
    for line in got.lines() {
        let line = line.trim_start();
        if let Some(l) = line.strip_prefix("Labels:") {
            labels = Some(parse_label_set(l));
        } else if let Some(a) = line.strip_prefix("Annotations:") {
            if let Some(l) = labels.take() {
                out.push((l, parse_label_set(a)));
            }
        }
    }
    out
}

#[test]
fn alert_templates_expand_like_promtool() {
    use sextant_alerting::template::{QuerySample, Template, TemplateData, TemplateQuery};

    let promtool = Path::new("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "/usr/bin/promtool is missing: run scripts/install-test-deps.sh (Debian's prometheus package)"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("rules.yml"), TEMPLATED_RULES).expect("write rules");
    std::fs::write(tmp.path().join("test.yml"), TEMPLATED_TEST).expect("write test");
    let out = Command::new(promtool)
        .args(["test", "rules", "test.yml"])
        .current_dir(tmp.path())
        .output()
        .expect("run promtool");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let alerts = reported_alerts(&report);
    assert_eq!(alerts.len(), 2, "{report}");

    // The same data for our engine: the series at 2m (b:1 = 3, a:1 = 0.25).
    struct Fixed;
    impl TemplateQuery for Fixed {
        fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
            let s = |inst: &str, v: f64| QuerySample {
                labels: [("__name__", "metric"), ("instance", inst), ("job", "api")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                value: v,
            };
            match expr {
                "metric" => Ok(vec![s("b:1", 3.0), s("a:1", 0.25)]),
                "sum(metric)" => Ok(vec![QuerySample {
                    labels: Default::default(),
                    value: 3.25,
                }]),
                other => Err(format!("unexpected query {other}")),
            }
        }
    }
    let rules: serde_yaml::Value = serde_yaml::from_str(TEMPLATED_RULES).expect("rules yaml");
    let annotations = rules["groups"][0]["rules"][0]["annotations"]
        .as_mapping()
        .expect("annotations");
    for (labels, want) in alerts {
        let instance = labels.get("instance").cloned().unwrap_or_default();
        let series_value = if instance == "b:1" { 3.0 } else { 0.25 };
        let data = TemplateData {
            labels: labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            external_labels: [("cluster".to_string(), "eu-1".to_string())]
                .into_iter()
                .collect(),
            external_url: "http://prom.example.com:9090/some/prefix".into(),
            value: series_value * 1234.5678,
        };
        for (k, text) in annotations {
            let key = k.as_str().expect("annotation name");
            let text = text.as_str().expect("annotation text");
            let t = Template::parse_named("__alert_Templated", text).expect("template parses");
            let got = t.expand(&data, &Fixed);
            let want_text = want.get(key).cloned().unwrap_or_default();
            if key == "errors" {
                // Both fail; the messages differ in detail (Go names the argument types).
                assert!(
                    want_text.starts_with("<error expanding template"),
                    "{want_text}"
                );
                assert!(got.is_err(), "{got:?}");
                continue;
            }
            assert_eq!(
                got.as_deref(),
                Ok(want_text.as_str()),
                "annotation {key} for {instance}"
            );
        }
    }
}
