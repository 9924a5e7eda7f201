//! The publish queue and the writer thread: the pipeline numbers and encodes an event
//! and queues it (microseconds, never I/O); the writer takes whatever accumulated,
//! writes it with one `write(2)` (a group commit: the busier the sensor, the larger the
//! batch), then shows it to readers.

use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, atomic::Ordering},
    time::{Duration, Instant},
};

use bytes::BytesMut;

use super::{Record, Shared, frame, store::Appender};

/// Encoded events are carved out of 64 KiB chunks (one allocation per chunk, not per
/// event); a chunk is freed when the last event in it is dropped.
const ARENA_CHUNK: usize = 64 << 10;

pub(super) struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    next_seq: u64,
    pending: Vec<Record>,
    arena: BytesMut,
    writer_waiting: bool,
    closed: bool,
}

impl Queue {
    pub(super) fn new(next_seq: u64) -> Self {
        Self {
            state: Mutex::new(QueueState {
                next_seq,
                pending: Vec::with_capacity(1024),
                arena: BytesMut::with_capacity(ARENA_CHUNK),
                writer_waiting: false,
                closed: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Assigns the next sequence number and queues what `build` makes of it. Under the
    /// lock, so the queue is in sequence order whoever publishes.
    pub(super) fn push(&self, build: impl FnOnce(u64, &mut BytesMut) -> Record) -> u64 {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        if state.arena.capacity() < 4096 {
            state.arena = BytesMut::with_capacity(ARENA_CHUNK);
        }
        let record = build(seq, &mut state.arena);
        state.pending.push(record);
        if state.writer_waiting {
            state.writer_waiting = false;
            self.wake.notify_one();
        }
        seq
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Swaps the queued records into `batch`, waiting up to `wait` for some. `false`
    /// once closed and drained.
    fn take(&self, batch: &mut Vec<Record>, wait: Duration) -> bool {
        let mut state = self.lock();
        if state.pending.is_empty() && !state.closed {
            state.writer_waiting = true;
            state = self.wake.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
            state.writer_waiting = false;
        }
        std::mem::swap(&mut state.pending, batch);
        !(state.closed && batch.is_empty())
    }
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    appender: Appender,
    sync_interval: Duration,
) -> std::thread::JoinHandle<()> {
    let run = move || write_loop(&shared, appender, sync_interval);
    std::thread::Builder::new()
        .name("modelwatch-log".into())
        .spawn(run)
        .unwrap_or_else(|error| panic!("cannot start the event log writer thread: {error}"))
}

fn write_loop(shared: &Shared, mut appender: Appender, sync_interval: Duration) {
    let mut batch = Vec::with_capacity(1024);
    let mut frames = Vec::with_capacity(1 << 20);
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    let mut last_warning: Option<Instant> = None;
    while shared.queue.take(&mut batch, sync_interval) {
        if let Some(last) = batch.last().map(|r| r.seq) {
            frames.clear();
            for record in &batch {
                frame::encode(&mut frames, record.seq, record.meta, &record.bytes);
            }
            if let Err(error) = shared.store.append(&mut appender, &frames, last) {
                // The live stream goes on from memory; readers that need these from the
                // files later are told they are missing.
                shared.write_errors.fetch_add(1, Ordering::Relaxed);
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::error!(%error, "cannot write to the event log; events are streamed but not kept");
                    last_warning = Some(Instant::now());
                }
            }
            unsynced = true;
            show(shared, &mut batch, last);
        }
        if unsynced && last_sync.elapsed() >= sync_interval {
            appender.sync();
            unsynced = false;
            last_sync = Instant::now();
        }
        if frames.capacity() > 8 << 20 {
            frames = Vec::with_capacity(1 << 20);
        }
    }
    appender.sync();
}

/// Puts the batch in the memory window and tells readers.
fn show(shared: &Shared, batch: &mut Vec<Record>, last: u64) {
    {
        let mut ring = shared.ring.lock().unwrap_or_else(PoisonError::into_inner);
        for record in batch.drain(..) {
            if ring.len() == shared.memory_events {
                ring.pop_front();
            }
            ring.push_back(record);
        }
    }
    shared.visible.send_replace(last);
}
