//! How full a kernel ring buffer is. The kernel and the drain share two positions, each
//! on a page of its own at the start of the ring's mapping (consumer first, then
//! producer); a second, read-only mapping of those two pages lets status and metrics
//! read them at any time without touching the drain.

use std::{
    os::fd::{AsFd, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

/// One read-only page of a ring buffer's mapping.
struct Page(NonNull<libc::c_void>);

// SAFETY: a read-only shared mapping, read only through atomic loads.
unsafe impl Send for Page {}
// SAFETY: as above.
unsafe impl Sync for Page {}

impl Page {
    fn map(fd: &impl AsFd, index: usize) -> std::io::Result<Self> {
        let size = page_size();
        let offset = libc::off_t::try_from(index * size).map_err(std::io::Error::other)?;
        // SAFETY: a new read-only shared mapping of the ring's own descriptor; the
        // kernel allows read-only mappings of every page of a ring buffer.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_fd().as_raw_fd(),
                offset,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        NonNull::new(at).map(Self).ok_or_else(|| std::io::Error::other("mmap returned null"))
    }

    /// The position at the start of the page (an `unsigned long` the kernel updates with
    /// release semantics).
    fn position(&self) -> u64 {
        // SAFETY: the page is mapped, aligned, and at least 8 bytes long.
        unsafe { (*self.0.as_ptr().cast::<AtomicU64>()).load(Ordering::Acquire) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: our own mapping of one page.
        unsafe { libc::munmap(self.0.as_ptr(), page_size()) };
    }
}

fn page_size() -> usize {
    // SAFETY: no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// The fill gauge of one ring.
pub struct RingFill {
    pub name: &'static str,
    pub size: u64,
    consumer: Page,
    producer: Page,
    peak: AtomicU64,
}

impl std::fmt::Debug for RingFill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingFill")
            .field("name", &self.name)
            .field("used", &self.used())
            .finish_non_exhaustive()
    }
}

impl RingFill {
    /// Maps the position pages of `ring` (of `size` data bytes).
    ///
    /// # Errors
    /// The kernel refused the mapping.
    pub fn new(name: &'static str, ring: &impl AsFd, size: u64) -> std::io::Result<Self> {
        Ok(Self {
            name,
            size,
            consumer: Page::map(ring, 0)?,
            producer: Page::map(ring, 1)?,
            peak: AtomicU64::new(0),
        })
    }

    /// Bytes written by the kernel that the drain has not consumed yet.
    #[must_use]
    pub fn used(&self) -> u64 {
        // The consumer first: read the other way round, a record consumed in between
        // would make the difference negative.
        let consumer = self.consumer.position();
        self.producer.position().saturating_sub(consumer).min(self.size)
    }

    /// Records the current fill in the peak; the drain calls it when it wakes.
    pub fn sample(&self) {
        self.peak.fetch_max(self.used(), Ordering::Relaxed);
    }

    #[must_use]
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}
