//! safetensors header checks: the same rules as the reference loader (header length
//! cap, well-formed JSON, offsets inside the buffer, sizes that match shapes), plus the
//! ones hardened parsers add (duplicate keys, overlapping tensors). A file the reference
//! loader rejects but another loader accepts is a parser differential: a finding.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Seek};
use std::time::Instant;

use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::finding::{FindingKind, clip};
use crate::limits::Scan;
use crate::source::{ReadError, Source};

/// The reference implementation's header cap.
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// `__metadata__` entries kept in the report.
const MAX_METADATA_KEPT: usize = 256;
/// Findings of one kind reported per file (the rest are counted in the last one).
const MAX_PER_KIND: usize = 4;

/// What a safetensors header says.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SafetensorsInfo {
    pub header_len: u64,
    pub tensor_count: u64,
    /// Sum of the products of the shapes.
    pub parameter_count: u64,
    /// Tensors per dtype.
    pub dtypes: BTreeMap<String, u64>,
    /// The `__metadata__` string map (clipped).
    pub metadata: BTreeMap<String, String>,
}

/// Bits per element of each dtype the reference implementation knows.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// One tensor entry, checked as it is parsed; only its byte range is kept.
#[derive(serde::Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Collects what the header map holds without materialising it: names (for duplicate
/// detection), byte ranges (for overlap checks) and the counters of the report.
///
/// Names are kept as 128-bit keyed hashes (two independent SipHash keys): duplicates are
/// found without holding every name, and the keys are random per analysis, so a file
/// cannot be crafted to collide.
struct Collector<'a> {
    info: &'a mut SafetensorsInfo,
    name_hashers: (RandomState, RandomState),
    names: HashSet<(u64, u64)>,
    ranges: Vec<(u64, u64)>,
    problems: Vec<(FindingKind, String)>,
    max_tensors: u64,
    capped: bool,
}

impl<'de> DeserializeSeed<'de> for &mut Collector<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Collector<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a safetensors header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "__metadata__" {
                map.next_value_seed(MetadataSeed { collector: &mut *self })?;
                continue;
            }
            if self.info.tensor_count >= self.max_tensors {
                self.capped = true;
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let entry: TensorEntry = map.next_value()?;
            self.tensor(&key, &entry);
        }
        Ok(())
    }
}

/// Walks `__metadata__` keeping the first entries; values must be strings.
struct MetadataSeed<'c, 'a> {
    collector: &'c mut Collector<'a>,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string-to-string map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let value: serde_json::Value = map.next_value()?;
            let Some(value) = value.as_str() else {
                self.collector.problems.push((
                    FindingKind::MalformedHeader,
                    format!("__metadata__ value {} is not a string", clip(&key)),
                ));
                continue;
            };
            if self.collector.info.metadata.len() < MAX_METADATA_KEPT {
                self.collector.info.metadata.insert(clip(&key), clip(value));
            }
        }
        Ok(())
    }
}

impl Collector<'_> {
    fn tensor(&mut self, name: &str, entry: &TensorEntry) {
        self.info.tensor_count += 1;
        let (begin, end) = entry.data_offsets;
        let elements = entry.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        self.info.parameter_count = self.info.parameter_count.saturating_add(elements.unwrap_or(u64::MAX));
        *self.info.dtypes.entry(clip(&entry.dtype)).or_default() += 1;
        let shown = clip(name);
        match (dtype_bits(&entry.dtype), elements) {
            (None, _) => self.problems.push((
                FindingKind::SafetensorsUnknownDtype,
                format!("tensor {shown} has unknown dtype {}", clip(&entry.dtype)),
            )),
            (Some(_), None) => self.problems.push((
                FindingKind::SafetensorsSizeMismatch,
                format!("tensor {shown}: shape {:?} overflows", entry.shape),
            )),
            (Some(bits), Some(elements)) => {
                let expected = elements.checked_mul(bits).map(|b| (b / 8, b % 8 == 0));
                let actual = end.checked_sub(begin);
                if expected.map(|(bytes, whole)| whole.then_some(bytes)) != Some(actual) {
                    self.problems.push((
                        FindingKind::SafetensorsSizeMismatch,
                        format!(
                            "tensor {shown}: {} x {} ({elements} elements) does not fill bytes {begin}..{end}",
                            clip(&entry.dtype),
                            format_shape(&entry.shape)
                        ),
                    ));
                }
            }
        }
        let hash = (self.name_hashers.0.hash_one(name), self.name_hashers.1.hash_one(name));
        if !self.names.insert(hash) {
            self.problems.push((
                FindingKind::SafetensorsDuplicateKey,
                format!("tensor {shown} is defined twice: loaders disagree on which wins"),
            ));
        }
        self.ranges.push((begin, end));
    }
}

fn format_shape(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Parses and checks the header of the safetensors file in `src`.
pub(crate) fn parse<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<SafetensorsInfo> {
    let read = |src: &mut Source<'_, R>| -> Result<u64, ReadError> {
        src.seek_to(0)?;
        src.u64()
    };
    let header_len = match read(src) {
        Ok(len) => len,
        Err(e) => {
            scan.find(FindingKind::TruncatedHeader, format!("safetensors length prefix: {e}"));
            return None;
        }
    };
    if header_len > src.remaining() {
        scan.find(
            FindingKind::TruncatedHeader,
            format!(
                "safetensors header claims {header_len} bytes, the file has {} after the length",
                src.remaining()
            ),
        );
        return None;
    }
    let cap = MAX_HEADER_LEN.min(scan.limits.max_header_bytes);
    if header_len > cap {
        let why = if header_len > MAX_HEADER_LEN {
            "the reference loader's 100,000,000-byte cap"
        } else {
            "this analysis' header cap"
        };
        scan.find(
            FindingKind::LengthExceedsLimit,
            format!("safetensors header of {header_len} bytes exceeds {why}: not inspected"),
        );
        return None;
    }
    let mut info = SafetensorsInfo { header_len, ..SafetensorsInfo::default() };
    let data_len = src.len().saturating_sub(8).saturating_sub(header_len);
    let deadline = scan.deadline();
    // Streamed, not read into memory: what is kept is bounded by the caps above, not
    // by the header's length.
    let header = HeaderReader { inner: Read::take(&mut *src, header_len), deadline, read: 0 };
    check_header(header, data_len, &mut info, scan);
    Some(info)
}

/// The header bytes, with the analysis deadline checked as they are read.
struct HeaderReader<R> {
    inner: R,
    deadline: Option<Instant>,
    read: u64,
}

impl<R: Read> Read for HeaderReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let before = self.read;
        self.read += n as u64;
        if before / 65_536 != self.read / 65_536 && self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::other("analysis deadline reached"));
        }
        Ok(n)
    }
}

/// Checks a header's JSON against the data section (`data_len` bytes) that follows it.
fn check_header<H: Read>(mut header: H, data_len: u64, info: &mut SafetensorsInfo, scan: &mut Scan) {
    let mut first = [0u8; 1];
    if header.read_exact(&mut first).is_err() || first[0] != b'{' {
        scan.find(FindingKind::MalformedHeader, "safetensors header is not a JSON object");
        return;
    }
    let mut collector = Collector {
        info,
        name_hashers: (RandomState::new(), RandomState::new()),
        names: HashSet::new(),
        ranges: Vec::new(),
        problems: Vec::new(),
        max_tensors: scan.limits.max_tensors,
        capped: false,
    };
    // The reference writer pads the JSON with trailing spaces to align the data: `end()`
    // accepts trailing whitespace and nothing else.
    let json = io::Cursor::new(b"{").chain(header);
    let mut deserializer = serde_json::Deserializer::from_reader(json);
    let parsed = (&mut collector).deserialize(&mut deserializer).and_then(|()| deserializer.end());
    if let Err(e) = parsed {
        // An I/O error here is the deadline (or a failing disk): not a JSON problem.
        if !(e.is_io() && scan.out_of_time()) {
            scan.find(FindingKind::MalformedHeader, format!("safetensors header JSON: {e}"));
        }
    }
    if collector.capped {
        scan.find(
            FindingKind::CountExceedsLimit,
            format!(
                "safetensors header lists more than {} tensors: the rest were not checked",
                scan.limits.max_tensors
            ),
        );
    }
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = std::mem::take(&mut collector.problems);
    problems.extend(layout_problems(&mut collector.ranges, data_len));
    for (kind, message) in problems {
        let seen = per_kind.entry(format!("{kind:?}")).or_default();
        *seen += 1;
        if *seen <= MAX_PER_KIND {
            scan.find(kind, message);
        }
    }
}

/// Sorted by start, the ranges must tile `0..data_len` exactly, as the reference loader
/// requires: overlaps share bytes between tensors, gaps hide bytes, and anything past
/// the end is out of bounds.
fn layout_problems(ranges: &mut [(u64, u64)], data_len: u64) -> Vec<(FindingKind, String)> {
    let mut problems = Vec::new();
    ranges.sort_unstable();
    let mut covered_to = 0u64;
    for &(begin, end) in ranges.iter() {
        if end < begin {
            problems.push((
                FindingKind::SafetensorsSizeMismatch,
                format!("tensor range {begin}..{end} ends before it begins"),
            ));
            continue;
        }
        if end > data_len {
            problems.push((
                FindingKind::SafetensorsOutOfBounds,
                format!("tensor bytes {begin}..{end} lie past the end of the data ({data_len} bytes)"),
            ));
        }
        if begin < covered_to {
            problems.push((
                FindingKind::SafetensorsOverlap,
                format!("tensor bytes {begin}..{end} overlap a tensor ending at {covered_to}"),
            ));
        } else if begin > covered_to {
            problems.push((
                FindingKind::SafetensorsOffsetGap,
                format!("bytes {covered_to}..{begin} belong to no tensor"),
            ));
        }
        covered_to = covered_to.max(end);
    }
    if covered_to < data_len && !ranges.is_empty() {
        problems.push((
            FindingKind::SafetensorsOffsetGap,
            format!("bytes {covered_to}..{data_len} after the last tensor belong to no tensor"),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn check(json: &str, data_len: u64) -> (SafetensorsInfo, Vec<FindingKind>) {
        let limits = Limits::default();
        let mut scan = Scan::new(&limits);
        let mut info = SafetensorsInfo::default();
        check_header(json.as_bytes(), data_len, &mut info, &mut scan);
        (info, scan.into_findings().iter().map(|f| f.kind).collect())
    }

    #[test]
    fn well_formed_header() {
        let (info, kinds) = check(
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},
               "b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}   "#,
            32,
        );
        assert!(kinds.is_empty(), "{kinds:?}");
        assert_eq!(info.tensor_count, 2);
        assert_eq!(info.parameter_count, 10);
        assert_eq!(info.metadata["format"], "pt");
        assert_eq!(info.dtypes["F32"], 1);
    }

    #[test]
    fn overlap_duplicate_size_and_bounds() {
        let (_, kinds) = check(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
               "a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},
               "c":{"dtype":"F32","shape":[3],"data_offsets":[12,16]},
               "d":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#,
            16,
        );
        for kind in [
            FindingKind::SafetensorsDuplicateKey,
            FindingKind::SafetensorsOverlap,
            FindingKind::SafetensorsSizeMismatch,
            FindingKind::SafetensorsOutOfBounds,
        ] {
            assert!(kinds.contains(&kind), "{kind:?} missing from {kinds:?}");
        }
    }

    #[test]
    fn sub_byte_dtypes_and_unknown_dtypes() {
        let (_, kinds) = check(r#"{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}"#, 2);
        assert!(kinds.is_empty(), "{kinds:?}");
        let (_, kinds) = check(r#"{"a":{"dtype":"Q9","shape":[4],"data_offsets":[0,2]}}"#, 2);
        assert_eq!(kinds, [FindingKind::SafetensorsUnknownDtype]);
    }

    #[test]
    fn bad_json_and_bad_metadata() {
        let (_, kinds) = check(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, 4);
        assert_eq!(kinds, [FindingKind::MalformedHeader]);
        let (_, kinds) = check(r#"{"__metadata__":{"n":1}}"#, 0);
        assert_eq!(kinds, [FindingKind::MalformedHeader]);
        let (_, kinds) = check(r#"[1,2]"#, 0);
        assert_eq!(kinds, [FindingKind::MalformedHeader]);
        let (_, kinds) = check(r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4);
        assert_eq!(kinds, [FindingKind::MalformedHeader]);
    }

    #[test]
    fn shape_overflow_is_a_mismatch_not_a_panic() {
        let (_, kinds) = check(
            r#"{"a":{"dtype":"F64","shape":[18446744073709551615,18446744073709551615],"data_offsets":[0,8]}}"#,
            8,
        );
        assert_eq!(kinds, [FindingKind::SafetensorsSizeMismatch]);
    }

    #[test]
    fn gaps_are_reported() {
        let (_, kinds) = check(r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#, 10);
        assert_eq!(kinds, [FindingKind::SafetensorsOffsetGap, FindingKind::SafetensorsOffsetGap]);
    }
}
