use super::*;

fn verdict(module: &str, name: &str) -> ImportVerdict {
    classify_import(module, name).0
}

#[test]
fn ml_allowlist() {
    for (m, n) in [
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch", "_utils._rebuild_tensor_v2"),
        ("torch", "FloatStorage"),
        ("torch", "BFloat16Storage"),
        ("torch", "bfloat16"),
        ("torch", "device"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "dtype"),
        ("numpy", "float64"),
        ("numpy.dtypes", "Float32DType"),
        ("_codecs", "encode"),
        ("__builtin__", "set"),
        ("copy_reg", "_reconstructor"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("sklearn.tree._tree", "Tree"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
        ("sklearn.metrics._scorer", "_PassthroughScorer"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("numpy.ma.core", "MaskedArray"),
        ("pandas.core.frame", "DataFrame"),
        ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ("pandas.core.indexes.base", "_new_Index"),
    ] {
        assert_eq!(verdict(m, n), ImportVerdict::Allowed, "{m}.{n}");
    }
}

#[test]
fn every_exact_allowlist_entry_is_allowed() {
    for path in ALLOWED {
        let (module, name) = path.rsplit_once('.').expect("dotted");
        assert_eq!(verdict(module, name), ImportVerdict::Allowed, "{path}");
    }
}

#[test]
fn gadgets_are_dangerous_including_submodules() {
    for (m, n) in [
        ("os", "system"),
        ("posix", "system"),
        ("os.path", "join"),
        ("nt", "system"),
        ("builtins", "eval"),
        ("__builtin__", "exec"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("runpy", "_run_code"),
        ("torch.serialization", "load"),
        ("torch", "load"),
        ("functools", "partial"),
        ("operator", "attrgetter"),
        ("pkgutil", "resolve_name"),
        ("types", "CodeType"),
        ("torch.utils.collect_env", "run"),
        ("logging", "FileHandler"),
        ("picklescan.scanner", "scan_pickle_bytes"),
        ("fickling", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("commands", "getoutput"),
        ("collections", "OrderedDict.__init__.__globals__"),
        ("joblib", "load"),
        ("pandas", "read_pickle"),
        ("pandas.io.pickle", "read_pickle"),
        ("pandas.core.computation.eval", "eval"),
        ("numpy", "load"),
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("marshal", "loads"),
        ("dill", "loads"),
        ("copyreg", "add_extension"),
        ("atexit", "register"),
        ("weakref", "finalize"),
        ("codecs", "register"),
    ] {
        assert_eq!(verdict(m, n), ImportVerdict::Dangerous, "{m}.{n}");
    }
}

#[test]
fn attribute_paths_through_other_modules_are_judged_by_where_they_lead() {
    for (m, n) in [
        ("numpy.testing._private.utils", "os.system"),
        ("some.harmless.module", "os.system"),
        ("collections", "_sys.modules"),
        ("tempfile", "_os.system"),
        ("torch", "serialization.load"),
        ("sklearn.tree._classes", "np.load"),
        ("anything", "subprocess.Popen"),
        ("anything", "builtins.exec"),
        ("torch.utils.bottleneck.__main__", "run_cprofile"),
        ("mypkg.__main__", "main"),
    ] {
        assert_eq!(verdict(m, n), ImportVerdict::Dangerous, "{m}.{n}");
    }
}

#[test]
fn less_obvious_standard_library_spawners() {
    for (m, n) in [
        ("platform", "_syscmd_file"),
        ("uuid", "_get_command_stdout"),
        ("imaplib", "IMAP4_stream"),
        ("_osx_support", "_read_output"),
        ("_aix_support", "_read_cmd_output"),
        ("pydoc", "pipepager"),
        ("mailcap", "findmatch"),
        ("pipes", "Template.copy"),
        ("webbrowser", "open"),
        ("ctypes.util", "find_library"),
        ("venv", "create"),
        ("ensurepip", "_run_pip"),
        ("trace", "Trace.runctx"),
        ("profile", "Profile.run"),
        ("bdb", "Bdb.run"),
        ("code", "InteractiveInterpreter.runcode"),
        ("doctest", "debug_script"),
        ("timeit", "timeit"),
        ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
        ("test.support.script_helper", "assert_python_ok"),
        ("distutils.spawn", "spawn"),
        ("lib2to3.pgen2.pgen", "ParserGenerator.make_label"),
        ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
        ("dataclasses", "_create_fn"),
        ("gettext", "c2py"),
        ("optparse", "Values.read_file"),
        ("http.server", "CGIHTTPRequestHandler.run_cgi"),
        ("multiprocessing.util", "spawnv_passfds"),
        ("tracemalloc", "Snapshot.load"),
        ("_pyrepl.pager", "pipe_pager"),
    ] {
        assert_eq!(verdict(m, n), ImportVerdict::Dangerous, "{m}.{n}");
    }
}

#[test]
fn prefixes_match_on_dot_boundaries_only() {
    assert_eq!(verdict("osmium", "thing"), ImportVerdict::Unknown);
    assert_eq!(verdict("torch", "loadable"), ImportVerdict::Unknown);
    assert_eq!(verdict("builtins", "evaluate"), ImportVerdict::Unknown);
    assert_eq!(verdict("torch", "Evil Storage"), ImportVerdict::Unknown);
}

#[test]
fn everything_else_is_unknown() {
    assert_eq!(verdict("sklearn.linear_model", "make_regression"), ImportVerdict::Unknown);
    assert_eq!(verdict("mypackage.models", "Net"), ImportVerdict::Unknown);
    assert_eq!(verdict("copyreg", "__newobj__"), ImportVerdict::Unknown);
    // A class of the program that loads the pickle (a whole torch model saved from a
    // script): unknown, so high when called; its attribute paths are still judged.
    assert_eq!(verdict("__main__", "Net"), ImportVerdict::Unknown);
    assert_eq!(verdict("__main__", "os.system"), ImportVerdict::Dangerous);
    assert_eq!(verdict("sklearn.linear_model", "LogisticRegression.fit"), ImportVerdict::Unknown);
}

/// Re-runs the standard-library scan (tools/stdlib_exec_scan.py) with the local
/// CPython 3.11, and checks that the deny table covers every function it finds.
#[test]
fn stdlib_scan_is_covered() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/stdlib_exec_scan.py");
    let version =
        std::process::Command::new("python3").args(["-c", "import sys;print(sys.version_info[:2])"]).output();
    let Ok(version) = version else {
        eprintln!("SKIPPED: python3 is not available");
        return;
    };
    if String::from_utf8_lossy(&version.stdout).trim() != "(3, 11)" {
        eprintln!(
            "SKIPPED: the deny table was made from CPython 3.11's standard library; python3 is another version"
        );
        return;
    }
    let out = std::process::Command::new("python3").arg(&script).output().expect("run the scan");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut missing = Vec::new();
    let mut found = 0;
    for line in text.lines() {
        let path = line.split('\t').next().expect("path");
        found += 1;
        if dangerous_path(path).is_none() {
            missing.push(path.to_owned());
        }
    }
    assert!(found > 1000, "the scan found only {found} functions");
    assert!(missing.is_empty(), "not denied: {missing:?}");
}
