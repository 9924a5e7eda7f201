//! Kernel timestamps (`CLOCK_BOOTTIME`) to wall-clock time.

use std::time::{Duration, SystemTime};

/// The wall-clock time of boot, measured once at start-up.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    boot: SystemTime,
}

impl BootClock {
    #[must_use]
    pub fn now() -> Self {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid timespec pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let since_boot =
            Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0));
        Self { boot: SystemTime::now() - since_boot }
    }

    #[must_use]
    pub fn wall(&self, ktime_ns: u64) -> SystemTime {
        self.boot + Duration::from_nanos(ktime_ns)
    }
}
