//! picklescan's public test files, judged the way `modelwatch scan --fail-on high` judges
//! them: through `analyze_path` and the report's highest severity.
//!
//! The files are not in this repository. They are looked for in
//! `$MODELWATCH_TEST_PICKLESCAN_CORPUS`, else in `<workspace root>/../shared/corpora/picklescan`;
//! the test prints `SKIPPED: ...` when neither exists. Their README says which are
//! malicious and which benign; the rule is coded once, in [`Class::of`].

use std::path::{Path, PathBuf};

use model_analysis::{Limits, ModelReport, Root, Severity, analyze_path};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Malicious,
    Benign,
    /// Judged on its merits (see [`edge_case_expectation`]).
    Edge,
}

/// Name fragments that mark a file malicious (the corpus README's list).
const MALICIOUS_MARKERS: &[&str] = &[
    "malicious",
    "GHSA-",
    "exploit",
    "sploit",
    "bypass",
    "codeinjection",
    "exfiltration",
    "FileIO",
    "FileHandler",
    "CodeType",
    "urlopen",
];

impl Class {
    fn of(name: &str) -> Self {
        if MALICIOUS_MARKERS.iter().any(|m| name.contains(m)) {
            return Self::Malicious;
        }
        let benign = name.starts_with("benign0_v")
            || matches!(name, "pytorch_model.bin" | "new_pytorch_model.bin" | "not_a_pickle.bin")
            || name.starts_with("int_array");
        if benign { Self::Benign } else { Self::Edge }
    }
}

/// The edge cases, judged one by one. `None`: any outcome is acceptable.
fn edge_case_expectation(name: &str) -> Option<fn(Option<Severity>) -> bool> {
    match name {
        // `cbuiltins\nexec\n(X>...`: the BINUNICODE length runs past the end of the
        // file, so CPython raises before REDUCE; but it has already imported
        // builtins.exec (find_class runs at the GLOBAL opcode). A file that makes the
        // loader resolve exec is hostile, truncated or not: critical.
        "broken_model.pkl" => Some(|s| s == Some(Severity::Critical)),
        // Object arrays: `np.load(allow_pickle=True)` unpickles them. Their pickles
        // only rebuild plain Python objects, so the warning stays below high.
        "object_array.npy" | "object_arrays.npz" | "object_arrays_compressed.npz" => {
            Some(|s| s.is_some_and(|s| s >= Severity::Medium && s < Severity::High))
        }
        // A PNG header named .pt: not a model; the name lies about the content.
        "bad_pytorch.pt" => Some(|s| s.is_some_and(|s| s < Severity::High)),
        // Its only entry (`test.txt`, 15 bytes of text) is flagged encrypted: Python's
        // zipfile (and scanners built on it) will not read it, while torch's reader
        // ignores the flag. The zip analysis reports that evasion shape at high; the
        // content itself is not a pickle. High is the right call for a scan gate.
        "benign_password_protected.zip" => Some(|s| s == Some(Severity::High)),
        _ => None,
    }
}

fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MODELWATCH_TEST_PICKLESCAN_CORPUS") {
        return Some(PathBuf::from(dir));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let dir = workspace.parent()?.join("shared/corpora/picklescan");
    dir.is_dir().then_some(dir)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["data", "data2"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn summary(report: &ModelReport) -> String {
    report
        .findings
        .iter()
        .map(|f| format!("[{:?} {:?}] {}", f.severity, f.kind, f.message))
        .collect::<Vec<_>>()
        .join("\n    ")
}

#[test]
fn picklescan_corpus() {
    let Some(dir) = corpus_dir() else {
        eprintln!("SKIPPED: picklescan corpus not found (set MODELWATCH_TEST_PICKLESCAN_CORPUS)");
        return;
    };
    let root = Root::host().expect("host root");
    let limits = Limits::default();
    let (mut malicious, mut caught, mut benign, mut false_alarms) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for path in files(&dir) {
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_owned();
        let (report, _) = analyze_path(&root, &path, &limits).expect("analyse");
        let severity = report.max_severity();
        match Class::of(&name) {
            Class::Malicious => {
                malicious += 1;
                if severity >= Some(Severity::High) {
                    caught += 1;
                } else {
                    failures.push(format!("missed {name}: {severity:?}\n    {}", summary(&report)));
                }
            }
            Class::Benign => {
                benign += 1;
                if severity >= Some(Severity::Medium) {
                    false_alarms += 1;
                    failures.push(format!("false alarm {name}: {severity:?}\n    {}", summary(&report)));
                }
            }
            Class::Edge => {
                if let Some(expected) = edge_case_expectation(&name)
                    && !expected(severity)
                {
                    failures.push(format!("edge case {name}: {severity:?}\n    {}", summary(&report)));
                }
            }
        }
    }
    eprintln!(
        "picklescan corpus: {caught}/{malicious} malicious flagged >= high, {false_alarms}/{benign} benign flagged >= medium"
    );
    assert_eq!(malicious, 94, "the corpus README lists 94 malicious files");
    assert_eq!(benign, 9, "the corpus README lists 9 benign files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
