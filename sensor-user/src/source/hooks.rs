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

/// How a loaded program reads kernel memory (the eBPF crate's `reads.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reads {
    /// Direct loads through BTF-typed pointers; helper reads only where no typed load
    /// can reach (an fd table slot, a long name, a path component's copy).
    Typed,
    /// A `bpf_probe_read_kernel` call for every read.
    Helper,
    /// The program reads nothing beyond its own context and maps.
    None,
}

impl Reads {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Typed => "typed",
            Self::Helper => "helper",
            Self::None => "none",
        }
    }
}

/// Which read variants the object has for a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variants {
    /// `<program>` with typed reads, and `helper_<program>` as its fallback.
    TypedAndHelper,
    /// One program, with helper reads.
    HelperOnly,
    /// One program that reads no kernel memory.
    NoReads,
}

/// Prefix of the helper-read variant of a program.
pub const HELPER_PREFIX: &str = "helper_";

/// One program and where it attaches.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// Program (function) name in the eBPF object (the typed variant where there are two).
    pub program: &'static str,
    pub point: AttachPoint,
    pub watches: Watch,
    /// The sensor refuses to run without it.
    pub required: bool,
    pub variants: Variants,
    /// The one architecture whose kernels have it (`std::env::consts::ARCH`), or `None`
    /// for all.
    pub only_on: Option<&'static str>,
}

impl Hook {
    /// Whether this architecture's kernels have the hook's attach point.
    #[must_use]
    pub fn exists_here(&self) -> bool {
        self.only_on.is_none_or(|arch| arch == std::env::consts::ARCH)
    }

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
    Hook {
        program,
        point: AttachPoint::Tracepoint { category, name: program },
        watches,
        required,
        variants: Variants::TypedAndHelper,
        only_on: None,
    }
}

/// The open syscalls' exits share one program (`open_exit`): it is verified once and
/// attached to each.
const fn open_exit(name: &'static str, required: bool) -> Hook {
    Hook {
        program: "open_exit",
        point: AttachPoint::Tracepoint { category: "syscalls", name },
        watches: Watch::Open,
        required,
        variants: Variants::TypedAndHelper,
        only_on: None,
    }
}

const fn fexit(program: &'static str, function: &'static str, watches: Watch) -> Hook {
    Hook {
        program,
        point: AttachPoint::FExit { function },
        watches,
        required: false,
        variants: Variants::TypedAndHelper,
        only_on: None,
    }
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
        // Two reads of a marked parent's child only: not worth a second variant.
        variants: Variants::HelperOnly,
        only_on: None,
    },
    tracepoint("sched_process_exec", "sched", Watch::Exec, true),
    open_exit("sys_exit_openat", true),
    open_exit("sys_exit_openat2", false),
    // arm64 (like every architecture since) has no `open` syscall: glibc opens with openat.
    Hook { only_on: Some("x86_64"), ..open_exit("sys_exit_open", false) },
    tracepoint("sys_enter_mmap", "syscalls", Watch::Mmap, true),
    tracepoint("sys_exit_mmap", "syscalls", Watch::Mmap, true),
    Hook {
        program: "inet_sock_set_state",
        point: AttachPoint::Tracepoint { category: "sock", name: "inet_sock_set_state" },
        watches: Watch::Listen,
        required: true,
        variants: Variants::NoReads,
        only_on: None,
    },
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
pub const TRACEPOINT_BLIND_SPOTS: [&str; 2] =
    ["opens submitted through io_uring (IORING_OP_OPENAT) bypass the syscall tracepoints", COMPAT_BLIND_SPOT];

/// The kernel does not trace the syscalls of 32-bit processes (compat mode).
#[cfg(target_arch = "x86_64")]
const COMPAT_BLIND_SPOT: &str =
    "32-bit compat syscalls (ia32 openat, mmap2) are not traced by syscall tracepoints";
#[cfg(target_arch = "aarch64")]
const COMPAT_BLIND_SPOT: &str =
    "32-bit AArch32 compat syscalls (openat, mmap2) are not traced by syscall tracepoints";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const COMPAT_BLIND_SPOT: &str = "32-bit compat syscalls are not traced by syscall tracepoints";

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
    /// How the attached program reads kernel memory.
    pub reads: Reads,
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
            reads: match hook.variants {
                Variants::TypedAndHelper => Reads::Typed,
                Variants::HelperOnly => Reads::Helper,
                Variants::NoReads => Reads::None,
            },
        }
    }
}
