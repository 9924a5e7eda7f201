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

/// Where the name filter builds its extension key (see `names.rs`).
#[repr(C)]
pub(crate) struct NameScratch {
    pub(crate) tail: [u8; 16],
    pub(crate) key: [u8; 16],
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

#[inline(always)]
pub(crate) fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot; programs do not migrate CPUs while running.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub(crate) fn settings() -> Settings {
    SETTINGS.get(0).copied().unwrap_or_default()
}

#[inline(always)]
pub(crate) fn is_marked(tgid: u32) -> bool {
    // SAFETY: the value is copied out at once; a concurrent delete only loses a mark.
    unsafe { MARKED.get(&tgid).is_some() }
}
