//! End to end: stock third-party clients on the Unix socket, exactly as the README's
//! "SOC delivery" section tells a SOC to use it: Python stubs generated with
//! grpcio-tools, `grpc.insecure_channel("unix:///...")` with no channel options.

use std::{collections::BTreeSet, process::Command, time::Duration};

use modelwatch_tests::{
    Sensor, require_privileges, run_actor,
    soc::{generate_stubs, model_files, open_all, python_or_skip, python_stream, seqs, settled_last_seq},
};

#[test]
fn a_python_client_subscribes_disconnects_and_resumes_without_loss_or_duplicates() {
    require_privileges!();
    let Some(python) = python_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let stubs = dir.path().join("stubs");
    generate_stubs(&python, &stubs);
    let sensor = Sensor::start(&[]);
    let files = model_files(dir.path(), 40);
    let pid = run_actor(dir.path(), "ollama", &["serve"], &open_all(&files));
    let last = settled_last_seq(&sensor.socket);
    assert!(last >= 41, "40 opens and more were logged: {last}");
    // First session: the first 15 events, then the client goes away.
    let first = python_stream(&python, &stubs, &sensor.socket, &["--since", "1", "--max-events", "15"]);
    let resume_from = seqs(&first).last().copied().expect("events") + 1;
    // Second session: resumes where it stopped.
    let second = python_stream(
        &python,
        &stubs,
        &sensor.socket,
        &["--since", &resume_from.to_string(), "--until-seq", &last.to_string()],
    );
    let all: Vec<u64> = seqs(&first).into_iter().chain(seqs(&second)).collect();
    assert_eq!(all, (1..=last).collect::<Vec<_>>(), "every event once, in order");
    // Typed events: kinds, processes and paths as the proto defines them.
    let opened: BTreeSet<&str> = first
        .iter()
        .chain(&second)
        .filter(|e| e["kind"] == "model_file_opened" && e["pid"] == pid)
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(opened.len(), 40, "every model open, with its path");
    assert!(first.iter().chain(&second).all(|e| e["instance"] == sensor.status["instance"]));
}

#[test]
fn health_and_reflection_answer_stock_clients() {
    require_privileges!();
    let Some(python) = python_or_skip() else { return };
    let sensor = Sensor::start(&[]);
    let program = r#"
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
channel = grpc.insecure_channel("unix://" + sys.argv[1])
health = health_pb2_grpc.HealthStub(channel)
for service in ("", "modelwatch.v1.Sensor"):
    print(service or "(server)", health_pb2.HealthCheckResponse.ServingStatus.Name(
        health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status))
database = ProtoReflectionDescriptorDatabase(channel)
print("services", sorted(database.get_services()))
from google.protobuf.descriptor_pool import DescriptorPool
service = DescriptorPool(database).FindServiceByName("modelwatch.v1.Sensor")
print("methods", sorted(m.name for m in service.methods))
"#;
    let output = Command::new(&python).arg("-c").arg(program).arg(&sensor.socket).output().expect("python");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("(server) SERVING"), "{text}");
    assert!(text.contains("modelwatch.v1.Sensor SERVING"), "{text}");
    assert!(text.contains("'modelwatch.v1.Sensor'") && text.contains("'grpc.health.v1.Health'"), "{text}");
    assert!(
        text.contains("methods ['GetStatus', 'ListInventory', 'ScanPath', 'StreamEvents', 'StreamOcsf']"),
        "{text}"
    );
}

#[test]
fn status_codes_are_precise() {
    require_privileges!();
    let sensor = Sensor::start(&[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut client = modelwatch_tests::grpc::connect(&sensor.socket).await;
        let future = proto::v1::StreamEventsRequest { since_seq: 1 << 40, ..Default::default() };
        let status = client.stream_events(future).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
        let bad_kind = proto::v1::StreamEventsRequest {
            filter: Some(proto::v1::EventFilter { kinds: vec![4321], ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(
            client.stream_events(bad_kind).await.expect_err("refused").code(),
            tonic::Code::InvalidArgument
        );
        let relative = proto::v1::ScanPathRequest { path: "models".into(), ..Default::default() };
        assert_eq!(
            client.scan_path(relative).await.expect_err("refused").code(),
            tonic::Code::InvalidArgument
        );
        let missing = proto::v1::ScanPathRequest { path: "/nonexistent/models".into(), ..Default::default() };
        assert_eq!(client.scan_path(missing).await.expect_err("refused").code(), tonic::Code::NotFound);
    });
}

#[test]
fn scan_path_identifies_models_on_the_sensor_s_machine() {
    require_privileges!();
    let sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = model_files(dir.path(), 3);
    std::fs::write(dir.path().join("notes.txt"), "not a model").expect("write");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let response = runtime.block_on(async {
        let mut client = modelwatch_tests::grpc::connect(&sensor.socket).await;
        let request = proto::v1::ScanPathRequest {
            path: dir.path().display().to_string(),
            hash: true,
            ..Default::default()
        };
        tokio::time::timeout(Duration::from_secs(60), client.scan_path(request))
            .await
            .expect("in time")
            .expect("scan")
    });
    let response = response.into_inner();
    assert_eq!(response.files_examined, 4);
    assert_eq!(response.files.len(), 3, "the models only: {:?}", response.files);
    for file in &response.files {
        assert_eq!(file.format, proto::v1::ModelFormat::Gguf as i32);
        assert_eq!(file.sha256.len(), 64, "hashed on request");
        assert!(file.metadata.as_ref().is_some_and(|m| m.name.starts_with("model ")));
    }
}
