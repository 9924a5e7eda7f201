//! Makes a fresh Debian/Ubuntu machine ready, idempotently: Debian packages, bpf-linker
//! built against LLVM 22, tracefs and bpffs mounted. Each step checks before it acts.

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

/// Debian packages the build and the tests need (LLVM 22 for bpf-linker).
const PACKAGES: [&str; 4] = ["llvm-22-dev", "libpolly-22-dev", "libzstd-dev", "pkg-config"];

/// Debian packages `cargo xtask vm-test` needs on top: a static busybox for the guests'
/// initramfs and cpio to pack it, then per guest architecture (`vm_packages`). Not part
/// of `run`: only the VM tests need them.
const VM_PACKAGES: [&str; 2] = ["busybox-static", "cpio"];

/// Debian packages the deployment tests and `cargo xtask image` need: podman builds and
/// runs the image (runc: crun refuses hosts with a hybrid cgroup layout, as CI machines
/// have); systemd for `systemd-analyze verify/security` on the unit; util-linux for
/// `setpriv` and libcap2-bin for `capsh` (the capability tests).
const DEPLOY_PACKAGES: [&str; 5] = ["podman", "runc", "systemd", "util-linux", "libcap2-bin"];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub(crate) fn run() -> anyhow::Result<()> {
    install_packages(&PACKAGES)?;
    install_bpf_linker()?;
    mount_if_missing("tracefs", "/sys/kernel/tracing", |p| p.join("events").is_dir())?;
    mount_if_missing("bpf", "/sys/fs/bpf", |_| is_mounted("/sys/fs/bpf"))?;
    Ok(())
}

/// Makes sure a Python 3 with `venv` exists, for the tests' environment (`pyenv`).
pub(crate) fn python() -> anyhow::Result<()> {
    let has_venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|out| out.status.success());
    if has_venv { Ok(()) } else { install_packages(&["python3", "python3-venv", "python3-pip"]) }
}

/// Installs what the image and the deployment tests need, if missing. kubectl (for
/// `kubectl kustomize`) comes from Debian's `kubernetes-client` only when no kubectl
/// is installed at all: machines that ship a newer one keep it.
pub(crate) fn container_packages() -> anyhow::Result<()> {
    install_packages(&DEPLOY_PACKAGES)?;
    let has_kubectl = Command::new("kubectl").args(["version", "--client"]).output().is_ok();
    if has_kubectl { Ok(()) } else { install_packages(&["kubernetes-client"]) }
}

/// Installs what the VM tests need for guests of `arches`, if missing: the emulator of
/// each, and for an architecture other than this machine's, Debian's cross compiler and
/// C library (the static cross builds link with them) and that architecture in dpkg's
/// list (`apt-get download` of its kernels and busybox).
pub(crate) fn vm_packages(arches: &[crate::vm::Arch]) -> anyhow::Result<()> {
    install_packages(&VM_PACKAGES)?;
    for arch in arches {
        let facts = arch.facts();
        install_packages(&[facts.qemu_package])?;
        if crate::vm::Arch::host() != Some(*arch) {
            add_foreign_architecture(facts.deb_arch)?;
            install_packages(facts.cross_packages)?;
        }
    }
    Ok(())
}

/// `dpkg --add-architecture` and an index update, once.
fn add_foreign_architecture(deb_arch: &str) -> anyhow::Result<()> {
    let out = Command::new("dpkg").arg("--print-foreign-architectures").output().context("running dpkg")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|a| a.trim() == deb_arch) {
        return Ok(());
    }
    eprintln!("setup: adding the {deb_arch} architecture to dpkg (for its kernel packages)");
    run_checked(Command::new("dpkg").args(["--add-architecture", deb_arch]))?;
    run_checked(Command::new("apt-get").arg("update").arg("-q"))
}

/// Installs what `cargo xtask bench` uses, if missing: Linux audit (compared against),
/// bpftool (per-program run time and translated programs), and bpftrace for the
/// raw_syscalls experiment.
pub(crate) fn bench_packages(bpftrace: bool) -> anyhow::Result<()> {
    install_packages(&["auditd", "bpftool"])?;
    if bpftrace { install_packages(&["bpftrace"]) } else { Ok(()) }
}

fn install_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !package_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    run_checked(Command::new("apt-get").arg("update").arg("-q"))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn install_bpf_linker() -> anyhow::Result<()> {
    let installed = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION));
    if installed {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    // llvm-config from LLVM 22 must come first on PATH, or the link looks for -lLLVM.
    let path = format!("/usr/lib/llvm-22/bin:{}", std::env::var("PATH").unwrap_or_default());
    run_checked(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked"])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("PATH", path),
    )
}

fn mount_if_missing(fstype: &str, target: &str, present: impl Fn(&Path) -> bool) -> anyhow::Result<()> {
    if present(Path::new(target)) {
        return Ok(());
    }
    eprintln!("setup: mounting {fstype} on {target}");
    run_checked(Command::new("mount").args(["-t", fstype, fstype, target]))
}

fn is_mounted(target: &str) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(target)))
}

pub(crate) fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let status = command.status().with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
