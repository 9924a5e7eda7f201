//! Pickle static analysis: benign checkpoints, payloads, and hostile streams.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use model_analysis::pickle::scan_pickle_bytes;
use model_analysis::{
    Finding, FindingKind, Format, ImportVerdict, Limits, PickleReport, Severity, analyze_bytes,
};
use support::pickle_writer::{Pickle, stack_global_call, torch_state_dict};

fn scan(bytes: &[u8]) -> (PickleReport, Vec<Finding>) {
    scan_pickle_bytes(bytes, &Limits::default())
}

fn dangerous(findings: &[Finding]) -> Vec<&str> {
    findings
        .iter()
        .filter(|f| f.kind == FindingKind::PickleDangerousImport)
        .map(|f| f.message.as_str())
        .collect()
}

#[test]
fn torch_state_dict_is_clean() {
    let (report, findings) = scan(&torch_state_dict());
    assert!(findings.is_empty(), "{findings:?}");
    let names: Vec<String> = report.imports.iter().map(|i| format!("{}.{}", i.module, i.name)).collect();
    assert_eq!(names, ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage"]);
    assert!(report.imports.iter().all(|i| i.verdict == ImportVerdict::Allowed));
    assert!(
        report.calls.iter().any(|c| c.callable == "torch._utils._rebuild_tensor_v2" && c.opcode == "REDUCE")
    );
    assert_eq!(report.streams[0].protocol, Some(2));
}

#[test]
fn os_system_via_global() {
    let (_, findings) =
        scan(&Pickle::new().proto(2).global("os", "system").string("'id'").tuple1().reduce().stop().finish());
    assert_eq!(dangerous(&findings).len(), 1);
    assert!(dangerous(&findings)[0].contains("os.system"));
    assert_eq!(findings[0].severity, Severity::Critical);
}

#[test]
fn builtins_exec_and_runpy_via_stack_global() {
    for (module, name) in
        [("builtins", "exec"), ("runpy", "_run_code"), ("subprocess", "Popen"), ("__builtin__", "eval")]
    {
        let (report, findings) = scan(&stack_global_call(module, name, "payload"));
        assert_eq!(dangerous(&findings).len(), 1, "{module}.{name}: {findings:?}");
        assert!(report.has_dangerous_import());
        assert_eq!(report.calls[0].opcode, "REDUCE");
    }
}

#[test]
fn subprocess_popen_through_memo_indirection() {
    // The module string is stored with LONG_BINPUT, popped, fetched back with
    // LONG_BINGET; the name is MEMOIZEd (key 1: MEMOIZE uses the memo's size, as
    // CPython does) and fetched with BINGET.
    let body = Pickle::new()
        .short_unicode("subprocess")
        .long_binput(1000)
        .pop()
        .unicode8("Popen")
        .memoize()
        .pop()
        .long_binget(1000)
        .binget(1)
        .stack_global()
        .mark()
        .unicode("sh")
        .tuple()
        .reduce()
        .stop();
    let bytes = Pickle::new().proto(4).framed(&body).finish();
    let (report, findings) = scan(&bytes);
    assert_eq!(dangerous(&findings).len(), 1, "{findings:?}");
    assert_eq!(report.imports[0].module, "subprocess");
    assert_eq!(report.imports[0].name, "Popen");
    assert_eq!(report.imports[0].opcode, "STACK_GLOBAL");
}

#[test]
fn inst_obj_newobj_and_build_are_calls() {
    let inst = Pickle::new().mark().string("'id'").inst("posix", "system").stop().finish();
    let (report, findings) = scan(&inst);
    assert_eq!(dangerous(&findings).len(), 1);
    assert_eq!(report.calls[0].opcode, "INST");

    let obj = Pickle::new().proto(1).mark().global("nt", "system").string("'x'").op(b'o').stop().finish();
    let (report, _) = scan(&obj);
    assert_eq!(report.calls[0].opcode, "OBJ");

    let newobj = Pickle::new()
        .proto(2)
        .global("webbrowser", "open")
        .empty_tuple()
        .newobj()
        .empty_dict()
        .build()
        .stop()
        .finish();
    let (report, findings) = scan(&newobj);
    assert_eq!(dangerous(&findings).len(), 1);
    let ops: Vec<&str> = report.calls.iter().map(|c| c.opcode.as_str()).collect();
    assert_eq!(ops, ["NEWOBJ", "BUILD"]);
}

#[test]
fn unknown_imports_are_medium_and_high_when_called() {
    // Imported and left alone: the import runs the module's top level, nothing more.
    let bytes = Pickle::new().proto(2).global("mypackage.models", "Net").stop().finish();
    let (_, findings) = scan(&bytes);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, FindingKind::PickleUnknownImport);
    assert_eq!(findings[0].severity, Severity::Medium);
    // Called: its code runs on load.
    let (_, findings) = scan(&stack_global_call("mypackage.models", "Net", "x"));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, FindingKind::PickleUnknownImport);
    assert_eq!(findings[0].severity, Severity::High);
}

#[test]
fn scanner_deactivation_is_critical() {
    let (_, findings) = scan(&stack_global_call("picklescan.scanner", "scan_pickle_bytes", "x"));
    assert!(dangerous(&findings)[0].contains("scanner deactivation"), "{findings:?}");
}

#[test]
fn unresolvable_imports() {
    // EXT1: the copyreg extension registry.
    let (_, findings) =
        scan(&Pickle::new().proto(2).raw(&[0x82, 0x07]).empty_tuple().reduce().stop().finish());
    assert!(findings.iter().any(|f| f.kind == FindingKind::PickleUnresolvedImport), "{findings:?}");
    assert!(findings.iter().any(|f| f.kind == FindingKind::PickleIndirectCall), "{findings:?}");
    // STACK_GLOBAL on a call result: a str for a real loader, unknown here.
    let bytes = Pickle::new()
        .proto(4)
        .global("builtins", "str")
        .short_unicode("os")
        .tuple1()
        .reduce()
        .short_unicode("system")
        .stack_global()
        .stop()
        .finish();
    let (_, findings) = scan(&bytes);
    assert!(findings.iter().any(|f| f.kind == FindingKind::PickleUnresolvedImport), "{findings:?}");
    assert!(findings.iter().all(|f| f.severity >= Severity::High), "{findings:?}");
    // STACK_GLOBAL on bytes fails in CPython too: malformed, after nothing ran.
    let bytes = Pickle::new().proto(4).bytes8(b"os").short_unicode("system").stack_global().stop().finish();
    let (_, findings) = scan(&bytes);
    assert!(findings.iter().any(|f| f.kind == FindingKind::PickleMalformed), "{findings:?}");
}

#[test]
fn dunder_attribute_walks_in_names() {
    let (_, findings) = scan(&stack_global_call("collections", "OrderedDict.__init__.__globals__", "x"));
    assert_eq!(dangerous(&findings).len(), 1, "{findings:?}");
}

#[test]
fn malformed_streams_fail_closed() {
    for bytes in [
        b"\x80\x02N".as_slice(),        // no STOP
        b"\x80\x02\xfe.",               // unknown opcode
        b"\x80\x02X\x10\x00\x00\x00ab", // truncated string
        b"\x80\x02h\x01.",              // memo miss
        b"\x80\x02t.",                  // TUPLE without MARK
        b"\x80\x07N.",                  // protocol 7
    ] {
        let (report, findings) = scan(bytes);
        assert!(!report.streams[0].complete);
        assert!(findings.iter().any(|f| f.kind == FindingKind::PickleMalformed), "{bytes:?}: {findings:?}");
    }
}

#[test]
fn deeply_nested_pickle_is_bounded() {
    // 2 million nested MARK/EMPTY_LIST: more than the stack cap.
    let mut bytes = vec![0x80, 0x02];
    for _ in 0..1_000_000 {
        bytes.extend_from_slice(b"(]");
    }
    let started = Instant::now();
    let (_, findings) = scan(&bytes);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(findings.iter().any(|f| f.kind == FindingKind::PickleResourceLimit), "{findings:?}");
}

#[test]
fn self_referencing_pickle_is_cheap() {
    // A list that contains itself a million times (memo GET of the list inside it):
    // symbolic values are shared, not copied.
    let mut bytes = vec![0x80, 0x02, b']', b'q', 0x00];
    for _ in 0..1_000_000 {
        bytes.extend_from_slice(&[b'h', 0x00, b'a']);
    }
    bytes.push(b'.');
    let started = Instant::now();
    let (report, findings) = scan(&bytes);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(findings.is_empty(), "{findings:?}");
    assert!(report.streams[0].complete);
    // And DUP-bombs hit the stack cap.
    let mut bytes = vec![0x80, 0x02, b'N'];
    bytes.extend(std::iter::repeat_n(b'2', 1_000_000));
    let (_, findings) = scan(&bytes);
    assert!(findings.iter().any(|f| f.kind == FindingKind::PickleResourceLimit));
}

#[test]
fn raw_pickle_files_are_identified_and_walked() {
    let report = analyze_bytes(
        &stack_global_call("os", "system", "id"),
        Some(std::path::Path::new("model.pkl")),
        &Limits::default(),
    );
    assert_eq!(report.format, Format::Pickle);
    assert_eq!(report.max_severity(), Some(Severity::Critical));

    // A protocol 0 pickle longer than the sniffed prefix, named .pkl: walked.
    let mut p0 = b"(lp0\n".to_vec();
    for i in 0..2000 {
        p0.extend_from_slice(format!("I{i}\na").as_bytes());
    }
    p0.extend_from_slice(b"cos\nsystem\n(S'id'\ntR.");
    let report = analyze_bytes(&p0, Some(std::path::Path::new("data.pkl")), &Limits::default());
    assert_eq!(report.format, Format::Pickle);
    assert!(report.has_finding(FindingKind::PickleDangerousImport));
    // Without the name too: the longer look at the content says pickle.
    let report = analyze_bytes(&p0, None, &Limits::default());
    assert_eq!(report.format, Format::Pickle);
    assert_eq!(report.max_severity(), Some(Severity::Critical));
}

#[test]
fn legacy_pytorch_is_a_sequence_of_pickles() {
    let magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
    let mut bytes = magic.to_vec();
    bytes.extend_from_slice(b"\x80\x02M\xe9\x03."); // protocol version 1001
    bytes.extend_from_slice(b"\x80\x02}q\x00."); // sys_info
    bytes.extend_from_slice(&stack_global_call("os", "system", "id")); // the model
    bytes.extend_from_slice(b"\x80\x02]q\x00X\x01\x00\x00\x000a."); // storage keys
    bytes.extend_from_slice(&[0x80, 0x02, 0xff, 0xff]); // storage bytes that look like PROTO
    let report = analyze_bytes(&bytes, Some(std::path::Path::new("old.pt")), &Limits::default());
    assert_eq!(report.format, Format::PytorchLegacy);
    let pickle = report.pickle.as_ref().expect("pickle report");
    assert_eq!(pickle.streams.len(), 5, "storage data after the 5th pickle is not walked");
    assert!(report.has_finding(FindingKind::PickleDangerousImport));
    assert!(!report.has_finding(FindingKind::PickleMalformed), "{:?}", report.findings);
}

/// Cross-check against CPython's own pickler where python3 exists (never required).
#[test]
fn cpython_pickles_cross_check() {
    let script = r#"
import pickle, collections, sys, os
for proto in range(0, 6):
    benign = pickle.dumps({"a": [1, 2.5, "x", b"y", (None, True)], "o": collections.OrderedDict(b=set([1]))}, protocol=proto)
    evil = pickle.dumps(os.system, protocol=proto)
    sys.stdout.write(benign.hex() + " " + evil.hex() + "\n")
"#;
    let Ok(output) = Command::new("python3").arg("-c").arg(script).output() else {
        eprintln!("skipped: python3 is not available");
        return;
    };
    if !output.status.success() {
        eprintln!("skipped: python3 failed: {}", String::from_utf8_lossy(&output.stderr));
        return;
    }
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let decode = |hex: &str| -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
    };
    for (proto, line) in text.lines().enumerate() {
        let (benign, evil) = line.split_once(' ').expect("two pickles");
        let (report, findings) = scan(&decode(benign));
        assert!(findings.is_empty(), "protocol {proto}: {findings:?}");
        assert!(report.streams[0].complete, "protocol {proto}");
        let (_, findings) = scan(&decode(evil));
        assert_eq!(dangerous(&findings).len(), 1, "protocol {proto}: {findings:?}");
        if proto <= 1 {
            assert_eq!(model_analysis::sniff(&decode(benign)), Format::Pickle, "protocol {proto} sniff");
        }
    }
}

#[test]
fn an_exhausted_deadline_is_a_high_finding() {
    let mut bytes = b"\x80\x04(".to_vec();
    bytes.extend(std::iter::repeat_n(b'N', 200_000));
    bytes.extend_from_slice(b"l.");
    let limits = Limits { deadline: Some(Duration::ZERO), ..Limits::default() };
    let report = analyze_bytes(&bytes, Some(std::path::Path::new("x.pkl")), &limits);
    assert!(report.max_severity() >= Some(Severity::High), "{:?}", report.findings);
    assert!(report.has_finding(FindingKind::PickleResourceLimit), "{:?}", report.findings);
}
