//! Caps on what one analysis may read, keep and spend. Every parser consults them: a
//! hostile file can only make an analysis stop early (with a finding), never make it
//! allocate or loop without bound.
//!
//! Two kinds of limit live here. *Caps* bound one field of the file (a count, a length)
//! and are reported with the kind that names the field. *Budgets* bound the analysis
//! itself (time, memory kept, bytes of work): running out of one means part of the file
//! was not inspected, which is reported as [`FindingKind::AnalysisBudgetExceeded`]
//! (high), once per budget, never dropped, never a pass.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::finding::{Finding, FindingKind, clip_message};

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
    /// Longest string value read into memory (metadata values, JSON strings). Chat
    /// templates are streamed, not read into memory; a longer one is still reported.
    pub max_string: u64,
    /// Most elements of one GGUF array walked over.
    pub max_array_elems: u64,
    /// Deepest symbolic pickle stack.
    pub max_pickle_stack: usize,
    /// Most pickle memo entries.
    pub max_pickle_memo: usize,
    /// Budget: chat-template bytes assessed per file, all templates together.
    pub max_template_bytes: u64,
    /// Budget: bytes read out of zip entries per file (inflated or stored), all entries
    /// together. Bounds the work of a non-recursive zip bomb, whose entries overlap.
    pub max_inflated_bytes: u64,
    /// Budget: bytes of what the analysis keeps while it runs (names, byte ranges,
    /// metadata, the report). Buffers of fixed size (read buffers, one string of at most
    /// `max_string`) are not counted.
    pub max_kept_bytes: u64,
    /// Budget: wall-clock time for one analysis; `None` for no deadline.
    pub deadline: Option<Duration>,
}

/// The default deadline. A hostile file must not hold a worker of the live sensor (or
/// `modelwatch scan`) for more than a second: the deterministic budgets above stop every
/// hostile file class we know in well under that, and this is the backstop, checked at
/// least every [`CHECK_EVERY`] units of work, with a quarter second left for the checks'
/// granularity, the report and the process around it. Benign models finish in a few
/// milliseconds (header parsing skips tensor data), so a loaded machine does not push
/// them into the deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(750);

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
            // Real chat templates are a few KiB; a file may carry a handful.
            max_template_bytes: 4 * MIB,
            max_inflated_bytes: 128 * MIB,
            max_kept_bytes: 16 * MIB,
            deadline: Some(DEFAULT_DEADLINE),
        }
    }
}

/// A budget an analysis can run out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Budget {
    /// [`Limits::deadline`].
    Time,
    /// [`Limits::max_kept_bytes`].
    Memory,
    /// [`Limits::max_template_bytes`].
    TemplateBytes,
    /// [`Limits::max_inflated_bytes`].
    InflatedBytes,
    /// [`Limits::max_header_bytes`]: header bytes walked.
    HeaderBytes,
    /// A count of items parsed ([`Limits::max_gguf_kv`], [`Limits::max_tensors`],
    /// [`Limits::max_zip_entries`]): the file holds more than the analysis walks.
    Items,
    /// [`Limits::max_string`] for one JSON string.
    StringBytes,
    /// The bytes of Ollama manifests read for provenance.
    ManifestBytes,
}

impl Budget {
    const ALL: [Self; 8] = [
        Self::Time,
        Self::Memory,
        Self::TemplateBytes,
        Self::InflatedBytes,
        Self::HeaderBytes,
        Self::Items,
        Self::StringBytes,
        Self::ManifestBytes,
    ];

    fn bit(self) -> u16 {
        let index = Self::ALL.iter().position(|b| *b == self).unwrap_or(0);
        1 << index
    }

    /// Its name and size, for the finding.
    fn describe(self, limits: &Limits) -> String {
        let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / MIB as f64);
        match self {
            Self::Time => {
                let ms = limits.deadline.map_or(0, |d| d.as_millis());
                format!("time budget ({ms} ms)")
            }
            Self::Memory => format!("memory budget ({})", mib(limits.max_kept_bytes)),
            Self::TemplateBytes => format!("chat-template budget ({})", mib(limits.max_template_bytes)),
            Self::InflatedBytes => format!("zip entry byte budget ({})", mib(limits.max_inflated_bytes)),
            Self::HeaderBytes => format!("header byte budget ({})", mib(limits.max_header_bytes)),
            Self::Items => "item budget".to_owned(),
            Self::StringBytes => format!("string budget ({} bytes)", limits.max_string),
            Self::ManifestBytes => format!("manifest budget ({})", mib(MANIFEST_BUDGET)),
        }
    }
}

/// Bytes of Ollama manifests read per analysis (a manifest is about 1 KiB).
pub(crate) const MANIFEST_BUDGET: u64 = 8 * MIB;

/// Units of work (about one byte or one loop iteration each) between two looks at the
/// clock: about 50 µs of parsing, so that the deadline is overrun by far less than a
/// millisecond, while `Instant::now()` stays invisible in profiles.
pub(crate) const CHECK_EVERY: u64 = 64 * 1024;

/// Most findings kept per report: a file with a million bad entries must not produce a
/// million findings. Budget findings are kept beyond it.
const MAX_FINDINGS: usize = 256;

/// The state shared by the parsers of one analysis: the limits, the clock, the budgets
/// spent and the findings so far.
pub(crate) struct Scan<'l> {
    pub(crate) limits: &'l Limits,
    deadline: Option<Instant>,
    findings: Vec<Finding>,
    dropped_findings: u64,
    /// Budgets run out (and reported), one bit per [`Budget`].
    exhausted: u16,
    /// Pickle bytes walked so far, across streams and entries.
    pub(crate) pickle_bytes: u64,
    kept_bytes: u64,
    template_bytes: u64,
    inflated_bytes: u64,
    manifest_bytes: u64,
    work_since_check: u64,
    /// Where the analysis is, for the budget findings: a stage, and an offset when the
    /// stage has one.
    stage: &'static str,
    offset: Option<u64>,
}

impl<'l> Scan<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            deadline: limits.deadline.map(|d| Instant::now() + d),
            findings: Vec::new(),
            dropped_findings: 0,
            exhausted: 0,
            pickle_bytes: 0,
            kept_bytes: 0,
            template_bytes: 0,
            inflated_bytes: 0,
            manifest_bytes: 0,
            work_since_check: 0,
            stage: "file identification",
            offset: None,
        }
    }

    /// A scan for a side probe (whose findings are dropped) sharing this one's clock:
    /// a probe cannot restart the deadline.
    pub(crate) fn probe(&self) -> Scan<'l> {
        let mut probe = Scan::new(self.limits);
        probe.deadline = self.deadline;
        probe.stage = self.stage;
        probe
    }

    /// Carries the budgets a probe ran out of into this scan (its other findings are
    /// dropped).
    pub(crate) fn absorb_budgets(&mut self, probe: Scan<'_>) {
        for finding in probe.findings {
            if finding.kind == FindingKind::AnalysisBudgetExceeded {
                self.report(finding);
            }
        }
        self.exhausted |= probe.exhausted;
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Names the part of the file being analysed, for budget findings.
    pub(crate) fn enter(&mut self, stage: &'static str) {
        self.stage = stage;
        self.offset = None;
    }

    /// Records a finding, dropping exact duplicates. Past the cap, a finding takes the
    /// place of a less severe one (so that a flood of minor findings cannot push out a
    /// critical one), or is dropped and counted; budget findings are always kept.
    pub(crate) fn report(&mut self, mut finding: Finding) {
        finding.message = clip_message(finding.message);
        if self.findings.iter().any(|f| f == &finding) {
            return;
        }
        if self.findings.len() >= MAX_FINDINGS && finding.kind != FindingKind::AnalysisBudgetExceeded {
            self.dropped_findings += 1;
            let least = self
                .findings
                .iter()
                .enumerate()
                .filter(|(_, f)| f.kind != FindingKind::AnalysisBudgetExceeded)
                .min_by_key(|(_, f)| f.severity)
                .map(|(i, f)| (i, f.severity));
            if let Some((i, severity)) = least
                && severity < finding.severity
            {
                self.findings.remove(i);
                self.findings.push(finding);
            }
            return;
        }
        self.findings.push(finding);
    }

    pub(crate) fn find(&mut self, kind: FindingKind, message: impl Into<String>) {
        self.report(Finding::new(kind, message));
    }

    /// Whether `budget` has run out.
    pub(crate) fn is_exhausted(&self, budget: Budget) -> bool {
        self.exhausted & budget.bit() != 0
    }

    /// Reports that `budget` ran out, naming where (`detail` adds what was being done);
    /// once per budget.
    pub(crate) fn exhaust(&mut self, budget: Budget, detail: impl Display) {
        if self.is_exhausted(budget) {
            return;
        }
        self.exhausted |= budget.bit();
        let at = self.offset.map(|o| format!(" at offset {o}")).unwrap_or_default();
        let detail = detail.to_string();
        let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
        let message = format!(
            "{} exhausted in {}{at}{detail}: the rest was not inspected",
            budget.describe(self.limits),
            self.stage
        );
        self.report(Finding::new(FindingKind::AnalysisBudgetExceeded, message));
    }

    /// Spends `cost` units of work at `offset` of the current stage, looking at the
    /// clock every [`CHECK_EVERY`] units. True once the deadline has passed.
    pub(crate) fn tick(&mut self, cost: u64, offset: u64) -> bool {
        self.offset = Some(offset);
        self.spend(cost)
    }

    /// Spends `cost` units of work where no file offset applies (see [`Scan::tick`]).
    pub(crate) fn spend(&mut self, cost: u64) -> bool {
        self.work_since_check = self.work_since_check.saturating_add(cost);
        if self.work_since_check < CHECK_EVERY {
            return self.is_exhausted(Budget::Time);
        }
        self.work_since_check = 0;
        self.out_of_time()
    }

    /// True once the deadline has passed; reports it once.
    pub(crate) fn out_of_time(&mut self) -> bool {
        if self.is_exhausted(Budget::Time) {
            return true;
        }
        let Some(deadline) = self.deadline else {
            return false;
        };
        if Instant::now() < deadline {
            return false;
        }
        self.exhaust(Budget::Time, "");
        true
    }

    /// Accounts for `bytes` more kept in memory (`what` names them). False, with the
    /// budget finding, when that would exceed [`Limits::max_kept_bytes`]: the caller
    /// stops keeping (and, where keeping is needed to check, stops checking).
    pub(crate) fn keep(&mut self, bytes: u64, what: &str) -> bool {
        if self.is_exhausted(Budget::Memory) {
            return false;
        }
        let total = self.kept_bytes.saturating_add(bytes);
        if total > self.limits.max_kept_bytes {
            self.exhaust(Budget::Memory, format!("keeping {what}"));
            return false;
        }
        self.kept_bytes = total;
        true
    }

    /// Bytes kept so far.
    #[cfg(test)]
    pub(crate) fn kept_bytes(&self) -> u64 {
        self.kept_bytes
    }

    /// Draws up to `want` units from a byte budget shared by the whole analysis; returns
    /// what is granted (less than `want` once the budget runs short: the caller reports
    /// it with [`Scan::exhaust`] when it has to stop).
    pub(crate) fn draw(&mut self, budget: Budget, want: u64) -> u64 {
        let (spent, cap) = match budget {
            Budget::TemplateBytes => (&mut self.template_bytes, self.limits.max_template_bytes),
            Budget::InflatedBytes => (&mut self.inflated_bytes, self.limits.max_inflated_bytes),
            Budget::ManifestBytes => (&mut self.manifest_bytes, MANIFEST_BUDGET),
            _ => return want,
        };
        let granted = want.min(cap.saturating_sub(*spent));
        *spent += granted;
        granted
    }

    /// Gives back units drawn but not used.
    pub(crate) fn refund(&mut self, budget: Budget, unused: u64) {
        let spent = match budget {
            Budget::TemplateBytes => &mut self.template_bytes,
            Budget::InflatedBytes => &mut self.inflated_bytes,
            Budget::ManifestBytes => &mut self.manifest_bytes,
            _ => return,
        };
        *spent = spent.saturating_sub(unused);
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
    fn a_flood_of_minor_findings_cannot_push_out_a_severe_one() {
        let limits = Limits::default();
        let mut scan = Scan::new(&limits);
        for i in 0..MAX_FINDINGS + 10 {
            scan.find(FindingKind::ZipAnomaly, format!("entry {i}"));
        }
        scan.find(FindingKind::PickleDangerousImport, "os.system");
        let findings = scan.into_findings();
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert!(findings.iter().any(|f| f.kind == FindingKind::PickleDangerousImport));
        assert!(findings.last().expect("summary").message.starts_with("11 more"));
    }

    #[test]
    fn budget_findings_survive_the_finding_cap() {
        let limits = Limits::default();
        let mut scan = Scan::new(&limits);
        for i in 0..MAX_FINDINGS + 10 {
            scan.find(FindingKind::ZipAnomaly, format!("entry {i}"));
        }
        scan.enter("zip entries");
        scan.exhaust(Budget::InflatedBytes, "entry x.pkl");
        let findings = scan.into_findings();
        let budget = findings
            .iter()
            .find(|f| f.kind == FindingKind::AnalysisBudgetExceeded)
            .expect("the budget finding is kept");
        assert!(budget.message.contains("zip entry byte budget"), "{}", budget.message);
        assert!(budget.message.contains("zip entries"), "{}", budget.message);
    }

    #[test]
    fn zero_deadline_expires_once() {
        let limits = Limits { deadline: Some(Duration::ZERO), ..Limits::default() };
        let mut scan = Scan::new(&limits);
        scan.enter("GGUF key/value pairs");
        assert!(scan.tick(CHECK_EVERY, 1234));
        assert!(scan.out_of_time());
        assert!(scan.tick(1, 1240), "once spent, every tick says so");
        let findings = scan.into_findings();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::AnalysisBudgetExceeded);
        assert_eq!(findings[0].severity, crate::Severity::High);
        assert!(findings[0].message.contains("time budget (0 ms)"), "{}", findings[0].message);
        assert!(
            findings[0].message.contains("GGUF key/value pairs at offset 1234"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn the_clock_is_read_only_every_check_interval() {
        let limits = Limits { deadline: Some(Duration::ZERO), ..Limits::default() };
        let mut scan = Scan::new(&limits);
        assert!(!scan.tick(CHECK_EVERY - 1, 0), "no look at the clock yet");
        assert!(scan.tick(1, 0));
    }

    #[test]
    fn memory_budget_refuses_past_the_cap() {
        let limits = Limits { max_kept_bytes: 100, ..Limits::default() };
        let mut scan = Scan::new(&limits);
        assert!(scan.keep(60, "names"));
        assert!(!scan.keep(60, "names"));
        assert!(!scan.keep(1, "names"), "stays refused");
        assert_eq!(scan.kept_bytes(), 60);
        let findings = scan.into_findings();
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.starts_with("memory budget"), "{}", findings[0].message);
    }

    #[test]
    fn shared_byte_budgets_grant_what_is_left() {
        let limits = Limits { max_template_bytes: 10, ..Limits::default() };
        let mut scan = Scan::new(&limits);
        assert_eq!(scan.draw(Budget::TemplateBytes, 6), 6);
        assert_eq!(scan.draw(Budget::TemplateBytes, 6), 4);
        scan.refund(Budget::TemplateBytes, 3);
        assert_eq!(scan.draw(Budget::TemplateBytes, 6), 3);
        assert_eq!(scan.draw(Budget::Items, 6), 6, "not a byte budget");
    }
}
