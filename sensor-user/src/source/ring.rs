//! Drains the BPF ring buffer without blocking the runtime and hands decoded records
//! to the pipeline. When the pipeline is slow, the drain waits: the ring buffer then
//! fills and the kernel counts what it drops (see `counters`), so nothing is lost
//! silently in userspace.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{MapData, RingBuf};
use sensor_common::decode::{Record, decode};
use tokio::{io::unix::AsyncFd, sync::mpsc};

/// Records that could not be decoded (a build mismatch or a kernel bug).
#[derive(Debug, Default)]
pub struct DrainStats {
    pub received: AtomicU64,
    pub undecodable: AtomicU64,
}

/// Runs until the receiver is dropped.
///
/// # Errors
/// The ring buffer's descriptor cannot be polled.
pub async fn drain(
    ring: RingBuf<MapData>,
    sink: mpsc::Sender<Record>,
    stats: Arc<DrainStats>,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer owns its descriptor and lives inside the AsyncFd, so the
    // descriptor stays open for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|error| error.into_parts().1)?;
    let mut batch = Vec::with_capacity(256);
    // The kernel wakes us only when the ring fills up (see `emit.rs`); the tick bounds
    // how long a lone event waits.
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => guard?.clear_ready(),
            _ = tick.tick() => {}
        }
        // Empty the ring, a batch at a time, handing each on before reading more.
        loop {
            let empty = take_batch(ring.get_mut(), &mut batch, &stats);
            stats.received.fetch_add(batch.len() as u64, Ordering::Relaxed);
            for record in batch.drain(..) {
                if sink.send(record).await.is_err() {
                    return Ok(());
                }
            }
            if empty {
                break;
            }
        }
    }
}

/// How long an event may wait in the ring when the kernel does not wake us.
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

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
