//! The gRPC subscriber of `cargo xtask bench`'s candidate storm: counts what a client of
//! the sensor really receives, without rendering it (a JSON-printing `modelwatch watch`
//! would compete with the sensor for the same two cores and measure itself).
//!
//! `mw-subscriber SOCKET PATH_SUFFIX IDLE_MS`: prints `subscribed` once the stream is
//! open, then counts events until IDLE_MS pass without one after the first event on a
//! path ending in PATH_SUFFIX (or SIGTERM), and prints one JSON summary: events by kind,
//! the storm's file events, losses announced by `events_lost`, the storm's delivery rate,
//! the latency from the syscall (the kernel's timestamp on the event) to its arrival
//! here, and the sensor's status counters at the end.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use modelwatch_tests::grpc;
use proto::v1::{Event, GetStatusRequest, LossSource, StreamEventsRequest, event::Payload};
use serde_json::json;

#[derive(Default)]
struct Tally {
    by_kind: BTreeMap<&'static str, u64>,
    storm_opened: u64,
    storm_mapped: u64,
    lost: BTreeMap<String, u64>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Syscall-to-arrival latency of each storm event, in microseconds.
    latencies_us: Vec<u64>,
    /// Sum of the `repeats` the kernel folded into the storm's records.
    storm_repeats: u64,
}

impl Tally {
    fn add(&mut self, event: &Event, suffix: &str) {
        let storm = |file: Option<&proto::v1::ModelFile>| file.is_some_and(|f| f.path.ends_with(suffix));
        let kind = match &event.payload {
            Some(Payload::ModelFileOpened(opened)) => {
                if storm(opened.file.as_ref()) {
                    self.storm_opened += 1;
                    self.storm_repeats += opened.repeats;
                    self.mark_storm(event);
                }
                "model_file_opened"
            }
            Some(Payload::ModelFileMapped(mapped)) => {
                if storm(mapped.file.as_ref()) {
                    self.storm_mapped += 1;
                    self.storm_repeats += mapped.repeats;
                    self.mark_storm(event);
                }
                "model_file_mapped"
            }
            Some(Payload::EventsLost(lost)) => {
                let source = LossSource::try_from(lost.source).map_or("unknown", |s| s.as_str_name());
                *self.lost.entry(source.to_owned()).or_default() += lost.count;
                for (counter, count) in &lost.by_counter {
                    *self.lost.entry(counter.clone()).or_default() += count;
                }
                "events_lost"
            }
            Some(_) => "other",
            None => "empty",
        };
        *self.by_kind.entry(kind).or_default() += 1;
    }

    fn mark_storm(&mut self, event: &Event) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        if let Some(time) = &event.time {
            let nanos = u32::try_from(time.nanos).unwrap_or(0);
            let stamped =
                SystemTime::UNIX_EPOCH + Duration::new(u64::try_from(time.seconds).unwrap_or(0), nanos);
            let latency = SystemTime::now().duration_since(stamped).unwrap_or_default();
            self.latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        }
    }

    /// p50, p99, p99.9 and max of the latencies, in microseconds.
    fn latency_summary(&mut self) -> serde_json::Value {
        self.latencies_us.sort_unstable();
        let at = |q: f64| {
            let n = self.latencies_us.len();
            if n == 0 { 0 } else { self.latencies_us[((q * n as f64) as usize).min(n - 1)] }
        };
        json!({
            "n": self.latencies_us.len(),
            "p50": at(0.5),
            "p99": at(0.99),
            "p999": at(0.999),
            "max": self.latencies_us.last().copied().unwrap_or(0),
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, suffix, idle_ms] = args.as_slice() else {
        eprintln!("usage: mw-subscriber SOCKET PATH_SUFFIX IDLE_MS");
        std::process::exit(2);
    };
    let idle = Duration::from_millis(idle_ms.parse().unwrap_or(2000));
    let mut client = grpc::connect(std::path::Path::new(socket)).await;
    let request = StreamEventsRequest { since_seq: 0, ..StreamEventsRequest::default() };
    let mut stream = client.stream_events(request).await.expect("stream events").into_inner();
    print_line("subscribed");
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    let mut tally = Tally::default();
    loop {
        // Before the storm's first event, wait as long as it takes; after it, a quiet
        // `idle` means the sensor has drained everything it will deliver.
        let quiet = tally.last.map_or(Duration::from_secs(3600), |last| idle.saturating_sub(last.elapsed()));
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(event)) => tally.add(&event, suffix),
                Ok(None) => break,
                Err(status) => {
                    eprintln!("mw-subscriber: stream ended: {status}");
                    break;
                }
            },
            () = tokio::time::sleep(quiet) => break,
            _ = term.recv() => break,
        }
    }
    let status = client.get_status(GetStatusRequest {}).await.ok().and_then(|r| r.into_inner().status);
    let span = match (tally.first, tally.last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let latency = tally.latency_summary();
    let summary = json!({
        "by_kind": tally.by_kind,
        "storm_opened": tally.storm_opened,
        "storm_mapped": tally.storm_mapped,
        "storm_span_s": span,
        "storm_repeats": tally.storm_repeats,
        "latency_us": latency,
        "lost": tally.lost,
        "kernel_counters": status.as_ref().map(|s| s.kernel_counters.clone()).unwrap_or_default(),
        "records_received": status.as_ref().map_or(0, |s| s.records_received),
        "events_published": status.as_ref().map_or(0, |s| s.events_published),
    });
    print_line(&summary.to_string());
}

fn print_line(line: &str) {
    #[expect(clippy::print_stdout, reason = "the harness reads these lines")]
    {
        println!("{line}");
    }
}
