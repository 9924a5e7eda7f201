//! Safe decoding of ring-buffer records (userspace only). Every length and offset comes
//! from the kernel and is checked against the bytes received before use.

use core::mem::size_of;

use crate::{
    ARGV_CAP, EventHeader, EventKind, ExecEvent, ExitEvent, FileEvent, ListenEvent, PATH_CAP, PathHeader,
    path_flags,
};

// SAFETY: all of these are `repr(C)` structs of integers and arrays of integers with
// explicit padding, so every bit pattern is valid and none holds a pointer.
unsafe impl aya::Pod for crate::settings::Settings {}
unsafe impl aya::Pod for crate::settings::AcceleratorMinors {}
unsafe impl aya::Pod for crate::offsets::KernelOffsets {}

/// A decoded record. Paths are kept as raw leaf-first components; see [`RawPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Exec { event: Box<ExecEvent>, exe: RawPath },
    Exit(ExitEvent),
    File { kind: EventKind, event: FileEvent, path: RawPath },
    Listen(ListenEvent),
}

impl Record {
    #[must_use]
    pub fn header(&self) -> &EventHeader {
        match self {
            Self::Exec { event, .. } => &event.header,
            Self::Exit(event) => &event.header,
            Self::File { event, .. } => &event.header,
            Self::Listen(event) => &event.header,
        }
    }
}

/// Why a record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Short { need: usize, got: usize },
    UnknownKind(u16),
    AbiMismatch { record: u16, expected: u16 },
    BadSize { declared: u32, got: usize },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short { need, got } => write!(f, "record too short: {got} bytes, need {need}"),
            Self::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            Self::AbiMismatch { record, expected } => {
                write!(f, "record ABI version {record}, this sensor speaks {expected}")
            }
            Self::BadSize { declared, got } => {
                write!(f, "record declares {declared} bytes but {got} arrived")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A path as the kernel sent it: NUL-terminated components, leaf first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawPath {
    pub bytes: Vec<u8>,
    pub flags: u32,
}

impl RawPath {
    /// Components from the root down to the leaf.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        let mut parts: Vec<&[u8]> = self.bytes.split(|b| *b == 0).filter(|c| !c.is_empty()).collect();
        // The kernel names the root dentry "/"; it is not a component.
        parts.retain(|c| *c != b"/");
        parts.into_iter().rev()
    }

    /// The absolute path as bytes (`/` joined). A truncated walk is prefixed with `…/`
    /// so that it is never mistaken for a complete path.
    #[must_use]
    pub fn to_path_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 1);
        if self.flags & path_flags::TRUNCATED != 0 {
            out.extend_from_slice("…".as_bytes());
        }
        for part in self.components() {
            out.push(b'/');
            out.extend_from_slice(part);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out
    }

    #[must_use]
    pub fn is_truncated(&self) -> bool {
        self.flags & path_flags::TRUNCATED != 0
    }

    #[must_use]
    pub fn is_deleted(&self) -> bool {
        self.flags & path_flags::DELETED != 0
    }
}

/// Decodes one ring-buffer record.
///
/// # Errors
/// A short or oversized record, an unknown kind or a different ABI version.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let header: EventHeader = read(bytes, 0)?;
    if header.abi_version != crate::ABI_VERSION {
        return Err(DecodeError::AbiMismatch { record: header.abi_version, expected: crate::ABI_VERSION });
    }
    let declared = header.size as usize;
    if declared > bytes.len() || declared < size_of::<EventHeader>() {
        return Err(DecodeError::BadSize { declared: header.size, got: bytes.len() });
    }
    let bytes = &bytes[..declared];
    let kind = EventKind::from_raw(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    Ok(match kind {
        EventKind::ProcessExec => {
            let event: ExecEvent = read(bytes, 0)?;
            let exe = path_tail(bytes, size_of::<ExecEvent>(), event.path)?;
            let mut event = Box::new(event);
            event.argv_len = event.argv_len.min(ARGV_CAP as u32);
            Record::Exec { event, exe }
        }
        EventKind::ProcessExit => Record::Exit(read(bytes, 0)?),
        EventKind::FileOpen | EventKind::FileMmap | EventKind::AcceleratorOpen => {
            let event: FileEvent = read(bytes, 0)?;
            let path = path_tail(bytes, size_of::<FileEvent>(), event.path)?;
            Record::File { kind, event, path }
        }
        EventKind::Listen => Record::Listen(read(bytes, 0)?),
    })
}

fn path_tail(bytes: &[u8], at: usize, header: PathHeader) -> Result<RawPath, DecodeError> {
    let len = usize::from(header.len).min(PATH_CAP);
    let tail = bytes.get(at..at + len).ok_or(DecodeError::Short { need: at + len, got: bytes.len() })?;
    Ok(RawPath { bytes: tail.to_vec(), flags: header.flags })
}

fn read<T: aya::Pod>(bytes: &[u8], at: usize) -> Result<T, DecodeError> {
    let need = at + size_of::<T>();
    let src = bytes.get(at..need).ok_or(DecodeError::Short { need, got: bytes.len() })?;
    // SAFETY: `src` holds exactly size_of::<T>() bytes and T is Pod (any bit pattern is
    // valid); read_unaligned makes no alignment assumption.
    Ok(unsafe { core::ptr::read_unaligned(src.as_ptr().cast::<T>()) })
}

macro_rules! pod {
    ($($t:ty),*) => { $(
        // SAFETY: see above: repr(C), integers only, explicit padding.
        unsafe impl aya::Pod for $t {}
    )* };
}
pod!(EventHeader, ExecEvent, ExitEvent, FileEvent, ListenEvent, PathHeader);
pod!(crate::FileIdentity, crate::MmapFields);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileIdentity, MmapFields, reason};

    fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
        // SAFETY: T is Pod: plain bytes with explicit padding.
        unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn file_record(path: &[u8]) -> Vec<u8> {
        let event = FileEvent {
            header: EventHeader {
                kind: EventKind::FileOpen as u16,
                abi_version: crate::ABI_VERSION,
                size: (size_of::<FileEvent>() + path.len()) as u32,
                tgid: 42,
                ..EventHeader::default()
            },
            file: FileIdentity { size: 3 << 30, ..FileIdentity::default() },
            mmap: MmapFields::default(),
            fd: 3,
            reason: reason::SIZE,
            open_flags: 0,
            repeats: 0,
            mnt_ns: 0,
            _pad: 0,
            path: PathHeader { len: path.len() as u16, depth: 3, flags: 0 },
        };
        let mut bytes = bytes_of(&event);
        bytes.extend_from_slice(path);
        bytes
    }

    #[test]
    fn layouts_are_what_the_kernel_writes() {
        assert_eq!(core::mem::offset_of!(EventHeader, ktime_ns), 8);
        assert_eq!(core::mem::offset_of!(EventHeader, comm), 40);
        assert_eq!(core::mem::offset_of!(FileEvent, path), 168);
        assert_eq!(core::mem::offset_of!(ExecEvent, argv), 72);
        assert_eq!(core::mem::offset_of!(ListenEvent, addr), 68);
    }

    #[test]
    fn a_file_record_decodes_with_its_path_reversed() {
        let bytes = file_record(b"sha256-ab\0blobs\0models\0/\0");
        let Ok(Record::File { kind, event, path }) = decode(&bytes) else { panic!("not a file record") };
        assert_eq!(kind, EventKind::FileOpen);
        assert_eq!(event.header.tgid, 42);
        assert_eq!(event.file.size, 3 << 30);
        assert_eq!(path.to_path_bytes(), b"/models/blobs/sha256-ab");
        assert!(!path.is_truncated());
    }

    #[test]
    fn a_truncated_walk_is_marked_in_the_path() {
        let path = RawPath { bytes: b"leaf\0dir\0".to_vec(), flags: path_flags::TRUNCATED };
        assert_eq!(String::from_utf8_lossy(&path.to_path_bytes()), "…/dir/leaf");
        assert_eq!(RawPath::default().to_path_bytes(), b"/");
    }

    #[test]
    fn bad_records_are_errors() {
        let good = file_record(b"a\0");
        assert!(matches!(decode(&good[..10]), Err(DecodeError::Short { .. })));
        // Declared size larger than what arrived.
        assert!(matches!(decode(&good[..good.len() - 1]), Err(DecodeError::BadSize { .. })));
        let mut unknown = good.clone();
        unknown[0] = 0xff;
        assert_eq!(decode(&unknown), Err(DecodeError::UnknownKind(0xff)));
        let mut abi = good.clone();
        abi[2] = 99;
        assert!(matches!(decode(&abi), Err(DecodeError::AbiMismatch { record: 99, .. })));
        // A path length beyond the record is refused, not read out of bounds.
        let mut long = good;
        let len_at = core::mem::offset_of!(FileEvent, path);
        long[len_at..len_at + 2].copy_from_slice(&4000u16.to_le_bytes());
        assert!(matches!(decode(&long), Err(DecodeError::Short { .. })));
    }

    #[test]
    fn extension_keys() {
        assert_eq!(&crate::settings::extension_key(".GGUF").expect("valid")[..5], b"gguf\0");
        assert!(crate::settings::extension_key("").is_none());
        assert!(crate::settings::extension_key("tar.gz").is_none());
        assert!(crate::settings::extension_key("sixteen-chars-xx").is_none());
    }
}
