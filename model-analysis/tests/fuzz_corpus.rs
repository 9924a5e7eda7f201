//! The committed fuzz seeds (`fuzz/corpus/<target>/`) and regression inputs
//! (`fuzz/regressions/<target>/`: inputs that once crashed or hung a parser, kept once
//! fixed) run through every parser on each `cargo test`: a regression comes back as a
//! test failure, not as a fuzzing session.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model_analysis::pickle::scan_pickle_bytes;
use model_analysis::{Finding, FindingKind, Format, Limits, analyze_as, analyze_bytes};

/// Runs `bytes` through every parser; returns all the findings.
fn run_all(bytes: &[u8]) -> Vec<Finding> {
    let limits = Limits::default();
    let mut findings = Vec::new();
    for format in [Format::Gguf, Format::Safetensors, Format::Zip, Format::Pickle] {
        let report = analyze_as(&mut Cursor::new(bytes), bytes.len() as u64, format, &limits);
        serde_json::to_string(&report).expect("reports serialise");
        findings.extend(report.findings);
    }
    findings.extend(scan_pickle_bytes(bytes, &limits).1);
    findings.extend(analyze_bytes(bytes, Some(Path::new("x.bin")), &limits).findings);
    findings
}

/// Every file under `<dir>/<target>/`.
fn inputs(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut files = Vec::new();
    for target in fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        for input in fs::read_dir(target.expect("entry").path()).expect("target dir") {
            files.push(input.expect("input").path());
        }
    }
    files.sort();
    files
}

#[test]
fn committed_seeds_do_not_panic() {
    let seeds = inputs("corpus");
    for seed in &seeds {
        run_all(&fs::read(seed).expect("read seed"));
    }
    assert!(seeds.len() >= 10, "only {} seeds", seeds.len());
}

/// Far above what any input needs (milliseconds), far below what the hangs these inputs
/// caused took (minutes): a loaded machine does not fail the test, a hang does.
const HANG: Duration = Duration::from_secs(10);

#[test]
fn regression_inputs_do_not_panic_or_hang() {
    let regressions = inputs("regressions");
    for input in &regressions {
        let started = Instant::now();
        let findings = run_all(&fs::read(input).expect("read input"));
        assert!(started.elapsed() < HANG, "{}: {:?}", input.display(), started.elapsed());
        // A loop that lost its linear bound would end at the deadline, with its finding.
        let timed_out = findings
            .iter()
            .find(|f| f.kind == FindingKind::AnalysisBudgetExceeded && f.message.starts_with("time budget"));
        assert!(timed_out.is_none(), "{}: {timed_out:?}", input.display());
    }
    assert!(!regressions.is_empty(), "fuzz/regressions holds no input");
}
