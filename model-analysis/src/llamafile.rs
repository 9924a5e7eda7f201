//! llamafile: an executable (ELF, or an APE polyglot) that carries a GGUF. The weights
//! are a stored, page-aligned entry of the zip appended to the executable (`zipalign`),
//! so the zip directory finds them; a bounded probe of aligned offsets covers binaries
//! built some other way.

use std::io::{Read, Seek};

use crate::limits::{Limits, Scan};
use crate::source::Source;
use crate::zip;

/// Alignment of the fallback probe: zipalign aligns to pages.
const PROBE_STEP: u64 = 4096;

/// The offset of an embedded GGUF, if the executable in `src` has one.
pub(crate) fn find_embedded_gguf<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<u64> {
    from_zip_directory(src, scan.limits).or_else(|| probe_aligned(src, scan))
}

fn from_zip_directory<R: Read + Seek>(src: &mut Source<'_, R>, limits: &Limits) -> Option<u64> {
    // An executable without a zip is the common case, not an anomaly: probe with a
    // scratch scan whose findings are dropped.
    let mut probe_scan = Scan::new(limits);
    let dir = zip::read_directory(src, &mut probe_scan)?;
    let candidates = dir
        .entries
        .iter()
        .filter(|e| e.method == zip::METHOD_STORED && e.name.to_ascii_lowercase().ends_with(".gguf"));
    for entry in candidates {
        let Ok((start, _)) = zip::data_range(src, &dir, entry, &mut probe_scan) else {
            continue;
        };
        let mut magic = [0u8; 4];
        if src.probe(start, &mut magic).is_ok() && &magic == b"GGUF" {
            return Some(start);
        }
    }
    None
}

fn probe_aligned<R: Read + Seek>(src: &mut Source<'_, R>, scan: &mut Scan) -> Option<u64> {
    let end = src.len().min(scan.limits.max_header_bytes);
    let mut magic = [0u8; 8];
    let mut at = PROBE_STEP;
    while at + 8 <= end {
        if at.is_multiple_of(256 * PROBE_STEP) && scan.out_of_time() {
            return None;
        }
        if src.probe(at, &mut magic).is_ok() && &magic[..4] == b"GGUF" {
            let version = u32::from_le_bytes([magic[4], magic[5], magic[6], magic[7]]);
            if (1..=3).contains(&version) {
                return Some(at);
            }
        }
        at += PROBE_STEP;
    }
    None
}
