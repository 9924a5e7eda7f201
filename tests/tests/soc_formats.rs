//! End to end: the formats a SOC ingests. OCSF 1.8 records of every event kind
//! validate against the 1.8.0 schema of the `ocsf-json-schema` package; so do the
//! records of a real run; OTLP logs reach a real receiver across its outage with
//! nothing missing; Prometheus metrics answer on their opt-in port.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use modelwatch_tests::{
    Sensor, require_privileges, run_actor,
    soc::{model_files, open_all, python_or_skip, script, settled_last_seq, status},
    spawn_actor,
};
use serde_json::Value;

fn validate(python: &Path, files: &[&Path]) -> Value {
    let output =
        Command::new(python).arg(script("validate_ocsf.py")).args(files).output().expect("validator");
    let text = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("validator output is not JSON ({e}): {text}{}", String::from_utf8_lossy(&output.stderr))
    });
    assert!(output.status.success(), "OCSF validation failed: {summary:#}");
    summary
}

#[test]
fn every_event_kind_maps_to_valid_ocsf_1_8() {
    let Some(python) = python_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("samples.ocsf.jsonl");
    let mut out = std::fs::File::create(&path).expect("create");
    let mut kinds = 0;
    for (kind, events) in modelwatch::publish::ocsf::samples::every_kind() {
        assert!(!events.is_empty(), "{kind:?} has no sample event (ocsf/samples.rs)");
        kinds += 1;
        for event in events {
            writeln!(out, "{}", modelwatch::publish::ocsf::json_line(&event)).expect("write");
        }
    }
    drop(out);
    let summary = validate(&python, &[&path]);
    let classes = summary["classes"].as_object().expect("classes");
    let covered: usize = classes.values().map(|k| k.as_array().map_or(0, Vec::len)).sum();
    assert!(covered >= kinds, "every kind was validated: {summary:#}");
    for class in ["1001 ", "1004 ", "1007 ", "2004 ", "4001 "] {
        assert!(classes.keys().any(|k| k.starts_with(class)), "class {class} is used: {summary:#}");
    }
    assert!(summary["ai_models"].as_u64() > Some(0), "ai_model objects validated");
}

#[test]
fn a_real_run_writes_valid_ocsf_and_serves_metrics() {
    require_privileges!();
    let Some(python) = python_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let ocsf_file = dir.path().join("out/events.ocsf.jsonl");
    let metrics_port = free_port();
    let ocsf_arg = ocsf_file.display().to_string();
    let metrics_arg = format!("127.0.0.1:{metrics_port}");
    let sensor = Sensor::start(&[
        "--json-file",
        &ocsf_arg,
        "--json-file-format",
        "ocsf",
        "--metrics-listen",
        &metrics_arg,
    ]);
    let models = model_files(dir.path(), 3);
    let script = format!("{};openmap:{};listen:127.0.0.1:11434", open_all(&models), models[0].display());
    let _ = run_actor(dir.path(), "ollama", &["serve"], &script);
    let _ = settled_last_seq(&sensor.socket);
    std::thread::sleep(Duration::from_millis(500));
    let summary = validate(&python, &[&ocsf_file]);
    let kinds: Vec<String> = summary["classes"]
        .as_object()
        .expect("classes")
        .values()
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for kind in ["sensor_status", "process_exec", "model_file_opened", "model_file_mapped", "listener_opened"]
    {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in the OCSF file: {summary:#}");
    }

    let metrics = http_get(metrics_port, "/metrics");
    let opened = metrics
        .lines()
        .find_map(|l| l.strip_prefix("modelwatch_events_published_total{kind=\"model_file_opened\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(opened >= Some(3), "the three opens are counted: {opened:?}");
    for family in [
        "modelwatch_events_lost_total",
        "modelwatch_ring_buffer_bytes ",
        "modelwatch_ring_buffer_fill_bytes{ring=\"files\",of=\"peak\"} ",
        "modelwatch_subscribers{kind=\"file\"} 1",
        "modelwatch_work_queue_depth{queue=\"",
        "modelwatch_hook_info{watches=\"open\",backend=\"",
        "modelwatch_log_bytes ",
    ] {
        assert!(metrics.contains(family), "{family} missing from:\n{metrics}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

fn http_get(port: u16, path: &str) -> String {
    let attempt = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    // Connection-level errors are retried: the port was chosen free, but the machine
    // is shared.
    let mut last_error = None;
    for _ in 0..5 {
        match attempt() {
            Ok(response) => {
                assert!(response.starts_with("HTTP/1.1 200"), "{response}");
                return response;
            }
            Err(error) => last_error = Some(error),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("GET {path} on 127.0.0.1:{port}: {last_error:?}");
}

/// The OTLP receiver (Python, grpcio + opentelemetry-proto) on `port`, appending to
/// `out`.
fn start_receiver(python: &Path, port: u16, out: &Path) -> Child {
    let mut child = Command::new(python)
        .arg(script("otlp_receiver.py"))
        .args(["--port", &port.to_string(), "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the OTLP receiver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("receiver output");
    assert_eq!(line.trim(), "listening");
    child
}

#[test]
fn otlp_logs_reach_the_collector_across_its_outage_in_order() {
    require_privileges!();
    let Some(python) = python_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let received = dir.path().join("received.jsonl");
    let mut receiver = start_receiver(&python, port, &received);
    let endpoint = format!("http://127.0.0.1:{port}");
    let sensor = Sensor::start(&["--otlp-endpoint", &endpoint]);
    let first = sensor.status["seq"].as_str().and_then(|s| s.parse::<u64>().ok()).expect("seq");
    let models = dir.path().join("models");
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).expect("copies");
    std::fs::create_dir_all(&models).expect("models");
    let _ = model_files(&models, 5);
    // Events keep coming for 6 s; the collector is down from 1.5 s to 3.5 s.
    let mut churn = spawn_actor(
        dir.path(),
        "ollama",
        &["serve"],
        &format!("churn:{}:{}:6000", models.display(), copies.display()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    receiver.kill().expect("stop the receiver");
    let _ = receiver.wait();
    std::thread::sleep(Duration::from_secs(2));
    let mut receiver = start_receiver(&python, port, &received);
    let _ = churn.wait();
    let last = settled_last_seq(&sensor.socket);
    // The shipper retries with backoff (30 s at most between tries): wait for it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut records = Vec::new();
    while Instant::now() < deadline {
        records = read_records(&received);
        if records.iter().any(|(_, seq)| *seq >= last) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    let instance = sensor.status["instance"].as_str().expect("instance").to_owned();
    assert!(records.iter().all(|(i, _)| *i == instance), "every record names its instance");
    let total = records.len();
    let mut seen = std::collections::BTreeSet::new();
    let unique: Vec<u64> = records.iter().map(|(_, seq)| *seq).filter(|seq| seen.insert(*seq)).collect();
    let expected: Vec<u64> = (first..=last).collect();
    if let Some(at) = unique.iter().zip(&expected).position(|(a, b)| a != b) {
        let around = |v: &[u64]| v[at.saturating_sub(3)..(at + 3).min(v.len())].to_vec();
        panic!("after removing duplicates, at {at}: {:?} vs {:?}", around(&unique), around(&expected));
    }
    assert_eq!(unique.len(), expected.len(), "after removing duplicates: all ({total} records)");
    let otlp =
        status(&sensor.socket).outlets.into_iter().find(|o| o.kind == "otlp").expect("the OTLP outlet");
    eprintln!(
        "OTLP: {} events, {total} records received ({} duplicates), outlet {otlp:?}",
        unique.len(),
        total - unique.len()
    );
}

/// (instance, seq) of every record the receiver acknowledged, in arrival order.
fn read_records(path: &Path) -> Vec<(String, u64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v["instance"].as_str()?.to_owned(), v["seq"].as_u64()?)))
        .filter(|(_, seq)| *seq > 0)
        .collect()
}
