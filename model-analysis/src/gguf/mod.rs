//! GGUF header parsing (ggml `docs/gguf.md`): magic, version, counts, the key/value
//! metadata and the tensor info table.
//!
//! GGUF loaders have had repeated overflows from trusting counts and lengths
//! (TALOS-2024-1913, CVE-2025-49847, CVE-2025-53630...). Here every count is capped by
//! [`crate::Limits`], every length is checked against the bytes left in the file before use,
//! and values that governance does not need are skipped by seeking, not read.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::mem::size_of;

use serde::Serialize;

use crate::chat_template::{self, Assessor, ChatTemplateInfo};
use crate::finding::{FindingKind, REPORT_STRING_MAX, Severity, clip};
use crate::limits::{Budget, Scan};
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
    pub general: BTreeMap<String, MetaValue>,
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
/// Chat templates listed per file (a file may name several; all are assessed, within the
/// template budget).
const MAX_CHAT_TEMPLATES: usize = 16;
/// Template bytes read per step of the streamed assessment.
const TEMPLATE_CHUNK: usize = 16 * 1024;
/// Work charged per loop iteration, besides the bytes it reads.
const STEP_COST: u64 = 16;
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
    /// A budget ran out: what follows was not inspected.
    Budget(Budget, String),
    /// Stopped for a reason the scan has already reported (the deadline, memory).
    Reported,
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
    kept_string_bytes: usize,
}

/// Parses the GGUF header starting at `offset` in `src`.
pub(crate) fn parse<R: Read + Seek>(src: &mut Source<'_, R>, offset: u64, scan: &mut Scan) -> GgufInfo {
    let mut info = GgufInfo { offset, alignment: DEFAULT_ALIGNMENT, ..GgufInfo::default() };
    let header_end = offset.saturating_add(scan.limits.max_header_bytes);
    scan.enter("the GGUF header");
    let mut parser = Parser { src, scan, wide: true, header_end, kept_string_bytes: 0 };
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
            Stop::Budget(budget, detail) => parser.scan.exhaust(budget, detail),
            Stop::Reported => {}
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
        let kvs = self.walkable("KV pairs", info.kv_count, self.scan.limits.max_gguf_kv, MIN_KV_BYTES)?;
        let tensors = self.walkable(
            "tensor infos",
            info.tensor_count,
            self.scan.limits.max_tensors,
            MIN_TENSOR_INFO_BYTES,
        );
        self.scan.enter("the GGUF key/value pairs");
        for _ in 0..kvs {
            self.tick(STEP_COST)?;
            self.kv(info)?;
        }
        if kvs < info.kv_count {
            return Err(Stop::Budget(
                Budget::Items,
                format!("the first {kvs} of {} GGUF key/value pairs were parsed", info.kv_count),
            ));
        }
        let tensors = tensors?;
        self.scan.enter("the GGUF tensor infos");
        self.tensor_infos(info, tensors)
    }

    /// How many of `count` items to walk: a count above its cap is reported and walked
    /// up to the cap (so that what comes first is still inspected); one the rest of the
    /// file cannot hold is rejected before looping over it.
    fn walkable(&mut self, what: &str, count: u64, cap: u64, min_bytes: u64) -> Result<u64, Stop> {
        if count > cap {
            self.scan.find(
                FindingKind::CountExceedsLimit,
                format!(
                    "GGUF claims {count} {what}, above the cap of {cap}: only the first {cap} are parsed"
                ),
            );
        }
        let walk = count.min(cap);
        let room = self.src.remaining() / min_bytes;
        if walk > room {
            return Err(Stop::Finding(
                FindingKind::TruncatedHeader,
                format!("GGUF claims {count} {what}, but the file has room for at most {room}"),
            ));
        }
        Ok(walk)
    }

    /// Spends work on the analysis' clock; stops at the deadline or past the header
    /// byte budget.
    fn tick(&mut self, cost: u64) -> Result<(), Stop> {
        if self.scan.tick(cost, self.src.pos()) {
            return Err(Stop::Reported);
        }
        if self.src.pos() > self.header_end {
            return Err(Stop::Budget(
                Budget::HeaderBytes,
                format!("the GGUF header is longer than {} bytes", self.scan.limits.max_header_bytes),
            ));
        }
        Ok(())
    }

    /// Accounts for `bytes` kept in the report; stops when the memory budget is spent.
    fn keep(&mut self, bytes: usize, what: &str) -> Result<(), Stop> {
        if self.scan.keep(bytes as u64, what) { Ok(()) } else { Err(Stop::Reported) }
    }

    fn count(&mut self) -> Result<u64, Stop> {
        Ok(if self.wide { self.src.u64()? } else { u64::from(self.src.u32()?) })
    }

    /// A length-prefixed string: returned when at most `cap` bytes, else skipped.
    fn string(&mut self, cap: u64) -> Result<Result<String, u64>, Stop> {
        let len = self.string_len()?;
        if len > cap {
            self.src.skip(len)?;
            return Ok(Err(len));
        }
        let bytes = self.src.read_vec(len)?;
        self.tick(len)?;
        Ok(Ok(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A length-prefixed string for the report: at most [`REPORT_STRING_MAX`] bytes are
    /// read (and the cut marked), the rest is skipped. Returns the text and the length.
    fn clipped_string(&mut self) -> Result<(String, u64), Stop> {
        let len = self.string_len()?;
        let read = len.min(REPORT_STRING_MAX as u64 + 3);
        let bytes = self.src.read_vec(read)?;
        self.src.skip(len - read)?;
        self.tick(read)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut text = clip(&text);
        if len > read && !text.ends_with('…') {
            text.push('…');
        }
        Ok((text, len))
    }

    /// A string's length, checked against the bytes left.
    fn string_len(&mut self) -> Result<u64, Stop> {
        let len = self.count()?;
        if len > self.src.remaining() {
            return Err(Stop::Read(ReadError::Truncated {
                at: self.src.pos(),
                wanted: len,
                len: self.src.len(),
            }));
        }
        Ok(len)
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
            self.keep(key.len() + KEPT_ENTRY_OVERHEAD, "GGUF general.* metadata")?;
            info.general.insert(key, MetaValue::Unsigned(alignment));
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
        self.keep(key.len().min(REPORT_STRING_MAX) + value.kept_size(), "GGUF general.* metadata")?;
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

    /// Assesses a chat template as it is read, in pieces: its bytes are drawn from the
    /// file's template budget (shared by all its templates), never held in memory.
    fn chat_template(&mut self, key: &str, info: &mut GgufInfo) -> Result<(), Stop> {
        let len = self.string_len()?;
        let max_string = self.scan.limits.max_string;
        if len > max_string {
            self.scan.find(
                FindingKind::LengthExceedsLimit,
                format!(
                    "{} is {len} bytes, above the cap of {max_string}: real chat templates are a few KiB",
                    clip(key)
                ),
            );
        }
        self.scan.enter("a GGUF chat template");
        let granted = self.scan.draw(Budget::TemplateBytes, len);
        let mut assessor = Assessor::new();
        let mut chunk = [0u8; TEMPLATE_CHUNK];
        let mut left = granted;
        let mut out_of_time = false;
        while left > 0 && !out_of_time {
            let n = usize::try_from(left).unwrap_or(TEMPLATE_CHUNK).min(TEMPLATE_CHUNK);
            self.src.read_exact(&mut chunk[..n])?;
            assessor.feed(&chunk[..n]);
            left -= n as u64;
            out_of_time = self.scan.tick(n as u64, self.src.pos());
        }
        self.scan.refund(Budget::TemplateBytes, left);
        let assessed = assessor.finish(key, len);
        // What was read is scored even when the reading stopped early.
        if let Some(finding) = chat_template::risk_finding(&assessed) {
            self.scan.report(finding);
        }
        if out_of_time {
            return Err(Stop::Reported);
        }
        if assessed.assessed < len {
            self.scan.exhaust(
                Budget::TemplateBytes,
                format!("{} assessed to byte {} of {len}", clip(key), assessed.assessed),
            );
        }
        self.src.skip(len - assessed.assessed)?;
        self.scan.enter("the GGUF key/value pairs");
        if info.chat_templates.len() >= MAX_CHAT_TEMPLATES {
            self.scan.report(
                crate::Finding::new(
                    FindingKind::CountExceedsLimit,
                    format!(
                        "more than {MAX_CHAT_TEMPLATES} chat templates: the rest are not listed (they are assessed within the template budget)"
                    ),
                )
                .with_severity(Severity::Low),
            );
            return Ok(());
        }
        let kept = assessed.key.len() + assessed.sha256.len() + size_of::<ChatTemplateInfo>() + 256;
        self.keep(kept, "GGUF chat template assessments")?;
        info.chat_templates.push(assessed);
        Ok(())
    }

    /// Reads a `general.*` value for the report.
    fn value(&mut self, value_type: u32) -> Result<MetaValue, Stop> {
        Ok(match value_type {
            STRING => {
                let (text, len) = self.clipped_string()?;
                if len > self.scan.limits.max_string {
                    MetaValue::Text(format!("<{len} bytes, not read>"))
                } else if self.kept_string_bytes + text.len() <= MAX_KEPT_STRING_BYTES {
                    self.kept_string_bytes += text.len();
                    MetaValue::Text(text)
                } else {
                    MetaValue::Text(format!("<{len} bytes, not kept: report size cap>"))
                }
            }
            ARRAY => {
                let elem_type = self.src.u32()?;
                let count = self.count()?;
                let kept = count.min(MAX_KEPT_ELEMS);
                let mut items = Vec::new();
                if elem_type == ARRAY {
                    self.skip_array_elems(elem_type, count, 1)?;
                } else {
                    for _ in 0..kept {
                        self.tick(STEP_COST)?;
                        items.push(self.value(elem_type)?);
                    }
                    self.skip_array_elems(elem_type, count - kept, 1)?;
                }
                MetaValue::List(items)
            }
            UINT8 => MetaValue::Unsigned(self.src.u8()?.into()),
            INT8 => MetaValue::Signed(i8::from_le_bytes(self.src.array()?).into()),
            UINT16 => MetaValue::Unsigned(self.src.u16()?.into()),
            INT16 => MetaValue::Signed(i16::from_le_bytes(self.src.array()?).into()),
            UINT32 => MetaValue::Unsigned(self.src.u32()?.into()),
            INT32 => MetaValue::Signed(i32::from_le_bytes(self.src.array()?).into()),
            UINT64 => MetaValue::Unsigned(self.src.u64()?),
            INT64 => MetaValue::Signed(i64::from_le_bytes(self.src.array()?)),
            FLOAT32 => MetaValue::Float(f32::from_le_bytes(self.src.array()?).into()),
            FLOAT64 => MetaValue::Float(f64::from_le_bytes(self.src.array()?)),
            BOOL => MetaValue::Bool(self.src.u8()? != 0),
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
                let len = self.string_len()?;
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
            self.tick(STEP_COST)?;
            self.skip_value(elem_type, depth)?;
        }
        Ok(())
    }
}

fn bad_type(value_type: u32) -> Stop {
    Stop::Finding(FindingKind::MalformedHeader, format!("unknown GGUF value type {value_type}"))
}

const _: () = assert!(REPORT_STRING_MAX as u64 <= MAX_KEY_LEN);

mod tensors;
mod types;
mod value;

pub use types::file_type_name;
use types::*;
use value::KEPT_ENTRY_OVERHEAD;
pub use value::MetaValue;

#[cfg(test)]
mod tests;
