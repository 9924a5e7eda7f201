//! The hooks, per backend, and what became of each at start-up: one table.

use serde::Serialize;

/// What a hook watches, as shown to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Watch {
    Exec,
    Exit,
    Fork,
    Open,
    Mmap,
    Listen,
    Ioctl,
}

impl Watch {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Exit => "exit",
            Self::Fork => "fork",
            Self::Open => "open",
            Self::Mmap => "mmap",
            Self::Listen => "listen",
            Self::Ioctl => "ioctl",
        }
    }
}

/// How a program attaches; the stronger kinds are tried first where they exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A tracepoint (`category:name`): loads everywhere.
    Tracepoint,
    /// A raw tracepoint: the kernel's own arguments (task structs), no record format.
    RawTracepoint,
    /// `fexit` on a kernel function: the strong backend, where the kernel allows it.
    Fexit,
}

impl Backend {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tracepoint => "tracepoint",
            Self::RawTracepoint => "raw_tracepoint",
            Self::Fexit => "fexit",
        }
    }
}

/// Where a program attaches.
#[derive(Clone, Copy, Debug)]
pub enum AttachPoint {
    Tracepoint { category: &'static str, name: &'static str },
    RawTracepoint { name: &'static str },
    FExit { function: &'static str },
}

/// What to tell the user when a required hook does not load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadAdvice {
    /// The verifier rejected the program: a kernel we have not seen.
    VerifierRejected,
    /// Syscall tracepoints are compiled out.
    NeedsSyscallTracepoints,
    /// `sock:inet_sock_set_state` appeared in 4.16.
    NeedsSockTracepoint,
    /// Anything else about tracepoints: tracefs, CONFIG_TRACEPOINTS.
    NeedsTracefs,
    /// `perf_event_open` refused under `kernel.perf_event_paranoid` 3 (a Debian patch:
    /// CAP_PERFMON is not enough there, only CAP_SYS_ADMIN).
    PerfParanoid,
}

impl LoadAdvice {
    #[must_use]
    pub fn fix(self) -> &'static str {
        match self {
            Self::VerifierRejected => {
                "this kernel's verifier rejects the program: rerun with MODELWATCH_LOG=modelwatch=debug for its full log and report it"
            }
            Self::NeedsSyscallTracepoints => "enable CONFIG_FTRACE_SYSCALLS in the kernel",
            Self::NeedsSockTracepoint => "use a kernel of 4.16 or newer (sock:inet_sock_set_state)",
            Self::NeedsTracefs => "check that tracefs is mounted and the kernel has CONFIG_TRACEPOINTS",
            Self::PerfParanoid => {
                "kernel.perf_event_paranoid is above 2 (Debian's restriction, under which attaching a tracepoint needs CAP_SYS_ADMIN): run `sysctl kernel.perf_event_paranoid=2` and keep it in /etc/sysctl.d, or run with CAP_SYS_ADMIN"
            }
        }
    }
}

/// One program and where it attaches.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// Program (function) name in the eBPF object.
    pub program: &'static str,
    pub point: AttachPoint,
    pub watches: Watch,
    /// The sensor refuses to run without it.
    pub required: bool,
}

impl Hook {
    #[must_use]
    pub fn backend(&self) -> Backend {
        match self.point {
            AttachPoint::Tracepoint { .. } => Backend::Tracepoint,
            AttachPoint::RawTracepoint { .. } => Backend::RawTracepoint,
            AttachPoint::FExit { .. } => Backend::Fexit,
        }
    }

    #[must_use]
    pub fn describe_point(&self) -> String {
        match self.point {
            AttachPoint::Tracepoint { category, name } => format!("{category}:{name}"),
            AttachPoint::RawTracepoint { name } => format!("raw:{name}"),
            AttachPoint::FExit { function } => function.to_owned(),
        }
    }

    /// The advice for a failure to load this hook with `reason`.
    #[must_use]
    pub fn advice(&self, reason: &str) -> LoadAdvice {
        if reason.starts_with(VERIFIER_REJECTED) {
            return LoadAdvice::VerifierRejected;
        }
        let paranoid = || {
            std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
                .is_ok_and(|level| level.trim().parse::<i32>().is_ok_and(|level| level > 2))
        };
        if reason.contains("perf_event_open") && paranoid() {
            return LoadAdvice::PerfParanoid;
        }
        match self.point {
            AttachPoint::Tracepoint { category: "syscalls", .. } => LoadAdvice::NeedsSyscallTracepoints,
            AttachPoint::Tracepoint { category: "sock", .. } => LoadAdvice::NeedsSockTracepoint,
            _ => LoadAdvice::NeedsTracefs,
        }
    }
}

/// How a verifier rejection's reason starts (see `attach::describe`).
pub(super) const VERIFIER_REJECTED: &str = "the verifier rejected it";

const fn tracepoint(program: &'static str, category: &'static str, watches: Watch, required: bool) -> Hook {
    Hook { program, point: AttachPoint::Tracepoint { category, name: program }, watches, required }
}

/// The open syscalls' exits share one program (`open_exit`): it is verified once and
/// attached to each.
const fn open_exit(name: &'static str, required: bool) -> Hook {
    Hook {
        program: "open_exit",
        point: AttachPoint::Tracepoint { category: "syscalls", name },
        watches: Watch::Open,
        required,
    }
}

const fn fexit(program: &'static str, function: &'static str, watches: Watch) -> Hook {
    Hook { program, point: AttachPoint::FExit { function }, watches, required: false }
}

/// The portable backend, in attach order. Exit and fork come first so that no process
/// escapes the bookkeeping while the others attach.
pub const TRACEPOINTS: [Hook; 10] = [
    tracepoint("sched_process_exit", "sched", Watch::Exit, true),
    Hook {
        program: "sched_process_fork",
        point: AttachPoint::RawTracepoint { name: "sched_process_fork" },
        watches: Watch::Fork,
        required: false,
    },
    tracepoint("sched_process_exec", "sched", Watch::Exec, true),
    open_exit("sys_exit_openat", true),
    open_exit("sys_exit_openat2", false),
    open_exit("sys_exit_open", false),
    tracepoint("sys_enter_mmap", "syscalls", Watch::Mmap, true),
    tracepoint("sys_exit_mmap", "syscalls", Watch::Mmap, true),
    tracepoint("inet_sock_set_state", "sock", Watch::Listen, true),
    // Accelerator activity: counts ioctls of processes that opened a GPU/NPU.
    tracepoint("sys_enter_ioctl", "syscalls", Watch::Ioctl, false),
];

/// Stronger hooks, tried first; each replaces the tracepoints that watch the same thing.
/// Exec, exit, fork and listen stay on their tracepoints everywhere: those are not
/// syscall tracepoints and cost nothing on other syscalls.
pub const STRONG: [Hook; 2] = [
    fexit("fexit_security_file_open", "security_file_open", Watch::Open),
    fexit("fexit_vm_mmap_pgoff", "vm_mmap_pgoff", Watch::Mmap),
];

/// What the syscall tracepoints cannot see, reported as degraded when opens or maps run
/// on them (the fexit backend sees the kernel's own open, whatever its origin).
pub const TRACEPOINT_BLIND_SPOTS: [&str; 2] = [
    "opens submitted through io_uring (IORING_OP_OPENAT) bypass the syscall tracepoints",
    "32-bit compat syscalls (ia32 openat, mmap2) are not traced by syscall tracepoints",
];

/// Which backends the sensor may use.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// The strongest the kernel accepts, per hook, falling back to tracepoints.
    #[default]
    Auto,
    /// Tracepoints only.
    Tracepoint,
}

/// What happened to a hook at start-up; shown by `modelwatch status` and in the first
/// event of the stream.
#[derive(Clone, Debug, Serialize)]
pub struct HookStatus {
    pub watches: Watch,
    pub backend: Backend,
    /// `sched:sched_process_exec`, `security_file_open`.
    pub attach_point: String,
    pub attached: bool,
    /// Why it is not attached, or why this backend was chosen over a stronger one.
    pub reason: String,
    /// Instructions the verifier processed, where the kernel reports it.
    pub verified_insns: Option<u32>,
}

impl HookStatus {
    #[must_use]
    pub fn new(hook: &Hook) -> Self {
        Self {
            watches: hook.watches,
            backend: hook.backend(),
            attach_point: hook.describe_point(),
            attached: false,
            reason: String::new(),
            verified_insns: None,
        }
    }
}
