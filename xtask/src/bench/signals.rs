//! Ctrl-C, SIGTERM and SIGHUP set a flag instead of killing the bench, so that the guards
//! unwind: loaded programs, audit rules and started daemons are all removed before exit.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub(crate) fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Fails once a stop signal has arrived.
pub(crate) fn check() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted: everything the bench started has been stopped");
    }
    Ok(())
}

/// Sleeps for `duration`, waking early (with an error) on a stop signal.
pub(crate) fn sleep(duration: std::time::Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + duration;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        check()?;
        std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
    }
    check()
}
