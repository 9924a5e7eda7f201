//! The kernel source: loads the probes, then turns the ring buffer into decoded records
//! and the per-CPU counters into loss figures.

mod attach;
pub mod btf;
pub mod counters;
mod filters;
pub mod hooks;
pub mod loader;
pub mod marks;
pub mod offsets;
pub mod ring;
pub mod tracefs;

use std::sync::Arc;

use aya::maps::{Array, HashMap as BpfHashMap, PerCpuArray, RingBuf};
use sensor_common::decode::Record;
use tokio::sync::mpsc;

pub use counters::{CounterSnapshot, KernelCounters};
pub use hooks::HookStatus;
pub use loader::{FilterSettings, LoadError};
pub use marks::RuntimeMarks;
pub use ring::DrainStats;

/// The loaded probes and the handles the pipeline needs.
pub struct KernelSource {
    pub hooks: Vec<HookStatus>,
    pub missing: Vec<String>,
    pub counters: Arc<KernelCounters>,
    pub marks: RuntimeMarks,
    pub drain: Arc<DrainStats>,
    /// Keeps the programs attached for as long as the source lives.
    _ebpf: aya::Ebpf,
}

impl KernelSource {
    /// Loads the probes and starts draining the ring buffer into the returned channel.
    ///
    /// # Errors
    /// See [`LoadError`]: each names its cause and fix.
    pub fn start(settings: &FilterSettings) -> Result<(Self, mpsc::Receiver<Record>), LoadError> {
        let loader::Loaded { mut ebpf, hooks, missing } = loader::load(settings)?;
        let take = |ebpf: &mut aya::Ebpf, name: &'static str| {
            ebpf.take_map(name)
                .ok_or_else(|| LoadError::Setting(format!("map {name} missing from the object")))
        };
        let map_error = |map| move |source| LoadError::Map { map, source };
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(map_error("EVENTS"))?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?).map_err(map_error("COUNTERS"))?;
        let marked = BpfHashMap::try_from(take(&mut ebpf, "MARKED")?).map_err(map_error("MARKED"))?;
        let asleep =
            Array::try_from(take(&mut ebpf, "CONSUMER_ASLEEP")?).map_err(map_error("CONSUMER_ASLEEP"))?;
        let (sink, records) = mpsc::channel(8192);
        let drain = Arc::new(DrainStats::default());
        let stats = Arc::clone(&drain);
        tokio::spawn(async move {
            if let Err(error) = ring::drain(ring, ring::SleepFlag::new(asleep), sink, stats).await {
                tracing::error!(%error, "the ring buffer cannot be read; no more kernel events");
            }
        });
        let source = Self {
            hooks,
            missing,
            counters: Arc::new(KernelCounters::new(counters)),
            marks: RuntimeMarks::new(marked),
            drain,
            _ebpf: ebpf,
        };
        Ok((source, records))
    }
}
