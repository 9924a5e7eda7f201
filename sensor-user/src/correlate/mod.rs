//! Correlation: kernel records plus what enrichment and analysis know become typed
//! events. One task, records in ring-buffer order, so events keep the kernel's order.

mod clock;
pub mod convert;
mod listener;
mod model;
mod process;
mod snapshot;

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

pub use clock::BootClock;
use proto::v1::{Process, event::Payload};
use sensor_common::decode::Record;
use tokio::sync::mpsc;

use crate::{
    analyze::{hash::Hasher, identify::FileKey},
    enrich::process::ProcessCache,
    publish::EventLog,
    source::RuntimeMarks,
};

/// Counters of the userspace side, for status and metrics.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub records: AtomicU64,
    /// Candidates the kernel forwarded that were not model files.
    pub not_models: AtomicU64,
    /// Candidates that could not be opened (gone, replaced, unreadable).
    pub unreadable: AtomicU64,
    pub processes_cached: AtomicU64,
}

/// What the pipeline publishes beyond model activity.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Publish exec/exit of every process, not only runtimes and their children.
    pub all_processes: bool,
    pub process_cache: NonZeroUsize,
    /// The kernel's candidate rule, for files found by the start-up snapshot.
    pub candidates: crate::analyze::candidate::CandidateRule,
}

/// The correlation stage.
pub struct Pipeline {
    options: PipelineOptions,
    processes: ProcessCache,
    /// Marks mirrored from the kernel map: tgid -> mark bits.
    marked: HashMap<u32, u32>,
    /// Processes whose exec was published (their exit will be too).
    published: HashMap<u32, ()>,
    models: lru::LruCache<FileKey, model::Identified>,
    limits: model_analysis::Limits,
    hasher: Option<Hasher>,
    marks: Option<RuntimeMarks>,
    log: Arc<EventLog>,
    clock: BootClock,
    stats: Arc<PipelineStats>,
}

impl Pipeline {
    #[must_use]
    pub fn new(
        options: PipelineOptions,
        marks: Option<RuntimeMarks>,
        hasher: Option<Hasher>,
        log: Arc<EventLog>,
        stats: Arc<PipelineStats>,
    ) -> Self {
        Self {
            processes: ProcessCache::new(options.process_cache),
            options,
            marked: HashMap::new(),
            published: HashMap::new(),
            models: lru::LruCache::new(NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN)),
            limits: model_analysis::Limits::default(),
            hasher,
            marks,
            log,
            clock: BootClock::now(),
            stats,
        }
    }

    /// Handles records until the source closes.
    pub async fn run(mut self, mut records: mpsc::Receiver<Record>) {
        self.snapshot_running_processes().await;
        while let Some(record) = records.recv().await {
            self.stats.records.fetch_add(1, Ordering::Relaxed);
            self.handle(record).await;
            self.stats.processes_cached.store(self.processes.len() as u64, Ordering::Relaxed);
        }
    }

    async fn handle(&mut self, record: Record) {
        match record {
            Record::Exec { event, exe } => self.on_exec(&event, &exe),
            Record::Exit(event) => self.on_exit(&event),
            Record::File { kind, event, path } => self.on_file(kind, &event, &path).await,
            Record::Listen(event) => self.on_listen(&event),
        }
    }

    fn publish(&self, ktime_ns: u64, process: Option<Process>, payload: Payload) {
        let time = if ktime_ns == 0 { SystemTime::now() } else { self.clock.wall(ktime_ns) };
        self.log.publish(time, process, payload);
    }

    /// Drops a mark the kernel may have set by name.
    fn unmark(&mut self, tgid: u32) {
        self.marked.remove(&tgid);
        if let Some(marks) = &self.marks {
            marks.unmark(tgid);
        }
    }

    /// Marks a process in the kernel and in the mirror.
    fn mark(&mut self, tgid: u32, flags: u32) {
        let entry = self.marked.entry(tgid).or_insert(0);
        if *entry & flags == flags {
            return;
        }
        *entry |= flags;
        if let Some(marks) = &self.marks {
            marks.mark(tgid, flags);
        }
    }
}
