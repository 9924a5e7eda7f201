//! `cargo xtask vm-test`: the end-to-end suite on the host kernel and on Debian's kernels
//! in QEMU (x86_64 generic, PREEMPT_RT and cloud; arm64), then a matrix of kernel × test
//! and of the backend each hook loaded with.
//!
//! Static binaries per architecture (`static_build`, `arch`) go into one busybox
//! initramfs per architecture (`initramfs`) whose `/init` runs the test executables
//! (`suite`: all of them, or the named smoke subset); each kernel (`kernels`) boots it in
//! turn (`qemu`), and the serial console is read back into results (`console`, `report`,
//! `matrix`). Logs: `target/vm/<kernel>/console.log` and `stderr.log`; matrix:
//! `target/vm/matrix.md`.

mod arch;
mod console;
mod initramfs;
mod kernels;
mod matrix;
mod qemu;
mod report;
pub(crate) mod static_build;
mod suite;

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub(crate) use self::arch::Arch;
use self::{
    arch::STDERR_MARKER,
    kernels::{Coverage, KernelSpec},
    report::Run,
    static_build::StaticBinaries,
    suite::SuiteOptions,
};

#[derive(clap::Args)]
pub(crate) struct VmTestArgs {
    /// Only the kernel packages whose name contains this (repeatable), e.g. `6.12`, `rt`.
    #[arg(long = "kernel")]
    kernels: Vec<String>,
    /// Only kernels of this architecture (repeatable). Default: every kernel of the
    /// matrix.
    #[arg(long = "arch", value_enum)]
    arches: Vec<Arch>,
    /// Do not run the suite on the host kernel.
    #[arg(long)]
    pub(crate) no_host: bool,
    /// Backends to run the guests' suite with (repeatable): `auto` (fexit where the
    /// kernel allows it) and `tracepoint` (the fallback). Default: both for the kernels
    /// that run the whole suite, `auto` for the smoke columns.
    #[arg(long = "backend")]
    backends: Vec<String>,
    /// Run only the smoke subset, on every kernel.
    #[arg(long)]
    smoke: bool,
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
    let started = Instant::now();
    let selected = kernels::select(&args.kernels, &args.arches)?;
    let mut arches: Vec<Arch> = selected.iter().map(|k| k.arch).collect();
    arches.sort_unstable();
    arches.dedup();
    crate::setup::vm_packages(&arches)?;
    let kernels = kernels::ensure(selected)?;
    // Half a kernel's limit for each executable: a hung one is killed and named, and the
    // others still report.
    let options = SuiteOptions { suite_timeout_secs: args.timeout_secs / 2, nocapture: args.nocapture };
    let mut needed: Vec<Arch> = kernels.iter().map(|k| k.spec.arch).collect();
    if !args.no_host {
        needed.extend(Arch::host());
    }
    needed.sort_unstable();
    needed.dedup();
    let mut builds = BTreeMap::new();
    let mut setup_times = Vec::new();
    for arch in needed {
        let build_started = Instant::now();
        // An architecture whose kernels all run the smoke subset builds only its suites.
        let whole_suite = (!args.no_host && Arch::host() == Some(arch))
            || kernels.iter().any(|k| k.spec.arch == arch && !smoke_only(args, k.spec));
        let smoke_suites: Vec<&str> = suite::SMOKE.iter().map(|(suite, _)| *suite).collect();
        let binaries = static_build::build(arch, (!whole_suite).then_some(smoke_suites.as_slice()))?;
        let initrd = initramfs::build(arch, &binaries, options)?;
        setup_times.push((format!("static {} build + initramfs", arch.name()), build_started.elapsed()));
        builds.insert(arch, (binaries, initrd));
    }
    let mut runs = Vec::new();
    if !args.no_host
        && let Some((binaries, _)) = Arch::host().and_then(|arch| builds.get(&arch))
    {
        runs.push(run_host(binaries, options, Duration::from_secs(args.timeout_secs))?);
    }
    for kernel in &kernels {
        let (binaries, initrd) = &builds[&kernel.spec.arch];
        let smoke = smoke_only(args, kernel.spec);
        let suites: Vec<String> =
            suite::plan(&test_paths(binaries), smoke).into_iter().map(|p| p.name).collect();
        for backend in backends(args, smoke) {
            let label = format!("{} {backend}", kernel.spec.package);
            let dir = log_dir(&label.replace(' ', "-"))?;
            let subset = if smoke { ", smoke subset" } else { "" };
            eprintln!(
                "vm-test: booting {label} ({}{subset}, TCG; logs in {})",
                kernel.spec.arch.name(),
                dir.display()
            );
            let boot =
                qemu::Boot { arch: kernel.spec.arch, vmlinuz: &kernel.vmlinuz, initrd, backend, smoke };
            let mut run = run_column(&label, &boot, &dir, &suites, args.timeout_secs)?;
            // A guest kernel that panicked (seen once: an int3 Oops at a static branch in
            // syscall_trace_enter while tracepoints were switched on and off, under TCG's
            // two vCPU threads) gets one more boot; the first boot's panic stays in the
            // report, and a panic the sensor causes would recur and fail.
            if let Some(panic) = run.problems.iter().find(|p| p.starts_with("kernel: ")).cloned() {
                eprintln!("vm-test: {label}: the guest kernel panicked; booting it once more");
                std::fs::rename(dir.join("console.log"), dir.join("console.first-boot.log"))
                    .context("keeping the first boot's console log")?;
                run = run_column(&label, &boot, &dir, &suites, args.timeout_secs)?;
                run.reruns.push(format!("the first boot's guest kernel panicked ({panic}); re-run"));
            }
            run.column =
                matrix::Column { arch: kernel.spec.arch.name(), flavour: kernel.spec.flavour, smoke };
            runs.push(run);
        }
    }
    setup_times.push(("whole vm-test".to_owned(), started.elapsed()));
    let matrix = matrix::render(&runs, &setup_times);
    std::fs::write(Path::new(VM_DIR).join("matrix.md"), &matrix).context("writing target/vm/matrix.md")?;
    std::io::stdout().write_all(matrix.as_bytes())?;
    let failed: Vec<&str> = runs.iter().filter(|run| run.failed()).map(|run| run.label.as_str()).collect();
    if !failed.is_empty() {
        bail!("the end-to-end suite failed on: {} (logs in {VM_DIR}/<kernel>/)", failed.join(", "));
    }
    Ok(())
}

/// One boot of a guest kernel running the suite, parsed.
fn run_column(
    label: &str,
    boot: &qemu::Boot<'_>,
    dir: &Path,
    suites: &[String],
    timeout_secs: u64,
) -> anyhow::Result<report::Run> {
    let column_started = Instant::now();
    let stderr_log = dir.join("stderr.log");
    let _ = std::fs::remove_file(&stderr_log);
    let (console, ending) =
        qemu::boot(boot, &dir.join("console.log"), &stderr_log, Duration::from_secs(timeout_secs))?;
    let output = split_stderr(console, read_lines(&stderr_log));
    eprintln!("vm-test: {label} finished in {} s", column_started.elapsed().as_secs());
    Ok(report::parse(label, &output, suites, &ending, column_started.elapsed()))
}

/// Whether `kernel` runs only the smoke subset.
fn smoke_only(args: &VmTestArgs, kernel: &KernelSpec) -> bool {
    args.smoke || kernel.coverage == Coverage::Smoke
}

/// The backends a column runs with.
fn backends(args: &VmTestArgs, smoke: bool) -> Vec<&str> {
    if !args.backends.is_empty() {
        args.backends.iter().map(String::as_str).collect()
    } else if smoke {
        vec!["auto"]
    } else {
        vec!["auto", "tracepoint"]
    }
}

/// (name, path) of every test executable.
fn test_paths(binaries: &StaticBinaries) -> Vec<(String, String)> {
    binaries.tests.iter().map(|t| (t.name.clone(), t.path.display().to_string())).collect()
}

/// The console's lines, and the stderr lines: from the second serial port's file, plus
/// those the guest replayed on its console (see `arch::GuestStderr`).
fn split_stderr(console: Vec<String>, mut stderr: Vec<String>) -> report::Output {
    let mut kept = Vec::with_capacity(console.len());
    for line in console {
        match line.find(STDERR_MARKER) {
            Some(at) => stderr.push(line[at + STDERR_MARKER.len()..].to_owned()),
            None => kept.push(line),
        }
    }
    report::Output { console: kept, stderr }
}

/// The same static executables and the same loop, on the host kernel.
fn run_host(binaries: &StaticBinaries, options: SuiteOptions, timeout: Duration) -> anyhow::Result<Run> {
    let dir = log_dir("host")?;
    eprintln!("vm-test: running the suite on the host kernel (logs in {})", dir.display());
    let planned = suite::plan(&test_paths(binaries), false);
    let suites: Vec<String> = planned.iter().map(|p| p.name.clone()).collect();
    let stderr_log = dir.join("stderr.log");
    let _ = std::fs::remove_file(&stderr_log);
    let script = format!(
        "echo \"@@mw kernel $(uname -r)\"\n{}",
        suite::script(&planned, &stderr_log.display().to_string(), options)
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
    let mut run = report::parse("host", &output, &suites, &ending, started.elapsed());
    run.column = matrix::Column { arch: Arch::host().map_or("?", Arch::name), flavour: "host", smoke: false };
    Ok(run)
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
