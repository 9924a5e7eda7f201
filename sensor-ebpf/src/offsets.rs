//! The `OFFSETS` global: kernel struct and tracepoint field offsets, written by
//! userspace from BTF and tracefs before load (see `sensor_common::offsets`).

use sensor_common::offsets::KernelOffsets;

#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = {
    // SAFETY: all-integer struct; zero means "not resolved" and no feature bit is set.
    unsafe { core::mem::zeroed() }
};

/// Reads one field of `OFFSETS`. Volatile, so that the compiler does not fold the
/// compile-time zeros: the real values are patched into the object at load time.
macro_rules! off {
    ($field:ident) => {
        $crate::offsets::volatile(&raw const $crate::offsets::OFFSETS.$field)
    };
}
pub(crate) use off;

#[inline(always)]
pub(crate) fn volatile(field: *const u32) -> u32 {
    // SAFETY: `field` always points into the `OFFSETS` static (see `off!`).
    unsafe { core::ptr::read_volatile(field) }
}

#[inline(always)]
pub(crate) fn has(feature: u32) -> bool {
    off!(features) & feature == feature
}
