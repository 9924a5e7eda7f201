//! safetensors headers: deep nesting, many keys, overflowing shapes, huge headers.

use super::*;

pub(super) fn st_file(path: &Path, header: &[u8], data_len: u64) -> io::Result<()> {
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(header);
    sparse(path, &head, head.len() as u64 + data_len)
}

/// A million nested lists where a shape is expected.
pub(super) fn st_deep_nesting(path: &Path) -> io::Result<()> {
    let mut h = br#"{"a":{"dtype":"F32","shape":"#.to_vec();
    h.extend_from_slice(&b"[".repeat(MIB));
    h.extend_from_slice(&b"]".repeat(MIB));
    h.extend_from_slice(br#","data_offsets":[0,4]}}"#);
    st_file(path, &h, 4)
}

/// 900,000 one-byte tensors (a 62 MB header; the cap is 262,144 tensors).
pub(super) fn st_many_keys(path: &Path) -> io::Result<()> {
    let n = 900_000u64;
    let mut h = Vec::with_capacity(62 * MIB);
    h.push(b'{');
    for i in 0..n {
        if i > 0 {
            h.push(b',');
        }
        write!(h, r#""t{i:07}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{}]}}"#, i + 1)?;
    }
    h.push(b'}');
    st_file(path, &h, n)
}

/// One shape of four million dimensions whose product overflows.
pub(super) fn st_huge_shape(path: &Path) -> io::Result<()> {
    let mut h = br#"{"a":{"dtype":"F32","shape":["#.to_vec();
    h.extend_from_slice(&b"2,".repeat(4 * MIB));
    h.extend_from_slice(br#"2],"data_offsets":[0,4]}}"#);
    st_file(path, &h, 4)
}

/// A header of 100,000,000 bytes, the reference loader's cap.
pub(super) fn st_100mb_header(path: &Path) -> io::Result<()> {
    let len = 100_000_000usize;
    let mut h = br#"{"__metadata__":{"a":""#.to_vec();
    h.resize(len - 3, b'a');
    h.extend_from_slice(br#""}}"#);
    st_file(path, &h, 0)
}

/// A 60 MB key.
pub(super) fn st_long_string(path: &Path) -> io::Result<()> {
    let mut h = b"{\"".to_vec();
    h.resize(60 * MIB, b'k');
    h.extend_from_slice(br#"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#);
    st_file(path, &h, 1)
}
