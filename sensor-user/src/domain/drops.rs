//! Every place where userspace drops or skips something, in one table: its name (in
//! `events_lost.by_counter`, `GetStatus.pipeline_counters` and the metrics) and what it
//! means. Nothing is dropped in silence: each path bumps its counter, and increases are
//! published as `events_lost` (source `LOSS_SOURCE_PIPELINE`).

use std::sync::atomic::{AtomicU64, Ordering};

/// A userspace drop or skip path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Drop {
    NotAModel,
    CandidateVanished,
    CandidateReplaced,
    IdentifyQueueFull,
    IdentifyTimeout,
    PendingOverflow,
    AnalysisQueueFull,
    AnalysisFailed,
    HashQueueFull,
    HashFailed,
    ListenerNotRuntime,
    MarkFailed,
    HeldListenersUnreadable,
}

impl Drop {
    /// Every path, in counter order.
    pub const ALL: [Self; 13] = [
        Self::NotAModel,
        Self::CandidateVanished,
        Self::CandidateReplaced,
        Self::IdentifyQueueFull,
        Self::IdentifyTimeout,
        Self::PendingOverflow,
        Self::AnalysisQueueFull,
        Self::AnalysisFailed,
        Self::HashQueueFull,
        Self::HashFailed,
        Self::ListenerNotRuntime,
        Self::MarkFailed,
        Self::HeldListenersUnreadable,
    ];

    /// The counter's name and what an increase means.
    #[must_use]
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::NotAModel => (
                "not_a_model",
                "a candidate the kernel forwarded is not a model (published as candidate_file with --all-candidates)",
            ),
            Self::CandidateVanished => (
                "candidate_vanished",
                "a candidate was gone (closed and deleted, or its process exited) before it could be read",
            ),
            Self::CandidateReplaced => (
                "candidate_replaced",
                "every route to a candidate led to another file or a special file: nothing was read",
            ),
            Self::IdentifyQueueFull => (
                "identify_queue_full",
                "the identification queue was full: the event was published unidentified (analysis SKIPPED_QUEUE_FULL)",
            ),
            Self::IdentifyTimeout => (
                "identify_timeout",
                "a candidate's content could not be read within the deadline (a slow or hostile filesystem): published unidentified",
            ),
            Self::PendingOverflow => (
                "pending_overflow",
                "too many records waited for one identification: the excess was published unidentified",
            ),
            Self::AnalysisQueueFull => (
                "analysis_queue_full",
                "the deep-analysis queue was full: the model was published with analysis SKIPPED_QUEUE_FULL",
            ),
            Self::AnalysisFailed => ("analysis_failed", "deep analysis could not run (a worker died)"),
            Self::HashQueueFull => {
                ("hash_queue_full", "the hashing queue was full: no SHA-256 for that model")
            }
            Self::HashFailed => {
                ("hash_failed", "the file changed while hashed, was above the size cap, or a read failed")
            }
            Self::ListenerNotRuntime => (
                "listener_not_runtime",
                "a listener forwarded on a provisional mark belonged to a process whose file was not a model",
            ),
            Self::MarkFailed => ("mark_failed", "a process could not be marked in the kernel (map full)"),
            Self::HeldListenersUnreadable => (
                "held_listeners_unreadable",
                "the listeners a newly marked process already held could not be read from /proc",
            ),
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        self.describe().0
    }
}

/// One counter per [`Drop`], shared by the stages.
#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; Drop::ALL.len()]);

impl DropCounters {
    pub fn add(&self, drop: Drop, n: u64) {
        self.0[drop as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn bump(&self, drop: Drop) {
        self.add(drop, 1);
    }

    #[must_use]
    pub fn get(&self, drop: Drop) -> u64 {
        self.0[drop as usize].load(Ordering::Relaxed)
    }

    /// `(name, value)` of every counter.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Drop::ALL.iter().map(|d| (d.name(), self.get(*d))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_counter_order_with_unique_names() {
        for (index, drop) in Drop::ALL.iter().enumerate() {
            assert_eq!(*drop as usize, index, "{drop:?}");
        }
        let mut names: Vec<_> = Drop::ALL.iter().map(|d| d.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Drop::ALL.len());
    }
}
