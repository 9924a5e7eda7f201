//! Names that make a small file a candidate: a watched extension (`.gguf`), or the
//! blob name of a model store, which carries no extension at all (Ollama's
//! `sha256-<64 hex>`, Hugging Face's `blobs/<64 hex>`).

use sensor_common::{offsets::feature, reason};

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;

use crate::{
    kernel::{dentry_name, file_dentry},
    maps::{EXTENSIONS, NAME_SCRATCH, NAME_TAIL, NameScratch, settings},
    offsets::{has, off},
    reads::{Reads, probe},
};

const OLLAMA_BLOB_LEN: u32 = 71;
const HEX_DIGEST_LEN: u32 = 64;

/// Bytes of a dentry's inline name the typed programs load (4 words). Every supported
/// kernel keeps at least 32 (`DNAME_INLINE_LEN`: 32 before 6.14, 40 since); a name
/// stored inline but longer than this takes the helper read.
const INLINE_COPY: u32 = 32;

/// [`reason`] bits the file's name earns, 0 if none.
#[inline(always)]
pub(crate) fn name_reason<R: Reads>(file: u64) -> u32 {
    let Ok(dentry) = file_dentry::<R>(file) else { return 0 };
    let Ok((len, name)) = dentry_name::<R>(dentry) else { return 0 };
    if is_store_blob::<R>(dentry, len, name) {
        return reason::MODEL_STORE;
    }
    if has_watched_extension::<R>(dentry, len, name) { reason::EXTENSION } else { 0 }
}

#[inline(always)]
fn is_store_blob<R: Reads>(dentry: u64, len: u32, name: u64) -> bool {
    if len == OLLAMA_BLOB_LEN {
        return probe::<[u8; 8]>(name, 0).is_ok_and(|head| head[..7] == *b"sha256-");
    }
    if len != HEX_DIGEST_LEN {
        return false;
    }
    // NB: a 64-character name alone is too common; a parent named `blobs` is the store.
    let Ok(parent) = R::field::<u64>(dentry, off!(dentry_d_parent)) else { return false };
    let Ok((parent_len, parent_name)) = dentry_name::<R>(parent) else { return false };
    parent_len == 5 && probe::<[u8; 8]>(parent_name, 0).is_ok_and(|head| head[..5] == *b"blobs")
}

/// Whether the name ends in `.<ext>` for a watched extension.
///
/// NB: this runs on every open of a small file, so the common case (a name whose
/// extension nobody watches) must cost a few loads, not a map lookup: the last dot is
/// found within the name's last 16 bytes, then the extension's length and last byte are
/// tested against masks in the settings, and only a name that passes both is looked up.
/// Written for the verifier of every supported kernel: the bytes are examined in map
/// memory, every index is masked into the buffer, and the end of the name and the
/// extension's length go through map memory, so that the verifier sees one unknown value
/// however they were found, not one state per path.
#[inline(always)]
fn has_watched_extension<R: Reads>(dentry: u64, len: u32, name: u64) -> bool {
    let settings = settings();
    if settings.extension_lengths == 0 || len < 2 {
        return false;
    }
    let Some(buf) = NAME_SCRATCH.get_ptr_mut(0) else { return false };
    let Some(end) = copy_tail::<R>(dentry, len, name) else { return false };
    // SAFETY: this CPU's NAME_SCRATCH value; every index below is masked into `tail`.
    unsafe {
        core::ptr::write_volatile(&raw mut (*buf).end, end);
        let Some(ext_len) = extension_length(buf, len) else { return false };
        core::ptr::write_volatile(&raw mut (*buf).ext_len, ext_len);
        // Read back: the compiler cannot drop the mask below on what it inferred of
        // the value, and the verifier sees one unknown length.
        let ext_len = core::ptr::read_volatile(&raw const (*buf).ext_len) & 15;
        if settings.extension_lengths & (1 << ext_len) == 0 {
            return false;
        }
        let last = lower((*buf).tail[(end.wrapping_sub(1) & MASK) as usize]);
        if settings.extension_last_bytes[ext_len as usize] & (1 << (last & 63)) == 0 {
            return false;
        }
        build_key(buf);
        EXTENSIONS.get(&(*buf).key).is_some()
    }
}

const MASK: u32 = NAME_TAIL as u32 - 1;

/// Bytes after the last dot within the name's last 16 bytes; `None` without a dot or
/// with nothing after it.
///
/// # Safety
/// `buf` is this CPU's NAME_SCRATCH value, its `end` set.
#[inline(always)]
unsafe fn extension_length(buf: *mut NameScratch, len: u32) -> Option<u32> {
    // SAFETY: per the contract; indexes are masked into `tail`.
    unsafe {
        let end = core::ptr::read_volatile(&raw const (*buf).end);
        // Sixteen explicit steps rather than a loop: the compiler turned the loop's
        // bound into a test against `len`, and the verifier then walked it 8,000 times.
        macro_rules! steps {
            ($($back:literal)*) => { $(
                if $back >= len {
                    return None;
                }
                if (*buf).tail[(end.wrapping_sub(1 + $back) & MASK) as usize] == b'.' {
                    return ($back > 0).then_some($back);
                }
            )* };
        }
        steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        None
    }
}

/// Builds the key of the extension that ends the name (lower case, zero-padded).
///
/// # Safety
/// `buf` is this CPU's NAME_SCRATCH value, its `end` and `ext_len` set.
#[inline(always)]
unsafe fn build_key(buf: *mut NameScratch) {
    // SAFETY: per the contract; indexes are masked into the arrays.
    unsafe {
        let end = core::ptr::read_volatile(&raw const (*buf).end);
        let ext_len = core::ptr::read_volatile(&raw const (*buf).ext_len);
        let start = end.wrapping_sub(ext_len);
        for i in 0..16u32 {
            let byte = lower((*buf).tail[(start.wrapping_add(i) & MASK) as usize]);
            // All ones while `i < ext_len`, without a branch.
            let keep = ((i as i32).wrapping_sub(ext_len as i32) >> 31) as u8;
            (*buf).key[i as usize] = byte & keep;
        }
    }
}

/// ASCII lower case without a branch: 0x20 is added where 'A' <= byte <= 'Z' (the only
/// bytes for which both differences are negative).
#[inline(always)]
fn lower(byte: u8) -> u8 {
    let b = i32::from(byte);
    let upper = ((0x40 - b) & (b - 0x5b)) >> 31;
    (b | (upper & 0x20)) as u8
}

/// Puts the name's last bytes into `NAME_SCRATCH.tail`; returns the index just past
/// the name's last byte there. At least the 15 bytes before it are the name's own when
/// the name is that long; what lies before a shorter name is never examined.
///
/// A short name in the dentry's inline array is loaded directly by the typed programs
/// (four words, no helper); others are read with one helper call: the 16 bytes that end
/// the name (for a short name, the bytes before it are the rest of its dentry or of its
/// external-name header, always readable).
#[inline(always)]
fn copy_tail<R: Reads>(dentry: u64, len: u32, name: u64) -> Option<u32> {
    let buf = NAME_SCRATCH.get_ptr_mut(0)?;
    if R::INLINE_NAMES && has(feature::INLINE_NAMES) && len < INLINE_COPY {
        let inline = off!(dentry_d_iname);
        // Compared through an opaque copy: knowing `name == dentry + inline`, LLVM would
        // load through `name` (an untyped scalar to the verifier) instead of through
        // the typed `dentry`, and the verifier refuses a load through a scalar (6.12's
        // fexit programs were refused so). The array is read only where the dentry
        // itself says its name is.
        // SAFETY: a read of a local.
        let inline_at = unsafe { core::ptr::read_volatile(&(dentry + u64::from(inline))) };
        if name == inline_at {
            for word in 0..(INLINE_COPY / 8) {
                let value: u64 = R::field(dentry, inline + word * 8).ok()?;
                // SAFETY: this CPU's NAME_SCRATCH value; words 2..6 of its 64-byte tail.
                unsafe { (*buf).tail.as_mut_ptr().cast::<u64>().add(2 + word as usize).write(value) };
            }
            return Some(16 + len);
        }
    }
    // SAFETY: `buf` is this CPU's NAME_SCRATCH value; the helper checks the source.
    let copied = unsafe {
        bpf_probe_read_kernel((*buf).tail.as_mut_ptr().cast(), 16, (name + u64::from(len) - 16) as *const _)
    };
    (copied == 0).then_some(16)
}
