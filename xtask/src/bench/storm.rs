//! The candidate storm: several processes open and map a small GGUF file as fast as they
//! can for a fixed time (every open and every map is a candidate: two records per pair),
//! while a gRPC subscriber counts what reaches it. Whatever is not delivered must be
//! announced as lost (`events_lost`); the rest is unaccounted loss.
//!
//! The kernel folds one process's repeated opens of one file within a second into one
//! record (`dedup_window_ms`), which would turn the storm into a few records a second.
//! The throughput storms therefore run with folding off (a configuration file with
//! `dedup_window_ms = 0`); one more storm with the defaults shows the folding itself:
//! there, generated = delivered + folded + announced lost.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{Context, daemon::Daemon, host, sensor::Sensor, workloads::field};

/// The storm file's name; the subscriber counts events on paths ending with it.
pub(crate) const MODEL_NAME: &str = "bench-storm.gguf";

/// One storm's outcome.
#[derive(Clone, Debug, Default)]
pub(crate) struct Storm {
    /// open + mmap calls the storm made (each one a candidate).
    pub(crate) generated: u64,
    pub(crate) storm_secs: f64,
    /// Storm file events the subscriber received.
    pub(crate) delivered: u64,
    /// First to last delivered storm event, as the subscriber saw them.
    pub(crate) delivery_secs: f64,
    /// Records the kernel could not put in the ring buffer, as `events_lost` announced.
    pub(crate) kernel_lost: u64,
    /// Events the sensor skipped for this subscriber (announced too).
    pub(crate) lagged: u64,
    /// The kernel's own open/mmap counters (forwarded + lost), to cross-check.
    pub(crate) kernel_candidates: u64,
    /// CPU time the sensor process used from the storm's start to the last delivery.
    pub(crate) sensor_cpu_secs: f64,
    /// Opens and maps the kernel folded (its `*_folded` counters): 0 with folding off.
    pub(crate) folded: u64,
    /// Syscall-to-subscriber latency of the delivered events, p50 and p99 (µs).
    pub(crate) latency_p50_us: u64,
    pub(crate) latency_p99_us: u64,
    /// Processes that generated it.
    pub(crate) procs: u64,
}

impl Storm {
    pub(crate) fn delivered_per_sec(&self) -> f64 {
        self.delivered as f64 / self.delivery_secs.max(self.storm_secs).max(1e-9)
    }

    /// The sensor's CPU cost per delivered event, in µs (its capacity is the inverse).
    pub(crate) fn sensor_us_per_event(&self) -> f64 {
        self.sensor_cpu_secs * 1e6 / self.delivered.max(1) as f64
    }

    pub(crate) fn generated_per_sec(&self) -> f64 {
        self.generated as f64 / self.storm_secs.max(1e-9)
    }

    /// Generated but neither delivered, folded nor announced as lost.
    pub(crate) fn unaccounted(&self) -> i64 {
        self.generated as i64 - (self.delivered + self.folded + self.kernel_lost + self.lagged) as i64
    }
}

/// A small file with a valid GGUF v3 header: a model by content and by extension.
pub(crate) fn write_model(path: &Path) -> anyhow::Result<()> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // tensors
    out.extend_from_slice(&1u64.to_le_bytes()); // key/value pairs
    let (key, value) = ("general.architecture", "llama");
    out.extend_from_slice(&(key.len() as u64).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&8u32.to_le_bytes()); // GGUF_TYPE_STRING
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
    out.resize(4096, 0);
    std::fs::write(path, out).context("writing the storm's model file")
}

/// A configuration file that turns the kernel's folding of repeated opens off; returns
/// its path.
pub(crate) fn no_folding_config(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("no-folding.toml");
    std::fs::write(&path, "[kernel]\ndedup_window_ms = 0\n").context("writing the storm's configuration")?;
    Ok(path.to_string_lossy().into_owned())
}

/// An `mw-subscriber` on `sensor`'s socket, counting events of the bench's model file.
pub(crate) fn subscribe(ctx: &Context, sensor: &Sensor) -> anyhow::Result<Daemon> {
    let mut command = Command::new(&ctx.bins.mw_subscriber);
    command.arg(sensor.socket()).arg(MODEL_NAME).arg("3000").stderr(Stdio::inherit());
    let mut subscriber = Daemon::spawn_reading("mw-subscriber", &mut command, libc::SIGTERM)?;
    subscriber.wait_line("subscribed", Duration::from_secs(30))?;
    Ok(subscriber)
}

/// Runs `mw-bench ARGS... MODEL` to the end; returns its `key=value` line.
pub(crate) fn load(ctx: &Context, args: &[&str]) -> anyhow::Result<String> {
    let out =
        Command::new(&ctx.bins.mw_bench).args(args).arg(&ctx.model_file).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        super::signals::check()?;
        bail!("mw-bench {} failed: {}", args.first().unwrap_or(&""), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Stops the subscriber (allowing `secs` of work plus two minutes to drain) and returns
/// the JSON summary it printed last.
pub(crate) fn summary(subscriber: Daemon, secs: u64) -> anyhow::Result<Value> {
    let lines = subscriber.finish(Duration::from_secs(secs + 120))?;
    lines.iter().rev().find_map(|l| serde_json::from_str(l).ok()).context("mw-subscriber printed no summary")
}

/// Runs one storm against a fresh sensor (`extra`: its flags, e.g. a ring buffer size).
pub(crate) fn run(ctx: &Context, extra: &[&str]) -> anyhow::Result<Storm> {
    let sensor = Sensor::start(&ctx.bins, &ctx.dir, extra)?;
    let subscriber = subscribe(ctx, &sensor)?;
    let cpu_before = host::cpu_seconds(sensor.pid())?;
    let (secs, procs) = (ctx.storm_secs.to_string(), ctx.storm_procs.to_string());
    let line = load(ctx, &["storm", &secs, &procs])?;
    let summary = summary(subscriber, ctx.storm_secs)?;
    let sensor_cpu_secs = host::cpu_seconds(sensor.pid())? - cpu_before;
    drop(sensor);
    let number = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
    let counters = &summary["kernel_counters"];
    let lost = &summary["lost"];
    let count = |key: &str| field(&line, key).unwrap_or(0.0) as u64;
    Ok(Storm {
        generated: count("opens") + count("maps"),
        storm_secs: field(&line, "elapsed_ns").unwrap_or(0.0) / 1e9,
        delivered: number(&summary["storm_opened"]) + number(&summary["storm_mapped"]),
        delivery_secs: summary["storm_span_s"].as_f64().unwrap_or(0.0),
        kernel_lost: number(&lost["open_lost"]) + number(&lost["mmap_lost"]),
        lagged: number(&lost["LOSS_SOURCE_SUBSCRIBER_LAGGED"]),
        kernel_candidates: ["open_forwarded", "open_lost", "mmap_forwarded", "mmap_lost"]
            .iter()
            .map(|k| number(&counters[*k]))
            .sum(),
        sensor_cpu_secs,
        folded: number(&counters["open_folded"]) + number(&counters["mmap_folded"]),
        latency_p50_us: summary["latency_us"]["p50"].as_u64().unwrap_or(0),
        latency_p99_us: summary["latency_us"]["p99"].as_u64().unwrap_or(0),
        procs: ctx.storm_procs,
    })
}

/// `runs` storms with folding off and the default ring buffer, then as many with
/// `large_ring` bytes (0: none), then one with the defaults (folding on), each series
/// labelled.
pub(crate) fn series(
    ctx: &Context,
    large_ring: u64,
    runs: usize,
) -> anyhow::Result<Vec<(String, Vec<Storm>)>> {
    let config = no_folding_config(&ctx.dir)?;
    let mut plans =
        vec![(String::from("1 MiB (default), folding off"), vec!["--config", config.as_str()], runs)];
    let large = large_ring.to_string();
    if large_ring > 0 {
        let label = format!("{}, folding off", super::report::bytes(large_ring));
        plans.push((label, vec!["--config", config.as_str(), "--ring-buffer-bytes", large.as_str()], runs));
    }
    plans.push((String::from("1 MiB (default), folding on (defaults)"), Vec::new(), 1));
    let mut series = Vec::new();
    for (label, extra, runs) in plans {
        let mut storms = Vec::new();
        for run in 0..runs {
            eprintln!("bench: storm {}/{runs}: {label}, {} processes", run + 1, ctx.storm_procs);
            storms.push(self::run(ctx, &extra)?);
        }
        series.push((label, storms));
    }
    Ok(series)
}
