//! Differential test: the analyser against CPython.
//!
//! `tests/differential/gen_pickles.py` writes a few thousand pickles (every protocol and
//! opcode, hand-built and mutated, concatenated and framed) and, for each, the imports
//! CPython's `load()`, called until the end of the file or the first error, asks
//! `find_class` for (`tests/differential/oracle.py`: nothing is imported or run). The
//! analyser must name exactly the same imports.
//!
//! Where the default unpickler stops but looser loaders go on (a Python 2 string that
//! is not ASCII, which torch decodes as UTF-8; an extension code a process may have
//! registered; a computed `STACK_GLOBAL` name; what only the pure-Python unpickler
//! accepts), the analyser goes on too and marks what it finds after as
//! loader-dependent. The imports it finds before that point must equal CPython's; the
//! loader-dependent ones are extra (the analyser reports more only where the default
//! unpickler could not have run). Streams and trailing bytes must match too, until
//! that point.
//!
//! Needs `python3` (standard library only); prints `SKIPPED` without it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use model_analysis::pickle::scan_pickle_bytes;
use model_analysis::{FindingKind, Format, Limits, PickleReport, analyze_bytes};

/// Files generated: at least 10,000, a few seconds of Python. Other runs:
/// `MODELWATCH_TEST_DIFF_SEED` and `MODELWATCH_TEST_DIFF_COUNT`.
const COUNT: u32 = 12_000;
const SEED: u32 = 20_261_130;

fn setting(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct OracleVerdict {
    file: String,
    imports: BTreeSet<String>,
    complete: u64,
    trailing: u64,
    error: Option<String>,
}

fn parse_line(line: &str) -> OracleVerdict {
    let v: serde_json::Value = serde_json::from_str(line).expect("oracle json");
    let imports = v["imports"]
        .as_array()
        .expect("imports")
        .iter()
        .map(|s| s.as_str().expect("import").to_owned())
        .collect();
    OracleVerdict {
        file: v["file"].as_str().expect("file").to_owned(),
        imports,
        complete: v["complete"].as_u64().expect("complete"),
        trailing: v["trailing"].as_u64().expect("trailing"),
        error: v["error"].as_str().map(str::to_owned),
    }
}

fn import_set(report: &PickleReport, all: bool) -> BTreeSet<String> {
    report
        .imports
        .iter()
        .filter(|i| all || !i.loader_dependent)
        .map(|i| format!("{}\t{}", i.module, i.name))
        .collect()
}

/// How one file compared.
enum Outcome {
    /// Same imports, same streams, same trailing bytes.
    Exact,
    /// Same imports up to the first point where only the default unpickler stops; the
    /// analyser went on, as looser loaders do.
    Bracketed,
    Disagrees(String),
}

/// Compares one file.
fn compare(bytes: &[u8], oracle: &OracleVerdict) -> Outcome {
    let (report, findings) = scan_pickle_bytes(bytes, &Limits::default());
    let strict = import_set(&report, false);
    let all = import_set(&report, true);
    let diverged = strict != all || report.streams.iter().any(|s| s.divergence.is_some());
    // The default unpickler stops at the first divergence, so what the analyser found
    // before it is exactly what CPython imported; the rest is what looser loaders add.
    let imports_agree = strict == oracle.imports && oracle.imports.is_subset(&all);
    let complete = report.streams.iter().filter(|s| s.complete).count() as u64;
    let shape_agrees = diverged || (complete == oracle.complete && report.trailing_bytes == oracle.trailing);
    if imports_agree && shape_agrees {
        return match sniffed_as_pickle(bytes, oracle, &all) {
            Some(d) => Outcome::Disagrees(d),
            None if diverged => Outcome::Bracketed,
            None => Outcome::Exact,
        };
    }
    Outcome::Disagrees(format!(
        "{}: oracle imports {:?}, analyser {:?} (all {:?}); oracle {} complete, {} trailing, error {:?}; \
         analyser {} complete, {} trailing; streams {:?}; findings {:?}",
        oracle.file,
        oracle.imports,
        strict,
        all,
        oracle.complete,
        oracle.trailing,
        oracle.error,
        complete,
        report.trailing_bytes,
        report.streams,
        findings.iter().map(|f| &f.message).collect::<Vec<_>>()
    ))
}

/// A file CPython imports from must be identified as a pickle from its content (no
/// name), and analysed to the same imports.
fn sniffed_as_pickle(bytes: &[u8], oracle: &OracleVerdict, expected: &BTreeSet<String>) -> Option<String> {
    if oracle.imports.is_empty() {
        return None;
    }
    // Identified as a pickle, or as another format that is also one (a polyglot).
    let report = analyze_bytes(bytes, None, &Limits::default());
    let polyglot = report.has_finding(FindingKind::PicklePolyglot);
    if !matches!(report.format, Format::Pickle | Format::PytorchLegacy) && !polyglot {
        return Some(format!(
            "{}: CPython imports {:?}, but the file sniffs as {:?}",
            oracle.file, oracle.imports, report.format
        ));
    }
    let found = report.pickle.as_ref().map(|p| import_set(p, true)).unwrap_or_default();
    (found != *expected).then(|| {
        format!(
            "{}: the full analysis ({:?}) finds {found:?}, the pickle walk {expected:?}",
            oracle.file, report.format
        )
    })
}

#[test]
fn analyser_agrees_with_cpython() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/gen_pickles.py");
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let (count, seed) =
        (setting("MODELWATCH_TEST_DIFF_COUNT", COUNT), setting("MODELWATCH_TEST_DIFF_SEED", SEED));
    let output = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            eprintln!("SKIPPED: python3 is not available ({e})");
            return;
        }
    };
    assert!(output.status.success(), "generator failed: {}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(summary.contains("\"opcodes_missing\": []"), "not every opcode was generated: {summary}");
    let generated = started.elapsed();

    let oracle = std::fs::read_to_string(dir.path().join("oracle.jsonl")).expect("oracle.jsonl");
    let analysing = Instant::now();
    let mut total = 0u32;
    let mut with_imports = 0u32;
    let mut bracketed = 0u32;
    let mut disagreements = Vec::new();
    for line in oracle.lines() {
        let verdict = parse_line(line);
        let bytes = std::fs::read(dir.path().join(&verdict.file)).expect("generated file");
        total += 1;
        with_imports += u32::from(!verdict.imports.is_empty());
        match compare(&bytes, &verdict) {
            Outcome::Exact => {}
            Outcome::Bracketed => bracketed += 1,
            Outcome::Disagrees(d) => disagreements.push(d),
        }
    }
    let agree = total - disagreements.len() as u32;
    eprintln!(
        "differential: {agree}/{total} files agree ({:.2}%; {} exactly, {bracketed} past a loader-dependent point), \
         {with_imports} with imports; generated + CPython in {:.1} s, analysed in {:.1} s",
        100.0 * f64::from(agree) / f64::from(total.max(1)),
        agree - bracketed,
        generated.as_secs_f64(),
        analysing.elapsed().as_secs_f64(),
    );
    assert_eq!(total, count);
    assert!(
        disagreements.is_empty(),
        "{} disagreements, the first ones:\n{}",
        disagreements.len(),
        disagreements.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The fuzzer's corpus replayed through the oracle: every input libFuzzer kept for
/// `pickle_semantics` (or the files in `$MODELWATCH_TEST_REPLAY_DIR`) must get the same
/// verdict from CPython and the analyser. Ignored by default (it needs a fuzzing run
/// first): `cargo test -p model-analysis --release --test pickle_differential --
/// --ignored`.
#[test]
#[ignore = "replays a fuzzing corpus; run after fuzzing"]
fn fuzz_corpus_agrees_with_cpython() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs: Vec<std::path::PathBuf> = match std::env::var_os("MODELWATCH_TEST_REPLAY_DIR") {
        Some(dir) => vec![dir.into()],
        None => vec![manifest.join("fuzz/generated/pickle_semantics"), manifest.join("fuzz/corpus/pickle")],
    };
    let mut files: Vec<std::path::PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("SKIPPED: no corpus in {dirs:?}");
        return;
    }
    let oracle = manifest.join("tests/differential/oracle.py");
    let mut disagreements = Vec::new();
    let (mut exact, mut bracketed) = (0u32, 0u32);
    for batch in files.chunks(500) {
        let output = match Command::new("python3").arg(&oracle).args(batch).output() {
            Ok(output) => output,
            Err(e) => {
                eprintln!("SKIPPED: python3 is not available ({e})");
                return;
            }
        };
        assert!(output.status.success(), "oracle failed: {}", String::from_utf8_lossy(&output.stderr));
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let verdict = parse_line(line);
            let bytes = std::fs::read(&verdict.file).expect("corpus file");
            match compare(&bytes, &verdict) {
                Outcome::Exact => exact += 1,
                Outcome::Bracketed => bracketed += 1,
                Outcome::Disagrees(d) => disagreements.push(d),
            }
        }
    }
    eprintln!(
        "fuzz corpus replay: {} files, {exact} exact, {bracketed} past a loader-dependent point, {} disagreements",
        files.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{}",
        disagreements.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}
