//! Syscall-to-subscriber latency: `mw-bench paced` opens the model file at a steady rate,
//! and the gRPC subscriber measures, for every event, its arrival time minus the
//! kernel's timestamp on it (taken in the syscall). The sensor runs with folding off
//! (`dedup_window_ms = 0`), so that every open is an event, and with its batching
//! wake-up as shipped (the drain wakes every 10 ms while records flow).

use super::{Context, sensor::Sensor, storm, workloads::field};

/// Events per second measured.
pub(crate) const RATES: [u64; 2] = [1_000, 50_000];

/// One rate's outcome.
#[derive(Clone, Debug, Default)]
pub(crate) struct Latency {
    pub(crate) rate: u64,
    pub(crate) generated: u64,
    pub(crate) delivered: u64,
    /// Microseconds.
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
}

pub(crate) fn run(ctx: &Context) -> anyhow::Result<Vec<Latency>> {
    let config = storm::no_folding_config(&ctx.dir)?;
    let mut out = Vec::new();
    for rate in RATES {
        eprintln!("bench: latency at {rate} events/s for {} s", ctx.latency_secs);
        out.push(measure(ctx, &config, rate)?);
    }
    Ok(out)
}

fn measure(ctx: &Context, config: &str, rate: u64) -> anyhow::Result<Latency> {
    let sensor = Sensor::start(&ctx.bins, &ctx.dir, &["--config", config])?;
    let subscriber = storm::subscribe(ctx, &sensor)?;
    let line = storm::load(ctx, &["paced", &rate.to_string(), &ctx.latency_secs.to_string()])?;
    let summary = storm::summary(subscriber, ctx.latency_secs)?;
    drop(sensor);
    let latency = &summary["latency_us"];
    let us = |key: &str| latency[key].as_u64().unwrap_or(0);
    Ok(Latency {
        rate,
        generated: field(&line, "opens").unwrap_or(0.0) as u64,
        delivered: summary["storm_opened"].as_u64().unwrap_or(0),
        p50: us("p50"),
        p99: us("p99"),
        p999: us("p999"),
        max: us("max"),
    })
}
