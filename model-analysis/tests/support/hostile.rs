//! The worst files we know how to make for each analyser, and benign files shaped like
//! real models, written to disk (some are large and sparse). Shared by the budget tests
//! and the `hostile_bench` example, so that the benchmark measures the files the tests
//! check.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use model_analysis::FindingKind;

use super::gguf_writer::{Gguf, Value};
use super::pickle_writer::torch_state_dict;
use super::zip_writer::{ZipEntry, pytorch_zip, zip, zip_with_prefix};

const MIB: usize = 1024 * 1024;

/// A sandbox escape, to be found at the far end of a hostile template.
pub const PAYLOAD: &str = "{{ lipsum.__globals__['os'].popen('id').read() }}";

/// One class of file.
pub struct Class {
    pub name: &'static str,
    /// The file name written (its extension is part of some tricks).
    pub file: &'static str,
    pub hostile: bool,
    /// Kinds the analysis must report when no deadline interferes.
    pub expect: &'static [FindingKind],
    /// The budget that stops it (the start of its `analysis_budget_exceeded` message).
    pub budget: Option<&'static str>,
    pub write: fn(&Path) -> io::Result<()>,
}

const fn class(
    name: &'static str,
    file: &'static str,
    hostile: bool,
    expect: &'static [FindingKind],
    write: fn(&Path) -> io::Result<()>,
) -> Class {
    let budget = None;
    Class { name, file, hostile, expect, budget, write }
}

impl Class {
    const fn stopped_by(mut self, budget: &'static str) -> Self {
        self.budget = Some(budget);
        self
    }
}

use FindingKind as K;

/// Every class, hostile first.
pub fn classes() -> Vec<Class> {
    vec![
        class("template-quadratic", "t.gguf", true, &[K::ChatTemplateRisk], template_quadratic),
        class("template-needle-prefixes", "t.gguf", true, &[K::ChatTemplateRisk], template_needle_prefixes),
        class("template-held-closers", "t.gguf", true, &[K::ChatTemplateRisk], template_held_closers),
        class(
            "many-templates",
            "t.gguf",
            true,
            &[K::ChatTemplateRisk, K::AnalysisBudgetExceeded],
            many_templates,
        )
        .stopped_by("chat-template budget"),
        class(
            "gguf-4m-tiny-kvs",
            "m.gguf",
            true,
            &[K::ChatTemplateRisk, K::CountExceedsLimit, K::AnalysisBudgetExceeded],
            gguf_tiny_kvs,
        )
        .stopped_by("item budget"),
        class("gguf-huge-array", "m.gguf", true, &[K::AnalysisBudgetExceeded], gguf_huge_array)
            .stopped_by("header byte budget"),
        class(
            "gguf-300k-tensors",
            "m.gguf",
            true,
            &[K::CountExceedsLimit, K::AnalysisBudgetExceeded],
            gguf_many_tensors,
        )
        .stopped_by("item budget"),
        class("st-deep-nesting", "m.safetensors", true, &[K::MalformedHeader], st_deep_nesting),
        class("st-900k-keys", "m.safetensors", true, &[K::AnalysisBudgetExceeded], st_many_keys)
            .stopped_by("item budget"),
        class("st-4m-dim-shape", "m.safetensors", true, &[K::SafetensorsSizeMismatch], st_huge_shape),
        class("st-100mb-header", "m.safetensors", true, &[K::AnalysisBudgetExceeded], st_100mb_header)
            .stopped_by("header byte budget"),
        class("st-60mb-string", "m.safetensors", true, &[K::AnalysisBudgetExceeded], st_long_string)
            .stopped_by("string budget"),
        class(
            "zip-10m-entries-declared",
            "m.zip",
            true,
            &[K::CountExceedsLimit, K::AnalysisBudgetExceeded],
            zip_declared_millions,
        )
        .stopped_by("item budget"),
        class(
            "zip-overlapping-bomb",
            "m.pt",
            true,
            &[K::ZipBomb, K::AnalysisBudgetExceeded],
            zip_overlapping_bomb,
        )
        .stopped_by("zip entry byte budget"),
        class("zip-1gib-deflate", "m.pt", true, &[K::ZipBomb], zip_high_ratio),
        class("zip-nested", "m.zip", true, &[K::UnsupportedContainer], zip_nested),
        class("zip-65k-pickles", "m.pt", true, &[], zip_tiny_pickles),
        class("zip-4k-names", "m.zip", true, &[K::AnalysisBudgetExceeded], zip_long_names)
            .stopped_by("memory budget"),
        class("npy-64k-header", "m.npy", true, &[K::NumpyObjectArray], npy_header_bomb),
        class("npz-20k-headers", "m.npz", true, &[K::AnalysisBudgetExceeded], npz_many_headers)
            .stopped_by("zip entry byte budget"),
        class("keras-11mb-config", "m.keras", true, &[K::KerasLambdaLayer], keras_config_bomb),
        class(
            "llamafile-fake-magics",
            "m.llamafile",
            true,
            &[K::EmbeddedInExecutable, K::ChatTemplateRisk],
            llamafile_fake_magics,
        ),
        class(
            "llamafile-fake-entries",
            "m.llamafile",
            true,
            &[K::AnalysisBudgetExceeded],
            llamafile_fake_entries,
        )
        .stopped_by("item budget"),
        class("benign-gguf", "llama.gguf", false, &[], benign_gguf),
        class("benign-safetensors", "model.safetensors", false, &[], benign_safetensors),
        class("benign-pytorch-zip", "pytorch_model.bin", false, &[], benign_pytorch),
        class("benign-npz", "arrays.npz", false, &[], benign_npz),
        class("benign-llamafile", "m.llamafile", false, &[K::EmbeddedInExecutable], benign_llamafile),
    ]
}

// --- GGUF ---------------------------------------------------------------------------

fn gguf_header(out: &mut impl Write, tensors: u64, kvs: u64) -> io::Result<()> {
    out.write_all(b"GGUF")?;
    out.write_all(&3u32.to_le_bytes())?;
    out.write_all(&tensors.to_le_bytes())?;
    out.write_all(&kvs.to_le_bytes())
}

fn gguf_string(out: &mut impl Write, s: &[u8]) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s)
}

fn gguf_str_kv(out: &mut impl Write, key: &str, value: &[u8]) -> io::Result<()> {
    gguf_string(out, key.as_bytes())?;
    out.write_all(&8u32.to_le_bytes())?;
    gguf_string(out, value)
}

/// `unit` repeated to `len - PAYLOAD.len()` bytes, then [`PAYLOAD`].
fn filled(unit: &str, len: usize) -> Vec<u8> {
    let mut t = unit.repeat((len - PAYLOAD.len()) / unit.len()).into_bytes();
    t.extend_from_slice(PAYLOAD.as_bytes());
    t
}

fn one_template(path: &Path, template: &[u8]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    gguf_header(&mut out, 0, 1)?;
    gguf_str_kv(&mut out, "tokenizer.chat_template", template)?;
    out.flush()
}

/// 1 MiB of empty `{{}}` blocks: the old scorer searched the rest of the text for `{%`
/// at every one of them.
fn template_quadratic(path: &Path) -> io::Result<()> {
    one_template(path, &filled("{{}}", MIB))
}

/// One 1 MiB block of needle prefixes (`__clas`, `lipsu`, `\x5`, `mro`...): every byte
/// starts a partial match.
fn template_needle_prefixes(path: &Path) -> io::Result<()> {
    let mut t = b"{{ ".to_vec();
    t.extend_from_slice(&filled("__clas _sel lipsu imp \\x5 mro eva 'd_ subproces ", MIB - 6));
    t.extend_from_slice(b" }}");
    one_template(path, &t)
}

/// An unterminated `{%` block of `%` (each may start the closer).
fn template_held_closers(path: &Path) -> io::Result<()> {
    let mut t = b"{%".to_vec();
    t.extend_from_slice(&filled("%", MIB - 2));
    one_template(path, &t)
}

/// 64 templates of 256 KiB (`tokenizer.chat_template.*`), the second with the payload:
/// all of them share one budget.
fn many_templates(path: &Path) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    gguf_header(&mut out, 0, 64)?;
    for i in 0..64 {
        let t = if i == 1 { filled("{{}}", MIB / 4) } else { "{{}}".repeat(MIB / 16).into_bytes() };
        gguf_str_kv(&mut out, &format!("tokenizer.chat_template.t{i}"), &t)?;
    }
    out.flush()
}

/// 4 million one-byte KV pairs after a hostile template.
fn gguf_tiny_kvs(path: &Path) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let n = 4_000_000u64;
    gguf_header(&mut out, 0, n)?;
    gguf_str_kv(&mut out, "tokenizer.chat_template", PAYLOAD.as_bytes())?;
    for _ in 1..n {
        gguf_string(&mut out, b"k")?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&[0])?;
    }
    out.flush()
}

/// An array of 16,777,215 empty strings (128 MiB of zeros, a hole in the file).
fn gguf_huge_array(path: &Path) -> io::Result<()> {
    let mut out = Vec::new();
    gguf_header(&mut out, 0, 1)?;
    gguf_string(&mut out, b"tokenizer.ggml.tokens")?;
    out.extend_from_slice(&9u32.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    let count = (16 * MIB - 1) as u64;
    out.extend_from_slice(&count.to_le_bytes());
    sparse(path, &out, out.len() as u64 + count * 8)
}

/// 300,000 real tensor infos (the cap is 262,144).
fn gguf_many_tensors(path: &Path) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let n = 300_000u64;
    gguf_header(&mut out, n, 0)?;
    for i in 0..n {
        gguf_string(&mut out, format!("t{i}").as_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        out.write_all(&1u64.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&0u64.to_le_bytes())?;
    }
    out.flush()
}

// --- safetensors --------------------------------------------------------------------

fn st_file(path: &Path, header: &[u8], data_len: u64) -> io::Result<()> {
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(header);
    sparse(path, &head, head.len() as u64 + data_len)
}

/// A million nested lists where a shape is expected.
fn st_deep_nesting(path: &Path) -> io::Result<()> {
    let mut h = br#"{"a":{"dtype":"F32","shape":"#.to_vec();
    h.extend_from_slice(&b"[".repeat(MIB));
    h.extend_from_slice(&b"]".repeat(MIB));
    h.extend_from_slice(br#","data_offsets":[0,4]}}"#);
    st_file(path, &h, 4)
}

/// 900,000 one-byte tensors (a 62 MB header; the cap is 262,144 tensors).
fn st_many_keys(path: &Path) -> io::Result<()> {
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
fn st_huge_shape(path: &Path) -> io::Result<()> {
    let mut h = br#"{"a":{"dtype":"F32","shape":["#.to_vec();
    h.extend_from_slice(&b"2,".repeat(4 * MIB));
    h.extend_from_slice(br#"2],"data_offsets":[0,4]}}"#);
    st_file(path, &h, 4)
}

/// A header of 100,000,000 bytes, the reference loader's cap.
fn st_100mb_header(path: &Path) -> io::Result<()> {
    let len = 100_000_000usize;
    let mut h = br#"{"__metadata__":{"a":""#.to_vec();
    h.resize(len - 3, b'a');
    h.extend_from_slice(br#""}}"#);
    st_file(path, &h, 0)
}

/// A 60 MB key.
fn st_long_string(path: &Path) -> io::Result<()> {
    let mut h = b"{\"".to_vec();
    h.resize(60 * MIB, b'k');
    h.extend_from_slice(br#"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#);
    st_file(path, &h, 1)
}

// --- zip ----------------------------------------------------------------------------

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

fn deflate(chunks: impl Iterator<Item = Vec<u8>>) -> io::Result<(Vec<u8>, u32, u64)> {
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
fn zip_declared_millions(path: &Path) -> io::Result<()> {
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
fn zip_overlapping_bomb(path: &Path) -> io::Result<()> {
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
fn zip_high_ratio(path: &Path) -> io::Result<()> {
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
fn zip_nested(path: &Path) -> io::Result<()> {
    let mut inner = pytorch_zip("archive", &torch_state_dict());
    for depth in 0..3 {
        let entries: Vec<ZipEntry> =
            (0..40).map(|i| ZipEntry::deflated(&format!("level{depth}-{i}.zip"), &inner)).collect();
        inner = zip(&entries);
    }
    std::fs::write(path, inner)
}

/// 65,000 entries, each a tiny deflated pickle: every one is inflated and walked.
fn zip_tiny_pickles(path: &Path) -> io::Result<()> {
    let entries: Vec<ZipEntry> =
        (0..65_000).map(|i| ZipEntry::deflated(&format!("archive/p{i}.pkl"), b"\x80\x02N.")).collect();
    std::fs::write(path, zip_with_prefix(&[], &entries, 1))
}

/// 15,000 entries with 4 KiB names (a 62 MB directory).
fn zip_long_names(path: &Path) -> io::Result<()> {
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
fn npy_header_bomb(path: &Path) -> io::Result<()> {
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
fn npz_many_headers(path: &Path) -> io::Result<()> {
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
fn keras_config_bomb(path: &Path) -> io::Result<()> {
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

// --- executables --------------------------------------------------------------------

fn small_gguf(template: &str) -> Vec<u8> {
    Gguf::new(3)
        .str("general.architecture", "llama")
        .str("general.name", "embedded")
        .str("tokenizer.chat_template", template)
        .build(0)
}

/// A 32 MiB ELF whose every page starts with a GGUF magic and impossible counts, with a
/// real GGUF (and a hostile template) on page 7,000.
fn llamafile_fake_magics(path: &Path) -> io::Result<()> {
    let page = 4096;
    let mut out = vec![0x90u8; 32 * MIB];
    out[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    for at in (page..out.len()).step_by(page) {
        out[at..at + 8].copy_from_slice(b"GGUF\x03\x00\x00\x00");
        out[at + 8..at + 24].fill(0xff);
    }
    let real = small_gguf(PAYLOAD);
    let at = 7000 * page;
    out[at..at + real.len()].copy_from_slice(&real);
    std::fs::write(path, out)
}

/// An ELF with a zip of 5,000 stored `.gguf` entries that are not GGUF.
fn llamafile_fake_entries(path: &Path) -> io::Result<()> {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(8192, 0x90);
    let fake = b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    let entries: Vec<ZipEntry> = (0..5000).map(|i| ZipEntry::stored(&format!("m{i}.gguf"), fake)).collect();
    std::fs::write(path, zip_with_prefix(&elf, &entries, 1))
}

// --- benign -------------------------------------------------------------------------

/// The Llama 3 chat template, as shipped.
pub const LLAMA3_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// A Llama-like GGUF: 128k-token vocabulary with scores, types and merges, 291 tensors
/// whose data is a hole in a 4 GiB file.
fn benign_gguf(path: &Path) -> io::Result<()> {
    let vocab = 128_256;
    let mut g = Gguf::new(3)
        .str("general.architecture", "llama")
        .str("general.name", "Meta Llama 3.1 8B Instruct")
        .str("general.license", "llama3.1")
        .kv("general.file_type", Value::U32(15))
        .kv("general.tags", Value::Strs(vec!["text-generation".into(), "llama".into()]))
        .kv("llama.context_length", Value::U32(131_072))
        .kv("llama.block_count", Value::U32(32))
        .str("tokenizer.ggml.model", "gpt2")
        .kv("tokenizer.ggml.tokens", Value::Strs((0..vocab).map(|i| format!("tok{i}")).collect()))
        .kv("tokenizer.ggml.token_type", Value::U32s(vec![1; vocab]))
        .kv("tokenizer.ggml.merges", Value::Strs((0..100_000).map(|i| format!("a{i} b{i}")).collect()))
        .str("tokenizer.chat_template", LLAMA3_TEMPLATE)
        .kv("general.quantization_version", Value::U32(2));
    let block = 4096 * 4096 / 256 * 144;
    for i in 0..291u64 {
        g = g.tensor(&format!("blk.{i}.weight"), &[4096, 4096], 12, i * block);
    }
    let header = g.build(0);
    sparse(path, &header, header.len() as u64 + 291 * block)
}

/// A safetensors shard of 300 F16 tensors, laid out end to end.
fn benign_safetensors(path: &Path) -> io::Result<()> {
    let mut h = String::from(r#"{"__metadata__":{"format":"pt"}"#);
    let bytes = 4096 * 4096 * 2;
    for i in 0..300u64 {
        h.push_str(&format!(
            r#","model.layers.{i}.weight":{{"dtype":"F16","shape":[4096,4096],"data_offsets":[{},{}]}}"#,
            i * bytes,
            (i + 1) * bytes
        ));
    }
    h.push('}');
    while (h.len() + 8) % 8 != 0 {
        h.push(' ');
    }
    st_file(path, h.as_bytes(), 300 * bytes)
}

fn benign_pytorch(path: &Path) -> io::Result<()> {
    std::fs::write(path, pytorch_zip("archive", &torch_state_dict()))
}

fn benign_npz(path: &Path) -> io::Result<()> {
    let entries: Vec<ZipEntry> = (0..20)
        .map(|i| {
            let mut npy = super::npy_header("'<f4'", "(16, 16)");
            npy.resize(npy.len() + 16 * 16 * 4, 0);
            ZipEntry::stored(&format!("arr_{i}.npy"), &npy)
        })
        .collect();
    std::fs::write(path, zip(&entries))
}

fn benign_llamafile(path: &Path) -> io::Result<()> {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(64 * 1024, 0x90);
    let entries = [
        ZipEntry::stored(".args", b"-m\nmodel.gguf\n"),
        ZipEntry::stored("model.gguf", &small_gguf(LLAMA3_TEMPLATE)),
    ];
    std::fs::write(path, zip_with_prefix(&elf, &entries, 4096))
}

/// Writes `head`, then extends the file to `len` bytes with a hole.
fn sparse(path: &Path, head: &[u8], len: u64) -> io::Result<()> {
    std::fs::write(path, head)?;
    OpenOptions::new().write(true).open(path)?.set_len(len)
}
