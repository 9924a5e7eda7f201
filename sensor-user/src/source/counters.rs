//! The kernel's per-CPU counters, summed, and the loss they report.

use aya::maps::{MapData, PerCpuArray};
use sensor_common::counters::{COUNT, Role, TABLE};

/// Totals of every kernel counter at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot(pub [u64; COUNT as usize]);

impl CounterSnapshot {
    #[must_use]
    pub fn get(&self, index: u32) -> u64 {
        self.0[index as usize]
    }

    /// Sum of the counters with `role`.
    #[must_use]
    pub fn total(&self, role: Role) -> u64 {
        TABLE.iter().filter(|c| c.role == role).map(|c| self.get(c.index)).sum()
    }

    /// Records dropped because a ring buffer was full, all kinds together.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.total(Role::Lost)
    }

    /// Records written to the ring buffers.
    #[must_use]
    pub fn forwarded(&self) -> u64 {
        self.total(Role::Forwarded)
    }

    /// `(name, value)` pairs for status and metrics.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        TABLE.iter().map(|c| (c.name, self.get(c.index)))
    }

    /// Increases since `earlier` of the counters with `role`, as `(name, increase)`
    /// where non-zero.
    #[must_use]
    pub fn increases(&self, earlier: &Self, role: Role) -> Vec<(&'static str, u64)> {
        TABLE
            .iter()
            .filter(|c| c.role == role)
            .map(|c| (c.name, self.get(c.index).saturating_sub(earlier.get(c.index))))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Reads the `COUNTERS` map.
pub struct KernelCounters {
    map: PerCpuArray<MapData, u64>,
}

impl KernelCounters {
    #[must_use]
    pub fn new(map: PerCpuArray<MapData, u64>) -> Self {
        Self { map }
    }

    /// Sums every counter across CPUs. A counter that cannot be read reads as zero.
    #[must_use]
    pub fn snapshot(&self) -> CounterSnapshot {
        let mut totals = [0u64; COUNT as usize];
        for (index, total) in (0..COUNT).zip(totals.iter_mut()) {
            if let Ok(values) = self.map.get(&index, 0) {
                *total = values.iter().sum();
            }
        }
        CounterSnapshot(totals)
    }
}
