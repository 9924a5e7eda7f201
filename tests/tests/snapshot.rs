//! The start-up snapshot: a runtime that already runs, with a model mapped and a
//! listener open, is reported when the sensor starts.

use std::time::Duration;

use modelwatch_tests::{Sensor, gguf_header, kind, pid_of, require_privileges, spawn_actor};

#[test]
fn a_runtime_running_before_the_sensor_is_reported_with_its_model_and_listener() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("preloaded.gguf");
    std::fs::write(&model, gguf_header("preloaded", "apache-2.0")).expect("model");
    let script = format!("openmap:{};listen:127.0.0.1:0;sleep:30000", model.display());
    let mut runtime = spawn_actor(dir.path(), "llama-server", &["-m", "preloaded.gguf"], &script);
    std::thread::sleep(Duration::from_millis(500));
    let pid = u64::from(runtime.id());
    let mut sensor = Sensor::start(&[]);
    let ours = |e: &serde_json::Value| pid_of(e) == pid && kind(e) != "model_hashed";
    let events: Vec<_> = sensor.collect(Duration::from_secs(3)).into_iter().filter(ours).collect();
    let _ = runtime.kill();
    let _ = runtime.wait();
    let find = |wanted: &str| {
        events.iter().find(|e| kind(e) == wanted).unwrap_or_else(|| panic!("no {wanted} in {events:#?}"))
    };
    let exec = find("process_exec");
    assert_eq!(exec["process_exec"]["snapshot"], true);
    assert_eq!(exec["process"]["runtime"], "RUNTIME_LLAMA_CPP");
    let mapped = find("model_file_mapped");
    assert_eq!(mapped["model_file_mapped"]["snapshot"], true);
    assert_eq!(mapped["model_file_mapped"]["file"]["path"], model.display().to_string());
    assert_eq!(mapped["model_file_mapped"]["file"]["format"], "MODEL_FORMAT_GGUF");
    let listener = find("listener_opened");
    assert_eq!(listener["listener_opened"]["snapshot"], true);
    assert_eq!(listener["listener_opened"]["exposure"], "EXPOSURE_LOOPBACK");
}
