//! Builds a file's path from the kernel's own dentries and mounts (like `d_path`), so
//! it is the object the kernel opened, not what user memory claimed.
//!
//! Components are written leaf-first as NUL-terminated strings; userspace reverses them.
//! Checked on 6.1, 6.12 and 6.18: `d_parent`, `d_name` and `struct mount` have kept their
//! meaning across these versions; only their offsets move (taken from BTF).

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sensor_common::{NAME_CAP, PATH_CAP, PATH_MAX_DEPTH, PathHeader, offsets::feature, path_flags};

use crate::{
    kernel::read,
    offsets::{has, off},
};

/// Walks from `dentry` (in mount `vfsmnt`) up to the root of the mount namespace.
///
/// `out` must have room for `PATH_CAP + NAME_CAP` bytes: every write starts below
/// `PATH_CAP` and copies at most `NAME_CAP`.
#[inline(always)]
pub(crate) fn walk(out: *mut u8, mut dentry: u64, vfsmnt: u64) -> PathHeader {
    let mut header = PathHeader::default();
    if !has(feature::DENTRY_WALK) {
        header.flags = path_flags::TRUNCATED;
        return header;
    }
    let cross_mounts = has(feature::MOUNT_WALK);
    if !cross_mounts {
        header.flags |= path_flags::NO_MOUNT_WALK;
    }
    let mut mount = vfsmnt.wrapping_sub(u64::from(off!(mount_mnt)));
    let mut mnt_root: u64 = read(vfsmnt, off!(vfsmount_mnt_root)).unwrap_or(0);
    let mut pos: u32 = 0;
    let mut finished = false;
    for _ in 0..PATH_MAX_DEPTH {
        if dentry == mnt_root && cross_mounts {
            // At the root of this mount: continue from where it is mounted.
            let Ok(parent) = read::<u64>(mount, off!(mount_mnt_parent)) else { break };
            if parent == mount {
                finished = true;
                break;
            }
            let Ok(mountpoint) = read::<u64>(mount, off!(mount_mnt_mountpoint)) else { break };
            dentry = mountpoint;
            mount = parent;
            mnt_root = read(parent + u64::from(off!(mount_mnt)), off!(vfsmount_mnt_root))
                .unwrap_or(0);
            continue;
        }
        let Ok(parent) = read::<u64>(dentry, off!(dentry_d_parent)) else { break };
        if parent == dentry {
            finished = true;
            break;
        }
        let Ok(name) = read::<u64>(dentry, off!(dentry_d_name_name)) else { break };
        let at = pos & (PATH_CAP as u32 - 1);
        // SAFETY: `at < PATH_CAP` and the helper writes at most NAME_CAP bytes, inside
        // the caller's buffer; the source is checked by the helper.
        let copied = unsafe {
            bpf_probe_read_kernel_str(out.add(at as usize).cast(), NAME_CAP as u32, name as *const _)
        };
        if copied <= 0 {
            break;
        }
        let next = pos + copied as u32;
        if next > PATH_CAP as u32 {
            break;
        }
        pos = next;
        header.depth += 1;
        dentry = parent;
    }
    header.len = pos as u16;
    if !finished {
        header.flags |= path_flags::TRUNCATED;
    }
    header
}
