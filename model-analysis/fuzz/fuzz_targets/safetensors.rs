#![no_main]

mod common;

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use model_analysis::{Format, analyze_as};

fuzz_target!(|data: &[u8]| {
    let report = analyze_as(&mut Cursor::new(data), data.len() as u64, Format::Safetensors, &common::limits());
    // Reports must always serialise: they travel in events.
    let _ = serde_json_size(&report);
});

fn serde_json_size(report: &model_analysis::ModelReport) -> usize {
    format!("{report:?}").len()
}
