//! GGUF header parsing (ggml `docs/gguf.md`): magic, version, counts, the key/value
//! metadata and the tensor info table.
//!
//! GGUF loaders have had repeated overflows from trusting counts and lengths
//! (TALOS-2024-1913, CVE-2025-49847, CVE-2025-53630...). Here every count is capped by
//! [`crate::Limits`], every length is checked against the bytes left in the file before use,
//! and values that governance does not need are skipped by seeking, not read.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use serde::Serialize;
use serde_json::Value;

use crate::chat_template::{self, ChatTemplateInfo};
use crate::finding::{FindingKind, REPORT_STRING_MAX, Severity, clip};
use crate::limits::Scan;
use crate::source::{ReadError, Source};

/// Metadata read from a GGUF header.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GgufInfo {
    /// Offset of the GGUF in the file (non-zero inside a llamafile).
    pub offset: u64,
    pub version: u32,
    pub tensor_count: u64,
    pub kv_count: u64,
    pub architecture: Option<String>,
    pub name: Option<String>,
    /// `general.license` (SPDX identifier, or a name like `llama3`).
    pub license: Option<String>,
    /// `general.file_type` (llama.cpp `LLAMA_FTYPE`).
    pub file_type: Option<u32>,
    /// The quantisation `general.file_type` names (`Q4_K_M`...).
    pub quantization: Option<String>,
    /// Every `general.*` key: strings, numbers, booleans, short arrays.
    pub general: BTreeMap<String, Value>,
    /// Sum over tensor infos of the product of their dimensions, when the whole table
    /// was read.
    pub parameter_count: Option<u64>,
    /// Tensor infos actually read.
    pub tensors_read: u64,
    pub alignment: u64,
    pub chat_templates: Vec<ChatTemplateInfo>,
}

/// Nested arrays deeper than this are rejected (real files nest at most once).
const MAX_ARRAY_DEPTH: u32 = 4;
/// Longest key accepted (ggml caps names far lower; keys are identifiers).
const MAX_KEY_LEN: u64 = 64 * 1024;
/// Array elements kept in the report for `general.*` arrays (tags, languages).
const MAX_KEPT_ELEMS: u64 = 64;
/// Bytes of `general.*` strings kept in one report, and keys kept: a hostile file with
/// thousands of long `general.*` values must not make a large report.
const MAX_KEPT_STRING_BYTES: usize = 256 * 1024;
const MAX_GENERAL_KEYS: usize = 256;
/// Chat templates assessed per file (a file may name several).
const MAX_CHAT_TEMPLATES: usize = 16;
/// GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;
const DEFAULT_ALIGNMENT: u64 = 32;

/// Smallest possible KV pair on disk (v1): key length, a 1-byte key, type, u8 value.
const MIN_KV_BYTES: u64 = 4 + 1 + 4 + 1;
/// Smallest possible tensor info (v1): name length, 1-byte name, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 4 + 1 + 4 + 4 + 8;

/// Why parsing stopped early. Each is turned into one finding.
enum Stop {
    Read(ReadError),
    Finding(FindingKind, String),
    Deadline,
}

impl From<ReadError> for Stop {
    fn from(e: ReadError) -> Self {
        Self::Read(e)
    }
}

struct Parser<'s, 'r, 'l, R> {
    src: &'s mut Source<'r, R>,
    scan: &'s mut Scan<'l>,
    /// v1 uses u32 for counts and lengths.
    wide: bool,
    /// Where the header may end: offset + max_header_bytes.
    header_end: u64,
    steps: u64,
    kept_string_bytes: usize,
}

/// Parses the GGUF header starting at `offset` in `src`.
pub(crate) fn parse<R: Read + Seek>(src: &mut Source<'_, R>, offset: u64, scan: &mut Scan) -> GgufInfo {
    let mut info = GgufInfo { offset, alignment: DEFAULT_ALIGNMENT, ..GgufInfo::default() };
    let header_end = offset.saturating_add(scan.limits.max_header_bytes);
    let mut parser = Parser { src, scan, wide: true, header_end, steps: 0, kept_string_bytes: 0 };
    if let Err(stop) = parser.header(&mut info) {
        match stop {
            Stop::Read(ReadError::Truncated { at, wanted, len }) => parser.scan.find(
                FindingKind::TruncatedHeader,
                format!("GGUF header truncated: {wanted} bytes needed at offset {at}, file ends at {len}"),
            ),
            Stop::Read(ReadError::Io { at, source }) => {
                parser.scan.find(FindingKind::ReadFailed, format!("reading GGUF at offset {at}: {source}"));
            }
            Stop::Finding(kind, message) => parser.scan.find(kind, message),
            Stop::Deadline => {
                parser.scan.out_of_time();
            }
        }
    }
    info
}

impl<R: Read + Seek> Parser<'_, '_, '_, R> {
    fn header(&mut self, info: &mut GgufInfo) -> Result<(), Stop> {
        self.src.seek_to(info.offset)?;
        let magic = self.src.array::<4>()?;
        if &magic != b"GGUF" {
            return Err(Stop::Finding(FindingKind::MalformedHeader, "no GGUF magic".into()));
        }
        let version = self.src.u32()?;
        info.version = version;
        if !(1..=3).contains(&version) {
            let why = if (1..=3).contains(&version.swap_bytes()) {
                format!("big-endian GGUF v{} is not parsed", version.swap_bytes())
            } else {
                format!("GGUF version {version} is not supported")
            };
            return Err(Stop::Finding(FindingKind::UnsupportedVersion, why));
        }
        self.wide = version >= 2;
        info.tensor_count = self.count()?;
        info.kv_count = self.count()?;
        self.check_count("KV pairs", info.kv_count, self.scan.limits.max_gguf_kv, MIN_KV_BYTES)?;
        let tensors_plausible = self.check_count(
            "tensor infos",
            info.tensor_count,
            self.scan.limits.max_tensors,
            MIN_TENSOR_INFO_BYTES,
        );
        for _ in 0..info.kv_count {
            self.tick()?;
            self.kv(info)?;
        }
        tensors_plausible?;
        self.tensor_infos(info)
    }

    /// Rejects a count above its cap, or one the rest of the file cannot hold, before
    /// looping over it.
    fn check_count(&mut self, what: &str, count: u64, cap: u64, min_bytes: u64) -> Result<(), Stop> {
        if count > cap {
            return Err(Stop::Finding(
                FindingKind::CountExceedsLimit,
                format!("GGUF claims {count} {what}, above the cap of {cap}"),
            ));
        }
        let room = self.src.remaining() / min_bytes;
        if count > room {
            return Err(Stop::Finding(
                FindingKind::TruncatedHeader,
                format!("GGUF claims {count} {what}, but the file has room for at most {room}"),
            ));
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), Stop> {
        self.steps += 1;
        if self.steps.is_multiple_of(4096) && self.scan.out_of_time() {
            return Err(Stop::Deadline);
        }
        if self.src.pos() > self.header_end {
            return Err(Stop::Finding(
                FindingKind::LengthExceedsLimit,
                format!("GGUF header is longer than the cap of {} bytes", self.scan.limits.max_header_bytes),
            ));
        }
        Ok(())
    }

    fn count(&mut self) -> Result<u64, Stop> {
        Ok(if self.wide { self.src.u64()? } else { u64::from(self.src.u32()?) })
    }

    /// A length-prefixed string: returned when at most `cap` bytes, else skipped.
    fn string(&mut self, cap: u64) -> Result<Result<String, u64>, Stop> {
        let len = self.count()?;
        if len > self.src.remaining() {
            return Err(Stop::Read(ReadError::Truncated {
                at: self.src.pos(),
                wanted: len,
                len: self.src.len(),
            }));
        }
        if len > cap {
            self.src.skip(len)?;
            return Ok(Err(len));
        }
        let bytes = self.src.read_vec(len)?;
        Ok(Ok(String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn kv(&mut self, info: &mut GgufInfo) -> Result<(), Stop> {
        let key = match self.string(MAX_KEY_LEN)? {
            Ok(key) => key,
            Err(len) => {
                return Err(Stop::Finding(FindingKind::MalformedHeader, format!("GGUF key of {len} bytes")));
            }
        };
        let value_type = self.src.u32()?;
        let is_template = key == "tokenizer.chat_template" || key.starts_with("tokenizer.chat_template.");
        if is_template && value_type == STRING {
            return self.chat_template(&key, info);
        }
        if key == "general.alignment" && value_type == UINT32 {
            let alignment = u64::from(self.src.u32()?);
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(Stop::Finding(
                    FindingKind::MalformedHeader,
                    format!("general.alignment {alignment} is not a power of two"),
                ));
            }
            info.alignment = alignment;
            info.general.insert(key, Value::from(alignment));
            return Ok(());
        }
        if !key.starts_with("general.") {
            return self.skip_value(value_type, 0);
        }
        if info.general.len() >= MAX_GENERAL_KEYS {
            self.scan.report(
                crate::Finding::new(
                    FindingKind::CountExceedsLimit,
                    format!("more than {MAX_GENERAL_KEYS} general.* keys: the rest are not reported"),
                )
                .with_severity(Severity::Low),
            );
            return self.skip_value(value_type, 0);
        }
        let value = self.value(value_type)?;
        match key.as_str() {
            "general.architecture" => info.architecture = value.as_str().map(str::to_owned),
            "general.name" => info.name = value.as_str().map(str::to_owned),
            "general.license" => info.license = value.as_str().map(str::to_owned),
            "general.file_type" => {
                info.file_type = value.as_u64().and_then(|v| u32::try_from(v).ok());
                info.quantization = info.file_type.map(|t| file_type_name(t).to_owned());
            }
            _ => {}
        }
        info.general.insert(clip(&key), value);
        Ok(())
    }

    fn chat_template(&mut self, key: &str, info: &mut GgufInfo) -> Result<(), Stop> {
        if info.chat_templates.len() >= MAX_CHAT_TEMPLATES {
            let len = self.count()?;
            self.src.skip(len)?;
            self.scan.find(
                FindingKind::CountExceedsLimit,
                format!("more than {MAX_CHAT_TEMPLATES} chat templates: {} not assessed", clip(key)),
            );
            return Ok(());
        }
        match self.string(self.scan.limits.max_string)? {
            Ok(template) => {
                let assessed = chat_template::assess_chat_template(key, &template);
                if let Some(finding) = chat_template::risk_finding(&assessed) {
                    self.scan.report(finding);
                }
                info.chat_templates.push(assessed);
            }
            Err(len) => self.scan.find(
                FindingKind::LengthExceedsLimit,
                format!(
                    "{key} is {len} bytes, above the cap of {}: not assessed",
                    self.scan.limits.max_string
                ),
            ),
        }
        Ok(())
    }

    /// Reads a `general.*` value for the report.
    fn value(&mut self, value_type: u32) -> Result<Value, Stop> {
        Ok(match value_type {
            STRING => match self.string(self.scan.limits.max_string)? {
                Ok(s) if self.kept_string_bytes + s.len().min(REPORT_STRING_MAX) <= MAX_KEPT_STRING_BYTES => {
                    let s = clip(&s);
                    self.kept_string_bytes += s.len();
                    Value::from(s)
                }
                Ok(s) => Value::from(format!("<{} bytes, not kept: report size cap>", s.len())),
                Err(len) => Value::from(format!("<{len} bytes, not read>")),
            },
            ARRAY => {
                let elem_type = self.src.u32()?;
                let count = self.count()?;
                let kept = count.min(MAX_KEPT_ELEMS);
                let mut items = Vec::new();
                if elem_type == ARRAY {
                    self.skip_array_elems(elem_type, count, 1)?;
                } else {
                    for _ in 0..kept {
                        self.tick()?;
                        items.push(self.value(elem_type)?);
                    }
                    self.skip_array_elems(elem_type, count - kept, 1)?;
                }
                Value::Array(items)
            }
            UINT8 => Value::from(self.src.u8()?),
            INT8 => Value::from(i8::from_le_bytes(self.src.array()?)),
            UINT16 => Value::from(self.src.u16()?),
            INT16 => Value::from(i16::from_le_bytes(self.src.array()?)),
            UINT32 => Value::from(self.src.u32()?),
            INT32 => Value::from(i32::from_le_bytes(self.src.array()?)),
            UINT64 => Value::from(self.src.u64()?),
            INT64 => Value::from(i64::from_le_bytes(self.src.array()?)),
            FLOAT32 => Value::from(f32::from_le_bytes(self.src.array()?)),
            FLOAT64 => Value::from(f64::from_le_bytes(self.src.array()?)),
            BOOL => Value::from(self.src.u8()? != 0),
            other => return Err(bad_type(other)),
        })
    }

    fn skip_value(&mut self, value_type: u32, depth: u32) -> Result<(), Stop> {
        if let Some(size) = fixed_size(value_type) {
            self.src.skip(size)?;
            return Ok(());
        }
        match value_type {
            STRING => {
                let len = self.count()?;
                self.src.skip(len)?;
                Ok(())
            }
            ARRAY => {
                let elem_type = self.src.u32()?;
                let count = self.count()?;
                self.skip_array_elems(elem_type, count, depth + 1)
            }
            other => Err(bad_type(other)),
        }
    }

    fn skip_array_elems(&mut self, elem_type: u32, count: u64, depth: u32) -> Result<(), Stop> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(Stop::Finding(
                FindingKind::MalformedHeader,
                format!("GGUF arrays nested deeper than {MAX_ARRAY_DEPTH}"),
            ));
        }
        if count > self.scan.limits.max_array_elems {
            return Err(Stop::Finding(
                FindingKind::CountExceedsLimit,
                format!(
                    "GGUF array of {count} elements, above the cap of {}",
                    self.scan.limits.max_array_elems
                ),
            ));
        }
        if let Some(size) = fixed_size(elem_type) {
            // Fixed-size elements: one bounds-checked skip, whatever the count.
            let bytes = count.checked_mul(size).ok_or_else(|| {
                Stop::Finding(
                    FindingKind::TruncatedHeader,
                    format!("GGUF array of {count} elements overflows"),
                )
            })?;
            self.src.skip(bytes)?;
            return Ok(());
        }
        if !matches!(elem_type, STRING | ARRAY) {
            return Err(bad_type(elem_type));
        }
        for _ in 0..count {
            self.tick()?;
            self.skip_value(elem_type, depth)?;
        }
        Ok(())
    }

    fn tensor_infos(&mut self, info: &mut GgufInfo) -> Result<(), Stop> {
        let mut parameters: u128 = 0;
        let mut extents: Vec<(u64, u64, u32)> = Vec::new();
        for _ in 0..info.tensor_count {
            self.tick()?;
            let name = match self.string(MAX_KEY_LEN)? {
                Ok(name) => name,
                Err(len) => {
                    return Err(Stop::Finding(
                        FindingKind::MalformedHeader,
                        format!("GGUF tensor name of {len} bytes"),
                    ));
                }
            };
            let n_dims = self.src.u32()?;
            if n_dims > MAX_DIMS {
                return Err(Stop::Finding(
                    FindingKind::MalformedHeader,
                    format!("tensor {} has {n_dims} dimensions (max {MAX_DIMS})", clip(&name)),
                ));
            }
            let mut dims = [1u64; MAX_DIMS as usize];
            for dim in dims.iter_mut().take(n_dims as usize) {
                *dim = self.count()?;
            }
            let ggml_type = self.src.u32()?;
            let offset = self.src.u64()?;
            let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            let Some(elements) = elements else {
                return Err(Stop::Finding(
                    FindingKind::MalformedHeader,
                    format!("tensor {} has dimensions whose product overflows", clip(&name)),
                ));
            };
            parameters += u128::from(elements);
            info.tensors_read += 1;
            self.check_tensor_type(&name, ggml_type, &dims, offset, &mut extents);
        }
        info.parameter_count = Some(u64::try_from(parameters).unwrap_or(u64::MAX));
        self.check_tensor_extents(info, &extents);
        Ok(())
    }

    fn check_tensor_type(
        &mut self,
        name: &str,
        ggml_type: u32,
        dims: &[u64; MAX_DIMS as usize],
        offset: u64,
        extents: &mut Vec<(u64, u64, u32)>,
    ) {
        let Some((block, type_size)) = ggml_type_size(ggml_type) else {
            self.scan.find(
                FindingKind::MalformedHeader,
                format!("tensor {} has unknown ggml type {ggml_type}", clip(name)),
            );
            return;
        };
        if !dims[0].is_multiple_of(block) {
            self.scan.find(
                FindingKind::MalformedHeader,
                format!(
                    "tensor {}: row of {} elements is not a whole number of {block}-element blocks",
                    clip(name),
                    dims[0]
                ),
            );
            return;
        }
        let bytes = dims[1..]
            .iter()
            .try_fold((dims[0] / block).saturating_mul(type_size), |acc, &d| acc.checked_mul(d))
            .filter(|_| (dims[0] / block).checked_mul(type_size).is_some());
        match bytes {
            Some(bytes) => extents.push((offset, bytes, u32::try_from(extents.len()).unwrap_or(u32::MAX))),
            None => self
                .scan
                .find(FindingKind::MalformedHeader, format!("tensor {}: byte size overflows", clip(name))),
        }
    }

    /// Tensor data must lie inside the file, after the header, aligned.
    fn check_tensor_extents(&mut self, info: &GgufInfo, extents: &[(u64, u64, u32)]) {
        let header_end = self.src.pos();
        let data_start = header_end.div_ceil(info.alignment).saturating_mul(info.alignment);
        let mut reported = 0;
        for &(offset, bytes, index) in extents {
            let end = data_start.checked_add(offset).and_then(|s| s.checked_add(bytes));
            let misaligned = offset % info.alignment != 0;
            if end.is_none_or(|end| end > self.src.len()) {
                reported += 1;
                if reported <= 4 {
                    self.scan.find(
                        FindingKind::TensorOutOfBounds,
                        format!("tensor #{index} ({bytes} bytes at data offset {offset}) ends past the end of the file ({} bytes)", self.src.len()),
                    );
                }
            } else if misaligned {
                self.scan.report(
                    crate::Finding::new(
                        FindingKind::MalformedHeader,
                        format!("tensor #{index} data offset {offset} is not aligned to {}", info.alignment),
                    )
                    .with_severity(Severity::Low),
                );
            }
        }
    }
}

fn bad_type(value_type: u32) -> Stop {
    Stop::Finding(FindingKind::MalformedHeader, format!("unknown GGUF value type {value_type}"))
}

const _: () = assert!(REPORT_STRING_MAX as u64 <= MAX_KEY_LEN);

mod types;

pub use types::file_type_name;
use types::*;

#[cfg(test)]
mod tests;
