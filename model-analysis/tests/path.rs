//! `analyze_path`: special files are refused without blocking; provenance from real
//! cache layouts (symlinks, manifests); sparse multi-GB files.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use model_analysis::{Format, Limits, OpenError, ProvenanceSource, Root, analyze_path};
use support::gguf_writer::Gguf;

const SHA: &str = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";

/// Runs `f` on another thread and fails the test if it takes longer than `limit`: a
/// blocking open of a FIFO would otherwise hang the suite.
/// `analyze_path` from the host root, the report alone.
fn scan(path: &Path) -> Result<model_analysis::ModelReport, OpenError> {
    analyze_path(&Root::host().expect("root"), path, &Limits::default()).map(|(report, _)| report)
}

fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("analyze_path blocked")
}

#[test]
fn fifo_named_model_gguf_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("model.gguf");
    let status = Command::new("mkfifo").arg(&fifo).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    let path = fifo.clone();
    let result = within(Duration::from_secs(5), move || scan(&path));
    match result {
        Err(OpenError::NotRegular { kind, .. }) => assert_eq!(kind, "FIFO"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A symlink to the FIFO is refused the same way (metadata follows links).
    let link = dir.path().join("link.gguf");
    symlink(&fifo, &link).expect("symlink");
    let result = within(Duration::from_secs(5), move || scan(&link));
    assert!(matches!(result, Err(OpenError::NotRegular { .. })), "{result:?}");
}

#[test]
fn devices_and_directories_are_refused() {
    let result = within(Duration::from_secs(5), || scan(Path::new("/dev/zero")));
    assert!(matches!(result, Err(OpenError::NotRegular { kind: "character device", .. })), "{result:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let result = scan(dir.path());
    assert!(matches!(result, Err(OpenError::NotRegular { kind: "directory", .. })), "{result:?}");
    let missing = scan(&dir.path().join("absent.gguf"));
    assert!(matches!(missing, Err(OpenError::Io { .. })), "{missing:?}");
}

#[test]
fn hugging_face_snapshot_symlink_gives_revision_and_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("hub/models--acme--tiny-llm");
    let blob = repo.join("blobs").join(SHA);
    fs::create_dir_all(blob.parent().expect("parent")).expect("mkdir");
    fs::write(&blob, Gguf::new(3).str("general.name", "tiny").build(0)).expect("write");
    let snapshot = repo.join("snapshots/abc123/tiny.gguf");
    fs::create_dir_all(snapshot.parent().expect("parent")).expect("mkdir");
    symlink(format!("../../blobs/{SHA}"), &snapshot).expect("symlink");

    let report = scan(&snapshot).expect("analyze");
    assert_eq!(report.format, Format::Gguf);
    let p = report.provenance.expect("provenance");
    assert_eq!(p.source, ProvenanceSource::HuggingFace);
    assert_eq!(p.organization.as_deref(), Some("acme"));
    assert_eq!(p.repository.as_deref(), Some("tiny-llm"));
    assert_eq!(p.revision.as_deref(), Some("abc123"));
    assert_eq!(p.file.as_deref(), Some("tiny.gguf"));
    assert_eq!(p.digest, Some(format!("sha256:{SHA}")));
}

#[test]
fn ollama_blob_gets_its_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let blob = models.join(format!("blobs/sha256-{SHA}"));
    fs::create_dir_all(blob.parent().expect("parent")).expect("mkdir");
    fs::write(&blob, Gguf::new(3).str("general.architecture", "qwen2").build(0)).expect("write");
    let manifest = models.join("manifests/registry.local/library/qwen2.5/0.5b");
    fs::create_dir_all(manifest.parent().expect("parent")).expect("mkdir");
    fs::write(&manifest, format!(r#"{{"schemaVersion":2,"layers":[{{"digest":"sha256:{SHA}","size":1}}]}}"#))
        .expect("write");
    let report = scan(&blob).expect("analyze");
    let p = report.provenance.expect("provenance");
    assert_eq!(p.source, ProvenanceSource::Ollama);
    assert_eq!(p.tags, ["qwen2.5:0.5b"]);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn sparse_four_gib_gguf_is_analysed_from_its_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.gguf");
    let g = Gguf::new(3).str("general.architecture", "llama").str("general.size_label", "8B").tensor(
        "w",
        &[65_536, 16_384],
        0,
        0,
    ); // 4 GiB of F32
    fs::write(&path, g.build(0)).expect("write");
    let file = fs::OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(g.build(0).len() as u64 + (4 << 30)).expect("sparse extend");
    drop(file);
    let started = Instant::now();
    let report = scan(&path).expect("analyze");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.gguf.expect("gguf").parameter_count, Some(1 << 30));
}
