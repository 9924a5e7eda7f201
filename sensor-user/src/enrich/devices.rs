//! Accelerator device nodes (GPU, NPU): which character devices are accelerators here,
//! from the kernel's own `/proc/devices` names (NVIDIA UVM and AMD KFD get dynamic
//! majors when their modules load, so the list is read again every 30 s), and what class
//! each one is.

use serde::{Deserialize, Serialize};

/// What kind of accelerator a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceleratorClass {
    NvidiaGpu,
    AmdKfd,
    DrmRender,
    Npu,
}

impl AcceleratorClass {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NvidiaGpu => "nvidia_gpu",
            Self::AmdKfd => "amd_kfd",
            Self::DrmRender => "drm_render",
            Self::Npu => "npu",
        }
    }
}

/// A range of accelerator device numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorDevice {
    pub major: u32,
    pub first_minor: u32,
    pub last_minor: u32,
    pub class: AcceleratorClass,
}

/// `/proc/devices` driver names that are accelerators, their class and which minors.
/// DRM card nodes (minors 0-127) are displays; its render nodes (128 and up) compute.
const DRIVERS: [(&str, AcceleratorClass, u32, u32); 8] = [
    ("nvidia", AcceleratorClass::NvidiaGpu, 0, 0xf_ffff),
    ("nvidia-frontend", AcceleratorClass::NvidiaGpu, 0, 0xf_ffff),
    ("nvidia-uvm", AcceleratorClass::NvidiaGpu, 0, 0xf_ffff),
    ("nvidia-caps", AcceleratorClass::NvidiaGpu, 0, 0xf_ffff),
    ("drm", AcceleratorClass::DrmRender, 128, 0xf_ffff),
    ("kfd", AcceleratorClass::AmdKfd, 0, 0xf_ffff),
    ("accel", AcceleratorClass::Npu, 0, 0xf_ffff),
    ("habanalabs", AcceleratorClass::Npu, 0, 0xf_ffff),
];

/// The accelerator devices registered now, plus `extra` (configured).
#[must_use]
pub fn accelerator_devices(extra: &[AcceleratorDevice]) -> Vec<AcceleratorDevice> {
    let text = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut devices = parse_devices(&text);
    devices.extend_from_slice(extra);
    devices.sort_by_key(|d| (d.major, d.first_minor));
    devices.dedup_by_key(|d| d.major);
    devices
}

fn parse_devices(text: &str) -> Vec<AcceleratorDevice> {
    text.lines()
        .take_while(|line| !line.starts_with("Block devices"))
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let major = parts.next()?.parse().ok()?;
            let driver = parts.next()?;
            let (_, class, first_minor, last_minor) = DRIVERS.iter().find(|(name, ..)| *name == driver)?;
            Some(AcceleratorDevice {
                major,
                first_minor: *first_minor,
                last_minor: *last_minor,
                class: *class,
            })
        })
        .collect()
}

/// The class of device `major:minor` among `devices`.
#[must_use]
pub fn classify(devices: &[AcceleratorDevice], major: u32, minor: u32) -> Option<AcceleratorClass> {
    devices
        .iter()
        .find(|d| d.major == major && (d.first_minor..=d.last_minor).contains(&minor))
        .map(|d| d.class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_devices_only_with_their_classes() {
        let text = "Character devices:\n  1 mem\n195 nvidia-frontend\n226 drm\n240 nvidia-uvm\n511 kfd\n\nBlock devices:\n  8 sd\n226 drm\n";
        let devices = parse_devices(text);
        let majors: Vec<u32> = devices.iter().map(|d| d.major).collect();
        assert_eq!(majors, vec![195, 226, 240, 511]);
        assert_eq!(classify(&devices, 226, 128), Some(AcceleratorClass::DrmRender));
        assert_eq!(classify(&devices, 226, 0), None, "a DRM card node is a display");
        assert_eq!(classify(&devices, 511, 0), Some(AcceleratorClass::AmdKfd));
    }
}
