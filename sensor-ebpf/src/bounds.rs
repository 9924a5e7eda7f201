//! Bounds the verifier can see.
//!
//! NB: a plain `if len > MAX` is not enough: LLVM may test one register and hand a copy
//! computed earlier (say `len + header`) to the helper, and the verifier then rejects
//! the unbounded copy. An `asm!` block is opaque to LLVM, so the value leaving it is
//! the very register that was tested.

/// `value` when it is at most `MAX`, else 0.
#[inline(always)]
pub(crate) fn at_most<const MAX: usize>(value: usize) -> usize {
    #[cfg(target_arch = "bpf")]
    {
        let mut value = value as u64;
        // SAFETY: compares and possibly zeroes one register; no memory access.
        unsafe {
            core::arch::asm!(
                "if {v} <= {max} goto +1",
                "{v} = 0",
                v = inout(reg) value,
                max = const MAX,
            );
        }
        value as usize
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        if value <= MAX { value } else { 0 }
    }
}
