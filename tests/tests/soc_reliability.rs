//! End to end: five gRPC subscribers, one of which never reads, during a storm; and a
//! log damaged on disk.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use modelwatch_tests::{
    Sensor, grpc, require_privileges, run_actor,
    soc::{model_files, open_all, settled_last_seq, status},
    workspace_binary,
};
use proto::v1::{StreamEventsRequest, event::Payload};

/// Reads a stream until `last` arrives: (sequence numbers, events_lost seen, when done).
async fn read_until(
    mut stream: tonic::Streaming<proto::v1::Event>,
    mut last: tokio::sync::watch::Receiver<u64>,
) -> (Vec<u64>, u64, Instant) {
    let mut seqs = Vec::new();
    let mut lost_notices = 0;
    loop {
        let target = *last.borrow_and_update();
        if target > 0 && seqs.last().copied().unwrap_or(0) >= target {
            return (seqs, lost_notices, Instant::now());
        }
        let message = tokio::select! {
            // A reader that kept up has everything before the target is known, and no
            // event follows a settled storm: it must look again instead of waiting for
            // one (it did, and the test blamed the sensor for 30 s of silence).
            Ok(()) = last.changed() => continue,
            message = tokio::time::timeout(Duration::from_secs(30), stream.message()) => message,
        };
        match message {
            Ok(Ok(Some(event))) if event.seq == 0 => lost_notices += 1,
            Ok(Ok(Some(event))) => seqs.push(event.seq),
            other => panic!("the stream stopped: {other:?}"),
        }
    }
}

#[test]
fn a_subscriber_that_never_reads_does_not_slow_the_other_four() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    // Every open and map its own event: no folding of repeats.
    let config = dir.path().join("modelwatch.toml");
    std::fs::write(&config, "[kernel]\ndedup_window_ms = 0\n").expect("config");
    let config = config.display().to_string();
    let sensor = Sensor::start(&["--config", &config]);
    let model = model_files(dir.path(), 1).remove(0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let first = sensor.status["seq"].as_str().and_then(|s| s.parse::<u64>().ok()).expect("seq");
    let (done_tx, done) = tokio::sync::watch::channel(0u64);
    let (stalled, readers) = runtime.block_on(async {
        let mut stalled_client = grpc::connect(&sensor.socket).await;
        let stalled = stalled_client
            .stream_events(StreamEventsRequest { since_seq: first, ..Default::default() })
            .await
            .expect("stream")
            .into_inner();
        let mut readers = Vec::new();
        for _ in 0..4 {
            let mut client = grpc::connect(&sensor.socket).await;
            let stream = client
                .stream_events(StreamEventsRequest { since_seq: first, ..Default::default() })
                .await
                .expect("stream")
                .into_inner();
            readers.push(tokio::spawn(read_until(stream, done.clone())));
        }
        (stalled, readers)
    });
    // The storm: open + mmap of a model as fast as one process can, 4 s at a time, until
    // the log holds enough to leave a stalled reader far behind the transport's buffers
    // (one storm logged 3,137 to 17,935 events in emulated guests, 190,925 on the host).
    let storm_started = Instant::now();
    let mut last;
    loop {
        let out = std::process::Command::new(workspace_binary("mw-bench"))
            // One worker process: `storm SECS PROCS PATH`.
            .args(["storm", "4", "1"])
            .arg(&model)
            .output()
            .expect("mw-bench storm");
        assert!(out.status.success(), "storm failed");
        last = settled_last_seq(&sensor.socket);
        if last - first + 1 > 12_000 || storm_started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let storm_ended = Instant::now();
    let settled = Instant::now();
    let _ = done_tx.send(last);
    let results = runtime.block_on(async {
        let mut results = Vec::new();
        for reader in readers {
            results.push(reader.await.expect("reader"));
        }
        results
    });
    let published = last - first + 1;
    assert!(published > 10_000, "storms of 60 s logged only {published} events");
    for (mut seqs, lost_notices, finished) in results {
        // Events published after the storm settled may have arrived too.
        seqs.retain(|s| *s <= last);
        assert_eq!(lost_notices, 0, "nothing skipped for a reading subscriber");
        let expected: Vec<u64> = (first..=last).collect();
        if let Some(at) = seqs
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .or((seqs.len() != expected.len()).then_some(seqs.len().min(expected.len())))
        {
            let around = |v: &[u64]| v[at.saturating_sub(3)..(at + 3).min(v.len())].to_vec();
            panic!(
                "every event, in order: {} received, {} expected; at {at}: {:?} vs {:?}",
                seqs.len(),
                expected.len(),
                around(&seqs),
                around(&expected)
            );
        }
        // A stalled subscriber that held the others back would leave them waiting
        // forever (read_until gives up after 30 s without an event). The bound is
        // loose: the four readers decode in this test process, on two cores that the
        // sensor and the storm share, so their own speed is what it measures.
        let lag = finished.saturating_duration_since(settled);
        let storm = storm_ended - storm_started;
        eprintln!(
            "a reader finished {lag:?} after the last of {published} events was logged ({storm:?} storm)"
        );
        assert!(lag < Duration::from_secs(60), "a reader kept up: {lag:?}");
    }
    let outlets = status(&sensor.socket).outlets;
    let behind: Vec<u64> = outlets.iter().filter(|o| o.kind == "grpc").map(|o| o.behind).collect();
    assert!(
        behind.iter().any(|b| *b > published / 2),
        "the stalled subscriber is still far behind: {behind:?} of {published}"
    );
    drop(stalled);
}

#[test]
fn flipped_bytes_in_a_segment_are_skipped_with_a_gap_and_the_sensor_runs_on() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("sensor");
    std::fs::create_dir_all(&home).expect("home");
    // Few events in memory, so that readers read the files.
    let config = dir.path().join("modelwatch.toml");
    std::fs::write(&config, "[publish]\nmemory_events = 16\n").expect("config");
    let config = config.display().to_string();
    let sensor = Sensor::start_in(&home, &["--config", &config]);
    let files = model_files(dir.path(), 60);
    let _ = run_actor(dir.path(), "ollama", &["serve"], &open_all(&files));
    let last = settled_last_seq(&sensor.socket);
    let segment = std::fs::read_dir(home.join("state/events"))
        .expect("log directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "mwlog"))
        .expect("a segment");
    let length = std::fs::metadata(&segment).expect("segment").len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&segment).expect("open segment");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(length / 2)).expect("seek");
    file.write_all(&[0xA5; 16]).expect("flip bytes");
    drop(file);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (seqs, gaps) = runtime.block_on(async {
        let mut client = grpc::connect(&sensor.socket).await;
        let mut stream = client
            .stream_events(StreamEventsRequest { since_seq: 1, ..Default::default() })
            .await
            .expect("stream")
            .into_inner();
        let (mut seqs, mut gaps) = (Vec::new(), Vec::new());
        while seqs.last().copied().unwrap_or(0) < last {
            let event = tokio::time::timeout(Duration::from_secs(20), stream.message())
                .await
                .expect("in time")
                .expect("stream")
                .expect("not ended");
            match event.payload {
                Some(Payload::EventsLost(lost)) if event.seq == 0 => gaps.push(lost),
                _ => seqs.push(event.seq),
            }
        }
        (seqs, gaps)
    });
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let gap = &gaps[0];
    assert_eq!(gap.by_counter.get("log_damaged"), Some(&gap.count), "{gap:?}");
    assert!((1..=3).contains(&gap.count), "16 bytes damage one or two frames: {gap:?}");
    assert_eq!(seqs.len() as u64 + gap.count, last, "everything else is read, in order");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // The sensor runs on: status answers and new events are logged.
    let after = status(&sensor.socket);
    assert!(after.log_damaged_frames >= 1, "counted in status");
    let more_dir = dir.path().join("more");
    std::fs::create_dir_all(&more_dir).expect("more");
    let more = model_files(&more_dir, 3);
    let _ = run_actor(dir.path(), "ollama", &["serve"], &open_all(&more));
    assert!(settled_last_seq(&sensor.socket) > last, "new events are logged");
}
