//! Builds a file's path from the kernel's own dentries and mounts (like `d_path`), so
//! it is the object the kernel opened, not what user memory claimed.
//!
//! Components are written leaf-first as NUL-terminated strings; userspace reverses them.
//! Checked on 6.1, 6.12 and 6.18: `d_parent`, `d_name` and `struct mount` have kept their
//! meaning across these versions; only their offsets move (taken from BTF).
//!
//! NB: the write position lives in the `WALK` map, not in a register. A register would
//! give the verifier one state per reachable length and a 48-step walk would exceed its
//! budget; a value loaded from a map is unknown, so iterations look alike and are pruned,
//! and the `& (PATH_CAP - 1)` mask is what proves every write in bounds.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sensor_common::{NAME_CAP, PATH_CAP, PATH_MAX_DEPTH, PathHeader, offsets::feature, path_flags};

use crate::{
    kernel::read,
    maps::{WALK, WalkState},
    offsets::{has, off},
};

/// Walks from `dentry` (in mount `vfsmnt`) up to the root of the mount namespace.
///
/// `out` must have room for `PATH_CAP + NAME_CAP` bytes: every write starts below
/// `PATH_CAP` and copies at most `NAME_CAP`.
#[inline(always)]
pub(crate) fn walk(out: *mut u8, dentry: u64, vfsmnt: u64) -> PathHeader {
    let mut header = PathHeader::default();
    let Some(state) = WALK.get_ptr_mut(0) else {
        header.flags = path_flags::TRUNCATED;
        return header;
    };
    if !has(feature::DENTRY_WALK) {
        header.flags = path_flags::TRUNCATED;
        return header;
    }
    let cross_mounts = has(feature::MOUNT_WALK);
    if !cross_mounts {
        header.flags |= path_flags::NO_MOUNT_WALK;
    }
    // An unlinked file's dentry is unhashed (`d_unhashed`): its path no longer exists.
    if has(feature::UNLINKED) && read::<u64>(dentry, off!(dentry_d_hash_pprev)).is_ok_and(|p| p == 0) {
        header.flags |= path_flags::DELETED;
    }
    // SAFETY: `state` is this CPU's WALK value.
    unsafe { *state = WalkState { pos: 0, depth: 0 } };
    let finished = steps(out, state, dentry, vfsmnt, cross_mounts);
    // SAFETY: as above.
    let (pos, depth) = unsafe { ((*state).pos, (*state).depth) };
    header.len = (pos & (PATH_CAP as u64 - 1)) as u16;
    header.depth = depth as u16;
    if !finished {
        header.flags |= path_flags::TRUNCATED;
    }
    header
}

/// The walk itself; true when it reached the root.
#[inline(always)]
fn steps(out: *mut u8, state: *mut WalkState, mut dentry: u64, vfsmnt: u64, cross_mounts: bool) -> bool {
    let mut mount = vfsmnt.wrapping_sub(u64::from(off!(mount_mnt)));
    let mut mnt_root: u64 = read(vfsmnt, off!(vfsmount_mnt_root)).unwrap_or(0);
    for _ in 0..PATH_MAX_DEPTH {
        if dentry == mnt_root && cross_mounts {
            // At the root of this mount: continue from where it is mounted.
            let Ok(parent) = read::<u64>(mount, off!(mount_mnt_parent)) else { return false };
            if parent == mount {
                return true;
            }
            let Ok(mountpoint) = read::<u64>(mount, off!(mount_mnt_mountpoint)) else { return false };
            dentry = mountpoint;
            mount = parent;
            mnt_root = read(parent + u64::from(off!(mount_mnt)), off!(vfsmount_mnt_root)).unwrap_or(0);
            continue;
        }
        let Ok(parent) = read::<u64>(dentry, off!(dentry_d_parent)) else { return false };
        if parent == dentry {
            return true;
        }
        let Ok(name) = read::<u64>(dentry, off!(dentry_d_name_name)) else { return false };
        // SAFETY: `state` is this CPU's WALK value.
        let pos = unsafe { core::ptr::read_volatile(&raw const (*state).pos) };
        let at = pos & (PATH_CAP as u64 - 1);
        // SAFETY: `at < PATH_CAP` and the helper writes at most NAME_CAP bytes, inside
        // the caller's buffer; the source is checked by the helper.
        let copied = unsafe {
            bpf_probe_read_kernel_str(out.add(at as usize).cast(), NAME_CAP as u32, name as *const _)
        };
        if copied <= 0 {
            return false;
        }
        let next = pos + copied as u64;
        // Keep the last byte free so that `len` always fits the mask above.
        if next >= PATH_CAP as u64 {
            return false;
        }
        // SAFETY: as above.
        unsafe {
            core::ptr::write_volatile(&raw mut (*state).pos, next);
            (*state).depth += 1;
        }
        dentry = parent;
    }
    false
}
