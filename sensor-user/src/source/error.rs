//! Why the probes did not load: each error names its cause and its fix.

use thiserror::Error;

use super::tracefs::TracefsError;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(
        "modelwatch needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE) to load its probes; fix: run it with sudo"
    )]
    NotRoot,
    #[error(
        "this kernel exposes no BTF at /sys/kernel/btf/vmlinux ({0}); fix: use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution since 2021)"
    )]
    NoBtf(#[source] std::io::Error),
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error(
        "the kernel refused the eBPF object: {0}; fix: check `dmesg` and that the kernel is 5.8 or newer with BPF ring buffers"
    )]
    Object(#[source] aya::EbpfError),
    #[error("the {watches} hook ({attach_point}) did not load: {reason}; fix: {fix}")]
    Hook { watches: &'static str, attach_point: String, reason: String, fix: &'static str },
    #[error("cannot configure map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("bad setting: {0}")]
    Setting(String),
}
