//! Developer commands. `cargo xtask run` and `cargo xtask test` are the README's two
//! commands: each first makes the machine ready (idempotently), then does its job.

mod bench;
mod image;
mod imports;
mod pyenv;
mod setup;
pub(crate) mod vm;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what this machine lacks (packages, bpf-linker) and mount tracefs/bpffs.
    Setup,
    /// Set up, build and run the sensor, printing live events (arguments go to `modelwatch run`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run the whole test suite: lints, unit, privileged end-to-end, then
    /// the end-to-end suite on Debian's kernels in QEMU (`vm-test`).
    Test {
        /// Skip fmt/clippy.
        #[arg(long)]
        no_lint: bool,
        /// Skip the QEMU kernel matrix (`vm-test`), for quick local runs.
        #[arg(long)]
        no_vm: bool,
        #[command(flatten)]
        vm: vm::VmTestArgs,
    },
    /// Run the end-to-end suite on the host kernel and on Debian's 6.1 and 6.12 kernels in
    /// QEMU; print the kernel × test matrix and each hook's backend (also in target/vm/matrix.md).
    VmTest(vm::VmTestArgs),
    /// Format and lint every crate, the eBPF one included, and check the import graph.
    Lint,
    /// Print the import graph between the pipeline stages; fail on a backward edge or a
    /// cycle.
    Imports,
    /// Build a static `modelwatch` and a `FROM scratch` image of it with podman; print
    /// its reference, digest and size.
    Image,
    /// Measure the sensor's cost side by side with no sensor, do-nothing hooks and auditd;
    /// print a markdown report (also written to bench-results/). Needs root.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Run { args } => {
            setup::run()?;
            cargo(&["build", "--release", "-p", "modelwatch"])?;
            let status = Command::new("target/release/modelwatch")
                .arg("run")
                .args(&args)
                .status()
                .context("starting target/release/modelwatch")?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test { no_lint, no_vm, vm } => {
            setup::run()?;
            setup::container_packages()?;
            setup::python()?;
            pyenv::ensure()?;
            // SAFETY: single-threaded here; the tests find the venv through it.
            unsafe { std::env::set_var("MODELWATCH_TEST_PYTHON", pyenv::python()?) };
            if !no_lint {
                lint()?;
            }
            if no_vm || vm.no_host {
                // The end-to-end tests run the sensor binary, which `cargo test` alone
                // does not build. The default members: every crate but sensor-ebpf.
                cargo(&["build", "--release", "--bins"])?;
                // The image tests run what ships: the static binary in its scratch image.
                image::build()?;
                cargo(&["test", "--release", "--", "--test-threads=1"])?;
            } else {
                // vm-test runs the end-to-end suite on this kernel first, with the static
                // binaries that ship (built here for the image); the unit tests share
                // their build.
                image::build()?;
                let host = vm::Arch::host().context("no static build for this machine's architecture")?;
                vm::static_build::unit_tests(host)?;
            }
            if !no_vm {
                vm::run(&vm)?;
            }
            Ok(())
        }
        Task::VmTest(args) => {
            setup::run()?;
            vm::run(&args)
        }
        Task::Lint => lint(),
        Task::Imports => imports::run(),
        Task::Image => {
            setup::run()?;
            image::run()
        }
        Task::Bench(args) => {
            setup::run()?;
            bench::run(&args)
        }
    }
}

fn lint() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    imports::run()?;
    // No --workspace: that would build sensor-ebpf for the host, where its panic
    // handler clashes with std. The default members are everything else.
    cargo(&["clippy", "--all-targets", "--release", "--", "-D", "warnings"])?;
    // The eBPF crate only builds for the BPF target, with core built from source.
    let status = Command::new("cargo")
        .args([
            "clippy",
            "-p",
            "sensor-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .context("cargo clippy (eBPF)")?;
    if !status.success() {
        bail!("clippy found problems in sensor-ebpf");
    }
    Ok(())
}

/// Runs cargo with the pinned toolchain and fails on a non-zero exit.
pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let status =
        Command::new("cargo").args(args).status().with_context(|| format!("cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}
