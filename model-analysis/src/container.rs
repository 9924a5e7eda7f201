//! Containers: zip archives (PyTorch checkpoints, `.npz`, `.keras`, plain zips),
//! executables carrying a model (llamafile), and archives this crate cannot open.
//! Every pickle inside a zip is walked, whatever the archive turns out to be.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, BufReader, Read, Seek};
use std::mem::size_of;

use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::finding::{Finding, FindingKind, Severity, clip};
use crate::format::{self, Format, SNIFF_LEN};
use crate::json::{GuardedJson, MaybeString, PARSE_BUFFER};
use crate::limits::{Budget, Scan};
use crate::numpy::{self, NumpyInfo};
use crate::pickle::{self, PickleReport};
use crate::source::Source;
use crate::zip::{self, Directory, Entry};

/// Entries listed in a report.
const MAX_ENTRIES_LISTED: usize = 64;
/// Largest `config.json` read from a `.keras` archive.
const MAX_KERAS_CONFIG: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerKind {
    Zip,
    /// An executable with an embedded model.
    Executable,
    SevenZip,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    Rar,
    Tar,
}

/// What a container holds.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerInfo {
    pub kind: ContainerKind,
    /// Entries the archive declares.
    pub entry_count: u64,
    /// The first entries (name, method, sizes).
    pub entries: Vec<ContainerEntry>,
    /// Offset of the embedded model (llamafile).
    pub embedded_offset: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ContainerEntry {
    pub name: String,
    pub method: String,
    pub compressed_size: u64,
    pub size: u64,
}

impl ContainerInfo {
    fn new(kind: ContainerKind) -> Self {
        Self { kind, entry_count: 0, entries: Vec::new(), embedded_offset: None }
    }
}

/// An archive this crate does not open: a finding. A 7z archive is high: no model
/// loader reads one, so in a model distribution it only hides its content from
/// scanners (the "nullifAI" 7z-wrapped PyTorch files); a scan gate must stop it.
pub(crate) fn unsupported(kind: ContainerKind, scan: &mut Scan) -> ContainerInfo {
    let severity = if kind == ContainerKind::SevenZip { Severity::High } else { Severity::Low };
    scan.report(
        Finding::new(
            FindingKind::UnsupportedContainer,
            format!(
                "{kind:?} archive: its contents were not inspected (models hidden in archives evade scanners)"
            ),
        )
        .with_severity(severity),
    );
    ContainerInfo::new(kind)
}

pub(crate) fn kind_of_compressed(name: &str) -> ContainerKind {
    match name {
        "gzip" => ContainerKind::Gzip,
        "bzip2" => ContainerKind::Bzip2,
        "xz" => ContainerKind::Xz,
        "zstd" => ContainerKind::Zstd,
        "rar" => ContainerKind::Rar,
        _ => ContainerKind::Tar,
    }
}

/// What a zip archive holds: its listing, the model format inside, and the pickles and
/// arrays found in its entries.
pub(crate) struct ZipContents {
    pub(crate) format: Format,
    pub(crate) container: ContainerInfo,
    pub(crate) pickle: Option<PickleReport>,
    pub(crate) numpy: Option<NumpyInfo>,
}

/// Analyses a zip archive: structure checks, what model it is, every pickle inside.
pub(crate) fn analyze_zip<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> ZipContents {
    let mut info = ContainerInfo::new(ContainerKind::Zip);
    let Some(dir) = zip::read_directory(src, scan) else {
        return ZipContents { format: Format::Zip, container: info, pickle: None, numpy: None };
    };
    info.entry_count = dir.declared_entries;
    for e in dir.entries.iter().take(MAX_ENTRIES_LISTED) {
        let listed = ContainerEntry {
            name: clip(&e.name),
            method: zip::method_name(e.method),
            compressed_size: e.compressed_size,
            size: e.uncompressed_size,
        };
        if !scan.keep((listed.name.len() + size_of::<ContainerEntry>()) as u64, "the zip listing") {
            break;
        }
        info.entries.push(listed);
    }
    check_structure(&dir, scan);
    let format = classify(&dir);
    let mut pickles = PickleReport::default();
    let mut arrays = NumpyInfo::default();
    scan.enter("the zip entries");
    for entry in &dir.entries {
        if scan.tick(64, dir.prefix_len.saturating_add(entry.local_header_offset)) {
            break;
        }
        if format == Format::Keras && entry.name == "config.json" {
            check_keras_config(src, &dir, entry, scan);
        } else if !entry.name.ends_with('/') {
            scan_entry_by_content(src, &dir, entry, &mut pickles, &mut arrays, scan);
        }
    }
    let pickle = (!pickles.streams.is_empty()).then_some(pickles);
    let numpy = (!arrays.arrays.is_empty()).then_some(arrays);
    if format == Format::Zip && !dir.entries.is_empty() {
        scan.report(
            Finding::new(
                FindingKind::UnsupportedContainer,
                "zip archive with no model format recognised inside",
            )
            .with_severity(Severity::Info),
        );
    }
    ZipContents { format, container: info, pickle, numpy }
}

pub(crate) fn classify(dir: &Directory) -> Format {
    let names: HashSet<&str> = dir.entries.iter().map(|e| e.name.as_str()).collect();
    if names.iter().any(|n| *n == "data.pkl" || n.ends_with("/data.pkl")) {
        return Format::PytorchZip;
    }
    if names.contains("config.json") && names.contains("model.weights.h5") {
        return Format::Keras;
    }
    let files: Vec<&str> = names.iter().copied().filter(|n| !n.ends_with('/')).collect();
    if !files.is_empty() && files.iter().all(|n| n.to_ascii_lowercase().ends_with(".npy")) {
        return Format::NumpyZip;
    }
    Format::Zip
}

/// Whole-archive checks: duplicate names, overlapping entries, declared ratios.
fn check_structure(dir: &Directory, scan: &mut Scan) {
    let mut names = HashSet::new();
    for entry in &dir.entries {
        if !names.insert(entry.name.as_str()) {
            scan.report(
                Finding::new(
                    FindingKind::ZipAnomaly,
                    format!(
                        "entry {} appears twice: a scanner may read one copy and the loader the other",
                        clip(&entry.name)
                    ),
                )
                .with_severity(Severity::High),
            );
        }
        check_declared_sizes(entry, scan);
    }
    // Entries whose data overlap let a few compressed bytes stand for many entries
    // (the non-recursive zip bomb). 30 bytes is the smallest local header.
    let mut by_offset: Vec<&Entry> = dir.entries.iter().collect();
    by_offset.sort_by_key(|e| e.local_header_offset);
    for pair in by_offset.windows(2) {
        let end = pair[0].local_header_offset.saturating_add(30).saturating_add(pair[0].compressed_size);
        if pair[1].local_header_offset < end {
            scan.find(
                FindingKind::ZipBomb,
                format!("entries {} and {} overlap in the archive", clip(&pair[0].name), clip(&pair[1].name)),
            );
            break;
        }
    }
}

fn check_declared_sizes(entry: &Entry, scan: &mut Scan) {
    let name = clip(&entry.name);
    let limits = scan.limits;
    if entry.method == zip::METHOD_STORED && entry.compressed_size != entry.uncompressed_size {
        scan.find(
            FindingKind::ZipAnomaly,
            format!(
                "stored entry {name} declares {} bytes stored but {} uncompressed",
                entry.compressed_size, entry.uncompressed_size
            ),
        );
    }
    let ratio = entry.uncompressed_size / entry.compressed_size.max(1);
    if entry.uncompressed_size > limits.max_zip_entry_bytes && ratio > limits.max_zip_ratio {
        scan.find(
            FindingKind::ZipBomb,
            format!(
                "entry {name} declares {} bytes from {} compressed (ratio {ratio}:1)",
                entry.uncompressed_size, entry.compressed_size
            ),
        );
    }
}

/// Opens an entry for reading: its data range checked and its stream capped. Reports
/// why when it cannot.
fn open<'s, R: Read + Seek>(
    src: &'s mut Source<'_, R>,
    dir: &Directory,
    entry: &Entry,
    severity: Severity,
    scan: &mut Scan,
) -> Option<zip::EntryReader<Box<dyn Read + 's>>> {
    let name = clip(&entry.name);
    let start = match zip::data_range(src, dir, entry, scan) {
        Ok((start, _)) => start,
        Err(e) => {
            scan.find(FindingKind::TruncatedHeader, format!("entry {name}: {e}"));
            return None;
        }
    };
    let max_bytes = scan.limits.max_zip_entry_bytes;
    let budget = zip::EntryBudget {
        max_bytes,
        allowance: scan.draw(Budget::InflatedBytes, max_bytes.saturating_add(1)),
        deadline: scan.deadline(),
    };
    let opened = zip::open_entry(src, entry, start, &budget);
    if !matches!(opened, Ok(Some(_))) {
        scan.refund(Budget::InflatedBytes, budget.allowance);
    }
    match opened {
        Ok(Some(reader)) => Some(reader),
        Ok(None) => {
            scan.report(
                Finding::new(
                    FindingKind::UnsupportedContainer,
                    format!(
                        "entry {name} is compressed with {}: not inspected",
                        zip::method_name(entry.method)
                    ),
                )
                .with_severity(severity),
            );
            None
        }
        Err(e) => {
            scan.find(FindingKind::TruncatedHeader, format!("entry {name}: {e}"));
            None
        }
    }
}

/// Ends the reading of an entry: gives back the entry bytes drawn but not read, and
/// reports the budget that stopped the reading, if one did. True when one did.
fn close<R>(reader: zip::EntryReader<R>, entry: &Entry, scan: &mut Scan) -> bool {
    let end = reader.end();
    scan.refund(Budget::InflatedBytes, end.unused);
    let Some(budget) = end.stopped else {
        return false;
    };
    match budget {
        Budget::Time => {
            scan.out_of_time();
        }
        _ => scan.exhaust(budget, format!("entry {}, after {} bytes", clip(&entry.name), end.bytes)),
    }
    true
}

/// What an entry's name promises: loaders pick entries by name (torch reads
/// `data.pkl`, NumPy the `.npy` entries), but content decides what is inspected.
fn named_pickle(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".pkl") || lower.ends_with(".pickle")
}

/// Looks at an entry's first bytes and inspects it as what its content is: a `.npy`
/// array (its pickle, for object arrays), a pickle whatever its name (`data.txt`), or
/// neither.
fn scan_entry_by_content<R: Read + Seek>(
    src: &mut Source<'_, R>,
    dir: &Directory,
    entry: &Entry,
    pickles: &mut PickleReport,
    arrays: &mut NumpyInfo,
    scan: &mut Scan,
) {
    let named_pickle = named_pickle(&entry.name);
    let named_npy = entry.name.to_ascii_lowercase().ends_with(".npy");
    // An entry that cannot be decompressed can only be judged by its name.
    let severity = if named_pickle {
        Severity::High
    } else if named_npy {
        Severity::Medium
    } else {
        Severity::Low
    };
    let Some(mut reader) = open(src, dir, entry, severity, scan) else {
        return;
    };
    let mut head = Vec::new();
    if let Err(e) = (&mut reader).take(SNIFF_LEN as u64).read_to_end(&mut head) {
        if !close(reader, entry, scan) {
            scan.find(
                FindingKind::ZipAnomaly,
                format!("entry {} does not decompress: {e}", clip(&entry.name)),
            );
        }
        return;
    }
    if head.starts_with(b"\x93NUMPY") {
        scan_npy_entry(head, reader, entry, arrays, pickles, scan);
    } else if named_pickle || format::looks_like_pickle(&head, entry.uncompressed_size, false) {
        let len = entry.uncompressed_size.max(head.len() as u64);
        scan.enter("a pickle in a zip entry");
        pickle::scan_stream(io::Cursor::new(head).chain(&mut reader), &entry.name, len, pickles, scan);
        scan.enter("the zip entries");
        finish_entry(reader, entry, scan);
    } else {
        close(reader, entry, scan);
    }
}

/// Reads what is left of an entry (within the cap) so that its size and CRC can be
/// checked against the central directory.
fn finish_entry<R: Read>(mut reader: zip::EntryReader<R>, entry: &Entry, scan: &mut Scan) {
    let name = clip(&entry.name);
    let copied = io::copy(&mut reader, &mut io::sink());
    let (bytes, crc) = (reader.bytes, reader.crc.clone().finalize());
    if close(reader, entry, scan) {
        return;
    }
    if let Err(e) = copied {
        scan.find(FindingKind::ZipAnomaly, format!("entry {name} does not decompress: {e}"));
        return;
    }
    if bytes > scan.limits.max_zip_entry_bytes {
        scan.find(
            FindingKind::ZipBomb,
            format!(
                "entry {name} inflates past the {}-byte cap from {} compressed bytes",
                scan.limits.max_zip_entry_bytes, entry.compressed_size
            ),
        );
        return;
    }
    if bytes != entry.uncompressed_size {
        scan.find(
            FindingKind::ZipAnomaly,
            format!("entry {name} holds {bytes} bytes but declares {}", entry.uncompressed_size),
        );
    }
    if crc != entry.crc32 {
        scan.find(
            FindingKind::ZipCrcMismatch,
            format!("entry {name} has CRC-32 {crc:08x}, the directory says {:08x}: Python's zipfile refuses it, torch loads it", entry.crc32),
        );
    }
}

fn scan_npy_entry<R: Read>(
    head: Vec<u8>,
    mut reader: zip::EntryReader<R>,
    entry: &Entry,
    arrays: &mut NumpyInfo,
    pickles: &mut PickleReport,
    scan: &mut Scan,
) {
    let name = clip(&entry.name);
    let mut stream = io::Cursor::new(head).chain(&mut reader);
    let mut header = vec![0u8; 12];
    let parsed =
        read_fully(&mut stream, &mut header).and_then(|()| numpy::header_end(&header)).and_then(|end| {
            header.resize(end.max(12), 0);
            read_fully(&mut stream, &mut header[12.min(end)..])?;
            numpy::parse_header(&header, Some(&entry.name))
        });
    if stream.get_ref().1.stopped.is_some() {
        drop(stream);
        close(reader, entry, scan);
        return;
    }
    let array = match parsed {
        Ok(array) => array,
        Err(why) => {
            drop(stream);
            close(reader, entry, scan);
            scan.find(FindingKind::MalformedHeader, format!("entry {name}: {why}"));
            return;
        }
    };
    let object = array.object_dtype;
    let data_len = entry.uncompressed_size.saturating_sub(array.data_offset);
    if arrays.arrays.len() < numpy::MAX_ARRAYS_RECORDED && scan.keep(array.kept_size(), "NumPy array headers")
    {
        arrays.arrays.push(array);
    }
    if object {
        scan.find(
            FindingKind::NumpyObjectArray,
            format!("entry {name} is an array of Python objects: its data is a pickle"),
        );
        scan.enter("a pickle in a zip entry");
        pickle::scan_stream(stream, &entry.name, data_len, pickles, scan);
        scan.enter("the zip entries");
    } else {
        drop(stream);
    }
    close(reader, entry, scan);
}

fn read_fully<R: Read>(reader: &mut R, out: &mut [u8]) -> Result<(), String> {
    reader.read_exact(out).map_err(|e| format!("truncated .npy header ({e})"))
}

/// Keras models with a Lambda layer carry Python code (marshalled bytecode in older
/// versions) that loading may run.
fn check_keras_config<R: Read + Seek>(
    src: &mut Source<'_, R>,
    dir: &Directory,
    entry: &Entry,
    scan: &mut Scan,
) {
    let Some(mut reader) = open(src, dir, entry, Severity::Medium, scan) else {
        return;
    };
    let mut json =
        GuardedJson::new((&mut reader).take(MAX_KERAS_CONFIG), scan.limits.max_string, scan.deadline());
    let mut finder = LambdaFinder { found: false };
    let mut deserializer =
        serde_json::Deserializer::from_reader(BufReader::with_capacity(PARSE_BUFFER, &mut json));
    let parsed = (&mut finder).deserialize(&mut deserializer).and_then(|()| deserializer.end());
    if finder.found {
        scan.find(
            FindingKind::KerasLambdaLayer,
            "the Keras model has a Lambda layer (serialised Python code)",
        );
    }
    let stopped = json.stopped;
    if close(reader, entry, scan) {
        return;
    }
    match (parsed, stopped) {
        (Ok(()), _) => {}
        _ if finder.found => {}
        (Err(_), Some(Budget::Time)) => {
            scan.out_of_time();
        }
        (Err(_), Some(budget)) => scan.exhaust(budget, "a JSON string in the Keras config.json"),
        (Err(e), None) if e.is_io() => {
            scan.find(FindingKind::MalformedHeader, format!("config.json does not decompress: {e}"));
        }
        (Err(_), None) => scan.find(FindingKind::MalformedHeader, "config.json is not valid JSON"),
    }
}

/// Walks a Keras config looking for an object whose `class_name` is `Lambda`, streamed:
/// nothing of the config is kept.
struct LambdaFinder {
    found: bool,
}

impl<'de> DeserializeSeed<'de> for &mut LambdaFinder {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut LambdaFinder {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Keras config")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<MaybeString>()? {
            if key.0.as_deref() == Some("class_name") {
                let value: MaybeString = map.next_value()?;
                self.found |= value.0.as_deref() == Some("Lambda");
            } else if self.found {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(&mut *self)?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}
