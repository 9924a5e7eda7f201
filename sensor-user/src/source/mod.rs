//! The kernel source: loads the probes, then turns the two ring buffers into decoded
//! records and the per-CPU counters into loss figures. The first stage: it imports no
//! other stage.

pub mod accelerators;
mod attach;
pub mod btf;
pub mod counters;
pub mod error;
mod filters;
pub mod hooks;
pub mod kfuncs;
pub mod loader;
pub mod marks;
pub mod offsets;
pub mod ring;
pub mod ring_fill;
pub mod settings;
pub mod tracefs;

use std::sync::Arc;

use aya::maps::{Array, HashMap as BpfHashMap, PerCpuArray, RingBuf};
use sensor_common::decode::Record;
use tokio::{sync::mpsc, task::JoinHandle};

pub use counters::{CounterSnapshot, KernelCounters};
pub use error::LoadError;
pub use hooks::HookStatus;
pub use marks::RuntimeMarks;
pub use ring::DrainStats;
pub use ring_fill::RingFill;
pub use settings::FilterSettings;

/// Records waiting between the drain and the pipeline.
const RECORD_QUEUE: usize = 8192;

/// The loaded probes and the handles the pipeline needs.
pub struct KernelSource {
    pub hooks: Vec<HookStatus>,
    pub missing: Vec<String>,
    pub counters: Arc<KernelCounters>,
    pub marks: RuntimeMarks,
    pub accelerators: accelerators::AcceleratorMaps,
    pub drain: Arc<DrainStats>,
    /// Keeps the programs attached for as long as the source lives.
    _ebpf: aya::Ebpf,
}

/// The running drain: its records, and its task (an essential one: if it ends, no more
/// kernel events arrive).
pub struct Drain {
    pub records: mpsc::Receiver<Record>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl KernelSource {
    /// Loads the probes and starts draining the ring buffers.
    ///
    /// # Errors
    /// See [`LoadError`]: each names its cause and fix.
    pub fn start(settings: &FilterSettings) -> Result<(Self, Drain), LoadError> {
        let loader::Loaded { mut ebpf, hooks, missing } = loader::load(settings)?;
        let take = |ebpf: &mut aya::Ebpf, name: &'static str| {
            ebpf.take_map(name)
                .ok_or_else(|| LoadError::Setting(format!("map {name} missing from the object")))
        };
        let map_error = |map| move |source| LoadError::Map { map, source };
        let rings = ring::Rings {
            processes: RingBuf::try_from(take(&mut ebpf, "PROCESS_EVENTS")?)
                .map_err(map_error("PROCESS_EVENTS"))?,
            files: RingBuf::try_from(take(&mut ebpf, "FILE_EVENTS")?).map_err(map_error("FILE_EVENTS"))?,
        };
        let counters = PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?).map_err(map_error("COUNTERS"))?;
        let marked = BpfHashMap::try_from(take(&mut ebpf, "MARKED")?).map_err(map_error("MARKED"))?;
        let asleep =
            Array::try_from(take(&mut ebpf, "CONSUMER_ASLEEP")?).map_err(map_error("CONSUMER_ASLEEP"))?;
        let accelerators = accelerators::AcceleratorMaps::new(
            BpfHashMap::try_from(take(&mut ebpf, "ACCEL_MAJORS")?).map_err(map_error("ACCEL_MAJORS"))?,
            BpfHashMap::try_from(take(&mut ebpf, "ACCEL_PROCS")?).map_err(map_error("ACCEL_PROCS"))?,
            aya::maps::PerCpuHashMap::try_from(take(&mut ebpf, "ACCEL_IOCTLS")?)
                .map_err(map_error("ACCEL_IOCTLS"))?,
        );
        let (sink, records) = mpsc::channel(RECORD_QUEUE);
        let size = u64::from(settings.ringbuf_bytes);
        let fills = [("processes", &rings.processes), ("files", &rings.files)]
            .into_iter()
            .filter_map(|(name, ring)| {
                RingFill::new(name, ring, size)
                    .inspect_err(|error| tracing::warn!(ring = name, %error, "no fill gauge for this ring"))
                    .ok()
            })
            .collect();
        let drain = Arc::new(DrainStats { rings: fills, ..DrainStats::default() });
        let task = tokio::spawn(ring::drain(rings, ring::SleepFlag::new(asleep), sink, Arc::clone(&drain)));
        let source = Self {
            hooks,
            missing,
            counters: Arc::new(KernelCounters::new(counters)),
            marks: RuntimeMarks::new(marked),
            accelerators,
            drain,
            _ebpf: ebpf,
        };
        Ok((source, Drain { records, task }))
    }
}
