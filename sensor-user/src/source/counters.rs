//! The kernel's per-CPU counters, summed, and the loss they report.

use aya::maps::{MapData, PerCpuArray};
use sensor_common::counters::{self, COUNT, LOST, NAMES};

/// Totals of every kernel counter at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot(pub [u64; COUNT as usize]);

impl CounterSnapshot {
    #[must_use]
    pub fn get(&self, index: u32) -> u64 {
        self.0[index as usize]
    }

    /// Records dropped because the ring buffer was full, all kinds together.
    #[must_use]
    pub fn lost(&self) -> u64 {
        LOST.iter().map(|index| self.get(*index)).sum()
    }

    /// Records written to the ring buffer.
    #[must_use]
    pub fn forwarded(&self) -> u64 {
        counters::FORWARDED.iter().map(|index| self.get(*index)).sum()
    }

    /// `(name, value)` pairs for status and metrics.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        NAMES.iter().copied().zip(self.0.iter().copied())
    }

    /// Per-kind loss since `earlier`, as `(counter name, dropped)` where non-zero.
    #[must_use]
    pub fn lost_since(&self, earlier: &Self) -> Vec<(&'static str, u64)> {
        LOST.iter()
            .map(|index| (NAMES[*index as usize], self.get(*index).saturating_sub(earlier.get(*index))))
            .filter(|(_, dropped)| *dropped > 0)
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
