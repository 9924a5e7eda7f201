//! Wires the stages together: kernel source -> correlation (with its worker pools) ->
//! event log -> outlets, and supervises the tasks that must never stop.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime},
};

use model_analysis::{HashBudget, Limits};
use proto::v1::{EventsLost, Hook, KernelRing, LossSource, SensorStatus, WorkQueue, event::Payload};
use sensor_common::counters::Role;
use tokio::task::{JoinError, JoinSet};

use crate::{
    analyze::candidate::CandidateRule,
    config::SensorConfig,
    correlate::{
        Inputs, Parts, Pipeline, PipelineOptions, PipelineStats,
        inventory::InventoryRequest,
        workers::{PoolSizes, WorkFns, Workers, WorkersStatus},
    },
    domain::{Drop, DropCounters},
    enrich::{
        devices::accelerator_devices,
        pod::PodDirectory,
        process::ProcFs,
        snapshot::{SnapshotItem, read_running},
    },
    policy::Policy,
    publish::EventLog,
    source::{CounterSnapshot, FilterSettings, KernelSource, LoadError},
};

/// The tasks without which the sensor is blind; if one ends, the process must exit
/// (non-zero) so that systemd or Kubernetes restart it.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Supervisor {
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits for the first essential task to end; its name and how it ended.
    pub async fn first_exit(&mut self) -> (&'static str, Option<JoinError>) {
        match self.tasks.join_next_with_id().await {
            Some(Ok((id, ()))) => (self.names.get(&id).copied().unwrap_or("a task"), None),
            Some(Err(error)) => (self.names.get(&error.id()).copied().unwrap_or("a task"), Some(error)),
            None => std::future::pending().await,
        }
    }
}

/// A running sensor.
pub struct Sensor {
    pub log: Arc<EventLog>,
    source: Arc<KernelSource>,
    stats: Arc<PipelineStats>,
    drops: Arc<DropCounters>,
    pools: WorkersStatus,
    config: SensorConfig,
    /// Asks the pipeline for the inventory.
    pub inventory: tokio::sync::mpsc::Sender<InventoryRequest>,
    /// Why real GPU utilisation is not available, when it is not.
    nvml_missing: std::sync::Mutex<Option<String>>,
}

impl Sensor {
    /// Loads the probes and starts every stage. The first event is a SensorStatus.
    ///
    /// # Errors
    /// The probes cannot be loaded (see [`LoadError`]).
    pub fn start(
        config: SensorConfig,
        policy: Policy,
        log: Arc<EventLog>,
    ) -> Result<(Self, Supervisor), LoadError> {
        let (source, drain) = KernelSource::start(&filter_settings(&config))?;
        let stats = Arc::new(PipelineStats::default());
        let drops = Arc::new(DropCounters::default());
        let (workers, results) = Workers::spawn(work_fns(&config), pool_sizes(&config));
        let pools = workers.status_handle();
        let options = PipelineOptions {
            all_processes: config.events.all_processes,
            all_candidates: config.events.all_candidates,
            process_cache: std::num::NonZeroUsize::new(config.events.process_cache)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            identify_deadline: Duration::from_millis(config.analysis.identify_deadline_ms),
            accelerator_devices: config.accelerators.devices.clone(),
            mount_ns: own_mount_namespace(),
        };
        let parts = Parts {
            view: Box::new(ProcFs {
                pods: PodDirectory::new(
                    &config.kubernetes.pod_logs_dir,
                    &config.kubernetes.container_logs_dir,
                ),
                ..ProcFs::default()
            }),
            marks: Some(source.marks.clone()),
            accelerator_maps: Some(source.accelerators.clone()),
            sink: Arc::clone(&log) as Arc<dyn crate::correlate::EventSink>,
            workers,
            drops: Arc::clone(&drops),
            stats: Arc::clone(&stats),
            policy: Arc::new(policy),
        };
        let pipeline = Pipeline::new(options, parts);
        let (inventory, inventory_requests) = tokio::sync::mpsc::channel(16);
        let (policy_updates, policy_rx) = tokio::sync::mpsc::channel(4);
        let sensor = Self {
            log,
            source: Arc::new(source),
            stats,
            drops,
            pools,
            config,
            inventory,
            nvml_missing: std::sync::Mutex::new(None),
        };
        sensor.log.publish(SystemTime::now(), None, Payload::SensorStatus(sensor.status()));
        let snapshot = spawn_snapshot(&sensor.config);
        let mut supervisor = Supervisor::default();
        let drain_task = drain.task;
        supervisor.spawn("kernel ring buffer drain", async move {
            match drain_task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "the ring buffers cannot be read"),
                Err(error) => tracing::error!(%error, "the ring buffer drain failed"),
            }
        });
        let inputs = Inputs {
            records: drain.records,
            results,
            snapshot,
            policy: policy_rx,
            inventory: inventory_requests,
            sweep: spawn_sweep(&sensor.config),
            accelerators: spawn_accelerator_sampler(&sensor.source, &sensor.config, &sensor.nvml_missing),
        };
        supervisor.spawn("pipeline", pipeline.run(inputs));
        if let Some(path) = sensor.config.catalog.clone() {
            tokio::spawn(crate::policy::reload::watch(path, policy_updates));
        }
        supervisor.spawn(
            "loss reporter",
            report_losses(Arc::clone(&sensor.source), Arc::clone(&sensor.log), Arc::clone(&sensor.drops)),
        );
        Ok((sensor, supervisor))
    }

    /// A status closure for the gRPC service.
    #[must_use]
    pub fn status_fn(self: &Arc<Self>) -> crate::publish::grpc::StatusFn {
        let sensor = Arc::clone(self);
        Arc::new(move || sensor.status())
    }

    /// What the event log had to repair, or cannot do.
    fn log_problems(&self) -> impl Iterator<Item = String> + use<'_> {
        let errors = self.log.write_errors();
        let write = (errors > 0).then(|| {
            format!(
                "event log: {errors} batches could not be written (disk full or failing): streamed, not kept"
            )
        });
        self.log.recovery_note().map(str::to_owned).into_iter().chain(write)
    }

    /// Hooks, counters and settings right now.
    #[must_use]
    pub fn status(&self) -> SensorStatus {
        let counters = self.source.counters.snapshot();
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        SensorStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel: kernel_release(),
            hooks: self.source.hooks.iter().map(hook).collect(),
            degraded: self
                .source
                .missing
                .iter()
                .cloned()
                .chain(self.nvml_missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
                .chain(self.log_problems())
                .collect(),
            kernel_counters: counters.named().map(|(k, v)| (k.to_owned(), v)).collect(),
            ring_buffer_bytes: self.config.kernel.ring_buffer_bytes,
            records_received: self.source.drain.received.load(Ordering::Relaxed),
            records_undecodable: self.source.drain.undecodable.load(Ordering::Relaxed),
            events_published: self.log.published(),
            subscribers: u32::try_from(self.log.subscribers()).unwrap_or(u32::MAX),
            size_threshold: self.config.kernel.size_threshold_bytes,
            extensions: self.config.kernel.extensions.clone(),
            ports: self.config.kernel.ports.iter().map(|p| u32::from(*p)).collect(),
            candidates_not_models: self.drops.get(Drop::NotAModel),
            processes_cached: clamp(self.stats.processes_cached.load(Ordering::Relaxed)),
            runtimes_marked: u32::try_from(self.source.marks.count()).unwrap_or(u32::MAX),
            models_hashed: 0,
            hashes_skipped: self.drops.get(Drop::HashQueueFull),
            hashes_failed: self.drops.get(Drop::HashFailed),
            instance: self.log.instance().to_owned(),
            pipeline_counters: self.drops.snapshot().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            rings: self
                .source
                .drain
                .rings
                .iter()
                .map(|ring| KernelRing {
                    name: ring.name.to_owned(),
                    size_bytes: ring.size,
                    used_bytes: ring.used(),
                    peak_used_bytes: ring.peak(),
                })
                .collect(),
            queues: self
                .pools
                .status()
                .into_iter()
                .map(|p| WorkQueue {
                    name: p.name.to_owned(),
                    depth: p.depth,
                    capacity: p.capacity,
                    workers: p.workers,
                    busy: p.busy,
                    oldest_job_ms: p.oldest_job_ms,
                })
                .collect(),
            ..log_status(&self.log)
        }
    }
}

/// The durable log's part of the status (fields 30-39).
fn log_status(log: &EventLog) -> SensorStatus {
    let extent = log.extent();
    let last = log.last_visible();
    let previous = log.previous();
    SensorStatus {
        log_first_seq: extent.first_seq,
        log_last_seq: extent.last_seq,
        log_bytes: extent.bytes,
        log_segments: extent.segments,
        log_directory: log.directory().display().to_string(),
        previous_instance: previous.map(|p| p.instance.clone()).unwrap_or_default(),
        unobserved_since: previous.and_then(|p| p.last_time),
        log_damaged_frames: extent.damaged,
        outlets: log
            .outlets()
            .iter()
            .map(|o| proto::v1::OutletStatus {
                kind: o.kind.name().to_owned(),
                next_seq: o.next_seq(),
                behind: (last + 1).saturating_sub(o.next_seq()),
                queued: o.queued(),
                state: o.state().to_owned(),
                delivered: o.delivered(),
            })
            .collect(),
        ..SensorStatus::default()
    }
}

/// What the kernel side is told, from the configuration and what enrichment knows.
#[must_use]
pub fn filter_settings(config: &SensorConfig) -> FilterSettings {
    FilterSettings {
        ringbuf_bytes: config.kernel.ring_buffer_bytes,
        size_threshold: config.kernel.size_threshold_bytes,
        extensions: config.kernel.extensions.clone(),
        ports: config.kernel.ports.clone(),
        listen_marked_any_port: config.kernel.listen_runtimes_any_port,
        backend: config.kernel.backend,
        dedup_window_ns: config.kernel.dedup_window_ms.saturating_mul(1_000_000),
        accelerators: accelerator_devices(&config.accelerators.devices)
            .iter()
            .map(|d| (d.major, d.first_minor, d.last_minor))
            .collect(),
        runtime_executables: crate::domain::runtime::RUNTIME_EXECUTABLES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    }
}

fn work_fns(config: &SensorConfig) -> WorkFns {
    WorkFns::real(Limits::default(), hash_budget(config), std::path::PathBuf::from("/proc"))
}

fn pool_sizes(config: &SensorConfig) -> PoolSizes {
    PoolSizes {
        analyze_queue: config.analysis.queue,
        hash_queue: config.hash.enabled.then_some(config.hash.queue),
        ..PoolSizes::default()
    }
}

/// Reads what already runs, off the event path, into the pipeline.
fn spawn_snapshot(config: &SensorConfig) -> tokio::sync::mpsc::Receiver<SnapshotItem> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let rule = CandidateRule {
        size_threshold: config.kernel.size_threshold_bytes,
        extensions: config.kernel.extensions.clone(),
    };
    tokio::task::spawn_blocking(move || {
        let is_candidate = |path: &std::path::Path, size| rule.matches(path, size);
        read_running(std::path::Path::new("/proc"), std::process::id(), &is_candidate, &tx);
    });
    rx
}

/// Every second, the kernel's ioctl counters (and NVML's view, where present) into the
/// pipeline; every 30 s, `/proc/devices` again (drivers load on demand with dynamic
/// majors).
fn spawn_accelerator_sampler(
    source: &KernelSource,
    config: &SensorConfig,
    nvml_missing: &std::sync::Mutex<Option<String>>,
) -> tokio::sync::mpsc::Receiver<crate::correlate::accelerators::AcceleratorSample> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let maps = source.accelerators.clone();
    let extra = config.accelerators.devices.clone();
    let nvml = match crate::enrich::nvml::Nvml::load() {
        Ok(nvml) => Some(nvml),
        Err(reason) => {
            *nvml_missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(format!("{reason}: accelerator activity is ioctl counts only (a lower bound)"));
            None
        }
    };
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        loop {
            ticker.tick().await;
            ticks += 1;
            if ticks.is_multiple_of(30) {
                let devices: Vec<(u32, u32, u32)> = accelerator_devices(&extra)
                    .iter()
                    .map(|d| (d.major, d.first_minor, d.last_minor))
                    .collect();
                maps.set_devices(&devices);
            }
            let counts = maps.ioctl_counts();
            if counts.is_empty() {
                continue;
            }
            let usage = nvml
                .as_ref()
                .map(|n| counts.iter().filter_map(|(pid, _)| n.usage(*pid).map(|u| (*pid, u))).collect())
                .unwrap_or_default();
            let sample = crate::correlate::accelerators::AcceleratorSample {
                at: std::time::Instant::now(),
                counts,
                usage,
            };
            if tx.send(sample).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Walks the model stores on disk on a thread of its own, into the pipeline.
fn spawn_sweep(config: &SensorConfig) -> tokio::sync::mpsc::Receiver<crate::analyze::sweep::SweepItem> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    if !config.sweep.enabled {
        return rx;
    }
    let mut roots = if config.sweep.only_roots { Vec::new() } else { crate::analyze::sweep::default_roots() };
    roots.extend(config.sweep.roots.iter().cloned());
    let rule = CandidateRule {
        size_threshold: config.kernel.size_threshold_bytes,
        extensions: config.kernel.extensions.clone(),
    };
    let hash = hash_budget(config);
    let spawned = std::thread::Builder::new()
        .name("mw-sweep".into())
        .spawn(move || crate::analyze::sweep::sweep(&roots, &rule, &hash, &tx));
    if let Err(error) = spawned {
        tracing::warn!(%error, "the at-rest sweep did not start");
    }
    rx
}

fn hash_budget(config: &SensorConfig) -> HashBudget {
    let nonzero = |n: u64| (n > 0).then_some(n);
    HashBudget {
        max_bytes_per_sec: nonzero(config.hash.max_bytes_per_second),
        max_bytes: nonzero(config.hash.max_file_bytes),
    }
}

/// The inode of the sensor's own mount namespace (what the kernel calls `ns.inum`).
fn own_mount_namespace() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/mnt").map_or(0, |m| u32::try_from(m.ino()).unwrap_or(0))
}

fn hook(status: &crate::source::HookStatus) -> Hook {
    Hook {
        watches: status.watches.as_str().to_owned(),
        backend: status.backend.as_str().to_owned(),
        attach_point: status.attach_point.clone(),
        attached: status.attached,
        reason: status.reason.clone(),
        verified_insns: status.verified_insns.unwrap_or(0),
        reads: status.reads.as_str().to_owned(),
    }
}

#[must_use]
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |r| r.trim().to_owned())
}

/// Pipeline paths whose increases are announced as `events_lost` (not-a-model is a
/// normal outcome: counted in status, not announced).
fn announced(drop: Drop) -> bool {
    drop != Drop::NotAModel
}

/// Polls the kernel's counters and the pipeline's drop counters and publishes every
/// increase as `events_lost`, per source.
async fn report_losses(source: Arc<KernelSource>, log: Arc<EventLog>, drops: Arc<DropCounters>) {
    let mut previous = CounterSnapshot::default();
    let mut previous_drops: Vec<u64> = vec![0; Drop::ALL.len()];
    let mut undecodable = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        ticker.tick().await;
        let now = source.counters.snapshot();
        for (role, loss_source) in
            [(Role::Lost, LossSource::KernelRingBuffer), (Role::Degraded, LossSource::KernelDegraded)]
        {
            let by_counter = now.increases(&previous, role);
            announce(&log, loss_source, &by_counter, now.total(role));
        }
        previous = now;
        let current: Vec<u64> = Drop::ALL.iter().map(|d| drops.get(*d)).collect();
        let by_counter: Vec<(&'static str, u64)> = Drop::ALL
            .iter()
            .zip(current.iter().zip(&previous_drops))
            .filter(|(drop, (now, before))| announced(**drop) && now > before)
            .map(|(drop, (now, before))| (drop.name(), now - before))
            .collect();
        let total = Drop::ALL.iter().zip(&current).filter(|(d, _)| announced(**d)).map(|(_, n)| n).sum();
        announce(&log, LossSource::Pipeline, &by_counter, total);
        previous_drops = current;
        let bad = source.drain.undecodable.load(Ordering::Relaxed);
        if bad > undecodable {
            announce(&log, LossSource::Undecodable, &[("undecodable", bad - undecodable)], bad);
            undecodable = bad;
        }
    }
}

fn announce(log: &EventLog, source: LossSource, by_counter: &[(&'static str, u64)], total: u64) {
    if by_counter.is_empty() {
        return;
    }
    let lost = EventsLost {
        source: source.into(),
        count: by_counter.iter().map(|(_, n)| n).sum(),
        by_counter: by_counter.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        total,
        ..EventsLost::default()
    };
    log.publish(SystemTime::now(), None, Payload::EventsLost(lost));
}
