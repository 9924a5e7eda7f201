//! In-kernel folding of repeated opens and maps: one process re-opening one file at
//! full speed (~100k/s) must cost a bounded number of records, not one each, or it
//! would fill the file ring for everyone. Within the window, a repeat only bumps a
//! count; the next record that goes out carries it (`FileEvent::repeats`).

use aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns;
use sensor_common::{EventKind, FileIdentity, counters};

use crate::maps::{DEDUP, DedupKey, DedupState, count, settings};

/// Nanoseconds fit in 30 bits; the bits above are flags.
const NSEC_MASK: u32 = (1 << 30) - 1;

/// `Some(repeats folded since the last record)` when a record should go out now,
/// `None` when this one is folded.
#[inline(always)]
pub(super) fn admit(tgid: u32, kind: EventKind, identity: &FileIdentity) -> Option<u32> {
    let window = settings().dedup_window_ns;
    if window == 0 || kind == EventKind::AcceleratorOpen {
        return Some(0);
    }
    let key = DedupKey { tgid, kind: kind as u32, ino: identity.ino, dev: identity.dev, _pad: 0 };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(state) = DEDUP.get_ptr_mut(&key) {
        // SAFETY: a map value; a racing CPU at worst sends one more record or miscounts
        // one repeat.
        unsafe {
            // NB: the top bit of ctime_nsec is a flag since 6.13 (multigrain), not time.
            let unchanged = (*state).ctime_sec == identity.ctime_sec
                && ((*state).ctime_nsec ^ identity.ctime_nsec) & NSEC_MASK == 0;
            if unchanged && now.wrapping_sub((*state).sent_ns) < window {
                (*state).folded = (*state).folded.saturating_add(1);
                count(if kind == EventKind::FileMmap {
                    counters::MMAP_FOLDED
                } else {
                    counters::OPEN_FOLDED
                });
                return None;
            }
            let folded = (*state).folded;
            (*state).sent_ns = now;
            (*state).ctime_sec = identity.ctime_sec;
            (*state).ctime_nsec = identity.ctime_nsec;
            (*state).folded = 0;
            return Some(folded);
        }
    }
    let state = DedupState {
        sent_ns: now,
        ctime_sec: identity.ctime_sec,
        ctime_nsec: identity.ctime_nsec,
        folded: 0,
    };
    // A full LRU map evicts the stalest entry: at worst one more record later.
    let _ = DEDUP.insert(&key, &state, 0);
    Some(0)
}
