//! Unit tests of the promtool test runner's pieces: comparisons, times and report text.

use super::*;

#[test]
fn fuzzy_compare_allows_exactly_one_ulp() {
    let three = 3.0f64;
    let up = f64::from_bits(three.to_bits() + 1);
    let down = f64::from_bits(three.to_bits() - 1);
    let two_up = f64::from_bits(three.to_bits() + 2);
    assert!(!floats_equal(three, up, false));
    assert!(floats_equal(three, up, true));
    assert!(floats_equal(three, down, true));
    assert!(!floats_equal(three, two_up, true));
    assert!(floats_equal(f64::NAN, f64::NAN, false));
    assert_eq!(2.9999999999999996, down);
}

#[test]
fn start_timestamps_parse_as_rfc3339_or_unix_seconds() {
    assert_eq!(parse_start("2024-01-01T00:00:00Z"), Ok(1_704_067_200_000));
    assert_eq!(parse_start("1609459200"), Ok(1_609_459_200_000));
    assert_eq!(
        parse_start("2024-01-01T01:00:00.5+01:00"),
        Ok(1_704_067_200_500)
    );
    assert!(parse_start("yesterday").is_err());
}

#[test]
fn report_strings_match_promtool() {
    assert_eq!(go_float_upper_e(1.0), "1E+00");
    assert_eq!(go_float_upper_e(0.65), "6.5E-01");
    let a = vec![LabelsAndAnnotations {
        labels: Labels::from_pairs([("alertname", "X"), ("job", "a")]),
        annotations: Labels::empty(),
    }];
    assert_eq!(
        alerts_string(&a),
        "[\n0:\n  Labels:{alertname=\"X\", job=\"a\"}\n  Annotations:{}\n]"
    );
    assert_eq!(alerts_string(&[]), "[]");
}

#[test]
fn group_order_must_name_every_group() {
    let g = |n: &str| RuleGroup {
        name: n.into(),
        file: "f".into(),
        interval: None,
        limit: 0,
        query_offset: None,
        labels: BTreeMap::new(),
        rules: Vec::new(),
    };
    let ordered = order_groups(vec![g("a"), g("b")], &["b".into(), "a".into()]).unwrap_or_default();
    assert_eq!(
        ordered.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert!(order_groups(vec![g("a"), g("b")], &["b".into()]).is_err());
    assert!(order_groups(vec![g("a")], &["c".into()]).is_err());
}
