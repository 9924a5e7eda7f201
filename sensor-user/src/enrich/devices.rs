//! Accelerator device nodes (GPU, NPU): which character-device majors they use here.

/// Driver names in `/proc/devices` that belong to accelerators.
const ACCELERATOR_DRIVERS: [&str; 9] = [
    "drm",
    "nvidia",
    "nvidia-frontend",
    "nvidia-uvm",
    "nvidia-caps",
    "nvidia-nvlink",
    "kfd",
    "accel",
    "habanalabs",
];

/// Fixed majors from the kernel's `devices.txt`: NVIDIA (195), DRM (226), accel (261).
const WELL_KNOWN: [u32; 3] = [195, 226, 261];

/// Majors of accelerator character devices: the well-known ones plus those that
/// `/proc/devices` lists under an accelerator driver (NVIDIA UVM and AMD KFD are dynamic).
#[must_use]
pub fn accelerator_majors() -> Vec<u32> {
    let text = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut majors = parse_devices(&text);
    majors.extend(WELL_KNOWN);
    majors.sort_unstable();
    majors.dedup();
    majors
}

fn parse_devices(text: &str) -> Vec<u32> {
    text.lines()
        .take_while(|line| !line.starts_with("Block devices"))
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let major = parts.next()?.parse().ok()?;
            let driver = parts.next()?;
            ACCELERATOR_DRIVERS.contains(&driver).then_some(major)
        })
        .collect()
}

/// The kind of accelerator behind a major number, for the event.
#[must_use]
pub fn accelerator_kind(major: u32, path: &str) -> &'static str {
    if path.contains("nvidia") || major == 195 {
        "nvidia_gpu"
    } else if path.contains("/dri/") || major == 226 {
        "drm_gpu"
    } else if path.contains("kfd") {
        "amd_kfd"
    } else if path.contains("/accel/") || major == 261 {
        "npu"
    } else {
        "accelerator"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_devices_only() {
        let text = "Character devices:\n  1 mem\n195 nvidia-frontend\n226 drm\n240 nvidia-uvm\n\nBlock devices:\n  8 sd\n226 drm\n";
        assert_eq!(parse_devices(text), vec![195, 226, 240]);
    }
}
