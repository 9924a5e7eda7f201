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
    loop {
        let mut guard = ring.readable_mut().await?;
        let ring = guard.get_inner_mut();
        // Decode a batch while holding the ring, send after: the ring item must be
        // released before awaiting.
        while batch.len() < 256 {
            let Some(item) = ring.next() else { break };
            match decode(&item) {
                Ok(record) => batch.push(record),
                Err(error) => {
                    stats.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "dropping an undecodable kernel record");
                }
            }
        }
        if batch.len() < 256 {
            guard.clear_ready();
        }
        stats.received.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for record in batch.drain(..) {
            if sink.send(record).await.is_err() {
                return Ok(());
            }
        }
    }
}
