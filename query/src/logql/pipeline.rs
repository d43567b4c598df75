//! Running a log pipeline over one entry: line filters, parsers, label filters, formatting,
//! `drop`/`keep`. Labels are tracked with their category (stream, structured metadata,
//! parsed) as Loki does, so results can be grouped by all labels or split per category.

use sextant_storage::{Label, Labels};

use super::ast::*;
use super::parsers;
use super::template::TemplateData;

pub(crate) const ERROR_LABEL: &str = "__error__";
pub(crate) const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// Where a label came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Stream,
    Metadata,
    Parsed,
}

/// The labels of one entry while the pipeline runs: sorted by name, names unique.
#[derive(Clone, Debug, Default)]
pub struct LabelState {
    labels: Vec<(String, String, Category)>,
}

impl LabelState {
    pub fn new(stream: &Labels, metadata: &[(String, String)]) -> LabelState {
        let mut s = LabelState {
            labels: stream
                .iter()
                .map(|l| (l.name.clone(), l.value.clone(), Category::Stream))
                .collect(),
        };
        for (k, v) in metadata {
            s.set(k, v.clone(), Category::Metadata);
        }
        s
    }

    fn pos(&self, name: &str) -> Result<usize, usize> {
        self.labels
            .binary_search_by(|(n, _, _)| n.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pos(name).ok().map(|i| self.labels[i].1.as_str())
    }

    pub fn set(&mut self, name: &str, value: String, cat: Category) {
        match self.pos(name) {
            Ok(i) => {
                self.labels[i].1 = value;
                self.labels[i].2 = cat;
            }
            Err(i) => self.labels.insert(i, (name.to_string(), value, cat)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.pos(name) {
            self.labels.remove(i);
        }
    }

    pub fn has_error(&self) -> bool {
        self.get(ERROR_LABEL).is_some()
    }

    pub fn set_error(&mut self, kind: &str, details: String) {
        self.set(ERROR_LABEL, kind.to_string(), Category::Parsed);
        if !details.is_empty() {
            self.set(ERROR_DETAILS_LABEL, details, Category::Parsed);
        }
    }

    /// All labels (empty values dropped).
    pub fn all(&self) -> Labels {
        self.collect(|_| true)
    }

    pub fn category(&self, cat: Category) -> Labels {
        self.collect(|c| c == cat)
    }

    pub fn pairs(&self, cat: Category) -> Vec<(String, String)> {
        self.labels
            .iter()
            .filter(|(_, v, c)| *c == cat && !v.is_empty())
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect()
    }

    fn collect(&self, keep: impl Fn(Category) -> bool) -> Labels {
        Labels::from_sorted(
            self.labels
                .iter()
                .filter(|(_, v, c)| keep(*c) && !v.is_empty())
                .map(|(n, v, _)| Label::new(n.clone(), v.clone()))
                .collect(),
        )
    }

    fn retain(&mut self, keep: impl Fn(&str, &str) -> bool) {
        self.labels.retain(|(n, v, _)| keep(n, v));
    }
}

/// The result of running a pipeline on a kept entry.
pub struct Processed {
    pub line: String,
    pub labels: LabelState,
}

/// Line filter semantics (`or` alternatives: any for positive, none for negated filters).
pub(crate) fn line_filter_matches(f: &LineFilter, line: &str) -> bool {
    if let Some(ips) = &f.ips {
        let hit = ips.iter().any(|p| p.matches_in(line));
        return hit == (f.op == LineFilterOp::Contains);
    }
    match f.op {
        LineFilterOp::Contains => f.values.iter().any(|v| line.contains(v.as_str())),
        LineFilterOp::NotContains => !f.values.iter().any(|v| line.contains(v.as_str())),
        LineFilterOp::Match => f.regexes.iter().any(|r| r.is_match(line)),
        LineFilterOp::NotMatch => !f.regexes.iter().any(|r| r.is_match(line)),
        LineFilterOp::PatternMatch => f.patterns.iter().any(|p| p.matches(line).is_some()),
        LineFilterOp::PatternNotMatch => !f.patterns.iter().any(|p| p.matches(line).is_some()),
    }
}

fn convert_number(kind: NumKind, v: &str) -> Result<f64, String> {
    let v = v.trim();
    match kind {
        NumKind::Number => v
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {v:?}: invalid syntax")),
        NumKind::Duration => super::parser::parse_duration_ns(v)
            .map(|ns| ns as f64 / 1e9)
            .ok_or_else(|| format!("time: invalid duration {v:?}")),
        NumKind::Bytes => {
            super::parser::parse_bytes(v).ok_or_else(|| format!("invalid bytes value {v:?}"))
        }
    }
}

/// Applies a label filter as Loki does: a numeric filter drops entries without the label;
/// when the value does not convert, the entry is kept with `__error__="LabelFilterErr"`
/// (unless it already carries an error).
pub(crate) fn label_filter(f: &LabelFilter, labels: &mut LabelState) -> bool {
    match f {
        LabelFilter::And(a, b) => label_filter(a, labels) && label_filter(b, labels),
        LabelFilter::Or(a, b) => label_filter(a, labels) || label_filter(b, labels),
        LabelFilter::Str(m) => m.matches(labels.get(&m.name).unwrap_or("")),
        LabelFilter::Ip {
            name,
            negate,
            pattern,
            ..
        } => {
            let hit = labels
                .get(name)
                .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| pattern.matches(&ip));
            hit != *negate
        }
        LabelFilter::Num {
            name,
            op,
            kind,
            value,
            ..
        } => {
            let Some(v) = labels.get(name) else {
                return false;
            };
            match convert_number(*kind, v) {
                Ok(x) => op.holds(x, *value),
                Err(details) => {
                    // Keep the entry; do not overwrite what may be a more useful error.
                    if !labels.has_error() {
                        labels.set_error("LabelFilterErr", details);
                    }
                    true
                }
            }
        }
    }
}

fn extracted_name(stream: &Labels, key: String) -> String {
    if stream.get(&key).is_some() {
        format!("{key}_extracted")
    } else {
        key
    }
}

/// Runs `stages` over one entry; `None` when a filter drops it.
pub(crate) fn run(
    stages: &[Stage],
    stream: &Labels,
    ts_ns: i64,
    line: &str,
    metadata: &[(String, String)],
) -> Option<Processed> {
    // Leading line filters run before any allocation.
    let mut first = 0;
    for s in stages {
        match s {
            Stage::LineFilter(f) if line_filter_matches(f, line) => first += 1,
            Stage::LineFilter(_) => return None,
            _ => break,
        }
    }
    let mut line = line.to_string();
    let mut labels = LabelState::new(stream, metadata);
    for stage in &stages[first..] {
        if !apply(stage, stream, ts_ns, &mut line, &mut labels) {
            return None;
        }
    }
    Some(Processed { line, labels })
}

/// Applies label filters only (the filters after `unwrap`).
pub(crate) fn apply_label_filters(filters: &[LabelFilter], labels: &mut LabelState) -> bool {
    filters.iter().all(|f| label_filter(f, labels))
}

fn apply(
    stage: &Stage,
    stream: &Labels,
    ts_ns: i64,
    line: &mut String,
    labels: &mut LabelState,
) -> bool {
    let set_parsed = |labels: &mut LabelState, k: String, v: String| {
        let name = extracted_name(stream, k);
        labels.set(&name, v, Category::Parsed);
    };
    match stage {
        Stage::LineFilter(f) => return line_filter_matches(f, line),
        Stage::Json(params) => {
            let mut found = Vec::new();
            let r = if params.is_empty() {
                parsers::json_all(line, &mut |k, v| found.push((k, v)))
            } else {
                parsers::json_params(line, params, &mut |k, v| found.push((k, v)))
            };
            for (k, v) in found {
                set_parsed(labels, k, v);
            }
            if let Err(e) = r {
                labels.set_error("JSONParserErr", e);
            }
        }
        Stage::Logfmt {
            strict,
            keep_empty,
            params,
        } => {
            let mut found = Vec::new();
            let r = parsers::logfmt(line, *strict, *keep_empty, &mut |k, v| found.push((k, v)));
            if params.is_empty() {
                for (k, v) in found {
                    set_parsed(labels, k, v);
                }
            } else {
                for (label, key) in params {
                    let v = found
                        .iter()
                        .rev()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    set_parsed(labels, label.clone(), v);
                }
            }
            if let Err(e) = r {
                labels.set_error("LogfmtParserErr", e);
            }
        }
        Stage::Regexp(_, re) => {
            if let Some(caps) = re.captures(line) {
                for name in re.capture_names().flatten() {
                    if let Some(m) = caps.name(name) {
                        set_parsed(labels, parsers::sanitize_key(name), m.as_str().to_string());
                    }
                }
            }
        }
        Stage::Pattern(_, p) => {
            if let Some(caps) = p.matches(line) {
                for (k, v) in caps {
                    set_parsed(labels, k.to_string(), v.to_string());
                }
            }
        }
        Stage::Unpack => {
            let mut found = Vec::new();
            match parsers::unpack(line, &mut |k, v| found.push((k, v))) {
                Ok(entry) => {
                    for (k, v) in found {
                        set_parsed(labels, k, v);
                    }
                    if let Some(e) = entry {
                        *line = e;
                    }
                }
                Err(e) => labels.set_error("JSONParserErr", e),
            }
        }
        Stage::LabelFilter(f) => return label_filter(f, labels),
        Stage::LineFormat(_, tmpl) => {
            let snapshot = labels.clone();
            let get = |n: &str| snapshot.get(n).map(str::to_string);
            let data = TemplateData {
                label: &get,
                line,
                ts_ns,
            };
            match tmpl.render(&data) {
                Ok(s) => *line = s,
                Err(e) => labels.set_error("TemplateFormatErr", e),
            }
        }
        Stage::LabelFormat(rules) => {
            let snapshot = labels.clone();
            let get = |n: &str| snapshot.get(n).map(str::to_string);
            let data = TemplateData {
                label: &get,
                line,
                ts_ns,
            };
            for rule in rules {
                match rule {
                    LabelFmt::Rename { dst, src } => {
                        let v = snapshot.get(src).unwrap_or("").to_string();
                        if src != dst {
                            labels.remove(src);
                        }
                        labels.set(dst, v, Category::Parsed);
                    }
                    LabelFmt::Template { dst, tmpl, .. } => match tmpl.render(&data) {
                        Ok(v) => labels.set(dst, v, Category::Parsed),
                        Err(e) => labels.set_error("TemplateFormatErr", e),
                    },
                }
            }
        }
        Stage::Drop(sels) => {
            labels.retain(|n, v| {
                !sels.iter().any(|s| match s {
                    LabelSel::Name(x) => x == n,
                    LabelSel::Matcher(m) => m.name == n && m.matches(v),
                })
            });
        }
        Stage::Keep(sels) => {
            labels.retain(|n, v| {
                n == ERROR_LABEL
                    || n == ERROR_DETAILS_LABEL
                    || sels.iter().any(|s| match s {
                        LabelSel::Name(x) => x == n,
                        LabelSel::Matcher(m) => m.name == n && m.matches(v),
                    })
            });
        }
        Stage::Decolorize => *line = parsers::decolorize(line),
    }
    true
}
