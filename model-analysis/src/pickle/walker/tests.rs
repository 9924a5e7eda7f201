use super::*;

fn run(bytes: &[u8]) -> Walk {
    walk(
        bytes,
        &WalkLimits {
            max_bytes: 1 << 20,
            max_stack: 1000,
            max_memo: 1000,
            len_hint: Some(bytes.len() as u64),
            deadline: None,
        },
    )
}

fn imports(w: &Walk) -> Vec<String> {
    w.imports.iter().map(|i| format!("{}.{}", i.module, i.name)).collect()
}

#[test]
fn global_reduce_is_an_import_and_a_call() {
    // cos\nsystem\n(S'id'\ntR.
    let w = run(b"cos\nsystem\n(S'id'\ntR.");
    assert_eq!(w.end, End::Stop);
    assert_eq!(imports(&w), ["os.system"]);
    assert_eq!(w.calls.len(), 1);
    assert_eq!(w.calls[0].via, "REDUCE");
}

#[test]
fn stack_global_resolves_through_the_memo() {
    // \x80\x04 'os' MEMOIZE POP 'system' MEMOIZE POP GET0 GET1 STACK_GLOBAL ...
    let mut p = b"\x80\x04\x8c\x02os\x94\x30\x8c\x06system\x94\x30".to_vec();
    p.extend_from_slice(b"h\x00h\x01\x93\x8c\x02id\x85R.");
    let w = run(&p);
    assert_eq!(w.end, End::Stop, "{:?}", w.end);
    assert_eq!(imports(&w), ["os.system"]);
    assert_eq!(w.protocol, Some(4));
}

#[test]
fn stack_global_on_computed_strings_is_unresolved() {
    // builtins.str called, then used as module name.
    let p = b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R\x8c\x06system\x93.";
    let w = run(p);
    assert_eq!(w.unresolved, 1, "{w:?}");
    assert!(w.unresolved_examples[0].contains("call result"));
}

#[test]
fn string_escapes_are_decoded() {
    assert_eq!(quoted_string(b"'o\\x73'").as_deref(), Ok("os"));
    assert_eq!(quoted_string(b"\"\\157s\"").as_deref(), Ok("os"));
    assert!(quoted_string(b"os").is_err());
    assert_eq!(raw_unicode_escape(b"o\\u0073").as_deref(), Some("os"));
}

#[test]
fn escaped_string_globals_resolve() {
    // Protocol 0 STRINGs with escapes, then STACK_GLOBAL.
    let w = run(b"S'o\\x73'\nS'sys\\x74em'\n\x93.");
    assert_eq!(imports(&w), ["os.system"]);
}

#[test]
fn malformed_streams_end_with_a_reason() {
    assert!(matches!(run(b"\x80\x02\xff").end, End::Malformed(m) if m.contains("0xff")));
    assert!(matches!(run(b"Na").end, End::Malformed(m) if m.contains("underflow")));
    assert!(matches!(run(b"0").end, End::Malformed(m) if m.contains("MARK")));
    assert!(matches!(run(b"h\x05.").end, End::Malformed(m) if m.contains("never stored")));
    assert!(matches!(run(b"\x80\x09N.").end, End::Malformed(_)));
    assert_eq!(run(b"\x80\x02N").end, End::InputEnded { between_opcodes: true });
    assert_eq!(run(b"\x80\x02X\xff\xff\xff\x00ab").end, End::InputEnded { between_opcodes: false });
}

#[test]
fn mark_hides_what_is_below_it() {
    // N ( 0 -> POP with an empty frame pops the MARK, then STOP pops N.
    assert_eq!(run(b"N(0.").end, End::Stop);
    // N ( a -> APPEND cannot reach below the mark.
    assert!(matches!(run(b"N(Na.").end, End::Malformed(_)));
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
    assert_eq!(run(&p).end, End::InputEnded { between_opcodes: false });
}
