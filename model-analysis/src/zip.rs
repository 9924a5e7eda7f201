//! A minimal zip reader for inspection, not extraction: the central directory (the
//! record that Python's zipfile and torch's miniz reader both trust), local headers
//! cross-checked against it, and entry data streamed through caps.
//!
//! Owning this code, instead of a general zip crate, keeps every count, size and ratio
//! checked before a byte is inflated, and turns each oddity scanners were bypassed with
//! (flag bits, bad CRCs, local/central disagreement, overlapping entries) into a finding.

use std::io::{self, Read, Seek};
use std::mem::size_of;
use std::time::Instant;

use crate::finding::{Finding, FindingKind, Severity, clip};
use crate::limits::{Budget, Scan};
use crate::source::{ReadError, Source};

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: u64 = 22;
/// EOCD plus the longest comment.
const EOCD_SEARCH: u64 = EOCD_LEN + 0xffff;
/// Longest entry name kept (names are clipped for reports anyway).
const MAX_NAME: usize = 4096;
/// Memory charged per directory entry beyond its name: the entry, and its slots in the
/// sets and sorted copies the whole-archive checks make.
const KEPT_PER_ENTRY: u64 = size_of::<Entry>() as u64 + 64;
/// Bytes inflated between two looks at the clock.
const INFLATE_CHECK_EVERY: u64 = 256 * 1024;

pub(crate) const METHOD_STORED: u16 = 0;
pub(crate) const METHOD_DEFLATED: u16 = 8;

/// General-purpose flag bits that are routine: 1-2 (deflate level), 3 (sizes in a data
/// descriptor), 11 (UTF-8 names).
const ROUTINE_FLAGS: u16 = 0b0000_1000_0000_1110;
const FLAG_ENCRYPTED: u16 = 1;

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) flags: u16,
    pub(crate) method: u16,
    pub(crate) crc32: u32,
    pub(crate) compressed_size: u64,
    pub(crate) uncompressed_size: u64,
    pub(crate) local_header_offset: u64,
}

pub(crate) struct Directory {
    pub(crate) entries: Vec<Entry>,
    /// The entry count the end record declares (may exceed `entries.len()` when capped).
    pub(crate) declared_entries: u64,
    /// Bytes before the archive (self-extracting stubs, APE/llamafile executables whose
    /// offsets are relative to the archive start).
    pub(crate) prefix_len: u64,
}

struct EndRecord {
    entries: u64,
    cd_size: u64,
    cd_offset: u64,
    /// Where the (zip64) end record itself sits: the directory must end there.
    at: u64,
}

/// Reads the central directory. `None` (with a finding) when there is none to read.
pub(crate) fn read_directory<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<Directory> {
    match read_directory_inner(src, scan) {
        Ok(dir) => Some(dir),
        Err(DirError::Read(e)) => {
            scan.find(FindingKind::TruncatedHeader, format!("zip central directory: {e}"));
            None
        }
        Err(DirError::Finding(finding)) => {
            scan.report(finding);
            None
        }
        Err(DirError::Reported) => None,
    }
}

enum DirError {
    Read(ReadError),
    Finding(Finding),
    /// Already reported (a budget).
    Reported,
}

impl From<ReadError> for DirError {
    fn from(e: ReadError) -> Self {
        Self::Read(e)
    }
}

fn anomaly(message: impl Into<String>) -> DirError {
    DirError::Finding(Finding::new(FindingKind::ZipAnomaly, message))
}

fn read_directory_inner<R: Read + Seek>(
    src: &mut Source<'_, R>,
    scan: &mut Scan,
) -> Result<Directory, DirError> {
    let end = find_end_record(src)?;
    let cd_start = end
        .at
        .checked_sub(end.cd_size)
        .ok_or_else(|| anomaly("central directory larger than the archive"))?;
    // Python's zipfile computes the same shift ("concat") for archives with a prefix.
    let prefix_len = cd_start
        .checked_sub(end.cd_offset)
        .ok_or_else(|| anomaly("central directory offset points past its own position"))?;
    if end.cd_size > scan.limits.max_header_bytes {
        scan.exhaust(
            Budget::HeaderBytes,
            format!("a zip central directory of {} bytes was not read", end.cd_size),
        );
        return Err(DirError::Reported);
    }
    let cap = scan.limits.max_zip_entries as u64;
    if end.entries > cap {
        scan.find(
            FindingKind::CountExceedsLimit,
            format!("zip declares {} entries; only the first {cap} are inspected", end.entries),
        );
    }
    // Each central record is at least 46 bytes: a count the directory cannot hold is a lie.
    if end.entries > end.cd_size / 46 {
        scan.find(
            FindingKind::ZipAnomaly,
            format!("zip declares {} entries in a {}-byte central directory", end.entries, end.cd_size),
        );
    }
    src.seek_to(cd_start)?;
    scan.enter("the zip central directory");
    let mut entries = Vec::new();
    let mut stopped = false;
    while (entries.len() as u64) < end.entries.min(cap) {
        if src.pos() + 46 > end.at {
            break;
        }
        let at = src.pos();
        let entry = read_central_entry(src, scan)?;
        if scan.tick(src.pos() - at, at)
            || !scan.keep(entry.name.len() as u64 + KEPT_PER_ENTRY, "zip directory entries")
        {
            stopped = true;
            break;
        }
        entries.push(entry);
    }
    if stopped {
        return Ok(Directory { entries, declared_entries: end.entries, prefix_len });
    }
    if (entries.len() as u64) < end.entries.min(cap) {
        scan.find(
            FindingKind::ZipAnomaly,
            format!("zip declares {} entries but its central directory holds {}", end.entries, entries.len()),
        );
    } else if end.entries > cap {
        scan.exhaust(Budget::Items, format!("the first {cap} of {} zip entries were read", end.entries));
    }
    Ok(Directory { entries, declared_entries: end.entries, prefix_len })
}

fn find_end_record<R: Read + Seek>(src: &mut Source<'_, R>) -> Result<EndRecord, DirError> {
    let len = src.len();
    if len < EOCD_LEN {
        return Err(anomaly("too short for a zip end record"));
    }
    let tail_start = len.saturating_sub(EOCD_SEARCH);
    src.seek_to(tail_start)?;
    let tail = src.read_vec(len - tail_start)?;
    // The last signature whose comment length reaches exactly the end of the file; else
    // the last signature at all (Python's zipfile accepts trailing garbage too).
    let candidates =
        (0..=tail.len() - EOCD_LEN as usize).rev().filter(|&i| tail[i..i + 4] == EOCD_SIG.to_le_bytes());
    let mut fallback = None;
    let mut found = None;
    for i in candidates {
        let comment_len = usize::from(u16::from_le_bytes([tail[i + 20], tail[i + 21]]));
        if i + EOCD_LEN as usize + comment_len == tail.len() {
            found = Some(i);
            break;
        }
        fallback.get_or_insert(i);
    }
    let i = found.or(fallback).ok_or_else(|| anomaly("no zip end-of-central-directory record"))?;
    let field16 = |at: usize| u64::from(u16::from_le_bytes([tail[i + at], tail[i + at + 1]]));
    let field32 = |at: usize| {
        u64::from(u32::from_le_bytes([tail[i + at], tail[i + at + 1], tail[i + at + 2], tail[i + at + 3]]))
    };
    let eocd_at = tail_start + i as u64;
    let mut end =
        EndRecord { entries: field16(10), cd_size: field32(12), cd_offset: field32(16), at: eocd_at };
    let needs_zip64 = end.entries == 0xffff || end.cd_size == 0xffff_ffff || end.cd_offset == 0xffff_ffff;
    if eocd_at >= 20 {
        src.seek_to(eocd_at - 20)?;
        if src.u32()? == ZIP64_LOCATOR_SIG {
            src.skip(4)?;
            let zip64_at = src.u64()?;
            end = read_zip64_end(src, zip64_at, eocd_at)?;
        } else if needs_zip64 {
            return Err(anomaly("zip end record needs zip64 but has no zip64 locator"));
        }
    }
    Ok(end)
}

fn read_zip64_end<R: Read + Seek>(
    src: &mut Source<'_, R>,
    declared_at: u64,
    eocd_at: u64,
) -> Result<EndRecord, DirError> {
    // The zip64 end record sits right before its 20-byte locator; archives with a
    // prefix have `declared_at` shifted, so trust the position, not the pointer.
    let at =
        eocd_at.checked_sub(20 + 56).ok_or_else(|| anomaly("zip64 locator without room for its record"))?;
    src.seek_to(at)?;
    if src.u32()? != ZIP64_EOCD_SIG {
        src.seek_to(declared_at)?;
        if src.u32()? != ZIP64_EOCD_SIG {
            return Err(anomaly("zip64 locator points to no zip64 end record"));
        }
    }
    let record_at = src.pos() - 4;
    src.skip(8 + 2 + 2 + 4 + 4 + 8)?;
    let entries = src.u64()?;
    let cd_size = src.u64()?;
    let cd_offset = src.u64()?;
    Ok(EndRecord { entries, cd_size, cd_offset, at: record_at })
}

fn read_central_entry<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Result<Entry, DirError> {
    let at = src.pos();
    if src.u32()? != CENTRAL_SIG {
        return Err(anomaly(format!("bad central directory record signature at offset {at}")));
    }
    src.skip(4)?; // versions
    let flags = src.u16()?;
    let method = src.u16()?;
    src.skip(4)?; // time, date
    let crc32 = src.u32()?;
    let mut compressed_size = u64::from(src.u32()?);
    let mut uncompressed_size = u64::from(src.u32()?);
    let name_len = u64::from(src.u16()?);
    let extra_len = u64::from(src.u16()?);
    let comment_len = u64::from(src.u16()?);
    src.skip(2 + 2 + 4)?; // disk, internal and external attributes
    let mut local_header_offset = u64::from(src.u32()?);
    let raw_name = src.read_vec(name_len)?;
    let name = String::from_utf8_lossy(&raw_name[..raw_name.len().min(MAX_NAME)]).into_owned();
    // Zip64 extra field: the 64-bit values of whichever fields are saturated, in order.
    let extra = src.read_vec(extra_len)?;
    let mut fields = Zip64Fields::find(&extra);
    if uncompressed_size == 0xffff_ffff {
        uncompressed_size = fields.next().unwrap_or(uncompressed_size);
    }
    if compressed_size == 0xffff_ffff {
        compressed_size = fields.next().unwrap_or(compressed_size);
    }
    if local_header_offset == 0xffff_ffff {
        local_header_offset = fields.next().unwrap_or(local_header_offset);
    }
    src.skip(comment_len)?;
    let entry = Entry { name, flags, method, crc32, compressed_size, uncompressed_size, local_header_offset };
    check_flags(&entry, scan);
    Ok(entry)
}

/// Iterates the u64 values of the zip64 extended information extra field (id 0x0001).
struct Zip64Fields<'a> {
    data: &'a [u8],
}

impl<'a> Zip64Fields<'a> {
    fn find(mut extra: &'a [u8]) -> Self {
        while extra.len() >= 4 {
            let id = u16::from_le_bytes([extra[0], extra[1]]);
            let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
            let body = extra.get(4..4 + len).unwrap_or(&extra[4..]);
            if id == 0x0001 {
                return Self { data: body };
            }
            extra = extra.get(4 + len..).unwrap_or(&[]);
        }
        Self { data: &[] }
    }
}

impl Iterator for Zip64Fields<'_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let (head, rest) = self.data.split_first_chunk::<8>()?;
        self.data = rest;
        Some(u64::from_le_bytes(*head))
    }
}

fn check_flags(entry: &Entry, scan: &mut Scan) {
    let name = clip(&entry.name);
    if entry.flags & FLAG_ENCRYPTED != 0 {
        // torch's reader ignores the bit and loads the entry; Python's zipfile refuses
        // it, so a scanner built on zipfile skips exactly what torch runs.
        scan.report(
            Finding::new(
                FindingKind::ZipAnomaly,
                format!("entry {name} is flagged encrypted: scanners using Python's zipfile skip it, torch loads it"),
            )
            .with_severity(Severity::High),
        );
    }
    let odd = entry.flags & !(ROUTINE_FLAGS | FLAG_ENCRYPTED);
    if odd != 0 {
        scan.find(FindingKind::ZipAnomaly, format!("entry {name} has unusual flag bits {odd:#06x}"));
    }
}

/// Where an entry's data lies, after checking its local header against the central
/// record.
pub(crate) fn data_range<R: Read + Seek>(
    src: &mut Source<'_, R>,
    dir: &Directory,
    entry: &Entry,
    scan: &mut Scan,
) -> Result<(u64, u64), ReadError> {
    let at = dir.prefix_len.saturating_add(entry.local_header_offset);
    src.seek_to(at)?;
    let name = clip(&entry.name);
    if src.u32()? != LOCAL_SIG {
        scan.report(
            Finding::new(FindingKind::ZipAnomaly, format!("entry {name}: no local header at offset {at}"))
                .with_severity(Severity::High),
        );
    }
    src.skip(2)?; // version
    let flags = src.u16()?;
    let method = src.u16()?;
    src.skip(4 + 4 + 4 + 4)?; // time, date, crc, sizes: the central record is authoritative
    let name_len = u64::from(src.u16()?);
    let extra_len = u64::from(src.u16()?);
    let local_name = src.read_vec(name_len)?;
    if local_name != entry.name.as_bytes() && entry.name.len() < MAX_NAME {
        scan.report(
            Finding::new(
                FindingKind::ZipAnomaly,
                format!(
                    "entry {name}: the local header names it {:?}; readers disagree on what it is",
                    clip(&String::from_utf8_lossy(&local_name))
                ),
            )
            .with_severity(Severity::High),
        );
    }
    if method != entry.method || (flags & FLAG_ENCRYPTED) != (entry.flags & FLAG_ENCRYPTED) {
        scan.report(
            Finding::new(
                FindingKind::ZipAnomaly,
                format!("entry {name}: local and central headers disagree on method or flags"),
            )
            .with_severity(Severity::High),
        );
    }
    src.skip(extra_len)?;
    let start = src.pos();
    let end = start.checked_add(entry.compressed_size).filter(|&end| end <= src.len());
    if end.is_none() {
        return Err(ReadError::Truncated { at: start, wanted: entry.compressed_size, len: src.len() });
    }
    Ok((start, entry.compressed_size))
}

/// A reader over an entry's uncompressed bytes that counts them, computes the CRC-32,
/// and stops (with an I/O error, and the budget in [`EntryReader::stopped`]) when the
/// analysis' share of entry bytes or its time runs out.
pub(crate) struct EntryReader<R> {
    inner: R,
    pub(crate) crc: crc32fast::Hasher,
    pub(crate) bytes: u64,
    /// Bytes this entry may read, drawn from the file's budget of entry bytes.
    allowance: u64,
    /// Whether the budget (rather than the entry's own cap) set the allowance.
    budget_bound: bool,
    /// What was drawn from the file's budget for this entry.
    drawn: u64,
    deadline: Option<Instant>,
    checked_at: u64,
    pub(crate) stopped: Option<Budget>,
}

impl<R> EntryReader<R> {
    /// Ends the reading: what the caller settles with the analysis' budgets.
    pub(crate) fn end(self) -> EntryEnd {
        EntryEnd { unused: self.drawn.saturating_sub(self.bytes), stopped: self.stopped, bytes: self.bytes }
    }

    fn stop(&mut self, budget: Budget) -> io::Error {
        self.stopped = Some(budget);
        io::Error::other(match budget {
            Budget::Time => "analysis deadline reached",
            _ => "the file's budget of zip entry bytes is spent",
        })
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl<R: Read> Read for EntryReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(budget) = self.stopped {
            return Err(self.stop(budget));
        }
        if out.is_empty() {
            return Ok(0);
        }
        let room = self.allowance.saturating_sub(self.bytes);
        if room == 0 {
            // At the entry's own cap this is its end (the caller checks the cap). At the
            // budget's, it is the end only if the entry has no byte more.
            if !self.budget_bound || self.inner.read(&mut [0u8; 1])? == 0 {
                return Ok(0);
            }
            return Err(self.stop(Budget::InflatedBytes));
        }
        let want = usize::try_from(room).unwrap_or(usize::MAX).min(out.len());
        let n = match self.inner.read(&mut out[..want]) {
            Ok(n) => n,
            // The raw reader stops at the deadline too (see `Deadlined`).
            Err(_) if self.past_deadline() => return Err(self.stop(Budget::Time)),
            Err(e) => return Err(e),
        };
        self.crc.update(&out[..n]);
        self.bytes += n as u64;
        if self.bytes - self.checked_at >= INFLATE_CHECK_EVERY {
            self.checked_at = self.bytes;
            if self.past_deadline() {
                return Err(self.stop(Budget::Time));
            }
        }
        Ok(n)
    }
}

/// How the reading of an entry ended.
pub(crate) struct EntryEnd {
    /// Bytes drawn from the file's budget but not read: to be given back.
    pub(crate) unused: u64,
    /// The budget that stopped the reading, if one did.
    pub(crate) stopped: Option<Budget>,
    pub(crate) bytes: u64,
}

/// The compressed bytes of an entry, read with an eye on the clock: a deflate stream of
/// empty blocks yields nothing for as long as its input lasts, and one `read` of the
/// inflater would otherwise run through all of it.
struct Deadlined<R> {
    inner: R,
    deadline: Option<Instant>,
    since_check: u64,
}

impl<R: Read> Read for Deadlined<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.since_check += n as u64;
        if self.since_check >= INFLATE_CHECK_EVERY {
            self.since_check = 0;
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::Error::other("analysis deadline reached"));
            }
        }
        Ok(n)
    }
}

/// What reading one entry may spend.
pub(crate) struct EntryBudget {
    /// Most uncompressed bytes read from this entry (the per-entry cap is below it: one
    /// byte past that cap is read so that exceeding it shows).
    pub(crate) max_bytes: u64,
    /// What was drawn for this entry from the file's budget of entry bytes.
    pub(crate) allowance: u64,
    pub(crate) deadline: Option<Instant>,
}

/// Opens an entry's uncompressed stream, capped at `budget.max_bytes` (+1, so exceeding
/// the cap is visible). `None` for compression methods this reader does not inflate.
pub(crate) fn open_entry<'s, R: Read + Seek>(
    src: &'s mut Source<'_, R>,
    entry: &Entry,
    start: u64,
    budget: &EntryBudget,
) -> Result<Option<EntryReader<Box<dyn Read + 's>>>, ReadError> {
    src.seek_to(start)?;
    let raw = Deadlined {
        inner: Read::take(src, entry.compressed_size),
        deadline: budget.deadline,
        since_check: 0,
    };
    let capped = budget.max_bytes.saturating_add(1);
    let inner: Box<dyn Read + 's> = match entry.method {
        METHOD_STORED => Box::new(raw.take(capped)),
        METHOD_DEFLATED => Box::new(flate2::read::DeflateDecoder::new(raw).take(capped)),
        _ => return Ok(None),
    };
    Ok(Some(EntryReader {
        inner,
        crc: crc32fast::Hasher::new(),
        bytes: 0,
        allowance: budget.allowance.min(capped),
        budget_bound: budget.allowance < capped,
        drawn: budget.allowance,
        deadline: budget.deadline,
        checked_at: 0,
        stopped: None,
    }))
}

/// Human name of a compression method, for findings.
pub(crate) fn method_name(method: u16) -> String {
    match method {
        0 => "stored".into(),
        8 => "deflate".into(),
        9 => "deflate64".into(),
        12 => "bzip2".into(),
        14 => "lzma".into(),
        93 => "zstd".into(),
        95 => "xz".into(),
        99 => "AES-encrypted".into(),
        other => format!("method {other}"),
    }
}
