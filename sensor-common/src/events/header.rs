/// Bumped whenever a record layout changes; the loader refuses a mismatched object.
pub const ABI_VERSION: u16 = 4;

/// Stable record kinds. Families leave gaps; a retired number is never reused.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    ProcessExec = 100,
    ProcessExit = 101,
    FileOpen = 200,
    FileMmap = 201,
    AcceleratorOpen = 202,
    Listen = 300,
}

impl EventKind {
    pub const ALL: [Self; 6] = [
        Self::ProcessExec,
        Self::ProcessExit,
        Self::FileOpen,
        Self::FileMmap,
        Self::AcceleratorOpen,
        Self::Listen,
    ];

    #[must_use]
    pub fn from_raw(raw: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u16 == raw)
    }
}

/// The first bytes of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`].
    pub kind: u16,
    pub abi_version: u16,
    /// Bytes in the record as sent, the header and any variable tail included.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns`: monotonic, counts suspend.
    pub ktime_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<EventHeader>() == 56);
