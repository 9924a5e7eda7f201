//! Bounded worker pools: deep work (opening files others control, parsing them,
//! hashing them) happens here, never on the event path. A full queue refuses the job
//! at once (the caller counts and reports it); a worker stuck on a hostile filesystem
//! shows in the pool's status (busy, oldest job age) instead of blocking anything.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    time::Instant,
};

use tokio::sync::mpsc::UnboundedSender;

/// A job's result, matched to its job by the caller's ticket. `None`: the job
/// panicked (a bug; the pool keeps running).
pub struct Finished<R> {
    pub ticket: u64,
    pub result: Option<R>,
}

/// What a pool looks like right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub name: &'static str,
    pub depth: u32,
    pub capacity: u32,
    pub workers: u32,
    pub busy: u32,
    pub oldest_job_ms: u32,
}

struct Shared {
    name: &'static str,
    depth: AtomicUsize,
    capacity: usize,
    busy: AtomicU32,
    /// Per worker: when its current job started (ms since `epoch`), 0 when idle.
    started_ms: Vec<AtomicU64>,
    epoch: Instant,
}

/// A fixed set of threads fed by a bounded queue.
pub struct WorkerPool<J> {
    queue: SyncSender<(u64, J)>,
    shared: Arc<Shared>,
}

impl<J> Clone for WorkerPool<J> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone(), shared: Arc::clone(&self.shared) }
    }
}

impl<J: Send + 'static> WorkerPool<J> {
    /// Starts `workers` threads running `work` on jobs; results go to `results`.
    #[must_use]
    pub fn spawn<R, F>(
        name: &'static str,
        workers: usize,
        capacity: usize,
        work: F,
        results: &UnboundedSender<Finished<R>>,
    ) -> Self
    where
        R: Send + 'static,
        F: Fn(J) -> R + Send + Sync + 'static,
    {
        let workers = workers.max(1);
        let (queue, jobs) = sync_channel::<(u64, J)>(capacity.max(1));
        let shared = Arc::new(Shared {
            name,
            depth: AtomicUsize::new(0),
            capacity: capacity.max(1),
            busy: AtomicU32::new(0),
            started_ms: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        });
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        let work = Arc::new(work);
        for index in 0..workers {
            let (jobs, work, results, shared) =
                (Arc::clone(&jobs), Arc::clone(&work), results.clone(), Arc::clone(&shared));
            let spawned = std::thread::Builder::new().name(format!("mw-{name}-{index}")).spawn(move || {
                loop {
                    let next = jobs.lock().map_or(None, |rx| rx.recv().ok());
                    let Some((ticket, job)) = next else { return };
                    shared.depth.fetch_sub(1, Ordering::Relaxed);
                    shared.busy.fetch_add(1, Ordering::Relaxed);
                    let now_ms = u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
                    shared.started_ms[index].store(now_ms, Ordering::Relaxed);
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(job))).ok();
                    shared.started_ms[index].store(0, Ordering::Relaxed);
                    shared.busy.fetch_sub(1, Ordering::Relaxed);
                    if results.send(Finished { ticket, result }).is_err() {
                        return;
                    }
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, pool = name, "cannot start a worker thread");
            }
        }
        Self { queue, shared }
    }

    /// Queues a job; a full queue hands it back at once.
    ///
    /// # Errors
    /// The queue is full (or the workers are gone): the job, untouched.
    pub fn try_submit(&self, ticket: u64, job: J) -> Result<(), J> {
        self.shared.depth.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send((ticket, job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full((_, job)) | TrySendError::Disconnected((_, job))) => {
                self.shared.depth.fetch_sub(1, Ordering::Relaxed);
                Err(job)
            }
        }
    }

    #[must_use]
    pub fn status(&self) -> PoolStatus {
        let s = &self.shared;
        let now_ms = u64::try_from(s.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let oldest = s
            .started_ms
            .iter()
            .map(|started| started.load(Ordering::Relaxed))
            .filter(|started| *started > 0)
            .map(|started| now_ms.saturating_sub(started))
            .max()
            .unwrap_or(0);
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        PoolStatus {
            name: s.name,
            depth: clamp(s.depth.load(Ordering::Relaxed)),
            capacity: clamp(s.capacity),
            workers: clamp(s.started_ms.len()),
            busy: s.busy.load(Ordering::Relaxed),
            oldest_job_ms: u32::try_from(oldest).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_results_come_back() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let held = Arc::clone(&gate);
        let pool = WorkerPool::spawn(
            "test",
            1,
            1,
            move |n: u32| {
                if n == 0 {
                    held.wait();
                }
                n * 2
            },
            &tx,
        );
        pool.try_submit(1, 0).expect("the worker takes it");
        // Wait until the worker holds job 1, then fill the one queue slot.
        while pool.status().busy == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        pool.try_submit(2, 5).expect("one queued");
        assert_eq!(pool.try_submit(3, 7), Err(7), "full: handed back");
        assert_eq!(pool.status().depth, 1);
        gate.wait();
        let first = rx.recv().await.expect("result");
        assert_eq!((first.ticket, first.result), (1, Some(0)));
        let second = rx.recv().await.expect("result");
        assert_eq!((second.ticket, second.result), (2, Some(10)));
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_pool_goes_on() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pool = WorkerPool::spawn("test", 1, 4, |n: u32| if n == 0 { panic!("boom") } else { n }, &tx);
        pool.try_submit(1, 0).expect("queued");
        pool.try_submit(2, 3).expect("queued");
        assert_eq!(rx.recv().await.map(|f| f.result), Some(None));
        assert_eq!(rx.recv().await.map(|f| f.result), Some(Some(3)));
    }
}
