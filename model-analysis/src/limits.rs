//! Caps on what one analysis may read, keep and spend. Every parser consults them: a
//! hostile file can only make an analysis stop early (with a finding), never make it
//! allocate or loop without bound.

use std::time::{Duration, Instant};

use crate::finding::{Finding, FindingKind};

const MIB: u64 = 1024 * 1024;

/// Limits for one analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of header (GGUF metadata and tensor infos, safetensors JSON, zip
    /// central directory) read from one file.
    pub max_header_bytes: u64,
    /// Most bytes of pickle stream walked per file (all streams and entries together).
    pub max_pickle_bytes: u64,
    /// Most zip central-directory entries looked at.
    pub max_zip_entries: usize,
    /// Most bytes inflated from one zip entry.
    pub max_zip_entry_bytes: u64,
    /// Declared uncompressed/compressed ratio above which a large entry is a zip bomb.
    pub max_zip_ratio: u64,
    /// Most GGUF key/value pairs parsed.
    pub max_gguf_kv: u64,
    /// Most tensor descriptions (GGUF tensor infos, safetensors entries) parsed.
    pub max_tensors: u64,
    /// Longest string value read into memory (chat templates, metadata values).
    pub max_string: u64,
    /// Most elements of one GGUF array walked over.
    pub max_array_elems: u64,
    /// Deepest symbolic pickle stack.
    pub max_pickle_stack: usize,
    /// Most pickle memo entries.
    pub max_pickle_memo: usize,
    /// Wall-clock budget for one analysis; `None` for no deadline.
    pub deadline: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * MIB,
            max_pickle_bytes: 64 * MIB,
            max_zip_entries: 65_536,
            max_zip_entry_bytes: 64 * MIB,
            max_zip_ratio: 200,
            max_gguf_kv: 65_536,
            max_tensors: 262_144,
            max_string: MIB,
            max_array_elems: 16 * MIB,
            max_pickle_stack: 262_144,
            max_pickle_memo: 262_144,
            deadline: Some(Duration::from_secs(10)),
        }
    }
}

/// Most findings kept per report: a file with a million bad entries must not produce a
/// million findings.
const MAX_FINDINGS: usize = 256;

/// The state shared by the parsers of one analysis: the limits, the clock and the
/// findings so far.
pub(crate) struct Scan<'l> {
    pub(crate) limits: &'l Limits,
    deadline: Option<Instant>,
    findings: Vec<Finding>,
    dropped_findings: u64,
    deadline_reported: bool,
    /// Pickle bytes walked so far, across streams and entries.
    pub(crate) pickle_bytes: u64,
}

impl<'l> Scan<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            deadline: limits.deadline.map(|d| Instant::now() + d),
            findings: Vec::new(),
            dropped_findings: 0,
            deadline_reported: false,
            pickle_bytes: 0,
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Records a finding, dropping exact duplicates and anything past the cap.
    pub(crate) fn report(&mut self, finding: Finding) {
        if self.findings.iter().any(|f| f == &finding) {
            return;
        }
        if self.findings.len() >= MAX_FINDINGS {
            self.dropped_findings += 1;
            return;
        }
        self.findings.push(finding);
    }

    pub(crate) fn find(&mut self, kind: FindingKind, message: impl Into<String>) {
        self.report(Finding::new(kind, message));
    }

    /// True once the deadline has passed; reports it once.
    pub(crate) fn out_of_time(&mut self) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        if Instant::now() < deadline {
            return false;
        }
        if !self.deadline_reported {
            self.deadline_reported = true;
            self.find(
                FindingKind::DeadlineExceeded,
                "analysis deadline reached: the rest of the file was not inspected",
            );
        }
        true
    }

    pub(crate) fn into_findings(mut self) -> Vec<Finding> {
        if self.dropped_findings > 0 {
            let dropped = self.dropped_findings;
            self.findings.push(Finding::new(
                FindingKind::CountExceedsLimit,
                format!("{dropped} more findings were dropped (cap {MAX_FINDINGS})"),
            ));
        }
        self.findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_deduplicated_and_capped() {
        let limits = Limits::default();
        let mut scan = Scan::new(&limits);
        scan.find(FindingKind::ZipAnomaly, "same");
        scan.find(FindingKind::ZipAnomaly, "same");
        for i in 0..MAX_FINDINGS + 10 {
            scan.find(FindingKind::ZipAnomaly, format!("entry {i}"));
        }
        let findings = scan.into_findings();
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert_eq!(findings[0].message, "same");
        let last = findings.last().expect("summary finding");
        assert_eq!(last.kind, FindingKind::CountExceedsLimit);
        assert!(last.message.starts_with("11 more"), "{}", last.message);
    }

    #[test]
    fn zero_deadline_expires_once() {
        let limits = Limits { deadline: Some(Duration::ZERO), ..Limits::default() };
        let mut scan = Scan::new(&limits);
        assert!(scan.out_of_time());
        assert!(scan.out_of_time());
        let findings = scan.into_findings();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::DeadlineExceeded);
    }
}
