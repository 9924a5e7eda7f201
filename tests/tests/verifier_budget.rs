//! Every program stays within a stated verifier budget (instructions the verifier
//! processed), on every kernel the suite runs on: growth past it is a regression to
//! look at before it reaches the kernel's hard limit of 1,000,000.

use modelwatch_tests::{Sensor, require_privileges};

/// Budgets per attach point, about twice what the most demanding kernel needs today
/// (6.18 host; 6.1 and 6.12 guests: 6.1's verifier explores the fexit programs
/// least efficiently, 224k and 208k instructions).
const BUDGETS: [(&str, u64); 12] = [
    ("sched:sched_process_exit", 2_000),
    ("raw:sched_process_fork", 1_000),
    ("sched:sched_process_exec", 60_000),
    // Debian 6.1 verifies the open exit program in 422,482 instructions (2026-11-30).
    ("syscalls:sys_exit_openat", 480_000),
    ("syscalls:sys_exit_openat2", 480_000),
    ("syscalls:sys_exit_open", 480_000),
    ("syscalls:sys_enter_mmap", 350_000),
    // Debian 6.1: 68,671 (2026-12-01); 6.12 and 6.18: 15k-30k.
    ("syscalls:sys_exit_mmap", 80_000),
    ("sock:inet_sock_set_state", 20_000),
    ("syscalls:sys_enter_ioctl", 20_000),
    ("security_file_open", 450_000),
    ("vm_mmap_pgoff", 450_000),
];

#[test]
fn every_program_is_within_its_verifier_budget() {
    require_privileges!();
    let sensor = Sensor::start(&[]);
    let hooks = sensor.status["sensor_status"]["hooks"].as_array().expect("hooks").clone();
    let mut checked = 0;
    for hook in hooks.iter().filter(|h| h["attached"] == true) {
        let point = hook["attach_point"].as_str().unwrap_or("");
        let insns = hook["verified_insns"].as_u64().unwrap_or(0);
        let (_, budget) = BUDGETS.iter().find(|(name, _)| *name == point).unwrap_or_else(|| {
            panic!("no verifier budget stated for {point}: add one to BUDGETS");
        });
        eprintln!("verifier: {point} {insns} insns (budget {budget})");
        if insns == 0 {
            eprintln!("SKIPPED budget of {point}: this kernel does not report verified instructions");
            continue;
        }
        assert!(insns <= *budget, "{point}: {insns} verified instructions, budget {budget}");
        checked += 1;
    }
    assert!(checked > 0 || hooks.iter().all(|h| h["verified_insns"].as_u64().unwrap_or(0) == 0));
}

/// Hooks with a typed variant run it wherever the kernel has `bpf_rdonly_cast` (6.2+),
/// and say why not elsewhere; the others report how they read.
#[test]
fn each_hook_reports_how_it_reads_kernel_memory() {
    require_privileges!();
    let vmlinux = std::fs::read("/sys/kernel/btf/vmlinux").expect("BTF");
    let has_cast = vmlinux.windows(16).any(|w| w == b"bpf_rdonly_cast\0");
    let forced_helper = std::env::var("MODELWATCH_KERNEL_READS").is_ok_and(|v| v == "helper");
    let sensor = Sensor::start(&[]);
    let hooks = sensor.status["sensor_status"]["hooks"].as_array().expect("hooks").clone();
    for hook in hooks.iter().filter(|h| h["attached"] == true) {
        let point = hook["attach_point"].as_str().unwrap_or("");
        let reads = hook["reads"].as_str().unwrap_or("");
        let reason = hook["reason"].as_str().unwrap_or("");
        eprintln!("reads: {point} {reads} ({reason})");
        match point {
            "sock:inet_sock_set_state" => assert_eq!(reads, "none", "{point}"),
            "raw:sched_process_fork" => assert_eq!(reads, "helper", "{point}"),
            _ if has_cast && !forced_helper => assert_eq!(reads, "typed", "{point}: {reason}"),
            _ => {
                assert_eq!(reads, "helper", "{point}");
                assert!(reason.contains("helper reads: "), "{point} does not say why: {reason}");
            }
        }
    }
}

/// Where open or mmap runs on the syscall tracepoints (forced, or fexit refused: this
/// host's EPERM, arm64 before 6.4's ENOTSUPP), the hook says why and the status lists
/// what the tracepoints cannot see; on fexit it lists neither.
#[test]
fn a_tracepoint_fallback_says_why_and_what_it_cannot_see() {
    require_privileges!();
    let forced = std::env::var("MODELWATCH_BACKEND").is_ok_and(|v| v == "tracepoint");
    let sensor = Sensor::start(&[]);
    let status = &sensor.status["sensor_status"];
    let degraded: Vec<&str> = status["degraded"]
        .as_array()
        .map(|d| d.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let hooks = status["hooks"].as_array().expect("hooks");
    let on_tracepoints: Vec<_> = hooks
        .iter()
        .filter(|h| h["attached"] == true && h["backend"] == "tracepoint")
        .filter(|h| h["watches"] == "open" || h["watches"] == "mmap")
        .collect();
    eprintln!("degraded: {degraded:?}");
    for blind_spot in ["io_uring", "compat syscalls"] {
        let listed = degraded.iter().any(|d| d.contains(blind_spot));
        assert_eq!(listed, !on_tracepoints.is_empty(), "{blind_spot} in {degraded:?}");
    }
    for hook in on_tracepoints.iter().filter(|_| !forced) {
        let reason = hook["reason"].as_str().unwrap_or("");
        assert!(reason.contains("fallback: ") && reason.contains(" refused ("), "{hook}");
    }
}
