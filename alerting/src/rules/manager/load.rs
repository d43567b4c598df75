//! Finding and reading rule files for the manager.
//!
//! [`expand_globs`] resolves `rule_files` patterns (Go `filepath.Glob` semantics for `*` and
//! `?`, relative to the configuration file's directory); [`load_globs`] reads them with the
//! validating loader of [`crate::rules::file`].

use std::path::{Path, PathBuf};

use crate::rules::model::RuleGroup;

/// The files matching `patterns` (relative ones resolved against `base`), sorted per pattern
/// and without duplicates. A pattern without wildcards names a file that must exist.
pub fn expand_globs(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in patterns {
        let full = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        let mut found = if has_meta(p) {
            glob(&full)?
        } else if full.exists() {
            vec![full.clone()]
        } else {
            return Err(format!("rule file {} does not exist", full.display()));
        };
        found.sort();
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands a pattern whose components may hold `*` and `?`.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for dir in &current {
            if !has_meta(&part) {
                next.push(dir.join(&part));
                continue;
            }
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if wildcard_match(part.as_bytes(), name.as_bytes()) {
                    next.push(dir.join(name));
                }
            }
        }
        current = next;
    }
    Ok(current.into_iter().filter(|p| p.exists()).collect())
}

/// `*` matches any run of characters, `?` one; everything else literally.
fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| wildcard_match(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && wildcard_match(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && wildcard_match(rest, &s[1..]),
    }
}

/// Finds the files of `patterns` (see [`expand_globs`]) and loads them with the validating
/// rule-file reader; errors of all files are joined, one per line.
pub fn load_globs(base: &Path, patterns: &[String]) -> Result<Vec<RuleGroup>, String> {
    let files = expand_globs(base, patterns)?;
    crate::rules::file::load_rule_files(&files).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rules::model::RuleKind;

    #[test]
    fn globs_and_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).expect("mkdir");
        std::fs::write(
            rules.join("a.yml"),
            "groups:\n- name: g\n  interval: 30s\n  rules:\n  - record: r\n    expr: up\n  - alert: A\n    expr: 1\n    for: 5m\n    labels: {severity: page}\n",
        )
        .expect("write");
        std::fs::write(rules.join("b.txt"), "not rules").expect("write");
        let files = expand_globs(dir.path(), &["rules/*.yml".to_string()]).expect("glob");
        assert_eq!(files, vec![rules.join("a.yml")]);
        let groups = load_globs(dir.path(), &["rules/*.yml".to_string()]).expect("read");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].interval, Some(Duration::from_secs(30)));
        assert_eq!(groups[0].rules[1].kind, RuleKind::Alert("A".into()));
        assert_eq!(groups[0].rules[1].expr, "1");
        assert_eq!(groups[0].rules[1].for_, Duration::from_secs(300));
        assert!(expand_globs(dir.path(), &["missing.yml".to_string()]).is_err());
        std::fs::write(rules.join("c.yml"), "groups:\n- name: g\n  rulez: []\n").expect("write");
        let err = load_globs(dir.path(), &["rules/c.yml".to_string()])
            .err()
            .unwrap_or_default();
        assert!(err.contains("c.yml:3:") && err.contains("rulez"), "{err}");
    }
}
