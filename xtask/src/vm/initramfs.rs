//! The guests' initramfs: a static busybox, the static binaries laid out as the test
//! harness expects them, and an `/init` that prepares the system and runs the suite.

use std::{
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::{
    arch::{Arch, GuestStderr, STDERR_MARKER},
    kernels::fetch_package,
    static_build::StaticBinaries,
    suite::{self, SuiteOptions},
};

/// Debian's `busybox-static` on this machine; for another architecture, the same
/// package of that architecture, unpacked under `target/vm/packages`.
const BUSYBOX: &str = "/bin/busybox";

/// Host programs the tests call where busybox's applet lacks what they use (util-linux
/// `setpriv --reuid`, `unshare --propagation`), copied with their shared libraries into
/// guests of the host's architecture (ahead of busybox on PATH). Elsewhere the tests
/// that need them skip.
const HOST_TOOLS: [&str; 2] = ["/usr/bin/setpriv", "/usr/bin/unshare"];

/// The harness finds `modelwatch` and its helpers in the parent of the test executable's
/// directory (`workspace_binary`), as in cargo's `target/<profile>/deps/`.
const GUEST_DIR: &str = "/mw";

/// Prepares the system as a distribution's init would, for what the sensor and the tests
/// use, then runs the suite and powers off. `/dev/console` does not exist until devtmpfs
/// is mounted, so the kernel started us without stdio: reopen it first.
const INIT_PROLOGUE: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin HOME=/root
# Tests that measure the host itself (the capability table) skip in guests.
export MODELWATCH_TEST_VM_GUEST=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
# Loopback, IPv4 and IPv6 (both built into Debian's kernels): the listener tests bind
# 127.0.0.1 and [::].
ip link set lo up
hostname mw-guest
# On the kernel command line: `mw.backend=tracepoint` runs the same suite on the
# fallback, `mw.suite=smoke` runs the smoke subset.
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        mw.backend=*) export MODELWATCH_BACKEND="${arg#mw.backend=}" ;;
        mw.suite=*) MW_SUITE="${arg#mw.suite=}" ;;
    esac
done
echo "@@mw kernel $(uname -r) $(uname -m)"
echo "@@mw backend ${MODELWATCH_BACKEND:-auto}"
"#;

/// Builds `target/vm/initramfs-<arch>.cpio.gz`, the same for every kernel of that
/// architecture (nothing in it depends on the kernel: no modules are needed); the full
/// suite and the smoke subset are both in its `/init`.
pub(crate) fn build(arch: Arch, binaries: &StaticBinaries, options: SuiteOptions) -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(format!("target/vm/initramfs-{}", arch.name()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["bin", "dev", "proc", "sys", "tmp", "run", "root", "mw/deps"] {
        std::fs::create_dir_all(root.join(dir))
            .with_context(|| format!("creating {dir} in the initramfs"))?;
    }
    copy_executable(&busybox(arch)?, &root.join("bin/busybox"))?;
    if Arch::host() == Some(arch) {
        for tool in HOST_TOOLS {
            copy_with_libraries(&root, Path::new(tool))?;
        }
    }
    copy_executable(&binaries.modelwatch, &root.join("mw/modelwatch"))?;
    for (name, path) in &binaries.helpers {
        copy_executable(path, &root.join("mw").join(name))?;
    }
    let mut tests = Vec::new();
    for test in &binaries.tests {
        copy_executable(&test.path, &root.join("mw/deps").join(&test.name))?;
        tests.push((test.name.clone(), format!("{GUEST_DIR}/deps/{}", test.name)));
    }
    let (stderr_to, replay) = match arch.facts().guest_stderr {
        GuestStderr::SecondSerial(device) => (device, String::new()),
        GuestStderr::Replayed(file) => {
            (file, format!("[ -f {file} ] && sed 's/^/{STDERR_MARKER}/' {file}\n"))
        }
    };
    let script =
        suite::guest_script(&suite::plan(&tests, false), &suite::plan(&tests, true), stderr_to, options);
    let init = format!("{INIT_PROLOGUE}{script}{replay}poweroff -f\n");
    write_executable(&root.join("init"), init.as_bytes())?;
    let archive = PathBuf::from(format!("target/vm/initramfs-{}.cpio.gz", arch.name()));
    pack(&root, &archive)?;
    Ok(archive)
}

/// A static busybox for `arch`: the host's own, or Debian's package of that architecture.
fn busybox(arch: Arch) -> anyhow::Result<PathBuf> {
    if Arch::host() == Some(arch) {
        return Ok(PathBuf::from(BUSYBOX));
    }
    let root = PathBuf::from(format!("target/vm/packages/busybox-static-{}", arch.name()));
    let find = |root: &Path| Some(root.join("bin/busybox")).filter(|p| p.exists());
    if let Some(found) = find(&root) {
        return Ok(found);
    }
    eprintln!("vm-test: fetching busybox-static for {}", arch.name());
    fetch_package("busybox-static", arch, &root, find)?.context("busybox-static has no bin/busybox")
}

fn copy_executable(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Copies a dynamically linked host program and what `ldd` says it loads to the same
/// paths under `root`. A missing program is left out: the tests that need it skip.
fn copy_with_libraries(root: &Path, tool: &Path) -> anyhow::Result<()> {
    if !tool.exists() {
        eprintln!("vm-test: {} is not installed; the tests that use it skip in the guests", tool.display());
        return Ok(());
    }
    let ldd = Command::new("ldd").arg(tool).output().context("running ldd")?;
    // Lines are `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
    // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no path.
    let text = String::from_utf8_lossy(&ldd.stdout);
    let libraries =
        text.lines().filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')));
    for file in std::iter::once(tool).chain(libraries.map(Path::new)) {
        let to = root.join(file.strip_prefix("/").unwrap_or(file));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        // Follows symlinks (`libcap-ng.so.0 -> libcap-ng.so.0.0.0`): the name ld.so asks for.
        copy_executable(file, &to)?;
    }
    Ok(())
}

fn write_executable(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

/// `cpio -o -H newc | gzip`, the format the kernel unpacks into its root file system.
fn pack(root: &Path, archive: &Path) -> anyhow::Result<()> {
    let mut names = Vec::new();
    list(root, Path::new("."), &mut names)?;
    let out = std::fs::File::create(archive).with_context(|| format!("creating {}", archive.display()))?;
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet", "-R", "+0:+0"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cpio (apt-get install cpio)")?;
    let cpio_out = cpio.stdout.take().context("cpio stdout")?;
    // Fastest level: the archive is rebuilt every run and read once.
    let mut gzip =
        Command::new("gzip").arg("-1").stdin(cpio_out).stdout(out).spawn().context("starting gzip")?;
    let mut stdin = cpio.stdin.take().context("cpio stdin")?;
    stdin.write_all(names.join("\n").as_bytes()).context("listing files for cpio")?;
    drop(stdin);
    let (cpio_status, gzip_status) = (cpio.wait()?, gzip.wait()?);
    if !cpio_status.success() || !gzip_status.success() {
        bail!("packing {} failed: cpio {cpio_status}, gzip {gzip_status}", archive.display());
    }
    Ok(())
}

/// Every path under `root`, relative (`./mw/deps/detection`), parents before children.
fn list(root: &Path, relative: &Path, names: &mut Vec<String>) -> anyhow::Result<()> {
    names.push(relative.display().to_string());
    let path = root.join(relative);
    if path.is_dir() {
        let mut entries =
            std::fs::read_dir(&path)?.map(|e| e.map(|e| e.file_name())).collect::<Result<Vec<_>, _>>()?;
        entries.sort();
        for entry in entries {
            list(root, &relative.join(entry), names)?;
        }
    }
    Ok(())
}
