//! Enrichment: who did it. The process cache (exec events first, procfs for what
//! started before the sensor or raced it), the start-up snapshot, containers and
//! Kubernetes pods, accelerator devices.

pub mod container;
pub mod devices;
pub mod nvml;
pub mod pod;
pub mod process;
pub mod snapshot;
