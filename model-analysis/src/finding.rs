//! Findings: what an analysis reports about a file, and how much it matters. A leaf
//! module: every parser reports through it, and it imports none of them.

use serde::Serialize;

/// How much a finding matters. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// What kind of problem a finding reports. Stable snake_case names: policies match on
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The analysis ran out of one of its budgets (time, memory, bytes of work): what
    /// follows the place the finding names was not inspected. A hostile file can make an
    /// analysis stop early, never make it pass.
    AnalysisBudgetExceeded,
    /// The file ends inside a header, or a length points past its end.
    TruncatedHeader,
    /// A header is structurally invalid (bad type tag, bad JSON, bad UTF-8...).
    MalformedHeader,
    /// A format version this crate does not parse (big-endian GGUF, GGUF v4...).
    UnsupportedVersion,
    /// A count (KV pairs, tensors, zip entries...) is above a [`crate::Limits`] cap.
    CountExceedsLimit,
    /// A length (string, header, array) is above a [`crate::Limits`] cap.
    LengthExceedsLimit,
    /// The file could not be read (I/O error).
    ReadFailed,
    /// A tensor's data lies (partly) outside the file.
    TensorOutOfBounds,
    /// A pickle imports a known code-execution gadget.
    PickleDangerousImport,
    /// A pickle imports something outside the vetted ML allowlist.
    PickleUnknownImport,
    /// A pickle imports something this analysis cannot name (computed strings,
    /// extension registry codes).
    PickleUnresolvedImport,
    /// A pickle calls something that is not a named import (the result of a call).
    PickleIndirectCall,
    /// A pickle stream is invalid: bad opcode, stack underflow, missing STOP, truncated.
    PickleMalformed,
    /// A pickle exceeded a stack, memo or byte cap.
    PickleResourceLimit,
    /// A `.npy` array of Python objects: loading it with `allow_pickle=True` unpickles.
    NumpyObjectArray,
    /// A container this crate cannot look into (7z, gzip...), or an entry compressed with
    /// an unsupported method.
    UnsupportedContainer,
    /// A zip whose entries inflate far beyond their compressed size or overlap.
    ZipBomb,
    /// A zip with odd structure: flag bits, local/central header disagreement, duplicate
    /// names, encrypted entries. Scanners and loaders may read such archives differently.
    ZipAnomaly,
    /// A zip entry whose content does not match its CRC-32 (Python's zipfile refuses it,
    /// torch's reader does not check).
    ZipCrcMismatch,
    /// The file name's extension claims a different format than the content.
    ExtensionMismatch,
    /// The model is embedded in an executable (llamafile).
    EmbeddedInExecutable,
    /// A Jinja chat template uses constructs seen in sandbox escapes.
    ChatTemplateRisk,
    /// Two safetensors tensors share bytes.
    SafetensorsOverlap,
    /// A safetensors tensor's byte range does not match `product(shape) x dtype size`.
    SafetensorsSizeMismatch,
    /// A safetensors tensor's byte range lies outside the file.
    SafetensorsOutOfBounds,
    /// A safetensors header names the same tensor twice.
    SafetensorsDuplicateKey,
    /// A safetensors dtype this crate does not know.
    SafetensorsUnknownDtype,
    /// Bytes between safetensors tensors that no tensor claims (the reference loader
    /// rejects them).
    SafetensorsOffsetGap,
    /// A Keras model with a Lambda layer (serialised Python code).
    KerasLambdaLayer,
    /// The content's SHA-256 differs from the digest its name claims.
    DigestMismatch,
    /// A file of another format that is also a pickle whose `load()` imports something
    /// (`torch.load` unpickles any file that is not a zip).
    PicklePolyglot,
    /// The file changed between the process's open (or map) and the sensor's read: its
    /// size or times differ from what the kernel saw, so what was judged may not be
    /// what was loaded (a swap of content right after the load).
    ChangedSinceOpened,
}

impl FindingKind {
    /// The severity a finding of this kind gets unless its site knows better.
    #[must_use]
    pub fn default_severity(self) -> Severity {
        use FindingKind as K;
        match self {
            K::PickleDangerousImport => Severity::Critical,
            K::AnalysisBudgetExceeded
            | K::PickleUnresolvedImport
            | K::PickleIndirectCall
            | K::PickleMalformed
            | K::PickleResourceLimit
            | K::TensorOutOfBounds
            | K::ZipBomb
            | K::SafetensorsOverlap
            | K::SafetensorsSizeMismatch
            | K::SafetensorsOutOfBounds
            | K::SafetensorsDuplicateKey
            | K::KerasLambdaLayer
            | K::DigestMismatch
            | K::PicklePolyglot
            | K::ChangedSinceOpened
            | K::ChatTemplateRisk => Severity::High,
            K::TruncatedHeader
            | K::MalformedHeader
            | K::CountExceedsLimit
            | K::LengthExceedsLimit
            | K::ReadFailed
            | K::PickleUnknownImport
            | K::NumpyObjectArray
            | K::UnsupportedContainer
            | K::ZipAnomaly
            | K::ZipCrcMismatch
            | K::ExtensionMismatch
            | K::SafetensorsUnknownDtype => Severity::Medium,
            K::UnsupportedVersion | K::EmbeddedInExecutable | K::SafetensorsOffsetGap => Severity::Low,
        }
    }
}

/// One thing worth telling the security team about a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    /// A finding with its kind's default severity.
    #[must_use]
    pub fn new(kind: FindingKind, message: impl Into<String>) -> Self {
        Self { kind, severity: kind.default_severity(), message: message.into() }
    }

    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

/// Longest string copied from a file into a report: reports travel in events, and a
/// hostile file must not make them large.
pub(crate) const REPORT_STRING_MAX: usize = 4096;

/// Cuts `s` to at most [`REPORT_STRING_MAX`] bytes on a char boundary, marking the cut.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= REPORT_STRING_MAX {
        return s.to_owned();
    }
    let mut end = REPORT_STRING_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Longest finding message: a message quotes at most a couple of clipped strings.
const MESSAGE_MAX: usize = 3 * REPORT_STRING_MAX;

/// Cuts a finding message to [`MESSAGE_MAX`] bytes (a message built from many file
/// strings must not grow the report).
pub(crate) fn clip_message(message: String) -> String {
    if message.len() <= MESSAGE_MAX {
        return message;
    }
    let mut end = MESSAGE_MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::Info < Severity::Low);
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
    }

    #[test]
    fn kinds_serialise_in_snake_case() {
        let f = Finding::new(FindingKind::PickleDangerousImport, "os.system");
        let json = serde_json::to_string(&f).expect("serialise");
        assert_eq!(json, r#"{"kind":"pickle_dangerous_import","severity":"critical","message":"os.system"}"#);
        let f = Finding::new(FindingKind::AnalysisBudgetExceeded, "x");
        let json = serde_json::to_string(&f).expect("serialise");
        assert_eq!(json, r#"{"kind":"analysis_budget_exceeded","severity":"high","message":"x"}"#);
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let long = "é".repeat(REPORT_STRING_MAX);
        let clipped = clip(&long);
        assert!(clipped.len() <= REPORT_STRING_MAX + '…'.len_utf8());
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
