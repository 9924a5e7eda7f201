//! The timed workloads: five syscall loops (run by `mw-bench`, which reports ns per
//! operation) and a `make -j2` of the generated C project (wall time).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use super::Context;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Workload {
    Open,
    Mmap,
    Exec,
    Bind,
    Ioctl,
    Make,
}

impl Workload {
    pub(crate) const ALL: [Self; 6] =
        [Self::Open, Self::Mmap, Self::Exec, Self::Bind, Self::Ioctl, Self::Make];
    /// The syscall loops (`mw-bench`).
    pub(crate) const SYSCALLS: [Self; 5] = [Self::Open, Self::Mmap, Self::Exec, Self::Bind, Self::Ioctl];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Open => "open+close (small file)",
            Self::Mmap => "mmap+munmap (small file)",
            Self::Exec => "fork+exec /bin/true",
            Self::Bind => "socket+bind+listen+close",
            Self::Ioctl => "ioctl FIONREAD (no accelerator)",
            Self::Make => "make -j2 (30 C files)",
        }
    }

    /// Iterations at scale 1: each loop runs for a fraction of a second unloaded, and
    /// a few seconds under auditd.
    fn iterations(self) -> u64 {
        match self {
            Self::Open | Self::Mmap | Self::Ioctl => 200_000,
            Self::Exec => 2_000,
            Self::Bind => 50_000,
            Self::Make => 1,
        }
    }
}

/// Runs `workload` once and returns nanoseconds per operation (per build for `make`).
pub(crate) fn run(workload: Workload, ctx: &Context) -> anyhow::Result<f64> {
    run_scaled(workload, ctx, 1.0)
}

/// As [`run`], with `factor` times the usual iterations.
pub(crate) fn run_scaled(workload: Workload, ctx: &Context, factor: f64) -> anyhow::Result<f64> {
    super::signals::check()?;
    let n = ((workload.iterations() as f64 * ctx.scale * factor).round() as u64).max(1).to_string();
    let small = ctx.small_file.to_string_lossy().into_owned();
    let args: Vec<&str> = match workload {
        Workload::Open => vec!["open", &n, &small],
        Workload::Mmap => vec!["mmap", &n, &small],
        Workload::Exec => vec!["exec", &n],
        Workload::Bind => vec!["bind", &n],
        Workload::Ioctl => vec!["ioctl", &n],
        Workload::Make => return make(&ctx.project),
    };
    let out = Command::new(&ctx.bins.mw_bench).args(&args).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        super::signals::check()?;
        bail!("mw-bench {} failed: {}", args.join(" "), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    field(&text, "ns_per_op").with_context(|| format!("mw-bench printed no ns_per_op: {text}"))
}

/// A `key=value` field of a workload's output line.
pub(crate) fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// `make clean` (untimed), then a timed `make -j2`.
fn make(project: &Path) -> anyhow::Result<f64> {
    quiet_make(project, &["clean"])?;
    let start = Instant::now();
    quiet_make(project, &["-j2"])?;
    Ok(start.elapsed().as_nanos() as f64)
}

fn quiet_make(project: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("make")
        .arg("-s")
        .args(args)
        .current_dir(project)
        .stdout(Stdio::null())
        .status()
        .context("running make")?;
    if !status.success() {
        super::signals::check()?;
        bail!("make {} failed in the generated project: {status}", args.join(" "));
    }
    Ok(())
}
