//! What the deployment tests share: the capability set the sensor keeps (one table,
//! checked against the manifests, the systemd unit and the measurements), and the
//! podman invocation that works on this project's machines.

use std::process::Command;

/// A capability the sensor keeps, and what breaks without it (measured by
/// `tests/capabilities.rs`; the README's table says the same).
pub struct Kept {
    /// As Kubernetes spells it (`BPF`); `CAP_` + this for systemd and setpriv.
    pub name: &'static str,
    pub needed_for: &'static str,
}

/// Every capability the sensor runs with, and nothing else.
pub const KEPT_CAPABILITIES: [Kept; 5] = [
    Kept { name: "BPF", needed_for: "load the probes and create their maps" },
    Kept { name: "PERFMON", needed_for: "load tracing programs and attach them to tracepoints" },
    Kept {
        name: "SYS_PTRACE",
        needed_for: "open /proc/<pid>/fd, /root and /map_files of other users' processes",
    },
    Kept {
        name: "DAC_READ_SEARCH",
        needed_for: "enter /proc/<pid>/fd and /map_files (0500 directories of the process's owner) and read private files",
    },
    Kept {
        name: "CHECKPOINT_RESTORE",
        needed_for: "open /proc/<pid>/map_files (a mapped file whose descriptor is closed)",
    },
];

/// The image `cargo xtask image` builds for this version.
#[must_use]
pub fn image_reference() -> String {
    format!("localhost/modelwatch:{}", env!("CARGO_PKG_VERSION"))
}

/// podman with the options these machines need: cgroupfs and a file for events (no
/// systemd as PID 1), and runc (crun refuses a hybrid cgroup v1/v2 layout).
#[must_use]
pub fn podman() -> Command {
    let mut command = Command::new("podman");
    command.args(["--cgroup-manager=cgroupfs", "--events-backend=file", "--runtime=runc"]);
    command
}

/// Why podman cannot run containers from a test here, if it cannot.
#[must_use]
pub fn podman_skip_reason() -> Option<String> {
    if let Some(reason) = crate::skip_reason() {
        return Some(reason);
    }
    let works =
        |program: &str| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if !works("podman") {
        return Some(
            "podman is not installed (`cargo xtask setup` installs it through `cargo xtask test`)".into(),
        );
    }
    if !works("runc") {
        return Some("runc is not installed".into());
    }
    None
}

/// `--ulimit` options within this process's own limits. podman's defaults (a million
/// open files) need CAP_SYS_RESOURCE to raise the hard limit, which the bounding set of
/// this project's machines lacks: the runtime's setrlimit fails with EPERM.
#[must_use]
pub fn ulimits_within_ours() -> Vec<String> {
    let limit = |resource| {
        let mut value = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid out-pointer.
        unsafe { libc::getrlimit(resource, &raw mut value) };
        (value.rlim_cur, value.rlim_max)
    };
    let (files_soft, files_hard) = limit(libc::RLIMIT_NOFILE);
    // Above pid_max the runtime's setrlimit(RLIMIT_NPROC) fails here as well.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(32_768);
    let (procs_soft, procs_hard) = limit(libc::RLIMIT_NPROC);
    vec![
        format!("--ulimit=nofile={files_soft}:{files_hard}"),
        format!("--ulimit=nproc={}:{}", procs_soft.min(pid_max), procs_hard.min(pid_max)),
    ]
}
