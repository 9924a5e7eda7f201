//! Executables that carry a model (llamafile-style).

use super::*;

pub(super) fn small_gguf(template: &str) -> Vec<u8> {
    Gguf::new(3)
        .str("general.architecture", "llama")
        .str("general.name", "embedded")
        .str("tokenizer.chat_template", template)
        .build(0)
}

/// A 32 MiB ELF whose every page starts with a GGUF magic and impossible counts, with a
/// real GGUF (and a hostile template) on page 7,000.
pub(super) fn llamafile_fake_magics(path: &Path) -> io::Result<()> {
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
pub(super) fn llamafile_fake_entries(path: &Path) -> io::Result<()> {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(8192, 0x90);
    let fake = b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    let entries: Vec<ZipEntry> = (0..5000).map(|i| ZipEntry::stored(&format!("m{i}.gguf"), fake)).collect();
    std::fs::write(path, zip_with_prefix(&elf, &entries, 1))
}
