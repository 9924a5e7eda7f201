//! Attaching programs: the strong backend first where allowed, tracepoints for the rest,
//! each with typed kernel reads where the verifier accepts them, else helper reads; the
//! outcome of every hook is recorded.

use std::fmt::Write as _;

use aya::{
    Btf, Ebpf,
    programs::{FExit, ProgramError, RawTracePoint, TracePoint},
};

use super::{
    error::LoadError,
    hooks::{
        AttachPoint, Backend, BackendChoice, HELPER_PREFIX, Hook, HookStatus, Reads, STRONG, TRACEPOINTS,
        VERIFIER_REJECTED, Variants, Watch,
    },
    offsets::TracepointFields,
};

/// Whether the typed programs may be tried on this kernel, or why not.
pub(super) type TypedReads = Result<(), String>;

/// Attaches every hook. `prefix` selects a program family (`floor_` for benchmarks).
///
/// # Errors
/// A required hook attached on no backend.
pub(super) fn attach_all(
    ebpf: &mut Ebpf,
    fields: &TracepointFields,
    prefix: &str,
    backend: BackendChoice,
    typed: &TypedReads,
) -> Result<Vec<HookStatus>, LoadError> {
    let mut statuses = Vec::new();
    let mut refused = Vec::new();
    if backend == BackendChoice::Auto && prefix.is_empty() {
        let btf = Btf::from_sys_fs().ok();
        for hook in STRONG.into_iter().filter(Hook::exists_here) {
            let status = attach(ebpf, hook, fields, prefix, btf.as_ref(), typed);
            if status.attached {
                statuses.push(status);
            } else {
                refused.push((hook.watches, format!("{} refused ({})", status.attach_point, status.reason)));
            }
        }
    }
    for hook in TRACEPOINTS.into_iter().filter(Hook::exists_here) {
        let replaced =
            statuses.iter().any(|s| s.watches == hook.watches && s.attached && s.backend == Backend::Fexit);
        if replaced {
            continue;
        }
        let mut status = attach(ebpf, hook, fields, prefix, None, typed);
        if hook.required && !status.attached {
            return Err(LoadError::Hook {
                watches: hook.watches.as_str(),
                attach_point: status.attach_point,
                fix: hook.advice(&status.reason).fix(),
                reason: status.reason,
            });
        }
        if let Some((_, why)) = refused.iter().find(|(watches, _)| *watches == hook.watches) {
            status.reason = join(&format!("fallback: {why}"), &status.reason);
        }
        statuses.push(status);
    }
    Ok(statuses)
}

/// Loads and attaches one hook: its typed variant first where it has one and the kernel
/// may accept it, else (or when the verifier refuses it) its helper variant.
fn attach(
    ebpf: &mut Ebpf,
    hook: Hook,
    fields: &TracepointFields,
    prefix: &str,
    btf: Option<&Btf>,
    typed: &TypedReads,
) -> HookStatus {
    let mut status = HookStatus::new(&hook);
    if let Some(missing) = missing_fields(hook, fields) {
        status.reason = format!("tracepoint fields unavailable: {missing}");
        return status;
    }
    if !prefix.is_empty() || hook.variants != Variants::TypedAndHelper {
        // The floor's programs read nothing; single-variant hooks have one program.
        status.reads = if prefix.is_empty() { status.reads } else { Reads::None };
        return finish(status, load_and_attach(ebpf, hook, &format!("{prefix}{}", hook.program), btf));
    }
    let helper = format!("{HELPER_PREFIX}{}", hook.program);
    let why_helper = match typed {
        Err(why) => why.clone(),
        // A program shared by several attach points whose typed variant an earlier one
        // saw refused: the verifier is not asked twice.
        Ok(()) if is_loaded(ebpf, &helper) && !is_loaded(ebpf, hook.program) => {
            format!("typed program {} refused at an earlier attach point", hook.program)
        }
        Ok(()) => match load_and_attach(ebpf, hook, hook.program, btf) {
            // Only the verifier's refusal is about the reads; any other refusal (the
            // program type, the attach point) would refuse the helper variant too.
            Err(Failure::Load(reason)) if reason.starts_with(VERIFIER_REJECTED) => {
                format!("typed program refused: {reason}")
            }
            other => return finish(status, other),
        },
    };
    status.reads = Reads::Helper;
    status = finish(status, load_and_attach(ebpf, hook, &helper, btf));
    status.reason = join(&format!("helper reads: {why_helper}"), &status.reason);
    status
}

/// Why a program is not attached: refused at load (the verifier, a missing kfunc), or
/// loaded but not attached (a missing tracepoint or function).
enum Failure {
    Load(String),
    Attach(String),
}

fn finish(mut status: HookStatus, result: Result<Option<u32>, Failure>) -> HookStatus {
    match result {
        Ok(insns) => {
            status.attached = true;
            status.verified_insns = insns;
        }
        Err(Failure::Load(reason) | Failure::Attach(reason)) => status.reason = reason,
    }
    status
}

fn load_and_attach(
    ebpf: &mut Ebpf,
    hook: Hook,
    name: &str,
    btf: Option<&Btf>,
) -> Result<Option<u32>, Failure> {
    let load = |e: ProgramError| Failure::Load(describe(&e));
    let attach = |e: ProgramError| Failure::Attach(describe(&e));
    let wrong_type = |e: ProgramError| Failure::Load(e.to_string());
    let Some(program) = ebpf.program_mut(name) else {
        return Err(Failure::Load(format!("program {name} is missing from the object")));
    };
    match hook.point {
        AttachPoint::Tracepoint { category, name } => {
            let p: &mut TracePoint = program.try_into().map_err(wrong_type)?;
            // A program shared by several tracepoints is loaded by the first.
            if p.fd().is_err() {
                p.load().map_err(load)?;
            }
            p.attach(category, name).map_err(attach)?;
            Ok(p.info().ok().and_then(|info| info.verified_instruction_count()))
        }
        AttachPoint::RawTracepoint { name } => {
            let p: &mut RawTracePoint = program.try_into().map_err(wrong_type)?;
            p.load().map_err(load)?;
            p.attach(name).map_err(attach)?;
            Ok(p.info().ok().and_then(|info| info.verified_instruction_count()))
        }
        AttachPoint::FExit { function } => {
            let btf = btf.ok_or_else(|| Failure::Load("no BTF for fexit".to_owned()))?;
            let p: &mut FExit = program.try_into().map_err(wrong_type)?;
            p.load(function, btf).map_err(load)?;
            p.attach().map_err(attach)?;
            Ok(p.info().ok().and_then(|info| info.verified_instruction_count()))
        }
    }
}

fn is_loaded(ebpf: &Ebpf, name: &str) -> bool {
    ebpf.program(name).is_some_and(|p| p.fd().is_ok())
}

/// `first; second`, or whichever is not empty.
fn join(first: &str, second: &str) -> String {
    match (first.is_empty(), second.is_empty()) {
        (_, true) => first.to_owned(),
        (true, false) => second.to_owned(),
        (false, false) => format!("{first}; {second}"),
    }
}

fn missing_fields(hook: Hook, fields: &TracepointFields) -> Option<&'static str> {
    if !matches!(hook.point, AttachPoint::Tracepoint { .. }) {
        return None;
    }
    match hook.watches {
        Watch::Open if fields.sys_exit_ret.is_none() => Some("sys_exit_openat ret"),
        Watch::Mmap if fields.mmap.is_none() || fields.sys_exit_ret.is_none() => Some("sys_enter_mmap"),
        Watch::Listen if fields.sock.is_none() => Some("inet_sock_set_state"),
        Watch::Ioctl if fields.ioctl_fd.is_none() => Some("sys_enter_ioctl fd"),
        _ => None,
    }
}

/// One line for a program error: the errno and, for the verifier, its complaint (the
/// last lines that are not statistics). The whole log goes to the debug log.
fn describe(error: &ProgramError) -> String {
    match error {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            tracing::debug!(verifier_log = %log, "program rejected");
            let is_stats = |line: &&str| {
                ["verification time", "stack depth", "processed ", "max_states_per_insn"]
                    .iter()
                    .any(|prefix| line.starts_with(prefix))
            };
            let complaint: Vec<&str> =
                log.lines().rev().filter(|l| !l.trim().is_empty() && !is_stats(l)).take(2).collect();
            let complaint: Vec<&str> = complaint.into_iter().rev().collect();
            if complaint.is_empty() {
                // No verifier output: the kernel refused the program type or attach
                // point itself (lockdown, missing config, no privilege for it).
                format!("the kernel refused to load it: {io_error}")
            } else {
                format!("{VERIFIER_REJECTED} ({io_error}): {}", complaint.join(" | "))
            }
        }
        other => with_causes(other),
    }
}

/// `error` and each of its causes: the errno of a failed attach is in the cause.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let _ = write!(text, ": {}", errno_meaning(inner).unwrap_or_else(|| inner.to_string()));
        cause = inner.source();
    }
    text
}

/// Words for the errnos libc does not name (the kernel-internal ENOTSUPP).
fn errno_meaning(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    const ENOTSUPP: i32 = 524;
    let io = error.downcast_ref::<std::io::Error>()?;
    (io.raw_os_error() == Some(ENOTSUPP)).then(|| {
        "ENOTSUPP (524): this kernel cannot attach here (arm64 has BPF trampolines for fentry/fexit from 6.4 on)"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use aya::{programs::ProgramError, sys::SyscallError};

    use super::describe;

    #[test]
    fn a_refused_attach_names_its_errno() {
        let error = ProgramError::SyscallError(SyscallError {
            call: "bpf_raw_tracepoint_open",
            io_error: std::io::Error::from_raw_os_error(524),
        });
        let text = describe(&error);
        assert!(text.starts_with("`bpf_raw_tracepoint_open` failed: ENOTSUPP (524)"), "{text}");
        let error = ProgramError::SyscallError(SyscallError {
            call: "bpf_link_create",
            io_error: std::io::Error::from_raw_os_error(1),
        });
        assert!(describe(&error).contains("Operation not permitted"), "{}", describe(&error));
    }
}
