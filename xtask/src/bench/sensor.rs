//! `modelwatch run` (and its `floor` twin) as benchmark configurations, and the sensor's
//! status over its socket.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{Binaries, daemon::Daemon, signals};

/// A running `modelwatch run --output none`, stopped when dropped.
pub(crate) struct Sensor {
    daemon: Daemon,
    modelwatch: PathBuf,
    socket: PathBuf,
}

impl Sensor {
    /// Starts the sensor with its defaults (plus `extra` flags) and waits until its
    /// socket answers: probes attached, pipeline running.
    pub(crate) fn start(bins: &Binaries, dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(bins, dir, extra, &[])
    }

    /// As [`Sensor::start`], with `env` set for the sensor.
    pub(crate) fn start_with(
        bins: &Binaries,
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let socket_dir = dir.join("sensor");
        // A socket left by a previous run is not a live sensor; start clean.
        let _ = fs::remove_dir_all(&socket_dir);
        fs::create_dir_all(&socket_dir)?;
        let socket = socket_dir.join("mw.sock");
        let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("sensor.log"))?;
        let mut command = Command::new(&bins.modelwatch);
        command.args(["run", "--output", "none", "--socket"]).arg(&socket).args(extra);
        command.envs(env.iter().copied());
        command.stdout(Stdio::null()).stderr(log);
        let daemon = Daemon::spawn("modelwatch", &mut command, libc::SIGTERM)?;
        let mut sensor = Self { daemon, modelwatch: bins.modelwatch.clone(), socket };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            sensor.daemon.check_running().with_context(|| log_hint(dir))?;
            if sensor.socket.exists() && sensor.status().is_ok() {
                return Ok(sensor);
            }
            if Instant::now() > deadline {
                bail!("modelwatch did not answer on its socket within 60 s; {}", log_hint(dir));
            }
            signals::sleep(Duration::from_millis(100))?;
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        self.daemon.check_running()
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// `modelwatch status --output json`.
    pub(crate) fn status(&self) -> anyhow::Result<Value> {
        let out = Command::new(&self.modelwatch)
            .args(["status", "--output", "json", "--socket"])
            .arg(&self.socket)
            .stderr(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("modelwatch status failed: {}", out.status);
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

fn log_hint(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("sensor.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    format!("its last lines on stderr: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
}

/// "10 hooks attached (tracepoint ×9, raw_tracepoint ×1)": what the sensor loaded on this kernel.
pub(crate) fn hooks_summary(status: &Value) -> String {
    let hooks = status["hooks"].as_array().cloned().unwrap_or_default();
    let attached: Vec<&Value> = hooks.iter().filter(|h| h["attached"].as_bool() == Some(true)).collect();
    let mut backends = std::collections::BTreeMap::<String, usize>::new();
    for hook in &attached {
        *backends.entry(hook["backend"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    let list: Vec<String> = backends.iter().map(|(b, n)| format!("{b} ×{n}")).collect();
    format!("{} of {} hooks attached ({})", attached.len(), hooks.len(), list.join(", "))
}

/// `modelwatch floor`: do-nothing programs on the same hooks; returns its
/// "floor attached N hooks" line.
pub(crate) fn start_floor(bins: &Binaries) -> anyhow::Result<(Daemon, String)> {
    let mut command = Command::new(&bins.modelwatch);
    command.arg("floor").stderr(Stdio::inherit());
    let mut daemon = Daemon::spawn_reading("modelwatch floor", &mut command, libc::SIGTERM)?;
    let line = daemon.wait_line("floor attached", Duration::from_secs(60))?;
    Ok((daemon, line))
}
