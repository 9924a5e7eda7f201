//! Static pickle analysis: walk the opcodes as CPython would run them, name the
//! imports and calls, judge them against the allowlist. Nothing is ever unpickled.
//!
//! A file is read the way `pickle.Unpickler(f).load()` called again and again reads it
//! (torch's legacy loader, `joblib`, any reader of concatenated pickles): every stream
//! that reaches STOP is a pickle, whatever its first opcode, and the next `load()`
//! starts where it ended. The bytes after the last stream that parses (the raw
//! storages of a legacy torch file) are not a pickle: they are reported by size. The
//! opcodes CPython runs before a stream fails still ran, so what they import counts.
//!
//! Fail closed: a budget that runs out, a stream that cannot be walked to its end, or
//! framing that readers disagree on is a finding.

mod allow;
mod compat;
mod deny;
mod input;
mod opcodes;
mod policy;
mod record;
mod sniff;
mod walker;

use std::io::{Read, Seek};

use serde::Serialize;

pub use policy::{ImportVerdict, classify_import};

use crate::finding::{Finding, FindingKind};
use crate::limits::{Limits, Scan};
use crate::source::Source;
pub(crate) use input::{PickleSource, Streamed};
use record::{record, report_deadline};
pub use sniff::{PrefixVerdict, check_prefix};
pub(crate) use sniff::{look_at_prefix, scan_polyglot, sniff_file};
use walker::{End, WalkLimits};

/// Streams recorded per report (all are walked).
const MAX_STREAMS_RECORDED: usize = 64;
/// Distinct imports and calls recorded per report.
const MAX_IMPORTS_RECORDED: usize = 512;

/// What the pickle streams of a file import and call.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PickleReport {
    /// The streams walked (a legacy PyTorch file has several; a zip has one per entry).
    pub streams: Vec<PickleStream>,
    /// How many streams were walked, including those past `streams`' cap.
    pub stream_count: u64,
    pub imports: Vec<PickleImport>,
    pub calls: Vec<PickleCall>,
    /// Bytes after the last stream that parses: not a pickle (legacy torch storages),
    /// not inspected.
    pub trailing_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PickleStream {
    /// Where the stream lives: `stream 0`, a zip entry name...
    pub origin: String,
    /// Offset of its first byte in the file or entry.
    pub offset: u64,
    pub protocol: Option<u8>,
    pub opcodes: u64,
    pub bytes: u64,
    /// Whether it ended with STOP.
    pub complete: bool,
    /// Where the default `pickle.Unpickler` stops while looser loaders go on (torch
    /// decodes Python 2 strings as UTF-8, a process may have registered extension
    /// codes...): the walk went on, and marks what it found after as loader-dependent.
    pub divergence: Option<String>,
    /// Where its frames are inconsistent, so that buffered and unbuffered readers run
    /// different opcodes (a finding too).
    pub framing: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PickleImport {
    /// What `find_class` receives (Python 2 names renamed as CPython does below
    /// protocol 3).
    pub module: String,
    pub name: String,
    /// `module.name` as the pickle wrote it, when renamed.
    pub written_as: Option<String>,
    pub verdict: ImportVerdict,
    /// Why a dangerous import is dangerous.
    pub reason: Option<String>,
    /// GLOBAL, INST or STACK_GLOBAL.
    pub opcode: String,
    pub count: u64,
    /// The stream that first imported it.
    pub origin: String,
    /// Whether the pickle calls it, hands it to a call, or runs its methods.
    pub called: bool,
    /// Whether only loaders looser than the default `pickle.Unpickler` reach it.
    pub loader_dependent: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PickleCall {
    /// `module.name` of the callable.
    pub callable: String,
    /// REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD, APPEND(S), SETITEM(S), ADDITEMS,
    /// or ARGUMENT (handed to a call).
    pub opcode: String,
    pub count: u64,
}

impl PickleReport {
    /// Whether any import is dangerous.
    #[must_use]
    pub fn has_dangerous_import(&self) -> bool {
        self.imports.iter().any(|i| i.verdict == ImportVerdict::Dangerous)
    }
}

impl<R: Read + Seek> PickleSource for Source<'_, R> {
    fn skip_ahead(&mut self, n: u64) -> std::io::Result<u64> {
        let n = n.min(self.remaining());
        self.skip(n).map_err(std::io::Error::other)?;
        Ok(n)
    }

    fn skips_cheaply(&self) -> bool {
        true
    }
}

impl<S: PickleSource + ?Sized> PickleSource for &mut S {
    fn skip_ahead(&mut self, n: u64) -> std::io::Result<u64> {
        (**self).skip_ahead(n)
    }

    fn skips_cheaply(&self) -> bool {
        (**self).skips_cheaply()
    }
}

/// Analyses an in-memory pickle (all the streams it holds back to back). For tests,
/// fuzzing and callers that already hold the bytes.
#[must_use]
pub fn scan_pickle_bytes(bytes: &[u8], limits: &Limits) -> (PickleReport, Vec<Finding>) {
    let mut scan = Scan::new(limits);
    let mut report = PickleReport::default();
    let mut cursor = std::io::Cursor::new(bytes);
    let mut src = Source::new(&mut cursor, bytes.len() as u64);
    scan_sequence(&mut src, 0, None, &mut report, &mut scan);
    (report, scan.into_findings())
}

/// Walks the pickles stored back to back from `start` in a file, as repeated
/// `load()` calls read them, until the end of the file or the first stream that does
/// not parse (at most `max_streams`: NumPy reads one).
///
/// The walk reads frames as the C unpickler does from an unbuffered file. When a
/// stream's frames are inconsistent, a buffered file (`open()`, which torch and
/// `pickle.load` get) reads small frames as a plain stream instead: the file is then
/// walked that way too, and what only that reading finds is loader-dependent.
pub(crate) fn scan_sequence<R: Read + Seek>(
    src: &mut Source<'_, R>,
    start: u64,
    max_streams: Option<usize>,
    report: &mut PickleReport,
    scan: &mut Scan,
) {
    if walk_sequence(src, start, max_streams, false, report, scan) {
        walk_sequence(src, start, max_streams, true, report, scan);
    }
}

/// One reading of the sequence; returns whether a stream had inconsistent frames.
fn walk_sequence<R: Read + Seek>(
    src: &mut Source<'_, R>,
    start: u64,
    max_streams: Option<usize>,
    linear: bool,
    report: &mut PickleReport,
    scan: &mut Scan,
) -> bool {
    let mut offset = start;
    let mut index = 0usize;
    // Once a stream diverges, the default unpickler never reaches the streams after it.
    let mut diverged = linear;
    let mut framing = false;
    while offset < src.len() && max_streams.is_none_or(|max| index < max) {
        if scan.out_of_time() {
            report_deadline(&format!("stream {index}"), offset, scan);
            break;
        }
        if src.seek_to(offset).is_err() {
            break;
        }
        let reading = if linear { ", read through a buffered file" } else { "" };
        let origin = if index == 0 {
            format!("stream 0{reading}")
        } else {
            format!("stream {index} (byte {offset}{reading})")
        };
        let len = src.remaining();
        let context =
            StreamContext { origin: &origin, offset, first: index == 0, after_divergence: diverged, linear };
        let outcome = scan_stream_at(&mut *src, &context, len, report, scan);
        diverged |= outcome.diverged;
        framing |= outcome.framing;
        index += 1;
        if !linear {
            report.stream_count += 1;
        }
        match outcome.next {
            Some(next) if next > offset => offset = next,
            _ => {
                if !linear {
                    report.trailing_bytes = src.len().saturating_sub(offset);
                }
                break;
            }
        }
    }
    framing
}

/// Walks one pickle stream: a zip entry, an array's object data. `len` is its length
/// (the declared size of an entry).
pub(crate) fn scan_stream<R: Read>(
    input: R,
    origin: &str,
    len: u64,
    report: &mut PickleReport,
    scan: &mut Scan,
) {
    let context = StreamContext { origin, offset: 0, first: true, after_divergence: false, linear: false };
    scan_stream_at(Streamed(input), &context, len, report, scan);
    report.stream_count += 1;
}

/// Where a stream lies in its file.
struct StreamContext<'a> {
    origin: &'a str,
    offset: u64,
    /// The first stream of the file or entry (a failing later one is trailing data).
    first: bool,
    /// An earlier stream diverged (see [`PickleStream::divergence`]).
    after_divergence: bool,
    /// The second reading of a file with inconsistent frames, as a buffered reader
    /// reads it: only what it adds is reported.
    linear: bool,
}

struct StreamOutcome {
    /// Where the next stream starts, when this one parsed.
    next: Option<u64>,
    diverged: bool,
    /// The stream's frames were inconsistent.
    framing: bool,
}

/// Walks one stream and records it.
fn scan_stream_at<S: PickleSource>(
    src: S,
    context: &StreamContext<'_>,
    len: u64,
    report: &mut PickleReport,
    scan: &mut Scan,
) -> StreamOutcome {
    let origin = context.origin;
    let budget = scan.limits.max_pickle_bytes.saturating_sub(scan.pickle_bytes);
    if budget == 0 {
        scan.find(
            FindingKind::PickleResourceLimit,
            format!("{origin}: not inspected, the pickle byte budget of the file is spent"),
        );
        return StreamOutcome { next: None, diverged: false, framing: false };
    }
    let walk = walker::walk(
        src,
        len,
        &WalkLimits {
            max_bytes: budget,
            max_stack: scan.limits.max_pickle_stack,
            max_memo: scan.limits.max_pickle_memo,
            max_opcodes: None,
            deadline: scan.deadline(),
            linear_frames: context.linear,
        },
    );
    scan.pickle_bytes += walk.bytes_read;
    record(&walk, context, report, scan);
    StreamOutcome {
        next: (walk.end == End::Stop).then(|| context.offset.saturating_add(walk.next_offset)),
        diverged: walk.divergence.is_some(),
        framing: walk.framing.is_some(),
    }
}

#[cfg(test)]
mod tests;
