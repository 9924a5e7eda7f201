use super::*;
use crate::finding::Severity;

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
    assert_eq!(findings[0].severity, Severity::Critical);
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
fn trailing_data_is_measured_not_reported() {
    let mut bytes = b"\x80\x02N.".to_vec();
    bytes.extend_from_slice(&[0u8, 1, 2, 3, 0xff]);
    let (report, findings) = scan_pickle_bytes(&bytes, &Limits::default());
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(report.streams.len(), 1);
    assert_eq!(report.trailing_bytes, 5);
}

#[test]
fn byte_budget_is_a_finding() {
    let limits = Limits { max_pickle_bytes: 16, ..Limits::default() };
    let mut bytes = b"\x80\x04".to_vec();
    bytes.extend_from_slice(&[b'N'; 20]);
    bytes.push(b'.');
    let (_, findings) = scan_pickle_bytes(&bytes, &limits);
    assert_eq!(kinds(&findings), [FindingKind::PickleResourceLimit]);
    assert!(findings[0].severity >= Severity::High);
}

#[test]
fn prefix_verdicts() {
    assert_eq!(check_prefix(b"\x80\x02N."), PrefixVerdict::Complete { opcodes: 3 });
    assert_eq!(check_prefix(b"\x80\x02(N"), PrefixVerdict::ValidSoFar { opcodes: 3 });
    assert_eq!(check_prefix(b"\x80\x02\x00"), PrefixVerdict::Invalid);
}
