//! Enrichment: who did it. The process cache (exec events first, procfs for what
//! started before the sensor or raced it), the start-up snapshot, containers,
//! accelerator devices.

pub mod container;
pub mod devices;
pub mod nvml;
pub mod process;
pub mod snapshot;
