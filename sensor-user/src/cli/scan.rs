//! `modelwatch scan PATH...`: offline identification for a model hub pipeline or an
//! analyst. Exit 0: clean; 1: findings at or above `--fail-on`; 2: paths not scanned.

use std::{io::IsTerminal as _, path::PathBuf, time::Instant};

use model_analysis::Severity;

use crate::analyze::scan::{ScanOptions, ScannedFile, scan};
use crate::publish::format::escape_controls;

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files or directories (recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// `table` for people, `json` for one object per file.
    #[arg(long, short, value_enum, default_value_t = ScanOutput::Table)]
    output: ScanOutput,
    /// List every file, not only models and files with findings.
    #[arg(long)]
    all: bool,
    /// Do not compute SHA-256 digests.
    #[arg(long)]
    no_hash: bool,
    /// Lowest severity that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Low)]
    fail_on: FailOn,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ScanOutput {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FailOn {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl FailOn {
    fn severity(self) -> Severity {
        match self {
            Self::Info => Severity::Info,
            Self::Low => Severity::Low,
            Self::Medium => Severity::Medium,
            Self::High => Severity::High,
            Self::Critical => Severity::Critical,
        }
    }
}

pub(super) fn run(args: &ScanArgs) -> i32 {
    let options = ScanOptions { hash: !args.no_hash, ..ScanOptions::default() };
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let (mut scanned, mut models, mut errors, mut failing) = (0u64, 0u64, 0u64, false);
    if matches!(args.output, ScanOutput::Table) {
        print_line(&format!(
            "{:<60} {:<16} {:>9} {:<14} {:<9} FINDINGS",
            "PATH", "FORMAT", "SIZE", "LICENSE", "WORST"
        ));
    }
    scan(
        &args.paths,
        &options,
        |file| {
            scanned += 1;
            models += u64::from(file.report.format.is_model());
            failing |= file.worst().is_some_and(|worst| worst >= args.fail_on.severity());
            if args.all || file.report.format.is_model() || !file.report.findings.is_empty() {
                print_file(args.output, &file);
            }
            if progress && scanned.is_multiple_of(500) {
                #[expect(clippy::print_stderr, reason = "progress on a terminal")]
                {
                    eprint!("\rscanned {scanned} files, {models} models ({:.0?})", started.elapsed());
                }
            }
        },
        |error| {
            errors += 1;
            #[expect(clippy::print_stderr, reason = "the CLI's error lines")]
            {
                eprintln!(
                    "modelwatch: not scanned: {}",
                    escape_controls(&format!("{}: {}", error.path.display(), error.message))
                );
            }
        },
    );
    if progress {
        #[expect(clippy::print_stderr, reason = "progress on a terminal")]
        {
            eprintln!(
                "\rscanned {scanned} files, {models} models, {errors} errors in {:.1?}",
                started.elapsed()
            );
        }
    }
    if errors > 0 { 2 } else { i32::from(failing) }
}

fn print_file(output: ScanOutput, file: &ScannedFile) {
    match output {
        ScanOutput::Json => print_line(&serde_json::to_string(file).unwrap_or_default()),
        ScanOutput::Table => {
            let format = serde_json::to_value(file.report.format).ok();
            let format = format.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
            let license = file.report.gguf.as_ref().and_then(|g| g.license.as_deref()).unwrap_or("-");
            let worst = file.worst().map_or_else(|| "-".to_owned(), |s| format!("{s:?}").to_lowercase());
            let kinds: Vec<String> = file
                .report
                .findings
                .iter()
                .map(|f| {
                    serde_json::to_value(f.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect();
            // Paths and GGUF licenses are the file owner's text: escaped so they cannot
            // forge or hide table rows on a terminal.
            print_line(&escape_controls(&format!(
                "{:<60} {format:<16} {:>9} {license:<14} {worst:<9} {}",
                file.path.display(),
                crate::publish::text::human_size(file.report.size),
                kinds.join(",")
            )));
        }
    }
}

fn print_line(line: &str) {
    #[expect(clippy::print_stdout, reason = "CLI output")]
    {
        println!("{line}");
    }
}
