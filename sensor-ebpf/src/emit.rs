//! Record headers and ring-buffer output with loss accounting.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
};
use sensor_common::{ABI_VERSION, EventHeader, EventKind};

use crate::{
    bounds::at_most,
    maps::{CONSUMER_ASLEEP, FILE_EVENTS, PROCESS_EVENTS, Ring, SCRATCH, SCRATCH_SIZE, count},
};

#[inline(always)]
pub(crate) fn header(kind: EventKind, size: usize) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    EventHeader {
        kind: kind as u16,
        abi_version: ABI_VERSION,
        size: size as u32,
        // SAFETY: helpers without arguments.
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        // SAFETY: as above.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or_default(),
    }
}

/// Whether this record wakes the consumer. Waking it for every record costs the
/// producing task an interrupt and the consumer a context switch per event. While
/// records flow, userspace drains on a short timer, so the kernel wakes it only when
/// the ring is an eighth full and a burst could otherwise overflow it. Once idle,
/// userspace stops its timer and raises `CONSUMER_ASLEEP`: the first record wakes it.
#[inline(always)]
fn wakeup(ring: &aya_ebpf::maps::RingBuf) -> u64 {
    const NO_WAKEUP: u64 = 1;
    const FORCE_WAKEUP: u64 = 2;
    const AVAIL_DATA: u64 = 0;
    const RING_SIZE: u64 = 1;
    if let Some(asleep) = CONSUMER_ASLEEP.get_ptr_mut(0) {
        // SAFETY: the map value is a u32; a racing CPU at worst wakes it twice.
        unsafe {
            if *asleep != 0 {
                *asleep = 0;
                return FORCE_WAKEUP;
            }
        }
    }
    if ring.query(AVAIL_DATA) > ring.query(RING_SIZE) / 8 { FORCE_WAKEUP } else { NO_WAKEUP }
}

/// This CPU's scratch buffer, where records too large for the stack are built.
#[inline(always)]
pub(crate) fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(<*mut crate::maps::Scratch>::cast::<u8>)
}

#[inline(always)]
fn ring(which: Ring) -> &'static aya_ebpf::maps::RingBuf {
    match which {
        Ring::Files => &FILE_EVENTS,
        Ring::Processes => &PROCESS_EVENTS,
    }
}

/// Copies `size` bytes of `record` into a ring buffer and counts the outcome; true when
/// it was sent.
#[inline(always)]
pub(crate) fn submit(which: Ring, record: *const u8, size: usize, forwarded: u32, lost: u32) -> bool {
    let size = at_most::<SCRATCH_SIZE>(size);
    // SAFETY: `record` points into the scratch map value (or a stack record) that holds
    // at least `size` bytes; the slice only lives for this call.
    let bytes = unsafe { core::slice::from_raw_parts(record, size) };
    let ring = ring(which);
    match ring.output(bytes, wakeup(ring)) {
        Ok(()) => {
            count(forwarded);
            true
        }
        Err(_) => {
            count(lost);
            false
        }
    }
}

/// Sends a fixed-size record built on the stack to the process ring.
#[inline(always)]
pub(crate) fn submit_value<T>(record: &T, forwarded: u32, lost: u32) {
    match PROCESS_EVENTS.output(record, wakeup(&PROCESS_EVENTS)) {
        Ok(()) => count(forwarded),
        Err(_) => count(lost),
    }
}
