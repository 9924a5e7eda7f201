//! End to end: a gRPC client on the Unix socket receives the same events.

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use modelwatch_tests::{Sensor, gguf_header, grpc, kind, pid_of, require_privileges, run_actor};
use proto::v1::{StreamEventsRequest, event::Payload};

#[test]
fn a_grpc_subscriber_sees_what_stdout_sees() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let mode = std::fs::metadata(&sensor.socket).expect("socket").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is owner-only");
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("served.gguf");
    std::fs::write(&model, gguf_header("served", "mit")).expect("model");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut client = runtime.block_on(grpc::connect(&sensor.socket));
    let request = StreamEventsRequest { since_seq: 1, kinds: vec![] };
    let mut stream = runtime.block_on(client.stream_events(request)).expect("StreamEvents").into_inner();
    let pid = run_actor(
        dir.path(),
        "ollama",
        &["serve"],
        &format!("open:{};listen:127.0.0.1:11434", model.display()),
    );
    let from_stdout = sensor
        .next_matching(Duration::from_secs(20), |e| {
            kind(e) == "listener_opened" && pid_of(e) == u64::from(pid)
        })
        .expect("stdout shows the listener");
    let mut grpc_kinds = Vec::new();
    let mut first_seq = None;
    let found = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(event) = stream.message().await.expect("stream") {
                first_seq.get_or_insert(event.seq);
                if event.process.as_ref().is_some_and(|p| p.pid == pid) {
                    grpc_kinds.push(modelwatch::publish::format::kind(&event));
                    if matches!(event.payload, Some(Payload::ListenerOpened(_))) {
                        return event;
                    }
                }
            }
            panic!("the stream ended");
        })
        .await
        .expect("the gRPC stream shows the listener")
    });
    assert_eq!(first_seq, Some(1), "replay from since_seq = 1 starts at the status event");
    assert_eq!(found.seq, from_stdout["seq"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0));
    // The digest (model_hashed) is computed in the background and may land anywhere.
    grpc_kinds.retain(|kind| *kind != "model_hashed");
    assert_eq!(grpc_kinds, vec!["process_exec", "model_file_opened", "listener_opened"]);
}

#[test]
fn an_unknown_kind_filter_is_invalid_argument() {
    require_privileges!();
    let sensor = Sensor::start(&[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime.block_on(async {
        let mut client = grpc::connect(&sensor.socket).await;
        client
            .stream_events(StreamEventsRequest { since_seq: 0, kinds: vec!["nope".into()] })
            .await
            .expect_err("rejected")
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("nope"));
}
