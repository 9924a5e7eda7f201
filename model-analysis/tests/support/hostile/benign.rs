//! Benign files shaped like real models.

use super::*;

/// A Llama-like GGUF: 128k-token vocabulary with scores, types and merges, 291 tensors
/// whose data is a hole in a 4 GiB file.
pub(super) fn benign_gguf(path: &Path) -> io::Result<()> {
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
pub(super) fn benign_safetensors(path: &Path) -> io::Result<()> {
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

pub(super) fn benign_pytorch(path: &Path) -> io::Result<()> {
    std::fs::write(path, pytorch_zip("archive", &torch_state_dict()))
}

pub(super) fn benign_npz(path: &Path) -> io::Result<()> {
    let entries: Vec<ZipEntry> = (0..20)
        .map(|i| {
            let mut npy = super::super::npy_header("'<f4'", "(16, 16)");
            npy.resize(npy.len() + 16 * 16 * 4, 0);
            ZipEntry::stored(&format!("arr_{i}.npy"), &npy)
        })
        .collect();
    std::fs::write(path, zip(&entries))
}

pub(super) fn benign_llamafile(path: &Path) -> io::Result<()> {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(64 * 1024, 0x90);
    let entries = [
        ZipEntry::stored(".args", b"-m\nmodel.gguf\n"),
        ZipEntry::stored("model.gguf", &small_gguf(LLAMA3_TEMPLATE)),
    ];
    std::fs::write(path, zip_with_prefix(&elf, &entries, 4096))
}
