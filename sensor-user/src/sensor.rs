//! Wires the stages together: kernel source -> correlation -> event log -> outlets.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use proto::v1::{EventsLost, Hook, LossSource, SensorStatus, event::Payload};

use model_analysis::HashBudget;

use crate::{
    analyze::hash::Hasher,
    config::SensorConfig,
    correlate::{Pipeline, PipelineOptions, PipelineStats},
    publish::EventLog,
    source::{CounterSnapshot, FilterSettings, KernelSource, LoadError},
};

/// A running sensor.
pub struct Sensor {
    pub log: Arc<EventLog>,
    source: Arc<KernelSource>,
    stats: Arc<PipelineStats>,
    hasher: Option<Hasher>,
    config: SensorConfig,
}

impl Sensor {
    /// Loads the probes and starts every stage. The first event is a SensorStatus.
    ///
    /// # Errors
    /// The probes cannot be loaded (see [`LoadError`]).
    pub fn start(config: SensorConfig) -> Result<Self, LoadError> {
        let settings = FilterSettings {
            ringbuf_bytes: config.kernel.ring_buffer_bytes,
            size_threshold: config.kernel.size_threshold_bytes,
            extensions: config.kernel.extensions.clone(),
            ports: config.kernel.ports.clone(),
            listen_marked_any_port: config.kernel.listen_runtimes_any_port,
            backend: config.kernel.backend,
        };
        let (source, records) = KernelSource::start(&settings)?;
        let log = Arc::new(EventLog::new(
            config.node.clone(),
            config.events.retain,
            config.events.subscriber_buffer,
        ));
        let stats = Arc::new(PipelineStats::default());
        let options = PipelineOptions {
            all_processes: config.events.all_processes,
            process_cache: NonZeroUsize::new(config.events.process_cache).unwrap_or(NonZeroUsize::MIN),
            candidates: crate::analyze::candidate::CandidateRule {
                size_threshold: config.kernel.size_threshold_bytes,
                extensions: config.kernel.extensions.clone(),
            },
        };
        let hasher = config.hash.enabled.then(|| {
            let nonzero = |n: u64| (n > 0).then_some(n);
            let budget = HashBudget {
                max_bytes_per_sec: nonzero(config.hash.max_bytes_per_second),
                max_bytes: nonzero(config.hash.max_file_bytes),
            };
            Hasher::spawn(Arc::clone(&log), budget, config.hash.queue)
        });
        let pipeline = Pipeline::new(
            options,
            Some(source.marks.clone()),
            hasher.clone(),
            Arc::clone(&log),
            Arc::clone(&stats),
        );
        let sensor = Self { log, source: Arc::new(source), stats, hasher, config };
        sensor.log.publish(SystemTime::now(), None, Payload::SensorStatus(sensor.status()));
        tokio::spawn(pipeline.run(records));
        tokio::spawn(report_losses(Arc::clone(&sensor.source), Arc::clone(&sensor.log)));
        Ok(sensor)
    }

    /// A status closure for the gRPC service.
    #[must_use]
    pub fn status_fn(self: &Arc<Self>) -> crate::publish::grpc::StatusFn {
        let sensor = Arc::clone(self);
        Arc::new(move || sensor.status())
    }

    /// Hooks, counters and settings right now.
    #[must_use]
    pub fn status(&self) -> SensorStatus {
        let counters = self.source.counters.snapshot();
        SensorStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel: kernel_release(),
            hooks: self.source.hooks.iter().map(hook).collect(),
            degraded: self.source.missing.clone(),
            kernel_counters: counters.named().map(|(k, v)| (k.to_owned(), v)).collect(),
            ring_buffer_bytes: self.config.kernel.ring_buffer_bytes,
            records_received: self.source.drain.received.load(Ordering::Relaxed),
            records_undecodable: self.source.drain.undecodable.load(Ordering::Relaxed),
            events_published: self.log.published(),
            subscribers: u32::try_from(self.log.subscribers()).unwrap_or(u32::MAX),
            size_threshold: self.config.kernel.size_threshold_bytes,
            extensions: self.config.kernel.extensions.clone(),
            ports: self.config.kernel.ports.iter().map(|p| u32::from(*p)).collect(),
            candidates_not_models: self.stats.not_models.load(Ordering::Relaxed),
            processes_cached: u32::try_from(self.stats.processes_cached.load(Ordering::Relaxed))
                .unwrap_or(u32::MAX),
            runtimes_marked: u32::try_from(self.source.marks.count()).unwrap_or(u32::MAX),
            models_hashed: self.hash_stat(|s| &s.hashed),
            hashes_skipped: self.hash_stat(|s| &s.skipped),
            hashes_failed: self.hash_stat(|s| &s.failed),
        }
    }

    fn hash_stat(&self, pick: impl Fn(&crate::analyze::hash::HashStats) -> &AtomicU64) -> u64 {
        self.hasher.as_ref().map_or(0, |h| pick(&h.stats).load(Ordering::Relaxed))
    }
}

fn hook(status: &crate::source::HookStatus) -> Hook {
    Hook {
        watches: status.watches.to_owned(),
        backend: status.backend.to_owned(),
        attach_point: status.attach_point.clone(),
        attached: status.attached,
        reason: status.reason.clone(),
        verified_insns: status.verified_insns.unwrap_or(0),
    }
}

#[must_use]
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |r| r.trim().to_owned())
}

/// Polls the kernel's loss counters and publishes every increase as EventsLost.
async fn report_losses(source: Arc<KernelSource>, log: Arc<EventLog>) {
    let mut previous = CounterSnapshot::default();
    let mut undecodable = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        ticker.tick().await;
        let now = source.counters.snapshot();
        let by_counter = now.lost_since(&previous);
        if !by_counter.is_empty() {
            let lost = EventsLost {
                source: LossSource::KernelRingBuffer.into(),
                count: by_counter.iter().map(|(_, n)| n).sum(),
                by_counter: by_counter.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                total: now.lost(),
                ..EventsLost::default()
            };
            log.publish(SystemTime::now(), None, Payload::EventsLost(lost));
        }
        previous = now;
        let bad = source.drain.undecodable.load(Ordering::Relaxed);
        if bad > undecodable {
            let lost = EventsLost {
                source: LossSource::Undecodable.into(),
                count: bad - undecodable,
                total: bad,
                ..EventsLost::default()
            };
            log.publish(SystemTime::now(), None, Payload::EventsLost(lost));
            undecodable = bad;
        }
    }
}
