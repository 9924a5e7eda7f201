//! Correlation: kernel records plus what enrichment and analysis know become typed
//! events. One task; it never waits on a file: identification, deep analysis and
//! hashing run in bounded worker pools (see `workers`), and their results come back
//! here as messages. So a record is published as soon as what it needs is known, and a
//! slow or hostile file delays only the events about that file. This is the only stage
//! that publishes, through an [`EventSink`] the wiring provides.

pub mod accelerators;
mod clock;
pub mod convert;
mod evidence;
mod files;
pub mod inventory;
mod listener;
mod loaders;
mod models;
mod process;
mod sessions;
mod snapshot;
pub mod workers;

#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

pub use clock::BootClock;
use proto::v1::{Process, event::Payload};
use sensor_common::decode::Record;
use tokio::sync::mpsc;

use crate::{
    domain::{DropCounters, FileKey},
    enrich::{
        process::{ProcView, ProcessCache},
        snapshot::SnapshotItem,
    },
    policy::{Policy, PolicyUpdate},
    source::RuntimeMarks,
};
pub use workers::{WorkReceivers, Workers};

/// Where events go: the publish stage implements it (the event log); tests collect.
pub trait EventSink: Send + Sync {
    /// Numbers and publishes one event; returns its sequence number. `session_id` is
    /// the inference session the event belongs to ("" for none).
    fn publish(
        &self,
        time: SystemTime,
        process: Option<Process>,
        session_id: String,
        payload: Payload,
    ) -> u64;
}

/// Counters of the userspace side, for status and metrics.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub records: AtomicU64,
    pub processes_cached: AtomicU64,
}

/// What the pipeline publishes beyond model activity.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Publish exec/exit of every process, not only runtimes and their children.
    pub all_processes: bool,
    /// Publish candidates that are not models (`candidate_file`).
    pub all_candidates: bool,
    pub process_cache: NonZeroUsize,
    /// How long a candidate may wait for identification before it is published
    /// unidentified.
    pub identify_deadline: Duration,
    /// Accelerator devices configured beyond `/proc/devices` (tests alias harmless devices).
    pub accelerator_devices: Vec<crate::enrich::devices::AcceleratorDevice>,
    /// The sensor's own mount namespace (inode of `/proc/self/ns/mnt`), to know when a
    /// process's path is also valid here.
    pub mount_ns: u32,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            all_processes: false,
            all_candidates: false,
            process_cache: NonZeroUsize::new(16_384).unwrap_or(NonZeroUsize::MIN),
            identify_deadline: Duration::from_secs(1),
            accelerator_devices: Vec::new(),
            mount_ns: 0,
        }
    }
}

/// The parts the pipeline talks to; injected, so that tests run it without root.
pub struct Parts {
    pub view: Box<dyn ProcView>,
    /// The kernel's mark map; `None` in tests.
    pub marks: Option<RuntimeMarks>,
    /// The kernel's accelerator maps (entries of exited processes go); `None` in tests.
    pub accelerator_maps: Option<crate::source::accelerators::AcceleratorMaps>,
    pub sink: Arc<dyn EventSink>,
    pub workers: Workers,
    pub drops: Arc<DropCounters>,
    pub stats: Arc<PipelineStats>,
    /// The catalog in force at start-up.
    pub policy: Arc<Policy>,
}

/// What the pipeline receives besides kernel records and work results.
pub struct Inputs {
    pub records: mpsc::Receiver<Record>,
    pub results: WorkReceivers,
    pub snapshot: mpsc::Receiver<SnapshotItem>,
    pub policy: mpsc::Receiver<PolicyUpdate>,
    pub inventory: mpsc::Receiver<inventory::InventoryRequest>,
    pub sweep: mpsc::Receiver<crate::analyze::sweep::SweepItem>,
    pub accelerators: mpsc::Receiver<accelerators::AcceleratorSample>,
}

/// The correlation stage.
pub struct Pipeline {
    options: PipelineOptions,
    processes: ProcessCache,
    /// Marks mirrored from the kernel map: tgid -> mark bits.
    marked: HashMap<u32, u32>,
    /// Processes whose exec was published (their exit will be too).
    published: HashSet<u32>,
    /// Processes whose held listeners were asked for by the start-up snapshot.
    snapshot_pids: HashSet<u32>,
    files: files::FileTable,
    models: models::ModelTable,
    sessions: sessions::Sessions,
    policy: Arc<Policy>,
    sweep: inventory::Sweep,
    accelerators: accelerators::Accelerators,
    loaders: loaders::Loaders,
    listeners: listener::Published,
    workers: Workers,
    marks: Option<RuntimeMarks>,
    accelerator_maps: Option<crate::source::accelerators::AcceleratorMaps>,
    sink: Arc<dyn EventSink>,
    clock: BootClock,
    drops: Arc<DropCounters>,
    stats: Arc<PipelineStats>,
}

/// How often pending work is checked against its deadline.
const TICK: Duration = Duration::from_millis(100);

impl Pipeline {
    #[must_use]
    pub fn new(options: PipelineOptions, parts: Parts) -> Self {
        Self {
            processes: ProcessCache::new(options.process_cache, parts.view),
            options,
            marked: HashMap::new(),
            published: HashSet::new(),
            snapshot_pids: HashSet::new(),
            files: files::FileTable::default(),
            models: models::ModelTable::default(),
            sessions: sessions::Sessions::default(),
            policy: parts.policy,
            sweep: inventory::Sweep::default(),
            accelerators: accelerators::Accelerators::default(),
            loaders: loaders::Loaders::default(),
            listeners: listener::Published::default(),
            workers: parts.workers,
            marks: parts.marks,
            accelerator_maps: parts.accelerator_maps,
            sink: parts.sink,
            clock: BootClock::now(),
            drops: parts.drops,
            stats: parts.stats,
        }
    }

    /// Handles records, work results and the start-up snapshot until the record source
    /// closes.
    pub async fn run(mut self, inputs: Inputs) {
        let Inputs {
            mut records,
            mut results,
            mut snapshot,
            mut policy,
            mut inventory,
            mut sweep,
            accelerators: mut samples,
        } = inputs;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                Some(done) = results.identified.recv() => self.on_identified(done),
                Some(done) = results.analyzed.recv() => self.on_analyzed(done),
                Some(done) = results.hashed.recv() => self.on_hashed(done),
                Some(done) = results.held.recv() => self.on_held_listeners(done),
                Some(done) = results.signature.recv() => self.on_signature(done),
                Some(done) = results.version.recv() => self.on_version(done),
                Some(update) = policy.recv() => self.on_policy(update),
                Some(reply) = inventory.recv() => self.on_inventory(reply),
                Some(item) = snapshot.recv() => self.on_snapshot(item),
                Some(item) = sweep.recv() => self.on_sweep(item),
                Some(sample) = samples.recv() => self.on_accelerator_sample(&sample),
                record = records.recv() => match record {
                    Some(record) => self.handle(record),
                    None => return,
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    /// Handles one kernel record (synchronously: nothing here waits on a file).
    pub fn handle(&mut self, record: Record) {
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        match record {
            Record::Exec { event, exe } => self.on_exec(&event, &exe),
            Record::Exit(event) => self.on_exit(&event),
            Record::File { kind, event, path } => self.on_file(kind, &event, &path),
            Record::Listen(event) => self.on_listen(&event),
        }
        self.stats.processes_cached.store(self.processes.len() as u64, Ordering::Relaxed);
    }

    /// Deadlines: candidates that waited too long for identification are published
    /// unidentified.
    fn on_tick(&mut self) {
        self.expire_identifications();
    }

    /// Publishes an event, tagged with its process's inference session.
    fn publish(&self, ktime_ns: u64, process: Option<Process>, payload: Payload) -> u64 {
        let session = process.as_ref().and_then(|p| self.session_of(p.pid)).map(str::to_owned);
        self.publish_in(ktime_ns, process, session, payload)
    }

    fn publish_in(
        &self,
        ktime_ns: u64,
        process: Option<Process>,
        session: Option<String>,
        payload: Payload,
    ) -> u64 {
        let time = if ktime_ns == 0 { SystemTime::now() } else { self.clock.wall(ktime_ns) };
        self.sink.publish(time, process, session.unwrap_or_default(), payload)
    }

    /// A catalog reload: judged again under the new one, or the refusal published.
    fn on_policy(&mut self, update: PolicyUpdate) {
        match update {
            PolicyUpdate::Loaded(policy) => {
                self.policy = policy;
                self.judge_everything();
            }
            PolicyUpdate::Rejected { path, reason } => {
                let finding = proto::v1::PolicyFinding {
                    verdict: Some(proto::v1::Verdict {
                        verdict: "catalog_invalid".into(),
                        severity: proto::v1::Severity::High.into(),
                        reason: format!("{reason}; the previous catalog stays in force"),
                        ..proto::v1::Verdict::default()
                    }),
                    subject: "catalog".into(),
                    subject_id: path.display().to_string(),
                    ..proto::v1::PolicyFinding::default()
                };
                self.publish(0, None, Payload::Finding(finding));
            }
        }
    }

    /// Rewrites a process's kernel mark and mirrors it.
    fn set_mark(&mut self, tgid: u32, change: impl FnOnce(u32) -> u32) {
        let current = self.marked.get(&tgid).copied().unwrap_or(0);
        let next = match &self.marks {
            Some(marks) => {
                let failed = marks.failed.load(Ordering::Relaxed);
                let next = marks.update(tgid, change);
                if marks.failed.load(Ordering::Relaxed) > failed {
                    self.drops.bump(crate::domain::Drop::MarkFailed);
                }
                next
            }
            None => change(current),
        };
        if next == 0 {
            self.marked.remove(&tgid);
        } else {
            self.marked.insert(tgid, next);
        }
    }

    /// The identity a cache lookup uses for `key` (the kernel's view).
    fn key_of(identity: &sensor_common::FileIdentity) -> FileKey {
        FileKey::from_kernel(identity)
    }
}
