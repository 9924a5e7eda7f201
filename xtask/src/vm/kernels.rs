//! The guest kernels: Debian's own packages, fetched with `apt-get download` and unpacked
//! with `dpkg -x` once, then reused.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::setup::run_checked;

/// Debian's kernels the suite runs on: the oldest supported line (6.1, bookworm) and the
/// newest packaged for bookworm (6.12). Exact package names so that a run is repeatable;
/// `apt-cache search '^linux-image-6\.'` lists what the sources offer when one goes away.
const KERNEL_PACKAGES: [&str; 2] = ["linux-image-6.1.0-50-amd64", "linux-image-6.12.111+deb12-amd64"];

const KERNELS_DIR: &str = "target/vm/kernels";

/// An unpacked kernel package.
pub(crate) struct Kernel {
    /// The Debian package name.
    pub(crate) package: &'static str,
    pub(crate) vmlinuz: PathBuf,
}

/// The kernels whose package name contains one of `filters` (all if none), fetched and
/// unpacked if they are not yet.
pub(crate) fn ensure(filters: &[String]) -> anyhow::Result<Vec<Kernel>> {
    let selected: Vec<&'static str> = KERNEL_PACKAGES
        .into_iter()
        .filter(|package| filters.is_empty() || filters.iter().any(|f| package.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        bail!("no kernel package matches {filters:?}; known: {KERNEL_PACKAGES:?}");
    }
    std::fs::create_dir_all(KERNELS_DIR).with_context(|| format!("creating {KERNELS_DIR}"))?;
    selected.into_iter().map(ensure_one).collect()
}

fn ensure_one(package: &'static str) -> anyhow::Result<Kernel> {
    let root = Path::new(KERNELS_DIR).join(package);
    if let Some(vmlinuz) = find_vmlinuz(&root) {
        return Ok(Kernel { package, vmlinuz });
    }
    eprintln!("vm-test: fetching {package}");
    run_checked(Command::new("apt-get").args(["download", "-q", package]).current_dir(KERNELS_DIR))?;
    let deb = find_deb(package)?;
    // Unpack into a temporary directory and rename at the end: an interrupted unpack must
    // not look like a cached kernel next time.
    let partial = Path::new(KERNELS_DIR).join(format!("{package}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    run_checked(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, &root).with_context(|| format!("renaming {}", partial.display()))?;
    std::fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;
    let vmlinuz = find_vmlinuz(&root).with_context(|| format!("{package} has no boot/vmlinuz-*"))?;
    Ok(Kernel { package, vmlinuz })
}

/// `<root>/boot/vmlinuz-<release>`, if unpacked.
fn find_vmlinuz(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root.join("boot"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-")))
}

/// The `.deb` that `apt-get download` left: `<package>_<version>_amd64.deb`, where `+` in
/// the package name may be escaped as `%2b`.
fn find_deb(package: &str) -> anyhow::Result<PathBuf> {
    let prefixes = [format!("{package}_"), format!("{}_", package.replace('+', "%2b"))];
    for entry in std::fs::read_dir(KERNELS_DIR)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".deb") && prefixes.iter().any(|prefix| name.starts_with(prefix)) {
            return Ok(path);
        }
    }
    bail!("apt-get download {package} left no .deb in {KERNELS_DIR}")
}
