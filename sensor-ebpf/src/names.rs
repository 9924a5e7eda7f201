//! Names that make a small file a candidate: a watched extension (`.gguf`), or the
//! blob name of a model store, which carries no extension at all (Ollama's
//! `sha256-<64 hex>`, Hugging Face's `blobs/<64 hex>`).

use sensor_common::reason;

use crate::{
    kernel::{KResult, ReadError, file_path, read},
    maps::EXTENSIONS,
    offsets::off,
};

const OLLAMA_BLOB_LEN: u32 = 71;
const HEX_DIGEST_LEN: u32 = 64;

/// [`reason`] bits the file's name earns, 0 if none.
#[inline(always)]
pub(crate) fn name_reason(file: u64) -> u32 {
    let Ok((_, dentry)) = file_path(file) else { return 0 };
    let (Ok(len), Ok(name)) =
        (read::<u32>(dentry, off!(dentry_d_name_len)), read::<u64>(dentry, off!(dentry_d_name_name)))
    else {
        return 0;
    };
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
    let parent_len = read::<u32>(parent, off!(dentry_d_name_len)).unwrap_or(0);
    let parent_name = read::<u64>(parent, off!(dentry_d_name_name)).unwrap_or(0);
    parent_len == 5 && read::<[u8; 8]>(parent_name, 0).is_ok_and(|head| head[..5] == *b"blobs")
}

/// The lower-cased extension of a name, from its last 16 bytes.
#[inline(always)]
fn extension(len: u32, name: u64) -> KResult<[u8; 16]> {
    // NB: names shorter than 16 bytes live in the dentry's inline buffer (at least 32
    // bytes), so reading 16 bytes from their start stays inside it.
    let (start, used) = if len >= 16 { (name + u64::from(len) - 16, 16) } else { (name, len) };
    let tail: [u8; 16] = read(start, 0)?;
    let mut i = used;
    let mut dot = None;
    while i > 0 {
        i -= 1;
        if tail[(i & 15) as usize] == b'.' {
            dot = Some(i);
            break;
        }
    }
    let dot = dot.ok_or(ReadError)?;
    let mut key = [0u8; 16];
    let mut j = 0;
    while j < 15 {
        let src = dot + 1 + j;
        if src >= used {
            break;
        }
        key[(j & 15) as usize] = tail[(src & 15) as usize].to_ascii_lowercase();
        j += 1;
    }
    Ok(key)
}
