//! Reads a child's output line by line under a deadline, keeps it in a log file and
//! echoes the lines that show progress.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::Child,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

/// How a captured child ended.
pub(crate) enum Ending {
    Exited(std::process::ExitStatus),
    /// Killed at the deadline.
    TimedOut,
}

/// Everything the child printed on stdout, and how it ended. The child is killed if it
/// outlives `timeout`.
pub(crate) fn capture(
    mut child: Child,
    timeout: Duration,
    log: &Path,
) -> anyhow::Result<(Vec<String>, Ending)> {
    let stdout = child.stdout.take().context("the child's stdout is not piped")?;
    let mut log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let (tx, rx) = mpsc::channel();
    // A thread, because reading blocks and the deadline must not.
    std::thread::spawn(move || {
        // Raw bytes: a serial console may carry anything, UTF-8 or not.
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_owned();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let deadline = started + timeout;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                writeln!(log, "{line}").context("writing the console log")?;
                if shows_progress(&line) {
                    eprintln!("  [{:>4} s] {line}", started.elapsed().as_secs());
                }
                lines.push(line);
            }
            // The child closed its output: it is exiting.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().context("waiting for the child")?;
                return Ok((lines, Ending::Exited(status)));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                return Ok((lines, Ending::TimedOut));
            }
        }
    }
}

/// Markers, test results and kernel panics; not the tests' captured output.
fn shows_progress(line: &str) -> bool {
    line.contains("@@mw ") || line.starts_with("test ") || line.contains("Kernel panic")
}
