//! Loads the embedded eBPF object into the running kernel: offsets from BTF and tracefs,
//! filter maps from the configuration, then every hook attached with its outcome
//! recorded. Every failure names its cause and its fix.

use aya::{Ebpf, EbpfLoader};
use thiserror::Error;

use super::{
    attach::attach_all,
    btf::Btf,
    filters::configure_maps,
    hooks::{BackendChoice, HookStatus},
    offsets::{resolve_structs, resolve_tracepoints},
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
    pub backend: BackendChoice,
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
    let hooks = attach_all(&mut ebpf, &fields, prefix, settings.backend)?;
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
