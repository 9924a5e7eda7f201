//! Safe decoding of ring-buffer records (userspace only). Every length and offset comes
//! from the kernel and is checked against the bytes received before use.

use core::mem::size_of;

use crate::{
    ARGV_CAP, EventHeader, EventKind, ExecEvent, ExitEvent, FileEvent, ListenEvent, PATH_CAP,
    PathHeader, path_flags,
};

// SAFETY: all of these are `repr(C)` structs of integers and arrays of integers with
// explicit padding, so every bit pattern is valid and none holds a pointer.
unsafe impl aya::Pod for crate::settings::Settings {}
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
}

/// Decodes one ring-buffer record.
///
/// # Errors
/// A short or oversized record, an unknown kind or a different ABI version.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let header: EventHeader = read(bytes, 0)?;
    if header.abi_version != crate::ABI_VERSION {
        return Err(DecodeError::AbiMismatch {
            record: header.abi_version,
            expected: crate::ABI_VERSION,
        });
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
    let tail = bytes
        .get(at..at + len)
        .ok_or(DecodeError::Short { need: at + len, got: bytes.len() })?;
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
