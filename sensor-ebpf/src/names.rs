//! Names that make a small file a candidate: a watched extension (`.gguf`), or the
//! blob name of a model store, which carries no extension at all (Ollama's
//! `sha256-<64 hex>`, Hugging Face's `blobs/<64 hex>`).

use sensor_common::reason;

use crate::{
    kernel::{KResult, ReadError, dentry_name, file_dentry, read},
    maps::EXTENSIONS,
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
    let watched = extension(len, name).is_ok_and(|key| {
        // SAFETY: the value is only tested for presence.
        unsafe { EXTENSIONS.get(&key).is_some() }
    });
    if watched { reason::EXTENSION } else { 0 }
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

/// The lower-cased extension of a name, from its last 16 bytes.
#[inline(always)]
fn extension(len: u32, name: u64) -> KResult<[u8; 16]> {
    // NB: names shorter than 16 bytes live in the dentry's inline buffer (at least 32
    // bytes), so reading 16 bytes from their start stays inside it.
    let (start, used) = if len >= 16 { (name + u64::from(len) - 16, 16) } else { (name, len as usize) };
    let tail: [u8; 16] = read(start, 0)?;
    // Positions are constants once unrolled: no variable stack offset for the verifier.
    let mut dot = None;
    for position in (0..16).rev() {
        if position < used && tail[position] == b'.' {
            dot = Some(position);
            break;
        }
    }
    let dot = dot.ok_or(ReadError)?;
    let mut key = [0u8; 16];
    for (position, byte) in tail.iter().enumerate() {
        if position > dot && position < used {
            key[(position - dot - 1) & 15] = byte.to_ascii_lowercase();
        }
    }
    Ok(key)
}
