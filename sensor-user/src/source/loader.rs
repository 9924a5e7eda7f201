//! Loads the embedded eBPF object into the running kernel: offsets from BTF and tracefs,
//! filter maps from the configuration, then every hook attached with its outcome
//! recorded. Every failure names its cause and its fix.

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData},
    programs::{ProgramError, TracePoint},
};
use sensor_common::settings::{Settings, extension_key};
use thiserror::Error;

use super::{
    btf::Btf,
    hooks::{HOOKS, Hook, HookStatus},
    offsets::{TracepointFields, resolve_structs, resolve_tracepoints},
    tracefs::{self, TracefsError},
};

/// The eBPF object built by `build.rs` from `sensor-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(
        "modelwatch needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE) to load its probes; fix: run it with sudo"
    )]
    NotRoot,
    #[error(
        "this kernel exposes no BTF at /sys/kernel/btf/vmlinux ({0}); fix: use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution since 2021)"
    )]
    NoBtf(#[source] std::io::Error),
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error(
        "the kernel refused the eBPF object: {0}; fix: check `dmesg` and that the kernel is 5.8 or newer with BPF ring buffers"
    )]
    Object(#[source] aya::EbpfError),
    #[error("the {watches} hook ({attach_point}) did not load: {reason}; fix: {fix}")]
    Hook { watches: &'static str, attach_point: String, reason: String, fix: &'static str },
    #[error("cannot configure map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("bad setting: {0}")]
    Setting(String),
}

/// Filter settings written into the kernel maps.
#[derive(Clone, Debug)]
pub struct FilterSettings {
    pub ringbuf_bytes: u32,
    pub size_threshold: u64,
    pub extensions: Vec<String>,
    pub ports: Vec<u16>,
    pub listen_marked_any_port: bool,
}

/// A loaded object and the status of every hook.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub hooks: Vec<HookStatus>,
    /// Kernel members or tracepoint fields this kernel lacks (each disables a feature).
    pub missing: Vec<String>,
}

/// Loads and attaches everything.
///
/// # Errors
/// Not root, no BTF, no tracefs, a rejected object or a required hook that fails.
pub fn load(settings: &FilterSettings) -> Result<Loaded, LoadError> {
    load_programs(settings, "")
}

/// Loads the floor instead: programs on the same hooks that return at once (for
/// benchmarks: the cost of the hooks themselves).
///
/// # Errors
/// As [`load`].
pub fn load_floor(settings: &FilterSettings) -> Result<Loaded, LoadError> {
    load_programs(settings, "floor_")
}

fn load_programs(settings: &FilterSettings, prefix: &str) -> Result<Loaded, LoadError> {
    check_privileges()?;
    let btf = Btf::from_sys_fs().map_err(LoadError::NoBtf)?;
    let tracefs_root = tracefs::ensure_mounted()?;
    raise_memlock_limit();
    let mut resolved = resolve_structs(&btf);
    let fields = resolve_tracepoints(&tracefs_root, &mut resolved.missing);
    fields.apply(&mut resolved.offsets);
    let ringbuf = ringbuf_size(settings.ringbuf_bytes)?;
    let mut ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &resolved.offsets, true)
        .map_max_entries("EVENTS", ringbuf)
        .load(OBJECT)
        .map_err(LoadError::Object)?;
    configure_maps(&mut ebpf, settings)?;
    let mut hooks = Vec::with_capacity(HOOKS.len());
    for hook in HOOKS {
        let status = attach(&mut ebpf, hook, &fields, prefix);
        if hook.required && !status.attached {
            return Err(LoadError::Hook {
                watches: hook.watches,
                attach_point: status.attach_point,
                reason: status.reason,
                fix: fix_for(hook),
            });
        }
        hooks.push(status);
    }
    Ok(Loaded { ebpf, hooks, missing: resolved.missing })
}

/// Fails early, before anything is created, when the sensor cannot load probes.
///
/// # Errors
/// [`LoadError::NotRoot`].
pub fn check_privileges() -> Result<(), LoadError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LoadError::NotRoot);
    }
    Ok(())
}

fn fix_for(hook: Hook) -> &'static str {
    match hook.category {
        "syscalls" => "enable CONFIG_FTRACE_SYSCALLS in the kernel",
        "sock" => "use a kernel of 4.16 or newer (sock:inet_sock_set_state)",
        _ => "check that tracefs is mounted and the kernel has CONFIG_TRACEPOINTS",
    }
}

/// The ring buffer size must be a power of two and a multiple of the page size.
fn ringbuf_size(bytes: u32) -> Result<u32, LoadError> {
    if bytes < 4096 || !bytes.is_power_of_two() {
        return Err(LoadError::Setting(format!(
            "ring buffer size {bytes} must be a power of two of at least 4096 bytes"
        )));
    }
    Ok(bytes)
}

fn attach(ebpf: &mut Ebpf, hook: Hook, fields: &TracepointFields, prefix: &str) -> HookStatus {
    let mut status = HookStatus {
        watches: hook.watches,
        backend: "tracepoint",
        attach_point: format!("{}:{}", hook.category, hook.tracepoint),
        attached: false,
        reason: String::new(),
        verified_insns: None,
    };
    if let Some(missing) = missing_fields(hook, fields) {
        status.reason = format!("tracepoint fields unavailable: {missing}");
        return status;
    }
    match attach_tracepoint(ebpf, hook, prefix) {
        Ok(insns) => {
            status.attached = true;
            status.verified_insns = insns;
        }
        Err(reason) => status.reason = reason,
    }
    status
}

fn missing_fields(hook: Hook, fields: &TracepointFields) -> Option<&'static str> {
    match hook.watches {
        "open" if fields.sys_exit_ret.is_none() => Some("sys_exit_openat ret"),
        "mmap" if fields.mmap.is_none() || fields.sys_exit_ret.is_none() => Some("sys_enter_mmap"),
        "listen" if fields.sock.is_none() => Some("inet_sock_set_state"),
        "fork" if fields.fork_child_pid.is_none() => Some("sched_process_fork child_pid"),
        _ => None,
    }
}

fn attach_tracepoint(ebpf: &mut Ebpf, hook: Hook, prefix: &str) -> Result<Option<u32>, String> {
    let name = format!("{prefix}{}", hook.program);
    let program =
        ebpf.program_mut(&name).ok_or_else(|| format!("program {name} is missing from the object"))?;
    let program: &mut TracePoint = program.try_into().map_err(|e: ProgramError| e.to_string())?;
    program.load().map_err(|error| describe(&error))?;
    program.attach(hook.category, hook.tracepoint).map_err(|error| describe(&error))?;
    Ok(program.info().ok().and_then(|info| info.verified_instruction_count()))
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
            format!("the verifier rejected it ({io_error}): {}", complaint.join(" | "))
        }
        other => other.to_string(),
    }
}

fn configure_maps(ebpf: &mut Ebpf, settings: &FilterSettings) -> Result<(), LoadError> {
    let value = Settings {
        size_threshold: settings.size_threshold,
        self_tgid: std::process::id(),
        listen_marked_any_port: u32::from(settings.listen_marked_any_port),
    };
    let map = ebpf.map_mut("SETTINGS").ok_or_else(|| missing_map("SETTINGS"))?;
    let mut array: Array<&mut MapData, Settings> = Array::try_from(map).map_err(map_error("SETTINGS"))?;
    array.set(0, &value, 0).map_err(map_error("SETTINGS"))?;
    let mut extensions = Vec::with_capacity(settings.extensions.len());
    for ext in &settings.extensions {
        extensions.push((
            extension_key(ext).ok_or_else(|| {
                LoadError::Setting(format!("extension {ext:?} must be 1 to 15 characters without dots"))
            })?,
            1u8,
        ));
    }
    fill(ebpf, "EXTENSIONS", extensions)?;
    fill(ebpf, "PORTS", settings.ports.iter().map(|port| (*port, 1u8)))?;
    fill(ebpf, "ACCEL_MAJORS", crate::enrich::devices::accelerator_majors().into_iter().map(|m| (m, 1u8)))?;
    // The kernel keeps the first 15 bytes of an executable's name as its `comm`.
    let comms = crate::analyze::runtime::RUNTIME_EXECUTABLES.iter().map(|name| {
        let mut comm = [0u8; 16];
        for (dst, src) in comm.iter_mut().take(15).zip(name.bytes()) {
            *dst = src;
        }
        (comm, sensor_common::settings::mark::RUNTIME)
    });
    fill(ebpf, "RUNTIME_COMMS", comms)
}

/// Inserts `entries` into the hash map `name`.
fn fill<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: impl IntoIterator<Item = (K, V)>,
) -> Result<(), LoadError> {
    let map = ebpf.map_mut(name).ok_or_else(|| missing_map(name))?;
    let mut map: BpfHashMap<&mut MapData, K, V> = BpfHashMap::try_from(map).map_err(map_error(name))?;
    for (key, value) in entries {
        map.insert(&key, &value, 0).map_err(map_error(name))?;
    }
    Ok(())
}

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> LoadError {
    move |source| LoadError::Map { map, source }
}

fn missing_map(name: &str) -> LoadError {
    LoadError::Setting(format!("map {name} is missing from the eBPF object (a build mismatch)"))
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; fine on 5.11 and later");
    }
}
