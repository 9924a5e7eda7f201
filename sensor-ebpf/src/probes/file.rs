//! The candidate filter shared by the open and mmap probes, and the file record.

use core::mem::size_of;

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use sensor_common::{
    EventKind, FileEvent, FileIdentity, MmapFields, counters, offsets::feature, reason, settings::mark,
};

pub(super) use crate::kernel::Inode;

use super::dedup;
use crate::{
    emit::{header, scratch, submit},
    kernel::{KResult, ReadError, S_IFCHR, S_IFMT, S_IFREG, file_path},
    maps::{ACCEL_MAJORS, ACCEL_PROCS, MARKED, Ring, count, is_marked, settings},
    names::name_reason,
    offsets::{has, off},
    path::walk,
    reads::Reads,
};

/// Why `file` is worth forwarding ([`reason`] bits); 0 when it is not.
///
/// NB: this runs on every successful open of every process; each kernel read or map
/// lookup is a measurable share of the hook's cost, so the common case (a small file
/// with an ordinary name) is decided with as few as possible.
#[inline(always)]
pub(super) fn candidate_reason<R: Reads>(file: u64, inode: &Inode, tgid: u32) -> u32 {
    match inode.mode & S_IFMT {
        S_IFREG => {
            let marked = if is_marked(tgid) { reason::MARKED_RUNTIME } else { 0 };
            if inode.size >= settings().size_threshold {
                reason::SIZE | marked
            } else if marked != 0 {
                marked
            } else {
                name_reason::<R>(file)
            }
        }
        // Any process: a GPU driven by something not yet known as a runtime is the
        // point. Character-device opens are rare next to regular files.
        S_IFCHR => {
            let rdev: u32 = R::field(inode.ptr, off!(inode_i_rdev)).unwrap_or(0);
            if is_accelerator(rdev) { reason::ACCELERATOR } else { 0 }
        }
        _ => 0,
    }
}

#[inline(always)]
pub(super) fn is_accelerator(rdev: u32) -> bool {
    // Kernel-internal dev_t: major in the top 12 bits (MINORBITS = 20).
    let (major, minor) = (rdev >> 20, rdev & 0xf_ffff);
    // SAFETY: the value is copied out at once.
    unsafe { ACCEL_MAJORS.get(&major) }.is_some_and(|minors| minor >= minors.first && minor <= minors.last)
}

/// Builds a [`FileEvent`] with the path in this CPU's scratch buffer and sends it.
#[inline(always)]
pub(super) fn emit_file<R: Reads>(
    kind: EventKind,
    file: u64,
    identity: FileIdentity,
    why: u32,
    fd: i32,
    mmap: MmapFields,
) -> KResult<()> {
    let (forwarded, lost, ring) = match kind {
        EventKind::FileMmap => (counters::MMAP_FORWARDED, counters::MMAP_LOST, Ring::Files),
        EventKind::AcceleratorOpen => (counters::ACCEL_FORWARDED, counters::ACCEL_LOST, Ring::Processes),
        _ => (counters::OPEN_FORWARDED, counters::OPEN_LOST, Ring::Files),
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(repeats) = dedup::admit(tgid, kind, &identity) else { return Ok(()) };
    let buf = scratch().ok_or(ReadError)?;
    let (mnt, dentry) = file_path::<R>(file)?;
    // SAFETY: the scratch value is SCRATCH_SIZE bytes; the path tail starts after the
    // fixed record and `walk` stays below PATH_CAP + NAME_CAP from there.
    let path = walk::<R>(unsafe { buf.add(size_of::<FileEvent>()) }, dentry, mnt);
    let size = size_of::<FileEvent>() + usize::from(path.len);
    let event = FileEvent {
        header: header(kind, size),
        file: identity,
        mmap,
        fd,
        reason: why,
        open_flags: R::field(file, off!(file_f_flags)).unwrap_or(0),
        repeats,
        mnt_ns: mount_namespace::<R>(),
        _pad: 0,
        path,
    };
    let loads = kind != EventKind::AcceleratorOpen
        && event.open_flags & (O_WRONLY | O_RDWR) == 0
        && why & (reason::SIZE | reason::EXTENSION | reason::MODEL_STORE) != 0;
    // SAFETY: the scratch buffer is map memory, 8-byte aligned and large enough.
    unsafe { core::ptr::write(buf.cast::<FileEvent>(), event) };
    let sent = submit(ring, buf, size, forwarded, lost);
    if sent && loads {
        mark_provisionally(tgid);
    }
    if kind == EventKind::AcceleratorOpen && ACCEL_PROCS.insert(&tgid, &1, 0).is_err() {
        count(counters::MARK_FULL);
    }
    Ok(())
}

/// `current->nsproxy->mnt_ns->ns.inum`, 0 when unknown.
#[inline(always)]
fn mount_namespace<R: Reads>() -> u32 {
    if !has(feature::MOUNT_NS) {
        return 0;
    }
    let Ok(nsproxy) = R::field::<u64>(R::task(), off!(task_nsproxy)) else { return 0 };
    let Ok(mnt_ns) = R::field::<u64>(nsproxy, off!(nsproxy_mnt_ns)) else { return 0 };
    R::field::<u32>(mnt_ns, off!(mnt_namespace_inum)).unwrap_or(0)
}

const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;

/// A process that just loaded a candidate model is watched at once, before userspace
/// has read the file: a listener it opens microseconds later is then forwarded.
/// Userspace confirms the mark or clears it once it knows what the file is.
#[inline(always)]
fn mark_provisionally(tgid: u32) {
    if is_marked(tgid) {
        return;
    }
    if MARKED.insert(&tgid, &mark::PROVISIONAL, BPF_NOEXIST).is_err() && !is_marked(tgid) {
        count(counters::MARK_FULL);
    }
}

/// `BPF_NOEXIST`: never overwrite a mark that raced in.
const BPF_NOEXIST: u64 = 1;
