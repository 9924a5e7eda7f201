//! The configurations compared side by side. Each is brought up for one pass of the
//! workloads and torn down right after (a guard), in a rotating order across rounds.

use std::{process::Command, time::Duration};

use super::{Context, audit, daemon::Daemon, sensor};

/// The sensor's switch to helper reads (its loader's `MODELWATCH_KERNEL_READS`).
pub(crate) const HELPER_READS: (&str, &str) = ("MODELWATCH_KERNEL_READS", "helper");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Config {
    /// Nothing loaded.
    Baseline,
    /// The sensor's hooks with programs that return at once: the price of the hooks.
    Floor,
    /// The full sensor, default configuration.
    Modelwatch,
    /// The full sensor with a `bpf_probe_read_kernel` call for every kernel read (the
    /// programs' fallback, and the previous round's kernel side): the typed reads'
    /// gain, measured in the same run.
    ModelwatchHelper,
    /// auditd with one rule on the same syscalls.
    Auditd,
    /// Experiment: one `raw_syscalls:sys_exit` program (bpftrace), fires on every syscall.
    RawSyscalls,
    /// Experiment: `syscalls:sys_exit_openat` + `sys_exit_mmap` programs (bpftrace).
    PerSyscall,
}

impl Config {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Floor => "floor",
            Self::Modelwatch => "modelwatch",
            Self::ModelwatchHelper => "modelwatch, helper reads",
            Self::Auditd => "auditd",
            Self::RawSyscalls => "bpftrace raw_syscalls:sys_exit",
            Self::PerSyscall => "bpftrace sys_exit_openat+mmap",
        }
    }

    /// The raw_syscalls experiment's configurations, which only run the open and mmap
    /// workloads.
    pub(crate) fn is_experiment(self) -> bool {
        matches!(self, Self::RawSyscalls | Self::PerSyscall)
    }
}

/// Whatever keeps a configuration loaded; dropping it unloads it.
pub(crate) enum Session {
    Nothing,
    Process(Daemon),
    Sensor(sensor::Sensor),
    Audit(audit::AuditSession),
}

pub(crate) fn start(config: Config, ctx: &mut Context) -> anyhow::Result<Session> {
    Ok(match config {
        Config::Baseline => Session::Nothing,
        Config::Floor => {
            let (daemon, line) = sensor::start_floor(&ctx.bins)?;
            ctx.notes.floor.get_or_insert(line);
            Session::Process(daemon)
        }
        Config::Modelwatch => {
            let sensor = sensor::Sensor::start(&ctx.bins, &ctx.dir, &[])?;
            if ctx.notes.hooks.is_none() {
                ctx.notes.hooks = Some(sensor::hooks_summary(&sensor.status()?));
            }
            Session::Sensor(sensor)
        }
        Config::ModelwatchHelper => {
            Session::Sensor(sensor::Sensor::start_with(&ctx.bins, &ctx.dir, &[], &[HELPER_READS])?)
        }
        Config::Auditd => Session::Audit(audit::start(&ctx.dir, ctx.audit_quiet)?),
        Config::RawSyscalls => bpftrace("tracepoint:raw_syscalls:sys_exit { }")?,
        Config::PerSyscall => {
            bpftrace("tracepoint:syscalls:sys_exit_openat { } tracepoint:syscalls:sys_exit_mmap { }")?
        }
    })
}

/// bpftrace with empty actions; BEGIN runs once every probe is attached.
fn bpftrace(probes: &str) -> anyhow::Result<Session> {
    let program = format!("BEGIN {{ printf(\"ready\\n\"); }} {probes}");
    let mut command = Command::new("bpftrace");
    // bpftrace warns that it cannot raise RLIMIT_MEMLOCK: harmless on kernels that
    // account BPF memory to the cgroup; keep the terminal quiet.
    command.arg("-e").arg(program).stderr(std::process::Stdio::null());
    // SIGINT: bpftrace's own clean exit (detach, print maps).
    let mut daemon = Daemon::spawn_reading("bpftrace", &mut command, libc::SIGINT)?;
    daemon.wait_line("ready", Duration::from_secs(60))?;
    Ok(Session::Process(daemon))
}

impl Session {
    /// Fails if the configuration's process has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Nothing => Ok(()),
            Self::Process(daemon) => daemon.check_running(),
            Self::Sensor(sensor) => sensor.check_running(),
            Self::Audit(audit) => audit.check_running(),
        }
    }
}
