//! GGUF files: chat templates built to be slow, and headers whose counts are huge.

use super::*;

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
pub(super) fn template_quadratic(path: &Path) -> io::Result<()> {
    one_template(path, &filled("{{}}", MIB))
}

/// One 1 MiB block of needle prefixes (`__clas`, `lipsu`, `\x5`, `mro`...): every byte
/// starts a partial match.
pub(super) fn template_needle_prefixes(path: &Path) -> io::Result<()> {
    let mut t = b"{{ ".to_vec();
    t.extend_from_slice(&filled("__clas _sel lipsu imp \\x5 mro eva 'd_ subproces ", MIB - 6));
    t.extend_from_slice(b" }}");
    one_template(path, &t)
}

/// An unterminated `{%` block of `%` (each may start the closer).
pub(super) fn template_held_closers(path: &Path) -> io::Result<()> {
    let mut t = b"{%".to_vec();
    t.extend_from_slice(&filled("%", MIB - 2));
    one_template(path, &t)
}

/// 64 templates of 256 KiB (`tokenizer.chat_template.*`), the second with the payload:
/// all of them share one budget.
pub(super) fn many_templates(path: &Path) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    gguf_header(&mut out, 0, 64)?;
    for i in 0..64 {
        let t = if i == 1 { filled("{{}}", MIB / 4) } else { "{{}}".repeat(MIB / 16).into_bytes() };
        gguf_str_kv(&mut out, &format!("tokenizer.chat_template.t{i}"), &t)?;
    }
    out.flush()
}

/// 4 million one-byte KV pairs after a hostile template.
pub(super) fn gguf_tiny_kvs(path: &Path) -> io::Result<()> {
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
pub(super) fn gguf_huge_array(path: &Path) -> io::Result<()> {
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
pub(super) fn gguf_many_tensors(path: &Path) -> io::Result<()> {
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
