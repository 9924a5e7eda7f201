//! Figures for the analysis layer (a benchmark, not a test). Run in release:
//!
//! `cargo run --release -p model-analysis --example analysis_bench`
//!
//! 1. identify + metadata of a sparse 4 GiB GGUF with 1,000 KV pairs (target < 10 ms),
//!    and of one with a realistic 128k-token vocabulary;
//! 2. SHA-256 throughput over a cached 1 GiB file (target >= 1.5 GB/s on one core);
//! 3. analysis of 10,000 small non-model files (files per second).
//!
//! Files go to a temporary directory (`TMPDIR`), removed at the end.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use model_analysis::{FileStamp, HashBudget, Limits, analyze_path, sha256_file};
use support::gguf_writer::{Gguf, Value};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn sparse_gguf(path: &Path, kvs: usize, vocab: usize) {
    let mut g = Gguf::new(3)
        .str("general.architecture", "llama")
        .str("general.name", "bench")
        .str("general.license", "apache-2.0")
        .kv("general.file_type", Value::U32(15));
    if vocab > 0 {
        g = g.kv("tokenizer.ggml.tokens", Value::Strs((0..vocab).map(|i| format!("token-{i}")).collect()));
    }
    for i in g.kvs.len()..kvs {
        g = g.kv(&format!("bench.key.{i}"), Value::U32(u32::try_from(i).unwrap_or(0)));
    }
    // 291 tensors of a 7B-like layout (names only; the data is a hole in the file).
    for i in 0..291u64 {
        g = g.tensor(&format!("blk.{i}.weight"), &[4096, 4096], 12, i * 9_437_184);
    }
    let header = g.build(0);
    fs::write(path, &header).expect("write gguf");
    OpenOptions::new().write(true).open(path).expect("open").set_len(4 << 30).expect("sparse");
}

fn bench_gguf(dir: &Path, kvs: usize, vocab: usize) -> Duration {
    let path = dir.join(format!("sparse-{kvs}-{vocab}.gguf"));
    sparse_gguf(&path, kvs, vocab);
    let limits = Limits::default();
    let root = model_analysis::Root::host().expect("root");
    let samples = (0..31)
        .map(|_| {
            let started = Instant::now();
            let (report, _) = analyze_path(&root, &path, &limits).expect("analyze");
            let elapsed = started.elapsed();
            assert!(report.gguf.is_some_and(|g| g.kv_count == kvs as u64));
            elapsed
        })
        .collect();
    fs::remove_file(&path).expect("remove");
    median(samples)
}

fn bench_sha256(dir: &Path) -> f64 {
    let path = dir.join("one-gib.bin");
    let mut f = File::create(&path).expect("create");
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for _ in 0..1024 {
        f.write_all(&block).expect("write");
    }
    f.sync_all().expect("sync");
    drop(f);
    let file = File::open(&path).expect("open");
    let stamp = FileStamp::of(&file).expect("stat");
    // The first pass warms the page cache; it is not counted.
    sha256_file(&file, &stamp, &HashBudget::default()).expect("hash");
    let samples = (0..5)
        .map(|_| {
            let started = Instant::now();
            sha256_file(&file, &stamp, &HashBudget::default()).expect("hash");
            started.elapsed()
        })
        .collect();
    fs::remove_file(&path).expect("remove");
    (1u64 << 30) as f64 / median(samples).as_secs_f64() / 1e9
}

fn bench_small_files(dir: &Path) -> f64 {
    let small = dir.join("small");
    fs::create_dir_all(&small).expect("mkdir");
    let mut paths = Vec::new();
    for i in 0..10_000u32 {
        let path = small.join(format!("file-{i}.txt"));
        let len = 512 + (i as usize * 37) % 3584;
        let body: Vec<u8> =
            (0..len).map(|j| b"lorem ipsum dolor sit amet, "[(j + i as usize) % 28]).collect();
        fs::write(&path, body).expect("write");
        paths.push(path);
    }
    let limits = Limits::default();
    let root = model_analysis::Root::host().expect("root");
    let samples = (0..3)
        .map(|_| {
            let started = Instant::now();
            for path in &paths {
                let (report, _) = analyze_path(&root, path, &limits).expect("analyze");
                assert!(!report.format.is_model());
            }
            started.elapsed()
        })
        .collect();
    fs::remove_dir_all(&small).expect("cleanup");
    paths.len() as f64 / median(samples).as_secs_f64()
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = bench_gguf(dir.path(), 1000, 0);
    println!(
        "sparse 4 GiB GGUF, 1,000 KV pairs, 291 tensors: median {:.3} ms (target < 10 ms)",
        gguf.as_secs_f64() * 1e3
    );
    let vocab = bench_gguf(dir.path(), 1000, 128_000);
    println!("same with a 128,000-token vocabulary array: median {:.3} ms", vocab.as_secs_f64() * 1e3);
    let gbps = bench_sha256(dir.path());
    println!("SHA-256 of a cached 1 GiB file, one core: median {gbps:.2} GB/s (target >= 1.5 GB/s)");
    let files = bench_small_files(dir.path());
    println!("10,000 small non-model files: median {files:.0} files/s");
}
