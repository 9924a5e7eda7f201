//! Every map the programs share with userspace. Sizes marked "set by userspace" are
//! overridden at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use sensor_common::{
    counters,
    settings::{AcceleratorMinors, ExtensionKey, Settings},
};

/// Scratch space for building one record; larger than any record so that a path
/// component written at any offset below `PATH_CAP` stays inside the value.
pub(crate) const SCRATCH_SIZE: usize = 8192;

#[repr(C)]
pub(crate) struct Scratch {
    pub(crate) buf: [u8; SCRATCH_SIZE],
}

/// Candidate file records (opens and maps): the ring an unprivileged flood can fill.
/// Byte size set by userspace.
#[map]
pub(crate) static FILE_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Process and listener records (exec, exit, listen, accelerator opens): their own
/// ring, so that no flood of file records can push them out. Byte size set by userspace.
#[map]
pub(crate) static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Which ring a record goes to.
#[derive(Clone, Copy)]
pub(crate) enum Ring {
    Files,
    Processes,
}

/// Non-zero while the consumer sleeps without a timer: the next record wakes it and
/// clears this (see `emit::wakeup`).
#[map]
pub(crate) static CONSUMER_ASLEEP: Array<u32> = Array::with_max_entries(1, 0);

/// Per-CPU counters, indexed by `sensor_common::counters`.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

#[map]
pub(crate) static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The path walk's position and depth. Kept in map memory on purpose: the verifier
/// does not track values loaded from a map, so every loop iteration looks alike and
/// is pruned, instead of one state per possible length (see `path.rs`).
#[repr(C)]
pub(crate) struct WalkState {
    pub(crate) pos: u64,
    pub(crate) depth: u64,
}

#[map]
pub(crate) static WALK: PerCpuArray<WalkState> = PerCpuArray::with_max_entries(1, 0);

/// Bytes of [`NameScratch::tail`]: 16 for a tail read by a helper, then room for a
/// dentry's inline name loaded word by word (see `names.rs`); a power of two, so that a
/// masked index stays inside.
pub(crate) const NAME_TAIL: usize = 64;

/// Where the name filter copies a name's last bytes and builds its extension key (see
/// `names.rs`). Aligned for the word loads of inline names.
#[repr(C, align(8))]
pub(crate) struct NameScratch {
    pub(crate) tail: [u8; NAME_TAIL],
    pub(crate) key: [u8; 16],
    /// Index just past the name's last byte in `tail`.
    pub(crate) end: u32,
    /// Bytes after the name's last dot (its extension's length).
    pub(crate) ext_len: u32,
}

#[map]
pub(crate) static NAME_SCRATCH: PerCpuArray<NameScratch> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub(crate) static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Watched model extensions (lower case, no dot).
#[map]
pub(crate) static EXTENSIONS: HashMap<ExtensionKey, u8> = HashMap::with_max_entries(64, 0);

/// Watched listener ports (host order).
#[map]
pub(crate) static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(256, 0);

/// Device majors of accelerators (GPU, NPU), from /proc/devices, with the minors that
/// are accelerators (DRM render nodes: 128 and up).
#[map]
pub(crate) static ACCEL_MAJORS: HashMap<u32, AcceleratorMinors> = HashMap::with_max_entries(64, 0);

/// Processes that opened an accelerator: only their ioctls are looked at.
#[map]
pub(crate) static ACCEL_PROCS: HashMap<u32, u8> = HashMap::with_max_entries(16_384, NO_PREALLOC);

/// Per process, ioctls on accelerator descriptors: a counter, never an event per
/// ioctl. Per CPU, so no atomics; userspace sums and deletes at exit.
#[map]
pub(crate) static ACCEL_IOCTLS: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(16_384, 0);

/// Task names (`comm`, NUL-padded) of runtime executables: a process exec'ing one is
/// marked at once, before its first instruction, so that the small files it opens
/// right away are not missed while userspace classifies it.
#[map]
pub(crate) static RUNTIME_COMMS: HashMap<[u8; 16], u32> = HashMap::with_max_entries(64, 0);

/// `BPF_F_NO_PREALLOC`: entries are allocated on insert, so the map can be sized for
/// every possible pid without reserving that memory up front.
const NO_PREALLOC: u32 = 1;

/// tgid -> `sensor_common::settings::mark` bits: processes treated as inference runtimes.
/// NB: a plain hash map, never LRU: an eviction would silently unmark a real server,
/// so a flood of marked children must fail to insert (counted as `mark_full`) rather
/// than push anything out. Userspace sizes it to `pid_max`; entries go at exit.
#[map]
pub(crate) static MARKED: HashMap<u32, u32> = HashMap::with_max_entries(65_536, NO_PREALLOC);

/// One process's repeated opens (or maps) of one file.
#[repr(C)]
pub(crate) struct DedupKey {
    pub(crate) tgid: u32,
    /// `sensor_common::EventKind` of the record.
    pub(crate) kind: u32,
    pub(crate) ino: u64,
    pub(crate) dev: u32,
    pub(crate) _pad: u32,
}

#[repr(C)]
pub(crate) struct DedupState {
    /// When the last record for this key was sent.
    pub(crate) sent_ns: u64,
    /// The file's change time then: a rewrite ends the window at once.
    pub(crate) ctime_sec: i64,
    pub(crate) ctime_nsec: u32,
    /// Repeats folded since that record.
    pub(crate) folded: u32,
}

/// LRU on purpose: forgetting an entry only costs one more record.
#[map]
pub(crate) static DEDUP: LruHashMap<DedupKey, DedupState> = LruHashMap::with_max_entries(16_384, 0);

/// A candidate mmap seen at syscall entry, finished at exit (keyed by pid_tgid).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct PendingMmap {
    pub(crate) fd: i64,
    pub(crate) len: u64,
    pub(crate) pgoff: u64,
    pub(crate) prot: u32,
    pub(crate) flags: u32,
    pub(crate) reason: u32,
    pub(crate) _pad: u32,
}

/// NB: not LRU: an eviction would lose a mapping silently. A full map fails the insert,
/// which is counted (`state_full`); a thread's entry goes when its call returns or,
/// should it never return, when the thread exits (see `exit.rs`).
#[map]
pub(crate) static MMAP_PENDING: HashMap<u64, PendingMmap> = HashMap::with_max_entries(16_384, 0);

/// Entries in `MMAP_PENDING`: while it is zero (nearly always), a mapping's exit and a
/// thread's exit skip the hash lookup. Counted only for inserts and removals that
/// happened, so it can never read zero while an entry exists.
#[map]
pub(crate) static MMAP_IN_FLIGHT: Array<u64> = Array::with_max_entries(1, 0);

/// Parks a candidate mapping until its syscall returns; false when the map is full.
#[inline(always)]
pub(crate) fn park_mmap(key: u64, pending: &PendingMmap) -> bool {
    if MMAP_PENDING.insert(&key, pending, 0).is_err() {
        return false;
    }
    in_flight_add(1);
    true
}

/// Takes the parked mapping of `key`, if any.
#[inline(always)]
pub(crate) fn take_mmap(key: u64) -> Option<PendingMmap> {
    let in_flight = MMAP_IN_FLIGHT.get_ptr(0)?;
    // SAFETY: a map value; read once, racing updates only make this lookup happen.
    if unsafe { core::ptr::read_volatile(in_flight) } == 0 {
        return None;
    }
    // SAFETY: copied out before the entry is removed.
    let pending = (unsafe { MMAP_PENDING.get(&key) }).copied()?;
    if MMAP_PENDING.remove(&key).is_ok() {
        in_flight_add(u64::MAX);
    }
    Some(pending)
}

/// Adds `delta` (wrapping: `u64::MAX` is -1) to `MMAP_IN_FLIGHT`, atomically.
#[inline(always)]
fn in_flight_add(delta: u64) {
    let Some(slot) = MMAP_IN_FLIGHT.get_ptr_mut(0) else { return };
    // NB: `core` offers no atomic read-modify-write on this target; this is the BPF
    // atomic add (`BPF_ATOMIC | BPF_ADD`, no fetch) that C's `__sync_fetch_and_add` emits.
    #[cfg(target_arch = "bpf")]
    // SAFETY: an 8-byte aligned map value shared by all CPUs, only ever updated atomically.
    unsafe {
        core::arch::asm!("lock *(u64 *)({slot} + 0) += {delta}", slot = in(reg) slot, delta = in(reg) delta);
    }
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as above (host builds exist for lints only).
    unsafe {
        *slot = (*slot).wrapping_add(delta);
    }
}

#[inline(always)]
pub(crate) fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot; programs do not migrate CPUs while running.
        unsafe { *slot += 1 };
    }
}

/// What `settings()` reads should the lookup ever fail (it cannot for index 0).
static DEFAULT_SETTINGS: Settings = Settings::DEFAULT;

/// The settings, in place: the hot path reads a field or two, never the whole value.
#[inline(always)]
pub(crate) fn settings() -> &'static Settings {
    SETTINGS.get(0).unwrap_or(&DEFAULT_SETTINGS)
}

#[inline(always)]
pub(crate) fn is_marked(tgid: u32) -> bool {
    // SAFETY: the value is copied out at once; a concurrent delete only loses a mark.
    unsafe { MARKED.get(&tgid).is_some() }
}
