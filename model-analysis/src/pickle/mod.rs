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
mod walker;

use std::collections::HashMap;
use std::io::{Read, Seek};

use serde::Serialize;

pub use policy::{ImportVerdict, classify_import};

use crate::finding::{Finding, FindingKind, Severity, clip};
use crate::limits::{Limits, Scan};
use crate::source::Source;
pub(crate) use input::{PickleSource, Streamed};
use walker::{End, Walk, WalkLimits};

/// Streams recorded per report (all are walked).
const MAX_STREAMS_RECORDED: usize = 64;
/// Distinct imports and calls recorded per report.
const MAX_IMPORTS_RECORDED: usize = 512;
/// Opcodes a file whose content sniffing could not decide is walked for.
const SNIFF_OPCODES: u64 = 256;
/// Bytes that longer look may read (payloads are seeked over, not read): as much as a
/// pickle analysis may, so that one long text argument cannot hide what follows it.
const SNIFF_BYTES: u64 = 64 << 20;
/// Opcodes a prefix must hold, valid, to count as a pickle without a PROTO header.
pub(crate) const LONG_PREFIX_OPCODES: u64 = 64;

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

/// The outcome of looking at a prefix only, for sniffing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixVerdict {
    /// A whole pickle (ending in STOP) fits in the prefix.
    Complete {
        opcodes: u64,
    },
    /// The prefix is a valid start of a pickle.
    ValidSoFar {
        opcodes: u64,
    },
    Invalid,
}

/// What a walk over the first bytes of a file says about it being a pickle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Look {
    /// The first stream reached STOP.
    pub(crate) complete: bool,
    /// No stream failed before the bytes looked at ran out.
    pub(crate) valid: bool,
    /// Opcodes run, over every stream looked at.
    pub(crate) opcodes: u64,
    /// The first stream ran a PROTO opcode.
    pub(crate) proto: bool,
    /// An import ran (CPython would have imported it).
    pub(crate) ran_code: bool,
}

impl Look {
    /// The sniffing rule: CPython would run code from it, or it is a well-formed
    /// pickle, or it stays a valid opcode stream for long.
    pub(crate) fn is_pickle(&self, lenient: bool) -> bool {
        self.ran_code
            || (self.complete && (self.opcodes >= 3 || self.proto))
            || (self.valid && self.proto && self.opcodes >= 2)
            || (self.valid && self.opcodes >= LONG_PREFIX_OPCODES)
            || (lenient && self.valid && self.opcodes >= 2)
    }
}

fn sniff_limits(max_bytes: u64, max_opcodes: Option<u64>, linear_frames: bool) -> WalkLimits {
    WalkLimits { max_bytes, max_stack: 4096, max_memo: 4096, max_opcodes, deadline: None, linear_frames }
}

/// [`sniff_limits`] for a look at a whole file, within the analysis's deadline.
fn file_sniff_limits(max_opcodes: Option<u64>, linear_frames: bool, scan: &Scan) -> WalkLimits {
    WalkLimits { deadline: scan.deadline(), ..sniff_limits(SNIFF_BYTES, max_opcodes, linear_frames) }
}

/// Looks at `prefix`, the first bytes of a stream of `total_len` bytes (`u64::MAX`
/// when unknown): every pickle stream that fits in it, read as an unbuffered and,
/// when frames are inconsistent, as a buffered file would be.
pub(crate) fn look_at_prefix(prefix: &[u8], total_len: u64) -> Look {
    let (look, framing) = look_at_prefix_as(prefix, total_len, false);
    if !framing {
        return look;
    }
    let (linear, _) = look_at_prefix_as(prefix, total_len, true);
    if linear.is_pickle(false) { linear } else { look }
}

fn look_at_prefix_as(prefix: &[u8], total_len: u64, linear: bool) -> (Look, bool) {
    let mut look = Look { valid: true, ..Look::default() };
    let mut framing = false;
    let mut offset = 0usize;
    for index in 0.. {
        let rest = &prefix[offset.min(prefix.len())..];
        if rest.is_empty() {
            break;
        }
        let len = total_len.saturating_sub(offset as u64);
        let walk = walker::walk(Streamed(rest), len, &sniff_limits(prefix.len() as u64, None, linear));
        look.opcodes += walk.opcodes;
        look.ran_code |= !walk.imports.is_empty();
        framing |= walk.framing.is_some();
        if index == 0 {
            look.proto = walk.protocol.is_some();
            look.complete = walk.end == End::Stop;
        }
        match walk.end {
            End::Stop => offset += usize::try_from(walk.next_offset).unwrap_or(usize::MAX),
            // The prefix ran out (or a cap of this quick look): valid so far.
            End::Truncated | End::Limit(_) => break,
            _ => {
                look.valid = index > 0;
                break;
            }
        }
    }
    (look, framing)
}

/// Checks whether `prefix` is (the start of) a pickle stream.
#[must_use]
pub fn check_prefix(prefix: &[u8]) -> PrefixVerdict {
    let walk =
        walker::walk(Streamed(prefix), prefix.len() as u64, &sniff_limits(prefix.len() as u64, None, false));
    match walk.end {
        End::Stop => PrefixVerdict::Complete { opcodes: walk.opcodes },
        End::Truncated => PrefixVerdict::ValidSoFar { opcodes: walk.opcodes },
        _ => PrefixVerdict::Invalid,
    }
}

/// A longer look than the prefix allows, from the file itself: the first stream is
/// walked for a few hundred opcodes, payloads skipped by seeking (a pickle may open
/// with a string longer than any prefix).
pub(crate) fn sniff_file<R: Read + Seek>(src: &mut Source<'_, R>, lenient: bool, scan: &Scan) -> bool {
    [false, true].into_iter().any(|linear| sniff_file_as(src, linear, scan).is_pickle(lenient))
}

/// A file identified as another format may still be a pickle to `pickle.load` (a
/// polyglot: `torch.load` unpickles any file that is not a zip, whatever its magic).
/// When `load()` would import something from it, its streams are walked too.
pub(crate) fn scan_polyglot<R: Read + Seek>(
    src: &mut Source<'_, R>,
    format_name: &str,
    pickle: &mut Option<PickleReport>,
    scan: &mut Scan,
) {
    if ![false, true].into_iter().any(|linear| sniff_file_as(src, linear, scan).ran_code) {
        return;
    }
    scan.find(
        FindingKind::PicklePolyglot,
        format!("the {format_name} file is also a pickle whose load() imports: its streams were walked too"),
    );
    let mut raw = PickleReport::default();
    scan_sequence(src, 0, None, &mut raw, scan);
    match pickle {
        None => *pickle = Some(raw),
        Some(report) => {
            report.streams.extend(raw.streams);
            report.stream_count += raw.stream_count;
            report.imports.extend(raw.imports);
            report.calls.extend(raw.calls);
        }
    }
}

/// [`sniff_file`] for one reading of the frames: every stream in turn, for a few
/// hundred opcodes in all.
fn sniff_file_as<R: Read + Seek>(src: &mut Source<'_, R>, linear: bool, scan: &Scan) -> Look {
    let mut look = Look { valid: true, ..Look::default() };
    let mut offset = 0u64;
    for index in 0.. {
        if offset >= src.len() || look.opcodes >= SNIFF_OPCODES || src.seek_to(offset).is_err() {
            break;
        }
        let len = src.remaining();
        let budget = Some(SNIFF_OPCODES - look.opcodes);
        let walk = walker::walk(&mut *src, len, &file_sniff_limits(budget, linear, scan));
        look.opcodes += walk.opcodes;
        look.ran_code |= !walk.imports.is_empty();
        if index == 0 {
            look.proto = walk.protocol.is_some();
            look.complete = walk.end == End::Stop;
        }
        match walk.end {
            End::Stop => offset += walk.next_offset.max(1),
            End::Truncated | End::Limit(_) => break,
            _ => {
                look.valid = index > 0;
                break;
            }
        }
    }
    look
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

fn record(walk: &Walk, context: &StreamContext<'_>, report: &mut PickleReport, scan: &mut Scan) {
    let (origin, offset, first) = (context.origin, context.offset, context.first);
    let complete = walk.end == End::Stop;
    // A stream after the first that fails without running anything is not a pickle:
    // it is the file's trailing data.
    let trailing =
        !first && !complete && !walk.ran_code() && matches!(walk.end, End::Truncated | End::Malformed(_));
    if trailing {
        return;
    }
    if !context.linear && report.streams.len() < MAX_STREAMS_RECORDED {
        report.streams.push(PickleStream {
            origin: clip(origin),
            offset,
            protocol: walk.protocol,
            opcodes: walk.opcodes,
            bytes: walk.bytes,
            complete,
            divergence: walk.divergence.as_ref().map(|d| clip(&format!("at byte {}: {}", d.offset, d.why))),
            framing: walk.framing.as_ref().map(|f| format!("at byte {}: {}", f.offset, f.what)),
        });
    }
    let mut called = vec![false; walk.imports.len()];
    for call in &walk.calls {
        if let Some(slot) = called.get_mut(call.callable as usize) {
            *slot = true;
        }
    }
    let mut index: HashMap<(String, String), usize> = report
        .imports
        .iter()
        .enumerate()
        .map(|(i, import)| ((import.module.clone(), import.name.clone()), i))
        .collect();
    for (site, &called) in walk.imports.iter().zip(&called) {
        let loader_dependent = site.loader_dependent || context.after_divergence;
        let key = (lossy(&site.module), lossy(&site.name));
        match index.get(&key) {
            // The buffered reading only reports what the first reading did not see.
            Some(_) if context.linear => {}
            Some(&i) => merge_import(&mut report.imports[i], site, called, loader_dependent, origin, scan),
            None => {
                if let Some(i) =
                    record_import(key.clone(), site, called, loader_dependent, origin, report, scan)
                {
                    index.insert(key, i);
                }
            }
        }
    }
    record_calls(walk, report);
    report_unresolved(walk, origin, scan);
    if let Some(anomaly) = &walk.framing {
        scan.find(
            FindingKind::PickleMalformed,
            format!(
                "{origin}: at byte {}, {}: readers with and without buffering run different opcodes from here",
                anomaly.offset, anomaly.what
            ),
        );
    }
    if !context.linear || matches!(walk.end, End::Limit(_) | End::Deadline | End::Io(_)) {
        report_end(walk, origin, first, scan);
    }
}

fn lossy(bytes: &[u8]) -> String {
    clip(&String::from_utf8_lossy(bytes))
}

/// A new import: judged, reported, and recorded while the report has room (its index).
fn record_import(
    (module, name): (String, String),
    site: &walker::ImportSite,
    called: bool,
    loader_dependent: bool,
    origin: &str,
    report: &mut PickleReport,
    scan: &mut Scan,
) -> Option<usize> {
    let written = site.written.as_ref().map(|(m, n)| (lossy(m), lossy(n)));
    let (mut verdict, mut reason) = classify_import(&module, &name);
    if let Some((m, n)) = &written {
        let (v, r) = classify_import(m, n);
        if v == ImportVerdict::Dangerous {
            (verdict, reason) = (v, r);
        }
    }
    let room = report.imports.len() < MAX_IMPORTS_RECORDED;
    // Past the report's cap, only what is high or worse is still worth a message.
    if room || verdict == ImportVerdict::Dangerous || called {
        report_import(&module, &name, verdict, reason, called, loader_dependent, origin, scan);
    }
    if !room {
        return None;
    }
    report.imports.push(PickleImport {
        module,
        name,
        written_as: written.map(|(m, n)| format!("{m}.{n}")),
        verdict,
        reason: reason.map(str::to_owned),
        opcode: site.via.to_owned(),
        count: site.count,
        origin: clip(origin),
        called,
        loader_dependent,
    });
    Some(report.imports.len() - 1)
}

/// An import seen before: counted; reported again only when it is now called.
fn merge_import(
    existing: &mut PickleImport,
    site: &walker::ImportSite,
    called: bool,
    loader_dependent: bool,
    origin: &str,
    scan: &mut Scan,
) {
    existing.count += site.count;
    existing.loader_dependent &= loader_dependent;
    if called && !existing.called {
        existing.called = true;
        if existing.verdict == ImportVerdict::Unknown {
            let (module, name) = (existing.module.clone(), existing.name.clone());
            report_import(&module, &name, existing.verdict, None, true, loader_dependent, origin, scan);
        }
    }
}

#[expect(clippy::too_many_arguments, reason = "one finding's facts; a struct would only rename them")]
fn report_import(
    module: &str,
    name: &str,
    verdict: ImportVerdict,
    reason: Option<&str>,
    called: bool,
    loader_dependent: bool,
    origin: &str,
    scan: &mut Scan,
) {
    let path = format!("{module}.{name}");
    let reached =
        if loader_dependent { " (reached by loaders that go past a default-unpickler error)" } else { "" };
    match verdict {
        ImportVerdict::Dangerous => scan.find(
            FindingKind::PickleDangerousImport,
            format!("{origin}: imports {path} ({}){reached}", reason.unwrap_or("known gadget")),
        ),
        ImportVerdict::Unknown if called => scan.report(
            Finding::new(
                FindingKind::PickleUnknownImport,
                format!("{origin}: imports and calls {path}, outside the ML allowlist: its code runs on load{reached}"),
            )
            .with_severity(Severity::High),
        ),
        ImportVerdict::Unknown => scan.find(
            FindingKind::PickleUnknownImport,
            format!("{origin}: imports {path}, outside the ML allowlist{reached}"),
        ),
        ImportVerdict::Allowed => {}
    }
}

fn record_calls(walk: &Walk, report: &mut PickleReport) {
    let names: Vec<String> = walk
        .imports
        .iter()
        .map(|site| clip(&format!("{}.{}", lossy(&site.module), lossy(&site.name))))
        .collect();
    let mut index: HashMap<(String, String), usize> =
        report.calls.iter().enumerate().map(|(i, c)| ((c.callable.clone(), c.opcode.clone()), i)).collect();
    for call in &walk.calls {
        let Some(callable) = names.get(call.callable as usize) else {
            continue;
        };
        let key = (callable.clone(), call.via.to_owned());
        if let Some(&i) = index.get(&key) {
            report.calls[i].count += call.count;
        } else if report.calls.len() < MAX_IMPORTS_RECORDED {
            report.calls.push(PickleCall {
                callable: key.0.clone(),
                opcode: key.1.clone(),
                count: call.count,
            });
            index.insert(key, report.calls.len() - 1);
        }
    }
}

fn report_unresolved(walk: &Walk, origin: &str, scan: &mut Scan) {
    if walk.unresolved > 0 {
        scan.find(
            FindingKind::PickleUnresolvedImport,
            format!(
                "{origin}: {} import(s) cannot be named statically: {}",
                walk.unresolved,
                walk.unresolved_examples.join("; ")
            ),
        );
    }
    if walk.indirect > 0 {
        scan.find(
            FindingKind::PickleIndirectCall,
            format!(
                "{origin}: {} call(s) of something other than a named import: {}",
                walk.indirect,
                walk.indirect_examples.join("; ")
            ),
        );
    }
}

fn report_deadline(origin: &str, at: u64, scan: &mut Scan) {
    scan.out_of_time();
    scan.find(
        FindingKind::PickleResourceLimit,
        format!("{origin}: the analysis deadline was reached at byte {at}; the rest was not inspected"),
    );
}

fn report_end(walk: &Walk, origin: &str, first: bool, scan: &mut Scan) {
    let at = walk.bytes;
    let why = match &walk.end {
        End::Stop => return,
        End::Truncated => format!("the stream ends at byte {at} before STOP (truncated)"),
        End::Malformed(why) => clip(why),
        End::Limit(why) => {
            scan.find(
                FindingKind::PickleResourceLimit,
                format!("{origin}: {why} at byte {at}; the rest was not inspected"),
            );
            return;
        }
        End::Deadline => return report_deadline(origin, at, scan),
        End::Io(why) => {
            scan.find(FindingKind::ReadFailed, format!("{origin}: {why}"));
            return;
        }
    };
    // CPython raises here. After running code, or in a stream that announced itself
    // with PROTO, that is a broken or hostile pickle; a first stream that ran nothing
    // is merely not a valid pickle.
    let severity =
        if walk.ran_code() || (first && walk.protocol.is_some()) { Severity::High } else { Severity::Medium };
    let ran = if walk.ran_code() { " (after running imports or calls)" } else { "" };
    scan.report(
        Finding::new(FindingKind::PickleMalformed, format!("{origin}: {why}{ran}")).with_severity(severity),
    );
}

#[cfg(test)]
mod tests;
