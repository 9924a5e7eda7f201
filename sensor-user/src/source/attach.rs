//! Attaching programs: the strong backend first where allowed, tracepoints for the rest,
//! with the outcome of every hook recorded.

use aya::{
    Btf, Ebpf,
    programs::{FExit, ProgramError, RawTracePoint, TracePoint},
};

use super::{
    error::LoadError,
    hooks::{
        AttachPoint, Backend, BackendChoice, Hook, HookStatus, STRONG, TRACEPOINTS, VERIFIER_REJECTED, Watch,
    },
    offsets::TracepointFields,
};

/// Attaches every hook. `prefix` selects a program family (`floor_` for benchmarks).
///
/// # Errors
/// A required hook attached on no backend.
pub(super) fn attach_all(
    ebpf: &mut Ebpf,
    fields: &TracepointFields,
    prefix: &str,
    backend: BackendChoice,
) -> Result<Vec<HookStatus>, LoadError> {
    let mut statuses = Vec::new();
    let mut refused = Vec::new();
    if backend == BackendChoice::Auto && prefix.is_empty() {
        let btf = Btf::from_sys_fs().ok();
        for hook in STRONG {
            let status = attach(ebpf, hook, fields, prefix, btf.as_ref());
            if status.attached {
                statuses.push(status);
            } else {
                refused.push((hook.watches, format!("{} refused ({})", status.attach_point, status.reason)));
            }
        }
    }
    for hook in TRACEPOINTS {
        let replaced =
            statuses.iter().any(|s| s.watches == hook.watches && s.attached && s.backend == Backend::Fexit);
        if replaced {
            continue;
        }
        let mut status = attach(ebpf, hook, fields, prefix, None);
        if hook.required && !status.attached {
            return Err(LoadError::Hook {
                watches: hook.watches.as_str(),
                attach_point: status.attach_point,
                fix: hook.advice(&status.reason).fix(),
                reason: status.reason,
            });
        }
        if let Some((_, why)) = refused.iter().find(|(watches, _)| *watches == hook.watches) {
            status.reason = format!("fallback: {why}");
        }
        statuses.push(status);
    }
    Ok(statuses)
}

fn attach(
    ebpf: &mut Ebpf,
    hook: Hook,
    fields: &TracepointFields,
    prefix: &str,
    btf: Option<&Btf>,
) -> HookStatus {
    let mut status = HookStatus::new(&hook);
    if let Some(missing) = missing_fields(hook, fields) {
        status.reason = format!("tracepoint fields unavailable: {missing}");
        return status;
    }
    let name = format!("{prefix}{}", hook.program);
    let result = match ebpf.program_mut(&name) {
        None => Err(format!("program {name} is missing from the object")),
        Some(program) => match hook.point {
            AttachPoint::Tracepoint { category, name } => {
                program.try_into().map_err(|e: ProgramError| e.to_string()).and_then(|p: &mut TracePoint| {
                    // A program shared by several tracepoints is loaded by the first.
                    if p.fd().is_err() {
                        p.load().map_err(|e| describe(&e))?;
                    }
                    p.attach(category, name).map_err(|e| describe(&e))?;
                    Ok(p.info().ok().and_then(|info| info.verified_instruction_count()))
                })
            }
            AttachPoint::RawTracepoint { name } => program
                .try_into()
                .map_err(|e: ProgramError| e.to_string())
                .and_then(|p: &mut RawTracePoint| {
                    p.load().map_err(|e| describe(&e))?;
                    p.attach(name).map_err(|e| describe(&e))?;
                    Ok(p.info().ok().and_then(|info| info.verified_instruction_count()))
                }),
            AttachPoint::FExit { function } => match btf {
                None => Err("no BTF for fexit".to_owned()),
                Some(btf) => {
                    program.try_into().map_err(|e: ProgramError| e.to_string()).and_then(|p: &mut FExit| {
                        p.load(function, btf).map_err(|e| describe(&e))?;
                        p.attach().map_err(|e| describe(&e))?;
                        Ok(p.info().ok().and_then(|info| info.verified_instruction_count()))
                    })
                }
            },
        },
    };
    match result {
        Ok(insns) => {
            status.attached = true;
            status.verified_insns = insns;
        }
        Err(reason) => status.reason = reason,
    }
    status
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
        other => other.to_string(),
    }
}
