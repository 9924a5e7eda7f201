//! safetensors header checks: the same rules as the reference loader (header length
//! cap, well-formed JSON, offsets inside the buffer, sizes that match shapes), plus the
//! ones hardened parsers add (duplicate keys, overlapping tensors). A file the reference
//! loader rejects but another loader accepts is a parser differential: a finding.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, Read, Seek};

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::finding::{FindingKind, clip};
use crate::json::{GuardedJson, MaybeString, PARSE_BUFFER};
use crate::limits::{Budget, Scan};
use crate::source::{ReadError, Source};

/// The reference implementation's header cap.
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// `__metadata__` entries kept in the report.
const MAX_METADATA_KEPT: usize = 256;
/// Distinct dtype names counted in the report (more are counted as `other`).
const MAX_DTYPES_KEPT: usize = 64;
/// Findings of one kind reported per file (the last one says how many more there were).
const MAX_PER_KIND: usize = 4;
/// Dimensions of a shape quoted in a finding.
const SHAPE_DIMS_KEPT: usize = 8;
/// Memory charged per tensor checked: its name's 128-bit hash in a set and its byte
/// range in a vector, each with the spare capacity of its container.
const KEPT_PER_TENSOR: u64 = 2 * 16 + 2 * 16;

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
const DTYPES: &[(&str, u64)] = &[
    ("F4", 4),
    ("F6_E2M3", 6),
    ("F6_E3M2", 6),
    ("BOOL", 8),
    ("U8", 8),
    ("I8", 8),
    ("F8_E5M2", 8),
    ("F8_E4M3", 8),
    ("F8_E8M0", 8),
    ("I16", 16),
    ("U16", 16),
    ("F16", 16),
    ("BF16", 16),
    ("I32", 32),
    ("U32", 32),
    ("F32", 32),
    ("I64", 64),
    ("U64", 64),
    ("F64", 64),
    ("C64", 64),
];

/// One tensor entry, checked as it is parsed: nothing of it is kept but its byte range.
#[derive(serde::Deserialize)]
struct TensorEntry {
    dtype: Dtype,
    shape: Shape,
    data_offsets: (u64, u64),
}

/// A dtype name: one of [`DTYPES`], or another (clipped) name.
enum Dtype {
    Known { name: &'static str, bits: u64 },
    Unknown(String),
}

impl Dtype {
    fn name(&self) -> &str {
        match self {
            Self::Known { name, .. } => name,
            Self::Unknown(name) => name,
        }
    }
}

impl<'de> de::Deserialize<'de> for Dtype {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DtypeVisitor;
        impl Visitor<'_> for DtypeVisitor {
            type Value = Dtype;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a dtype name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Dtype, E> {
                Ok(match DTYPES.iter().find(|(name, _)| *name == v) {
                    Some(&(name, bits)) => Dtype::Known { name, bits },
                    None => Dtype::Unknown(clip(v)),
                })
            }
        }
        deserializer.deserialize_str(DtypeVisitor)
    }
}

/// A shape, folded as it is read: however many dimensions it has, only the element
/// count and the first few dimensions are kept.
struct Shape {
    dims: u64,
    first: Vec<u64>,
    /// Product of the dimensions; `None` when it overflows.
    elements: Option<u64>,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.first.iter().map(u64::to_string).collect();
        let more = if self.dims > self.first.len() as u64 {
            format!(", … ({} dimensions)", self.dims)
        } else {
            String::new()
        };
        write!(f, "[{}{more}]", dims.join(", "))
    }
}

impl<'de> de::Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of dimensions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut shape = Shape { dims: 0, first: Vec::new(), elements: Some(1) };
                while let Some(dim) = seq.next_element::<u64>()? {
                    if shape.first.len() < SHAPE_DIMS_KEPT {
                        shape.first.push(dim);
                    }
                    shape.dims += 1;
                    shape.elements = shape.elements.and_then(|e| e.checked_mul(dim));
                }
                Ok(shape)
            }
        }
        deserializer.deserialize_seq(ShapeVisitor)
    }
}

/// Findings gathered while parsing, at most [`MAX_PER_KIND`] messages per kind: a
/// header with a million bad entries makes four messages and a count.
#[derive(Default)]
struct Problems {
    kept: Vec<(FindingKind, String)>,
    per_kind: HashMap<FindingKind, u64>,
}

impl Problems {
    fn push(&mut self, kind: FindingKind, message: impl FnOnce() -> String) {
        let seen = self.per_kind.entry(kind).or_default();
        *seen += 1;
        if *seen <= MAX_PER_KIND as u64 {
            self.kept.push((kind, message()));
        }
    }

    /// Reports the kept messages; the last of a kind says how many more there were.
    fn report(self, scan: &mut Scan) {
        let mut kept_left: HashMap<FindingKind, usize> = HashMap::new();
        for (kind, _) in &self.kept {
            *kept_left.entry(*kind).or_default() += 1;
        }
        for (kind, message) in self.kept {
            let left = kept_left.entry(kind).or_default();
            *left -= 1;
            let more = self.per_kind.get(&kind).map_or(0, |n| n.saturating_sub(MAX_PER_KIND as u64));
            if *left == 0 && more > 0 {
                scan.find(kind, format!("{message} (and {more} more like it)"));
            } else {
                scan.find(kind, message);
            }
        }
    }
}

/// Collects what the header map holds without materialising it: names (for duplicate
/// detection), byte ranges (for overlap checks) and the counters of the report.
///
/// Names are kept as 128-bit keyed hashes (two independent SipHash keys): duplicates are
/// found without holding every name, and the keys are random per analysis, so a file
/// cannot be crafted to collide.
struct Collector<'a, 'l> {
    info: &'a mut SafetensorsInfo,
    scan: &'a mut Scan<'l>,
    name_hashers: (RandomState, RandomState),
    names: HashSet<(u64, u64)>,
    ranges: Vec<(u64, u64)>,
    problems: Problems,
    /// Why the collector stopped the parse, when it did (already reported for memory).
    stopped: Option<Budget>,
}

impl<'de> DeserializeSeed<'de> for &mut Collector<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Collector<'_, '_> {
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
            if self.info.tensor_count >= self.scan.limits.max_tensors {
                self.stopped = Some(Budget::Items);
                return Err(de::Error::custom("tensor budget spent"));
            }
            if !self.scan.keep(KEPT_PER_TENSOR, "safetensors tensor names and byte ranges") {
                self.stopped = Some(Budget::Memory);
                return Err(de::Error::custom("memory budget spent"));
            }
            let entry: TensorEntry = map.next_value()?;
            self.tensor(&key, &entry);
        }
        Ok(())
    }
}

/// Walks `__metadata__` keeping the first entries; values must be strings.
struct MetadataSeed<'c, 'a, 'l> {
    collector: &'c mut Collector<'a, 'l>,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string-to-string map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let collector = self.collector;
        while let Some(key) = map.next_key::<String>()? {
            let MaybeString(Some(value)) = map.next_value::<MaybeString>()? else {
                collector.problems.push(FindingKind::MalformedHeader, || {
                    format!("__metadata__ value {} is not a string", clip(&key))
                });
                continue;
            };
            if collector.info.metadata.len() >= MAX_METADATA_KEPT {
                continue;
            }
            let key = clip(&key);
            if !collector.scan.keep((key.len() + value.len() + 64) as u64, "safetensors __metadata__") {
                collector.stopped = Some(Budget::Memory);
                return Err(de::Error::custom("memory budget spent"));
            }
            collector.info.metadata.insert(key, value);
        }
        Ok(())
    }
}

impl Collector<'_, '_> {
    fn tensor(&mut self, name: &str, entry: &TensorEntry) {
        self.info.tensor_count += 1;
        let (begin, end) = entry.data_offsets;
        let elements = entry.shape.elements;
        self.info.parameter_count = self.info.parameter_count.saturating_add(elements.unwrap_or(u64::MAX));
        self.count_dtype(entry.dtype.name());
        match (&entry.dtype, elements) {
            (Dtype::Unknown(dtype), _) => self.problems.push(FindingKind::SafetensorsUnknownDtype, || {
                format!("tensor {} has unknown dtype {dtype}", clip(name))
            }),
            (Dtype::Known { .. }, None) => self.problems.push(FindingKind::SafetensorsSizeMismatch, || {
                format!("tensor {}: shape {} overflows", clip(name), entry.shape)
            }),
            (Dtype::Known { name: dtype, bits }, Some(elements)) => {
                let expected = elements.checked_mul(*bits).map(|b| (b / 8, b % 8 == 0));
                let actual = end.checked_sub(begin);
                if expected.map(|(bytes, whole)| whole.then_some(bytes)) != Some(actual) {
                    self.problems.push(FindingKind::SafetensorsSizeMismatch, || {
                        format!(
                            "tensor {}: {dtype} x {} ({elements} elements) does not fill bytes {begin}..{end}",
                            clip(name),
                            entry.shape
                        )
                    });
                }
            }
        }
        let hash = (self.name_hashers.0.hash_one(name), self.name_hashers.1.hash_one(name));
        if !self.names.insert(hash) {
            self.problems.push(FindingKind::SafetensorsDuplicateKey, || {
                format!("tensor {} is defined twice: loaders disagree on which wins", clip(name))
            });
        }
        self.ranges.push((begin, end));
    }

    fn count_dtype(&mut self, dtype: &str) {
        if let Some(count) = self.info.dtypes.get_mut(dtype) {
            *count += 1;
        } else if self.info.dtypes.len() < MAX_DTYPES_KEPT {
            self.info.dtypes.insert(dtype.to_owned(), 1);
        } else {
            *self.info.dtypes.entry("other".to_owned()).or_default() += 1;
        }
    }
}

/// Parses and checks the header of the safetensors file in `src`.
pub(crate) fn parse<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<SafetensorsInfo> {
    scan.enter("the safetensors header");
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
    if header_len > MAX_HEADER_LEN {
        scan.find(
            FindingKind::LengthExceedsLimit,
            format!(
                "safetensors header of {header_len} bytes exceeds the reference loader's 100,000,000-byte cap: not inspected"
            ),
        );
        return None;
    }
    if header_len > scan.limits.max_header_bytes {
        // The reference loader would read it: not reading it is this analysis' choice.
        scan.exhaust(Budget::HeaderBytes, format!("a safetensors header of {header_len} bytes"));
        return None;
    }
    let mut info = SafetensorsInfo { header_len, ..SafetensorsInfo::default() };
    let data_len = src.len().saturating_sub(8).saturating_sub(header_len);
    // Streamed, not read into memory: what is kept is bounded by the caps above, not
    // by the header's length.
    check_header(Read::take(&mut *src, header_len), data_len, &mut info, scan);
    Some(info)
}

/// Checks a header's JSON against the data section (`data_len` bytes) that follows it.
fn check_header<H: Read>(header: H, data_len: u64, info: &mut SafetensorsInfo, scan: &mut Scan) {
    let max_string = scan.limits.max_string;
    let mut guard = GuardedJson::new(header, max_string, scan.deadline());
    let mut first = [0u8; 1];
    if guard.read_exact(&mut first).is_err() || first[0] != b'{' {
        if guard.stopped.is_some() {
            scan.out_of_time();
        } else {
            scan.find(FindingKind::MalformedHeader, "safetensors header is not a JSON object");
        }
        return;
    }
    let mut collector = Collector {
        info,
        scan,
        name_hashers: (RandomState::new(), RandomState::new()),
        names: HashSet::new(),
        ranges: Vec::new(),
        problems: Problems::default(),
        stopped: None,
    };
    // The reference writer pads the JSON with trailing spaces to align the data: `end()`
    // accepts trailing whitespace and nothing else.
    let json = BufReader::with_capacity(PARSE_BUFFER, io::Cursor::new(b"{").chain(&mut guard));
    let mut deserializer = serde_json::Deserializer::from_reader(json);
    let parsed = (&mut collector).deserialize(&mut deserializer).and_then(|()| deserializer.end());
    let stopped = collector.stopped.or(guard.stopped);
    let Collector { scan, ranges, mut problems, .. } = collector;
    // Offsets in the file: the 8-byte length, then the header.
    scan.tick(0, 8 + guard.consumed);
    match (parsed, stopped) {
        (Ok(()), _) => {}
        (Err(_), Some(Budget::Time)) => {
            scan.out_of_time();
        }
        (Err(_), Some(Budget::Items)) => scan.exhaust(
            Budget::Items,
            format!("{} safetensors tensors checked; the header lists more", scan.limits.max_tensors),
        ),
        (Err(_), Some(Budget::StringBytes)) => {
            scan.exhaust(Budget::StringBytes, "a JSON string in the safetensors header");
        }
        (Err(_), Some(_)) => {}
        (Err(e), None) => scan.find(FindingKind::MalformedHeader, format!("safetensors header JSON: {e}")),
    }
    let mut ranges = ranges;
    // After an early stop only the ranges read are known: bytes after them are not a gap.
    let complete = stopped.is_none();
    layout_problems(&mut ranges, data_len, complete, &mut problems);
    problems.report(scan);
}

/// Sorted by start, the ranges must tile `0..data_len` exactly, as the reference loader
/// requires: overlaps share bytes between tensors, gaps hide bytes, and anything past
/// the end is out of bounds.
fn layout_problems(ranges: &mut [(u64, u64)], data_len: u64, complete: bool, problems: &mut Problems) {
    ranges.sort_unstable();
    let mut covered_to = 0u64;
    for &(begin, end) in ranges.iter() {
        if end < begin {
            problems.push(FindingKind::SafetensorsSizeMismatch, || {
                format!("tensor range {begin}..{end} ends before it begins")
            });
            continue;
        }
        if end > data_len {
            problems.push(FindingKind::SafetensorsOutOfBounds, || {
                format!("tensor bytes {begin}..{end} lie past the end of the data ({data_len} bytes)")
            });
        }
        if begin < covered_to {
            problems.push(FindingKind::SafetensorsOverlap, || {
                format!("tensor bytes {begin}..{end} overlap a tensor ending at {covered_to}")
            });
        } else if begin > covered_to {
            problems.push(FindingKind::SafetensorsOffsetGap, || {
                format!("bytes {covered_to}..{begin} belong to no tensor")
            });
        }
        covered_to = covered_to.max(end);
    }
    if complete && covered_to < data_len && !ranges.is_empty() {
        problems.push(FindingKind::SafetensorsOffsetGap, || {
            format!("bytes {covered_to}..{data_len} after the last tensor belong to no tensor")
        });
    }
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
