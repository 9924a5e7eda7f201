//! Drains the two BPF ring buffers (file records; process and listener records) without
//! blocking the runtime and hands decoded records to the pipeline, each batch in kernel
//! time order so that an exec is seen before the opens that follow it. When the
//! pipeline is slow, the drain waits: the rings then fill and the kernel counts what it
//! drops (see `counters`), so nothing is lost silently in userspace. The process ring
//! is drained first and separately, so a flood of file records never delays it.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{Array, MapData, RingBuf};
use sensor_common::decode::{Record, decode};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use super::ring_fill::RingFill;

/// What the drain saw: records received, records it could not decode (a build mismatch
/// or a kernel bug), and how full the rings were.
#[derive(Debug, Default)]
pub struct DrainStats {
    pub received: AtomicU64,
    pub undecodable: AtomicU64,
    /// The rings' fill gauges (none where the kernel refused the extra mapping).
    pub rings: Vec<RingFill>,
}

/// How long an event may wait in a ring while records flow (the kernel does not wake
/// us for each one; see `emit.rs`).
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// Empty ticks in a row before the drain stops its timer and asks the kernel to wake it
/// on the next record: an idle sensor then costs no wake-ups at all.
const IDLE_TICKS_BEFORE_SLEEP: u32 = 20;

/// Records taken from the file ring per pass, so that a file flood cannot keep the
/// process ring waiting.
const FILE_BATCH: usize = 512;

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

/// The two rings.
pub struct Rings {
    pub processes: RingBuf<MapData>,
    pub files: RingBuf<MapData>,
}

/// Runs until the receiver is dropped (`Ok`), or the rings cannot be polled.
///
/// # Errors
/// A ring buffer's descriptor cannot be polled.
pub async fn drain(
    rings: Rings,
    mut sleep: SleepFlag,
    sink: mpsc::Sender<Record>,
    stats: Arc<DrainStats>,
) -> std::io::Result<()> {
    let register = |ring| {
        // SAFETY: the ring buffer owns its descriptor and lives inside the AsyncFd, so
        // the descriptor stays open for as long as it is registered.
        unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|error| error.into_parts().1)
    };
    let mut processes = register(rings.processes)?;
    let mut files = register(rings.files)?;
    let mut batch = Vec::with_capacity(FILE_BATCH * 2);
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle_ticks = 0;
    loop {
        for ring in &stats.rings {
            ring.sample();
        }
        let Some(taken) = empty_rings(processes.get_mut(), files.get_mut(), &mut batch, &sink, &stats).await
        else {
            return Ok(());
        };
        idle_ticks = if taken == 0 { idle_ticks + 1 } else { 0 };
        if idle_ticks < IDLE_TICKS_BEFORE_SLEEP || !sleep.set(true) {
            tokio::select! {
                guard = processes.readable_mut() => guard?.clear_ready(),
                guard = files.readable_mut() => guard?.clear_ready(),
                _ = tick.tick() => {}
            }
            continue;
        }
        // A record written before the flag went up would otherwise wait for the next.
        let Some(taken) = empty_rings(processes.get_mut(), files.get_mut(), &mut batch, &sink, &stats).await
        else {
            return Ok(());
        };
        if taken == 0 {
            tokio::select! {
                guard = processes.readable_mut() => guard?.clear_ready(),
                guard = files.readable_mut() => guard?.clear_ready(),
            }
        }
        sleep.set(false);
        idle_ticks = 0;
        tick.reset();
    }
}

/// Hands on every record in both rings; how many, or `None` once the pipeline is gone.
/// Each pass takes all process records and at most a batch of file records, merged in
/// kernel time order.
async fn empty_rings(
    processes: &mut RingBuf<MapData>,
    files: &mut RingBuf<MapData>,
    batch: &mut Vec<Record>,
    sink: &mpsc::Sender<Record>,
    stats: &DrainStats,
) -> Option<usize> {
    let mut taken = 0;
    loop {
        take(processes, usize::MAX, batch, stats);
        let files_left = take(files, FILE_BATCH, batch, stats);
        if batch.is_empty() {
            return Some(taken);
        }
        batch.sort_by_key(|record| record.header().ktime_ns);
        taken += batch.len();
        stats.received.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for record in batch.drain(..) {
            sink.send(record).await.ok()?;
        }
        // Loop until a pass finds both rings empty; `files_left` only says the file
        // ring was cut short this time.
        let _ = files_left;
    }
}

/// Decodes up to `max` records from `ring` into `batch`; true when more may remain.
fn take(ring: &mut RingBuf<MapData>, max: usize, batch: &mut Vec<Record>, stats: &DrainStats) -> bool {
    let mut n = 0;
    while n < max {
        let Some(item) = ring.next() else { return false };
        n += 1;
        match decode(&item) {
            Ok(record) => batch.push(record),
            Err(error) => {
                stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "dropping an undecodable kernel record");
            }
        }
    }
    true
}
