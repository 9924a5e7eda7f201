//! The kernel's accelerator maps: which device majors (and minors) are accelerators,
//! rewritten when drivers load (NVIDIA UVM and AMD KFD get dynamic majors); and the
//! per-process ioctl counters the kernel keeps, read and summed over CPUs.

use std::sync::{Arc, Mutex, PoisonError};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuHashMap};
use sensor_common::settings::AcceleratorMinors;

/// Shared handles on the three maps.
#[derive(Clone)]
pub struct AcceleratorMaps {
    majors: Arc<Mutex<BpfHashMap<MapData, u32, AcceleratorMinors>>>,
    processes: Arc<Mutex<BpfHashMap<MapData, u32, u8>>>,
    ioctls: Arc<Mutex<PerCpuHashMap<MapData, u32, u64>>>,
}

impl AcceleratorMaps {
    #[must_use]
    pub fn new(
        majors: BpfHashMap<MapData, u32, AcceleratorMinors>,
        processes: BpfHashMap<MapData, u32, u8>,
        ioctls: PerCpuHashMap<MapData, u32, u64>,
    ) -> Self {
        Self {
            majors: Arc::new(Mutex::new(majors)),
            processes: Arc::new(Mutex::new(processes)),
            ioctls: Arc::new(Mutex::new(ioctls)),
        }
    }

    /// Makes the map exactly `devices` (`(major, first minor, last minor)`).
    pub fn set_devices(&self, devices: &[(u32, u32, u32)]) {
        let mut map = self.majors.lock().unwrap_or_else(PoisonError::into_inner);
        let stale: Vec<u32> =
            map.keys().flatten().filter(|major| !devices.iter().any(|(m, _, _)| m == major)).collect();
        for major in stale {
            let _ = map.remove(&major);
        }
        for (major, first, last) in devices {
            if let Err(error) = map.insert(major, &AcceleratorMinors { first: *first, last: *last }, 0) {
                tracing::warn!(major, %error, "cannot register an accelerator major");
            }
        }
    }

    /// Every process's ioctl count so far (summed over CPUs).
    #[must_use]
    pub fn ioctl_counts(&self) -> Vec<(u32, u64)> {
        let map = self.ioctls.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().flatten().map(|(pid, per_cpu)| (pid, per_cpu.iter().sum())).collect()
    }

    /// A process exited: its entries go.
    pub fn forget(&self, pid: u32) {
        let _ = self.processes.lock().unwrap_or_else(PoisonError::into_inner).remove(&pid);
        let _ = self.ioctls.lock().unwrap_or_else(PoisonError::into_inner).remove(&pid);
    }
}
