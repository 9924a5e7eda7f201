//! Writes the fuzz seed corpus (`fuzz/corpus/<target>/`) from the test builders:
//! `cargo run -p model-analysis --example fuzz_seeds -- model-analysis/fuzz/corpus`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::{env, fs};

use support::gguf_writer::{Gguf, Value};
use support::pickle_writer::{Pickle, stack_global_call, torch_checkpoint, torch_state_dict};
use support::zip_writer::{ZipEntry, pytorch_zip, zip};

fn main() -> std::io::Result<()> {
    let root = env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into());
    let root = Path::new(&root);
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)
    };

    let gguf = Gguf::new(3)
        .str("general.architecture", "llama")
        .str("general.license", "apache-2.0")
        .kv("general.file_type", Value::U32(15))
        .kv("general.tags", Value::Strs(vec!["text-generation".into()]))
        .str("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}")
        .kv("tokenizer.ggml.tokens", Value::Strs(vec!["<s>".into(), "a".into()]))
        .tensor("token_embd.weight", &[32, 2], 0, 0)
        .tensor("blk.0.attn_q.weight", &[256, 1], 12, 256);
    write("gguf", "v3_llama", &gguf.build(256 + 144))?;
    let v1 = Gguf::new(1).str("general.name", "old").kv("general.alignment", Value::U32(64));
    write("gguf", "v1_minimal", &v1.build(0))?;

    write(
        "safetensors",
        "two_tensors",
        &support::safetensors(
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]}}"#,
            &[0; 16],
        ),
    )?;

    write("pickle", "state_dict", &torch_state_dict())?;
    write("pickle", "stack_global_system", &stack_global_call("os", "system", "id"))?;
    write("pickle", "proto0_global", b"cos\nsystem\n(S'id'\ntR.")?;
    let memo = Pickle::new()
        .proto(2)
        .short_unicode("subprocess")
        .long_binput(7)
        .pop()
        .long_binget(7)
        .short_unicode("Popen")
        .stack_global()
        .mark()
        .unicode8("ls")
        .tuple()
        .reduce()
        .stop()
        .finish();
    write("pickle", "memo_indirection", &memo)?;
    write("pickle", "torch_checkpoint", &torch_checkpoint())?;
    // FRAME first, protocol 0 after a PROTO 2 stream, text numbers, a frame too short.
    write("pickle", "frame_first", &Pickle::new().framed(&Pickle::new().proto(4).raw(&memo[2..])).finish())?;
    let mut two = b"\x80\x02N.".to_vec();
    two.extend_from_slice(b"I010\nL1_0L\nF.5\n(S'o\\x73'\np 1_0\n0g010\nS'system'\n\x93(V\\u0069d\ntR.");
    write("pickle", "second_stream_text", &two)?;
    write(
        "pickle",
        "short_frame",
        &Pickle::new().proto(4).frame(9).raw(&stack_global_call("os", "system", "id")[2..]).finish(),
    )?;

    write("zip_container", "pytorch", &pytorch_zip("archive", &torch_state_dict()))?;
    let mut npy = support::npy_header("'|O'", "(1,)");
    npy.extend_from_slice(&stack_global_call("builtins", "exec", "x"));
    write(
        "zip_container",
        "npz_object",
        &zip(&[
            ZipEntry::deflated("a.npy", &npy),
            ZipEntry::stored("b.npy", &support::npy_header("'<f4'", "(0,)")),
        ]),
    )?;
    write(
        "zip_container",
        "keras",
        &zip(&[
            ZipEntry::deflated("config.json", br#"{"class_name":"Sequential","config":{"layers":[]}}"#),
            ZipEntry::stored("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
        ]),
    )?;
    Ok(())
}
