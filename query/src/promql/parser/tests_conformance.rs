//! Parses every `eval` expression of the PromQL conformance corpus
//! (`shared/conformance/promql/testdata/*.test`) and bounds the number that fail to parse.
//! Evals marked `expect fail` may fail legitimately and are counted apart.

use std::path::{Path, PathBuf};

use super::parse;
use super::tests::normalized;

struct Eval {
    file: String,
    line: usize,
    expr: String,
    expect_fail: bool,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promql/testdata")
}

/// The expression of an `eval` header line, if `line` is one.
fn eval_expr(line: &str) -> Option<(String, bool)> {
    let mut words = line.split_whitespace();
    let cmd = words.next()?.to_ascii_lowercase();
    if !cmd.starts_with("eval") {
        return None;
    }
    let words: Vec<&str> = words.collect();
    let skip = match words.first().copied() {
        Some("instant") => 3,
        Some("range") => 7,
        _ => return None,
    };
    // Re-find the expression in the original text to keep its spacing.
    let mut rest = line.trim_start();
    for _ in 0..=skip {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    Some((rest.trim().to_string(), cmd == "eval_fail"))
}

fn load_evals() -> Vec<Eval> {
    let Ok(dir) = std::fs::read_dir(corpus_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut out: Vec<Eval> = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut current: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                current = None;
                continue;
            }
            if let Some((expr, fail)) = eval_expr(line) {
                out.push(Eval {
                    file: name.clone(),
                    line: i + 1,
                    expr,
                    expect_fail: fail,
                });
                current = Some(out.len() - 1);
            } else if let Some(idx) = current {
                if line.starts_with("expect fail") {
                    out[idx].expect_fail = true;
                }
            }
        }
    }
    out
}

#[test]
fn conformance_eval_expressions_parse() {
    let evals = load_evals();
    if evals.is_empty() {
        eprintln!(
            "conformance corpus not found at {:?}; skipped",
            corpus_dir()
        );
        return;
    }
    let mut ok = 0;
    let mut expected_failures = 0;
    let mut unexpected: Vec<String> = Vec::new();
    for e in &evals {
        match parse(&e.expr) {
            Ok(expr) => {
                ok += 1;
                let printed = expr.to_string();
                match parse(&printed) {
                    Ok(again) => assert_eq!(
                        normalized(&again),
                        normalized(&expr),
                        "{}:{} round trip",
                        e.file,
                        e.line
                    ),
                    Err(err) => panic!("{}:{}: reparse of {printed:?}: {err}", e.file, e.line),
                }
            }
            Err(err) if e.expect_fail => {
                expected_failures += 1;
                eprintln!(
                    "expected failure {}:{}: {} => {err}",
                    e.file, e.line, e.expr
                );
            }
            Err(err) => unexpected.push(format!("{}:{}: {} => {err}", e.file, e.line, e.expr)),
        }
    }
    for u in &unexpected {
        eprintln!("FAIL {u}");
    }
    eprintln!(
        "conformance: {} evals, {ok} parse, {expected_failures} fail under `expect fail`, {} fail unexpectedly",
        evals.len(),
        unexpected.len()
    );
    // Every eval not marked `expect fail` parses (the trim operators `</` and `>/` included).
    assert!(
        unexpected.is_empty(),
        "{} unexpected parse failures",
        unexpected.len()
    );
}
