//! Drains the BPF ring buffer without blocking the runtime and hands decoded records
//! to the pipeline. When the pipeline is slow, the drain waits: the ring buffer then
//! fills and the kernel counts what it drops (see `counters`), so nothing is lost
//! silently in userspace.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{Array, MapData, RingBuf};
use sensor_common::decode::{Record, decode};
use tokio::{io::unix::AsyncFd, sync::mpsc};

/// Records that could not be decoded (a build mismatch or a kernel bug).
#[derive(Debug, Default)]
pub struct DrainStats {
    pub received: AtomicU64,
    pub undecodable: AtomicU64,
}

/// How long an event may wait in the ring while records flow (the kernel does not wake
/// us for each one; see `emit.rs`).
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// Empty ticks in a row before the drain stops its timer and asks the kernel to wake it
/// on the next record: an idle sensor then costs no wake-ups at all.
const IDLE_TICKS_BEFORE_SLEEP: u32 = 20;

/// The kernel's "wake me on the next record" flag.
pub struct SleepFlag(Array<MapData, u32>);

impl SleepFlag {
    #[must_use]
    pub fn new(map: Array<MapData, u32>) -> Self {
        Self(map)
    }

    fn set(&mut self, asleep: bool) -> bool {
        self.0.set(0, &u32::from(asleep), 0).is_ok()
    }
}

/// Runs until the receiver is dropped.
///
/// # Errors
/// The ring buffer's descriptor cannot be polled.
pub async fn drain(
    ring: RingBuf<MapData>,
    mut sleep: SleepFlag,
    sink: mpsc::Sender<Record>,
    stats: Arc<DrainStats>,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer owns its descriptor and lives inside the AsyncFd, so the
    // descriptor stays open for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|error| error.into_parts().1)?;
    let mut batch = Vec::with_capacity(256);
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle_ticks = 0;
    loop {
        let Some(taken) = empty_ring(ring.get_mut(), &mut batch, &sink, &stats).await else { return Ok(()) };
        idle_ticks = if taken == 0 { idle_ticks + 1 } else { 0 };
        if idle_ticks < IDLE_TICKS_BEFORE_SLEEP || !sleep.set(true) {
            tokio::select! {
                guard = ring.readable_mut() => guard?.clear_ready(),
                _ = tick.tick() => {}
            }
            continue;
        }
        // A record written before the flag went up would otherwise wait for the next.
        let Some(taken) = empty_ring(ring.get_mut(), &mut batch, &sink, &stats).await else { return Ok(()) };
        if taken == 0 {
            ring.readable_mut().await?.clear_ready();
        }
        sleep.set(false);
        idle_ticks = 0;
        tick.reset();
    }
}

/// Hands on every record in the ring, a batch at a time; how many, or `None` once
/// the pipeline is gone.
async fn empty_ring(
    ring: &mut RingBuf<MapData>,
    batch: &mut Vec<Record>,
    sink: &mpsc::Sender<Record>,
    stats: &DrainStats,
) -> Option<usize> {
    let mut taken = 0;
    loop {
        let empty = take_batch(ring, batch, stats);
        taken += batch.len();
        stats.received.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for record in batch.drain(..) {
            sink.send(record).await.ok()?;
        }
        if empty {
            return Some(taken);
        }
    }
}

/// Decodes up to a batch of records; true when the ring is empty.
fn take_batch(ring: &mut RingBuf<MapData>, batch: &mut Vec<Record>, stats: &DrainStats) -> bool {
    while batch.len() < 256 {
        let Some(item) = ring.next() else { return true };
        match decode(&item) {
            Ok(record) => batch.push(record),
            Err(error) => {
                stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "dropping an undecodable kernel record");
            }
        }
    }
    false
}
