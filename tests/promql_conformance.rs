//! PromQL conformance: runs Prometheus's engine test scripts (`shared/conformance/promql`)
//! against Sextant's parser and engine, and compares the failures with
//! `tests/promql_expected_failures.txt`.
//!
//! Environment:
//! * `PROMQL_CONFORMANCE_FILTER=<substring>` runs only cases whose `<file>:<line>` contains it.
//! * `PROMQL_CONFORMANCE_VERBOSE=1` prints every failure with its details.
//! * `PROMQL_CONFORMANCE_BLESS=1` rewrites the expected-failures list from this run.

#[path = "promql_conformance/compare.rs"]
mod compare;
#[path = "promql_conformance/expected.rs"]
mod expected;
use sextant_storage::histogram::notation as histogram_notation;
#[path = "promql_conformance/runner.rs"]
mod runner;
#[path = "promql_conformance/script.rs"]
mod script;
#[path = "promql_conformance/selftest.rs"]
mod selftest;

use std::any::Any;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use expected::{CaseKey, ExpectedFailures};
use runner::{CaseResult, FileReport};

/// How many offending case names to print before summarising the rest as a count.
const MAX_LISTED: usize = 50;

fn main() -> ExitCode {
    if !selftest::run() {
        println!("promql conformance: runner self-tests failed");
        return ExitCode::FAILURE;
    }
    install_quiet_panic_hook();
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("promql conformance: error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    testdata: PathBuf,
    expected_path: PathBuf,
    filter: Option<String>,
    verbose: bool,
    bless: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        Settings {
            testdata: root.join("../shared/conformance/promql/testdata"),
            expected_path: root.join("tests/promql_expected_failures.txt"),
            filter: std::env::var("PROMQL_CONFORMANCE_FILTER")
                .ok()
                .filter(|f| !f.is_empty()),
            verbose: flag("PROMQL_CONFORMANCE_VERBOSE"),
            bless: flag("PROMQL_CONFORMANCE_BLESS"),
        }
    }
}

/// Runs the suite; `Ok(true)` when the outcome matches the expected-failures list.
fn run() -> Result<bool, String> {
    let settings = Settings::from_env();
    let files = test_files(&settings.testdata)?;
    let expected_text = match std::fs::read_to_string(&settings.expected_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(format!(
                "cannot read {}: {e}",
                settings.expected_path.display()
            ))
        }
    };
    let expected = ExpectedFailures::parse(&expected_text)
        .map_err(|e| format!("{}: {e}", settings.expected_path.display()))?;

    let reports = run_files(&files, settings.filter.as_deref())?;

    if settings.verbose {
        print_failure_details(&reports);
    }
    let mut total_passed = 0;
    let mut total = 0;
    for report in &reports {
        if report.cases.is_empty() {
            continue;
        }
        let passed = report.cases.iter().filter(|c| c.outcome.is_ok()).count();
        let n = report.cases.len();
        println!(
            "{}: {passed} passed, {} failed, {n} total",
            report.file,
            n - passed
        );
        total_passed += passed;
        total += n;
    }

    let script_errors: Vec<&String> = reports.iter().flat_map(|r| &r.script_errors).collect();
    let mut ok = true;
    if !script_errors.is_empty() {
        ok = false;
        print_list(
            "test script commands could not be parsed (a runner bug)",
            script_errors.iter().map(|e| e.to_string()),
        );
    }

    let cases = || reports.iter().flat_map(|r| &r.cases);
    if settings.bless {
        let ran = cases().map(|c| {
            (
                c.name.as_str(),
                c.outcome.as_ref().err().map(|f| f.reason.as_str()),
            )
        });
        let blessed = expected.blessed(ran, settings.filter.is_none());
        std::fs::write(&settings.expected_path, blessed.render())
            .map_err(|e| format!("cannot write {}: {e}", settings.expected_path.display()))?;
        println!(
            "blessed {}: {} expected failures",
            settings.expected_path.display(),
            blessed.names().count()
        );
    } else {
        let all_cases: Vec<&CaseResult> = cases().collect();
        ok &= compare_with_list(&expected, &all_cases, settings.filter.is_none());
    }
    if total == 0 {
        let filter = settings.filter.as_deref().unwrap_or("");
        println!("no eval case matched PROMQL_CONFORMANCE_FILTER={filter:?}");
    }
    println!(
        "promql conformance: {total_passed} passed, {} failed, {total} total",
        total - total_passed
    );
    Ok(ok)
}

/// Reports cases whose outcome differs from the expected-failures list; true when none does.
/// In a full (unfiltered) run, entries that name no case are reported too.
fn compare_with_list(expected: &ExpectedFailures, cases: &[&CaseResult], full_run: bool) -> bool {
    let mut ok = true;
    let unexpected_failures: Vec<String> = cases
        .iter()
        .filter(|c| !expected.contains(&c.name))
        .filter_map(|c| {
            c.outcome
                .as_ref()
                .err()
                .map(|f| format!("{}  {}", c.name, f.reason))
        })
        .collect();
    let unexpected_passes: Vec<String> = cases
        .iter()
        .filter(|c| c.outcome.is_ok() && expected.contains(&c.name))
        .map(|c| c.name.clone())
        .collect();
    let mut stale_entries: Vec<String> = Vec::new();
    if full_run {
        let all: std::collections::BTreeSet<CaseKey> =
            cases.iter().map(|c| CaseKey::new(&c.name)).collect();
        stale_entries = expected
            .names()
            .filter(|k| !all.contains(k))
            .map(|k| k.name().to_string())
            .collect();
    }
    if !unexpected_failures.is_empty() {
        ok = false;
        print_list(
            "cases FAILED that are not in tests/promql_expected_failures.txt \
             (PROMQL_CONFORMANCE_VERBOSE=1 shows why)",
            unexpected_failures.into_iter(),
        );
    }
    if !unexpected_passes.is_empty() {
        ok = false;
        print_list(
            "listed cases now pass: remove them from tests/promql_expected_failures.txt",
            unexpected_passes.into_iter(),
        );
    }
    if !stale_entries.is_empty() {
        ok = false;
        print_list(
            "entries of tests/promql_expected_failures.txt name no eval case",
            stale_entries.into_iter(),
        );
    }
    if !ok {
        println!(
            "to accept the current results, rerun with PROMQL_CONFORMANCE_BLESS=1 and review \
             the change to tests/promql_expected_failures.txt"
        );
    }
    ok
}

fn test_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read the PromQL test scripts in {} ({e}); the shared conformance corpus must \
             sit next to the repository as ../shared",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.test files in {}", dir.display()));
    }
    Ok(files)
}

/// Runs the files on as many threads as there are cores; reports come back in file order.
fn run_files(files: &[PathBuf], filter: Option<&str>) -> Result<Vec<FileReport>, String> {
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::read_to_string(path)
                .map(|text| (name, text))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
        .collect::<Result<_, _>>()?;
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<(usize, FileReport)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(texts.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let idx = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, text)) = texts.get(idx) else {
                    break;
                };
                let report = runner::run_file(name, text, filter);
                reports
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((idx, report));
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    reports.sort_by_key(|(idx, _)| *idx);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

fn print_failure_details(reports: &[FileReport]) {
    for report in reports {
        for case in &report.cases {
            if let Err(failure) = &case.outcome {
                println!("FAIL {}  [{}]", case.name, failure.reason);
                println!("    query: {}", case.query);
                for line in failure.details.lines() {
                    println!("    {line}");
                }
            }
        }
    }
}

fn print_list(title: &str, items: impl ExactSizeIterator<Item = String>) {
    let n = items.len();
    println!("{n} {title}:");
    for item in items.take(MAX_LISTED) {
        println!("    {item}");
    }
    if n > MAX_LISTED {
        println!("    … and {} more", n - MAX_LISTED);
    }
}

thread_local! {
    /// The message and location of the last panic on this thread, recorded by the hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside evals are reported as case failures, so for eval threads the hook records the
/// message instead of printing it; panics anywhere else are printed as usual.
fn install_quiet_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_eval = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with(runner::EVAL_THREAD_PREFIX));
        if !in_eval {
            default_hook(info);
            return;
        }
        let message = info.payload_as_str().unwrap_or("non-string panic payload");
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{message}{location}")));
    }));
}

/// The text of a caught panic, preferring what the hook recorded on this thread.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    LAST_PANIC
        .with(|last| last.borrow_mut().take())
        .unwrap_or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string())
        })
}
