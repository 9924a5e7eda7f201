//! Indexes into the per-CPU `COUNTERS` array, and what each one means. Userspace sums
//! them across CPUs. They prove the kernel filter works (seen vs forwarded), make loss
//! visible (`*_lost`: the ring buffer was full), and show what was folded or degraded.

pub const OPEN_SEEN: u32 = 0;
pub const OPEN_FORWARDED: u32 = 1;
pub const OPEN_LOST: u32 = 2;
pub const MMAP_SEEN: u32 = 3;
pub const MMAP_FORWARDED: u32 = 4;
pub const MMAP_LOST: u32 = 5;
pub const EXEC_SEEN: u32 = 6;
pub const EXEC_FORWARDED: u32 = 7;
pub const EXEC_LOST: u32 = 8;
pub const EXIT_FORWARDED: u32 = 9;
pub const EXIT_LOST: u32 = 10;
pub const LISTEN_SEEN: u32 = 11;
pub const LISTEN_FORWARDED: u32 = 12;
pub const LISTEN_LOST: u32 = 13;
pub const ACCEL_FORWARDED: u32 = 14;
pub const ACCEL_LOST: u32 = 15;
/// A kernel read (`bpf_probe_read_*`) failed; the event was dropped or sent incomplete.
pub const READ_ERRORS: u32 = 16;
/// The per-call state map (mmap enter -> exit) was full: a mapping was not reported.
pub const STATE_FULL: u32 = 17;
/// A process could not be marked (the `MARKED` map was full).
pub const MARK_FULL: u32 = 18;
/// Repeated opens of one file by one process within the dedup window, folded into
/// the next record's `repeats` instead of a record each.
pub const OPEN_FOLDED: u32 = 19;
/// The same for mappings.
pub const MMAP_FOLDED: u32 = 20;

pub const COUNT: u32 = 21;

/// What a counter measures, which decides how userspace reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Hook invocations that reached the filter.
    Seen,
    /// Records written to a ring buffer.
    Forwarded,
    /// Records dropped because a ring buffer was full.
    Lost,
    /// A record or a mark the kernel could not complete.
    Degraded,
    /// Repeats summarised in a later record (not lost: counted there).
    Folded,
}

/// One counter: its index, its name in status, metrics and `events_lost`, its role.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    pub index: u32,
    pub name: &'static str,
    pub role: Role,
}

const fn c(index: u32, name: &'static str, role: Role) -> Counter {
    Counter { index, name, role }
}

/// Every counter, in index order.
pub const TABLE: [Counter; COUNT as usize] = [
    c(OPEN_SEEN, "open_seen", Role::Seen),
    c(OPEN_FORWARDED, "open_forwarded", Role::Forwarded),
    c(OPEN_LOST, "open_lost", Role::Lost),
    c(MMAP_SEEN, "mmap_seen", Role::Seen),
    c(MMAP_FORWARDED, "mmap_forwarded", Role::Forwarded),
    c(MMAP_LOST, "mmap_lost", Role::Lost),
    c(EXEC_SEEN, "exec_seen", Role::Seen),
    c(EXEC_FORWARDED, "exec_forwarded", Role::Forwarded),
    c(EXEC_LOST, "exec_lost", Role::Lost),
    c(EXIT_FORWARDED, "exit_forwarded", Role::Forwarded),
    c(EXIT_LOST, "exit_lost", Role::Lost),
    c(LISTEN_SEEN, "listen_seen", Role::Seen),
    c(LISTEN_FORWARDED, "listen_forwarded", Role::Forwarded),
    c(LISTEN_LOST, "listen_lost", Role::Lost),
    c(ACCEL_FORWARDED, "accel_forwarded", Role::Forwarded),
    c(ACCEL_LOST, "accel_lost", Role::Lost),
    c(READ_ERRORS, "read_errors", Role::Degraded),
    c(STATE_FULL, "state_full", Role::Degraded),
    c(MARK_FULL, "mark_full", Role::Degraded),
    c(OPEN_FOLDED, "open_folded", Role::Folded),
    c(MMAP_FOLDED, "mmap_folded", Role::Folded),
];

const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].index as usize == i, "TABLE must be in index order");
        i += 1;
    }
};
