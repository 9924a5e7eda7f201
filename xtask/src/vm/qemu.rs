//! Boots one kernel with the initramfs in QEMU and captures its serial console.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::{
    arch::{Arch, GuestStderr},
    console::{self, Ending},
};

/// What one boot runs.
pub(crate) struct Boot<'a> {
    pub(crate) arch: Arch,
    pub(crate) vmlinuz: &'a Path,
    pub(crate) initrd: &'a Path,
    pub(crate) backend: &'a str,
    /// The smoke subset instead of the whole suite.
    pub(crate) smoke: bool,
}

/// Boots and returns the console's lines and how QEMU ended. Where the guest has a
/// second serial port, the sensor's stderr goes to `stderr_log`.
pub(crate) fn boot(
    boot: &Boot<'_>,
    console_log: &Path,
    stderr_log: &Path,
    timeout: Duration,
) -> anyhow::Result<(Vec<String>, Ending)> {
    let facts = boot.arch.facts();
    let suite = if boot.smoke { "smoke" } else { "full" };
    let mut command = Command::new(facts.qemu);
    command
        // NB: software emulation: KVM is not available on these machines.
        .args(facts.qemu_machine)
        .args(["-m", "2048", "-smp", "2", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(boot.vmlinuz)
        .arg("-initrd")
        .arg(boot.initrd)
        // `panic=-1`: reboot at once on a panic, which `-no-reboot` turns into an exit.
        .arg("-append")
        .arg(format!("console={} panic=-1 quiet mw.backend={} mw.suite={suite}", facts.console, boot.backend))
        // The console on stdout (multiplexed with the monitor, as -nographic wants).
        .args(["-serial", "mon:stdio"]);
    if let GuestStderr::SecondSerial(_) = facts.guest_stderr {
        command.arg("-serial").arg(format!("file:{}", stderr_log.display()));
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} (cargo xtask setup installs it)", facts.qemu))?;
    console::capture(child, timeout, console_log)
}
