#![no_main]
//! The pickle analysis on arbitrary bytes, with the invariants that tie its parts
//! together: the same input gives the same report; every import CPython would make is
//! seen by the full analysis (format sniffing included) and judged by a finding at the
//! right level; bytes after a stream never change what that stream imports. What the
//! walk itself names is compared with CPython separately: `tests/pickle_differential.rs`
//! replays a corpus through the Python oracle (`fuzz_corpus_agrees_with_cpython`).

mod common;

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use model_analysis::pickle::scan_pickle_bytes;
use model_analysis::{FindingKind, ImportVerdict, PickleReport, Severity, analyze_bytes};

fn imports(report: &PickleReport, all: bool) -> BTreeSet<(String, String)> {
    report.imports.iter().filter(|i| all || !i.loader_dependent).map(|i| (i.module.clone(), i.name.clone())).collect()
}

fuzz_target!(|data: &[u8]| {
    let limits = common::limits();
    let (report, findings) = scan_pickle_bytes(data, &limits);
    let out_of_budget = findings.iter().any(|f| matches!(f.kind, FindingKind::PickleResourceLimit | FindingKind::DeadlineExceeded));

    // Deterministic.
    let (again, findings_again) = scan_pickle_bytes(data, &limits);
    if !out_of_budget {
        assert_eq!(serde_json::to_string(&report).ok(), serde_json::to_string(&again).ok(), "report differs between runs");
        assert_eq!(findings, findings_again, "findings differ between runs");
    }

    // Every import is judged at its level.
    let max = findings.iter().map(|f| f.severity).max();
    for import in &report.imports {
        match import.verdict {
            ImportVerdict::Dangerous => assert_eq!(max, Some(Severity::Critical), "dangerous import below critical"),
            ImportVerdict::Unknown if import.called => assert!(max >= Some(Severity::High), "called unknown import below high"),
            ImportVerdict::Unknown => assert!(max >= Some(Severity::Medium), "unknown import without a finding"),
            ImportVerdict::Allowed => {}
        }
    }
    if report.streams.iter().any(|s| !s.complete) {
        assert!(!findings.is_empty(), "incomplete stream without a finding");
    }

    // What CPython imports cannot hide from the full analysis (format sniffing, the
    // polyglot check), which must see the same imports.
    let strict = imports(&report, false);
    if !strict.is_empty() && !out_of_budget {
        let full = analyze_bytes(data, None, &limits);
        let seen = full.pickle.as_ref().map(|p| imports(p, true)).unwrap_or_default();
        assert!(strict.is_subset(&seen), "the full analysis ({:?}) misses imports {strict:?}", full.format);
    }

    // Bytes after a complete first stream do not change what it imports.
    if let Some(first) = report.streams.first()
        && first.complete
        && first.divergence.is_none()
        && first.framing.is_none()
        && !out_of_budget
    {
        let len = usize::try_from(first.bytes).unwrap_or(data.len()).min(data.len());
        let (alone, _) = scan_pickle_bytes(&data[..len], &limits);
        let first_imports: BTreeSet<_> = report
            .imports
            .iter()
            .filter(|i| i.origin == "stream 0" && !i.loader_dependent)
            .map(|i| (i.module.clone(), i.name.clone()))
            .collect();
        assert_eq!(imports(&alone, false), first_imports, "trailing bytes changed the first stream");
        assert!(alone.streams.first().is_some_and(|s| s.complete), "the first stream alone does not parse");
    }
});
