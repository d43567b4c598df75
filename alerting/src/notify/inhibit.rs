//! Inhibition rules: a firing alert matching a rule's source matchers mutes alerts matching its
//! target matchers when the `equal` labels have the same values on both (a label missing on
//! both counts as equal). An alert never inhibits itself.

use std::collections::BTreeMap;

use super::config::InhibitRuleConfig;
use super::matchers::Matchers;

#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Matchers,
    pub target: Matchers,
    pub equal: Vec<String>,
}

impl InhibitRule {
    pub fn compile(cfg: &InhibitRuleConfig) -> Result<InhibitRule, String> {
        Ok(InhibitRule {
            source: Matchers::from_config(
                &cfg.source_matchers,
                &cfg.source_match,
                &cfg.source_match_re,
            )
            .map_err(|e| format!("inhibit_rules source: {e}"))?,
            target: Matchers::from_config(
                &cfg.target_matchers,
                &cfg.target_match,
                &cfg.target_match_re,
            )
            .map_err(|e| format!("inhibit_rules target: {e}"))?,
            equal: cfg.equal.clone(),
        })
    }
}

/// The fingerprint of a firing alert that inhibits `labels` (fingerprint `fp`), if any.
/// `firing` lists the currently firing alerts as (fingerprint, labels).
pub fn inhibited_by<'a>(
    rules: &[InhibitRule],
    labels: &BTreeMap<String, String>,
    fp: u64,
    firing: impl Iterator<Item = (u64, &'a BTreeMap<String, String>)> + Clone,
) -> Option<u64> {
    for rule in rules {
        if !rule.target.matches(labels) {
            continue;
        }
        for (src_fp, src) in firing.clone() {
            if src_fp == fp || !rule.source.matches(src) {
                continue;
            }
            let equal = rule.equal.iter().all(|n| src.get(n) == labels.get(n));
            if equal {
                return Some(src_fp);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn critical_inhibits_warning_with_equal_labels() {
        let cfg: InhibitRuleConfig = serde_yaml::from_str(
            "source_matchers: [severity=\"critical\"]\ntarget_matchers: [severity=\"warning\"]\nequal: [alertname, cluster]\n",
        )
        .unwrap();
        let rules = vec![InhibitRule::compile(&cfg).unwrap()];
        let crit = l(&[
            ("alertname", "A"),
            ("cluster", "c1"),
            ("severity", "critical"),
        ]);
        let firing = [(1u64, &crit)];
        let warn_same = l(&[
            ("alertname", "A"),
            ("cluster", "c1"),
            ("severity", "warning"),
        ]);
        let warn_other = l(&[
            ("alertname", "A"),
            ("cluster", "c2"),
            ("severity", "warning"),
        ]);
        let info = l(&[("alertname", "A"), ("cluster", "c1"), ("severity", "info")]);
        assert_eq!(
            inhibited_by(&rules, &warn_same, 2, firing.iter().map(|(f, x)| (*f, *x))),
            Some(1)
        );
        assert_eq!(
            inhibited_by(&rules, &warn_other, 3, firing.iter().map(|(f, x)| (*f, *x))),
            None
        );
        assert_eq!(
            inhibited_by(&rules, &info, 4, firing.iter().map(|(f, x)| (*f, *x))),
            None
        );
        // Missing on both sides counts as equal.
        let no_cluster_src = l(&[("alertname", "A"), ("severity", "critical")]);
        let no_cluster_tgt = l(&[("alertname", "A"), ("severity", "warning")]);
        let f2 = [(5u64, &no_cluster_src)];
        assert_eq!(
            inhibited_by(&rules, &no_cluster_tgt, 6, f2.iter().map(|(f, x)| (*f, *x))),
            Some(5)
        );
    }

    #[test]
    fn legacy_match_and_no_self_inhibition() {
        let cfg: InhibitRuleConfig = serde_yaml::from_str(
            "source_match: {alertname: Down}\ntarget_match_re: {alertname: '.*'}\nequal: [instance]\n",
        )
        .unwrap();
        let rules = vec![InhibitRule::compile(&cfg).unwrap()];
        let down = l(&[("alertname", "Down"), ("instance", "x")]);
        let f = [(1u64, &down)];
        assert_eq!(
            inhibited_by(&rules, &down, 1, f.iter().map(|(a, b)| (*a, *b))),
            None
        );
        let other = l(&[("alertname", "Slow"), ("instance", "x")]);
        assert_eq!(
            inhibited_by(&rules, &other, 2, f.iter().map(|(a, b)| (*a, *b))),
            Some(1)
        );
    }
}
