//! The SOC delivery figures (a benchmark, not a test): run as root after
//! `cargo build --release --bins`.
//!
//! - `mw-soc-bench fanout N SECS`: a candidate storm (`mw-bench storm`) with N gRPC
//!   subscribers; prints events/s each subscriber received, loss, the sensor's CPU per
//!   event, its peak RSS, and the durable log's bytes per event and write
//!   amplification.
//! - `mw-soc-bench latency RATE SECS`: opens of a model file at RATE/s, read live by the
//!   Python client (`tests/python/stream_client.py`, `MODELWATCH_TEST_PYTHON`); prints
//!   syscall-to-receipt latency percentiles.
//!
//! The sensor runs with `--output none`, its socket and log in a directory under
//! `target/` (a real disk, not tmpfs).

#![expect(clippy::print_stdout, reason = "the benchmark's report")]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use modelwatch_tests::{grpc, soc};
use prost::Message as _;
use proto::v1::{StreamEventsRequest, event::Payload};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("fanout") => fanout(number(1, 5) as usize, number(2, 10)),
        Some("latency") => latency(number(1, 1000), number(2, 10)),
        _ => {
            eprintln!("usage: mw-soc-bench fanout SUBSCRIBERS SECS | latency RATE SECS");
            std::process::exit(2);
        }
    }
}

/// A binary built beside this one.
fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent().map(|dir| dir.join(name)).expect("a directory")
}

struct Running {
    child: Child,
    socket: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: our child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start_sensor(extra: &[&str]) -> Running {
    let base = workspace_binary("modelwatch").parent().map(Path::to_path_buf).expect("target dir");
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let socket = dir.path().join("api/modelwatch.sock");
    let state = dir.path().join("state");
    let child = Command::new(workspace_binary("modelwatch"))
        .args(["run", "--output", "none", "--socket"])
        .arg(&socket)
        .arg("--state-dir")
        .arg(&state)
        .args(extra)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start modelwatch");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() || std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "modelwatch did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    Running { child, socket, state, _dir: dir }
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Tally {
    events: u64,
    payload_bytes: u64,
    lost_notices: u64,
    kernel_lost: u64,
    out_of_order: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

async fn subscribe(
    socket: PathBuf,
    stop: tokio::sync::watch::Receiver<bool>,
    reached: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Tally {
    let mut client = grpc::connect(&socket).await;
    let mut stream = client.stream_events(StreamEventsRequest::default()).await.expect("stream").into_inner();
    let mut tally = Tally::default();
    let mut previous = 0;
    loop {
        if *stop.borrow() {
            return tally;
        }
        let Ok(Ok(Some(event))) = tokio::time::timeout(Duration::from_millis(500), stream.message()).await
        else {
            continue;
        };
        let now = Instant::now();
        tally.first.get_or_insert(now);
        tally.last = Some(now);
        if event.seq == 0 {
            tally.lost_notices += 1;
            continue;
        }
        if previous != 0 && event.seq != previous + 1 {
            tally.out_of_order += 1;
        }
        previous = event.seq;
        reached.store(event.seq, std::sync::atomic::Ordering::Relaxed);
        tally.events += 1;
        tally.payload_bytes += event.encoded_len() as u64;
        if let Some(Payload::EventsLost(lost)) = &event.payload
            && lost.source == proto::v1::LossSource::KernelRingBuffer as i32
        {
            tally.kernel_lost += lost.count;
        }
    }
}

fn fanout(subscribers: usize, secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every open and map its own event: no folding of repeats.
    let config = dir.path().join("modelwatch.toml");
    std::fs::write(&config, "[kernel]\ndedup_window_ms = 0\n").expect("config");
    let config_arg = config.display().to_string();
    let sensor = start_sensor(&["--config", &config_arg]);
    let pid = sensor.child.id();
    let model = soc::model_files(dir.path(), 1).remove(0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reached: Vec<_> =
        (0..subscribers).map(|_| std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0))).collect();
    let readers: Vec<_> = reached
        .iter()
        .map(|r| runtime.spawn(subscribe(sensor.socket.clone(), stopped.clone(), std::sync::Arc::clone(r))))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let log_before = soc::status(&sensor.socket);
    let (cpu_before, written_before) = (cpu_seconds(pid), write_bytes(pid));
    let storm = Command::new(workspace_binary("mw-bench"))
        // One worker process: `storm SECS PROCS PATH`.
        .args(["storm", &secs.to_string(), "1"])
        .arg(&model)
        .output()
        .expect("mw-bench storm");
    let last = soc::settled_last_seq(&sensor.socket);
    // Until every subscriber has everything (or a minute passed).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && reached.iter().any(|r| r.load(std::sync::atomic::Ordering::Relaxed) < last)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = stop.send(true);
    let tallies: Vec<Tally> = runtime.block_on(async {
        let mut out = Vec::new();
        for reader in readers {
            out.push(reader.await.expect("reader"));
        }
        out
    });
    let cpu = cpu_seconds(pid) - cpu_before;
    let written = write_bytes(pid) - written_before;
    let log_after = soc::status(&sensor.socket);
    let published = last - log_before.log_last_seq;
    let rss = modelwatch_tests::peak_rss_kib(pid);
    println!("storm: {}", String::from_utf8_lossy(&storm.stdout).trim());
    println!(
        "published {published} events; sensor CPU {cpu:.2} s = {:.2} us/event",
        cpu * 1e6 / published.max(1) as f64
    );
    for (i, t) in tallies.iter().enumerate() {
        let span = match (t.first, t.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        println!(
            "subscriber {i}: {} events ({:.0}/s over {span:.1} s), gaps announced {}, out of order {}, kernel lost {}",
            t.events,
            t.events as f64 / span.max(1e-9),
            t.lost_notices,
            t.out_of_order,
            t.kernel_lost
        );
    }
    let payload = tallies.iter().map(|t| t.payload_bytes).max().unwrap_or(0);
    let log_growth = log_after.log_bytes.saturating_sub(log_before.log_bytes);
    println!(
        "log: {log_growth} bytes for {published} events = {:.1} bytes/event; payload {:.1} bytes/event; write amplification {:.3} (log bytes / payload bytes), {:.3} (bytes the sensor wrote to storage / payload bytes)",
        log_growth as f64 / published.max(1) as f64,
        payload as f64 / published.max(1) as f64,
        log_growth as f64 / payload.max(1) as f64,
        written as f64 / payload.max(1) as f64,
    );
    println!("sensor peak RSS {rss} KiB; log directory {}", sensor.state.display());
}

fn latency(rate: u64, secs: u64) {
    let Ok(python) = modelwatch_tests::test_python() else {
        eprintln!("SKIPPED: MODELWATCH_TEST_PYTHON is not set");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("modelwatch.toml");
    // Every open is its own event (no folding of repeated opens).
    std::fs::write(&config, "[kernel]\ndedup_window_ms = 0\n").expect("config");
    let config_arg = config.display().to_string();
    let sensor = start_sensor(&["--config", &config_arg]);
    let stubs = dir.path().join("stubs");
    soc::generate_stubs(&python, &stubs);
    let model = soc::model_files(dir.path(), 1).remove(0);
    let client = Command::new(&python)
        .arg(soc::script("stream_client.py"))
        .arg("--stubs")
        .arg(&stubs)
        .arg("--target")
        .arg(format!("unix://{}", sensor.socket.display()))
        .args(["--since", "0", "--kind", "model_file_opened", "--idle-seconds", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python client");
    std::thread::sleep(Duration::from_secs(2));
    let path = std::ffi::CString::new(model.display().to_string()).expect("path");
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let mut next = start;
    let mut opened = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        // SAFETY: a valid C string; closed at once.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: just opened.
            unsafe { libc::close(fd) };
            opened += 1;
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let output = client.wait_with_output().expect("client output");
    let mut latencies: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "model_file_opened")
        .filter_map(|e| Some((e["received_ns"].as_i64()? - e["time_ns"].as_i64()?) as f64 / 1e6))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN)
    };
    println!(
        "opened {opened} at {rate}/s; received {} in Python; latency ms: p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        latencies.len(),
        pick(0.5),
        pick(0.99),
        pick(0.999),
        pick(1.0)
    );
    println!("sensor peak RSS {} KiB", modelwatch_tests::peak_rss_kib(sensor.child.id()));
}
