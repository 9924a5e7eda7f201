//! End to end: the kernel filter and the loss accounting, proved by the counters.

use std::time::Duration;

use modelwatch_tests::{Sensor, grpc, kind, pid_of, require_privileges, run_actor, u64_of};
use proto::v1::GetStatusRequest;

fn counters(sensor: &Sensor) -> std::collections::HashMap<String, u64> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut client = grpc::connect(&sensor.socket).await;
        let status = client.get_status(GetStatusRequest {}).await.expect("GetStatus").into_inner();
        status.status.expect("status").kernel_counters
    })
}

#[test]
fn ten_thousand_small_opens_are_filtered_in_the_kernel() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("notes.txt");
    std::fs::write(&small, b"hello").expect("small file");
    let before = counters(&sensor);
    let pid = run_actor(dir.path(), "editor", &[], &format!("reopen:{}:10000", small.display()));
    let after = counters(&sensor);
    let seen = after["open_seen"] - before["open_seen"];
    let forwarded = after["open_forwarded"] - before["open_forwarded"];
    assert!(seen >= 10_000, "the open hook saw only {seen} opens");
    // Other processes on the machine may open candidates meanwhile; ours are 10,000.
    assert!(forwarded < 100, "{forwarded} opens were forwarded: the kernel filter let small files through");
    let ours: Vec<_> = sensor
        .collect(Duration::from_millis(500))
        .into_iter()
        .filter(|e| pid_of(e) == u64::from(pid))
        .collect();
    assert!(ours.is_empty(), "events for small-file opens: {ours:?}");
}

#[test]
fn with_a_tiny_ring_buffer_delivered_plus_lost_equals_generated() {
    require_privileges!();
    // One page of ring buffer: a flood of candidates must overflow it. The stdout
    // reader reads from the durable log at its own pace, so only the kernel drops
    // records.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("modelwatch.toml");
    // Folding repeats off: every open must be a record here (folding has its own test).
    std::fs::write(&config, "[kernel]\ndedup_window_ms = 0\n").expect("config");
    let config = config.display().to_string();
    let mut sensor = Sensor::start(&["--ring-buffer-bytes", "4096", "--config", &config]);
    let model = dir.path().join("flood.gguf");
    std::fs::write(&model, modelwatch_tests::gguf_header("flood", "mit")).expect("model");
    const GENERATED: u64 = 20_000;
    let before = counters(&sensor);
    let pid = run_actor(dir.path(), "flooder", &[], &format!("reopen:{}:{GENERATED}", model.display()));
    // Losses are counted machine-wide (the kernel cannot tell whose record it dropped):
    // the stream must announce every loss the kernel counted, and ours must add up.
    let mut delivered = 0u64;
    let mut announced_total = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        for event in sensor.collect(Duration::from_millis(500)) {
            match kind(&event) {
                "model_file_opened" if pid_of(&event) == u64::from(pid) => delivered += 1,
                "events_lost" if event["events_lost"]["source"] == "LOSS_SOURCE_KERNEL_RING_BUFFER" => {
                    announced_total = u64_of(&event["events_lost"]["total"]);
                }
                _ => {}
            }
        }
        let now = counters(&sensor);
        if announced_total
            == now["open_lost"]
                + now["mmap_lost"]
                + now["exec_lost"]
                + now["exit_lost"]
                + now["listen_lost"]
                + now["accel_lost"]
            && now["open_lost"] > before["open_lost"]
            // The stream may still be behind the counters (slow guests): wait for it.
            && delivered + (now["open_lost"] - before["open_lost"]) >= GENERATED
            || std::time::Instant::now() > deadline
        {
            break;
        }
    }
    let after = counters(&sensor);
    let kernel_lost = after["open_lost"] - before["open_lost"];
    let all_lost: u64 = ["open_lost", "mmap_lost", "exec_lost", "exit_lost", "listen_lost", "accel_lost"]
        .iter()
        .map(|k| after[*k])
        .sum();
    eprintln!(
        "generated {GENERATED}: delivered {delivered}, kernel lost {kernel_lost} (machine-wide), announced total {announced_total}"
    );
    assert!(kernel_lost > 0, "a 4 KiB ring buffer did not overflow; the test proves nothing");
    // The fill gauge saw the ring that overflowed: something waiting, never more than it holds.
    let rings = modelwatch_tests::soc::status(&sensor.socket).rings;
    let files = rings.iter().find(|r| r.name == "files").expect("a fill gauge for the file ring");
    eprintln!("file ring: peak {} of {} bytes", files.peak_used_bytes, files.size_bytes);
    assert_eq!(files.size_bytes, 4096);
    assert!(files.peak_used_bytes > 0 && files.peak_used_bytes <= 4096, "{files:?}");
    assert_eq!(announced_total, all_lost, "every kernel loss is announced in the stream");
    assert!(delivered <= GENERATED);
    assert!(delivered + kernel_lost >= GENERATED, "delivered {delivered} + lost {kernel_lost} < generated");
}
