//! Unit tests of rule-file parsing: durations, positions and messages.

use super::*;

#[test]
fn durations_follow_prometheus_syntax() {
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(
        parse_duration("1y2w"),
        Ok(Duration::from_secs(379 * 86_400))
    );
    assert!(parse_duration("5m1h").is_err());
    assert!(parse_duration("1.5h").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("10").is_err());
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn errors_carry_file_line_and_column() {
    let text = "groups:\n  - name: g\n    rules:\n      - record: ok\n        expr: up\n      - alert: A\n        expr: sum(\n";
    let errs = parse_rule_file("r.yml", text).err().unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = errs[0].to_string();
    assert!(
        e.starts_with("r.yml:7:15: group \"g\", rule 2, \"A\": could not parse expression: "),
        "{e}"
    );
}

#[test]
fn unknown_fields_fail_unless_ignored() {
    let text = "groups:\n  - name: g\n    extra: 1\n    rules: []\n";
    let errs = parse_rule_file("r.yml", text).err().unwrap_or_default();
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["r.yml:3:5: field extra not found in type rulefmt.RuleGroup".to_string()]
    );
    let opts = RuleFileOptions {
        ignore_unknown_fields: true,
        ..Default::default()
    };
    let groups = parse_rule_file_with("r.yml", text, &opts).unwrap_or_default();
    assert_eq!(groups.len(), 1);
}

#[test]
fn group_fields_are_decoded() {
    let text = "groups:\n- name: g\n  interval: 1m\n  query_offset: 30s\n  limit: 10\n  labels: {team: a}\n  rules:\n  - alert: X\n    expr: up == 0\n    for: 5m\n    keep_firing_for: 1m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.instance }} down'}\n";
    let groups = parse_rule_file("f.yml", text).unwrap_or_default();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(g.file, "f.yml");
    assert_eq!(g.interval, Some(Duration::from_secs(60)));
    assert_eq!(g.query_offset, Some(Duration::from_secs(30)));
    assert_eq!(g.limit, 10);
    assert_eq!(g.labels.get("team").map(String::as_str), Some("a"));
    let r = &g.rules[0];
    assert_eq!(r.kind, RuleKind::Alert("X".into()));
    assert_eq!(r.for_, Duration::from_secs(300));
    assert_eq!(r.keep_firing_for, Duration::from_secs(60));
    assert_eq!(r.line, 8);
    assert_eq!(
        r.annotations.get("summary").map(String::as_str),
        Some("{{ $labels.instance }} down")
    );
}

#[test]
fn bad_templates_and_durations_are_reported() {
    let text = "groups:\n- name: g\n  interval: 5x\n  rules:\n  - alert: X\n    expr: up\n    annotations:\n      a: '{{ $label.x }}'\n";
    let errs: Vec<String> = parse_rule_file("f.yml", text)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0], "f.yml:3:13: not a valid duration string: \"5x\"");
    assert_eq!(
        errs[1],
        "f.yml:8:7: group \"g\", rule 1, \"X\": annotation \"a\": error parsing template __alert_X: template: __alert_X:1: undefined variable \"$label\""
    );
}
