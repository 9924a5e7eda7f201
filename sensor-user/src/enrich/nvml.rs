//! Real GPU utilisation where NVIDIA's management library is present: loaded with
//! `dlopen` at run time (never a build dependency), queried per process. Where it is
//! absent the sensor says so and keeps counting ioctls.

use std::ffi::c_void;

use libloading::{Library, Symbol};

type Handle = *mut c_void;
const SUCCESS: i32 = 0;
const ERROR_INSUFFICIENT_SIZE: i32 = 7;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ProcessInfo {
    pid: u32,
    used_gpu_memory: u64,
    gpu_instance_id: u32,
    compute_instance_id: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct UtilizationSample {
    pid: u32,
    timestamp: u64,
    sm_util: u32,
    mem_util: u32,
    enc_util: u32,
    dec_util: u32,
}

/// One process's use of the GPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuUsage {
    pub utilization_percent: u32,
    pub memory_bytes: u64,
}

/// The loaded library (kept loaded for the sensor's life).
pub struct Nvml {
    library: Library,
    devices: Vec<Handle>,
}

// SAFETY: NVML is thread-safe; device handles are opaque pointers it owns.
unsafe impl Send for Nvml {}

impl Nvml {
    /// Loads and initialises NVML; why not, when it cannot.
    ///
    /// # Errors
    /// The library is absent or refuses to initialise (no driver, no GPU).
    pub fn load() -> Result<Self, String> {
        // SAFETY: loading a shared library runs its initialisers; NVML's are the
        // driver's own. The name is fixed (no path an attacker could place).
        let library = unsafe { Library::new("libnvidia-ml.so.1") }
            .map_err(|e| format!("NVIDIA management library (libnvidia-ml.so.1) not found: {e}"))?;
        let devices = Self::devices(&library)?;
        Ok(Self { library, devices })
    }

    fn devices(library: &Library) -> Result<Vec<Handle>, String> {
        // SAFETY: symbols with the signatures of NVML's C API.
        unsafe {
            let init: Symbol<unsafe extern "C" fn() -> i32> =
                library.get(b"nvmlInit_v2").map_err(|e| e.to_string())?;
            if init() != SUCCESS {
                return Err("NVML did not initialise (no NVIDIA driver or GPU)".into());
            }
            let count: Symbol<unsafe extern "C" fn(*mut u32) -> i32> =
                library.get(b"nvmlDeviceGetCount_v2").map_err(|e| e.to_string())?;
            let by_index: Symbol<unsafe extern "C" fn(u32, *mut Handle) -> i32> =
                library.get(b"nvmlDeviceGetHandleByIndex_v2").map_err(|e| e.to_string())?;
            let mut n = 0u32;
            if count(&mut n) != SUCCESS {
                return Err("NVML could not count devices".into());
            }
            let mut devices = Vec::new();
            for index in 0..n.min(64) {
                let mut handle: Handle = std::ptr::null_mut();
                if by_index(index, &mut handle) == SUCCESS {
                    devices.push(handle);
                }
            }
            Ok(devices)
        }
    }

    /// `pid`'s GPU memory and utilisation summed over devices; `None` when NVML does
    /// not list it.
    #[must_use]
    pub fn usage(&self, pid: u32) -> Option<GpuUsage> {
        let mut usage = GpuUsage::default();
        let mut found = false;
        for device in &self.devices {
            if let Some(memory) = self.memory(*device, pid) {
                usage.memory_bytes += memory;
                found = true;
            }
            if let Some(util) = self.utilization(*device, pid) {
                usage.utilization_percent = usage.utilization_percent.max(util);
                found = true;
            }
        }
        found.then_some(usage)
    }

    fn memory(&self, device: Handle, pid: u32) -> Option<u64> {
        // SAFETY: NVML's documented two-call pattern with a buffer of the size it asks.
        unsafe {
            let running: Symbol<unsafe extern "C" fn(Handle, *mut u32, *mut ProcessInfo) -> i32> =
                self.library.get(b"nvmlDeviceGetComputeRunningProcesses_v3").ok()?;
            let mut n = 0u32;
            let rc = running(device, &mut n, std::ptr::null_mut());
            if rc != SUCCESS && rc != ERROR_INSUFFICIENT_SIZE {
                return None;
            }
            let mut infos = vec![ProcessInfo::default(); n.min(4096) as usize + 8];
            let mut n = u32::try_from(infos.len()).unwrap_or(0);
            if running(device, &mut n, infos.as_mut_ptr()) != SUCCESS {
                return None;
            }
            infos.iter().take(n as usize).find(|i| i.pid == pid).map(|i| i.used_gpu_memory)
        }
    }

    fn utilization(&self, device: Handle, pid: u32) -> Option<u32> {
        // SAFETY: as above; samples since timestamp 0.
        unsafe {
            let samples: Symbol<unsafe extern "C" fn(Handle, *mut UtilizationSample, *mut u32, u64) -> i32> =
                self.library.get(b"nvmlDeviceGetProcessUtilization").ok()?;
            let mut n = 0u32;
            let _ = samples(device, std::ptr::null_mut(), &mut n, 0);
            let mut buffer = vec![UtilizationSample::default(); n.min(4096) as usize + 8];
            let mut n = u32::try_from(buffer.len()).unwrap_or(0);
            if samples(device, buffer.as_mut_ptr(), &mut n, 0) != SUCCESS {
                return None;
            }
            buffer.iter().take(n as usize).filter(|s| s.pid == pid).map(|s| s.sm_util).max()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn absence_is_said_not_hidden() {
        // No NVIDIA driver on the test machines: the reason names the library.
        if let Err(reason) = super::Nvml::load() {
            assert!(reason.contains("libnvidia-ml") || reason.contains("NVML"), "{reason}");
        }
    }
}
