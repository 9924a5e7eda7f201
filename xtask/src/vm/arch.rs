//! The guest architectures: every fact that differs between them, in one table.

/// An architecture the suite runs on in QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub(crate) enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

/// What a guest of one architecture needs.
pub(crate) struct ArchFacts {
    /// Rust target of the static builds.
    pub(crate) rust_target: &'static str,
    /// Cargo's per-target variable prefix (`CARGO_TARGET_<this>_...`).
    pub(crate) cargo_env: &'static str,
    /// The linker for a cross build (`None`: the host's own).
    pub(crate) linker: Option<&'static str>,
    /// Debian's architecture name (packages are `<name>:<deb_arch>`).
    pub(crate) deb_arch: &'static str,
    /// `e_machine` of its ELF executables.
    pub(crate) elf_machine: u16,
    pub(crate) qemu: &'static str,
    /// The Debian package with `qemu`.
    pub(crate) qemu_package: &'static str,
    /// Debian packages a cross build for it needs (the linker, the static C library).
    pub(crate) cross_packages: &'static [&'static str],
    /// Machine and CPU (TCG: no KVM on these hosts).
    pub(crate) qemu_machine: &'static [&'static str],
    /// The serial console's device name in the guest.
    pub(crate) console: &'static str,
    /// Where the sensor's stderr goes in the guest: a second serial port (a file on the
    /// host), or, where the machine has only one, a file the guest prints at the end
    /// with [`STDERR_MARKER`] before each line.
    pub(crate) guest_stderr: GuestStderr,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestStderr {
    SecondSerial(&'static str),
    Replayed(&'static str),
}

/// Starts the lines of a replayed stderr on the guest's console.
pub(crate) const STDERR_MARKER: &str = "@@mw stderr ";

impl Arch {
    pub(crate) fn facts(self) -> &'static ArchFacts {
        match self {
            Self::X86_64 => &X86_64,
            Self::Arm64 => &ARM64,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    /// The architecture of this machine (whose binaries also run on its kernel).
    pub(crate) fn host() -> Option<Self> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Self::X86_64),
            "aarch64" => Some(Self::Arm64),
            _ => None,
        }
    }
}

static X86_64: ArchFacts = ArchFacts {
    rust_target: "x86_64-unknown-linux-gnu",
    cargo_env: "X86_64_UNKNOWN_LINUX_GNU",
    linker: Some("x86_64-linux-gnu-gcc"),
    deb_arch: "amd64",
    elf_machine: 62,
    qemu: "qemu-system-x86_64",
    qemu_package: "qemu-system-x86",
    cross_packages: &["gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross"],
    // `max`: every feature TCG can emulate (`-cpu host` aborts on an MSR without KVM).
    qemu_machine: &["-accel", "tcg", "-cpu", "max"],
    console: "ttyS0",
    guest_stderr: GuestStderr::SecondSerial("/dev/ttyS1"),
};

static ARM64: ArchFacts = ArchFacts {
    rust_target: "aarch64-unknown-linux-gnu",
    cargo_env: "AARCH64_UNKNOWN_LINUX_GNU",
    linker: Some("aarch64-linux-gnu-gcc"),
    deb_arch: "arm64",
    elf_machine: 183,
    qemu: "qemu-system-aarch64",
    qemu_package: "qemu-system-arm",
    cross_packages: &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
    // `pauth-impdef`: QEMU's own pointer-authentication algorithm, several times faster
    // to emulate than the architected one (the kernel only needs it to be consistent).
    qemu_machine: &["-M", "virt", "-accel", "tcg", "-cpu", "max,pauth-impdef=on"],
    console: "ttyAMA0",
    // `virt` has one PL011, and Debian's 6.1 builds virtio-console as a module.
    guest_stderr: GuestStderr::Replayed("/run/mw-stderr.log"),
};
