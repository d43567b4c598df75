//! The expected-failures list (`tests/promql_expected_failures.txt`): cases we do not pass
//! yet, each with a short reason. Reading, comparing with a run, and rewriting ("blessing").

use std::collections::BTreeMap;

/// Case name (`<file>:<line>`) → reason.
#[derive(Debug, Default, PartialEq)]
pub struct ExpectedFailures {
    entries: BTreeMap<CaseKey, String>,
}

/// Sorts case names by file, then numerically by line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaseKey {
    file: String,
    line: u64,
    /// The name as written, for names that do not end in `:<line>`.
    raw: String,
}

impl CaseKey {
    pub fn new(name: &str) -> CaseKey {
        match name
            .rsplit_once(':')
            .and_then(|(f, l)| Some((f, l.parse().ok()?)))
        {
            Some((file, line)) => CaseKey {
                file: file.to_string(),
                line,
                raw: name.to_string(),
            },
            None => CaseKey {
                file: name.to_string(),
                line: 0,
                raw: name.to_string(),
            },
        }
    }

    pub fn name(&self) -> &str {
        &self.raw
    }
}

const HEADER: &str = "\
# PromQL conformance cases (shared/conformance/promql/testdata) that Sextant does not pass yet.
# One case per line: <file>:<line of the eval>  <short reason>. Lines starting with # are comments.
# The conformance test fails when a case fails that is not listed here, or when a listed case
# passes. Regenerate with:
#   PROMQL_CONFORMANCE_BLESS=1 cargo test --test promql_conformance
# Blessing keeps the reasons of cases that still fail and derives one for new failures.
";

impl ExpectedFailures {
    pub fn parse(text: &str) -> Result<ExpectedFailures, String> {
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, reason) = match line.split_once(char::is_whitespace) {
                Some((name, reason)) => (name, reason.trim()),
                None => (line, ""),
            };
            if entries
                .insert(CaseKey::new(name), reason.to_string())
                .is_some()
            {
                return Err(format!("line {}: {name} is listed twice", i + 1));
            }
        }
        Ok(ExpectedFailures { entries })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(&CaseKey::new(name))
    }

    pub fn names(&self) -> impl Iterator<Item = &CaseKey> {
        self.entries.keys()
    }

    /// The list after a run: cases that ran and passed are removed, cases that ran and failed
    /// are listed (with their old reason if they had one, else `new_reason`), and entries for
    /// cases that did not run stay unless `drop_unknown` says they no longer exist.
    pub fn blessed<'a>(
        &self,
        ran: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        drop_unknown: bool,
    ) -> ExpectedFailures {
        let mut entries = if drop_unknown {
            BTreeMap::new()
        } else {
            self.entries.clone()
        };
        for (name, failure_reason) in ran {
            let key = CaseKey::new(name);
            match failure_reason {
                None => {
                    entries.remove(&key);
                }
                Some(new_reason) => {
                    let reason = match self.entries.get(&key) {
                        Some(old) if !old.is_empty() => old.clone(),
                        _ => new_reason.to_string(),
                    };
                    entries.insert(key, reason);
                }
            }
        }
        ExpectedFailures { entries }
    }

    pub fn render(&self) -> String {
        let width = self.entries.keys().map(|k| k.raw.len()).max().unwrap_or(0) + 2;
        let mut out = String::from(HEADER);
        let mut last_file: Option<&str> = None;
        for (key, reason) in &self.entries {
            if last_file != Some(key.file.as_str()) {
                out.push('\n');
                last_file = Some(&key.file);
            }
            let reason = reason.replace(['\n', '\r'], " ");
            out.push_str(format!("{:width$}{reason}", key.raw).trim_end());
            out.push('\n');
        }
        out
    }
}
