//! `cargo xtask vm-test`: the end-to-end suite on the host kernel and on Debian's kernels
//! in QEMU, then a matrix of kernel × test and of the backend each hook loaded with.
//!
//! Static binaries (`static_build`) go into one busybox initramfs (`initramfs`) whose
//! `/init` runs every test executable (`suite`); each kernel (`kernels`) boots it in turn
//! (`qemu`), and the serial console is read back into results (`console`, `report`, `matrix`).
//! Logs: `target/vm/<kernel>/console.log` and `stderr.log`; matrix: `target/vm/matrix.md`.

mod console;
mod initramfs;
mod kernels;
mod matrix;
mod qemu;
mod report;
pub(crate) mod static_build;
mod suite;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use self::{report::Run, static_build::StaticBinaries, suite::SuiteOptions};

#[derive(clap::Args)]
pub(crate) struct VmTestArgs {
    /// Only the kernel packages whose name contains this (repeatable), e.g. `6.12`.
    #[arg(long = "kernel")]
    kernels: Vec<String>,
    /// Do not run the suite on the host kernel.
    #[arg(long)]
    pub(crate) no_host: bool,
    /// Backends to run the guests' suite with (repeatable): `auto` (fexit where the
    /// kernel allows it) and `tracepoint` (the fallback). Default: both.
    #[arg(long = "backend")]
    backends: Vec<String>,
    /// Pass `--nocapture` to the tests: their output as it happens, in the console log.
    #[arg(long)]
    nocapture: bool,
    /// Limit in seconds for one kernel's boot, suite and power-off (and for the host run).
    /// Measured under TCG on 2 cores (2026-11-30): the suite took 543 s on 6.1 with the
    /// auto backend and more than 720 s with the tracepoint backend, before the floods
    /// became host-only.
    #[arg(long, default_value_t = 1200)]
    timeout_secs: u64,
}

const VM_DIR: &str = "target/vm";

pub(crate) fn run(args: &VmTestArgs) -> anyhow::Result<()> {
    crate::setup::vm_packages()?;
    let binaries = static_build::build()?;
    let kernels = kernels::ensure(&args.kernels)?;
    // Half a kernel's limit for each executable: a hung one is killed and named, and the
    // others still report.
    let options = SuiteOptions { suite_timeout_secs: args.timeout_secs / 2, nocapture: args.nocapture };
    let initrd = initramfs::build(&binaries, options)?;
    let suites: Vec<String> = binaries.tests.iter().map(|t| t.name.clone()).collect();
    let mut runs = Vec::new();
    if !args.no_host {
        runs.push(run_host(&binaries, &suites, options, Duration::from_secs(args.timeout_secs))?);
    }
    let backends: Vec<&str> = if args.backends.is_empty() {
        vec!["auto", "tracepoint"]
    } else {
        args.backends.iter().map(String::as_str).collect()
    };
    for kernel in &kernels {
        for backend in &backends {
            let label = format!("{} {backend}", kernel.package);
            let dir = log_dir(&label.replace(' ', "-"))?;
            eprintln!("vm-test: booting {label} (TCG; logs in {})", dir.display());
            let started = Instant::now();
            let stderr_log = dir.join("stderr.log");
            let (console, ending) = qemu::boot(
                &kernel.vmlinuz,
                &initrd,
                backend,
                &dir.join("console.log"),
                &stderr_log,
                Duration::from_secs(args.timeout_secs),
            )?;
            let output = report::Output { console, stderr: read_lines(&stderr_log) };
            eprintln!("vm-test: {label} finished in {} s", started.elapsed().as_secs());
            runs.push(report::parse(&label, &output, &suites, &ending, started.elapsed()));
        }
    }
    let matrix = matrix::render(&runs);
    std::fs::write(Path::new(VM_DIR).join("matrix.md"), &matrix).context("writing target/vm/matrix.md")?;
    std::io::stdout().write_all(matrix.as_bytes())?;
    let failed: Vec<&str> = runs.iter().filter(|run| run.failed()).map(|run| run.label.as_str()).collect();
    if !failed.is_empty() {
        bail!("the end-to-end suite failed on: {} (logs in {VM_DIR}/<kernel>/)", failed.join(", "));
    }
    Ok(())
}

/// The same static executables and the same loop, on the host kernel.
fn run_host(
    binaries: &StaticBinaries,
    suites: &[String],
    options: SuiteOptions,
    timeout: Duration,
) -> anyhow::Result<Run> {
    let dir = log_dir("host")?;
    eprintln!("vm-test: running the suite on the host kernel (logs in {})", dir.display());
    let tests: Vec<(String, String)> =
        binaries.tests.iter().map(|t| (t.name.clone(), t.path.display().to_string())).collect();
    let stderr_log = dir.join("stderr.log");
    let _ = std::fs::remove_file(&stderr_log);
    let script = format!(
        "echo \"@@mw kernel $(uname -r)\"\n{}",
        suite::script(&tests, &stderr_log.display().to_string(), options)
    );
    let started = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting sh")?;
    let (console, ending) = console::capture(child, timeout, &dir.join("console.log"))?;
    let output = report::Output { console, stderr: read_lines(&stderr_log) };
    Ok(report::parse("host", &output, suites, &ending, started.elapsed()))
}

/// The lines of a log that may be missing (nothing was written) or not UTF-8.
fn read_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes).lines().map(|line| line.trim_end_matches('\r').to_owned()).collect()
}

/// `target/vm/<name>/`, created.
fn log_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = Path::new(VM_DIR).join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
