//! End to end: the live events carry what the analysis knows (format, metadata,
//! provenance, findings) and the hash follows.

use std::time::Duration;

use modelwatch_tests::{Sensor, gguf_header, kind, pid_of, require_privileges, run_actor, u64_of};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The load of `path` by `pid` (the test's own writes of the file are reported too).
fn opened(sensor: &mut Sensor, path: &str, pid: u32) -> Value {
    sensor
        .next_matching(WAIT, |e| {
            kind(e) == "model_file_opened"
                && e["model_file_opened"]["file"]["path"] == path
                && pid_of(e) == u64::from(pid)
        })
        .unwrap_or_else(|| panic!("no model_file_opened for {path} by {pid}"))
}

/// What deep analysis found in `path` (it follows the first event of the file).
fn analyzed(sensor: &mut Sensor, path: &str) -> Value {
    sensor
        .next_matching(WAIT, |e| kind(e) == "model_analyzed" && e["model_analyzed"]["path"] == path)
        .unwrap_or_else(|| panic!("no model_analyzed for {path}"))
}

fn hashed(sensor: &mut Sensor, path: &str) -> Value {
    sensor
        .next_matching(WAIT, |e| kind(e) == "model_hashed" && e["model_hashed"]["path"] == path)
        .unwrap_or_else(|| panic!("no model_hashed for {path}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), bytes)?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or("").to_owned()
}

#[test]
fn an_ollama_blob_carries_license_tag_and_a_verified_digest() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let content = gguf_header("Tiny Llama", "cc-by-nc-4.0");
    let digest = sha256_hex(&content);
    let models = dir.path().join("models");
    let blob = models.join("blobs").join(format!("sha256-{digest}"));
    std::fs::create_dir_all(blob.parent().expect("parent")).expect("blobs");
    std::fs::write(&blob, &content).expect("blob");
    let manifest = models.join("manifests/registry.ollama.ai/library/tinyllama/latest");
    std::fs::create_dir_all(manifest.parent().expect("parent")).expect("manifests");
    let layers = format!(
        r#"{{"schemaVersion":2,"layers":[{{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:{digest}","size":{}}}]}}"#,
        content.len()
    );
    std::fs::write(&manifest, layers).expect("manifest");
    // A small file: only its name makes it a candidate... and `sha256-<hex>` has no
    // extension, so a runtime must open it (Ollama's runner is marked at exec).
    let path = blob.display().to_string();
    let pid = run_actor(dir.path(), "ollama", &["runner"], &format!("open:{path}"));
    let event = opened(&mut sensor, &path, pid);
    let file = &event["model_file_opened"]["file"];
    // Identification: format and what the path says, at once.
    assert_eq!(file["format"], "MODEL_FORMAT_GGUF", "{event}");
    assert_eq!(file["provenance"]["source"], "ollama");
    assert_eq!(file["claimed_sha256"], digest.as_str());
    assert_eq!(file["analysis"], "ANALYSIS_STATE_PENDING");
    assert_eq!(event["model_file_opened"]["reasons"], serde_json::json!(["marked_runtime"]), "{event}");
    // Deep analysis follows: metadata, and the Ollama tag from the manifests.
    let analysis = analyzed(&mut sensor, &path);
    let found = &analysis["model_analyzed"];
    assert_eq!(found["metadata"]["license"], "cc-by-nc-4.0", "{analysis}");
    assert_eq!(found["metadata"]["name"], "Tiny Llama");
    assert_eq!(found["metadata"]["architecture"], "llama");
    assert_eq!(found["provenance"]["name"], "tinyllama:latest", "{analysis}");
    // It links to the first event of that identity (this one, or an earlier one).
    let seq = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    assert!(
        seq(&found["announced_seq"]) > 0 && seq(&found["announced_seq"]) <= seq(&event["seq"]),
        "{analysis}"
    );
    let hash = hashed(&mut sensor, &path);
    assert_eq!(hash["model_hashed"]["sha256"], digest.as_str());
    assert_eq!(hash["model_hashed"]["claimed_sha256_matches"], true);
    assert_eq!(u64_of(&hash["model_hashed"]["identity"]["size"]), content.len() as u64);
}

#[test]
fn a_blob_whose_content_differs_from_its_name_is_a_finding() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let lie = "0".repeat(64);
    let blob = dir.path().join("models/blobs").join(format!("sha256-{lie}"));
    std::fs::create_dir_all(blob.parent().expect("parent")).expect("blobs");
    std::fs::write(&blob, gguf_header("tampered", "apache-2.0")).expect("blob");
    let path = blob.display().to_string();
    let _ = run_actor(dir.path(), "ollama", &["runner"], &format!("open:{path}"));
    let hash = hashed(&mut sensor, &path);
    assert_eq!(hash["model_hashed"]["claimed_sha256_matches"], false, "{hash}");
    let findings = hash["model_hashed"]["findings"].as_array().expect("findings");
    assert!(findings.iter().any(|f| f["kind"] == "digest_mismatch"), "{hash}");
}

#[test]
fn a_pickle_that_runs_a_command_is_reported_critical() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // os.system("id") through STACK_GLOBAL with memoised strings; never unpickled.
    let payload = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.";
    let model = dir.path().join("model.pt");
    std::fs::write(&model, payload).expect("pickle");
    let path = model.display().to_string();
    let pid = run_actor(dir.path(), "trainer", &[], &format!("open:{path}"));
    let event = opened(&mut sensor, &path, pid);
    assert_eq!(event["model_file_opened"]["write"], false);
    assert_eq!(event["model_file_opened"]["file"]["format"], "MODEL_FORMAT_PICKLE", "{event}");
    let analysis = analyzed(&mut sensor, &path);
    let findings = analysis["model_analyzed"]["findings"].as_array().expect("findings");
    let dangerous = findings.iter().find(|f| f["kind"] == "pickle_dangerous_import").expect("a finding");
    assert_eq!(dangerous["severity"], "SEVERITY_CRITICAL");
    assert!(dangerous["message"].as_str().unwrap_or("").contains("os.system"), "{dangerous}");
    assert_eq!(event["process"]["runtime"], "RUNTIME_UNKNOWN_LOADER");
}

#[test]
fn writing_a_model_file_is_reported_as_a_write_not_a_load() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("download.gguf");
    std::fs::write(&model, gguf_header("download", "mit")).expect("write");
    let path = model.display().to_string();
    let me = u64::from(std::process::id());
    let event = sensor
        .next_matching(WAIT, |e| {
            kind(e) == "model_file_opened" && e["model_file_opened"]["file"]["path"] == path.as_str()
        })
        .expect("the write is reported");
    assert_eq!(pid_of(&event), me);
    assert_eq!(event["model_file_opened"]["write"], true, "{event}");
    assert_ne!(event["process"]["runtime"], "RUNTIME_UNKNOWN_LOADER", "a writer is not a runtime: {event}");
}
