//! A file's identity: one version of one inode.

use model_analysis::{Expected, FileStamp};
use sensor_common::FileIdentity;

/// What the kernel saw: device, inode, size and both times. The change time is there
/// because a file's owner can reset mtime (`touch -d`) after rewriting it, never ctime:
/// a cache keyed on this never reuses the verdict of the old content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

const NS: i64 = 1_000_000_000;

impl FileKey {
    /// From the kernel's identity: the kernel encodes dev_t as major << 20 | minor.
    ///
    /// NB: since 6.13 (multigrain timestamps) the kernel keeps a flag in the top bit of
    /// `i_ctime_nsec` (`I_CTIME_QUERIED`); its accessors mask it, and so must we: a
    /// nanosecond count is below 2^30.
    #[must_use]
    pub fn from_kernel(identity: &FileIdentity) -> Self {
        const NSEC_MASK: u32 = (1 << 30) - 1;
        let ns = |sec: i64, nsec: u32| sec.saturating_mul(NS).saturating_add(i64::from(nsec & NSEC_MASK));
        Self {
            dev: libc::makedev(identity.dev >> 20, identity.dev & 0xf_ffff),
            ino: identity.ino,
            size: identity.size,
            mtime_ns: ns(identity.mtime_sec, identity.mtime_nsec),
            ctime_ns: ns(identity.ctime_sec, identity.ctime_nsec),
        }
    }

    /// From an `fstat` of the open file.
    #[must_use]
    pub fn from_stamp(stamp: &FileStamp) -> Self {
        Self {
            dev: stamp.dev,
            ino: stamp.ino,
            size: stamp.size,
            mtime_ns: stamp.mtime_ns,
            ctime_ns: stamp.ctime_ns,
        }
    }

    /// What an open must find (see `model_analysis::open`).
    #[must_use]
    pub fn expected(&self) -> Expected {
        Expected { dev: self.dev, ino: self.ino }
    }

    /// Whether `stamp` is this very version of the file (same inode, size and times).
    #[must_use]
    pub fn same_version(&self, stamp: &FileStamp) -> bool {
        self.ino == stamp.ino
            && self.size == stamp.size
            && self.mtime_ns == stamp.mtime_ns
            && self.ctime_ns == stamp.ctime_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_encoding_is_converted() {
        let identity = FileIdentity { dev: (8 << 20) | 1, ..FileIdentity::default() };
        assert_eq!(FileKey::from_kernel(&identity).dev, libc::makedev(8, 1));
    }

    #[test]
    fn the_multigrain_queried_flag_is_not_time() {
        let identity = FileIdentity { ctime_sec: 10, ctime_nsec: (1 << 31) | 5, ..FileIdentity::default() };
        assert_eq!(FileKey::from_kernel(&identity).ctime_ns, 10_000_000_005);
    }

    #[test]
    fn a_rewrite_with_mtime_restored_is_another_version() {
        let old =
            FileIdentity { ino: 7, size: 10, mtime_sec: 100, ctime_sec: 100, ..FileIdentity::default() };
        let rewritten = FileIdentity { ctime_sec: 200, ..old };
        assert_ne!(FileKey::from_kernel(&old), FileKey::from_kernel(&rewritten));
    }
}
