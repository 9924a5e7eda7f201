//! Archives and containers: zip (PyTorch checkpoints), NumPy and Keras files.

use super::*;

/// A central directory record.
fn central(out: &mut Vec<u8>, name: &[u8], method: u16, crc: u32, sizes: (u32, u32), offset: u32) {
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
    out.extend_from_slice(&method.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&sizes.0.to_le_bytes());
    out.extend_from_slice(&sizes.1.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 2 + 2 + 2 + 2 + 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(name);
}

/// A local header and its data.
fn local(out: &mut Vec<u8>, name: &[u8], method: u16, crc: u32, data: &[u8], size: u32) {
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    out.extend_from_slice(&[20, 0, 0, 0]);
    out.extend_from_slice(&method.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    out.extend_from_slice(name);
    out.extend_from_slice(data);
}

/// The end records: zip64 (declaring `entries`) when asked, then the classic one.
fn end_records(out: &mut Vec<u8>, entries: u64, cd_start: usize, zip64: bool) {
    let cd_size = (out.len() - cd_start) as u64;
    if zip64 {
        let record_at = out.len() as u64;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&entries.to_le_bytes());
        out.extend_from_slice(&entries.to_le_bytes());
        out.extend_from_slice(&cd_size.to_le_bytes());
        out.extend_from_slice(&(cd_start as u64).to_le_bytes());
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&record_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    let short = |v: u64| if zip64 { 0xffff } else { v as u16 };
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&short(entries).to_le_bytes());
    out.extend_from_slice(&short(entries).to_le_bytes());
    out.extend_from_slice(&(if zip64 { u32::MAX } else { cd_size as u32 }).to_le_bytes());
    out.extend_from_slice(&(if zip64 { u32::MAX } else { cd_start as u32 }).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
}

pub(super) fn deflate(chunks: impl Iterator<Item = Vec<u8>>) -> io::Result<(Vec<u8>, u32, u64)> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::fast());
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for chunk in chunks {
        crc.update(&chunk);
        len += chunk.len() as u64;
        enc.write_all(&chunk)?;
    }
    Ok((enc.finish()?, crc.finalize(), len))
}

/// A zip64 end record declaring 10 million entries over a directory of 100,000.
pub(super) fn zip_declared_millions(path: &Path) -> io::Result<()> {
    let mut out = Vec::new();
    local(&mut out, b"f0", 0, 0, b"", 0);
    let cd_start = out.len();
    for i in 0..100_000 {
        central(&mut out, format!("f{i}").as_bytes(), 0, 0, (0, 0), 0);
    }
    end_records(&mut out, 10_000_000, cd_start, true);
    std::fs::write(path, out)
}

/// 1,000 central records, all pointing at one deflated 64 MiB pickle (the
/// non-recursive zip bomb).
pub(super) fn zip_overlapping_bomb(path: &Path) -> io::Result<()> {
    let payload = 64 * MIB;
    let mut head = vec![0x80, 0x04, 0x8e];
    head.extend_from_slice(&(payload as u64).to_le_bytes());
    let chunks = std::iter::once(head).chain((0..64).map(|_| vec![0u8; MIB]));
    let (data, crc, len) = deflate(chunks)?;
    let mut out = Vec::new();
    local(&mut out, b"e0.pkl", 8, crc, &data, len as u32);
    let cd_start = out.len();
    let n = 1000;
    for i in 0..n {
        central(&mut out, format!("e{i}.pkl").as_bytes(), 8, crc, (data.len() as u32, len as u32), 0);
    }
    end_records(&mut out, n, cd_start, false);
    std::fs::write(path, out)
}

/// data.pkl: 1 GiB of zeros in about 1 MiB of deflate.
pub(super) fn zip_high_ratio(path: &Path) -> io::Result<()> {
    let (data, crc, len) = deflate((0..1024).map(|_| vec![0u8; MIB]))?;
    let mut out = Vec::new();
    local(&mut out, b"archive/data.pkl", 8, crc, &data, u32::MAX);
    let cd_start = out.len();
    central(&mut out, b"archive/data.pkl", 8, crc, (data.len() as u32, u32::MAX), 0);
    end_records(&mut out, 1, cd_start, false);
    debug_assert_eq!(len, 1 << 30);
    std::fs::write(path, out)
}

/// Zips of zips of zips, 40 wide and three deep (not opened: nested archives are listed).
pub(super) fn zip_nested(path: &Path) -> io::Result<()> {
    let mut inner = pytorch_zip("archive", &torch_state_dict());
    for depth in 0..3 {
        let entries: Vec<ZipEntry> =
            (0..40).map(|i| ZipEntry::deflated(&format!("level{depth}-{i}.zip"), &inner)).collect();
        inner = zip(&entries);
    }
    std::fs::write(path, inner)
}

/// 65,000 entries, each a tiny deflated pickle: every one is inflated and walked.
pub(super) fn zip_tiny_pickles(path: &Path) -> io::Result<()> {
    let entries: Vec<ZipEntry> =
        (0..65_000).map(|i| ZipEntry::deflated(&format!("archive/p{i}.pkl"), b"\x80\x02N.")).collect();
    std::fs::write(path, zip_with_prefix(&[], &entries, 1))
}

/// 15,000 entries with 4 KiB names (a 62 MB directory).
pub(super) fn zip_long_names(path: &Path) -> io::Result<()> {
    let mut out = Vec::new();
    local(&mut out, b"x", 0, 0, b"", 0);
    let cd_start = out.len();
    let n = 15_000u64;
    for i in 0..n {
        let mut name = format!("{i:08}").into_bytes();
        name.resize(4096, b'n');
        central(&mut out, &name, 0, 0, (0, 0), 0);
    }
    end_records(&mut out, n, cd_start, false);
    std::fs::write(path, out)
}

// --- NumPy --------------------------------------------------------------------------

/// A .npy (format 2.0) whose 64 KiB header is a structured dtype of thousands of
/// fields, the last one an object.
pub(super) fn npy_header_bomb(path: &Path) -> io::Result<()> {
    let mut descr = String::from("[");
    while descr.len() < 60_000 {
        descr.push_str("('f', '<f4'), ");
    }
    descr.push_str("('p', '|O')]");
    let mut header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}");
    let pad = 65_535 - 12 - header.len();
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = b"\x93NUMPY\x02\x00".to_vec();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    std::fs::write(path, out)
}

/// 20,000 entries whose .npy headers inflate to 64 KiB each.
pub(super) fn npz_many_headers(path: &Path) -> io::Result<()> {
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }".to_owned();
    let pad = 65_534 - header.len();
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00\xff\xff".to_vec();
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(&[0; 4]);
    let (data, crc, len) = deflate(std::iter::once(npy))?;
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    let n = 20_000u64;
    for i in 0..n {
        offsets.push(out.len() as u32);
        local(&mut out, format!("a{i}.npy").as_bytes(), 8, crc, &data, len as u32);
    }
    let cd_start = out.len();
    for (i, offset) in offsets.iter().enumerate() {
        central(&mut out, format!("a{i}.npy").as_bytes(), 8, crc, (data.len() as u32, len as u32), *offset);
    }
    end_records(&mut out, n, cd_start, false);
    std::fs::write(path, out)
}

// --- Keras --------------------------------------------------------------------------

/// An 11 MB config.json of 300,000 layers, the last one a Lambda.
pub(super) fn keras_config_bomb(path: &Path) -> io::Result<()> {
    let mut config = br#"{"class_name":"Functional","config":{"layers":["#.to_vec();
    for _ in 0..300_000 {
        config.extend_from_slice(br#"{"class_name":"Dense","config":{}},"#);
    }
    config.extend_from_slice(br#"{"class_name":"Lambda","config":{"function":"4wEAAAAA"}}]}}"#);
    let bytes = zip(&[
        ZipEntry::deflated("config.json", &config),
        ZipEntry::stored("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
    ]);
    std::fs::write(path, bytes)
}
