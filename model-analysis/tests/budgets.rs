//! Every analyser against the worst input we know how to make (`support/hostile.rs`):
//! each file must come out of the analysis with the findings that name what it is, and a
//! budget that runs out is a finding (`analysis_budget_exceeded`), never a pass. Benign
//! files shaped like real models must stay clean.
//!
//! Time is measured by `examples/hostile_bench.rs`, not here. These tests check what
//! is found: without a deadline where a deterministic budget must stop the file (so that
//! a loaded machine cannot change the outcome), and with a deadline of zero where a loop
//! must look at the clock.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use model_analysis::{
    DEFAULT_DEADLINE, FindingKind, Limits, ModelReport, Root, Severity, analyze_bytes, analyze_path,
};
use support::gguf_writer::{Gguf, Value};
use support::hostile::{LLAMA3_TEMPLATE, PAYLOAD, classes};
use support::zip_writer::{ZipEntry, zip, zip_with_prefix};

fn no_deadline() -> Limits {
    Limits { deadline: None, ..Limits::default() }
}

fn zero_deadline() -> Limits {
    Limits { deadline: Some(Duration::ZERO), ..Limits::default() }
}

fn budget_messages(report: &ModelReport) -> Vec<&str> {
    report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::AnalysisBudgetExceeded)
        .map(|f| f.message.as_str())
        .collect()
}

/// The time budget's finding, which must name the stage the clock stopped.
fn assert_stopped_by_the_clock(report: &ModelReport, stage: &str) {
    let messages = budget_messages(report);
    assert!(
        messages.iter().any(|m| m.starts_with("time budget (0 ms) exhausted in") && m.contains(stage)),
        "expected the time budget in {stage}: {:?}",
        report.findings
    );
    let f = report.findings.iter().find(|f| f.kind == FindingKind::AnalysisBudgetExceeded).expect("budget");
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn the_default_deadline_leaves_room_in_a_second() {
    assert_eq!(Limits::default().deadline, Some(DEFAULT_DEADLINE));
    assert!(DEFAULT_DEADLINE <= Duration::from_millis(750), "the hostile-file target is 1 s per analysis");
}

#[test]
fn every_file_class_comes_out_with_the_findings_that_name_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::host().expect("root");
    for class in classes() {
        let path = dir.path().join(class.file);
        (class.write)(&path).expect("write the file");
        let (report, _) = analyze_path(&root, &path, &no_deadline()).expect("analyse");
        fs::remove_file(&path).expect("remove");
        let name = class.name;
        for kind in class.expect {
            assert!(report.has_finding(*kind), "{name}: {kind:?} missing from {:?}", report.findings);
        }
        let budgets = budget_messages(&report);
        assert!(budgets.len() <= 8, "{name}: one finding per budget at most: {budgets:?}");
        match class.budget {
            Some(budget) => assert!(
                budgets.iter().any(|m| m.starts_with(budget) && m.contains(" exhausted in ")),
                "{name}: expected the {budget}: {:?}",
                report.findings
            ),
            None => assert!(budgets.is_empty(), "{name}: no budget should run out: {budgets:?}"),
        }
        if class.hostile {
            assert!(!report.findings.is_empty(), "{name}: a hostile file came out clean");
        } else {
            let loud: Vec<_> = report.findings.iter().filter(|f| f.severity > Severity::Low).collect();
            assert!(loud.is_empty(), "{name}: a benign file raised {loud:?}");
        }
    }
}

#[test]
fn benign_files_stay_clean_within_the_default_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::host().expect("root");
    for class in classes().into_iter().filter(|c| !c.hostile) {
        let path = dir.path().join(class.file);
        (class.write)(&path).expect("write the file");
        let (report, _) = analyze_path(&root, &path, &Limits::default()).expect("analyse");
        assert!(budget_messages(&report).is_empty(), "{}: {:?}", class.name, report.findings);
    }
}

// --- each loop that can run long looks at the clock ------------------------------------

#[test]
fn the_clock_stops_the_gguf_key_value_walk() {
    let mut g = Gguf::new(3);
    for i in 0..20_000 {
        g = g.kv(&format!("x.k{i}"), Value::U8(0));
    }
    let report = analyze_bytes(&g.build(0), None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "the GGUF key/value pairs");
}

#[test]
fn the_clock_stops_the_gguf_tensor_walk() {
    let mut g = Gguf::new(3);
    for i in 0..10_000u64 {
        g = g.tensor(&format!("t{i}"), &[32], 0, i * 128);
    }
    let report = analyze_bytes(&g.build(0), None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "the GGUF tensor infos");
}

#[test]
fn the_clock_stops_a_chat_template_but_what_was_read_is_scored() {
    let template = format!("{PAYLOAD}{}", "{{}}".repeat(256 * 1024));
    let g = Gguf::new(3).str("tokenizer.chat_template", &template);
    let report = analyze_bytes(&g.build(0), None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "a GGUF chat template");
    let risk = report.findings.iter().find(|f| f.kind == FindingKind::ChatTemplateRisk).expect("scored");
    let whole = format!("of {} bytes assessed", template.len());
    assert!(risk.message.contains("(first ") && risk.message.contains(&whole), "{}", risk.message);
}

#[test]
fn the_clock_stops_the_safetensors_header() {
    let mut header = String::from("{");
    for i in 0..20_000 {
        header.push_str(&format!(r#""t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{}]}},"#, i + 1));
    }
    header.push_str(r#""end":{"dtype":"U8","shape":[0],"data_offsets":[20000,20000]}}"#);
    let bytes = support::safetensors(&header, &[0; 20_000]);
    let report = analyze_bytes(&bytes, None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "the safetensors header");
}

#[test]
fn the_clock_stops_the_zip_directory_walk() {
    let entries: Vec<ZipEntry> = (0..5_000).map(|i| ZipEntry::stored(&format!("f{i}"), b"")).collect();
    let report = analyze_bytes(&zip(&entries), None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "the zip central directory");
}

#[test]
fn the_clock_stops_an_inflating_entry() {
    // Not a pickle (it stops at its first byte): the time goes into inflating the rest
    // for the size and CRC checks.
    let report =
        analyze_bytes(&zip(&[ZipEntry::deflated("data.pkl", &vec![0; 8 << 20])]), None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "the zip entries");
    assert!(
        !report.has_finding(FindingKind::ZipCrcMismatch),
        "a stopped entry is not checked: {:?}",
        report.findings
    );
}

#[test]
fn the_clock_stops_a_keras_config() {
    let mut config = br#"{"class_name":"Functional","config":{"layers":["#.to_vec();
    for _ in 0..20_000 {
        config.extend_from_slice(br#"{"class_name":"Dense","config":{}},"#);
    }
    config.extend_from_slice(br#"{"class_name":"Lambda"}]}}"#);
    let bytes = zip(&[
        ZipEntry::deflated("config.json", &config),
        ZipEntry::stored("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
    ]);
    let report = analyze_bytes(&bytes, Some(Path::new("m.keras")), &zero_deadline());
    assert_stopped_by_the_clock(&report, "the zip entries");
    assert!(!report.has_finding(FindingKind::MalformedHeader), "{:?}", report.findings);
}

#[test]
fn the_clock_stops_the_llamafile_page_probe() {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(8 << 20, 0);
    let report = analyze_bytes(&elf, None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "the executable's aligned offsets");
}

// --- the memory budget ----------------------------------------------------------------

fn small_memory() -> Limits {
    Limits { max_kept_bytes: 64 * 1024, deadline: None, ..Limits::default() }
}

fn assert_out_of_memory(report: &ModelReport, stage: &str) {
    let messages = budget_messages(report);
    assert!(
        messages.iter().any(|m| m.starts_with("memory budget (0.1 MiB) exhausted in") && m.contains(stage)),
        "expected the memory budget in {stage}: {:?}",
        report.findings
    );
}

#[test]
fn the_memory_budget_stops_the_gguf_tensor_table() {
    let mut g = Gguf::new(3);
    for i in 0..5_000u64 {
        g = g.tensor(&format!("t{i}"), &[32], 0, i * 128);
    }
    let report = analyze_bytes(&g.build(5_000 * 128), None, &small_memory());
    assert_out_of_memory(&report, "the GGUF tensor infos");
    assert_eq!(report.gguf.expect("gguf").parameter_count, None, "not the whole table");
}

#[test]
fn the_memory_budget_stops_the_safetensors_names() {
    let mut header = String::from("{");
    for i in 0..5_000 {
        header.push_str(&format!(r#""t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{}]}},"#, i + 1));
    }
    header.push_str(r#""end":{"dtype":"U8","shape":[0],"data_offsets":[5000,5000]}}"#);
    let report = analyze_bytes(&support::safetensors(&header, &[0; 5_000]), None, &small_memory());
    assert_out_of_memory(&report, "the safetensors header");
    assert!(!report.has_finding(FindingKind::SafetensorsOffsetGap), "{:?}", report.findings);
}

#[test]
fn the_memory_budget_stops_the_zip_directory() {
    let entries: Vec<ZipEntry> = (0..2_000).map(|i| ZipEntry::stored(&format!("f{i}"), b"")).collect();
    let report = analyze_bytes(&zip(&entries), None, &small_memory());
    assert_out_of_memory(&report, "the zip central directory");
}

// --- chat templates -------------------------------------------------------------------

#[test]
fn templates_longer_than_the_string_cap_are_still_assessed() {
    let template = format!("{}{PAYLOAD}", " ".repeat(3 << 20));
    let g = Gguf::new(3).str("tokenizer.chat_template", &template).str("general.name", "after");
    let report = analyze_bytes(&g.build(0), None, &no_deadline());
    assert!(report.has_finding(FindingKind::LengthExceedsLimit), "{:?}", report.findings);
    assert!(report.has_finding(FindingKind::ChatTemplateRisk), "{:?}", report.findings);
    let gguf = report.gguf.expect("gguf");
    assert_eq!(gguf.chat_templates[0].assessed, template.len() as u64);
    assert_eq!(gguf.chat_templates[0].sha256.len(), 64);
    assert_eq!(gguf.name.as_deref(), Some("after"));
}

#[test]
fn templates_past_the_shared_budget_are_a_finding() {
    let limits = Limits { max_template_bytes: 1000, ..no_deadline() };
    let g = Gguf::new(3)
        .str("tokenizer.chat_template", &" ".repeat(900))
        .str("tokenizer.chat_template.tool_use", &format!("{}{PAYLOAD}", " ".repeat(200)));
    let report = analyze_bytes(&g.build(0), None, &limits);
    let messages = budget_messages(&report);
    assert_eq!(messages.len(), 1, "{:?}", report.findings);
    let expected =
        format!("tokenizer.chat_template.tool_use assessed to byte 100 of {}", 200 + PAYLOAD.len());
    assert!(messages[0].contains(&expected), "{}", messages[0]);
    let listed = &report.gguf.expect("gguf").chat_templates;
    assert_eq!(listed[1].assessed, 100);
    assert!(listed[1].sha256.is_empty(), "no hash of a template not read whole");
}

#[test]
fn a_template_after_the_kv_cap_is_a_budget_finding_not_a_pass() {
    let limits = Limits { max_gguf_kv: 10, ..no_deadline() };
    let mut g = Gguf::new(3);
    for i in 0..10 {
        g = g.kv(&format!("x.k{i}"), Value::U8(0));
    }
    g = g.str("tokenizer.chat_template", PAYLOAD);
    let report = analyze_bytes(&g.build(0), None, &limits);
    assert!(!report.has_finding(FindingKind::ChatTemplateRisk));
    let messages = budget_messages(&report);
    assert!(messages.iter().any(|m| m.contains("the first 10 of 11 GGUF key/value pairs")), "{messages:?}");
}

#[test]
fn real_templates_in_real_files_are_quiet() {
    let g = Gguf::new(3).str("general.architecture", "llama").str("tokenizer.chat_template", LLAMA3_TEMPLATE);
    let report = analyze_bytes(&g.build(0), None, &Limits::default());
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

// --- zip ------------------------------------------------------------------------------

#[test]
fn the_entry_byte_budget_is_shared_and_refunded() {
    // Eight entries of 1 MiB each (and unsupported methods in between, which read
    // nothing) fit a 9 MiB budget only if what is not read is given back.
    let limits = Limits { max_inflated_bytes: 9 << 20, max_zip_entry_bytes: 2 << 20, ..no_deadline() };
    let mut entries = Vec::new();
    for i in 0..8 {
        entries.push(ZipEntry::deflated(&format!("p{i}.pkl"), &vec![b'N'; 1 << 20]));
        entries.push(ZipEntry { method: Some(12), ..ZipEntry::stored(&format!("b{i}.pkl"), b"x") });
    }
    let report = analyze_bytes(&zip(&entries), None, &limits);
    assert!(budget_messages(&report).is_empty(), "{:?}", report.findings);
    // A ninth and tenth do not.
    entries.push(ZipEntry::deflated("p8.pkl", &vec![b'N'; 1 << 20]));
    entries.push(ZipEntry::deflated("p9.pkl", &vec![b'N'; 1 << 20]));
    let report = analyze_bytes(&zip(&entries), None, &limits);
    let messages = budget_messages(&report);
    assert!(messages.iter().any(|m| m.starts_with("zip entry byte budget (9.0 MiB)")), "{messages:?}");
}

#[test]
fn a_deflate_stream_of_empty_blocks_is_bounded_by_the_clock() {
    // 4 MiB of empty stored blocks: no output for as long as the input lasts.
    let mut raw = Vec::new();
    for _ in 0..(4 << 20) / 5 {
        raw.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
    }
    raw.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    let mut bytes = zip(&[ZipEntry::stored("data.pkl", &raw)]);
    // Declare it deflated, in both headers.
    for sig in [0x0403_4b50u32, 0x0201_4b50u32] {
        let at = bytes.windows(4).position(|w| w == sig.to_le_bytes()).expect("header");
        let method_at = at + if sig == 0x0403_4b50 { 8 } else { 10 };
        bytes[method_at..method_at + 2].copy_from_slice(&8u16.to_le_bytes());
    }
    let report = analyze_bytes(&bytes, None, &zero_deadline());
    assert_stopped_by_the_clock(&report, "zip");
}

#[test]
fn a_flood_of_zip_findings_cannot_hide_a_payload() {
    let mut entries: Vec<ZipEntry> =
        (0..400).map(|i| ZipEntry { flags: 0x40, ..ZipEntry::stored(&format!("f{i}"), b"") }).collect();
    entries.push(ZipEntry::stored(
        "archive/data.pkl",
        &support::pickle_writer::stack_global_call("os", "system", "id"),
    ));
    let report = analyze_bytes(&zip(&entries), None, &no_deadline());
    assert!(report.has_finding(FindingKind::PickleDangerousImport), "{:?}", report.findings.len());
    assert_eq!(report.max_severity(), Some(Severity::Critical));
}

// --- llamafile ------------------------------------------------------------------------

#[test]
fn fake_magics_do_not_stand_for_the_model() {
    let real = Gguf::new(3).str("general.name", "real").build(0);
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(40 * 4096, 0);
    for page in 1..40 {
        let at = page * 4096;
        elf[at..at + 24].copy_from_slice(
            b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00\x00\x00",
        );
    }
    elf.extend_from_slice(&real);
    let report = analyze_bytes(&elf, None, &no_deadline());
    assert_eq!(report.gguf.expect("gguf").name.as_deref(), Some("real"));
}

#[test]
fn a_zip_of_many_fake_gguf_entries_is_a_budget_finding() {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(4096, 0);
    let mut entries: Vec<ZipEntry> =
        (0..20).map(|i| ZipEntry::stored(&format!("m{i}.gguf"), b"GGUF junk")).collect();
    entries.push(ZipEntry::stored("real.gguf", &Gguf::new(3).str("general.name", "real").build(0)));
    let report = analyze_bytes(&zip_with_prefix(&elf, &entries, 1), None, &no_deadline());
    let messages = budget_messages(&report);
    assert!(messages.iter().any(|m| m.contains("the first 16 .gguf entries")), "{:?}", report.findings);
}

// --- safetensors ----------------------------------------------------------------------

#[test]
fn safetensors_json_bombs() {
    // Numbers of a million digits, in a header of 2 MB.
    let digits = "9".repeat(1 << 20);
    let header = format!(r#"{{"a":{{"dtype":"U8","shape":[1],"data_offsets":[{digits},{digits}]}}}}"#);
    let report = analyze_bytes(&support::safetensors(&header, &[0]), None, &no_deadline());
    assert!(report.has_finding(FindingKind::MalformedHeader), "{:?}", report.findings);
    // Deep nesting inside __metadata__.
    let header = format!(r#"{{"__metadata__":{{"a":{}}}}}"#, "[".repeat(100_000));
    let report = analyze_bytes(&support::safetensors(&header, &[]), None, &no_deadline());
    assert!(report.has_finding(FindingKind::MalformedHeader), "{:?}", report.findings);
    // 100,000 tensors with size mismatches make four findings and a count.
    let mut header = String::from("{");
    for i in 0..100_000 {
        header.push_str(&format!(r#""t{i}":{{"dtype":"F32","shape":[3],"data_offsets":[0,4]}},"#));
    }
    header.push_str(r#""z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#);
    let report = analyze_bytes(&support::safetensors(&header, &[0; 4]), None, &no_deadline());
    let mismatches: Vec<_> =
        report.findings.iter().filter(|f| f.kind == FindingKind::SafetensorsSizeMismatch).collect();
    assert_eq!(mismatches.len(), 4, "{mismatches:?}");
    assert!(mismatches[3].message.ends_with("(and 99996 more like it)"), "{}", mismatches[3].message);
}
