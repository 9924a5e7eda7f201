//! Time and memory of one analysis per hostile file class (a benchmark, not a test).
//! Run in release:
//!
//! `cargo run --release -p model-analysis --example hostile_bench`
//!
//! Writes one file per class (`tests/support/hostile.rs`, the files the budget tests
//! check) into a temporary directory (`TMPDIR`), then analyses each five times, each
//! time in a child process (this program re-executed with `--child <path>`) with
//! `Limits::default()`, as `modelwatch scan` and the live sensor do. The child reports
//! the analysis' own wall time and its peak resident set (`VmHWM`, which is what
//! `wait4` returns as `ru_maxrss`): the peak is that process's own, not the parent's,
//! which holds the file builders' buffers. Prints a markdown table; the target is
//! <= 1 s and <= 64 MiB for every class.
//!
//! `-- --write <dir> [class]` only writes the files (all, or one class) into `<dir>`,
//! for profiling or for `modelwatch scan <dir>`.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use model_analysis::{Limits, Root, analyze_path};
use serde::{Deserialize, Serialize};

const RUNS: usize = 5;
const TARGET_TIME: Duration = Duration::from_secs(1);
const TARGET_RSS_KIB: u64 = 64 * 1024;

/// What a child reports on its standard output.
#[derive(Serialize, Deserialize)]
struct ChildReport {
    analysis_us: u64,
    peak_rss_kib: u64,
    /// (kind, severity, message) of each finding.
    findings: Vec<(String, String, String)>,
}

fn main() {
    let args: Vec<String> = env::args().collect();
    match args.as_slice() {
        [_, flag, path] if flag == "--child" => child(Path::new(path)),
        [_, flag, dir, only @ ..] if flag == "--write" => write_only(Path::new(dir), only.first()),
        _ => parent(),
    }
}

fn write_only(dir: &Path, only: Option<&String>) {
    for class in support::hostile::classes() {
        if only.is_some_and(|name| name != class.name) {
            continue;
        }
        let class_dir = dir.join(class.name);
        fs::create_dir_all(&class_dir).expect("mkdir");
        (class.write)(&class_dir.join(class.file)).expect("write the file");
        println!("{}", class_dir.join(class.file).display());
    }
}

fn child(path: &Path) {
    let root = Root::host().expect("host root");
    let started = Instant::now();
    let (report, _file) = analyze_path(&root, path, &Limits::default()).expect("analyse");
    let analysis_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let findings =
        report.findings.iter().map(|f| (snake(&f.kind), snake(&f.severity), f.message.clone())).collect();
    let out = ChildReport { analysis_us, peak_rss_kib: peak_rss_kib(), findings };
    println!("{}", serde_json::to_string(&out).expect("report serialises"));
}

fn snake<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialise").trim_matches('"').to_owned()
}

/// The process's peak resident set, from `/proc/self/status`.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

struct Row {
    class: &'static str,
    size: u64,
    analysis: Duration,
    process: Duration,
    rss_kib: u64,
    findings: String,
    budgets: Vec<String>,
}

fn parent() {
    let exe = env::current_exe().expect("own path");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = Vec::new();
    for class in support::hostile::classes() {
        let class_dir = dir.path().join(class.name);
        fs::create_dir_all(&class_dir).expect("mkdir");
        let path = class_dir.join(class.file);
        (class.write)(&path).expect("write the file");
        let size = fs::metadata(&path).expect("stat").len();
        let mut analysis = Vec::new();
        let mut process = Vec::new();
        let mut rss_kib = 0;
        let mut last = None;
        for _ in 0..RUNS {
            let started = Instant::now();
            let output = Command::new(&exe).arg("--child").arg(&path).output().expect("run the child");
            process.push(started.elapsed());
            assert!(output.status.success(), "{}: {}", class.name, String::from_utf8_lossy(&output.stderr));
            let report: ChildReport = serde_json::from_slice(&output.stdout).expect("child report");
            analysis.push(Duration::from_micros(report.analysis_us));
            rss_kib = rss_kib.max(report.peak_rss_kib);
            last = Some(report);
        }
        fs::remove_dir_all(&class_dir).expect("cleanup");
        let report = last.expect("five runs");
        rows.push(Row {
            class: class.name,
            size,
            analysis: median(analysis),
            process: median(process),
            rss_kib,
            findings: summary(&report.findings),
            budgets: report
                .findings
                .iter()
                .filter(|(kind, _, _)| kind == "analysis_budget_exceeded")
                .map(|(_, _, message)| message.clone())
                .collect(),
        });
    }
    print_table(&rows);
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `kind (severity) xN`, most severe first.
fn summary(findings: &[(String, String, String)]) -> String {
    let mut counts: BTreeMap<(u8, &str, &str), usize> = BTreeMap::new();
    for (kind, severity, _) in findings {
        let rank = match severity.as_str() {
            "critical" => 0,
            "high" => 1,
            "medium" => 2,
            "low" => 3,
            _ => 4,
        };
        *counts.entry((rank, kind, severity)).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".to_owned();
    }
    let parts: Vec<String> =
        counts
            .iter()
            .map(|((_, kind, severity), n)| {
                if *n > 1 { format!("`{kind}` ({severity}) x{n}") } else { format!("`{kind}` ({severity})") }
            })
            .collect();
    parts.join(", ")
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| class | file size | analysis (median of {RUNS}) | process wall (median of {RUNS}) | peak RSS (max of {RUNS}) | findings |"
    );
    println!("|---|---|---|---|---|---|");
    let mut missed = Vec::new();
    for row in rows {
        let over = row.process > TARGET_TIME || row.rss_kib > TARGET_RSS_KIB;
        if over {
            missed.push(row.class);
        }
        println!(
            "| {}{} | {} | {:.1} ms | {:.1} ms | {:.1} MiB | {} |",
            row.class,
            if over { " (over target)" } else { "" },
            human_size(row.size),
            row.analysis.as_secs_f64() * 1e3,
            row.process.as_secs_f64() * 1e3,
            row.rss_kib as f64 / 1024.0,
            row.findings
        );
    }
    println!();
    println!("Budget findings (last run):");
    println!();
    for row in rows {
        for message in &row.budgets {
            println!("- {}: {message}", row.class);
        }
    }
    println!();
    if missed.is_empty() {
        println!("Every class within {} ms and {} MiB.", TARGET_TIME.as_millis(), TARGET_RSS_KIB / 1024);
    } else {
        println!("Over the target: {}", missed.join(", "));
    }
}
