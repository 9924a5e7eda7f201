//! Helpers of the SOC delivery tests: the Python clients in `tests/python`, stubs
//! generated from the proto exactly as the README tells a SOC to, and model files to
//! make events with.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

/// The tests' Python, or `None` after printing why the test is skipped.
#[must_use]
pub fn python_or_skip() -> Option<PathBuf> {
    match crate::test_python() {
        Ok(python) => Some(python),
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            None
        }
    }
}

/// A script of `tests/python`.
#[must_use]
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

/// The workspace's `proto` directory.
#[must_use]
pub fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("proto")
}

/// Generates the Python stubs into `out` as the README says:
/// `python -m grpc_tools.protoc -I proto --python_out=OUT --grpc_python_out=OUT
/// modelwatch/v1/*.proto`.
pub fn generate_stubs(python: &Path, out: &Path) {
    std::fs::create_dir_all(out).expect("stubs directory");
    let status = Command::new(python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(proto_dir())
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .args(["modelwatch/v1/events.proto", "modelwatch/v1/inventory.proto", "modelwatch/v1/sensor.proto"])
        .status()
        .expect("run grpc_tools.protoc");
    assert!(status.success(), "grpc_tools.protoc failed: {status}");
}

/// Runs `stream_client.py` against the sensor's socket (`unix://` + its path, no
/// channel options) and returns the events it printed.
#[must_use]
pub fn python_stream(python: &Path, stubs: &Path, socket: &Path, args: &[&str]) -> Vec<Value> {
    let output = Command::new(python)
        .arg(script("stream_client.py"))
        .arg("--stubs")
        .arg(stubs)
        .arg("--target")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run stream_client.py");
    assert!(output.status.success(), "stream_client.py failed: {}", output.status);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `count` small GGUF files (models by content and name) in `dir`.
#[must_use]
pub fn model_files(dir: &Path, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let path = dir.join(format!("model-{i:04}.gguf"));
            std::fs::write(&path, crate::gguf_header(&format!("model {i}"), "mit")).expect("model file");
            path
        })
        .collect()
}

/// The actor script that opens every file once.
#[must_use]
pub fn open_all(files: &[PathBuf]) -> String {
    files.iter().map(|f| format!("open:{}", f.display())).collect::<Vec<_>>().join(";")
}

/// The sensor's status, over gRPC.
#[must_use]
pub fn status(socket: &Path) -> proto::v1::SensorStatus {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = crate::grpc::connect(socket).await;
        let response =
            tokio::time::timeout(Duration::from_secs(10), client.get_status(proto::v1::GetStatusRequest {}))
                .await
                .expect("GetStatus in time")
                .expect("GetStatus");
        response.into_inner().status.expect("a status")
    })
}

/// Waits until the log's last sequence stops moving (the sensor drained).
#[must_use]
pub fn settled_last_seq(socket: &Path) -> u64 {
    let mut last = status(socket).log_last_seq;
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = status(socket).log_last_seq;
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The sequence numbers of logged events (notices, numbered 0, left out).
#[must_use]
pub fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["seq"].as_u64()).filter(|s| *s > 0).collect()
}
