//! Static builds (glibc, `+crt-static`) of the sensor, the actor and every end-to-end test
//! executable, for each guest architecture (cross-built for arm64 with Debian's
//! `gcc-aarch64-linux-gnu`): the guests run a bare busybox initramfs with no shared
//! libraries. The eBPF object is the same for both (aya-build compiles it for the BPF
//! target, told the architecture it runs on).

use std::{
    io::BufReader,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail, ensure};
use cargo_metadata::Message;

use super::arch::Arch;

/// Its own directory: the flags differ from a normal build, which would otherwise be
/// rebuilt from scratch each time one or the other runs, and the lead's builds in
/// `target/` are not blocked by ours.
pub(crate) const TARGET_DIR: &str = "target/vm-build";

/// One integration-test executable of `modelwatch-tests`.
pub(crate) struct TestExecutable {
    /// The test target's name (`detection`), the file name without cargo's hash.
    pub(crate) name: String,
    pub(crate) path: PathBuf,
}

pub(crate) struct StaticBinaries {
    pub(crate) modelwatch: PathBuf,
    /// The harness's helper programs ([`HELPERS`]), by name.
    pub(crate) helpers: Vec<(&'static str, PathBuf)>,
    pub(crate) tests: Vec<TestExecutable>,
}

/// Programs of `modelwatch-tests` the end-to-end tests run (`workspace_binary`).
const HELPERS: [&str; 2] = ["mw-actor", "mw-bench"];

/// Builds the sensor, the helpers and the test executables for `arch`: every test
/// executable, or only those named in `only` (the smoke suites of an architecture that
/// runs nothing else: a cross build is minutes on these machines). The target is named
/// even for the host's own: with `--target`, cargo applies target flags to the target's
/// units only, not to build scripts and proc-macros (which must stay dynamic).
pub(crate) fn build(arch: Arch, only: Option<&[&str]>) -> anyhow::Result<StaticBinaries> {
    eprintln!("vm-test: building static {} binaries in {TARGET_DIR}", arch.name());
    let bins = cargo_artifacts(arch, &["build", "-p", "modelwatch", "-p", "modelwatch-tests", "--bins"])?;
    let find_bin = |name: &str| {
        bins.iter()
            .find(|built| built.name == name)
            .map(|built| built.path.clone())
            .with_context(|| format!("cargo built no `{name}` binary"))
    };
    let modelwatch = find_bin("modelwatch")?;
    let helpers =
        HELPERS.iter().map(|name| Ok((*name, find_bin(name)?))).collect::<anyhow::Result<Vec<_>>>()?;
    // `--test '*'`: the integration tests only (not the library's or the binary's unit
    // tests). Cargo also reports the binaries they depend on, hence the filter.
    let mut test_args = vec!["test", "--no-run", "-p", "modelwatch-tests"];
    for name in only.unwrap_or(&["*"]) {
        test_args.extend(["--test", name]);
    }
    let tests = cargo_artifacts(arch, &test_args)?
        .into_iter()
        .filter(|built| built.is_test)
        .map(|built| TestExecutable { name: built.name, path: built.path })
        .collect::<Vec<_>>();
    ensure!(!tests.is_empty(), "cargo built no test executable for modelwatch-tests");
    let helper_paths = helpers.iter().map(|(_, path)| path);
    for path in std::iter::once(&modelwatch).chain(helper_paths).chain(tests.iter().map(|t| &t.path)) {
        ensure_static(path, arch)?;
    }
    Ok(StaticBinaries { modelwatch, helpers, tests })
}

/// An executable that cargo reported.
pub(crate) struct Built {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    /// Built with the test harness.
    is_test: bool,
}

/// Runs the workspace's unit tests (and model-analysis's integration tests: every test
/// but the end-to-end suite, which vm-test runs) built with the static flags, so that
/// they share the static build's compiled dependencies instead of a second release
/// build of them (minutes of CI's hour).
pub(crate) fn unit_tests(arch: Arch) -> anyhow::Result<()> {
    let mut command = cargo_command(
        arch,
        &["test", "--workspace", "--exclude", "sensor-ebpf", "--exclude", "modelwatch-tests"],
    );
    let status = command.args(["--", "--test-threads=1"]).status().context("starting cargo test")?;
    if !status.success() {
        bail!("the unit tests failed ({status})");
    }
    Ok(())
}

/// Runs cargo with the static flags and returns the executables it built.
pub(crate) fn cargo_artifacts(arch: Arch, args: &[&str]) -> anyhow::Result<Vec<Built>> {
    let facts = arch.facts();
    let mut command = cargo_command(arch, args);
    command.arg("--message-format=json-render-diagnostics").stdout(Stdio::piped());
    let mut child = command.spawn().context("starting cargo")?;
    let stdout = child.stdout.take().context("cargo stdout")?;
    let mut built = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        match message.context("reading cargo's JSON messages")? {
            Message::CompilerArtifact(artifact) => {
                if let Some(exe) = artifact.executable {
                    built.push(Built {
                        name: artifact.target.name.to_string(),
                        path: exe.into_std_path_buf(),
                        is_test: artifact.profile.test,
                    });
                }
            }
            Message::CompilerMessage(message) => {
                if let Some(rendered) = message.message.rendered {
                    eprint!("{rendered}");
                }
            }
            _ => {}
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo {} (static, {}) failed with {status}", args.join(" "), facts.rust_target);
    }
    Ok(built)
}

/// `cargo <args>` in release mode for `arch`'s target, with the static flags.
fn cargo_command(arch: Arch, args: &[&str]) -> Command {
    let facts = arch.facts();
    let mut command = Command::new("cargo");
    command
        .args(args)
        .args(["--release", "--target", facts.rust_target, "--target-dir", TARGET_DIR])
        // NB: target-scoped rather than RUSTFLAGS. aya-build's nested cargo for the BPF
        // target sets CARGO_ENCODED_RUSTFLAGS (which wins over both), and this variable
        // only matches the target's units anyway. RUSTFLAGS in the caller's environment
        // would win over it and silently drop crt-static, so it is removed.
        .env(format!("CARGO_TARGET_{}_RUSTFLAGS", facts.cargo_env), "-C target-feature=+crt-static")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if let Some(linker) = facts.linker.filter(|_| Arch::host() != Some(arch)) {
        // C code built for the target (mimalloc, sha2's assembly) finds the same
        // cross compiler through the `cc` crate's own default for the triple.
        command.env(format!("CARGO_TARGET_{}_LINKER", facts.cargo_env), linker);
    }
    command
}

/// Fails unless `path` is an ELF for `arch` without a program interpreter (PT_INTERP): a
/// dynamic binary would only fail later, inside the guest, as a confusing "not found".
pub(crate) fn ensure_static(path: &Path, arch: Arch) -> anyhow::Result<()> {
    const PT_INTERP: u32 = 3;
    let elf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |at: usize| elf.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    ensure!(elf.starts_with(b"\x7fELF\x02\x01"), "{} is not a 64-bit little-endian ELF", path.display());
    ensure!(
        u16_at(0x12) == Some(arch.facts().elf_machine),
        "{} is not an {} executable (e_machine {:?})",
        path.display(),
        arch.name(),
        u16_at(0x12)
    );
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        bail!("{} has a truncated ELF header", path.display());
    };
    let phoff = usize::try_from(phoff)?;
    for index in 0..usize::from(phnum) {
        let at = phoff + index * usize::from(phentsize);
        let p_type = elf.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        ensure!(
            p_type != Some(PT_INTERP),
            "{} is dynamically linked: was RUSTFLAGS overridden?",
            path.display()
        );
    }
    Ok(())
}
