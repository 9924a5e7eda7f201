//! Zip-based formats, llamafiles, archives, other formats, and mislabelled files.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use model_analysis::{ContainerKind, FindingKind, Format, Limits, ModelReport, Severity, analyze_bytes};
use support::gguf_writer::Gguf;
use support::pickle_writer::{stack_global_call, torch_state_dict};
use support::zip_writer::{ZipEntry, pytorch_zip, zip, zip_with_prefix};

fn analyze(bytes: &[u8], name: &str) -> ModelReport {
    analyze_bytes(bytes, Some(Path::new(name)), &Limits::default())
}

fn severities_above_info(report: &ModelReport) -> Vec<(FindingKind, Severity)> {
    report.findings.iter().filter(|f| f.severity > Severity::Info).map(|f| (f.kind, f.severity)).collect()
}

#[test]
fn pytorch_zip_benign() {
    let report = analyze(&pytorch_zip("archive", &torch_state_dict()), "pytorch_model.bin");
    assert_eq!(report.format, Format::PytorchZip);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let container = report.container.as_ref().expect("container");
    assert_eq!(container.kind, ContainerKind::Zip);
    assert_eq!(container.entry_count, 4);
    let pickle = report.pickle.as_ref().expect("pickle");
    assert_eq!(pickle.streams[0].origin, "archive/data.pkl");
    assert!(pickle.streams[0].complete);
}

#[test]
fn pytorch_zip_with_payload() {
    let report = analyze(&pytorch_zip("model", &stack_global_call("os", "system", "id")), "model.pt");
    assert_eq!(report.format, Format::PytorchZip);
    assert_eq!(report.max_severity(), Some(Severity::Critical));
    // Every .pkl entry is walked, not just data.pkl.
    let bytes = zip(&[
        ZipEntry::stored("archive/data.pkl", &torch_state_dict()),
        ZipEntry::deflated("archive/extra/constants.pkl", &stack_global_call("runpy", "_run_code", "x")),
    ]);
    let report = analyze(&bytes, "model.pt");
    assert!(report.has_finding(FindingKind::PickleDangerousImport), "{:?}", report.findings);
}

#[test]
fn zip_bomb_inside_a_pytorch_archive() {
    // data.pkl: a valid pickle whose BINBYTES8 payload is 64 MiB of zeros, deflated to
    // about 64 KiB. Walking it must stop at the caps (lowered here so the debug build
    // stays quick), in bounded time and memory.
    let limits = Limits { max_zip_entry_bytes: 8 << 20, max_pickle_bytes: 8 << 20, ..Limits::default() };
    let payload_len: u64 = 64 << 20;
    let mut pkl = vec![0x80, 0x04, 0x8e];
    pkl.extend_from_slice(&payload_len.to_le_bytes());
    pkl.resize(pkl.len() + payload_len as usize, 0);
    pkl.push(b'.');
    let bytes =
        zip(&[ZipEntry::deflated("archive/data.pkl", &pkl), ZipEntry::stored("archive/version", b"3\n")]);
    drop(pkl);
    assert!(bytes.len() < 2 << 20, "bomb is {} bytes", bytes.len());
    let started = Instant::now();
    let report = analyze_bytes(&bytes, Some(Path::new("model.pt")), &limits);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(report.format, Format::PytorchZip);
    let bomb = report.findings.iter().find(|f| f.kind == FindingKind::ZipBomb).expect("zip bomb");
    assert!(bomb.message.contains("ratio"), "{}", bomb.message);
    assert!(report.has_finding(FindingKind::ZipBomb), "{:?}", report.findings);
    assert!(report.has_finding(FindingKind::PickleResourceLimit), "{:?}", report.findings);
}

#[test]
fn overlapping_entries_are_a_zip_bomb() {
    let mut bytes =
        zip(&[ZipEntry::stored("a.pkl", b"\x80\x02N."), ZipEntry::stored("b.pkl", b"\x80\x02N.")]);
    // Point the second central record's local header offset at the first entry.
    let second = bytes.windows(4).rposition(|w| w == 0x0201_4b50u32.to_le_bytes()).expect("record");
    bytes[second + 42..second + 46].copy_from_slice(&0u32.to_le_bytes());
    let report = analyze(&bytes, "x.zip");
    assert!(report.has_finding(FindingKind::ZipBomb), "{:?}", report.findings);
}

#[test]
fn zip_tricks_are_findings() {
    let pkl = stack_global_call("os", "system", "id");
    let mut encrypted = ZipEntry::stored("archive/data.pkl", &pkl);
    encrypted.flags = 1;
    let mut bad_crc = ZipEntry::stored("archive/data.pkl", &pkl);
    bad_crc.crc = Some(0xdead_beef);
    let mut renamed = ZipEntry::stored("archive/data.pkl", &pkl);
    renamed.local_name = Some("archive/data.pkx".into());
    let mut odd = ZipEntry::stored("archive/data.pkl", &pkl);
    odd.flags = 1 << 13;
    for (entry, kind) in [
        (encrypted, FindingKind::ZipAnomaly),
        (bad_crc, FindingKind::ZipCrcMismatch),
        (renamed, FindingKind::ZipAnomaly),
        (odd, FindingKind::ZipAnomaly),
    ] {
        let report = analyze(&zip(&[entry]), "model.pt");
        assert!(report.has_finding(kind), "{kind:?}: {:?}", report.findings);
        // The payload is still seen: the trick does not hide it.
        assert!(report.has_finding(FindingKind::PickleDangerousImport), "{:?}", report.findings);
    }
    let dup = zip(&[
        ZipEntry::stored("archive/data.pkl", &torch_state_dict()),
        ZipEntry::stored("archive/data.pkl", &pkl),
    ]);
    let report = analyze(&dup, "model.pt");
    assert!(report.findings.iter().any(|f| f.kind == FindingKind::ZipAnomaly && f.message.contains("twice")));
    assert!(report.has_finding(FindingKind::PickleDangerousImport));

    let mut bzip = ZipEntry::stored("archive/data.pkl", &pkl);
    bzip.method = Some(12);
    let report = analyze(&zip(&[bzip]), "model.pt");
    let f = report.findings.iter().find(|f| f.kind == FindingKind::UnsupportedContainer).expect("finding");
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn npz_and_npy_object_arrays() {
    let mut object = support::npy_header("'|O'", "(1,)");
    object.extend_from_slice(&stack_global_call("builtins", "exec", "x"));
    let mut floats = support::npy_header("'<f4'", "(2,)");
    floats.extend_from_slice(&[0; 8]);
    let report = analyze(&zip(&[ZipEntry::stored("w.npy", &floats)]), "arrays.npz");
    assert_eq!(report.format, Format::NumpyZip);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.numpy.as_ref().expect("numpy").arrays[0].shape, [2]);

    let report = analyze(
        &zip(&[ZipEntry::deflated("w.npy", &floats), ZipEntry::deflated("o.npy", &object)]),
        "arrays.npz",
    );
    assert_eq!(report.format, Format::NumpyZip);
    assert!(report.has_finding(FindingKind::NumpyObjectArray));
    assert!(report.has_finding(FindingKind::PickleDangerousImport), "{:?}", report.findings);

    let report = analyze(&object, "array.npy");
    assert_eq!(report.format, Format::Numpy);
    assert!(report.has_finding(FindingKind::NumpyObjectArray));
    assert!(report.has_finding(FindingKind::PickleDangerousImport), "{:?}", report.findings);
    let report = analyze(&floats, "array.npy");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn keras_archives() {
    let weights = ZipEntry::stored("model.weights.h5", b"\x89HDF\r\n\x1a\n");
    let plain = ZipEntry::deflated(
        "config.json",
        br#"{"class_name":"Sequential","config":{"layers":[{"class_name":"Dense"}]}}"#,
    );
    let report = analyze(&zip(&[plain, weights.clone()]), "m.keras");
    assert_eq!(report.format, Format::Keras);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let lambda = ZipEntry::deflated(
        "config.json",
        br#"{"class_name":"Functional","config":{"layers":[{"class_name":"Lambda","config":{"function":"4wEAAAAA"}}]}}"#,
    );
    let report = analyze(&zip(&[lambda, weights]), "m.keras");
    assert!(report.has_finding(FindingKind::KerasLambdaLayer), "{:?}", report.findings);
}

#[test]
fn plain_zip_is_not_a_model() {
    let report = analyze(&zip(&[ZipEntry::deflated("readme.txt", b"hello")]), "weights.bin");
    assert_eq!(report.format, Format::Zip);
    assert!(!report.format.is_model());
    let f = report.findings.iter().find(|f| f.kind == FindingKind::ExtensionMismatch).expect("mismatch");
    assert_eq!(f.severity, Severity::Medium);
}

#[test]
fn llamafile_with_gguf_in_its_zip() {
    let gguf =
        Gguf::new(3).str("general.architecture", "llama").str("general.license", "apache-2.0").build(0);
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(10_000, 0x90);
    let bytes = zip_with_prefix(
        &elf,
        &[ZipEntry::stored(".args", b"-m\nmodel.gguf\n"), ZipEntry::stored("model.gguf", &gguf)],
        4096,
    );
    let report = analyze(&bytes, "tinyllama.llamafile");
    assert_eq!(report.format, Format::Llamafile, "{:?}", report.findings);
    let offset = report.container.as_ref().and_then(|c| c.embedded_offset).expect("offset");
    assert_eq!(offset % 4096, 0);
    assert!(report.has_finding(FindingKind::EmbeddedInExecutable));
    let g = report.gguf.expect("gguf");
    assert_eq!(g.license.as_deref(), Some("apache-2.0"));
    assert_eq!(g.offset, offset);
    assert!(!report.findings.iter().any(|f| f.severity > Severity::Low), "{:?}", report.findings);
}

#[test]
fn ape_with_gguf_at_an_aligned_offset() {
    let mut bytes = b"MZqFpD='\n".to_vec();
    bytes.resize(3 * 4096, b'A');
    bytes.extend_from_slice(&Gguf::new(2).str("general.name", "embedded").build(0));
    let report = analyze(&bytes, "model.exe");
    assert_eq!(report.format, Format::Llamafile);
    assert_eq!(report.gguf.expect("gguf").name.as_deref(), Some("embedded"));
    // An executable without a GGUF is not a model, and not noisy.
    let mut plain = b"\x7fELF\x02\x01\x01".to_vec();
    plain.resize(50_000, 0);
    let report = analyze(&plain, "ls");
    assert_eq!(report.format, Format::Unknown);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn archives_that_cannot_be_opened() {
    let seven = b"7z\xBC\xAF\x27\x1C\x00\x04rest of a 7z archive";
    let report = analyze(seven, "model.pt");
    assert_eq!(report.format, Format::SevenZip);
    assert!(report.has_finding(FindingKind::UnsupportedContainer));
    let mismatch =
        report.findings.iter().find(|f| f.kind == FindingKind::ExtensionMismatch).expect("mismatch");
    assert_eq!(mismatch.severity, Severity::High);
    let report = analyze(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "weights.tar.gz");
    assert_eq!(report.format, Format::CompressedArchive);
    assert_eq!(report.container.expect("container").kind, ContainerKind::Gzip);
}

#[test]
fn mislabelled_files() {
    let report = analyze(&stack_global_call("os", "system", "id"), "model.safetensors");
    assert_eq!(report.format, Format::Pickle);
    let f = report.findings.iter().find(|f| f.kind == FindingKind::ExtensionMismatch).expect("mismatch");
    assert_eq!(f.severity, Severity::High);
    assert!(report.has_finding(FindingKind::PickleDangerousImport));

    let st = support::safetensors(r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#, &[1, 2]);
    let report = analyze(&st, "model.gguf");
    assert_eq!(report.format, Format::Safetensors);
    assert!(report.has_finding(FindingKind::ExtensionMismatch));

    let report = analyze(&pytorch_zip("archive", &torch_state_dict()), "model.safetensors");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::ExtensionMismatch && f.severity == Severity::High)
    );
}

#[test]
fn safetensors_with_metadata_and_bad_layouts() {
    let st = support::safetensors(
        r#"{"__metadata__":{"format":"pt","license":"apache-2.0"},"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    let report = analyze(&st, "model.safetensors");
    assert_eq!(report.format, Format::Safetensors);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let info = report.safetensors.expect("info");
    assert_eq!(info.metadata["license"], "apache-2.0");
    assert_eq!(info.parameter_count, 4);

    let overlap = support::safetensors(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        &[0; 6],
    );
    assert!(analyze(&overlap, "m.safetensors").has_finding(FindingKind::SafetensorsOverlap));
    let out_of_bounds =
        support::safetensors(r#"{"a":{"dtype":"U8","shape":[64],"data_offsets":[0,64]}}"#, &[0; 8]);
    assert!(analyze(&out_of_bounds, "m.safetensors").has_finding(FindingKind::SafetensorsOutOfBounds));
    let mismatch = support::safetensors(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &[0; 8]);
    assert!(analyze(&mismatch, "m.safetensors").has_finding(FindingKind::SafetensorsSizeMismatch));

    // A header length claiming 99 MB in a tiny file: truncated, no 99 MB allocation.
    let mut lying = 99_000_000u64.to_le_bytes().to_vec();
    lying.extend_from_slice(b"{\"a\":1}");
    assert!(analyze(&lying, "m.safetensors").has_finding(FindingKind::TruncatedHeader));
    let mut huge = 200_000_000u64.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    let report = analyze_bytes(&huge, None, &Limits::default());
    assert_eq!(report.format, Format::Unknown, "above the reference cap it does not sniff as safetensors");
}

#[test]
fn other_model_formats_are_recognised() {
    let onnx = b"\x08\x08\x12\x07pytorch\x1a\x052.3.1:\x8a\x01\x0a\x05input";
    assert_eq!(analyze(onnx, "m.onnx").format, Format::Onnx);
    assert_eq!(analyze(b"\x18\x00\x00\x00TFL3\x00\x00\x0e\x00", "m.tflite").format, Format::Tflite);
    let report = analyze(b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00", "m.h5");
    assert_eq!(report.format, Format::Hdf5);
    assert!(report.format.is_model());
    assert!(report.findings.is_empty());
}

#[test]
fn random_and_text_files_are_quiet() {
    let text = "The quick brown fox. (Not a pickle.)\n".repeat(100);
    let report = analyze(text.as_bytes(), "notes.txt");
    assert_eq!(report.format, Format::Unknown);
    assert!(severities_above_info(&report).is_empty(), "{:?}", report.findings);
    let report = analyze(&[0xAB; 10_000], "blob");
    assert_eq!(report.format, Format::Unknown);
    assert!(report.findings.is_empty());
}

#[test]
fn reports_serialise_as_snake_case_json() {
    let report = analyze(&pytorch_zip("archive", &stack_global_call("os", "system", "id")), "model.pt");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["format"], "pytorch_zip");
    assert_eq!(json["container"]["kind"], "zip");
    assert_eq!(json["pickle"]["imports"][0]["verdict"], "dangerous");
    assert!(
        json["findings"].as_array().expect("findings").iter().any(|f| f["kind"] == "pickle_dangerous_import")
    );
}
