//! `iii-gateway policy test [PATH…] [--format json]`: finds `*_test.yaml` files, reads them
//! (and the gateway configs they reference), runs them with the pure runner in `policies`,
//! and prints one PASS/FAIL line per case like `opa test -v`, then `N passed, M failed`.
//!
//! The rules and the runner are `policies`'; this module only does the file system and the
//! printing.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use policies::{CaseOutcome, CaseResult, PolicyTestFile, UnsetVariable, expand_env};
use serde::Serialize;
use thiserror::Error;

/// `iii-gateway policy …`
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Run policy tests (`*_test.yaml`; directories are searched recursively).
    Test(TestArgs),
}

/// `iii-gateway policy test` arguments.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Test files or directories (default: the current directory).
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Suffix that marks a policy test file.
const TEST_SUFFIX: &str = "_test.yaml";

/// A file that could not be run at all.
#[derive(Debug, Error)]
enum FileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error("{}", unset_variables(path, errors))]
    Env {
        path: PathBuf,
        errors: Vec<UnsetVariable>,
    },
    #[error(transparent)]
    Policy(#[from] policies::PolicyTestError),
}

/// `path:line:col: problem` for each unset variable, joined with `; `.
fn unset_variables(path: &Path, errors: &[UnsetVariable]) -> String {
    errors
        .iter()
        .map(|error| format!("{}:{error}", path.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One test file's results.
#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    cases: Vec<CaseResult>,
}

#[derive(Debug, Serialize)]
struct Report {
    files: Vec<FileReport>,
    passed: usize,
    failed: usize,
}

pub(crate) fn run(command: &PolicyCommand) -> ExitCode {
    let PolicyCommand::Test(args) = command;
    let report = test(args);
    if report.files.is_empty() {
        // Like `opa test`: finding nothing to test is a failure, not a pass.
        let paths = roots(args)
            .iter()
            .map(|root| root.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            io::stderr().lock(),
            "no *{TEST_SUFFIX} files found under {paths}"
        );
        return ExitCode::FAILURE;
    }
    let printed = match args.format {
        Format::Text => print_text(&report),
        Format::Json => print_json(&report),
    };
    if printed.is_err() || report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The paths to search: the arguments, or the current directory.
fn roots(args: &TestArgs) -> Vec<PathBuf> {
    if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    }
}

fn test(args: &TestArgs) -> Report {
    let mut files = Vec::new();
    for root in &roots(args) {
        match find_tests(root) {
            Ok(found) => files.extend(found.into_iter().map(|path| run_file(&path))),
            Err(error) => files.push(FileReport {
                path: root.display().to_string(),
                error: Some(error.to_string()),
                cases: Vec::new(),
            }),
        }
    }
    let count = |outcome| {
        files
            .iter()
            .flat_map(|file| &file.cases)
            .filter(|case| case.outcome == outcome)
            .count()
    };
    let passed = count(CaseOutcome::Pass);
    let failed = count(CaseOutcome::Fail) + files.iter().filter(|f| f.error.is_some()).count();
    Report {
        files,
        passed,
        failed,
    }
}

/// `root` itself when it is a file (whatever its name, and even through a symlink), else every
/// `*_test.yaml` below it, sorted. Below `root`, symlinked directories are not descended (so a
/// link loop cannot recurse); symlinked files are tested like files.
fn find_tests(root: &Path) -> Result<Vec<PathBuf>, FileError> {
    if !root.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let list_error = |source| FileError::List {
            path: dir.clone(),
            source,
        };
        for entry in fs::read_dir(&dir).map_err(list_error)? {
            let entry = entry.map_err(list_error)?;
            // `DirEntry::file_type` does not follow symlinks.
            let file_type = entry.file_type().map_err(list_error)?;
            let path = entry.path();
            if file_type.is_dir() {
                pending.push(path);
            } else if is_test_file(&path) && (file_type.is_file() || path.is_file()) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.ends_with(TEST_SUFFIX))
}

fn run_file(path: &Path) -> FileReport {
    let (cases, error) = match run_cases(path) {
        Ok(cases) => (cases, None),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    FileReport {
        path: path.display().to_string(),
        error,
        cases,
    }
}

fn run_cases(path: &Path) -> Result<Vec<CaseResult>, FileError> {
    let text = read(path)?;
    let file = PolicyTestFile::parse(&text)?;
    let referenced = match file.config_reference() {
        Some(config) => {
            let base = path.parent().unwrap_or_else(|| Path::new("."));
            let config_path = base.join(config);
            let text = read(&config_path)?;
            let expanded = expand_env(&text, env!("CARGO_PKG_VERSION"), |name| {
                std::env::var(name).ok()
            })
            .map_err(|errors| FileError::Env {
                path: config_path,
                errors,
            })?;
            Some(expanded)
        }
        None => None,
    };
    Ok(file.run(referenced.as_deref())?)
}

fn read(path: &Path) -> Result<String, FileError> {
    fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn print_text(report: &Report) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for file in &report.files {
        if let Some(error) = &file.error {
            writeln!(out, "{}: ERROR: {error}", file.path)?;
        }
        for case in &file.cases {
            let verdict = match case.outcome {
                CaseOutcome::Pass => "PASS",
                CaseOutcome::Fail => "FAIL",
            };
            writeln!(
                out,
                "{}: {}: {verdict} ({})",
                file.path, case.name, case.reason
            )?;
        }
    }
    writeln!(out, "{}", "-".repeat(80))?;
    writeln!(out, "{} passed, {} failed", report.passed, report.failed)?;
    out.flush()
}

fn print_json(report: &Report) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)?;
    out.flush()
}
