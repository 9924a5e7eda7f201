//! Real ML pickles stay clean (no finding at medium or above) through the allowlist:
//! NumPy arrays and scikit-learn estimators pickled by the real libraries
//! (`tests/fixtures/ml`, made by its `make_fixtures.py`), and torch checkpoints in the
//! three layouts torch writes (hand-built: torch is not installed here).

mod support;

use std::path::{Path, PathBuf};

use model_analysis::{
    Format, ImportVerdict, Limits, ModelReport, Root, Severity, analyze_bytes, analyze_path,
};
use support::pickle_writer::{torch_checkpoint, torch_state_dict};
use support::zip_writer::{ZipEntry, pytorch_zip, zip};

fn findings(report: &ModelReport) -> String {
    report.findings.iter().map(|f| format!("[{:?}] {}", f.severity, f.message)).collect::<Vec<_>>().join("\n")
}

#[track_caller]
fn assert_clean(report: &ModelReport, what: &str) {
    assert!(report.max_severity() < Some(Severity::Medium), "{what}:\n{}", findings(report));
    let pickle = report.pickle.as_ref().expect("a pickle report");
    assert!(
        pickle.imports.iter().all(|i| i.verdict == ImportVerdict::Allowed),
        "{what}: {:?}",
        pickle.imports
    );
}

fn fixtures(extension: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn numpy_and_sklearn_pickles_are_clean() {
    let root = Root::host().expect("host root");
    let files = fixtures("pkl");
    assert!(files.len() >= 30, "only {} fixtures", files.len());
    for path in files {
        let (report, _) = analyze_path(&root, &path, &Limits::default()).expect("analyse");
        assert_eq!(report.format, Format::Pickle, "{}", path.display());
        assert_clean(&report, &path.display().to_string());
    }
}

#[test]
fn torch_checkpoints_are_clean_in_every_layout() {
    for (name, data) in [("state dict", torch_state_dict()), ("checkpoint", torch_checkpoint())] {
        // A raw pickle (torch.save(..., pickle_module=...), or any joblib-free dump).
        assert_clean(&analyze_bytes(&data, Some(Path::new("model.pt")), &Limits::default()), name);
        // The zip layout (torch >= 1.6): archive/data.pkl, storages, version.
        let report =
            analyze_bytes(&pytorch_zip("archive", &data), Some(Path::new("model.pt")), &Limits::default());
        assert_eq!(report.format, Format::PytorchZip);
        assert_clean(&report, name);
        // The legacy layout: magic, protocol, sys_info, the object, storage keys, then
        // the storages' raw bytes.
        let mut legacy = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
        legacy.extend_from_slice(b"\x80\x02M\xe9\x03.");
        legacy.extend_from_slice(b"\x80\x02}q\x00(X\x10\x00\x00\x00protocol_versionq\x01M\xe9\x03u.");
        legacy.extend_from_slice(&data);
        legacy.extend_from_slice(b"\x80\x02]q\x00(X\x01\x00\x00\x000q\x01X\x01\x00\x00\x001q\x02e.");
        for _ in 0..3 {
            legacy.extend_from_slice(&4u64.to_le_bytes());
            legacy.extend_from_slice(&[0x3f, 0x80, 0, 0].repeat(4));
        }
        let report = analyze_bytes(&legacy, Some(Path::new("old.pt")), &Limits::default());
        assert_eq!(report.format, Format::PytorchLegacy);
        assert_clean(&report, name);
        let pickle = report.pickle.as_ref().expect("pickle");
        assert_eq!(pickle.stream_count, 6, "five pickles, then an attempt at the storages");
        assert!(pickle.trailing_bytes > 0);
    }
}

#[test]
fn zip_members_are_identified_by_content() {
    // A pickle stored as data.txt is still walked: clean when benign...
    let report =
        analyze_bytes(&zip(&[ZipEntry::stored("data.txt", &torch_checkpoint())]), None, &Limits::default());
    assert_clean(&report, "benign data.txt");
    // ...and critical when not.
    let payload = support::pickle_writer::stack_global_call("os", "system", "id");
    for entry in [ZipEntry::stored("data.txt", &payload), ZipEntry::deflated("notes/readme.md", &payload)] {
        let report = analyze_bytes(&zip(&[entry]), None, &Limits::default());
        assert_eq!(report.max_severity(), Some(Severity::Critical), "{}", findings(&report));
    }
    // Text and binary members are not pickles.
    let report = analyze_bytes(
        &zip(&[
            ZipEntry::stored("a.txt", b"(hello world) this is text\n"),
            ZipEntry::stored("b.bin", &[0u8; 5000]),
        ]),
        None,
        &Limits::default(),
    );
    assert!(report.pickle.is_none(), "{:?}", report.pickle);
}

#[test]
fn joblib_dumps_are_clean() {
    let root = Root::host().expect("host root");
    let files = fixtures("joblib");
    assert!(files.len() >= 7, "only {} fixtures", files.len());
    for path in files {
        let (report, _) = analyze_path(&root, &path, &Limits::default()).expect("analyse");
        assert_clean(&report, &path.display().to_string());
    }
}
