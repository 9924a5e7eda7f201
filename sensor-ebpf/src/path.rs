//! Builds a file's path from the kernel's own dentries and mounts (like `d_path`), so
//! it is the object the kernel opened, not what user memory claimed.
//!
//! Components are written leaf-first as NUL-terminated strings; userspace reverses them.
//! Checked on 6.1, 6.12 and 6.18: `d_parent`, `d_name` and `struct mount` have kept their
//! meaning across these versions; only their offsets move (taken from BTF).
//!
//! NB: the walk runs under `bpf_loop` (5.17+; the verifier inlines the loop), whose
//! callback is verified as one step with no loop counter to track. An open-coded loop
//! gave the verifier one state per step, each multiplied by the paths through its body,
//! and its cost swung by 2x with the compiler's register allocation. The write position
//! lives in the `WALK` map: a value loaded from a map is unknown, so steps look alike,
//! and the `& (PATH_CAP - 1)` mask is what proves every write in bounds.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_kernel_str};
use sensor_common::{NAME_CAP, PATH_CAP, PATH_MAX_DEPTH, PathHeader, offsets::feature, path_flags};

use crate::{
    maps::{WALK, WalkState},
    offsets::{has, off},
    reads::Reads,
};

/// Where the walk stands between two steps (on the caller's stack, which the step
/// reads and writes through `bpf_loop`'s context pointer). Pointers keep their BTF type
/// there for the typed programs.
#[repr(C)]
struct Walk {
    out: *mut u8,
    state: *mut WalkState,
    dentry: u64,
    /// The `struct mount` of `dentry`'s mount, and that mount's root dentry.
    mount: u64,
    mnt_root: u64,
    cross_mounts: u64,
    /// Set when a step reached the root.
    finished: u64,
}

/// What a step tells `bpf_loop`.
const CONTINUE: i64 = 0;
const STOP: i64 = 1;

/// Walks from `dentry` (in mount `vfsmnt`) up to the root of the mount namespace.
///
/// `out` must have room for `PATH_CAP + NAME_CAP` bytes: every write starts below
/// `PATH_CAP` and copies at most `NAME_CAP`.
#[inline(always)]
pub(crate) fn walk<R: Reads>(out: *mut u8, dentry: u64, vfsmnt: u64) -> PathHeader {
    let mut header = PathHeader::default();
    let Some(state) = WALK.get_ptr_mut(0) else {
        header.flags = path_flags::TRUNCATED;
        return header;
    };
    if !has(feature::DENTRY_WALK) || dentry == 0 {
        header.flags = path_flags::TRUNCATED;
        return header;
    }
    let cross_mounts = has(feature::MOUNT_WALK);
    if !cross_mounts {
        header.flags |= path_flags::NO_MOUNT_WALK;
    }
    // An unlinked file's dentry is unhashed (`d_unhashed`): its path no longer exists.
    if has(feature::UNLINKED) && R::field::<u64>(dentry, off!(dentry_d_hash_pprev)).is_ok_and(|p| p == 0) {
        header.flags |= path_flags::DELETED;
    }
    // SAFETY: `state` is this CPU's WALK value.
    unsafe { *state = WalkState { pos: 0, depth: 0 } };
    let mut walk = Walk {
        out,
        state,
        dentry,
        // `container_of(vfsmnt, struct mount, mnt)`: typed again, as a mount.
        mount: R::retype(vfsmnt.wrapping_sub(u64::from(off!(mount_mnt))), off!(btf_struct_mount)),
        mnt_root: R::field(vfsmnt, off!(vfsmount_mnt_root)).unwrap_or(0),
        cross_mounts: u64::from(cross_mounts),
        finished: 0,
    };
    // SAFETY: `step::<R>` has the callback signature bpf_loop expects and only touches
    // `walk`, which outlives the call.
    unsafe {
        bpf_loop(PATH_MAX_DEPTH, step::<R> as *mut c_void, (&raw mut walk).cast(), 0);
    }
    // SAFETY: as above.
    let (pos, depth) = unsafe { ((*state).pos, (*state).depth) };
    header.len = (pos & (PATH_CAP as u64 - 1)) as u16;
    header.depth = depth as u16;
    if walk.finished == 0 {
        header.flags |= path_flags::TRUNCATED;
    }
    header
}

/// One step of the walk: crosses a mount root, or writes one component and moves to
/// the parent. Stops at the root (finished) or on a failed read or a full buffer
/// (truncated).
#[inline(never)]
extern "C" fn step<R: Reads>(_index: u64, walk: *mut c_void) -> i64 {
    let walk = walk.cast::<Walk>();
    // SAFETY: `walk` is the `Walk` on the caller's stack (see `walk`).
    unsafe {
        let dentry = (*walk).dentry;
        if dentry == (*walk).mnt_root && (*walk).cross_mounts != 0 {
            // At the root of this mount: continue from where it is mounted.
            let mount = (*walk).mount;
            let Ok(parent) = R::field::<u64>(mount, off!(mount_mnt_parent)) else { return STOP };
            if parent == mount {
                (*walk).finished = 1;
                return STOP;
            }
            let Ok(mountpoint) = R::field::<u64>(mount, off!(mount_mnt_mountpoint)) else { return STOP };
            let Ok(root) = R::field::<u64>(parent, off!(mount_mnt) + off!(vfsmount_mnt_root)) else {
                return STOP;
            };
            (*walk).dentry = mountpoint;
            (*walk).mount = parent;
            (*walk).mnt_root = root;
            return CONTINUE;
        }
        let Ok(parent) = R::field::<u64>(dentry, off!(dentry_d_parent)) else { return STOP };
        if parent == dentry {
            (*walk).finished = 1;
            return STOP;
        }
        let Ok(name) = R::field::<u64>(dentry, off!(dentry_d_name_name)) else { return STOP };
        let state = (*walk).state;
        let pos = core::ptr::read_volatile(&raw const (*state).pos);
        let at = pos & (PATH_CAP as u64 - 1);
        // `at < PATH_CAP` and the helper writes at most NAME_CAP bytes, inside the
        // caller's buffer; the source is checked by the helper.
        let copied =
            bpf_probe_read_kernel_str((*walk).out.add(at as usize).cast(), NAME_CAP as u32, name as *const _);
        if copied <= 0 {
            return STOP;
        }
        let next = pos + copied as u64;
        // Keep the last byte free so that `len` always fits the mask above.
        if next >= PATH_CAP as u64 {
            return STOP;
        }
        core::ptr::write_volatile(&raw mut (*state).pos, next);
        (*state).depth += 1;
        (*walk).dentry = parent;
        CONTINUE
    }
}
