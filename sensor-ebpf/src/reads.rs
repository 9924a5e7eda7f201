//! Two ways to read kernel memory, chosen per program at start-up (userspace loads the
//! typed variant first and falls back to the helper variant when the verifier refuses it).
//!
//! - [`Typed`]: the task comes from `bpf_get_current_task_btf()`, so the verifier knows
//!   its BTF type, and a field at `pointer + offset` (the offset a verifier constant, read
//!   from the frozen `OFFSETS`) is a direct, fault-safe load (`BPF_PROBE_MEM`): no helper
//!   call. A pointer field loads as a typed pointer again. Where the chain breaks (a
//!   pointer read by a helper, `container_of`), `bpf_rdonly_cast` (6.2+) types it again.
//! - [`Helper`]: every read is a `bpf_probe_read_kernel` call (~40-50 ns each); works on
//!   every kernel the sensor supports.
//!
//! NB: with [`Typed`], a load through a bad pointer yields zero instead of an error, and
//! only whole pointer members may be loaded (the verifier checks each load's offset and
//! size against the BTF type).

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel, generated::bpf_get_current_task_btf};

use crate::kernel::{KResult, ReadError};

/// How a program reads kernel memory.
pub(crate) trait Reads {
    /// `current`.
    fn task() -> u64;

    /// The `T` at `base + offset`, where `base` points at a kernel struct and `offset`
    /// is a member's (from `OFFSETS`). `T` must be the member's size (or an integer
    /// inside one).
    fn field<T: Copy>(base: u64, offset: u32) -> KResult<T>;

    /// Types `ptr` (read by a helper, or computed) as a pointer to the struct whose
    /// vmlinux BTF id is `btf_id`. Identity for [`Helper`].
    fn retype(ptr: u64, btf_id: u32) -> u64;

    /// `struct qstr`: the name's length and pointer.
    #[inline(always)]
    fn qstr(base: u64, len_offset: u32, name_offset: u32) -> KResult<(u32, u64)> {
        Ok((Self::field(base, len_offset)?, Self::field(base, name_offset)?))
    }

    /// Whether this variant loads a dentry's inline name directly.
    const INLINE_NAMES: bool;
}

/// Direct loads through BTF-typed pointers.
pub(crate) struct Typed;

/// `bpf_probe_read_kernel` for everything.
pub(crate) struct Helper;

impl Reads for Typed {
    const INLINE_NAMES: bool = true;

    #[inline(always)]
    fn task() -> u64 {
        // SAFETY: no arguments; returns the current task as a BTF-typed pointer.
        unsafe { bpf_get_current_task_btf() as u64 }
    }

    /// NB: no test for a null `base`: the fault-safe load of a null (or any bad) pointer
    /// yields zero, which the callers' own checks already treat as "nothing", and every
    /// branch saved here is one the verifier does not explore twice.
    #[inline(always)]
    fn field<T: Copy>(base: u64, offset: u32) -> KResult<T> {
        // SAFETY: the verifier turns this into a fault-safe load after checking `base`'s
        // BTF type and the (constant) offset; a bad address reads as zero.
        Ok(unsafe { core::ptr::read_volatile((base + u64::from(offset)) as *const T) })
    }

    #[inline(always)]
    fn retype(ptr: u64, btf_id: u32) -> u64 {
        // SAFETY: the kfunc only changes how the verifier types the pointer; the call
        // is patched in at load time (see `kfunc`).
        unsafe { kfunc::rdonly_cast(ptr, btf_id) }
    }
}

impl Reads for Helper {
    const INLINE_NAMES: bool = false;

    #[inline(always)]
    fn task() -> u64 {
        // SAFETY: no arguments; returns the current task_struct pointer.
        unsafe { bpf_get_current_task() }
    }

    #[inline(always)]
    fn field<T: Copy>(base: u64, offset: u32) -> KResult<T> {
        probe(base, offset)
    }

    #[inline(always)]
    fn retype(ptr: u64, _btf_id: u32) -> u64 {
        ptr
    }

    /// One read of 12 bytes instead of two: `name` follows `len` directly on 64-bit
    /// kernels (checked by the userspace resolver).
    #[inline(always)]
    fn qstr(base: u64, len_offset: u32, _name_offset: u32) -> KResult<(u32, u64)> {
        let raw: [u8; 12] = probe(base, len_offset)?;
        let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let name = u64::from_le_bytes([raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10], raw[11]]);
        Ok((len, name))
    }
}

/// `bpf_probe_read_kernel` of a `T` at `base + offset`, whatever `base` is (typed or
/// not): for what no typed load can reach (an array indexed by a variable, a name).
#[inline(always)]
pub(crate) fn probe<T>(base: u64, offset: u32) -> KResult<T> {
    if base == 0 {
        return Err(ReadError);
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.map_err(|_| ReadError)
}

/// Kernel functions (kfuncs) the typed programs call.
///
/// NB: neither rustc nor this toolchain emits kfunc relocations that degrade gracefully
/// (an unresolved one fails the whole object on a kernel without the function), so the
/// call is compiled as a call to helper number [`sensor_common::offsets::KFUNC_RDONLY_CAST`],
/// which no kernel has, and userspace rewrites it into a kfunc call before loading the
/// object when the running kernel has `bpf_rdonly_cast`. Without it, the verifier refuses
/// the typed programs ("invalid func unknown#...") and the helper variants load instead.
mod kfunc {
    use sensor_common::offsets::KFUNC_RDONLY_CAST;

    /// `void *bpf_rdonly_cast(const void *obj, u32 btf_id)` (6.2+): the verifier types
    /// the result as a read-only pointer to `btf_id`; the JIT makes it a register move.
    #[inline(always)]
    pub(super) unsafe fn rdonly_cast(obj: u64, btf_id: u32) -> u64 {
        // SAFETY: a call instruction with the placeholder number; see the module doc.
        let call: unsafe extern "C" fn(u64, u32) -> u64 =
            unsafe { core::mem::transmute(KFUNC_RDONLY_CAST as usize) };
        // SAFETY: as above.
        unsafe { call(obj, btf_id) }
    }
}
