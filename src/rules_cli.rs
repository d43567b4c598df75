//! `sextant check rules FILE…` and `sextant test rules FILE…`: promtool's `check rules` and
//! `test rules`, with the same output and exit codes (0 good, 1 failed, 3 fatal lint).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use sextant_alerting::rules::{duplicate_rules, load_rule_files_with, unittest, RuleFileOptions};

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(subcommand)]
    command: CheckCommand,
}

#[derive(Subcommand, Debug)]
enum CheckCommand {
    /// Check that rule files are valid (like `promtool check rules`).
    Rules(CheckRulesArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Lint {
    /// No linting.
    None,
    /// Report rules producing the same series (same name and labels).
    DuplicateRules,
}

#[derive(Args, Debug)]
struct CheckRulesArgs {
    /// Rule files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Linting checks to apply.
    #[arg(long, value_enum, default_value = "duplicate-rules")]
    lint: Lint,
    /// Make lint problems fatal (exit code 3).
    #[arg(long = "lint-fatal")]
    lint_fatal: bool,
    /// Ignore unknown fields in the rule files.
    #[arg(long = "ignore-unknown-fields")]
    ignore_unknown_fields: bool,
    /// Only allow legacy (`[a-zA-Z_][a-zA-Z0-9_]*`) label and annotation names.
    #[arg(long = "legacy-names")]
    legacy_names: bool,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    #[command(subcommand)]
    command: TestCommand,
}

#[derive(Subcommand, Debug)]
enum TestCommand {
    /// Run rule unit tests written in promtool's format (like `promtool test rules`).
    Rules(TestRulesArgs),
}

#[derive(Args, Debug)]
struct TestRulesArgs {
    /// Unit test files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Only run test groups whose name matches one of these regular expressions.
    #[arg(long)]
    run: Vec<String>,
    /// Ignore unknown fields in the test and rule files.
    #[arg(long = "ignore-unknown-fields")]
    ignore_unknown_fields: bool,
}

pub fn run_check(args: CheckArgs) -> ExitCode {
    match args.command {
        CheckCommand::Rules(a) => check_rules(a),
    }
}

pub fn run_test(args: TestArgs) -> ExitCode {
    match args.command {
        TestCommand::Rules(a) => {
            let opts = unittest::RunOptions {
                run: a.run,
                ignore_unknown_fields: a.ignore_unknown_fields,
            };
            let mut out = std::io::stdout();
            let mut err = std::io::stderr();
            if unittest::run_files(&a.files, &opts, &mut out, &mut err) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn check_rules(a: CheckRulesArgs) -> ExitCode {
    let opts = RuleFileOptions {
        legacy_names: a.legacy_names,
        ignore_unknown_fields: a.ignore_unknown_fields,
    };
    let mut failed = false;
    let mut lint_problems = false;
    for f in &a.files {
        println!("Checking {}", f.display());
        match load_rule_files_with(std::slice::from_ref(f), &opts) {
            Err(errs) => {
                failed = true;
                eprintln!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                }
            }
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                let dups = if a.lint == Lint::DuplicateRules {
                    duplicate_rules(&groups)
                } else {
                    Vec::new()
                };
                if dups.is_empty() {
                    println!("  SUCCESS: {n} rules found");
                } else {
                    // promtool reports lint problems as a failure that only counts with
                    // --lint-fatal.
                    lint_problems = true;
                    let mut msg = format!("lint error {} duplicate rule(s) found.\n", dups.len());
                    for d in &dups {
                        msg.push_str(&format!("Metric: {}\nLabel(s):\n", d.metric));
                        for (k, v) in &d.labels {
                            msg.push_str(&format!("\t{k}: {v}\n"));
                        }
                    }
                    msg.push_str("Might cause inconsistency while recording expressions");
                    eprintln!("  FAILED:\n{msg}");
                }
            }
        }
        println!();
    }
    if failed {
        ExitCode::from(1)
    } else if lint_problems && a.lint_fatal {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
