//! A zip writer for tests, with knobs for the tricks scanners were bypassed with: odd
//! flag bits, wrong CRCs, lying sizes, local names that differ from the directory.

use std::io::Write;

use flate2::Compression;
use flate2::write::DeflateEncoder;

#[derive(Clone)]
pub struct ZipEntry {
    pub name: String,
    pub data: Vec<u8>,
    pub deflate: bool,
    pub flags: u16,
    /// Overrides: CRC, declared uncompressed size, local header name, method.
    pub crc: Option<u32>,
    pub declared_size: Option<u32>,
    pub local_name: Option<String>,
    pub method: Option<u16>,
}

impl ZipEntry {
    pub fn stored(name: &str, data: &[u8]) -> Self {
        Self {
            name: name.to_owned(),
            data: data.to_vec(),
            deflate: false,
            flags: 0,
            crc: None,
            declared_size: None,
            local_name: None,
            method: None,
        }
    }

    pub fn deflated(name: &str, data: &[u8]) -> Self {
        Self { deflate: true, ..Self::stored(name, data) }
    }
}

/// Writes a zip of `entries`, after `prefix` bytes (an executable stub, for llamafiles),
/// with entry data aligned to `align` bytes when stored (as zipalign and torch do).
pub fn zip_with_prefix(prefix: &[u8], entries: &[ZipEntry], align: usize) -> Vec<u8> {
    let mut out = prefix.to_vec();
    let mut central = Vec::new();
    for e in entries {
        let payload = if e.deflate {
            let mut enc = DeflateEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(&e.data).expect("deflate");
            enc.finish().expect("deflate")
        } else {
            e.data.clone()
        };
        let crc = e.crc.unwrap_or_else(|| crc32fast::hash(&e.data));
        let method = e.method.unwrap_or(if e.deflate { 8 } else { 0 });
        let size = e.declared_size.unwrap_or(e.data.len() as u32);
        let local_name = e.local_name.clone().unwrap_or_else(|| e.name.clone());
        // Offsets are relative to the archive start, as zip tools write them.
        let offset = (out.len() - prefix.len()) as u32;
        let fixed = 30 + local_name.len();
        let mut extra_len = 0usize;
        if !e.deflate && align > 1 {
            extra_len = (align - (out.len() + fixed) % align) % align;
            if extra_len > 0 && extra_len < 4 {
                extra_len += align;
            }
        }
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(local_name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(extra_len as u16).to_le_bytes());
        out.extend_from_slice(local_name.as_bytes());
        if extra_len > 0 {
            // A padding extra field (id 0xcafe), as alignment tools write.
            out.extend_from_slice(&0xcafeu16.to_le_bytes());
            out.extend_from_slice(&((extra_len - 4) as u16).to_le_bytes());
            out.resize(out.len() + extra_len - 4, 0);
        }
        out.extend_from_slice(&payload);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&e.flags.to_le_bytes());
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 2 + 2 + 2 + 2 + 4]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(e.name.as_bytes());
    }
    let cd_offset = (out.len() - prefix.len()) as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

pub fn zip(entries: &[ZipEntry]) -> Vec<u8> {
    zip_with_prefix(&[], entries, 64)
}

/// A PyTorch >= 1.6 checkpoint: `<root>/data.pkl`, `byteorder`, `data/0`, `version`.
pub fn pytorch_zip(root: &str, data_pkl: &[u8]) -> Vec<u8> {
    zip(&[
        ZipEntry::stored(&format!("{root}/data.pkl"), data_pkl),
        ZipEntry::stored(&format!("{root}/byteorder"), b"little"),
        ZipEntry::stored(&format!("{root}/data/0"), &[0u8; 16]),
        ZipEntry::stored(&format!("{root}/version"), b"3\n"),
    ])
}
