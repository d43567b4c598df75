//! Rule files against the shared conformance corpus: every case of
//! `../shared/conformance/rules/expectations.yaml` (ok/error, the error text, and the listed
//! checks), the rule-check fixtures of `promtool-tests/`, and `sextant check rules` run as a
//! binary (output and exit codes like promtool).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sextant_alerting::rules::{
    duplicate_rules, parse_rule_file_with, RuleFileOptions, RuleGroup, RuleKind,
};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance")
        .join(rel)
}

fn load(dir: &str, file: &str, opts: &RuleFileOptions) -> Result<Vec<RuleGroup>, Vec<String>> {
    let path = shared(dir).join(file);
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    parse_rule_file_with(file, &text, opts)
        .map_err(|errs| errs.iter().map(ToString::to_string).collect())
}

fn sum_expr() -> &'static str {
    "sum without(instance) (rate(errors_total[5m]))\n/\nsum without(instance) (rate(requests_total[5m]))\n"
}

/// The listed checks of `test.yaml`: two groups with interval 30s, mixed rule kinds.
fn check_test_yaml(groups: &[RuleGroup]) {
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert_eq!(
            g.interval,
            Some(Duration::from_secs(30)),
            "group {}",
            g.name
        );
        assert_eq!(g.rules.len(), 3);
        assert!(matches!(g.rules[0].kind, RuleKind::Alert(_)));
        assert_eq!(g.rules[1].kind, RuleKind::Record("new_metric".into()));
        assert_eq!(g.rules[0].for_, Duration::from_secs(300));
    }
    assert_eq!(groups[0].name, "my-group-name");
    assert_eq!(groups[1].name, "my-another-name");
    assert_eq!(
        groups[0].rules[1].labels.get("uvw").map(String::as_str),
        Some("xyz")
    );
    assert_eq!(groups[0].rules[0].line, 5);
}

/// The listed checks of `test_aliases.yaml`: anchors, aliases and merge keys resolved.
fn check_aliases(groups: &[RuleGroup]) {
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert_eq!(g.rules.len(), 4, "group {}", g.name);
        let r = &g.rules;
        assert_eq!(r[0].kind, RuleKind::Alert("HighAlert".into()));
        assert_eq!(
            r[0].labels.get("severity").map(String::as_str),
            Some("critical")
        );
        assert_eq!(
            r[0].annotations.get("description").map(String::as_str),
            Some("stuff's happening with {{ $.labels.service }}")
        );
        assert_eq!(r[1].kind, RuleKind::Record("new_metric".into()));
        assert_eq!(r[2].kind, RuleKind::Alert("HighAlert".into()));
        assert_eq!(r[3].kind, RuleKind::Alert("HighAlert2".into()));
        // The merged rule keeps everything else from the anchored one.
        assert_eq!(r[3].for_, Duration::from_secs(300));
        assert_eq!(
            r[3].labels.get("severity").map(String::as_str),
            Some("critical")
        );
        for rule in r {
            assert_eq!(rule.expr, sum_expr());
        }
    }
}

#[test]
fn conformance_rule_files_match_expectations() {
    let manifest: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(shared("rules/expectations.yaml")).expect("manifest"),
    )
    .expect("manifest parses");
    let cases = manifest["files"].as_sequence().expect("files list");
    assert!(cases.len() >= 16);
    for case in cases {
        let file = case["file"].as_str().expect("file");
        let opts = RuleFileOptions {
            legacy_names: case["name_validation"].as_str() == Some("legacy"),
            ..Default::default()
        };
        let got = load("rules", file, &opts);
        match case["expect"].as_str() {
            Some("ok") => {
                let groups = got.unwrap_or_else(|e| panic!("{file}: unexpected errors {e:?}"));
                assert!(!groups.is_empty(), "{file}: no groups");
                match file {
                    "test.yaml" => check_test_yaml(&groups),
                    "test_aliases.yaml" => check_aliases(&groups),
                    "utf-8_lname.good.yaml" => {
                        assert!(groups[0].rules[0].labels.contains_key("ins-tance"))
                    }
                    "utf-8_annotation.good.yaml" => {
                        assert!(groups[0].rules[0].annotations.contains_key("ins-tance"))
                    }
                    _ => {}
                }
            }
            Some("error") => {
                let errs = match got {
                    Ok(_) => panic!("{file}: expected an error"),
                    Err(e) => e,
                };
                let want = case["error_contains"].as_str().expect("error_contains");
                assert!(
                    errs[0].contains(want),
                    "{file}: first error {:?} lacks {want:?}",
                    errs[0]
                );
                // Every error is located: `<file>:<line>:<col>: `.
                for e in &errs {
                    let rest = e.strip_prefix(&format!("{file}:")).unwrap_or("");
                    let mut parts = rest.splitn(3, ':');
                    let line: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
                    let col: usize = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                    assert!(line > 0 && col > 0, "{file}: error without position: {e}");
                }
            }
            other => panic!("{file}: unknown expectation {other:?}"),
        }
    }
}

#[test]
fn error_positions_point_at_the_offending_node() {
    let opts = RuleFileOptions::default();
    let errs = load("rules", "bad_field.bad.yaml", &opts)
        .err()
        .unwrap_or_default();
    assert_eq!(
        errs,
        vec!["bad_field.bad.yaml:8:9: field annotation not found in type rulefmt.Rule".to_string()]
    );
    let errs = load("rules", "duplicate_grp.bad.yaml", &opts)
        .err()
        .unwrap_or_default();
    assert_eq!(
        errs,
        vec![
            "duplicate_grp.bad.yaml:3:11: groupname: \"yolo\" is repeated in the same file"
                .to_string()
        ]
    );
    let errs = load("rules", "invalid_label_name.bad.yaml", &opts)
        .err()
        .unwrap_or_default();
    assert_eq!(
        errs,
        vec!["invalid_label_name.bad.yaml:7:11: group \"yolo\", rule 1, \"hola\": invalid label name: __name__".to_string()]
    );
    let errs = load("rules", "bad_expr.bad.yaml", &opts)
        .err()
        .unwrap_or_default();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("bad_expr.bad.yaml:5:15: group \"yolo\", rule 1, \"yolo\": could not parse expression: 1:"),
        "{}",
        errs[0]
    );
}

#[test]
fn promtool_rule_check_fixtures() {
    let opts = RuleFileOptions::default();
    let rules = load("promtool-tests", "rules.yml", &opts).expect("rules.yml is valid");
    assert_eq!(rules.iter().map(|g| g.rules.len()).sum::<usize>(), 5);
    assert!(duplicate_rules(&rules).is_empty());

    let errs = load("promtool-tests", "rules-bad.yml", &opts)
        .err()
        .unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("undefined variable \"$label\""),
        "{}",
        errs[0]
    );

    let dups = load("promtool-tests", "rules_duplicates.yml", &opts).expect("parses");
    let d = duplicate_rules(&dups);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].metric, "job:test:count_over_time1m");
    assert!(d[0].labels.is_empty());

    let lint = load("promtool-tests", "prometheus-rules.lint.yml", &opts).expect("parses");
    assert_eq!(duplicate_rules(&lint).len(), 1);

    let features =
        load("promtool-tests", "features.yml", &opts).expect("experimental syntax parses");
    assert_eq!(features[0].rules.len(), 4);

    let empty = load("promtool-tests", "prometheus-config.rules.good.yml", &opts).expect("parses");
    assert_eq!(empty.len(), 1);
    assert!(empty[0].rules.is_empty());

    assert!(load("promtool-tests", "rules_extrafields.yml", &opts).is_err());
    let lenient = RuleFileOptions {
        ignore_unknown_fields: true,
        ..Default::default()
    };
    assert!(load("promtool-tests", "rules_extrafields.yml", &lenient).is_ok());
}

fn sextant(args: &[&str], files: &[PathBuf]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .args(files)
        .output()
        .expect("run sextant");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_rules_command_reports_like_promtool() {
    let good = shared("promtool-tests/rules.yml");
    let (code, out, err) = sextant(&["check", "rules"], std::slice::from_ref(&good));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("Checking {}\n  SUCCESS: 5 rules found\n\n", good.display())
    );

    let bad = shared("rules/record_and_for.bad.yaml");
    let (code, out, err) = sextant(&["check", "rules"], &[good.clone(), bad.clone()]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("Checking {}\n", bad.display())),
        "{out}"
    );
    assert_eq!(
        err,
        format!(
            "  FAILED:\n{}:6:14: group \"yolo\", rule 1, \"Hello\": invalid field 'for' in recording rule\n",
            bad.display()
        )
    );

    let lint = shared("promtool-tests/prometheus-rules.lint.yml");
    let (code, out, err) = sextant(&["check", "rules"], std::slice::from_ref(&lint));
    assert_eq!(code, 0);
    assert!(!out.contains("SUCCESS"), "{out}");
    assert_eq!(
        err,
        "  FAILED:\nlint error 1 duplicate rule(s) found.\nMetric: HighRequestLatency\nLabel(s):\n\tseverity: page\nMight cause inconsistency while recording expressions\n"
    );
    let (code, _, _) = sextant(
        &["check", "rules", "--lint-fatal"],
        std::slice::from_ref(&lint),
    );
    assert_eq!(code, 3);
    let (code, _, _) = sextant(&["check", "rules", "--lint=none", "--lint-fatal"], &[lint]);
    assert_eq!(code, 0);

    let extra = shared("promtool-tests/rules_extrafields.yml");
    let (code, _, _) = sextant(&["check", "rules"], std::slice::from_ref(&extra));
    assert_eq!(code, 1);
    let (code, _, _) = sextant(&["check", "rules", "--ignore-unknown-fields"], &[extra]);
    assert_eq!(code, 0);

    let missing = PathBuf::from("/nonexistent/rules.yml");
    let (code, _, err) = sextant(&["check", "rules"], &[missing]);
    assert_eq!(code, 1);
    assert!(err.contains("open /nonexistent/rules.yml"), "{err}");
}

/// Debian's promtool (2.42, legacy names only) and `sextant check rules --legacy-names` agree on
/// every fixture both understand: same exit code, same rule count on success.
#[test]
fn check_rules_agrees_with_promtool() {
    let promtool = Path::new("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "/usr/bin/promtool is missing: run scripts/install-test-deps.sh (Debian's prometheus package)"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared("rules"))
        .expect("rules dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()) != Some("expectations.yaml"))
        .collect();
    files.sort();
    for f in [
        "rules.yml",
        "rules-bad.yml",
        "rules_duplicates.yml",
        "prometheus-rules.lint.yml",
        "rules_extrafields.yml",
        "prometheus-config.rules.good.yml",
        "bad-rules-syntax.yml",
        "bad-rules-error.yml",
        "at-modifier.yml",
        "negative-offset.yml",
    ] {
        files.push(shared("promtool-tests").join(f));
    }
    let success_line = |s: &str| {
        s.lines()
            .find(|l| l.contains("SUCCESS"))
            .map(str::to_string)
    };
    for f in &files {
        let theirs = Command::new(promtool)
            .args(["check", "rules"])
            .arg(f)
            .output()
            .expect("run promtool");
        let (code, out, err) = sextant(
            &["check", "rules", "--legacy-names"],
            std::slice::from_ref(f),
        );
        let their_out = String::from_utf8_lossy(&theirs.stdout);
        assert_eq!(
            code,
            theirs.status.code().unwrap_or(-1),
            "{}: promtool said\n{their_out}{}\nsextant said\n{out}{err}",
            f.display(),
            String::from_utf8_lossy(&theirs.stderr)
        );
        assert_eq!(
            success_line(&out),
            success_line(&their_out),
            "{}",
            f.display()
        );
    }
}
