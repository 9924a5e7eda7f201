//! What the report says about the machine, and checks that keep other activity out of
//! the figures.

use std::{fs, os::fd::AsRawFd as _, process::Command};

use anyhow::{Context as _, bail};

/// CPU model, core count and kernel release: the report's machine line (no hostname).
pub(crate) fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}

/// The commit the sensor was built from, and whether its sources had local changes.
pub(crate) fn sensor_revision() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let sources = ["sensor-user", "sensor-ebpf", "sensor-common", "model-analysis", "proto"];
    let dirty =
        git(&[&["status", "--porcelain", "--"][..], &sources[..]].concat()).is_some_and(|s| !s.is_empty());
    if dirty { format!("{commit} with uncommitted changes") } else { commit }
}

/// The 1-minute load average.
pub(crate) fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Pids of processes whose `comm` is `name`.
pub(crate) fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

/// UTC date and time, `2026-11-26` and `053122`, for the report's title and file name.
pub(crate) fn utc_now() -> anyhow::Result<(String, String)> {
    let out = Command::new("date").args(["-u", "+%Y-%m-%d %H%M%S"]).output().context("running date")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (date, time) = text.split_once(' ').context("unexpected `date` output")?;
    Ok((date.to_owned(), time.to_owned()))
}

pub(crate) fn require_root() -> anyhow::Result<()> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench loads eBPF programs and audit rules: run it as root");
    }
    Ok(())
}

/// The end-to-end tests' lock: one sensor on the machine at a time, so that a test's
/// flood does not land in the bench's figures (nor the bench's in a test's counters).
pub(crate) fn exclusive_lock() -> anyhow::Result<fs::File> {
    let path = std::env::temp_dir().join("modelwatch-e2e.lock");
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    // SAFETY: a valid descriptor; the lock is released when the file is dropped.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!("bench: waiting for a running end-to-end test to finish (its lock is held)");
        // SAFETY: as above.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("locking {}: {}", path.display(), std::io::Error::last_os_error());
        }
    }
    Ok(file)
}

/// Other tracers that would inflate every configuration's figures.
pub(crate) fn other_tracers() -> Vec<String> {
    ["modelwatch", "auditd", "bpftrace", "perf"]
        .iter()
        .flat_map(|name| pids_named(name).into_iter().map(move |pid| format!("{name} (pid {pid})")))
        .collect()
}

/// utime + stime of `pid`, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok()).context("malformed stat");
    // SAFETY: no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((field(14)? + field(15)?) as f64 / ticks_per_sec)
}

pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}
