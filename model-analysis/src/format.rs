//! Format identification from a file's first bytes, and the extension check.
//!
//! Content decides, never the name: the name is only compared with the content so that
//! a pickle calling itself `model.safetensors` is reported.
//!
//! Sniffing looks at no more than the prefix it is given ([`SNIFF_LEN`] bytes from
//! [`crate::analyze`]) and every loop here is bounded by it, so it needs no clock.

use std::path::Path;

use serde::Serialize;

use crate::finding::{Finding, FindingKind, Severity};
use crate::pickle;

/// Bytes a caller should read from the start of a file for [`sniff`]. Fewer work for
/// most formats; raw protocol 0/1 pickles and ONNX need a longer look.
pub const SNIFF_LEN: usize = 4096;

/// What a file's content says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// GGUF v1-v3 (llama.cpp, Ollama).
    Gguf,
    Safetensors,
    /// A raw pickle stream (joblib, `pickle.dump`), any protocol 0-5.
    Pickle,
    /// A PyTorch >= 1.6 zip checkpoint (`<root>/data.pkl`), TorchScript included.
    PytorchZip,
    /// A legacy PyTorch checkpoint: a sequence of pickles starting with the magic number.
    PytorchLegacy,
    /// A NumPy `.npy` array.
    Numpy,
    /// A NumPy `.npz` archive (a zip of `.npy`).
    NumpyZip,
    /// An ONNX `ModelProto`.
    Onnx,
    /// HDF5 (Keras `.h5`).
    Hdf5,
    /// A Keras 3 `.keras` zip (`config.json` + `model.weights.h5`).
    Keras,
    /// A TensorFlow Lite flatbuffer.
    Tflite,
    /// An executable (ELF or APE) with an embedded GGUF.
    Llamafile,
    /// A zip archive with no model format recognised inside.
    Zip,
    /// A 7z archive: cannot be inspected, a known way to hide pickles.
    SevenZip,
    /// Another archive or compressed stream (gzip, bzip2, xz, zstd, rar, tar).
    CompressedArchive,
    /// Not a model format this sensor knows.
    Unknown,
}

impl Format {
    /// Whether the content is a model (or model container) this crate recognises.
    /// Plain archives are not models, but they get an `unsupported_container` finding.
    #[must_use]
    pub fn is_model(self) -> bool {
        !matches!(self, Self::Unknown | Self::Zip | Self::SevenZip | Self::CompressedArchive)
    }

    /// Whether loading the file the usual way unpickles it (code execution on load).
    #[must_use]
    pub fn is_pickle_based(self) -> bool {
        matches!(self, Self::Pickle | Self::PytorchZip | Self::PytorchLegacy)
    }
}

/// The pickle every legacy (`_use_new_zipfile_serialization=False`) PyTorch file starts
/// with: protocol 2, `LONG1` 0x1950a86a20f9469cfc6c, `STOP`.
const TORCH_LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";

const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Identifies a format from the first bytes of a file (pass at least [`SNIFF_LEN`] when
/// the file has them). Zip archives come back as [`Format::Zip`] and executables as
/// [`Format::Unknown`]: telling a PyTorch zip from a `.keras` or finding the GGUF in a
/// llamafile needs more than a prefix, which [`crate::analyze`] does.
#[must_use]
pub fn sniff(prefix: &[u8]) -> Format {
    if prefix.starts_with(b"GGUF") {
        return Format::Gguf;
    }
    if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06") {
        return Format::Zip;
    }
    if prefix.starts_with(TORCH_LEGACY_MAGIC) {
        return Format::PytorchLegacy;
    }
    if prefix.starts_with(b"\x93NUMPY") {
        return Format::Numpy;
    }
    if prefix.starts_with(b"7z\xBC\xAF\x27\x1C") {
        return Format::SevenZip;
    }
    if compressed_kind(prefix).is_some() {
        return Format::CompressedArchive;
    }
    if looks_like_hdf5(prefix) {
        return Format::Hdf5;
    }
    if prefix.get(4..8) == Some(b"TFL3") {
        return Format::Tflite;
    }
    if looks_like_safetensors(prefix) {
        return Format::Safetensors;
    }
    if looks_like_pickle(prefix, prefix_total_len(prefix), false) {
        return Format::Pickle;
    }
    if looks_like_onnx(prefix) {
        return Format::Onnx;
    }
    Format::Unknown
}

/// Names the archive or compression format of a prefix, for the formats this crate does
/// not open (7z aside, which has its own [`Format`]).
#[must_use]
pub fn compressed_kind(prefix: &[u8]) -> Option<&'static str> {
    const MAGICS: &[(&[u8], &str)] = &[
        (b"\x1f\x8b", "gzip"),
        (b"BZh", "bzip2"),
        (b"\xFD7zXZ\x00", "xz"),
        (b"\x28\xB5\x2F\xFD", "zstd"),
        (b"Rar!\x1A\x07", "rar"),
    ];
    if let Some((_, name)) = MAGICS.iter().find(|(magic, _)| prefix.starts_with(magic)) {
        return Some(name);
    }
    if prefix.get(257..262) == Some(b"ustar") {
        return Some("tar");
    }
    None
}

/// Whether a prefix is an executable that could carry a llamafile payload: ELF, or an
/// APE ("Actually Portable Executable", whose DOS header starts `MZqFpD`).
#[must_use]
pub fn is_executable(prefix: &[u8]) -> bool {
    prefix.starts_with(b"\x7fELF") || prefix.starts_with(b"MZqFpD")
}

/// HDF5's signature sits at offset 0, or after a user block of 512 x 2^n bytes.
fn looks_like_hdf5(prefix: &[u8]) -> bool {
    [0usize, 512, 1024, 2048].iter().any(|&at| prefix.get(at..at + HDF5_MAGIC.len()) == Some(HDF5_MAGIC))
}

/// safetensors: a little-endian u64 header length, then a JSON object.
fn looks_like_safetensors(prefix: &[u8]) -> bool {
    let Some(len) = prefix.get(..8) else {
        return false;
    };
    let mut raw = [0u8; 8];
    raw.copy_from_slice(len);
    let header_len = u64::from_le_bytes(raw);
    // The reference implementation caps the header at 100 MB.
    (2..=100_000_000).contains(&header_len) && prefix.get(8) == Some(&b'{')
}

/// Pickles, by what CPython would do with the bytes: a prefix is a pickle when
/// `load()` would import something from it, when a stream in it is well formed, or
/// when it stays a valid opcode stream for long (a harmless-looking opening, or one
/// that starts with FRAME or a protocol 0 text opcode). `total_len` is the length of
/// what the prefix opens (`u64::MAX` when unknown). With `lenient`, a short valid start
/// also counts (used when the name says pickle).
pub(crate) fn looks_like_pickle(prefix: &[u8], total_len: u64, lenient: bool) -> bool {
    pickle::look_at_prefix(prefix, total_len).is_pickle(lenient)
}

/// The length a prefix given to [`sniff`] opens: all of it when shorter than
/// [`SNIFF_LEN`], else unknown.
fn prefix_total_len(prefix: &[u8]) -> u64 {
    if prefix.len() >= SNIFF_LEN { u64::MAX } else { prefix.len() as u64 }
}

/// ONNX files are a protobuf `ModelProto`. Serialisers write fields in number order, so
/// a real file starts with field 1 (`ir_version`, a small varint) followed by the fields
/// every exporter writes (producer name and version, domain, graph, opset imports). To
/// stay quiet on random data, at least two fields after `ir_version` must parse, and the
/// strings among them must be printable.
fn looks_like_onnx(prefix: &[u8]) -> bool {
    let mut at = 0;
    let Some((tag, ir_version)) = protobuf_varint_field(prefix, &mut at) else {
        return false;
    };
    if tag != 0x08 || !(1..=20).contains(&ir_version) {
        return false;
    }
    let mut fields = 0;
    while at < prefix.len() && fields < 4 {
        let Some(&tag) = prefix.get(at) else { break };
        at += 1;
        match tag {
            // producer_name (2), producer_version (3), domain (4), doc_string (6)
            0x12 | 0x1a | 0x22 | 0x32 => {
                let Some(len) = varint(prefix, &mut at) else {
                    return false;
                };
                let Ok(len) = usize::try_from(len) else {
                    return false;
                };
                if len > 4096 {
                    return false;
                }
                let Some(text) = prefix.get(at..at + len) else {
                    // Runs past the prefix: judge by what we have.
                    return fields >= 1;
                };
                if !text.iter().all(|b| (0x20..0x7f).contains(b)) {
                    return false;
                }
                at += len;
            }
            // model_version (5)
            0x28 => {
                if varint(prefix, &mut at).is_none() {
                    return false;
                }
            }
            // graph (7), opset_import (8): length-delimited messages, end the look.
            0x3a | 0x42 => {
                let Some(len) = varint(prefix, &mut at) else {
                    return false;
                };
                return len > 0 && fields >= 1;
            }
            _ => return false,
        }
        fields += 1;
    }
    fields >= 2
}

fn protobuf_varint_field(buf: &[u8], at: &mut usize) -> Option<(u8, u64)> {
    let tag = *buf.get(*at)?;
    *at += 1;
    Some((tag, varint(buf, at)?))
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The formats a file-name extension promises, for the ones worth checking.
fn promised_formats(extension: &str) -> Option<&'static [Format]> {
    use Format as F;
    const TORCH: &[Format] = &[F::PytorchZip, F::PytorchLegacy, F::Pickle];
    Some(match extension {
        "gguf" => &[F::Gguf],
        "safetensors" => &[F::Safetensors],
        "pt" | "pth" | "ckpt" | "pkl" | "pickle" | "joblib" => TORCH,
        "npy" => &[F::Numpy],
        "npz" => &[F::NumpyZip],
        "onnx" => &[F::Onnx],
        "h5" | "hdf5" => &[F::Hdf5],
        "keras" => &[F::Keras, F::Hdf5],
        "tflite" => &[F::Tflite],
        "llamafile" => &[F::Llamafile],
        // `.bin` is every runtime's catch-all (PyTorch, old GGML, OpenVINO weights):
        // only archives and formats with their own extension are suspicious there.
        "bin" => &[F::PytorchZip, F::PytorchLegacy, F::Pickle, F::Gguf, F::Unknown],
        // Names that promise plain data: a model (above all a pickle) behind one of these
        // is hiding.
        "txt" | "json" | "md" | "csv" | "yaml" | "yml" | "png" | "jpg" | "jpeg" => &[F::Unknown],
        _ => return None,
    })
}

/// A finding when `name`'s extension promises a different format than `content`.
#[must_use]
pub fn extension_mismatch(name: &Path, content: Format) -> Option<Finding> {
    let extension = name.extension()?.to_str()?.to_ascii_lowercase();
    let promised = promised_formats(&extension)?;
    if promised.contains(&content) {
        return None;
    }
    // The dangerous direction: executable-on-load content behind a name that promises
    // data, or an opaque archive behind a model name (the "nullifAI" 7z trick).
    let promised_safe = !promised.iter().any(|f| f.is_pickle_based());
    let hides_code = content.is_pickle_based() && promised_safe;
    let hides_archive = matches!(content, Format::SevenZip | Format::CompressedArchive);
    let severity = if hides_code || hides_archive { Severity::High } else { Severity::Medium };
    Some(
        Finding::new(
            FindingKind::ExtensionMismatch,
            format!("the name says .{extension} but the content is {}", format_name(content)),
        )
        .with_severity(severity),
    )
}

/// The snake_case name serde gives the format (`pytorch_zip`).
fn format_name(format: Format) -> String {
    serde_json::to_string(&format)
        .map(|json| json.trim_matches('"').to_owned())
        .unwrap_or_else(|_| format!("{format:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_magic_numbers() {
        assert_eq!(sniff(b"GGUF\x03\0\0\0"), Format::Gguf);
        assert_eq!(sniff(b"PK\x03\x04rest"), Format::Zip);
        assert_eq!(sniff(b"\x80\x04\x95\x05\0\0\0\0\0\0\0N."), Format::Pickle);
        assert_eq!(sniff(b"\x10\0\0\0\0\0\0\0{\"a\":1}"), Format::Safetensors);
        assert_eq!(sniff(b"\x93NUMPY\x01\x00"), Format::Numpy);
        assert_eq!(sniff(b"\x89HDF\r\n\x1a\n\0\0"), Format::Hdf5);
        assert_eq!(sniff(b"\x1c\0\0\0TFL3\0\0"), Format::Tflite);
        assert_eq!(sniff(b"7z\xBC\xAF\x27\x1C\0\x04"), Format::SevenZip);
        assert_eq!(sniff(b"\x1f\x8b\x08\0"), Format::CompressedArchive);
        assert_eq!(sniff(TORCH_LEGACY_MAGIC), Format::PytorchLegacy);
        assert_eq!(sniff(&[0u8; 64]), Format::Unknown);
        assert_eq!(sniff(b""), Format::Unknown);
    }

    #[test]
    fn hdf5_after_a_user_block() {
        let mut prefix = vec![0u8; 600];
        prefix[512..520].copy_from_slice(HDF5_MAGIC);
        assert_eq!(sniff(&prefix), Format::Hdf5);
    }

    #[test]
    fn protocol_0_pickles_need_stop_within_the_prefix() {
        // pickle.dumps({'a': 1}, protocol=0)
        assert_eq!(sniff(b"(dp0\nVa\np1\nI1\ns."), Format::Pickle);
        // protocol 1: EMPTY_DICT, BINPUT, SHORT_BINSTRING... no PROTO opcode.
        assert_eq!(sniff(b"}q\x00X\x01\x00\x00\x00aq\x01K\x01s."), Format::Pickle);
        // Text that happens to start with a pickle opcode.
        assert_eq!(sniff(b"(hello world) this is text\n"), Format::Unknown);
        assert_eq!(sniff(b"N."), Format::Unknown, "two opcodes are too few to tell");
        assert_eq!(sniff(b"]Some markdown list"), Format::Unknown);
    }

    #[test]
    fn pickle_with_proto_but_garbage_is_not_pickle() {
        assert_eq!(sniff(b"\x80\x04\xff\xff\xff"), Format::Unknown);
    }

    #[test]
    fn onnx_is_recognised_conservatively() {
        // ir_version 8, producer_name "pytorch", producer_version "2.1.0", graph...
        let onnx = b"\x08\x08\x12\x07pytorch\x1a\x052.1.0:\x8a\x01\x0a\x05";
        assert_eq!(sniff(onnx), Format::Onnx);
        assert_eq!(sniff(b"\x08\x08\x12\x07pyt\x01rch\x1a\x05"), Format::Unknown);
        assert_eq!(sniff(b"\x08\x08\x99"), Format::Unknown);
        assert_eq!(sniff(b"\x08\x08"), Format::Unknown);
    }

    #[test]
    fn random_bytes_are_unknown() {
        // A fixed LCG stream: no magic, not safetensors, not pickle, not ONNX.
        let mut state = 0x1234_5678_u32;
        let mut unknown = 0;
        for _ in 0..2000 {
            let prefix: Vec<u8> = (0..256)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8
                })
                .collect();
            if sniff(&prefix) == Format::Unknown {
                unknown += 1;
            }
        }
        assert!(unknown >= 1995, "only {unknown}/2000 random prefixes were unknown");
    }

    #[test]
    fn extension_mismatches() {
        let f = extension_mismatch(Path::new("model.safetensors"), Format::Pickle)
            .expect("pickle named safetensors");
        assert_eq!(f.kind, FindingKind::ExtensionMismatch);
        assert_eq!(f.severity, Severity::High);
        assert!(f.message.contains("pickle"), "{}", f.message);

        let f = extension_mismatch(Path::new("weights.bin"), Format::Zip).expect("zip as bin");
        assert_eq!(f.severity, Severity::Medium);
        let f = extension_mismatch(Path::new("model.pt"), Format::SevenZip).expect("7z as pt");
        assert_eq!(f.severity, Severity::High);

        assert!(extension_mismatch(Path::new("pytorch_model.bin"), Format::PytorchZip).is_none());
        assert!(extension_mismatch(Path::new("x.GGUF"), Format::Gguf).is_none());
        assert!(extension_mismatch(Path::new("sha256-abc"), Format::Gguf).is_none());
        assert!(extension_mismatch(Path::new("notes.txt"), Format::Unknown).is_none());
        assert!(extension_mismatch(Path::new("notes.txt"), Format::Pickle).is_some());
    }
}
