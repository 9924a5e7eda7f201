//! Builders for the test corpus: every model file the tests use is made here, byte by
//! byte, so the tests need no torch, numpy or fixtures.
#![allow(dead_code, unreachable_pub, reason = "each test binary uses a different subset of the builders")]

pub mod gguf_writer;
pub mod hostile;
pub mod pickle_writer;
pub mod zip_writer;

/// A minimal `.npy` header (format 1.0) for `descr` and `shape`, padded to 64 bytes.
pub fn npy_header(descr: &str, shape: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&u16::try_from(header.len()).expect("short header").to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// A safetensors file: `header` JSON, padded, then `data`.
pub fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut json = header.as_bytes().to_vec();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out
}
