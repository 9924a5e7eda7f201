#![no_main]

mod common;

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use model_analysis::{Format, analyze_as};

fuzz_target!(|data: &[u8]| {
    let report = analyze_as(&mut Cursor::new(data), data.len() as u64, Format::Gguf, &common::limits());
    // Reports travel in events: whatever the input, they must serialise.
    serde_json::to_string(&report).expect("report serialises");
});
