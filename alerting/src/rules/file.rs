//! Prometheus rule files (`model/rulefmt` semantics): strict YAML decoding (unknown fields are
//! errors unless ignored), anchors and merge keys, and validation of groups and rules, with
//! every error located as `<file>:<line>:<col>: <message>`.

mod yaml;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use self::yaml::{Node, Pos};
use super::model::{RuleDef, RuleGroup, RuleKind};
use crate::template::Template;

/// One problem found in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFileError {
    pub file: String,
    /// 1-based line of the offending node; 0 when unknown (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for RuleFileError {}

/// How strictly rule files are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleFileOptions {
    /// Only `[a-zA-Z_][a-zA-Z0-9_]*` label and annotation names (and legacy metric names for
    /// `record:`); the default accepts any UTF-8, as Prometheus 3 does.
    pub legacy_names: bool,
    /// Accept (and ignore) unknown keys, as promtool's `--ignore-unknown-fields`.
    pub ignore_unknown_fields: bool,
}

/// Reads, parses and validates rule files with the default options. Errors of all files are
/// collected.
pub fn load_rule_files(paths: &[PathBuf]) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    load_rule_files_with(paths, &RuleFileOptions::default())
}

/// [`load_rule_files`] with explicit options.
pub fn load_rule_files_with(
    paths: &[PathBuf],
    opts: &RuleFileOptions,
) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let name = p.display().to_string();
        match std::fs::read_to_string(p) {
            Ok(text) => match parse_rule_file_with(&name, &text, opts) {
                Ok(g) => groups.extend(g),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(RuleFileError {
                file: name.clone(),
                line: 0,
                col: 0,
                message: format!("open {name}: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// Parses and validates one rule file's text with the default options. `path` names the
/// file in errors and in [`RuleGroup::file`].
pub fn parse_rule_file(path: &str, text: &str) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    parse_rule_file_with(path, text, &RuleFileOptions::default())
}

/// [`parse_rule_file`] with explicit options.
pub fn parse_rule_file_with(
    path: &str,
    text: &str,
    opts: &RuleFileOptions,
) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    let mut cx = Cx {
        file: path,
        opts,
        errors: Vec::new(),
    };
    let doc = match yaml::parse(text) {
        Ok(d) => d,
        Err(e) => {
            return Err(vec![RuleFileError {
                file: path.to_string(),
                line: e.pos.line,
                col: e.pos.col,
                message: e.message,
            }])
        }
    };
    let groups = match doc {
        None => Vec::new(),
        Some(n) if n.is_null() => Vec::new(),
        Some(n) => cx.top(&n),
    };
    if cx.errors.is_empty() {
        Ok(groups)
    } else {
        Err(cx.errors)
    }
}

/// Parses a Prometheus duration (`1h30m`, `5m`, `1d`, `1y`, `250ms`, `0`): units y, w, d, h,
/// m, s, ms, each at most once and in that order.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if idx < next_unit {
            return Err(bad());
        }
        next_unit = idx + 1;
        let ms = n
            .checked_mul(UNITS[idx].1)
            .ok_or_else(|| "duration out of range".to_string())?;
        total = total
            .checked_add(ms)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration as Prometheus does (`1h30m`, `5m`, `1d`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (u, size) in [
        ("y", 365 * 86_400_000u64),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{u}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Whether `s` is a legacy label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_legacy_label_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && it.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether `s` is a legacy metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_legacy_metric_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c == '_' || c == ':' || c.is_ascii_alphabetic())
        && it.all(|c| c == '_' || c == ':' || c.is_ascii_alphanumeric())
}

/// A rule output (alert or record name plus its `labels:`) defined more than once across the
/// given groups: promtool's `duplicate-rules` lint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateRule {
    /// The alert or recording rule name.
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    /// How many rules share it (at least 2).
    pub count: usize,
}

/// Finds rules that would produce the same series (same name and `labels:`), in name order.
pub fn duplicate_rules(groups: &[RuleGroup]) -> Vec<DuplicateRule> {
    let mut seen: BTreeMap<(String, BTreeMap<String, String>), usize> = BTreeMap::new();
    for g in groups {
        for r in &g.rules {
            let name = match &r.kind {
                RuleKind::Record(n) | RuleKind::Alert(n) => n.clone(),
            };
            *seen.entry((name, r.labels.clone())).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((metric, labels), count)| DuplicateRule {
            metric,
            labels,
            count,
        })
        .collect()
}

struct Cx<'a> {
    file: &'a str,
    opts: &'a RuleFileOptions,
    errors: Vec<RuleFileError>,
}

/// Fields read from one rule mapping, with the nodes for error positions.
#[derive(Default)]
struct RawRule<'n> {
    record: Option<(String, &'n Node)>,
    alert: Option<(String, &'n Node)>,
    expr: Option<(String, &'n Node)>,
    for_: Option<(Duration, &'n Node)>,
    keep_firing_for: Option<(Duration, &'n Node)>,
    labels: Vec<(String, String, &'n Node)>,
    annotations: Vec<(String, String, &'n Node)>,
}

impl Cx<'_> {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(RuleFileError {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    fn unknown(&mut self, key: &Node, name: &str, ty: &str) {
        if !self.opts.ignore_unknown_fields {
            self.err(key.pos(), format!("field {name} not found in type {ty}"));
        }
    }

    fn map<'n>(&mut self, n: &'n Node, ty: &str) -> Option<Vec<(String, &'n Node, &'n Node)>> {
        match n {
            Node::Map { entries, .. } => Some(
                entries
                    .iter()
                    .map(|(k, v)| (scalar_text(k), k, v))
                    .collect(),
            ),
            other => {
                self.err(
                    other.pos(),
                    format!("cannot unmarshal {} into {ty}", describe(other)),
                );
                None
            }
        }
    }

    fn string(&mut self, n: &Node, ty: &str) -> Option<String> {
        match n {
            Node::Scalar { .. } if n.is_null() => Some(String::new()),
            Node::Scalar { value, .. } => Some(value.clone()),
            other => {
                self.err(
                    other.pos(),
                    format!("cannot unmarshal {} into {ty}", describe(other)),
                );
                None
            }
        }
    }

    fn duration(&mut self, n: &Node) -> Option<Duration> {
        let s = self.string(n, "model.Duration")?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(n.pos(), e);
                None
            }
        }
    }

    fn string_map<'n>(&mut self, n: &'n Node) -> Vec<(String, String, &'n Node)> {
        if n.is_null() {
            return Vec::new();
        }
        let Some(entries) = self.map(n, "map[string]string") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, knode, v) in entries {
            if let Some(val) = self.string(v, "string") {
                out.push((k, val, knode));
            }
        }
        out
    }

    fn top(&mut self, doc: &Node) -> Vec<RuleGroup> {
        let Some(entries) = self.map(doc, "rulefmt.RuleGroups") else {
            return Vec::new();
        };
        let mut groups = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (k, knode, v) in entries {
            if k != "groups" {
                self.unknown(knode, &k, "rulefmt.RuleGroups");
                continue;
            }
            if v.is_null() {
                continue;
            }
            let Node::Seq { items, .. } = v else {
                self.err(
                    v.pos(),
                    format!("cannot unmarshal {} into []rulefmt.RuleGroup", describe(v)),
                );
                continue;
            };
            for g in items {
                if let Some(group) = self.group(g, &mut seen) {
                    groups.push(group);
                }
            }
        }
        groups
    }

    fn group(&mut self, g: &Node, seen: &mut HashSet<String>) -> Option<RuleGroup> {
        let entries = self.map(g, "rulefmt.RuleGroup")?;
        let before = self.errors.len();
        let mut group = RuleGroup {
            name: String::new(),
            file: self.file.to_string(),
            interval: None,
            limit: 0,
            query_offset: None,
            labels: BTreeMap::new(),
            rules: Vec::new(),
        };
        let mut name_node: &Node = g;
        let mut rule_nodes: &[Node] = &[];
        let mut label_entries = Vec::new();
        for (k, knode, v) in entries {
            match k.as_str() {
                "name" => {
                    group.name = self.string(v, "string").unwrap_or_default();
                    name_node = v;
                }
                "interval" => group.interval = self.duration(v),
                "query_offset" => group.query_offset = self.duration(v),
                "limit" => {
                    let s = self.string(v, "int").unwrap_or_default();
                    match s.parse::<usize>() {
                        Ok(n) => group.limit = n,
                        Err(_) if s.is_empty() => {}
                        Err(_) => self.err(
                            v.pos(),
                            format!("cannot unmarshal {} `{s}` into int", v.kind()),
                        ),
                    }
                }
                "labels" => label_entries = self.string_map(v),
                "rules" => match v {
                    Node::Seq { items, .. } => rule_nodes = items,
                    n if n.is_null() => {}
                    other => self.err(
                        other.pos(),
                        format!("cannot unmarshal {} into []rulefmt.Rule", describe(other)),
                    ),
                },
                _ => self.unknown(knode, &k, "rulefmt.RuleGroup"),
            }
        }
        if group.name.is_empty() {
            self.err(name_node.pos(), "Groupname must not be empty");
        } else if !seen.insert(group.name.clone()) {
            self.err(
                name_node.pos(),
                format!("groupname: {:?} is repeated in the same file", group.name),
            );
        }
        for (k, v, knode) in label_entries {
            if !self.label_name_ok(&k) {
                self.err(knode.pos(), format!("invalid label name: {k}"));
            }
            group.labels.insert(k, v);
        }
        for (i, r) in rule_nodes.iter().enumerate() {
            if let Some(rule) = self.rule(&group.name, i + 1, r) {
                group.rules.push(rule);
            }
        }
        (self.errors.len() == before).then_some(group)
    }

    fn label_name_ok(&self, k: &str) -> bool {
        if k == "__name__" || k.is_empty() {
            return false;
        }
        !self.opts.legacy_names || is_legacy_label_name(k)
    }

    fn rule(&mut self, group: &str, idx: usize, r: &Node) -> Option<RuleDef> {
        let entries = self.map(r, "rulefmt.Rule")?;
        let mut raw = RawRule::default();
        for (k, knode, v) in entries {
            match k.as_str() {
                "record" => raw.record = self.string(v, "string").map(|s| (s, v)),
                "alert" => raw.alert = self.string(v, "string").map(|s| (s, v)),
                "expr" => raw.expr = self.string(v, "string").map(|s| (s, v)),
                "for" => raw.for_ = self.duration(v).map(|d| (d, v)),
                "keep_firing_for" => raw.keep_firing_for = self.duration(v).map(|d| (d, v)),
                "labels" => raw.labels = self.string_map(v),
                "annotations" => raw.annotations = self.string_map(v),
                _ => self.unknown(knode, &k, "rulefmt.Rule"),
            }
        }
        let record = raw.record.as_ref().filter(|(s, _)| !s.is_empty());
        let alert = raw.alert.as_ref().filter(|(s, _)| !s.is_empty());
        let rule_name = record.or(alert).map(|(s, _)| s.clone()).unwrap_or_default();
        let mut problems: Vec<(Pos, String)> = Vec::new();
        match (record, alert) {
            (Some((_, rn)), Some((_, an))) => {
                let _ = an;
                problems.push((
                    rn.pos(),
                    "only one of 'record' and 'alert' must be set".into(),
                ));
            }
            (None, None) => {
                problems.push((r.pos(), "one of 'record' or 'alert' must be set".into()));
            }
            _ => {}
        }
        match &raw.expr {
            Some((e, en)) if !e.is_empty() => {
                if let Err(pe) = sextant_query::promql::parse(e) {
                    problems.push((en.pos(), format!("could not parse expression: {pe}")));
                }
            }
            other => {
                let pos = other.as_ref().map(|(_, n)| n.pos()).unwrap_or(r.pos());
                problems.push((pos, "field 'expr' must be set in rule".into()));
            }
        }
        if let Some((name, rn)) = record {
            if let Some((d, n)) = &raw.for_ {
                if !d.is_zero() {
                    problems.push((n.pos(), "invalid field 'for' in recording rule".into()));
                }
            }
            if let Some((d, n)) = &raw.keep_firing_for {
                if !d.is_zero() {
                    problems.push((
                        n.pos(),
                        "invalid field 'keep_firing_for' in recording rule".into(),
                    ));
                }
            }
            if let Some((_, _, n)) = raw.annotations.first() {
                problems.push((
                    n.pos(),
                    "invalid field 'annotations' in recording rule".into(),
                ));
            }
            let valid = if self.opts.legacy_names {
                is_legacy_metric_name(name)
            } else {
                !name.is_empty()
            };
            if !valid {
                problems.push((rn.pos(), format!("invalid recording rule name: {name}")));
            }
            if name.contains('{') && name.contains('}') {
                problems.push((
                    rn.pos(),
                    format!(
                        "braces present in the recording rule name; should it be in expr?: {name}"
                    ),
                ));
            }
        }
        for (k, _, n) in &raw.labels {
            if !self.label_name_ok(k) {
                problems.push((n.pos(), format!("invalid label name: {k}")));
            }
        }
        for (k, _, n) in &raw.annotations {
            let ok = !k.is_empty() && (!self.opts.legacy_names || is_legacy_label_name(k));
            if !ok {
                problems.push((n.pos(), format!("invalid annotation name: {k}")));
            }
        }
        if let Some((alert_name, _)) = alert {
            let tname = format!("__alert_{alert_name}");
            for (what, list) in [("label", &raw.labels), ("annotation", &raw.annotations)] {
                for (k, v, n) in list.iter() {
                    if let Err(e) = Template::parse_named(&tname, v) {
                        problems.push((
                            n.pos(),
                            format!("{what} {k:?}: error parsing template {tname}: {e}"),
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            for (pos, msg) in problems {
                self.err(
                    pos,
                    format!("group {group:?}, rule {idx}, {rule_name:?}: {msg}"),
                );
            }
            return None;
        }
        let kind = match (record, alert) {
            (Some((s, _)), _) => RuleKind::Record(s.clone()),
            (_, Some((s, _))) => RuleKind::Alert(s.clone()),
            _ => return None,
        };
        Some(RuleDef {
            kind,
            expr: raw.expr.map(|(e, _)| e).unwrap_or_default(),
            for_: raw.for_.map(|(d, _)| d).unwrap_or_default(),
            keep_firing_for: raw.keep_firing_for.map(|(d, _)| d).unwrap_or_default(),
            labels: raw.labels.into_iter().map(|(k, v, _)| (k, v)).collect(),
            annotations: raw
                .annotations
                .into_iter()
                .map(|(k, v, _)| (k, v))
                .collect(),
            line: r.pos().line,
        })
    }
}

fn scalar_text(n: &Node) -> String {
    match n {
        Node::Scalar { value, .. } => value.clone(),
        _ => String::new(),
    }
}

fn describe(n: &Node) -> String {
    match n {
        Node::Scalar { value, .. } => format!("{} `{value}`", n.kind()),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests;
