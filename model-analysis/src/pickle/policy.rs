//! Which imports are fine, which are known gadgets, and which are merely unknown.
//!
//! An import is judged as `find_class` resolves it: the module is imported, then the
//! name is looked up in it, and from protocol 4 a dotted name is an attribute path
//! (`numpy.testing._private.utils` + `os.system` is `os.system`, reached through the
//! `os` that module imported). So a path is dangerous when any of its tails names a
//! denied module or callable (`collections._sys.modules...` reaches `sys`; a leading
//! underscore is a common import alias: `_os`, `_sys`), or when it walks dunder
//! attributes to the interpreter. Python 2 names are judged under their Python 3 names
//! too, whatever the protocol.
//!
//! The deny table is [`super::deny::DENIED`]; the allowlist is in [`super::allow`].

use serde::Serialize;

use super::allow::{ALLOWED, CLASS_PACKAGES, NUMPY_SCALARS, SPARSE_FORMATS, TORCH_CONSTANTS};
use super::compat;
use super::deny::DENIED;

/// What the policy says about one import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportVerdict {
    /// In the vetted ML allowlist.
    Allowed,
    /// Outside the allowlist, not a known gadget: still able to run code when called.
    Unknown,
    /// A known code-execution, file, network or scanner-evasion gadget.
    Dangerous,
}

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
    "__closure__",
    "__func__",
    "__self__",
    "__dict__",
    "__getattribute__",
    "__getattr__",
    "__reduce__",
    "__reduce_ex__",
    "__import__",
    "__init__",
    "__new__",
    "__call__",
    "__loader__",
    "__spec__",
    "__module__",
    "__wrapped__",
    "__objclass__",
    "__traceback__",
    "__frame__",
    "f_globals",
    "f_locals",
    "f_builtins",
    "gi_frame",
    "cr_frame",
    "tb_frame",
];

/// Whether `path` is `prefix` or lies under it on a dot boundary.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn denied(path: &str) -> Option<&'static str> {
    DENIED.iter().find(|(prefix, _)| under(path, prefix)).map(|(_, why)| *why)
}

/// Judges one import. Returns the verdict and, for dangerous imports, why.
#[must_use]
pub fn classify_import(module: &str, name: &str) -> (ImportVerdict, Option<&'static str>) {
    let module = module.trim();
    let name = name.trim();
    let renamed_module = compat::python3_module(module);
    let written = format!("{module}.{name}");
    let renamed = format!("{renamed_module}.{name}");
    // `__builtin__.reduce` is `functools.reduce` for CPython below protocol 3.
    let (m3, n3) = compat::python3_name(module.as_bytes(), name.as_bytes());
    let renamed_global = format!("{}.{}", m3.unwrap_or(module), n3.unwrap_or(name));
    let walks_dunders = |path: &str| path.split('.').any(|part| DUNDER_WALKS.contains(&part));
    if walks_dunders(&written) {
        return (ImportVerdict::Dangerous, Some("walks dunder attributes to the interpreter"));
    }
    // Vetted paths, exactly: their tails (`numpy.random._pickle...`) are not aliases.
    if ALLOWED.contains(&renamed.as_str()) {
        return (ImportVerdict::Allowed, None);
    }
    if let Some(why) = dangerous_path(&written)
        .or_else(|| dangerous_path(&renamed))
        .or_else(|| dangerous_path(&renamed_global))
    {
        return (ImportVerdict::Dangerous, Some(why));
    }
    if allowed_by_pattern(renamed_module, name) {
        return (ImportVerdict::Allowed, None);
    }
    (ImportVerdict::Unknown, None)
}

/// Module aliases that scientific code imports everywhere (`import numpy as np`): an
/// attribute path through one reaches that module.
const ALIASES: &[(&str, &str)] = &[("np", "numpy"), ("pd", "pandas"), ("tf", "tensorflow")];

/// Longest dotted path judged part by part: no real module and attribute path comes
/// close, and judging a longer one would cost time quadratic in its length.
const MAX_JUDGED_PARTS: usize = 64;

/// Judges a whole dotted path (module and attribute path together).
#[must_use]
pub(crate) fn dangerous_path(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('.').take(MAX_JUDGED_PARTS + 1).collect();
    if parts.len() > MAX_JUDGED_PARTS || path.len() > 4096 {
        return Some("an attribute path too long to be real");
    }
    if parts.iter().any(|part| DUNDER_WALKS.contains(part)) {
        return Some("walks dunder attributes to the interpreter");
    }
    for start in 0..parts.len() {
        let tail = parts[start..].join(".");
        if let Some(why) = denied(&tail) {
            return Some(why);
        }
        if start == 0 {
            continue;
        }
        // `_os`, `_sys`, `_subprocess`: modules imported under a private alias.
        let unaliased = tail.trim_start_matches('_');
        if unaliased.len() < tail.len()
            && !unaliased.is_empty()
            && let Some(why) = denied(unaliased)
        {
            return Some(why);
        }
        if let Some((_, module)) = ALIASES.iter().find(|(alias, _)| *alias == parts[start]) {
            let rest = parts[start + 1..].iter().map(|p| format!(".{p}")).collect::<String>();
            if let Some(why) = denied(&format!("{module}{rest}")) {
                return Some(why);
            }
        }
    }
    // A package's `__main__` module is its program: importing it runs it. (The
    // top-level `__main__` is the program that loads the pickle, already running:
    // `__main__.Net` is judged like any other class.)
    if parts.iter().skip(1).any(|part| *part == "__main__") {
        return Some("imports a program's entry point, which runs it");
    }
    None
}

fn allowed_by_pattern(module: &str, name: &str) -> bool {
    if is_torch_storage_or_constant(module, name) {
        return true;
    }
    if module == "numpy" && NUMPY_SCALARS.contains(&name) {
        return true;
    }
    if module == "numpy.dtypes" && name.ends_with("DType") && is_identifier(name) {
        return true;
    }
    if is_sparse_class(module, name) {
        return true;
    }
    is_class_name(name) && CLASS_PACKAGES.iter().any(|package| under(module, package))
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A class name by convention: `CamelCase` (or `_CamelCase`), one identifier (no
/// attribute path); or a Cython class's reconstructor.
fn is_class_name(name: &str) -> bool {
    let class = name.strip_prefix("__pyx_unpickle_").unwrap_or(name);
    let class = class.strip_prefix('_').unwrap_or(class);
    is_identifier(class) && class.as_bytes()[0].is_ascii_uppercase()
}

/// `scipy.sparse._csr.csr_matrix`, `scipy.sparse._coo.coo_array`...
fn is_sparse_class(module: &str, name: &str) -> bool {
    let Some((format, kind)) = name.split_once('_') else {
        return false;
    };
    under(module, "scipy.sparse") && SPARSE_FORMATS.contains(&format) && matches!(kind, "matrix" | "array")
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
mod tests;
