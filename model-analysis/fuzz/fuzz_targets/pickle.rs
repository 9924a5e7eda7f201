#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use model_analysis::pickle::{check_prefix, scan_pickle_bytes};

fuzz_target!(|data: &[u8]| {
    let _ = check_prefix(data);
    let _ = model_analysis::sniff(data);
    let (report, findings) = scan_pickle_bytes(data, &common::limits());
    // Every stream that did not end cleanly must have left a finding (fail closed).
    if report.streams.iter().any(|s| !s.complete) {
        assert!(!findings.is_empty(), "incomplete stream without a finding");
    }
});
