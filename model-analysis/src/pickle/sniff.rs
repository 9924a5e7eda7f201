//! Is it a pickle? Decided by what CPython would do with the first bytes: import
//! something, finish a well-formed stream, or keep reading valid opcodes for long.

use std::io::{Read, Seek};

use super::walker::{self, End, WalkLimits};
use super::{PickleReport, Streamed, scan_sequence};
use crate::finding::FindingKind;
use crate::limits::Scan;
use crate::source::Source;

/// Opcodes a file whose content sniffing could not decide is walked for.
const SNIFF_OPCODES: u64 = 256;
/// Bytes that longer look may read (payloads are seeked over, not read): as much as a
/// pickle analysis may, so that one long text argument cannot hide what follows it.
const SNIFF_BYTES: u64 = 64 << 20;
/// Opcodes a prefix must hold, valid, to count as a pickle without a PROTO header.
pub(crate) const LONG_PREFIX_OPCODES: u64 = 64;

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
