//! Loads the embedded eBPF object into the running kernel: offsets from BTF and tracefs,
//! filter maps from the configuration, then every hook attached with its outcome
//! recorded. Every failure names its cause and its fix.

use aya::{Ebpf, EbpfLoader};

use sensor_common::offsets::KernelOffsets;

use super::{
    attach::{TypedReads, attach_all},
    btf::Btf,
    error::LoadError,
    filters::configure_maps,
    hooks::{HookStatus, TRACEPOINT_BLIND_SPOTS, Watch},
    kfuncs::{Kfuncs, patch},
    offsets::{resolve_structs, resolve_tracepoints},
    settings::FilterSettings,
    tracefs,
};

/// The eBPF object built by `build.rs` from `sensor-ebpf`.
pub(super) static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// `helper`: never try the typed programs (for comparing the two read modes).
const READS_ENV: &str = "MODELWATCH_KERNEL_READS";

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
    let kfuncs = Kfuncs::resolve(&btf);
    let typed = typed_reads(kfuncs, &resolved.offsets);
    drop(btf);
    let (object, _) = patch(OBJECT, kfuncs).map_err(|e| LoadError::Setting(e.to_string()))?;
    let mut ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &resolved.offsets, true)
        .map_max_entries("FILE_EVENTS", ringbuf)
        .map_max_entries("PROCESS_EVENTS", ringbuf)
        .map_max_entries("MARKED", pid_max())
        .load(object.bytes())
        .map_err(LoadError::Object)?;
    configure_maps(&mut ebpf, settings)?;
    let hooks = attach_all(&mut ebpf, &fields, prefix, settings.backend, &typed)?;
    let mut missing = resolved.missing;
    let on_tracepoints = |watch| {
        hooks
            .iter()
            .any(|h| h.watches == watch && h.attached && h.backend == super::hooks::Backend::Tracepoint)
    };
    if on_tracepoints(Watch::Open) || on_tracepoints(Watch::Mmap) {
        missing.extend(TRACEPOINT_BLIND_SPOTS.iter().map(|s| (*s).to_owned()));
    }
    Ok(Loaded { ebpf, hooks, missing })
}

/// Whether the typed programs can load here: they need `bpf_rdonly_cast` (6.2+) and
/// the type ids it takes. The verifier may still refuse one; the helper variant then
/// loads for that hook.
fn typed_reads(kfuncs: Kfuncs, offsets: &KernelOffsets) -> TypedReads {
    if std::env::var(READS_ENV).is_ok_and(|v| v == "helper") {
        return Err(format!("{READS_ENV}=helper"));
    }
    if kfuncs.rdonly_cast.is_none() {
        return Err("this kernel has no bpf_rdonly_cast kfunc (6.2+)".to_owned());
    }
    if offsets.btf_struct_file == 0 || offsets.btf_struct_mount == 0 {
        return Err("struct file or struct mount is missing from this kernel's BTF".to_owned());
    }
    Ok(())
}

/// Every process may be marked at once: `MARKED` holds up to `pid_max` entries (its
/// memory is allocated per entry, not up front).
fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4_194_304)
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

/// The ring buffer size must be a power of two and a multiple of the page size.
fn ringbuf_size(bytes: u32) -> Result<u32, LoadError> {
    if bytes < 4096 || !bytes.is_power_of_two() {
        return Err(LoadError::Setting(format!(
            "ring buffer size {bytes} must be a power of two of at least 4096 bytes"
        )));
    }
    Ok(bytes)
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; fine on 5.11 and later");
    }
}
