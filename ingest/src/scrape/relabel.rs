//! Relabelling with Prometheus semantics: `replace keep drop labelmap labeldrop labelkeep
//! hashmod lowercase uppercase keepequal dropequal`. Regexes are anchored at both ends
//! (`^(?s:…)$`); replacements expand `$1`, `${1}` and `$name` as Go's `Regexp.Expand` does.

use std::borrow::Cow;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sextant_storage::labels::is_valid_label_name;
use sextant_storage::SeriesLabels;

/// One relabel rule as written in the config file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Relabel {
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    modulus: u64,
    replacement: String,
    action: Action,
}

impl RelabelConfig {
    /// Validates the rule as Prometheus does and compiles its regex.
    pub fn compile(&self) -> Result<Relabel, String> {
        let action = match self
            .action
            .as_deref()
            .unwrap_or("replace")
            .to_ascii_lowercase()
            .as_str()
        {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            other => return Err(format!("unknown relabel action {other:?}")),
        };
        let name = format!("{action:?}").to_lowercase();
        let regex_text = self.regex.as_deref().unwrap_or("(.*)");
        let regex = Regex::new(&format!("^(?s:{regex_text})$"))
            .map_err(|e| format!("invalid regex {regex_text:?}: {e}"))?;
        let target = self.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target.is_empty() {
            return Err(format!(
                "relabel configuration for {name} action requires 'target_label' value"
            ));
        }
        if action == Action::Replace && !target.contains('$') && !is_valid_label_name(&target) {
            return Err(format!(
                "{target:?} is invalid 'target_label' for {name} action"
            ));
        }
        if matches!(
            action,
            Action::HashMod | Action::Lowercase | Action::Uppercase
        ) && !is_valid_label_name(&target)
        {
            return Err(format!(
                "{target:?} is invalid 'target_label' for {name} action"
            ));
        }
        if action == Action::HashMod && self.modulus.unwrap_or(0) == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && (self.regex.is_some() || self.modulus.is_some() || self.replacement.is_some())
        {
            return Err(format!(
                "{name} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || self.target_label.is_some()
                || self.modulus.is_some()
                || self.replacement.is_some())
        {
            return Err(format!(
                "{name} action requires only 'regex', and no other fields"
            ));
        }
        Ok(Relabel {
            source_labels: self.source_labels.clone(),
            separator: self.separator.clone().unwrap_or_else(|| ";".into()),
            target_label: target,
            regex,
            modulus: self.modulus.unwrap_or(0),
            replacement: self.replacement.clone().unwrap_or_else(|| "$1".into()),
            action,
        })
    }
}

/// A label set being built: sorted by name, unique names, no empty values. Strings stay
/// borrowed (from an exposition or a config) until a rule changes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSet<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> LabelSet<'a> {
    pub fn new() -> Self {
        LabelSet { pairs: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        LabelSet {
            pairs: Vec::with_capacity(n),
        }
    }

    pub fn clear(&mut self) {
        self.pairs.clear();
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(n, _)| n.as_ref().cmp(name))
    }

    /// The value of `name`, or `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        match self.position(name) {
            Ok(i) => &self.pairs[i].1,
            Err(_) => "",
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name`; an empty value removes it.
    pub fn set(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        let name = name.into();
        let value = value.into();
        match self.position(&name) {
            Ok(i) if value.is_empty() => {
                self.pairs.remove(i);
            }
            Ok(i) => self.pairs[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.pairs.insert(i, (name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.position(name) {
            self.pairs.remove(i);
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.pairs.retain(|(n, v)| keep(n, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    pub fn to_owned_set(&self) -> LabelSet<'static> {
        LabelSet {
            pairs: self
                .pairs
                .iter()
                .map(|(n, v)| (Cow::Owned(n.to_string()), Cow::Owned(v.to_string())))
                .collect(),
        }
    }
}

impl SeriesLabels for LabelSet<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
    }
}

/// Applies `rules` in order; `false` when a rule dropped the set.
pub fn process(labels: &mut LabelSet<'_>, rules: &[Relabel]) -> bool {
    rules.iter().all(|r| r.apply(labels))
}

impl Relabel {
    fn source_value(&self, labels: &LabelSet<'_>) -> String {
        let mut out = String::new();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.separator);
            }
            out.push_str(labels.get(name));
        }
        out
    }

    /// Applies this rule; `false` means the label set is dropped.
    pub fn apply(&self, labels: &mut LabelSet<'_>) -> bool {
        match self.action {
            Action::Keep => self.regex.is_match(&self.source_value(labels)),
            Action::Drop => !self.regex.is_match(&self.source_value(labels)),
            Action::KeepEqual => labels.get(&self.target_label) == self.source_value(labels),
            Action::DropEqual => labels.get(&self.target_label) != self.source_value(labels),
            Action::Replace => {
                let value = self.source_value(labels);
                let Some(caps) = self.regex.captures(&value) else {
                    return true;
                };
                let mut target = String::new();
                caps.expand(&self.target_label, &mut target);
                if !is_valid_label_name(&target) {
                    return true;
                }
                let mut res = String::new();
                caps.expand(&self.replacement, &mut res);
                if res.is_empty() {
                    labels.remove(&target);
                } else {
                    labels.set(target, res);
                }
                true
            }
            Action::Lowercase => {
                let v = self.source_value(labels).to_lowercase();
                labels.set(self.target_label.clone(), v);
                true
            }
            Action::Uppercase => {
                let v = self.source_value(labels).to_uppercase();
                labels.set(self.target_label.clone(), v);
                true
            }
            Action::HashMod => {
                let v = hashmod(&self.source_value(labels), self.modulus);
                labels.set(self.target_label.clone(), v.to_string());
                true
            }
            Action::LabelMap => {
                let mut add: Vec<(String, String)> = Vec::new();
                for (name, value) in labels.iter() {
                    if let Some(caps) = self.regex.captures(name) {
                        let mut res = String::new();
                        caps.expand(&self.replacement, &mut res);
                        add.push((res, value.to_string()));
                    }
                }
                for (n, v) in add {
                    labels.set(n, v);
                }
                true
            }
            Action::LabelDrop => {
                labels.retain(|n, _| !self.regex.is_match(n));
                true
            }
            Action::LabelKeep => {
                labels.retain(|n, _| self.regex.is_match(n));
                true
            }
        }
    }
}

/// Prometheus' `hashmod`: the MD5 of the value, its last 8 bytes as a big-endian integer,
/// modulo `modulus`.
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    let digest = md5::compute(value.as_bytes()).0;
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(tail) % modulus.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Relabel {
        serde_yaml::from_str::<RelabelConfig>(yaml)
            .unwrap()
            .compile()
            .unwrap()
    }

    fn set(pairs: &[(&'static str, &'static str)]) -> LabelSet<'static> {
        let mut s = LabelSet::new();
        for (n, v) in pairs {
            s.set(*n, *v);
        }
        s
    }

    fn pairs(s: &LabelSet<'_>) -> Vec<(String, String)> {
        s.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus' relabel tests: "baz" modulo 1000 is 976.
        assert_eq!(hashmod("baz", 1000), 976);
        let mut s = set(&[("a", "foo"), ("c", "baz")]);
        assert!(
            rule("{source_labels: [c], target_label: d, modulus: 1000, action: hashmod}")
                .apply(&mut s)
        );
        assert_eq!(s.get("d"), "976");
    }

    #[test]
    fn replace_is_anchored_and_expands_groups() {
        let r = rule("{source_labels: [a, b], regex: 'f(o+);(.*)', target_label: c, replacement: '${2}-$1x$1'}");
        let mut s = set(&[("a", "foo"), ("b", "bar")]);
        assert!(r.apply(&mut s));
        // `$1x` is the (empty) group named "1x", as in Go.
        assert_eq!(s.get("c"), "bar-oo");
        let mut s = set(&[("a", "xfoo"), ("b", "bar")]);
        r.apply(&mut s);
        assert!(!s.has("c"), "regex must be anchored");
        // An empty replacement deletes the target.
        let mut s = set(&[("a", "1"), ("c", "x")]);
        rule("{source_labels: [a], target_label: c, replacement: ''}").apply(&mut s);
        assert!(!s.has("c"));
        // The target label may use captures.
        let mut s = set(&[("a", "name=val")]);
        rule("{source_labels: [a], regex: '(.*)=(.*)', target_label: 'l_$1', replacement: '$2'}")
            .apply(&mut s);
        assert_eq!(s.get("l_name"), "val");
    }

    #[test]
    fn keep_drop_equal_and_case() {
        let s0 = set(&[("a", "Foo"), ("b", "Foo"), ("c", "bar")]);
        let mut s = s0.clone();
        assert!(!rule("{source_labels: [a], regex: 'foo', action: keep}").apply(&mut s));
        assert!(rule("{source_labels: [a], regex: 'Foo', action: keep}").apply(&mut s));
        assert!(!rule("{source_labels: [c], regex: 'b.*', action: drop}").apply(&mut s));
        assert!(rule("{source_labels: [a], target_label: b, action: keepequal}").apply(&mut s));
        assert!(!rule("{source_labels: [a], target_label: b, action: dropequal}").apply(&mut s));
        assert!(!rule("{source_labels: [a], target_label: c, action: keepequal}").apply(&mut s));
        rule("{source_labels: [a], target_label: lo, action: lowercase}").apply(&mut s);
        rule("{source_labels: [c], target_label: up, action: uppercase}").apply(&mut s);
        assert_eq!((s.get("lo"), s.get("up")), ("foo", "BAR"));
    }

    #[test]
    fn label_name_actions() {
        let mut s = set(&[("__meta_x", "1"), ("__meta_y", "2"), ("z", "3")]);
        rule("{regex: '__meta_(.*)', action: labelmap}").apply(&mut s);
        assert_eq!(s.get("x"), "1");
        assert_eq!(s.get("y"), "2");
        rule("{regex: '__meta_.*', action: labeldrop}").apply(&mut s);
        assert_eq!(
            pairs(&s),
            vec![
                ("x".to_string(), "1".to_string()),
                ("y".into(), "2".into()),
                ("z".into(), "3".into())
            ]
        );
        rule("{regex: 'x|z', action: labelkeep}").apply(&mut s);
        assert_eq!(s.len(), 2);
        assert!(!s.has("y"));
    }

    #[test]
    fn invalid_rules() {
        let bad = |y: &str| {
            serde_yaml::from_str::<RelabelConfig>(y)
                .unwrap()
                .compile()
                .is_err()
        };
        assert!(bad("{action: hashmod, target_label: x}"));
        assert!(bad("{action: replace}"));
        assert!(bad("{action: labeldrop, source_labels: [a]}"));
        assert!(bad(
            "{action: keepequal, source_labels: [a], target_label: b, regex: x}"
        ));
        assert!(bad("{action: nope}"));
        assert!(bad("{regex: '('}"));
    }
}
