//! What the kernel side is told at load time: filter maps, sizes, the backend.

use super::hooks::BackendChoice;

/// Filter settings written into the kernel maps.
#[derive(Clone, Debug)]
pub struct FilterSettings {
    /// Bytes of each of the two ring buffers (files; processes and listeners).
    pub ringbuf_bytes: u32,
    pub size_threshold: u64,
    pub extensions: Vec<String>,
    pub ports: Vec<u16>,
    pub listen_marked_any_port: bool,
    pub backend: BackendChoice,
    /// Repeated opens of one file by one process within this window are folded.
    pub dedup_window_ns: u64,
    /// Accelerator character devices: `(major, first minor, last minor)`.
    pub accelerators: Vec<(u32, u32, u32)>,
    /// Executable names the kernel marks as runtimes at exec (`comm`, 15 bytes kept).
    pub runtime_executables: Vec<String>,
}
