//! GGUF metadata extraction and hostile GGUF headers.

mod support;

use std::time::{Duration, Instant};

use model_analysis::{FindingKind, Format, Limits, ModelReport, Severity, analyze_bytes};
use support::gguf_writer::{Gguf, Value};

fn analyze(bytes: &[u8]) -> ModelReport {
    analyze_bytes(bytes, Some(std::path::Path::new("model.gguf")), &Limits::default())
}

fn llama(license: &str) -> Gguf {
    llama_with_vocab(license, 1000)
}

fn llama_with_vocab(license: &str, vocab: u32) -> Gguf {
    Gguf::new(3)
        .str("general.architecture", "llama")
        .str("general.name", "Meta Llama 3.1 8B Instruct")
        .str("general.organization", "Meta Llama")
        .str("general.basename", "Meta-Llama-3.1")
        .str("general.finetune", "Instruct")
        .str("general.size_label", "8B")
        .str("general.license", license)
        .str("general.license.link", "https://example.org/license")
        .str("general.base_model.0.name", "Llama 3.1 8B")
        .str("general.base_model.0.repo_url", "https://example.org/meta-llama/Llama-3.1-8B")
        .kv("general.file_type", Value::U32(15))
        .kv("general.quantization_version", Value::U32(2))
        .kv("general.tags", Value::Strs(vec!["text-generation".into(), "llama".into()]))
        .kv("llama.context_length", Value::U32(131_072))
        .kv("llama.rope.freq_base", Value::F32(500_000.0))
        .kv("tokenizer.ggml.tokens", Value::Strs((0..vocab).map(|i| format!("tok{i}")).collect()))
        .kv("tokenizer.ggml.token_type", Value::U32s(vec![1; vocab as usize]))
        .str(
            "tokenizer.chat_template",
            "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}{% endfor %}",
        )
        // 32 x 4 F32 = 512 bytes at 0; 256 x 2 Q4_K = 288 bytes at 512.
        .tensor("token_embd.weight", &[32, 4], 0, 0)
        .tensor("blk.0.attn_q.weight", &[256, 2], 12, 512)
}

#[test]
fn governance_metadata_for_three_licenses() {
    for license in ["apache-2.0", "cc-by-nc-4.0", "llama3"] {
        let report = analyze(&llama(license).build(800));
        assert_eq!(report.format, Format::Gguf);
        assert!(report.findings.is_empty(), "{license}: {:?}", report.findings);
        let g = report.gguf.expect("gguf info");
        assert_eq!(g.version, 3);
        assert_eq!(g.license.as_deref(), Some(license));
        assert_eq!(g.architecture.as_deref(), Some("llama"));
        assert_eq!(g.name.as_deref(), Some("Meta Llama 3.1 8B Instruct"));
        assert_eq!(g.file_type, Some(15));
        assert_eq!(g.quantization.as_deref(), Some("Q4_K_M"));
        assert_eq!(g.tensor_count, 2);
        assert_eq!(g.kv_count, 18);
        assert_eq!(g.parameter_count, Some(32 * 4 + 256 * 2));
        assert_eq!(g.general["general.organization"].as_str(), Some("Meta Llama"));
        assert_eq!(g.general["general.base_model.0.name"].as_str(), Some("Llama 3.1 8B"));
        assert_eq!(g.general["general.quantization_version"].as_u64(), Some(2));
        assert_eq!(g.general["general.tags"].to_string(), r#"["text-generation","llama"]"#);
        assert!(!g.general.contains_key("llama.context_length"), "non-governance keys are skipped");
        assert_eq!(g.chat_templates.len(), 1);
        assert_eq!(g.chat_templates[0].risk_score, 0);
        assert_eq!(g.chat_templates[0].sha256.len(), 64);
    }
}

#[test]
fn gguf_v1_uses_32_bit_counts() {
    let bytes = Gguf::new(1)
        .str("general.architecture", "llama")
        .str("general.license", "mit")
        .kv("tokenizer.ggml.tokens", Value::Strs(vec!["a".into(), "b".into()]))
        .tensor("w", &[4], 0, 0)
        .build(16);
    let report = analyze(&bytes);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let g = report.gguf.expect("gguf");
    assert_eq!(g.version, 1);
    assert_eq!(g.license.as_deref(), Some("mit"));
    assert_eq!(g.parameter_count, Some(4));
}

#[test]
fn risky_chat_template_is_a_finding() {
    let bytes = Gguf::new(3)
        .str("tokenizer.chat_template", "{{ cycler.__init__.__globals__.os.popen('id').read() }}")
        .build(0);
    let report = analyze(&bytes);
    let finding = report.findings.iter().find(|f| f.kind == FindingKind::ChatTemplateRisk).expect("finding");
    assert_eq!(finding.severity, Severity::High);
    let template = &report.chat_templates()[0];
    assert!(template.constructs.iter().any(|c| c.contains("__globals__")), "{template:?}");
}

#[test]
fn every_truncation_of_a_header_is_a_finding_not_a_panic() {
    let bytes = llama_with_vocab("mit", 8).build(800);
    let header_len = llama_with_vocab("mit", 8).header().len();
    for cut in 0..header_len {
        let report = analyze(&bytes[..cut]);
        if cut >= 4 {
            assert_eq!(report.format, Format::Gguf, "cut {cut}");
            assert!(report.has_finding(FindingKind::TruncatedHeader), "cut at {cut}: {:?}", report.findings);
        }
    }
}

#[test]
fn u64_max_counts_are_rejected() {
    for (tensors, kvs) in [(u64::MAX, 0), (0, u64::MAX), (u64::MAX, u64::MAX)] {
        let mut g = Gguf::new(3).str("general.name", "x");
        g.tensor_count = Some(tensors);
        g.kv_count = Some(kvs);
        let report = analyze(&g.build(0));
        assert!(report.has_finding(FindingKind::CountExceedsLimit), "{:?}", report.findings);
    }
}

#[test]
fn ten_million_kv_pairs_are_rejected_quickly_by_the_cap() {
    let mut g = Gguf::new(3).str("general.name", "x");
    g.kv_count = Some(10_000_000);
    // Enough real bytes that the count is not implausible on size alone: the cap, not
    // the file size, must stop it.
    let bytes = g.build(200_000_000 / 1000);
    let started = Instant::now();
    let report = analyze(&bytes);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    let f = report.findings.iter().find(|f| f.kind == FindingKind::CountExceedsLimit).expect("cap finding");
    assert!(f.message.contains("10000000"), "{}", f.message);
}

#[test]
fn plausible_count_but_short_file_is_truncated() {
    let mut g = Gguf::new(3).str("general.name", "x");
    g.kv_count = Some(60_000);
    let report = analyze(&g.build(0));
    assert!(report.has_finding(FindingKind::TruncatedHeader), "{:?}", report.findings);
}

#[test]
fn strings_longer_than_the_file() {
    let mut bytes = Gguf::new(3).build(0);
    bytes.truncate(24);
    bytes[16..24].copy_from_slice(&1u64.to_le_bytes()); // one KV
    bytes.extend_from_slice(&u64::MAX.to_le_bytes()); // key length
    bytes.extend_from_slice(b"general.name");
    let report = analyze(&bytes);
    assert!(report.has_finding(FindingKind::TruncatedHeader), "{:?}", report.findings);

    // A value string longer than the file.
    let mut bytes = Gguf::new(3).str("general.name", "abc").header();
    let len_at = bytes.len() - 3 - 8;
    bytes[len_at..len_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let report = analyze(&bytes);
    assert!(report.has_finding(FindingKind::TruncatedHeader), "{:?}", report.findings);
}

#[test]
fn long_strings_are_skipped_with_a_finding() {
    let limits = Limits { max_string: 1024, ..Limits::default() };
    let bytes =
        Gguf::new(3).str("tokenizer.chat_template", &"x".repeat(4096)).str("general.name", "after").build(0);
    let report = analyze_bytes(&bytes, None, &limits);
    assert!(report.has_finding(FindingKind::LengthExceedsLimit), "{:?}", report.findings);
    assert_eq!(report.gguf.expect("gguf").name.as_deref(), Some("after"), "parsing continues after the skip");
}

#[test]
fn huge_arrays_and_bad_types() {
    // An array of u64::MAX u32 elements: rejected by the element cap.
    let mut bytes = Gguf::new(3).kv("x.arr", Value::U32s(vec![1])).header();
    let count_at = bytes.len() - 4 - 8;
    bytes[count_at..count_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(analyze(&bytes).has_finding(FindingKind::CountExceedsLimit));

    // Element count under the cap but past the end of the file.
    bytes[count_at..count_at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    assert!(analyze(&bytes).has_finding(FindingKind::TruncatedHeader));

    // Unknown value type 13.
    let mut bytes = Gguf::new(3).kv("x.v", Value::U32(1)).header();
    let type_at = bytes.len() - 4 - 4;
    bytes[type_at..type_at + 4].copy_from_slice(&13u32.to_le_bytes());
    assert!(analyze(&bytes).has_finding(FindingKind::MalformedHeader));
}

#[test]
fn nested_arrays_are_bounded() {
    // key, type ARRAY, then 10,000 levels of "array of arrays, count 1".
    let mut bytes = Gguf::new(3).header();
    bytes[16..24].copy_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&5u64.to_le_bytes());
    bytes.extend_from_slice(b"x.arr");
    bytes.extend_from_slice(&9u32.to_le_bytes());
    for _ in 0..10_000 {
        bytes.extend_from_slice(&9u32.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
    }
    let report = analyze(&bytes);
    assert!(report.has_finding(FindingKind::MalformedHeader), "{:?}", report.findings);
}

#[test]
fn unsupported_versions() {
    let mut bytes = Gguf::new(3).build(0);
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    let report = analyze(&bytes);
    let f = report.findings.iter().find(|f| f.kind == FindingKind::UnsupportedVersion).expect("finding");
    assert!(f.message.contains("big-endian"), "{}", f.message);
    bytes[4..8].copy_from_slice(&4u32.to_le_bytes());
    assert!(analyze(&bytes).has_finding(FindingKind::UnsupportedVersion));
}

#[test]
fn tensor_data_outside_the_file() {
    let g = Gguf::new(3).tensor("w", &[1024, 1024], 0, 0);
    let report = analyze(&g.build(4096));
    assert!(report.has_finding(FindingKind::TensorOutOfBounds), "{:?}", report.findings);
    // Dimensions whose product overflows.
    let g = Gguf::new(3).tensor("w", &[u64::MAX, 4], 0, 0);
    assert!(analyze(&g.build(0)).has_finding(FindingKind::MalformedHeader));
    // Too many dimensions.
    let g = Gguf::new(3).tensor("w", &[1, 1, 1, 1, 1], 0, 0);
    assert!(analyze(&g.build(0)).has_finding(FindingKind::MalformedHeader));
}

#[test]
fn deadline_stops_a_long_walk() {
    let limits = Limits { deadline: Some(Duration::ZERO), ..Limits::default() };
    let g =
        Gguf::new(3).kv("tokenizer.ggml.tokens", Value::Strs((0..20_000).map(|i| i.to_string()).collect()));
    let report = analyze_bytes(&g.build(0), None, &limits);
    let f = report.findings.iter().find(|f| f.kind == FindingKind::AnalysisBudgetExceeded).expect("budget");
    assert!(
        f.message.starts_with("time budget (0 ms) exhausted in the GGUF key/value pairs at offset"),
        "{}",
        f.message
    );
}
