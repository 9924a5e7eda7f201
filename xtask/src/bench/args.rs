//! The command line of `cargo xtask bench`.

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Rounds; each runs every configuration once, in rotating order.
    #[arg(long, default_value_t = 7)]
    pub(crate) rounds: usize,
    /// Multiplies the syscall loops' iteration counts.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) scale: f64,
    /// Seconds of the idle CPU measurement.
    #[arg(long, default_value_t = 60)]
    pub(crate) idle_secs: u64,
    /// Live processes for the process-cache memory figure.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) processes: usize,
    /// Seconds of each candidate storm.
    #[arg(long, default_value_t = 5)]
    pub(crate) storm_secs: u64,
    /// Storms per ring-buffer size (each against a fresh sensor).
    #[arg(long, default_value_t = 3)]
    pub(crate) storm_runs: usize,
    /// Processes generating each storm (the machine's cores are shared with the sensor).
    #[arg(long, default_value_t = 4)]
    pub(crate) storm_procs: u64,
    /// Seconds of each latency measurement (one per rate).
    #[arg(long, default_value_t = 10)]
    pub(crate) latency_secs: u64,
    /// Leave out the configuration with helper reads (the typed reads' comparison point).
    #[arg(long)]
    pub(crate) no_helper_reads: bool,
    /// Also storm with this ring buffer (bytes, a power of two; 0: only the default).
    #[arg(long, default_value_t = 16 << 20)]
    pub(crate) storm_large_ring: u64,
    /// A check of the harness, not figures: 2 rounds, 5% of the iterations, short
    /// storm and idle, 500 processes.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Leave auditd out.
    #[arg(long)]
    pub(crate) no_auditd: bool,
    /// Also compare one `raw_syscalls:sys_exit` program with per-syscall tracepoints
    /// on openat/mmap (with bpftrace).
    #[arg(long)]
    pub(crate) raw_syscalls: bool,
    /// Wait (up to an hour) for the 1-minute load average to drop below this first.
    #[arg(long)]
    pub(crate) max_load: Option<f64>,
    /// Use the binaries already in target/release (do not build).
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Only these parts (repeatable; default: all).
    #[arg(long, value_enum)]
    pub(crate) only: Vec<Part>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Part {
    /// The five syscall loops.
    Syscalls,
    /// The make -j2 build.
    Build,
    Storm,
    /// Syscall-to-subscriber latency at paced rates.
    Latency,
    /// Per-program run time (`bpf_stats`), typed vs helper reads, and what the verifier made
    /// of each program.
    Kernel,
    Idle,
}

impl BenchArgs {
    /// The arguments with `--quick` applied.
    pub(crate) fn effective(&self) -> Self {
        let mut args = Self { only: self.only.clone(), ..*self };
        if self.quick {
            args.rounds = 2;
            args.scale = 0.05;
            args.idle_secs = 5;
            args.processes = 500;
            args.storm_secs = 2;
            args.storm_runs = 1;
            args.latency_secs = 2;
        }
        args
    }
}
