//! The guest kernels: Debian's own packages, fetched with `apt-get download` and unpacked
//! with `dpkg -x` once, then reused.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::arch::Arch;
use crate::setup::run_checked;

/// How much of the end-to-end suite a kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coverage {
    /// Every test, once per backend (`auto` and `tracepoint`).
    Full,
    /// The named smoke subset (`suite::SMOKE`), with the `auto` backend: TCG is slow,
    /// and CI has an hour.
    Smoke,
}

/// One kernel of the matrix.
pub(crate) struct KernelSpec {
    /// The Debian package (exact, so that a run is repeatable; `apt-cache search
    /// '^linux-image-6\.'` lists what the sources offer when one goes away).
    pub(crate) package: &'static str,
    pub(crate) arch: Arch,
    /// `generic`, `rt` (PREEMPT_RT) or `cloud`: the configuration changes struct layouts
    /// and which hooks exist.
    pub(crate) flavour: &'static str,
    pub(crate) coverage: Coverage,
}

const fn kernel(package: &'static str, arch: Arch, flavour: &'static str, coverage: Coverage) -> KernelSpec {
    KernelSpec { package, arch, flavour, coverage }
}

/// The matrix: the oldest supported line (6.1, bookworm) and the newest packaged for
/// bookworm (6.12), generic x86_64 with the whole suite, then PREEMPT_RT, cloud and arm64
/// with the smoke subset.
pub(crate) const KERNELS: [KernelSpec; 7] = [
    kernel("linux-image-6.1.0-50-amd64", Arch::X86_64, "generic", Coverage::Full),
    kernel("linux-image-6.12.111+deb12-amd64", Arch::X86_64, "generic", Coverage::Full),
    kernel("linux-image-6.1.0-50-rt-amd64", Arch::X86_64, "rt", Coverage::Smoke),
    kernel("linux-image-6.12.111+deb12-rt-amd64", Arch::X86_64, "rt", Coverage::Smoke),
    kernel("linux-image-6.12.111+deb12-cloud-amd64", Arch::X86_64, "cloud", Coverage::Smoke),
    kernel("linux-image-6.1.0-50-arm64", Arch::Arm64, "generic", Coverage::Smoke),
    kernel("linux-image-6.12.111+deb12-arm64", Arch::Arm64, "generic", Coverage::Smoke),
];

const KERNELS_DIR: &str = "target/vm/kernels";

/// An unpacked kernel package.
pub(crate) struct Kernel {
    pub(crate) spec: &'static KernelSpec,
    pub(crate) vmlinuz: PathBuf,
}

/// The kernels of `arches` (all when empty) whose package name contains one of `filters`
/// (all when empty).
pub(crate) fn select(filters: &[String], arches: &[Arch]) -> anyhow::Result<Vec<&'static KernelSpec>> {
    let selected: Vec<&'static KernelSpec> = KERNELS
        .iter()
        .filter(|k| arches.is_empty() || arches.contains(&k.arch))
        .filter(|k| filters.is_empty() || filters.iter().any(|f| k.package.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        let known: Vec<&str> = KERNELS.iter().map(|k| k.package).collect();
        bail!("no kernel package matches {filters:?} for {arches:?}; known: {known:?}");
    }
    Ok(selected)
}

/// `selected`, fetched and unpacked if they are not yet.
pub(crate) fn ensure(selected: Vec<&'static KernelSpec>) -> anyhow::Result<Vec<Kernel>> {
    std::fs::create_dir_all(KERNELS_DIR).with_context(|| format!("creating {KERNELS_DIR}"))?;
    selected.into_iter().map(ensure_one).collect()
}

fn ensure_one(spec: &'static KernelSpec) -> anyhow::Result<Kernel> {
    let root = Path::new(KERNELS_DIR).join(spec.package);
    if let Some(vmlinuz) = find_vmlinuz(&root) {
        return Ok(Kernel { spec, vmlinuz });
    }
    eprintln!("vm-test: fetching {}", spec.package);
    let vmlinuz = fetch_package(spec.package, spec.arch, &root, find_vmlinuz)?
        .with_context(|| format!("{} has no boot/vmlinuz-*", spec.package))?;
    Ok(Kernel { spec, vmlinuz })
}

/// Downloads `package` for `arch` and unpacks it into `root` (through a temporary
/// directory, so that an interrupted unpack never looks complete); returns what `find`
/// finds in it.
pub(crate) fn fetch_package<T>(
    package: &str,
    arch: Arch,
    root: &Path,
    find: impl Fn(&Path) -> Option<T>,
) -> anyhow::Result<Option<T>> {
    let dir = root.parent().context("package directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let qualified = format!("{package}:{}", arch.facts().deb_arch);
    run_checked(Command::new("apt-get").args(["download", "-q", &qualified]).current_dir(dir))?;
    let deb = find_deb(dir, package)?;
    let partial = dir.join(format!("{package}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    run_checked(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, root).with_context(|| format!("renaming {}", partial.display()))?;
    std::fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;
    Ok(find(root))
}

/// `<root>/boot/vmlinuz-<release>`, if unpacked.
fn find_vmlinuz(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root.join("boot"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-")))
}

/// The `.deb` that `apt-get download` left: `<package>_<version>_<arch>.deb`, where `+`
/// in the package name may be escaped as `%2b`.
fn find_deb(dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let prefixes = [format!("{package}_"), format!("{}_", package.replace('+', "%2b"))];
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".deb") && prefixes.iter().any(|prefix| name.starts_with(prefix)) {
            return Ok(path);
        }
    }
    bail!("apt-get download {package} left no .deb in {}", dir.display())
}
