//! The sensor at rest: CPU over a quiet minute, resident memory, and resident memory
//! with thousands of live processes in its process cache.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::bail;

use super::{
    Context,
    host::{cpu_seconds, rss_kib},
    sensor::Sensor,
    signals,
};

#[derive(Clone, Debug, Default)]
pub(crate) struct Idle {
    pub(crate) secs: u64,
    /// Percent of one core.
    pub(crate) cpu_percent: f64,
    pub(crate) rss_idle_kib: u64,
    pub(crate) processes: usize,
    pub(crate) processes_cached: u64,
    pub(crate) rss_processes_kib: u64,
}

pub(crate) fn run(ctx: &Context) -> anyhow::Result<Idle> {
    let sensor = Sensor::start(&ctx.bins, &ctx.dir, &[])?;
    // Start-up work (BTF, process snapshot) is not idle time.
    signals::sleep(Duration::from_secs(5))?;
    let pid = sensor.pid();
    let (cpu_before, start) = (cpu_seconds(pid)?, Instant::now());
    signals::sleep(Duration::from_secs(ctx.idle_secs))?;
    let cpu = cpu_seconds(pid)? - cpu_before;
    let elapsed = start.elapsed().as_secs_f64();
    let mut idle = Idle {
        secs: ctx.idle_secs,
        cpu_percent: cpu / elapsed * 100.0,
        rss_idle_kib: rss_kib(pid)?,
        processes: ctx.processes,
        ..Idle::default()
    };
    let sleepers = Sleepers::spawn(ctx.processes)?;
    idle.processes_cached = wait_cached(&sensor, ctx.processes)?;
    idle.rss_processes_kib = rss_kib(pid)?;
    drop(sleepers);
    Ok(idle)
}

/// Waits until the sensor's process cache holds at least `wanted` entries or stops
/// growing; returns its size.
fn wait_cached(sensor: &Sensor, wanted: usize) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut last, mut stable_since) = (0, Instant::now());
    loop {
        let cached = sensor.status()?["processes_cached"].as_u64().unwrap_or(0);
        if cached >= wanted as u64 || stable_since.elapsed() > Duration::from_secs(10) {
            return Ok(cached);
        }
        if cached != last {
            (last, stable_since) = (cached, Instant::now());
        }
        if Instant::now() > deadline {
            return Ok(cached);
        }
        signals::sleep(Duration::from_millis(500))?;
    }
}

/// `sleep` processes (exec'd, so the sensor caches them), killed by pid when dropped.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(count: usize) -> anyhow::Result<Self> {
        let mut sleepers = Self(Vec::with_capacity(count));
        for _ in 0..count {
            signals::check()?;
            let child = Command::new("sleep")
                .arg("900")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            match child {
                Ok(child) => sleepers.0.push(child),
                Err(error) => bail!("starting sleeper {} of {count}: {error}", sleepers.0.len() + 1),
            }
        }
        Ok(sleepers)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}
