//! Format identification from a file's first bytes.

use serde::Serialize;

/// Bytes a caller should read from the start of a file for [`sniff`].
pub const SNIFF_LEN: usize = 64;

/// What a file's content says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Gguf,
    Safetensors,
    /// A raw pickle stream (protocol 2 or later starts with PROTO).
    Pickle,
    /// A zip archive (PyTorch >= 1.6 checkpoints, `.keras`, `.npz`): the entries decide.
    Zip,
    /// Not a model format this sensor knows.
    Unknown,
}

impl Format {
    #[must_use]
    pub fn is_model(self) -> bool {
        !matches!(self, Self::Unknown)
    }
}

/// Identifies a format from the first bytes of a file (at least [`SNIFF_LEN`] when the
/// file has them).
#[must_use]
pub fn sniff(prefix: &[u8]) -> Format {
    if prefix.starts_with(b"GGUF") {
        return Format::Gguf;
    }
    if prefix.starts_with(b"PK\x03\x04") {
        return Format::Zip;
    }
    if prefix.len() >= 2 && prefix[0] == 0x80 && (2..=5).contains(&prefix[1]) {
        return Format::Pickle;
    }
    if looks_like_safetensors(prefix) {
        return Format::Safetensors;
    }
    Format::Unknown
}

/// safetensors: a little-endian u64 header length, then a JSON object.
fn looks_like_safetensors(prefix: &[u8]) -> bool {
    let Some(len) = prefix.get(..8) else { return false };
    let mut raw = [0u8; 8];
    raw.copy_from_slice(len);
    let header_len = u64::from_le_bytes(raw);
    // The reference implementation caps the header at 100 MB.
    (2..=100_000_000).contains(&header_len) && prefix.get(8) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_magic_numbers() {
        assert_eq!(sniff(b"GGUF\x03\0\0\0"), Format::Gguf);
        assert_eq!(sniff(b"PK\x03\x04rest"), Format::Zip);
        assert_eq!(sniff(b"\x80\x04\x95"), Format::Pickle);
        assert_eq!(sniff(b"\x10\0\0\0\0\0\0\0{\"a\":1}"), Format::Safetensors);
        assert_eq!(sniff(&[0u8; 64]), Format::Unknown);
        assert_eq!(sniff(b""), Format::Unknown);
    }
}
