//! The kernel functions (kfuncs) the typed programs call, resolved in the running
//! kernel's BTF and patched into the object before it is loaded.
//!
//! The eBPF object calls a helper number no kernel has in place of each kfunc
//! (`sensor_common::offsets::KFUNC_RDONLY_CAST`): rustc and this toolchain emit no kfunc
//! relocation that an older kernel could ignore, and a strong one would fail the whole
//! object there. Where the kernel has the function, every such call becomes a kfunc call
//! (`BPF_PSEUDO_KFUNC_CALL`, immediate = the function's vmlinux BTF id); elsewhere the
//! verifier refuses the typed programs and the helper variants load instead.

use sensor_common::offsets::KFUNC_RDONLY_CAST;
use thiserror::Error;

use super::btf::Btf;

/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;
/// `BPF_PSEUDO_KFUNC_CALL` in the source-register nibble.
const KFUNC_REGS: u8 = 2 << 4;
const INSN_LEN: usize = 8;
const SHF_EXECINSTR: u64 = 4;

/// Kfunc ids in this kernel's BTF.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kfuncs {
    /// `bpf_rdonly_cast` (6.2+).
    pub rdonly_cast: Option<u32>,
}

impl Kfuncs {
    #[must_use]
    pub fn resolve(btf: &Btf) -> Self {
        Self { rdonly_cast: btf.func_id("bpf_rdonly_cast") }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("the embedded eBPF object is not a 64-bit little-endian ELF file: {0}")]
    Elf(&'static str),
}

/// An object's bytes, 8-byte aligned as the ELF parser requires.
pub struct AlignedObject {
    words: Vec<u64>,
    len: usize,
}

impl AlignedObject {
    fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(INSN_LEN)];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(INSN_LEN)) {
            let mut raw = [0u8; INSN_LEN];
            raw[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(raw);
        }
        Self { words, len: bytes.len() }
    }

    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes; u8 has no alignment.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// A copy of `object` with each placeholder call rewritten into the kfunc call the
/// kernel has, and how many were rewritten.
///
/// # Errors
/// The object's section headers lie outside it.
pub fn patch(object: &[u8], kfuncs: Kfuncs) -> Result<(AlignedObject, usize), PatchError> {
    let mut out = AlignedObject::new(object);
    let Some(btf_id) = kfuncs.rdonly_cast else { return Ok((out, 0)) };
    let placeholder = placeholder_call();
    let mut patched = 0;
    for range in code_sections(object)? {
        let code = &mut out.bytes_mut()[range];
        for insn in code.as_chunks_mut::<INSN_LEN>().0 {
            if *insn == placeholder {
                insn[1] = KFUNC_REGS;
                insn[4..8].copy_from_slice(&btf_id.to_le_bytes());
                patched += 1;
            }
        }
    }
    Ok((out, patched))
}

/// `call KFUNC_RDONLY_CAST`: code, registers 0, offset 0, immediate.
fn placeholder_call() -> [u8; INSN_LEN] {
    let mut insn = [CALL, 0, 0, 0, 0, 0, 0, 0];
    insn[4..8].copy_from_slice(&KFUNC_RDONLY_CAST.to_le_bytes());
    insn
}

/// Byte ranges of the executable sections of a 64-bit little-endian ELF file.
fn code_sections(elf: &[u8]) -> Result<Vec<std::ops::Range<usize>>, PatchError> {
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |at: usize| elf.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return Err(PatchError::Elf("bad magic"));
    }
    let (Some(shoff), Some(shentsize), Some(shnum)) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c)) else {
        return Err(PatchError::Elf("truncated header"));
    };
    let shoff = usize::try_from(shoff).map_err(|_| PatchError::Elf("section table offset"))?;
    let mut ranges = Vec::new();
    for index in 0..usize::from(shnum) {
        let at = index
            .checked_mul(usize::from(shentsize))
            .and_then(|rel| rel.checked_add(shoff))
            .ok_or(PatchError::Elf("section table overflows"))?;
        let (Some(flags), Some(offset), Some(size)) = (u64_at(at + 8), u64_at(at + 24), u64_at(at + 32))
        else {
            return Err(PatchError::Elf("section header outside the file"));
        };
        if flags & SHF_EXECINSTR == 0 {
            continue;
        }
        let start = usize::try_from(offset).map_err(|_| PatchError::Elf("section offset"))?;
        let end = usize::try_from(size)
            .ok()
            .and_then(|size| start.checked_add(size))
            .filter(|end| *end <= elf.len())
            .ok_or(PatchError::Elf("section outside the file"))?;
        ranges.push(start..end);
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: header, one code section holding `code`, one data section holding
    /// a copy of the same bytes (which must stay untouched).
    fn elf(code: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let code_at = out.len();
        out.extend_from_slice(code);
        let data_at = out.len();
        out.extend_from_slice(code);
        let shoff = out.len();
        out[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
        for (flags, at) in [(SHF_EXECINSTR | 2, code_at), (2, data_at)] {
            let mut header = [0u8; 64];
            header[8..16].copy_from_slice(&flags.to_le_bytes());
            header[24..32].copy_from_slice(&(at as u64).to_le_bytes());
            header[32..40].copy_from_slice(&(code.len() as u64).to_le_bytes());
            out.extend_from_slice(&header);
        }
        out
    }

    fn code() -> Vec<u8> {
        let mut code = vec![0xb7, 0x10, 0, 0, 1, 0, 0, 0]; // r0 = 1
        code.extend_from_slice(&placeholder_call());
        code.extend_from_slice(&[0x85, 0, 0, 0, 113, 0, 0, 0]); // call bpf_probe_read_kernel
        code.extend_from_slice(&placeholder_call());
        code
    }

    #[test]
    fn placeholders_in_code_become_kfunc_calls() {
        let object = elf(&code());
        let (patched, count) = patch(&object, Kfuncs { rdonly_cast: Some(0x1234) }).expect("patch");
        assert_eq!(count, 2);
        let bytes = patched.bytes();
        assert_eq!(bytes.len(), object.len());
        assert_eq!(&bytes[72..80], &[0x85, 0x20, 0, 0, 0x34, 0x12, 0, 0]);
        assert_eq!(&bytes[80..88], &object[80..88], "a real helper call is left alone");
        assert_eq!(&bytes[96..128], &object[96..128], "data sections are left alone");
        assert_eq!(bytes.as_ptr().align_offset(8), 0);
    }

    #[test]
    fn without_the_kfunc_nothing_changes() {
        let object = elf(&code());
        let (patched, count) = patch(&object, Kfuncs::default()).expect("patch");
        assert_eq!((patched.bytes(), count), (&object[..], 0));
    }

    #[test]
    fn truncated_or_hostile_headers_are_errors() {
        let object = elf(&code());
        let kfuncs = Kfuncs { rdonly_cast: Some(1) };
        for len in 0..object.len() {
            let _ = patch(&object[..len], kfuncs);
        }
        let mut bad = object.clone();
        bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(patch(&bad, kfuncs).is_err());
        assert!(patch(b"not an elf", kfuncs).is_err());
    }

    #[test]
    fn the_real_object_has_typed_programs_to_patch() {
        let (_, count) = patch(super::super::loader::OBJECT, Kfuncs { rdonly_cast: Some(1) })
            .expect("the embedded object");
        assert!(count > 0, "no placeholder call found: the typed programs would never load");
    }
}
