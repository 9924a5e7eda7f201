//! What a model file is, read by content and never executed: format sniffing, header
//! metadata, pickle opcode analysis. Every parser here reads attacker-controlled bytes
//! as root: lengths and counts are capped, nothing allocates from an unchecked length,
//! and anything odd becomes a [`Finding`] rather than an error that hides the file.
//!
//! Every analysis also runs within budgets ([`Limits`]): a deadline checked inside every
//! loop that can run long, a cap on the bytes it keeps in memory, and caps on the bytes of
//! work (chat templates, zip entries, headers). A hostile file can make an analysis stop
//! early, never make it pass: running out of a budget is an `analysis_budget_exceeded`
//! finding (high) that names the budget and where the analysis stopped.
#![forbid(unsafe_code)]

pub mod chat_template;
pub mod container;
mod finding;
pub mod format;
pub mod gguf;
pub mod hash;
mod identify;
mod json;
mod limits;
mod llamafile;
pub mod numpy;
pub mod open;
pub mod pickle;
pub mod provenance;
mod report;
pub mod runtime_version;
pub mod safetensors;
pub mod signature;
mod source;
mod zip;

use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::Path;

pub use chat_template::{ChatTemplateInfo, assess_chat_template};
pub use container::{ContainerEntry, ContainerInfo, ContainerKind};
pub use finding::{Finding, FindingKind, Severity};
pub use format::{Format, SNIFF_LEN, extension_mismatch, sniff};
pub use gguf::GgufInfo;
pub use hash::{HashBudget, HashError, sha256_file};
pub use identify::identify;
pub use limits::{DEFAULT_DEADLINE, Limits};
pub use numpy::{NumpyArray, NumpyInfo};
pub use open::{CheckedFile, Expected, FileStamp, OpenError, Root};
pub use pickle::{ImportVerdict, PickleCall, PickleImport, PickleReport, PickleStream};
pub use provenance::{
    Provenance, ProvenanceSource, claimed_sha256, digest_finding, ollama_tags, provenance_from_path,
};
pub use report::ModelReport;
pub use safetensors::SafetensorsInfo;

use limits::Scan;
use source::Source;

/// Analyses an already-opened regular file of `size` bytes. `name` is the path as the
/// caller knows it: it is compared with the content (extension mismatch) and read for
/// provenance, never opened.
pub fn analyze<R: Read + Seek>(
    reader: &mut R,
    size: u64,
    name: Option<&Path>,
    limits: &Limits,
) -> ModelReport {
    let mut scan = Scan::new(limits);
    let mut report = analyze_within(reader, size, name, &mut scan);
    report.findings.extend(scan.into_findings());
    report
}

/// [`analyze`] within the budgets of `scan`, whose findings are left there.
fn analyze_within<R: Read + Seek>(
    reader: &mut R,
    size: u64,
    name: Option<&Path>,
    scan: &mut Scan,
) -> ModelReport {
    let mut src = Source::new(reader, size);
    let mut prefix = vec![0u8; SNIFF_LEN];
    let read = src.seek_to(0).and_then(|()| src.read_up_to(&mut prefix));
    let n = match read {
        Ok(n) => n,
        Err(e) => {
            let mut report = ModelReport::new(Format::Unknown, size);
            report.findings.push(Finding::new(FindingKind::ReadFailed, e.to_string()));
            return report;
        }
    };
    prefix.truncate(n);
    let mut format = sniff(&prefix);
    if format == Format::Unknown && pickle::sniff_file(&mut src, name.is_some_and(names_a_pickle), scan) {
        // The prefix could not tell (a pickle opening with a long string, a protocol
        // 0/1 pickle longer than the prefix): a longer look at the stream says pickle.
        format = Format::Pickle;
    }
    let mut report = run(&mut src, format, &prefix, scan);
    if !report.format.is_pickle_based() {
        let format_name = format!("{:?}", report.format);
        scan.enter("a pickle look at a non-pickle file");
        pickle::scan_polyglot(&mut src, &format_name, &mut report.pickle, scan);
    }
    if let Some(name) = name {
        if let Some(finding) = extension_mismatch(name, report.format) {
            scan.report(finding);
        }
        report.provenance = provenance_from_path(name);
    }
    report
}

/// Analyses the bytes as `format`, skipping identification (for fuzzing one parser, or
/// a caller that already knows). Extension and provenance are not looked at.
pub fn analyze_as<R: Read + Seek>(reader: &mut R, size: u64, format: Format, limits: &Limits) -> ModelReport {
    let mut src = Source::new(reader, size);
    let mut scan = Scan::new(limits);
    let mut prefix = vec![0u8; SNIFF_LEN];
    let n = src.seek_to(0).and_then(|()| src.read_up_to(&mut prefix)).unwrap_or(0);
    prefix.truncate(n);
    let mut report = run(&mut src, format, &prefix, &mut scan);
    report.findings = scan.into_findings();
    report
}

/// Analyses an in-memory file.
#[must_use]
pub fn analyze_bytes(bytes: &[u8], name: Option<&Path>, limits: &Limits) -> ModelReport {
    analyze(&mut Cursor::new(bytes), bytes.len() as u64, name, limits)
}

fn names_a_pickle(name: &Path) -> bool {
    let ext = name.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("pkl" | "pickle" | "pt" | "pth" | "ckpt" | "bin" | "joblib"))
}

/// Runs the parsers for `format`; the report's format may be refined (zip archives).
fn run<R: Read + Seek>(
    src: &mut Source<'_, R>,
    format: Format,
    prefix: &[u8],
    scan: &mut Scan,
) -> ModelReport {
    let mut report = ModelReport::new(format, src.len());
    match format {
        Format::Gguf => report.gguf = Some(gguf::parse(src, 0, scan)),
        Format::Safetensors => report.safetensors = safetensors::parse(src, scan),
        Format::Pickle | Format::PytorchLegacy => {
            scan.enter("a pickle stream");
            let mut pickles = PickleReport::default();
            pickle::scan_sequence(src, 0, None, &mut pickles, scan);
            report.pickle = Some(pickles);
        }
        Format::Zip | Format::PytorchZip | Format::NumpyZip | Format::Keras => {
            let contents = container::analyze_zip(src, scan);
            report.format = contents.format;
            report.container = Some(contents.container);
            report.pickle = contents.pickle;
            report.numpy = contents.numpy;
        }
        Format::Numpy => analyze_npy(src, prefix, &mut report, scan),
        Format::SevenZip => report.container = Some(container::unsupported(ContainerKind::SevenZip, scan)),
        Format::CompressedArchive => {
            let kind =
                format::compressed_kind(prefix).map_or(ContainerKind::Tar, container::kind_of_compressed);
            report.container = Some(container::unsupported(kind, scan));
        }
        Format::Llamafile | Format::Unknown if format::is_executable(prefix) => {
            if let Some(offset) = llamafile::find_embedded_gguf(src, scan) {
                report.format = Format::Llamafile;
                report.container = Some(ContainerInfo {
                    kind: ContainerKind::Executable,
                    entry_count: 1,
                    entries: Vec::new(),
                    embedded_offset: Some(offset),
                });
                scan.find(
                    FindingKind::EmbeddedInExecutable,
                    format!("a GGUF model is embedded at offset {offset} of an executable (llamafile)"),
                );
                report.gguf = Some(gguf::parse(src, offset, scan));
            } else {
                report.format = Format::Unknown;
            }
        }
        Format::Onnx | Format::Hdf5 | Format::Tflite | Format::Llamafile | Format::Unknown => {}
    }
    report
}

fn analyze_npy<R: Read + Seek>(
    src: &mut Source<'_, R>,
    prefix: &[u8],
    report: &mut ModelReport,
    scan: &mut Scan,
) {
    let header = numpy::header_end(prefix).and_then(|end| {
        if end > prefix.len() {
            let mut bytes = vec![0u8; end];
            src.seek_to(0).and_then(|()| src.read_exact(&mut bytes)).map_err(|e| e.to_string())?;
            numpy::parse_header(&bytes, None)
        } else {
            numpy::parse_header(prefix, None)
        }
    });
    let array = match header {
        Ok(array) => array,
        Err(why) => {
            scan.find(FindingKind::MalformedHeader, why);
            return;
        }
    };
    if array.object_dtype {
        scan.find(FindingKind::NumpyObjectArray, "an array of Python objects: its data is a pickle");
        scan.enter("the pickle of a NumPy object array");
        let mut pickles = PickleReport::default();
        pickle::scan_sequence(src, array.data_offset, Some(1), &mut pickles, scan);
        report.pickle = Some(pickles);
    }
    if scan.keep(array.kept_size(), "the NumPy array header") {
        report.numpy = Some(NumpyInfo { arrays: vec![array] });
    }
}

/// Opens the regular file at `path` inside `root` (symlinks followed, but only inside
/// that root; FIFOs, devices and sockets refused before a byte is read) and analyses
/// it. Returns the open file with the report, so that the caller hashes the very file
/// that was analysed.
///
/// # Errors
/// The path does not lead to a regular file that could be opened.
pub fn analyze_path(
    root: &Root,
    path: &Path,
    limits: &Limits,
) -> Result<(ModelReport, CheckedFile), OpenError> {
    let mut opened = root.open_file(path, true, None)?;
    let report = analyze_opened(&mut opened, path, root, limits);
    Ok((report, opened))
}

/// Analyses a file already opened through [`open`]. `name` is its path as the process
/// (or the user) named it, inside `root`: it is compared with the content (extension
/// mismatch) and read for provenance; Ollama manifests beside a blob are read inside
/// `root`.
pub fn analyze_opened(opened: &mut CheckedFile, name: &Path, root: &Root, limits: &Limits) -> ModelReport {
    let size = opened.stamp.size;
    let mut scan = Scan::new(limits);
    let mut report = analyze_within(&mut opened.file, size, Some(name), &mut scan);
    // A Hugging Face snapshot entry is a symlink to its blob: the blob's name is the
    // digest. Where the descriptor really leads says so.
    if let Some(resolved) = open::resolved_path(&opened.file)
        && resolved != name
        && let Some(more) = provenance_from_path(&resolved)
    {
        match report.provenance.as_mut() {
            Some(p) => p.merge(more),
            None => report.provenance = Some(more),
        }
    }
    add_ollama_tags(root, name, &mut report, &mut scan);
    report.findings.extend(scan.into_findings());
    report
}

fn add_ollama_tags(root: &Root, path: &Path, report: &mut ModelReport, scan: &mut Scan) {
    let Some(p) = report.provenance.as_mut() else {
        return;
    };
    if p.source != ProvenanceSource::Ollama {
        return;
    }
    let Some(hex) = p.digest.as_deref().and_then(|d| d.strip_prefix("sha256:")) else {
        return;
    };
    // <models>/blobs/sha256-<hex>: the manifests live beside `blobs`.
    if let Some(models_dir) = path.parent().and_then(Path::parent) {
        p.tags = provenance::ollama_tags_within(root, models_dir, hex, scan);
    }
}

/// Opens nothing: a convenience for callers holding a [`File`] they opened safely.
pub fn analyze_file(file: &mut File, name: Option<&Path>, limits: &Limits) -> io::Result<ModelReport> {
    let size = file.metadata()?.len();
    Ok(analyze(file, size, name, limits))
}
