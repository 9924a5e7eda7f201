//! Which imports a pickle may make. Allowlist first: a vetted set of what PyTorch and
//! NumPy checkpoints need (mirroring torch's own `weights_only` unpickler). Anything
//! else is suspicious; known code-execution gadgets are dangerous.
//!
//! Matching is on the dotted path `module.name` after CPython's Python 2 name mapping
//! (`__builtin__` is `builtins`): deny entries match on dot boundaries, so `os` covers
//! `os.path.join` and `os.system`, and `builtins.eval` covers only `eval`.

use serde::Serialize;

/// What the policy says about one import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportVerdict {
    /// In the vetted ML allowlist.
    Allowed,
    /// Outside the allowlist, not a known gadget: still able to run code on load.
    Unknown,
    /// A known code-execution, file, network or scanner-evasion gadget.
    Dangerous,
}

/// Exact allowlist. `torch.device` is in: it is in torch's `weights_only` allowlist and
/// only parses a device string. `_codecs.encode` is in: NumPy's protocol 2 pickles use
/// it to rebuild `bytes`, and the codec name it takes can only select a codec from the
/// standard `encodings` package (no arbitrary import). `builtins.bytes/str/...` are
/// constructors of plain data.
const ALLOWED: &[&str] = &[
    "collections.OrderedDict",
    "collections.Counter",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch._tensor._rebuild_from_type_v2",
    "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout",
    "torch.Size",
    "torch.Tensor",
    "torch.device",
    "torch.storage.TypedStorage",
    "torch.storage.UntypedStorage",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    "_codecs.encode",
    "builtins.set",
    "builtins.frozenset",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.slice",
    "builtins.complex",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.str",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "builtins.range",
];

/// torch dtype, layout, memory format and qscheme objects pickled by name.
const TORCH_CONSTANTS: &[&str] = &[
    "float",
    "float16",
    "float32",
    "float64",
    "half",
    "double",
    "bfloat16",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "chalf",
    "int",
    "long",
    "short",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e5m2",
    "float8_e4m3fn",
    "float8_e5m2fnuz",
    "float8_e4m3fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "bits8",
    "strided",
    "sparse_coo",
    "sparse_csr",
    "sparse_csc",
    "sparse_bsr",
    "sparse_bsc",
    "_mkldnn",
    "jagged",
    "contiguous_format",
    "channels_last",
    "channels_last_3d",
    "preserve_format",
    "per_tensor_affine",
    "per_channel_affine",
    "per_tensor_symmetric",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
];

/// Known gadgets, as dotted prefixes, with why they are dangerous.
const DENIED: &[(&str, &str)] = &[
    ("builtins.eval", "evaluates code"),
    ("builtins.exec", "executes code"),
    ("builtins.execfile", "executes a file"),
    ("builtins.compile", "compiles code"),
    ("builtins.getattr", "reaches any attribute"),
    ("builtins.setattr", "sets any attribute"),
    ("builtins.delattr", "deletes any attribute"),
    ("builtins.__import__", "imports any module"),
    ("builtins.open", "opens files"),
    ("builtins.apply", "calls any callable"),
    ("builtins.input", "reads the terminal"),
    ("builtins.breakpoint", "starts a debugger"),
    ("builtins.globals", "reaches module globals"),
    ("builtins.locals", "reaches local variables"),
    ("builtins.vars", "reaches object dictionaries"),
    ("builtins.type", "creates classes"),
    ("builtins.memoryview", "exposes raw memory"),
    ("os", "runs commands and touches files"),
    ("posix", "runs commands and touches files"),
    ("nt", "runs commands and touches files"),
    ("subprocess", "runs commands"),
    ("_posixsubprocess", "runs commands"),
    ("commands", "runs commands"),
    ("popen2", "runs commands"),
    ("pty", "spawns a shell"),
    ("sys", "reaches the interpreter"),
    ("socket", "opens network connections"),
    ("_socket", "opens network connections"),
    ("ssl", "opens network connections"),
    ("http", "opens network connections"),
    ("urllib", "opens network connections"),
    ("urllib2", "opens network connections"),
    ("requests", "opens network connections"),
    ("httpx", "opens network connections"),
    ("aiohttp", "opens network connections"),
    ("ftplib", "opens network connections"),
    ("smtplib", "opens network connections"),
    ("telnetlib", "opens network connections"),
    ("xmlrpc", "opens network connections"),
    ("socketserver", "opens network listeners"),
    ("webbrowser", "opens URLs"),
    ("antigravity", "opens URLs"),
    ("shutil", "copies and deletes files"),
    ("tempfile", "creates files"),
    ("io.open", "opens files"),
    ("io.FileIO", "opens files"),
    ("_io", "opens files"),
    ("fileinput", "reads files"),
    ("tarfile", "extracts archives"),
    ("zipfile", "extracts archives"),
    ("runpy", "runs modules"),
    ("code", "runs code"),
    ("codeop", "compiles code"),
    ("compileall", "compiles code"),
    ("py_compile", "compiles code"),
    ("marshal", "loads code objects"),
    ("types.CodeType", "builds code objects"),
    ("types.FunctionType", "builds functions"),
    ("types.LambdaType", "builds functions"),
    ("types.MethodType", "binds methods"),
    ("types.ModuleType", "builds modules"),
    ("importlib", "imports modules"),
    ("imp", "imports modules"),
    ("zipimport", "imports modules"),
    ("pkgutil", "imports modules (resolve_name)"),
    ("site", "alters the import system"),
    ("sysconfig", "reaches the interpreter"),
    ("pip", "installs packages"),
    ("ensurepip", "installs packages"),
    ("venv", "creates environments"),
    ("distutils", "builds and runs code"),
    ("setuptools", "builds and runs code"),
    ("pickle", "nests another unpickling"),
    ("_pickle", "nests another unpickling"),
    ("cPickle", "nests another unpickling"),
    ("shelve", "nests another unpickling"),
    ("dill", "nests another unpickling"),
    ("cloudpickle", "nests another unpickling"),
    ("joblib.load", "nests another unpickling"),
    ("pandas.read_pickle", "nests another unpickling"),
    ("numpy.load", "nests another unpickling"),
    ("numpy.lib.npyio", "nests another unpickling"),
    ("numpy.testing._private.utils.runstring", "executes code"),
    ("numpy.f2py", "builds and runs code"),
    ("numpy.distutils", "builds and runs code"),
    ("numpy.ctypeslib", "loads native libraries"),
    ("torch.load", "nests another unpickling"),
    ("torch.serialization.load", "nests another unpickling"),
    ("torch.storage._load_from_bytes", "nests another unpickling"),
    ("torch.hub", "downloads and runs code"),
    ("torch.jit.load", "loads TorchScript"),
    ("torch.package", "loads packaged code"),
    ("torch.utils.cpp_extension", "compiles and loads native code"),
    ("torch.utils.collect_env.run", "runs commands"),
    ("torch._inductor.codecache", "loads generated code"),
    ("pdb", "starts a debugger"),
    ("bdb", "starts a debugger"),
    ("trace", "runs code under tracing"),
    ("cProfile", "runs code (run/runctx)"),
    ("profile", "runs code (run/runctx)"),
    ("timeit", "runs code"),
    ("doctest", "runs code"),
    ("pydoc", "runs commands (pipepager)"),
    ("idlelib", "runs code"),
    ("platform", "runs commands"),
    ("uuid._popen", "runs commands"),
    ("uuid._get_command_stdout", "runs commands"),
    ("ctypes", "loads native code"),
    ("_ctypes", "loads native code"),
    ("cffi", "loads native code"),
    ("mmap", "maps memory"),
    ("signal", "alters signal handling"),
    ("resource", "alters process limits"),
    ("gc", "reaches every object"),
    ("inspect", "reaches frames and code"),
    ("asyncio", "runs subprocesses and sockets"),
    ("multiprocessing", "spawns processes"),
    ("concurrent", "spawns processes"),
    ("threading", "starts threads"),
    ("_thread", "starts threads"),
    ("functools.partial", "binds any callable"),
    ("functools.reduce", "calls any callable"),
    ("_functools", "binds any callable"),
    ("operator.attrgetter", "reaches any attribute"),
    ("operator.methodcaller", "calls any method"),
    ("operator.itemgetter", "builds gadget chains"),
    ("_operator.attrgetter", "reaches any attribute"),
    ("_operator.methodcaller", "calls any method"),
    ("_operator.itemgetter", "builds gadget chains"),
    ("logging.FileHandler", "writes files"),
    ("logging.handlers", "writes files and sockets"),
    ("logging.config", "imports and configures anything"),
    ("jinja2", "renders templates"),
    ("yaml", "nests an unsafe loader"),
    ("IPython", "runs code"),
    ("unittest.mock", "calls anything"),
    // ScannerDeactivation: a pickle that imports a scanner is attacking it.
    ("picklescan", "imports a model scanner (scanner deactivation)"),
    ("fickling", "imports a model scanner (scanner deactivation)"),
    ("modelscan", "imports a model scanner (scanner deactivation)"),
    ("modelaudit", "imports a model scanner (scanner deactivation)"),
];

/// Attribute names that walk from any object to the interpreter's internals.
const DUNDER_WALKS: &[&str] = &[
    "__globals__",
    "__builtins__",
    "__subclasses__",
    "__mro__",
    "__bases__",
    "__base__",
    "__class__",
    "__code__",
    "__dict__",
    "__getattribute__",
    "__reduce__",
    "__reduce_ex__",
    "__import__",
    "__init__",
    "__loader__",
    "__spec__",
];

/// CPython's `_compat_pickle` renames for protocol < 3 pickles written by Python 2.
fn python3_module(module: &str) -> &str {
    match module {
        "__builtin__" | "exceptions" => "builtins",
        "copy_reg" => "copyreg",
        "cPickle" => "pickle",
        "commands" => "subprocess",
        "urllib2" => "urllib.request",
        "cStringIO" | "StringIO" => "io",
        "Queue" => "queue",
        "thread" => "_thread",
        other => other,
    }
}

/// Whether `path` is `prefix` or lies under it on a dot boundary.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Judges one import. Returns the verdict and, for dangerous imports, why.
#[must_use]
pub fn classify_import(module: &str, name: &str) -> (ImportVerdict, Option<&'static str>) {
    let module = python3_module(module.trim());
    let name = name.trim();
    // Protocol 4 resolves dotted names attribute by attribute: `OrderedDict.__init__.
    // __globals__` reaches whatever OrderedDict's module imported.
    if name.split('.').any(|part| DUNDER_WALKS.contains(&part)) {
        return (ImportVerdict::Dangerous, Some("walks dunder attributes to the interpreter"));
    }
    let path = format!("{module}.{name}");
    if ALLOWED.contains(&path.as_str()) || is_torch_storage_or_constant(module, name) {
        return (ImportVerdict::Allowed, None);
    }
    if module == "numpy.dtypes" && name.ends_with("DType") && is_identifier(name) {
        return (ImportVerdict::Allowed, None);
    }
    if let Some((_, why)) = DENIED.iter().find(|(prefix, _)| under(&path, prefix)) {
        return (ImportVerdict::Dangerous, Some(why));
    }
    (ImportVerdict::Unknown, None)
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `torch.FloatStorage`, `torch.cuda.HalfStorage`, `torch.float16`, `torch.strided`...
fn is_torch_storage_or_constant(module: &str, name: &str) -> bool {
    let storage_module = matches!(module, "torch" | "torch.cuda" | "torch.storage");
    if storage_module && name.ends_with("Storage") && is_identifier(name) {
        return true;
    }
    module == "torch" && TORCH_CONSTANTS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(module: &str, name: &str) -> ImportVerdict {
        classify_import(module, name).0
    }

    #[test]
    fn ml_allowlist() {
        for (m, n) in [
            ("collections", "OrderedDict"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
            ("torch", "BFloat16Storage"),
            ("torch", "bfloat16"),
            ("torch", "device"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy", "dtype"),
            ("numpy.dtypes", "Float32DType"),
            ("_codecs", "encode"),
            ("__builtin__", "set"),
        ] {
            assert_eq!(verdict(m, n), ImportVerdict::Allowed, "{m}.{n}");
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
        assert_eq!(verdict("sklearn.linear_model", "LogisticRegression"), ImportVerdict::Unknown);
        assert_eq!(verdict("copyreg", "_reconstructor"), ImportVerdict::Unknown);
        assert_eq!(verdict("builtins", "object"), ImportVerdict::Unknown);
    }
}
