//! Indexes into the per-CPU `COUNTERS` array. Userspace sums them across CPUs. They are
//! what proves the kernel filter works (seen vs forwarded) and what makes loss visible
//! (`*_LOST`: the ring buffer was full).

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
/// The per-call state map (mmap enter -> exit) was full.
pub const STATE_FULL: u32 = 17;
/// A fork of a marked runtime could not mark its child (the map was full).
pub const MARK_FULL: u32 = 18;

pub const COUNT: u32 = 19;

/// Names for metrics and status, indexed by counter.
pub const NAMES: [&str; COUNT as usize] = [
    "open_seen",
    "open_forwarded",
    "open_lost",
    "mmap_seen",
    "mmap_forwarded",
    "mmap_lost",
    "exec_seen",
    "exec_forwarded",
    "exec_lost",
    "exit_forwarded",
    "exit_lost",
    "listen_seen",
    "listen_forwarded",
    "listen_lost",
    "accel_forwarded",
    "accel_lost",
    "read_errors",
    "state_full",
    "mark_full",
];

/// The counters that record a record lost to a full ring buffer.
pub const LOST: [u32; 6] = [OPEN_LOST, MMAP_LOST, EXEC_LOST, EXIT_LOST, LISTEN_LOST, ACCEL_LOST];
/// The counters that record a record written to the ring buffer.
pub const FORWARDED: [u32; 6] =
    [OPEN_FORWARDED, MMAP_FORWARDED, EXEC_FORWARDED, EXIT_FORWARDED, LISTEN_FORWARDED, ACCEL_FORWARDED];
