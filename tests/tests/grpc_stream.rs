//! End to end: a gRPC client on the Unix socket receives the same events.

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use modelwatch_tests::{Sensor, gguf_header, grpc, kind, pid_of, require_privileges, run_actor};
use proto::v1::StreamEventsRequest;

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
    let request = StreamEventsRequest { since_seq: 1, ..StreamEventsRequest::default() };
    let mut stream = runtime.block_on(client.stream_events(request)).expect("StreamEvents").into_inner();
    let pid = run_actor(
        dir.path(),
        "ollama",
        &["serve"],
        &format!("open:{};listen:127.0.0.1:11434", model.display()),
    );
    // The kinds of this process's events, in sequence order, until all three arrived:
    // the model's identification runs beside the event path, so the listener may come
    // first; both outlets must agree on what came and in which order.
    let wanted = ["process_exec", "model_file_opened", "listener_opened"];
    let mut from_stdout = Vec::new();
    while !wanted.iter().all(|w| from_stdout.iter().any(|(_, k)| k == w)) {
        let event = sensor
            .next_matching(Duration::from_secs(20), |e| pid_of(e) == u64::from(pid))
            .unwrap_or_else(|| panic!("stdout stopped short: {from_stdout:?}"));
        let seq: u64 = event["seq"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        from_stdout.push((seq, kind(&event).to_owned()));
    }
    let mut from_grpc = Vec::new();
    let mut first_seq = None;
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            while from_grpc.len() < from_stdout.len() {
                let event = stream.message().await.expect("stream").expect("the stream ended");
                first_seq.get_or_insert(event.seq);
                if event.process.as_ref().is_some_and(|p| p.pid == pid) {
                    from_grpc.push((event.seq, modelwatch::publish::format::kind(&event).to_owned()));
                }
            }
        })
        .await
        .expect("the gRPC stream shows the same events");
    });
    assert_eq!(first_seq, Some(1), "replay from since_seq = 1 starts at the status event");
    assert_eq!(from_grpc, from_stdout);
}

#[test]
fn an_unknown_kind_filter_is_invalid_argument() {
    require_privileges!();
    let sensor = Sensor::start(&[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime.block_on(async {
        let mut client = grpc::connect(&sensor.socket).await;
        client
            .stream_events(StreamEventsRequest {
                since_seq: 0,
                kinds: vec!["nope".into()],
                ..StreamEventsRequest::default()
            })
            .await
            .expect_err("rejected")
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("nope"));
}
