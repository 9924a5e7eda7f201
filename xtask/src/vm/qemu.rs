//! Boots one kernel with the initramfs in QEMU and captures its serial consoles.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::console::{self, Ending};

/// Boots `vmlinuz` and returns the first serial console's lines and how QEMU ended. The
/// second serial port (the sensor's stderr) is written to `stderr_log`.
pub(crate) fn boot(
    vmlinuz: &Path,
    initrd: &Path,
    backend: &str,
    console_log: &Path,
    stderr_log: &Path,
    timeout: Duration,
) -> anyhow::Result<(Vec<String>, Ending)> {
    let child = Command::new("qemu-system-x86_64")
        // NB: software emulation. KVM is not available on these machines (`-cpu host`
        // aborts on an MSR); `max` gives the guest every feature TCG can emulate.
        .args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2"])
        .args(["-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        // `panic=-1`: reboot at once on a panic, which `-no-reboot` turns into an exit.
        .arg("-append")
        .arg(format!("console=ttyS0 panic=-1 quiet mw.backend={backend}"))
        // ttyS0 on stdout (multiplexed with the monitor, as -nographic wants), ttyS1 to a file.
        .args(["-serial", "mon:stdio", "-serial"])
        .arg(format!("file:{}", stderr_log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    console::capture(child, timeout, console_log)
}
