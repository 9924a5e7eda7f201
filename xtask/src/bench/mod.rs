//! `cargo xtask bench`: what modelwatch costs, side by side with no sensor, with the
//! same hooks doing nothing (the floor), and with Linux audit watching the same syscalls.
//!
//! Every round brings up each configuration once, in rotating order, and runs every
//! workload under it; figures are medians across rounds, so a burst from another job
//! on the machine moves one sample, not the result. Then, with the sensor alone: a
//! candidate storm read by a gRPC subscriber, and the sensor at rest. The report is
//! printed and written to `bench-results/`.

mod args;
mod audit;
mod configs;
mod daemon;
mod host;
mod idle;
mod kernel;
mod latency;
mod project;
mod report;
mod sensor;
mod signals;
mod stats;
mod storm;
mod targets;
mod workloads;

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;

pub(crate) use self::args::BenchArgs;
use self::{args::Part, configs::Config, report::Results, workloads::Workload};

/// The binaries the bench runs, built in release mode.
pub(crate) struct Binaries {
    modelwatch: PathBuf,
    mw_bench: PathBuf,
    mw_subscriber: PathBuf,
}

/// What the workloads need, and what the report says about how they ran.
pub(crate) struct Context {
    bins: Binaries,
    dir: PathBuf,
    small_file: PathBuf,
    model_file: PathBuf,
    project: PathBuf,
    scale: f64,
    storm_secs: u64,
    storm_procs: u64,
    latency_secs: u64,
    idle_secs: u64,
    processes: usize,
    /// `-a never,task` is loaded outside the auditd passes (see `audit.rs`).
    audit_quiet: bool,
    notes: report::Notes,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    host::require_root()?;
    let args = args.effective();
    if !args.no_build {
        crate::cargo(&["build", "--release", "-p", "modelwatch", "-p", "modelwatch-tests"])?;
    }
    crate::setup::bench_packages(args.raw_syscalls)?;
    signals::install();
    // Waiting first, without the lock: the end-to-end tests it would hold back are
    // often what keeps the load up.
    if let Some(max) = args.max_load {
        wait_for_load(max)?;
    }
    let _lock = host::exclusive_lock()?;
    let workdir = Workdir::create()?;
    let mut ctx = Context::new(&args, workdir.path())?;
    let quiet = audit::Quiet::engage()?;
    ctx.audit_quiet = quiet.engaged;
    let mut results = Results::new(host::machine(), host::load_average(), args.rounds, args.scale);
    results.tracers = host::other_tracers().into_iter().map(|t| format!("{t} at start")).collect();
    let wants = |part| args.only.is_empty() || args.only.contains(&part);
    let mut workloads: Vec<Workload> = Vec::new();
    let mut ran_auditd = false;
    if wants(Part::Syscalls) {
        workloads.extend(Workload::SYSCALLS);
    }
    if wants(Part::Build) {
        project::generate(&ctx.project)?;
        workloads.push(Workload::Make);
    }
    if !workloads.is_empty() {
        let mut configs = vec![Config::Baseline, Config::Floor, Config::Modelwatch];
        if !args.no_helper_reads {
            configs.push(Config::ModelwatchHelper);
        }
        if !args.no_auditd {
            configs.push(Config::Auditd);
            ran_auditd = true;
        }
        if args.raw_syscalls && wants(Part::Syscalls) {
            configs.extend([Config::RawSyscalls, Config::PerSyscall]);
        }
        rounds(&mut ctx, &mut results, &configs, &workloads, args.rounds)?;
    }
    results.load_end = host::load_average();
    if wants(Part::Storm) {
        results.storms = storm::series(&ctx, args.storm_large_ring, args.storm_runs)?;
    }
    if wants(Part::Latency) {
        results.latency = latency::run(&ctx)?;
    }
    if wants(Part::Kernel) {
        results.kernel = kernel::run(&ctx)?;
    }
    if wants(Part::Idle) {
        eprintln!("bench: sensor idle for {} s, then {} live processes", args.idle_secs, args.processes);
        results.idle = Some(idle::run(&ctx)?);
    }
    results.notes = std::mem::take(&mut ctx.notes);
    results.audit_quiet = quiet.engaged;
    drop(quiet);
    report::publish(&results)?;
    if ran_auditd {
        eprintln!(
            "bench: note: audit has been enabled on this kernel, so until reboot every new task \
             carries an audit context (a few % on syscall-heavy work); `auditctl -a never,task` \
             removes that cost"
        );
    }
    Ok(())
}

fn rounds(
    ctx: &mut Context,
    results: &mut Results,
    configs: &[Config],
    workloads: &[Workload],
    rounds: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for round in 0..rounds {
        for i in 0..configs.len() {
            let config = configs[(i + round) % configs.len()];
            eprintln!(
                "bench: round {}/{rounds}, {} ({:.0} s elapsed, load {:.2})",
                round + 1,
                config.name(),
                started.elapsed().as_secs_f64(),
                host::load_average()
            );
            // Nothing of ours is loaded between passes: any tracer now is someone else's.
            for tracer in host::other_tracers() {
                results.tracers.push(format!("{tracer} before {} in round {}", config.name(), round + 1));
            }
            results.loads.push(host::load_average());
            let mut session = configs::start(config, ctx)?;
            for &workload in workloads {
                if config.is_experiment() && !matches!(workload, Workload::Open | Workload::Mmap) {
                    continue;
                }
                let value = workloads::run(workload, ctx)?;
                results.add(workload, config, value);
            }
            // A configuration that died during its pass would have measured nothing.
            session.check_alive().with_context(|| format!("{} stopped during its pass", config.name()))?;
        }
    }
    Ok(())
}

fn wait_for_load(max: f64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let load = host::load_average();
        if load < max {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the load average stayed above {max} for an hour (now {load:.2})");
        }
        eprintln!("bench: load average {load:.2} >= {max}; waiting");
        signals::sleep(Duration::from_secs(30))?;
    }
}

impl Context {
    fn new(args: &BenchArgs, dir: &Path) -> anyhow::Result<Self> {
        let release = Path::new("target/release");
        let bins = Binaries {
            modelwatch: release.join("modelwatch").canonicalize().context("target/release/modelwatch")?,
            mw_bench: release.join("mw-bench").canonicalize().context("target/release/mw-bench")?,
            mw_subscriber: release
                .join("mw-subscriber")
                .canonicalize()
                .context("target/release/mw-subscriber")?,
        };
        let small_file = dir.join("small.dat");
        fs::write(&small_file, vec![0u8; 4096])?;
        let model_file = dir.join(storm::MODEL_NAME);
        storm::write_model(&model_file)?;
        Ok(Self {
            bins,
            dir: dir.to_path_buf(),
            small_file,
            model_file,
            project: dir.join("project"),
            scale: args.scale,
            storm_secs: args.storm_secs,
            storm_procs: args.storm_procs,
            latency_secs: args.latency_secs,
            idle_secs: args.idle_secs,
            processes: args.processes,
            audit_quiet: false,
            notes: report::Notes::default(),
        })
    }
}

/// The bench's temporary directory, removed when dropped.
struct Workdir(PathBuf);

impl Workdir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("modelwatch-bench.{}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
