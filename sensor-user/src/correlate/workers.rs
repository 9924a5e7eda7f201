//! The worker pools behind the event path, as the pipeline sees them: submit a job
//! with a ticket, get a result back on a channel. The work itself (analysis stage) is
//! injected, so tests can make it slow or fail on purpose.

use std::{path::PathBuf, sync::Arc};

use model_analysis::{HashBudget, Limits};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::{
    analyze::{
        access::FileRequest,
        pool::{Finished, PoolStatus, WorkerPool},
        work::{
            self, Analysis, AnalyzeJob, HashJob, Hashed, Identification, SignatureChecked, SignatureJob,
            VersionJob, VersionRead,
        },
    },
    enrich::snapshot::{HeldListeners, held_listeners},
};

/// The work functions, one per pool.
#[derive(Clone)]
pub struct WorkFns {
    pub identify: Arc<dyn Fn(FileRequest) -> Identification + Send + Sync>,
    pub analyze: Arc<dyn Fn(AnalyzeJob) -> Analysis + Send + Sync>,
    pub hash: Arc<dyn Fn(HashJob) -> Hashed + Send + Sync>,
    pub held: Arc<dyn Fn(u32) -> HeldListeners + Send + Sync>,
    pub signature: Arc<dyn Fn(SignatureJob) -> SignatureChecked + Send + Sync>,
    pub version: Arc<dyn Fn(VersionJob) -> VersionRead + Send + Sync>,
}

impl WorkFns {
    /// The real work: the analysis stage's jobs with the sensor's budgets.
    #[must_use]
    pub fn real(analysis: Limits, hash: HashBudget, proc_root: PathBuf) -> Self {
        let quick = work::identify_limits();
        Self {
            identify: Arc::new(move |request| work::identify(request, &quick)),
            analyze: Arc::new(move |job| work::analyze(job, &analysis)),
            hash: Arc::new(move |job| work::hash(job, &hash)),
            held: Arc::new(move |pid| held_listeners(&proc_root, pid)),
            signature: Arc::new(move |job| work::check_signature(&job, &hash)),
            version: Arc::new(|job| work::read_version(&job)),
        }
    }
}

/// Pool sizes.
#[derive(Clone, Copy, Debug)]
pub struct PoolSizes {
    pub identify_workers: usize,
    pub identify_queue: usize,
    pub analyze_workers: usize,
    pub analyze_queue: usize,
    /// `None`: hashing is off.
    pub hash_queue: Option<usize>,
}

impl Default for PoolSizes {
    fn default() -> Self {
        Self {
            identify_workers: 2,
            identify_queue: 1024,
            analyze_workers: 1,
            analyze_queue: 256,
            hash_queue: Some(256),
        }
    }
}

/// Handles on the pools.
pub struct Workers {
    pub(super) identify: WorkerPool<FileRequest>,
    pub(super) analyze: WorkerPool<AnalyzeJob>,
    pub(super) hash: Option<WorkerPool<HashJob>>,
    pub(super) held: WorkerPool<u32>,
    pub(super) signature: WorkerPool<SignatureJob>,
    pub(super) version: WorkerPool<VersionJob>,
    next_ticket: u64,
}

/// Where results arrive.
pub struct WorkReceivers {
    pub identified: UnboundedReceiver<Finished<Identification>>,
    pub analyzed: UnboundedReceiver<Finished<Analysis>>,
    pub hashed: UnboundedReceiver<Finished<Hashed>>,
    pub held: UnboundedReceiver<Finished<HeldListeners>>,
    pub signature: UnboundedReceiver<Finished<SignatureChecked>>,
    pub version: UnboundedReceiver<Finished<VersionRead>>,
}

impl Workers {
    /// Starts the pools (threads; no tokio runtime needed).
    #[must_use]
    pub fn spawn(fns: WorkFns, sizes: PoolSizes) -> (Self, WorkReceivers) {
        let (identified_tx, identified) = unbounded_channel();
        let (analyzed_tx, analyzed) = unbounded_channel();
        let (hashed_tx, hashed) = unbounded_channel();
        let (held_tx, held) = unbounded_channel();
        let (signature_tx, signature) = unbounded_channel();
        let (version_tx, version) = unbounded_channel();
        let WorkFns { identify, analyze, hash, held: held_fn, signature: signature_fn, version: version_fn } =
            fns;
        let workers = Self {
            identify: WorkerPool::spawn(
                "identify",
                sizes.identify_workers,
                sizes.identify_queue,
                move |job| identify(job),
                &identified_tx,
            ),
            analyze: WorkerPool::spawn(
                "analyze",
                sizes.analyze_workers,
                sizes.analyze_queue,
                move |job| analyze(job),
                &analyzed_tx,
            ),
            hash: sizes
                .hash_queue
                .map(|queue| WorkerPool::spawn("hash", 1, queue, move |job| hash(job), &hashed_tx)),
            held: WorkerPool::spawn("procfs", 1, 256, move |pid| held_fn(pid), &held_tx),
            signature: WorkerPool::spawn("signature", 1, 64, move |job| signature_fn(job), &signature_tx),
            version: WorkerPool::spawn("version", 1, 64, move |job| version_fn(job), &version_tx),
            next_ticket: 1,
        };
        (workers, WorkReceivers { identified, analyzed, hashed, held, signature, version })
    }

    /// A fresh ticket for a job.
    pub(super) fn ticket(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        ticket
    }

    /// A handle for reading status from another task.
    #[must_use]
    pub fn status_handle(&self) -> WorkersStatus {
        WorkersStatus {
            identify: self.identify.clone(),
            analyze: self.analyze.clone(),
            hash: self.hash.clone(),
            held: self.held.clone(),
            signature: self.signature.clone(),
            version: self.version.clone(),
        }
    }
}

/// Read-only view of the pools for status (clones of the handles).
#[derive(Clone)]
pub struct WorkersStatus {
    identify: WorkerPool<FileRequest>,
    analyze: WorkerPool<AnalyzeJob>,
    hash: Option<WorkerPool<HashJob>>,
    held: WorkerPool<u32>,
    signature: WorkerPool<SignatureJob>,
    version: WorkerPool<VersionJob>,
}

impl WorkersStatus {
    #[must_use]
    pub fn status(&self) -> Vec<PoolStatus> {
        let mut all = vec![self.identify.status(), self.analyze.status()];
        all.extend(self.hash.as_ref().map(WorkerPool::status));
        all.extend([self.held.status(), self.signature.status(), self.version.status()]);
        all
    }
}
