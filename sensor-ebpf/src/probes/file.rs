//! The candidate filter shared by the open and mmap probes, and the file record.

use core::mem::size_of;

use sensor_common::{EventKind, FileEvent, FileIdentity, MmapFields, counters, reason};

use crate::{
    emit::{header, scratch, submit},
    kernel::{KResult, ReadError, S_IFCHR, S_IFMT, S_IFREG, file_path, read},
    maps::{ACCEL_MAJORS, is_marked, settings},
    names::name_reason,
    offsets::off,
    path::walk,
};

/// Why `file` is worth forwarding ([`reason`] bits); 0 when it is not.
#[inline(always)]
pub(super) fn candidate_reason(file: u64, identity: &FileIdentity, tgid: u32) -> u32 {
    let marked = is_marked(tgid);
    match identity.mode & S_IFMT {
        S_IFREG => {
            let mut why = 0;
            if identity.size >= settings().size_threshold {
                why |= reason::SIZE;
            }
            if marked {
                why |= reason::MARKED_RUNTIME;
            }
            // Cheapest tests first: the name is read only for small files.
            if why == 0 {
                why |= name_reason(file);
            }
            why
        }
        S_IFCHR if marked && is_accelerator(identity.rdev) => reason::ACCELERATOR,
        _ => 0,
    }
}

#[inline(always)]
fn is_accelerator(rdev: u32) -> bool {
    // Kernel-internal dev_t: major in the top 12 bits (MINORBITS = 20).
    let major = rdev >> 20;
    // SAFETY: the value is only tested for presence.
    unsafe { ACCEL_MAJORS.get(&major).is_some() }
}

/// Builds a [`FileEvent`] with the path in this CPU's scratch buffer and sends it.
#[inline(always)]
pub(super) fn emit_file(
    kind: EventKind,
    file: u64,
    identity: FileIdentity,
    why: u32,
    fd: i32,
    mmap: MmapFields,
) -> KResult<()> {
    let (forwarded, lost) = match kind {
        EventKind::FileMmap => (counters::MMAP_FORWARDED, counters::MMAP_LOST),
        EventKind::AcceleratorOpen => (counters::ACCEL_FORWARDED, counters::ACCEL_LOST),
        _ => (counters::OPEN_FORWARDED, counters::OPEN_LOST),
    };
    let buf = scratch().ok_or(ReadError)?;
    let (mnt, dentry) = file_path(file)?;
    // SAFETY: the scratch value is SCRATCH_SIZE bytes; the path tail starts after the
    // fixed record and `walk` stays below PATH_CAP + NAME_CAP from there.
    let path = walk(unsafe { buf.add(size_of::<FileEvent>()) }, dentry, mnt);
    let size = size_of::<FileEvent>() + usize::from(path.len);
    let event = FileEvent {
        header: header(kind, size),
        file: identity,
        mmap,
        fd,
        reason: why,
        open_flags: read(file, off!(file_f_flags)).unwrap_or(0),
        _pad: 0,
        path,
    };
    // SAFETY: the scratch buffer is map memory, 8-byte aligned and large enough.
    unsafe { core::ptr::write(buf.cast::<FileEvent>(), event) };
    submit(buf, size, forwarded, lost);
    Ok(())
}
