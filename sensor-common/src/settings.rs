//! Run-time filter settings the aggregator writes into maps.

/// The single value of the `SETTINGS` array map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Regular files at least this large are candidates.
    pub size_threshold: u64,
    /// `tgid` of the sensor itself: its own reads of model files are not reported.
    pub self_tgid: u32,
    /// Non-zero: forward listeners of marked processes on any port.
    pub listen_marked_any_port: u32,
    /// Bit n set: some watched extension is n bytes long (the kernel tries only these).
    pub extension_lengths: u32,
    pub _pad: u32,
    /// Repeated opens (or maps) of one file by one process within this many
    /// nanoseconds of the last record are folded into the next record's `repeats`.
    /// 0 turns folding off.
    pub dedup_window_ns: u64,
    /// Per extension length n: bit `b & 63` is set when some watched extension of
    /// that length ends in byte `b` (lower case). A name whose extension fails this test
    /// costs no map lookup, and nearly every name fails it.
    pub extension_last_bytes: [u64; EXTENSION_CAP],
}
const _: () = assert!(core::mem::size_of::<Settings>() == 32 + 8 * EXTENSION_CAP);

impl Settings {
    pub const DEFAULT_SIZE_THRESHOLD: u64 = 64 << 20;
    pub const DEFAULT_DEDUP_WINDOW_NS: u64 = 1_000_000_000;

    /// The defaults, usable in a `static`.
    pub const DEFAULT: Self = Self {
        size_threshold: Self::DEFAULT_SIZE_THRESHOLD,
        self_tgid: 0,
        listen_marked_any_port: 1,
        extension_lengths: 0,
        _pad: 0,
        dedup_window_ns: Self::DEFAULT_DEDUP_WINDOW_NS,
        extension_last_bytes: [0; EXTENSION_CAP],
    };

    /// Sets `extension_lengths` and `extension_last_bytes` for watching `key`.
    pub fn watch_extension(&mut self, key: &ExtensionKey) {
        let len = key.iter().position(|b| *b == 0).unwrap_or(EXTENSION_CAP);
        if (1..EXTENSION_CAP).contains(&len) {
            self.extension_lengths |= 1 << len;
            self.extension_last_bytes[len] |= 1 << (key[len - 1] & 63);
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Key of the `EXTENSIONS` hash map: the lower-case extension without its dot,
/// zero-padded. Longer extensions cannot be watched.
pub type ExtensionKey = [u8; EXTENSION_CAP];
pub const EXTENSION_CAP: usize = 16;

/// Builds an [`ExtensionKey`] from `"gguf"` or `".gguf"` (lower case, as the kernel
/// compares names); `None` when empty or too long.
#[must_use]
pub fn extension_key(ext: &str) -> Option<ExtensionKey> {
    let ext = ext.strip_prefix('.').unwrap_or(ext).as_bytes();
    if ext.is_empty() || ext.len() >= EXTENSION_CAP || ext.contains(&b'.') || ext.contains(&0) {
        return None;
    }
    let mut key = [0u8; EXTENSION_CAP];
    for (dst, src) in key.iter_mut().zip(ext) {
        *dst = src.to_ascii_lowercase();
    }
    Some(key)
}

/// Value flags of the `MARKED` map (tgid -> flags).
pub mod mark {
    /// Classified as an inference runtime by exe/argv.
    pub const RUNTIME: u32 = 1;
    /// Inherited from a marked parent at fork.
    pub const INHERITED: u32 = 2;
    /// Mapped or opened a model file: behaves like a runtime whatever its name.
    pub const MODEL_LOADER: u32 = 4;
    /// Set by the kernel the moment it forwards a candidate model record of this
    /// process, before userspace has looked at the file: a listener opened right after
    /// the load is then forwarded too. Userspace confirms it (`MODEL_LOADER`) or clears it.
    pub const PROVISIONAL: u32 = 8;
}

/// Value of the `ACCEL_MAJORS` map (key: a character-device major): the minors of that
/// major that are accelerators (DRM render nodes start at 128; NVIDIA uses them all).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceleratorMinors {
    pub first: u32,
    pub last: u32,
}
const _: () = assert!(core::mem::size_of::<AcceleratorMinors>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_extensions_set_their_length_and_last_byte() {
        let mut settings = Settings::DEFAULT;
        for ext in ["gguf", ".PT", "safetensors"] {
            settings.watch_extension(&extension_key(ext).expect("valid"));
        }
        assert_eq!(settings.extension_lengths, (1 << 4) | (1 << 2) | (1 << 11));
        assert_eq!(settings.extension_last_bytes[4], 1 << (b'f' & 63));
        assert_eq!(settings.extension_last_bytes[2], 1 << (b't' & 63));
        assert_eq!(settings.extension_last_bytes[11], 1 << (b's' & 63));
        assert_eq!(settings.extension_last_bytes[3], 0);
        assert!(extension_key("a.b").is_none() && extension_key("").is_none());
        assert!(extension_key("sixteen-letters!").is_none());
    }
}
