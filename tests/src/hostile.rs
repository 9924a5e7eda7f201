//! Hostile model files an unprivileged user can write: each aims at one analyser's
//! worst case (a quadratic chat-template scan, a JSON header bomb, a zip directory
//! bomb, a pickle whose payload hides behind a long harmless prefix).

use std::path::Path;

/// Writes one file of each kind into `dir`.
pub fn write_all(dir: &Path) {
    std::fs::write(dir.join("template.gguf"), slow_chat_template()).expect("gguf");
    std::fs::write(dir.join("bomb.safetensors"), json_bomb()).expect("safetensors");
    std::fs::write(dir.join("entries.pt"), zip_directory_bomb(20_000)).expect("zip");
    std::fs::write(dir.join("prefix.pkl"), pickle_with_long_prefix(1 << 20)).expect("pickle");
}

fn string(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text);
}

/// A GGUF whose `tokenizer.chat_template` is 1 MiB of `{{` with no `{%` and no close:
/// a scan that looks for the next block from every position is quadratic in it.
#[must_use]
pub fn slow_chat_template() -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    string(&mut out, b"tokenizer.chat_template");
    out.extend_from_slice(&8u32.to_le_bytes());
    let template: Vec<u8> = b"{{ __".iter().copied().cycle().take(1 << 20).collect();
    string(&mut out, &template);
    out
}

/// A safetensors file whose JSON header declares 100,000 tensors.
#[must_use]
pub fn json_bomb() -> Vec<u8> {
    let mut json = String::from("{");
    for i in 0..100_000 {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(r#""t{i}":{{"dtype":"F32","shape":[1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}"#));
    }
    json.push('}');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&[0; 4]);
    out
}

/// A zip (named like a PyTorch checkpoint) with `entries` stored entries.
#[must_use]
pub fn zip_directory_bomb(entries: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for i in 0..entries {
        let name = format!("archive/data/{i}");
        let offset = out.len() as u32;
        out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        central.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let directory_at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    let count = u16::try_from(entries).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&directory_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// `prefix` bytes of `NONE, POP` pairs, then `os.system("id")`: the payload sits past
/// what a scanner that stops early looks at.
#[must_use]
pub fn pickle_with_long_prefix(prefix: usize) -> Vec<u8> {
    let mut out = b"\x80\x02".to_vec();
    out.extend(b"N0".iter().copied().cycle().take(prefix));
    out.extend_from_slice(b"cos\nsystem\n(S'id'\ntR.");
    out
}
