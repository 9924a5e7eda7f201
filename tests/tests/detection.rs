//! End to end: real probes, real syscalls, the sensor's JSON lines.

use std::time::Duration;

use modelwatch_tests::{
    Sensor, gguf_header, kind, pid_of, require_privileges, run_actor, sparse_file, u64_of,
};

const WAIT: Duration = Duration::from_secs(20);
const GIB: u64 = 1 << 30;

#[test]
fn ollama_serve_is_classified_as_the_ollama_runtime() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = run_actor(dir.path(), "ollama", &["serve"], "");
    let exec = sensor
        .next_matching(WAIT, |e| kind(e) == "process_exec" && pid_of(e) == u64::from(pid))
        .expect("a process_exec for the ollama process");
    assert_eq!(exec["process"]["runtime"], "RUNTIME_OLLAMA", "{exec}");
    assert_eq!(exec["process_exec"]["runtime_role"], "server", "{exec}");
    assert_eq!(
        exec["process"]["argv"],
        serde_json::json!([dir.path().join("ollama").display().to_string(), "serve"])
    );
    assert!(exec["process"]["exe"].as_str().unwrap_or("").ends_with("/ollama"), "{exec}");
    let exit = sensor
        .next_matching(WAIT, |e| kind(e) == "process_exit" && pid_of(e) == u64::from(pid))
        .expect("the runtime's exit is published too");
    assert_eq!(exit["process_exit"]["exit_code"], 0);
}

#[test]
fn an_ollama_blob_opened_and_mapped_by_a_child_is_a_gguf_model() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let digest = "4f1d7a0e9b0c4b1e8d3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";
    let blob = dir.path().join("models/blobs").join(format!("sha256-{digest}"));
    sparse_file(&blob, &gguf_header("tiny", "apache-2.0"), 3 * GIB);
    let blob_text = blob.display().to_string();
    let script = format!("spawn:openmap:{blob_text}");
    let parent = run_actor(dir.path(), "loader", &[], &script);
    let child_exe = dir.path().join("loader").display().to_string();
    // The test's own write of the blob is reported too (as a write); skip it.
    let me = u64::from(std::process::id());
    let is_blob = |e: &serde_json::Value, event: &str| {
        kind(e) == event && e[event]["file"]["path"] == blob_text.as_str() && pid_of(e) != me
    };
    let opened = sensor.next_matching(WAIT, |e| is_blob(e, "model_file_opened")).expect("model_file_opened");
    let mapped = sensor.next_matching(WAIT, |e| is_blob(e, "model_file_mapped")).expect("model_file_mapped");
    for (event, name) in [(&opened, "model_file_opened"), (&mapped, "model_file_mapped")] {
        let file = &event[name]["file"];
        assert_eq!(file["format"], "MODEL_FORMAT_GGUF", "{event}");
        assert_eq!(u64_of(&file["identity"]["size"]), 3 * GIB, "{event}");
        assert_ne!(pid_of(event), u64::from(parent), "the child, not the parent, opened it: {event}");
        assert_ne!(pid_of(event), 0, "{event}");
        assert_eq!(event["process"]["exe"], child_exe.as_str(), "{event}");
    }
    assert_eq!(pid_of(&opened), pid_of(&mapped));
    assert_eq!(u64_of(&mapped["model_file_mapped"]["length"]), 1 << 20);
    assert_eq!(opened["model_file_opened"]["reasons"], serde_json::json!(["size"]));
}

#[test]
fn a_large_disk_image_is_not_a_model() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("disk.img");
    sparse_file(&image, &[], 3 * GIB);
    let image_text = image.display().to_string();
    let pid = run_actor(dir.path(), "qemu-img", &[], &format!("openmap:{image_text}"));
    // A marker after the image: once it shows up, the image's records were processed.
    let marker = dir.path().join("marker.gguf");
    std::fs::write(&marker, gguf_header("marker", "mit")).expect("marker");
    let _ = run_actor(dir.path(), "qemu-img", &[], &format!("open:{}", marker.display()));
    let events = collect_until_marker(&mut sensor, &marker.display().to_string());
    let about_image: Vec<_> = events.iter().filter(|e| e.to_string().contains(&image_text)).collect();
    assert!(about_image.is_empty(), "disk.img produced model events: {about_image:?}");
    assert!(events.iter().all(|e| pid_of(e) != u64::from(pid) || !kind(e).starts_with("model_")));
}

fn collect_until_marker(sensor: &mut Sensor, marker: &str) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    let found = sensor.next_matching(WAIT, |e| {
        seen.push(e.clone());
        kind(e) == "model_file_opened" && e["model_file_opened"]["file"]["path"] == marker
    });
    assert!(found.is_some(), "the marker model was not reported");
    seen
}
