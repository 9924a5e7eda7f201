//! Code-execution pickles that CPython runs and that earlier versions of this analysis
//! passed or rated medium, one test per class. Each goes through the full analysis
//! with no file name (content decides), and `modelwatch scan --fail-on high` exits 1
//! exactly when a finding is high or above.

mod support;

use model_analysis::{Format, Limits, ModelReport, Severity, analyze_bytes};
use support::pickle_writer::{Pickle, stack_global_call};

fn analyze(bytes: &[u8]) -> ModelReport {
    analyze_bytes(bytes, None, &Limits::default())
}

fn findings(report: &ModelReport) -> String {
    report.findings.iter().map(|f| format!("[{:?}] {}", f.severity, f.message)).collect::<Vec<_>>().join("\n")
}

#[track_caller]
fn assert_critical(bytes: &[u8], what: &str) {
    let report = analyze(bytes);
    assert!(
        matches!(report.format, Format::Pickle | Format::PytorchLegacy),
        "{what}: format {:?}",
        report.format
    );
    assert_eq!(report.max_severity(), Some(Severity::Critical), "{what}:\n{}", findings(&report));
}

#[track_caller]
fn assert_at_least_high(bytes: &[u8], what: &str) {
    let report = analyze(bytes);
    assert!(report.max_severity() >= Some(Severity::High), "{what}:\n{}", findings(&report));
}

/// `module.name(arg)` through GLOBAL, protocol 0 (text opcodes only).
fn global_call(module: &str, name: &str, arg: &str) -> Vec<u8> {
    Pickle::new().global(module, name).mark().string(&format!("'{arg}'")).tuple().reduce().stop().finish()
}

#[test]
fn attribute_path_through_another_module() {
    // Protocol 4 resolves a dotted name attribute by attribute: numpy's test utilities
    // imported `os`, so `numpy.testing._private.utils` + `os.system` is os.system.
    for (module, name) in [
        ("numpy.testing._private.utils", "os.system"),
        ("tempfile", "_os.system"),
        ("collections", "_sys.modules.os.system"),
        ("torch", "serialization.load"),
        ("sklearn.tree._classes", "np.load"),
        ("json", "decoder.re.sys.exit"),
        ("collections", "OrderedDict.__init__.__globals__"),
    ] {
        assert_critical(&stack_global_call(module, name, "id"), &format!("{module} + {name}"));
    }
    // A path to something unknown, called: high (it can run code, it is not vetted).
    let report = analyze(&stack_global_call("mylib", "helpers.run", "id"));
    assert_eq!(report.max_severity(), Some(Severity::High), "{}", findings(&report));
}

#[test]
fn second_stream_without_proto() {
    // pickle.load() again and again: the second load starts at the second stream,
    // which is protocol 0 (no PROTO opcode).
    let mut bytes = b"\x80\x02N.".to_vec();
    bytes.extend_from_slice(&global_call("os", "system", "id"));
    assert_critical(&bytes, "PROTO 2 stream, then a protocol 0 payload");

    // The legacy torch layout: five pickles, the fourth the model, then raw storages.
    let magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
    let mut bytes = magic.to_vec();
    bytes.extend_from_slice(b"\x80\x02M\xe9\x03.");
    bytes.extend_from_slice(b"\x80\x02}q\x00.");
    bytes.extend_from_slice(&global_call("posix", "system", "id"));
    bytes.extend_from_slice(b"\x80\x02]q\x00X\x01\x00\x00\x000a.");
    bytes.extend_from_slice(&[0x10, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    let report = analyze(&bytes);
    assert_eq!(report.format, Format::PytorchLegacy);
    assert_eq!(report.max_severity(), Some(Severity::Critical), "{}", findings(&report));
    let pickle = report.pickle.as_ref().expect("pickle");
    assert_eq!(pickle.trailing_bytes, 12, "the storages are measured, not parsed");

    // Many harmless streams first, the payload in the twentieth.
    let mut bytes = Vec::new();
    for _ in 0..19 {
        bytes.extend_from_slice(b"\x80\x04K\x01.");
    }
    bytes.extend_from_slice(&global_call("subprocess", "getoutput", "id"));
    assert_critical(&bytes, "payload in the 20th stream");
}

#[test]
fn stream_that_starts_with_frame() {
    // FRAME before PROTO: CPython reads the frame and goes on.
    let body = Pickle::new().proto(4).raw(&stack_global_call("os", "system", "id")[2..]);
    assert_critical(&Pickle::new().framed(&body).finish(), "FRAME first");
    // A frame longer than any sniffed prefix, opening with a long string.
    let body = Pickle::new()
        .proto(4)
        .unicode(&"x".repeat(20_000))
        .pop()
        .raw(&stack_global_call("builtins", "exec", "print(1)")[2..]);
    assert_critical(&Pickle::new().framed(&body).finish(), "FRAME first, 20 KB frame");
    // A frame of length 0 is allowed, and changes nothing.
    assert_critical(&Pickle::new().frame(0).raw(&global_call("os", "system", "id")).finish(), "empty FRAME");
}

#[test]
fn stream_that_starts_with_a_text_opcode() {
    for prefix in [
        &b"I1\n0"[..],
        b"L12L\n0",
        b"F1.5\n0",
        b"S'x'\n0",
        b"Vx\n0",
        b"(l0",
        b"(I1\nI2\nt0",
        b"N0",
        b"]0",
        b"(0",
    ] {
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&global_call("os", "system", "id"));
        assert_critical(&bytes, &String::from_utf8_lossy(prefix));
    }
}

#[test]
fn long_harmless_prefix() {
    let payload = global_call("os", "system", "id");
    // 20,000 NONE/POP pairs.
    let mut bytes = b"N0".repeat(20_000);
    bytes.extend_from_slice(&payload);
    assert_critical(&bytes, "NONE POP x 20000");
    // A long list of text integers.
    let mut bytes = b"(".to_vec();
    for i in 0..20_000 {
        bytes.extend_from_slice(format!("I{i}\n").as_bytes());
    }
    bytes.extend_from_slice(b"l0");
    bytes.extend_from_slice(&payload);
    assert_critical(&bytes, "20000 INTs");
    // One 2 MB string, with and without PROTO.
    let big = "a".repeat(2 << 20);
    let bytes = Pickle::new().proto(4).unicode8(&big).pop().raw(&payload).finish();
    assert_critical(&bytes, "PROTO 4, 2 MB string");
    let bytes = Pickle::new().unicode(&big).pop().raw(&payload).finish();
    assert_critical(&bytes, "no PROTO, 2 MB string");
    // 100 MB of bytes: skipped by seeking, not read.
    let mut bytes = vec![0x80, 0x04, 0x8e];
    bytes.extend_from_slice(&(100u64 << 20).to_le_bytes());
    bytes.resize(bytes.len() + (100 << 20), 0);
    bytes.push(b'0');
    bytes.extend_from_slice(&payload);
    assert_critical(&bytes, "100 MB BINBYTES8");
}

#[test]
fn int_syntaxes_for_memo_keys_and_numbers() {
    // The callable is stored with PUT and fetched with GET, keys written as int(s, 10)
    // reads them: spaces, sign, underscores, leading zeros, tabs.
    for (put, get) in
        [("1", " 1"), ("+1_0", "10"), (" 0010\t", "10"), ("7", "0007"), ("1_000", "1000"), ("\u{c}3\r", "3")]
    {
        let bytes = Pickle::new()
            .global("os", "system")
            .raw(format!("p{put}\n0g{get}\n").as_bytes())
            .mark()
            .string("'id'")
            .tuple()
            .reduce()
            .stop()
            .finish();
        assert_critical(&bytes, &format!("PUT {put:?} GET {get:?}"));
    }
    // INT and LONG arguments in every syntax CPython accepts, before the payload.
    for number in [
        "I010",
        "I0x1f",
        "I1_000",
        "I +5",
        "I\t7\u{b}",
        "I0o7",
        "I0b11",
        "I99999999999999999999",
        "L12L",
        "L0x10L",
        "L 5 L",
        "L1_0",
        "F.5",
        "Finf",
        "F1e-999",
    ] {
        let mut bytes = format!("{number}\n0").into_bytes();
        bytes.extend_from_slice(&global_call("os", "system", "id"));
        assert_critical(&bytes, number);
    }
}

#[test]
fn less_obvious_standard_library_spawners() {
    for (module, name) in [
        ("platform", "_syscmd_file"),
        ("platform", "architecture"),
        ("uuid", "_get_command_stdout"),
        ("uuid", "getnode"),
        ("imaplib", "IMAP4_stream"),
        ("_osx_support", "_read_output"),
        ("_aix_support", "_read_cmd_output"),
        ("pydoc", "pipepager"),
        ("mailcap", "findmatch"),
        ("pipes", "Template"),
        ("ctypes.util", "find_library"),
        ("ensurepip", "_run_pip"),
        ("venv", "create"),
        ("distutils.spawn", "spawn"),
        ("multiprocessing.util", "spawnv_passfds"),
        ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
        ("http.server", "CGIHTTPRequestHandler.run_cgi"),
        ("webbrowser", "open"),
        ("trace", "Trace.runctx"),
        ("timeit", "timeit"),
        ("doctest", "debug_script"),
        ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
        ("test.support.script_helper", "assert_python_ok"),
        ("dataclasses", "_create_fn"),
        ("gettext", "c2py"),
        ("tracemalloc", "Snapshot.load"),
        ("cgi", "test"),
        ("logging.config", "listen"),
    ] {
        assert_critical(&stack_global_call(module, name, "id"), &format!("{module}.{name}"));
    }
}

#[test]
fn python2_names() {
    // Protocols 0-2: CPython renames with _compat_pickle before importing.
    for (module, name) in [
        ("__builtin__", "eval"),
        ("__builtin__", "execfile"),
        ("__builtin__", "apply"),
        ("__builtin__", "reduce"),
        ("commands", "getoutput"),
        ("cPickle", "loads"),
        ("urllib2", "urlopen"),
        ("urllib", "urlretrieve"),
        ("thread", "start_new_thread"),
        ("httplib", "HTTPSConnection"),
        ("SocketServer", "TCPServer"),
    ] {
        assert_critical(&global_call(module, name, "x"), &format!("{module}.{name}"));
        let proto2 = Pickle::new().proto(2).raw(&global_call(module, name, "x")).finish();
        assert_critical(&proto2, &format!("{module}.{name}, protocol 2"));
        // Protocol 3 does not rename (the import fails in Python 3), but the name is
        // still judged by what it means.
        let proto3 = Pickle::new().proto(3).raw(&global_call(module, name, "x")).finish();
        assert_critical(&proto3, &format!("{module}.{name}, protocol 3"));
    }
    // An exception class, renamed and called: outside the allowlist, so high.
    assert_at_least_high(&global_call("exceptions", "OSError", "x"), "exceptions.OSError");
}

#[test]
fn unknown_callables_are_high() {
    for op in ["REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST", "BUILD"] {
        let bytes = match op {
            "REDUCE" => stack_global_call("mypackage.evil", "Thing", "x"),
            "NEWOBJ" => Pickle::new()
                .proto(2)
                .global("mypackage.evil", "Thing")
                .empty_tuple()
                .newobj()
                .stop()
                .finish(),
            "NEWOBJ_EX" => Pickle::new()
                .proto(4)
                .global("mypackage.evil", "Thing")
                .empty_tuple()
                .empty_dict()
                .op(0x92)
                .stop()
                .finish(),
            "OBJ" => Pickle::new().proto(1).mark().global("mypackage.evil", "Thing").op(b'o').stop().finish(),
            "INST" => Pickle::new().mark().inst("mypackage.evil", "Thing").stop().finish(),
            _ => {
                Pickle::new().proto(2).global("mypackage.evil", "thing").empty_dict().build().stop().finish()
            }
        };
        let report = analyze(&bytes);
        assert_eq!(report.max_severity(), Some(Severity::High), "{op}:\n{}", findings(&report));
    }
    // Handed to an allowed function that calls it: copyreg._reconstructor(cls, base, state)
    // calls base.__init__.
    let bytes = Pickle::new()
        .global("copy_reg", "_reconstructor")
        .mark()
        .global("mypackage.evil", "Thing")
        .global("mypackage.evil", "Base")
        .none()
        .tuple()
        .reduce()
        .stop()
        .finish();
    assert_at_least_high(&bytes, "copyreg._reconstructor(Thing, Base, None)");
}

#[test]
fn framing_tricks() {
    // A frame too short: CPython drops the rest of it when an argument does not fit,
    // and a buffered reader sees other bytes. Whatever runs, the gate must stop it.
    let body = stack_global_call("os", "system", "id");
    let bytes = Pickle::new().proto(4).frame(10).raw(&body[2..]).finish();
    assert_at_least_high(&bytes, "frame too short");
    // STOP inside a frame: the next load() starts after the frame.
    let mut inner = b"N.".to_vec();
    inner.extend_from_slice(&global_call("os", "system", "id"));
    let bytes = Pickle::new()
        .proto(4)
        .frame(inner.len() as u64)
        .raw(&inner)
        .raw(&global_call("posix", "system", "x"))
        .finish();
    assert_at_least_high(&bytes, "STOP inside a frame");
}

#[test]
fn polyglots_are_also_walked_as_pickles() {
    // GGUF magic, then a pickle: `GGUF` is BINFLOAT with 8 bytes of argument.
    let mut bytes = b"GGUF\x03\x00\x00\x00\x00".to_vec();
    bytes.extend_from_slice(b"0");
    bytes.extend_from_slice(&global_call("os", "system", "id"));
    let report = analyze(&bytes);
    assert_eq!(report.format, Format::Gguf);
    assert_eq!(report.max_severity(), Some(Severity::Critical), "{}", findings(&report));
    assert!(report.has_finding(model_analysis::FindingKind::PicklePolyglot));
    // An HDF5 signature at byte 512 (a user block), inside a pickle string.
    let mut bytes = global_call("os", "system", "id");
    bytes.pop();
    bytes.extend_from_slice(b"0X");
    let pad = 512 - bytes.len() - 4;
    bytes.extend_from_slice(&u32::try_from(pad + 8).expect("small").to_le_bytes());
    bytes.resize(512, b' ');
    bytes.extend_from_slice(b"\x89HDF\r\n\x1a\n");
    bytes.extend_from_slice(b"0N.");
    let report = analyze(&bytes);
    assert_eq!(report.max_severity(), Some(Severity::Critical), "{:?}: {}", report.format, findings(&report));
}

/// A `joblib.dump` of one float32 array of `shape`, its raw bytes `data`, then `after`
/// (opcodes the stream goes on with).
fn joblib_array(dtype: &str, shape: &[u8], aligned: bool, data: &[u8], after: &[u8]) -> Vec<u8> {
    let mut state = Pickle::new().empty_dict().mark().short_unicode("shape").mark();
    for &d in shape {
        state = state.binint1(d);
    }
    state = state
        .tuple()
        .short_unicode("dtype")
        .short_unicode("numpy")
        .short_unicode("dtype")
        .stack_global()
        .short_unicode(dtype)
        .op(0x89)
        .op(0x88)
        .op(0x87)
        .reduce()
        .mark()
        .binint1(3)
        .short_unicode("<")
        .none()
        .none()
        .none()
        .binint1(255)
        .binint1(255)
        .binint1(0)
        .tuple()
        .build();
    if aligned {
        state = state.short_unicode("numpy_array_alignment_bytes").binint1(16);
    }
    let mut p = Pickle::new()
        .proto(4)
        .short_unicode("joblib.numpy_pickle")
        .short_unicode("NumpyArrayWrapper")
        .stack_global()
        .empty_tuple()
        .newobj()
        .raw(&state.op(b'u').finish())
        .build()
        .finish();
    if aligned {
        p.push(3);
        p.extend_from_slice(&[0xff; 3]);
    }
    p.extend_from_slice(data);
    p.extend_from_slice(after);
    p
}

#[test]
fn joblib_files_are_read_both_ways() {
    let payload = global_call("os", "system", "id");
    // Clean: the array, then the end of the stream.
    let clean = joblib_array("f4", &[2, 2], true, &[0; 16], b".");
    assert!(analyze(&clean).max_severity() < Some(Severity::Medium), "{}", findings(&analyze(&clean)));
    // What only joblib.load reaches: a payload after the array.
    let mut after = b"0".to_vec();
    after.extend_from_slice(&payload);
    assert_critical(&joblib_array("f4", &[2, 2], true, &[0; 16], &after), "payload after a joblib array");
    // What only pickle.load runs: array bytes that are opcodes (an unaligned array).
    let mut data = payload.clone();
    data.resize(64, b'N');
    assert_critical(&joblib_array("f4", &[4, 4], false, &data, b"."), "payload as array bytes");
    // An array of objects: a nested pickle.
    let mut nested = Pickle::new().proto(2).raw(&payload).finish();
    nested.extend_from_slice(b"0N.");
    assert_critical(
        &joblib_array("O8", &[1], false, &nested[..nested.len() - 3], b"0N."),
        "payload in an object array",
    );
}

#[test]
fn a_long_text_argument_does_not_hide_what_follows() {
    // No PROTO; one 3 MB UNICODE line, popped, then the payload.
    let mut bytes = b"V".to_vec();
    bytes.resize(3 << 20, b'a');
    bytes.extend_from_slice(b"\n0");
    bytes.extend_from_slice(&global_call("os", "system", "id"));
    assert_critical(&bytes, "3 MB UNICODE line first");
}

#[test]
fn a_class_in_a_persistent_id_is_called_by_torch() {
    // torch's persistent_load builds the storage from the class in the id: an unknown
    // class there runs when torch loads the file.
    let bytes = Pickle::new()
        .proto(2)
        .mark()
        .unicode("storage")
        .global("mypackage.evil", "Storage")
        .unicode("0")
        .unicode("cpu")
        .binint1(4)
        .tuple()
        .op(b'Q')
        .stop()
        .finish();
    let report = analyze(&bytes);
    assert_eq!(report.max_severity(), Some(Severity::High), "{}", findings(&report));
}
