//! Names that make a small file a candidate: a watched extension (`.gguf`), or the
//! blob name of a model store, which carries no extension at all (Ollama's
//! `sha256-<64 hex>`, Hugging Face's `blobs/<64 hex>`).

use sensor_common::reason;

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;

use crate::{
    kernel::{dentry_name, file_dentry, read},
    maps::{EXTENSIONS, NAME_SCRATCH, settings},
    offsets::off,
};

const OLLAMA_BLOB_LEN: u32 = 71;
const HEX_DIGEST_LEN: u32 = 64;

/// [`reason`] bits the file's name earns, 0 if none.
#[inline(always)]
pub(crate) fn name_reason(file: u64) -> u32 {
    let Ok(dentry) = file_dentry(file) else { return 0 };
    let Ok((len, name)) = dentry_name(dentry) else { return 0 };
    if is_store_blob(dentry, len, name) {
        return reason::MODEL_STORE;
    }
    if has_watched_extension(len, name) { reason::EXTENSION } else { 0 }
}

#[inline(always)]
fn is_store_blob(dentry: u64, len: u32, name: u64) -> bool {
    if len == OLLAMA_BLOB_LEN {
        return read::<[u8; 8]>(name, 0).is_ok_and(|head| head[..7] == *b"sha256-");
    }
    if len != HEX_DIGEST_LEN {
        return false;
    }
    // NB: a 64-character name alone is too common; a parent named `blobs` is the store.
    let Ok(parent) = read::<u64>(dentry, off!(dentry_d_parent)) else { return false };
    let Ok((parent_len, parent_name)) = dentry_name(parent) else { return false };
    parent_len == 5 && read::<[u8; 8]>(parent_name, 0).is_ok_and(|head| head[..5] == *b"blobs")
}

/// Whether the name ends in `.<ext>` for a watched extension.
///
/// NB: written for the verifier of every supported kernel. The last 16 bytes of the
/// name are copied right-aligned (`name + len - 16`: the bytes before a short name are
/// the rest of its dentry or of its external-name header, always readable) into map
/// memory, and the key is built there too: the verifier does not track map contents,
/// so loop iterations look alike and are pruned, and every index is masked into the
/// 16-byte buffers. Only lengths some watched extension has are tried, and a map
/// lookup happens only where a dot stands at the right place.
#[inline(always)]
fn has_watched_extension(len: u32, name: u64) -> bool {
    let lengths = settings().extension_lengths;
    let Some(buf) = NAME_SCRATCH.get_ptr_mut(0) else { return false };
    // SAFETY: `buf` is this CPU's NAME_SCRATCH value; the helper checks the source.
    let copied = unsafe {
        bpf_probe_read_kernel((*buf).tail.as_mut_ptr().cast(), 16, (name + u64::from(len) - 16) as *const _)
    };
    if lengths == 0 || len < 2 || copied != 0 {
        return false;
    }
    for ext_len in 1..16u32 {
        if lengths & (1 << ext_len) == 0 || len <= ext_len {
            continue;
        }
        // SAFETY: as above; indexes are masked into the 16-byte arrays.
        unsafe {
            if (*buf).tail[((15 - ext_len) & 15) as usize] != b'.' {
                continue;
            }
            for i in 0..16u32 {
                let byte = if i < ext_len { (*buf).tail[((16 - ext_len + i) & 15) as usize] } else { 0 };
                (*buf).key[(i & 15) as usize] = byte.to_ascii_lowercase();
            }
            if EXTENSIONS.get(&(*buf).key).is_some() {
                return true;
            }
        }
    }
    false
}
