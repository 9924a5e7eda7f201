//! Static pickle analysis: walk the opcodes, name the imports and calls, judge them
//! against the allowlist. Nothing is ever unpickled.
//!
//! Fail closed: a stream that is malformed, truncated, or too big to finish is a
//! finding, and whatever was seen before the problem is still reported (CPython runs
//! the opcodes before the one it chokes on).

mod input;
mod opcodes;
mod policy;
mod walker;

use std::io::{Read, Seek};

use serde::Serialize;

pub use opcodes::is_plausible_first_opcode;
pub use policy::{ImportVerdict, classify_import};
use walker::{End, Walk, WalkLimits};

use crate::finding::{Finding, FindingKind, clip};
use crate::limits::{Limits, Scan};
use crate::source::Source;

/// Streams recorded per report (all are walked).
const MAX_STREAMS_RECORDED: usize = 64;
/// Distinct imports and calls recorded per report.
const MAX_IMPORTS_RECORDED: usize = 512;

/// What the pickle streams of a file import and call.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PickleReport {
    /// The streams walked (a legacy PyTorch file has several; a zip has one per entry).
    pub streams: Vec<PickleStream>,
    pub imports: Vec<PickleImport>,
    pub calls: Vec<PickleCall>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PickleStream {
    /// Where the stream lives: `stream 0`, a zip entry name...
    pub origin: String,
    pub protocol: Option<u8>,
    pub opcodes: u64,
    pub bytes: u64,
    /// Whether it ended with STOP.
    pub complete: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PickleImport {
    pub module: String,
    pub name: String,
    pub verdict: ImportVerdict,
    /// Why a dangerous import is dangerous.
    pub reason: Option<String>,
    /// GLOBAL, INST or STACK_GLOBAL.
    pub opcode: String,
    pub count: u64,
    /// The stream that first imported it.
    pub origin: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PickleCall {
    /// `module.name` of the callable.
    pub callable: String,
    /// REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST or BUILD.
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

/// Checks whether `prefix` is (the start of) a pickle stream.
#[must_use]
pub fn check_prefix(prefix: &[u8]) -> PrefixVerdict {
    let walk = walker::walk(
        prefix,
        &WalkLimits {
            max_bytes: prefix.len() as u64,
            max_stack: 4096,
            max_memo: 4096,
            len_hint: None,
            deadline: None,
        },
    );
    match walk.end {
        End::Stop => PrefixVerdict::Complete { opcodes: walk.opcodes },
        End::InputEnded { .. } => PrefixVerdict::ValidSoFar { opcodes: walk.opcodes },
        _ => PrefixVerdict::Invalid,
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
    scan_sequence(&mut src, 0, MAX_SEQUENCE, &mut report, &mut scan);
    (report, scan.into_findings())
}

/// Pickles walked back to back in one raw file: a legacy PyTorch file has 5, a joblib
/// or `pickle.dump`-many file any number. A new stream must open with PROTO 2-5 (what
/// every pickler since Python 2.3 writes); other bytes after a STOP are data (legacy
/// PyTorch storages), not pickle.
pub(crate) const MAX_SEQUENCE: usize = 16;

/// Walks the pickles stored back to back from `start` in a file: at most `max_streams`,
/// continuing while the next bytes open a new stream (see [`MAX_SEQUENCE`]).
pub(crate) fn scan_sequence<R: Read + Seek>(
    src: &mut Source<'_, R>,
    start: u64,
    max_streams: usize,
    report: &mut PickleReport,
    scan: &mut Scan,
) {
    let mut offset = start;
    for index in 0..max_streams {
        if src.seek_to(offset).is_err() {
            break;
        }
        let len = src.remaining();
        let walk = scan_stream(&mut *src, &format!("stream {index}"), Some(len), report, scan);
        let next = offset.saturating_add(walk.bytes);
        let mut head = [0u8; 2];
        let more = walk.complete
            && src.seek_to(next).is_ok()
            && src.read_exact(&mut head).is_ok()
            && head[0] == 0x80
            && (2..=5).contains(&head[1]);
        if !more {
            break;
        }
        offset = next;
    }
}

/// The parts of a walk the callers need.
pub(crate) struct WalkSummary {
    pub(crate) complete: bool,
    pub(crate) bytes: u64,
}

/// Walks one stream from `input`, adds what it found to `report`, and reports findings.
pub(crate) fn scan_stream<R: Read>(
    input: R,
    origin: &str,
    len_hint: Option<u64>,
    report: &mut PickleReport,
    scan: &mut Scan,
) -> WalkSummary {
    let budget = scan.limits.max_pickle_bytes.saturating_sub(scan.pickle_bytes);
    if budget == 0 {
        scan.find(
            FindingKind::PickleResourceLimit,
            format!("{origin}: not inspected, the pickle byte budget of the file is spent"),
        );
        return WalkSummary { complete: false, bytes: 0 };
    }
    let walk = walker::walk(
        input,
        &WalkLimits {
            max_bytes: budget,
            max_stack: scan.limits.max_pickle_stack,
            max_memo: scan.limits.max_pickle_memo,
            len_hint,
            deadline: scan.deadline(),
        },
    );
    scan.pickle_bytes += walk.bytes;
    record(&walk, origin, report, scan)
}

fn record(walk: &Walk, origin: &str, report: &mut PickleReport, scan: &mut Scan) -> WalkSummary {
    let complete = walk.end == End::Stop;
    if report.streams.len() < MAX_STREAMS_RECORDED {
        report.streams.push(PickleStream {
            origin: clip(origin),
            protocol: walk.protocol,
            opcodes: walk.opcodes,
            bytes: walk.bytes,
            complete,
        });
    }
    for site in &walk.imports {
        record_import(site, origin, report, scan);
    }
    for call in &walk.calls {
        let Some(site) = walk.imports.get(call.callable as usize) else {
            continue;
        };
        let callable = clip(&format!("{}.{}", site.module, site.name));
        if let Some(existing) =
            report.calls.iter_mut().find(|c| c.callable == callable && c.opcode == call.via)
        {
            existing.count += call.count;
        } else if report.calls.len() < MAX_IMPORTS_RECORDED {
            report.calls.push(PickleCall { callable, opcode: call.via.to_owned(), count: call.count });
        }
    }
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
    report_end(walk, origin, scan);
    WalkSummary { complete, bytes: walk.bytes }
}

fn record_import(site: &walker::ImportSite, origin: &str, report: &mut PickleReport, scan: &mut Scan) {
    let (verdict, reason) = classify_import(&site.module, &site.name);
    let module = clip(&site.module);
    let name = clip(&site.name);
    let path = format!("{module}.{name}");
    match verdict {
        ImportVerdict::Dangerous => scan.find(
            FindingKind::PickleDangerousImport,
            format!("{origin}: imports {path} ({})", reason.unwrap_or("known gadget")),
        ),
        ImportVerdict::Unknown => scan.find(
            FindingKind::PickleUnknownImport,
            format!("{origin}: imports {path}, outside the ML allowlist"),
        ),
        ImportVerdict::Allowed => {}
    }
    if let Some(existing) = report.imports.iter_mut().find(|i| i.module == module && i.name == name) {
        existing.count += site.count;
    } else if report.imports.len() < MAX_IMPORTS_RECORDED {
        report.imports.push(PickleImport {
            module,
            name,
            verdict,
            reason: reason.map(str::to_owned),
            opcode: site.via.to_owned(),
            count: site.count,
            origin: clip(origin),
        });
    }
}

fn report_end(walk: &Walk, origin: &str, scan: &mut Scan) {
    let at = walk.bytes;
    match &walk.end {
        End::Stop => {}
        End::InputEnded { .. } => scan.find(
            FindingKind::PickleMalformed,
            format!("{origin}: the stream ends at byte {at} without STOP (truncated)"),
        ),
        End::Malformed(why) => {
            scan.find(FindingKind::PickleMalformed, format!("{origin}: {}", clip(why)));
        }
        End::Limit(why) => scan.find(
            FindingKind::PickleResourceLimit,
            format!("{origin}: {why} at byte {at}; the rest was not inspected"),
        ),
        End::Deadline => {
            scan.out_of_time();
        }
        End::Io(why) => scan.find(FindingKind::ReadFailed, format!("{origin}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(findings: &[Finding]) -> Vec<FindingKind> {
        findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn benign_ordered_dict_pickle_has_no_findings() {
        // pickle.dumps(collections.OrderedDict(), protocol=2)
        let bytes = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";
        let (report, findings) = scan_pickle_bytes(bytes, &Limits::default());
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(report.imports.len(), 1);
        assert_eq!(report.imports[0].verdict, ImportVerdict::Allowed);
        assert_eq!(report.calls[0].opcode, "REDUCE");
        assert!(report.streams[0].complete);
    }

    #[test]
    fn os_system_is_critical() {
        let (report, findings) = scan_pickle_bytes(b"cos\nsystem\n(S'id'\ntR.", &Limits::default());
        assert!(report.has_dangerous_import());
        assert_eq!(kinds(&findings), [FindingKind::PickleDangerousImport]);
        assert_eq!(findings[0].severity, crate::Severity::Critical);
    }

    #[test]
    fn payload_before_a_parse_error_is_still_reported() {
        let (_, findings) = scan_pickle_bytes(b"cos\nsystem\n(S'id'\ntR\xff", &Limits::default());
        assert!(kinds(&findings).contains(&FindingKind::PickleDangerousImport));
        assert!(kinds(&findings).contains(&FindingKind::PickleMalformed));
    }

    #[test]
    fn a_second_stream_is_walked_too() {
        let mut bytes = b"\x80\x02N.".to_vec();
        bytes.extend_from_slice(b"\x80\x02cposix\nsystem\nq\x00.");
        let (report, findings) = scan_pickle_bytes(&bytes, &Limits::default());
        assert_eq!(report.streams.len(), 2);
        assert_eq!(kinds(&findings), [FindingKind::PickleDangerousImport]);
    }

    #[test]
    fn byte_budget_is_a_finding() {
        let limits = Limits { max_pickle_bytes: 16, ..Limits::default() };
        let mut bytes = vec![0x80, 0x04, 0x8e];
        bytes.extend_from_slice(&64u64.to_le_bytes());
        bytes.extend_from_slice(&[0; 64]);
        bytes.push(b'.');
        let (_, findings) = scan_pickle_bytes(&bytes, &limits);
        assert_eq!(kinds(&findings), [FindingKind::PickleResourceLimit]);
    }

    #[test]
    fn prefix_verdicts() {
        assert_eq!(check_prefix(b"\x80\x02N."), PrefixVerdict::Complete { opcodes: 3 });
        assert_eq!(check_prefix(b"\x80\x02(N"), PrefixVerdict::ValidSoFar { opcodes: 3 });
        assert_eq!(check_prefix(b"\x80\x02\x00"), PrefixVerdict::Invalid);
    }
}
