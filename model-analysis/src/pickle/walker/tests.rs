use super::*;
use crate::pickle::input::Streamed;

fn run(bytes: &[u8]) -> Walk {
    walk(
        Streamed(bytes),
        bytes.len() as u64,
        &WalkLimits {
            max_bytes: 1 << 20,
            max_stack: 1000,
            max_memo: 1000,
            max_opcodes: None,
            deadline: None,
            linear_frames: false,
        },
    )
}

fn imports(w: &Walk) -> Vec<String> {
    w.imports
        .iter()
        .map(|i| format!("{}.{}", String::from_utf8_lossy(&i.module), String::from_utf8_lossy(&i.name)))
        .collect()
}

fn malformed_with(w: &Walk, text: &str) -> bool {
    matches!(&w.end, End::Malformed(m) if m.contains(text))
}

#[test]
fn global_reduce_is_an_import_and_a_call() {
    let w = run(b"cos\nsystem\n(S'id'\ntR.");
    assert_eq!(w.end, End::Stop);
    assert_eq!(imports(&w), ["os.system"]);
    assert_eq!(w.calls.len(), 1);
    assert_eq!(w.calls[0].via, "REDUCE");
}

#[test]
fn stack_global_resolves_through_the_memo() {
    let mut p = b"\x80\x04\x8c\x02os\x94\x30\x8c\x06system\x94\x30".to_vec();
    p.extend_from_slice(b"h\x00h\x01\x93\x8c\x02id\x85R.");
    let w = run(&p);
    assert_eq!(w.end, End::Stop, "{:?}", w.end);
    assert_eq!(imports(&w), ["os.system"]);
    assert_eq!(w.protocol, Some(4));
}

#[test]
fn stack_global_on_a_call_result_is_unresolved_and_goes_on() {
    // builtins.str(...) used as a module name: a str in reality, a stub here.
    let p = b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R\x8c\x06system\x93N.";
    let w = run(p);
    assert_eq!(w.unresolved, 1, "{w:?}");
    assert!(w.unresolved_examples[0].contains("call result"));
    assert!(w.divergence.is_some());
    assert_eq!(w.end, End::Stop);
}

#[test]
fn stack_global_on_a_number_fails_as_in_cpython() {
    let w = run(b"\x80\x04K\x01\x8c\x06system\x93cos\nsystem\n.");
    assert!(malformed_with(&w, "requires str"), "{:?}", w.end);
    assert!(w.imports.is_empty());
}

#[test]
fn python2_names_are_renamed_below_protocol_3() {
    let w = run(b"c__builtin__\neval\n.");
    assert_eq!(imports(&w), ["builtins.eval"]);
    let w = run(b"\x80\x03c__builtin__\neval\n.");
    assert_eq!(imports(&w), ["__builtin__.eval"]);
    let w = run(b"\x80\x02c__builtin__\nxrange\n.");
    assert_eq!(imports(&w), ["builtins.range"]);
}

#[test]
fn locals_in_a_dotted_name_fail_from_protocol_4_after_the_import() {
    let w = run(b"\x80\x04\x8c\x01a\x8c\x0cb.<locals>.c\x93.");
    assert_eq!(imports(&w), ["a.b.<locals>.c"]);
    assert!(matches!(w.end, End::Malformed(_)));
    let w = run(b"\x80\x03\x8c\x01a\x8c\x0cb.<locals>.c\x93.");
    assert_eq!(w.end, End::Stop);
}

#[test]
fn malformed_streams_end_with_a_reason() {
    assert!(malformed_with(&run(b"\x80\x02\xff"), "0xff"));
    assert!(malformed_with(&run(b"Na"), "underflow"));
    assert!(malformed_with(&run(b"0"), "underflow"));
    assert!(malformed_with(&run(b"h\x05."), "not found"));
    assert!(matches!(run(b"\x80\x09N.").end, End::Malformed(_)));
    assert_eq!(run(b"\x80\x02N").end, End::Truncated);
    assert_eq!(run(b"\x80\x02X\xff\xff\xff\x00ab").end, End::Truncated);
}

#[test]
fn mark_hides_what_is_below_it() {
    // N ( 0 -> POP with nothing above the MARK pops the MARK, then STOP pops N.
    assert_eq!(run(b"N(0.").end, End::Stop);
    // N ( a -> APPEND cannot reach below the mark.
    assert!(matches!(run(b"N(Na.").end, End::Malformed(_)));
}

#[test]
fn types_decide_like_cpython() {
    // REDUCE needs a tuple of arguments and a callable.
    assert!(malformed_with(&run(b"cos\nsystem\nNR."), "tuple"));
    assert!(malformed_with(&run(b"N)R."), "callable"));
    // NEWOBJ needs a class.
    assert!(malformed_with(&run(b"\x80\x02N)\x81."), "type"));
    // Unhashable keys.
    assert!(malformed_with(&run(b"(]Nd."), "unhashable"));
    assert_eq!(run(b"(\x8c\x01aNd.").end, End::Stop);
    // list[i] = x needs an index in range.
    assert_eq!(run(b"]Na\x4b\x00Ns.").end, End::Stop);
    assert!(malformed_with(&run(b"]Na\x4b\x01Ns."), "range"));
    // BUILD on plain data: only None or (None, {}) state.
    assert_eq!(run(b"]Nb.").end, End::Stop);
    assert_eq!(run(b"]N}\x86b.").end, End::Stop);
    assert!(malformed_with(&run(b"](\x8c\x01aNdb."), "__dict__"));
    assert!(run(b"]}b.").divergence.is_some(), "an empty dict: only the C unpickler fails");
    // NEWOBJ_EX keyword names must be strings.
    assert!(malformed_with(&run(b"\x80\x04cos\nsystem\n)}K\x01K\x02s\x92."), "keywords"));
}

#[test]
fn indirect_calls_are_counted() {
    // builtins.getattr(...)(...): REDUCE on a call result.
    let p = b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'x'\ntR(S'id'\ntR.";
    let w = run(p);
    assert_eq!(w.end, End::Stop);
    assert_eq!(w.indirect, 1);
    assert!(w.indirect_examples[0].contains("builtins.getattr"));
}

#[test]
fn imports_handed_to_a_call_count_as_called() {
    let w = run(b"ccopy_reg\n_reconstructor\n(cevil\nThing\ncbuiltins\nobject\nNtR.");
    let via: Vec<(String, &str)> = w
        .calls
        .iter()
        .map(|c| (String::from_utf8_lossy(&w.imports[c.callable as usize].name).into_owned(), c.via))
        .collect();
    assert!(via.contains(&("Thing".to_owned(), "ARGUMENT")), "{via:?}");
}

#[test]
fn stack_and_memo_caps_end_the_walk() {
    let mut p = vec![0x80, 0x02];
    p.extend(std::iter::repeat_n(b'N', 2000));
    assert!(matches!(run(&p).end, End::Limit(m) if m.contains("stack")));
    let mut p = vec![0x80, 0x02, b'N'];
    for i in 0..2000u32 {
        p.push(b'r');
        p.extend_from_slice(&i.to_le_bytes());
    }
    assert!(matches!(run(&p).end, End::Limit(m) if m.contains("memo")));
}

#[test]
fn large_payloads_are_skipped_not_kept() {
    let mut p = vec![0x80, 0x04, 0x8e];
    p.extend_from_slice(&(100_000u64).to_le_bytes());
    p.extend(std::iter::repeat_n(0u8, 100_000));
    p.push(b'.');
    let w = run(&p);
    assert_eq!(w.end, End::Stop);
    assert_eq!(w.bytes, p.len() as u64);
}

#[test]
fn a_length_past_the_end_fails_fast() {
    let mut p = vec![0x80, 0x04, 0x8e];
    p.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(run(&p).end, End::Malformed(_) | End::Truncated));
}

#[test]
fn a_frame_longer_than_the_stream_runs_only_in_the_pure_python_unpickler() {
    let mut p = vec![0x95];
    p.extend_from_slice(&1000u64.to_le_bytes());
    p.extend_from_slice(b"cos\nsystem\n.");
    let w = run(&p);
    // CPython's C unpickler fails at the FRAME; the pure-Python one (joblib) runs it.
    assert!(w.divergence.is_some());
    assert_eq!(imports(&w), ["os.system"]);
    assert!(w.imports[0].loader_dependent);
}

#[test]
fn the_pure_python_unpickler_is_looser_in_places() {
    // FLOAT with spaces; REDUCE with a list of arguments; BUILD with an empty dict on a
    // list; INST without MARK imports before failing.
    for p in [&b"F 1.5\n0cos\nsystem\n."[..], b"cos\nsystem\n]R.", b"]}bcos\nsystem\n.", b"ios\nsystem\n."] {
        let w = run(p);
        assert!(w.divergence.is_some(), "{:?}", String::from_utf8_lossy(p));
        assert_eq!(imports(&w), ["os.system"], "{:?}", String::from_utf8_lossy(p));
    }
}
