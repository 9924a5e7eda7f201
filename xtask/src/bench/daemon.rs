//! Processes the bench starts and must stop: each is a guard that stops its process by
//! pid when dropped (also on error and on Ctrl-C), so no configuration outlives the run.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::signals;

/// A long-running process of ours, stopped with `stop_signal` when dropped.
pub(crate) struct Daemon {
    name: &'static str,
    child: Child,
    stop_signal: i32,
    /// Its stdout lines, when it was started with `spawn_reading`.
    lines: Option<mpsc::Receiver<String>>,
}

impl Daemon {
    /// Starts `command` in its own process group: a Ctrl-C on the terminal reaches only
    /// the bench, which then stops its daemons in order (rules before auditd...).
    pub(crate) fn spawn(name: &'static str, command: &mut Command, stop_signal: i32) -> anyhow::Result<Self> {
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Self { name, child, stop_signal, lines: None })
    }

    /// As [`Daemon::spawn`], with its stdout read line by line in the background.
    pub(crate) fn spawn_reading(
        name: &'static str,
        command: &mut Command,
        stop_signal: i32,
    ) -> anyhow::Result<Self> {
        let mut daemon = Self::spawn(name, command.stdout(Stdio::piped()), stop_signal)?;
        let stdout = daemon.child.stdout.take().context("stdout")?;
        daemon.lines = Some(read_lines(stdout));
        Ok(daemon)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line containing `wanted` and returns it.
    pub(crate) fn wait_line(&mut self, wanted: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let lines = self.lines.as_ref().context("stdout not captured")?;
        loop {
            signals::check()?;
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains(wanted) => return Ok(line),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("{} exited before printing `{wanted}`", self.name)
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not print `{wanted}` within {timeout:?}", self.name);
            }
        }
    }

    /// Fails if the process has already exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }

    /// Waits (up to `timeout`) for the process to exit by itself; returns its stdout.
    pub(crate) fn finish(mut self, timeout: Duration) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        while self.child.try_wait()?.is_none() {
            signals::check()?;
            if Instant::now() > deadline {
                bail!("{} did not finish within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(self.lines.as_ref().map(|l| l.try_iter().collect()).unwrap_or_default())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id() as i32;
        // SAFETY: the pid of our own child, not yet reaped, so not reused.
        unsafe { libc::kill(pid, self.stop_signal) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: {} (pid {pid}) ignored its stop signal; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
