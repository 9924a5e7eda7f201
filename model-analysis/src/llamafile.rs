//! llamafile: an executable (ELF, or an APE polyglot) that carries a GGUF. The weights
//! are a stored, page-aligned entry of the zip appended to the executable (`zipalign`),
//! so the zip directory finds them; a bounded probe of aligned offsets covers binaries
//! built some other way.

use std::io::{Read, Seek};

use crate::limits::{Budget, Scan};
use crate::source::Source;
use crate::zip;

/// Alignment of the fallback probe: zipalign aligns to pages.
const PROBE_STEP: u64 = 4096;
/// `.gguf` entries of the executable's zip looked at (a llamafile has one).
const MAX_GGUF_ENTRIES: usize = 16;
/// Smallest header: magic, version, and (v2+) two 64-bit counts.
const PROBE_LEN: usize = 24;
/// Smallest possible KV pair and tensor info on disk (v2+), for the plausibility check.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 4 + 8;

/// The offset of an embedded GGUF, if the executable in `src` has one.
pub(crate) fn find_embedded_gguf<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<u64> {
    scan.enter("the executable's zip directory");
    let found = from_zip_directory(src, scan);
    scan.enter("the executable's aligned offsets");
    found.or_else(|| probe_aligned(src, scan))
}

fn from_zip_directory<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<u64> {
    // An executable without a zip is the common case, not an anomaly: probe with a
    // scratch scan whose findings are dropped, but whose budgets are this analysis'.
    let mut probe_scan = scan.probe();
    let found = zip_gguf_entry(src, &mut probe_scan);
    scan.absorb_budgets(probe_scan);
    found
}

fn zip_gguf_entry<R: Read + Seek>(src: &mut Source<'_, R>, probe_scan: &mut Scan) -> Option<u64> {
    let dir = zip::read_directory(src, probe_scan)?;
    let mut candidates = dir
        .entries
        .iter()
        .filter(|e| e.method == zip::METHOD_STORED && e.name.to_ascii_lowercase().ends_with(".gguf"));
    for entry in candidates.by_ref().take(MAX_GGUF_ENTRIES) {
        let Ok((start, _)) = zip::data_range(src, &dir, entry, probe_scan) else {
            continue;
        };
        if plausible_gguf(src, start) {
            return Some(start);
        }
    }
    if candidates.next().is_some() {
        // The model may be among the entries not probed: not a pass.
        probe_scan.exhaust(
            Budget::Items,
            format!("the first {MAX_GGUF_ENTRIES} .gguf entries of the executable's zip were probed"),
        );
    }
    None
}

fn probe_aligned<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<u64> {
    let end = src.len().min(scan.limits.max_header_bytes);
    let mut at = PROBE_STEP;
    while at + 8 <= end {
        // A probe is a system call: count it as a page of work.
        if scan.tick(PROBE_STEP, at) {
            return None;
        }
        if plausible_gguf(src, at) {
            return Some(at);
        }
        at += PROBE_STEP;
    }
    None
}

/// Whether a GGUF header at `at` is worth parsing: the magic, a known version, and
/// counts that the rest of the file can hold. Pages of an executable that merely start
/// with `GGUF` are skipped, so that a run of fake magics does not stand for the model.
fn plausible_gguf<R: Read + Seek>(src: &mut Source<'_, R>, at: u64) -> bool {
    let mut head = [0u8; PROBE_LEN];
    let available = usize::try_from(src.len().saturating_sub(at)).unwrap_or(PROBE_LEN).min(PROBE_LEN);
    if available < 8 || src.probe(at, &mut head[..available]).is_err() || &head[..4] != b"GGUF" {
        return false;
    }
    let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(1..=3).contains(&version) {
        return false;
    }
    if version == 1 {
        // v1 counts are 32-bit: the parser checks them.
        return true;
    }
    if available < PROBE_LEN {
        return false;
    }
    let u64_at = |i: usize| {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&head[i..i + 8]);
        u64::from_le_bytes(raw)
    };
    let (tensors, kvs) = (u64_at(8), u64_at(16));
    let room = src.len().saturating_sub(at + PROBE_LEN as u64);
    kvs.saturating_mul(MIN_KV_BYTES).saturating_add(tensors.saturating_mul(MIN_TENSOR_INFO_BYTES)) <= room
}
