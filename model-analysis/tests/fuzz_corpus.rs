//! The committed fuzz seeds, and every input a fuzzer ever crashed on, run through the
//! parsers on each `cargo test`: a regression comes back as a test failure, not as a
//! fuzzing session.

use std::fs;
use std::io::Cursor;
use std::path::Path;

use model_analysis::pickle::scan_pickle_bytes;
use model_analysis::{Format, Limits, analyze_as, analyze_bytes};

fn run_all(bytes: &[u8]) {
    let limits = Limits::default();
    for format in [Format::Gguf, Format::Safetensors, Format::Zip, Format::Pickle] {
        let report = analyze_as(&mut Cursor::new(bytes), bytes.len() as u64, format, &limits);
        serde_json::to_string(&report).expect("reports serialise");
    }
    let _ = scan_pickle_bytes(bytes, &limits);
    let _ = analyze_bytes(bytes, Some(Path::new("x.bin")), &limits);
}

#[test]
fn committed_seeds_do_not_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut seen = 0;
    for target in fs::read_dir(&corpus).expect("fuzz/corpus") {
        for seed in fs::read_dir(target.expect("entry").path()).expect("target dir") {
            let bytes = fs::read(seed.expect("seed").path()).expect("read seed");
            run_all(&bytes);
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} seeds");
}
