//! Builds the eBPF object (`sensor-ebpf`) for the BPF target with aya-build and leaves
//! it in OUT_DIR, where `source::loader` embeds it.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|package| package.name.as_str() == "sensor-ebpf")
        .ok_or_else(|| anyhow!("sensor-ebpf package not found"))?;
    let root = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    // The BPF target needs `-Z build-std=core`; the pinned toolchain is stable, and
    // aya-build passes that flag when RUSTC_BOOTSTRAP=1 (inherited by its nested cargo).
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let package = aya_build::Package { name: "sensor-ebpf", root_dir: root.as_str(), ..Default::default() };
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom("1.98.0"))
}
