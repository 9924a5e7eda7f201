//! Processes caught loading a candidate model, before anyone knows whether it is one.
//! The kernel marks such a process provisionally the moment it forwards the record, so
//! a listener opened microseconds later is forwarded too; that listener waits here
//! until the process's pending identifications are known: published if one of them
//! was a model, dropped (and counted) if none was.

use std::collections::HashMap;

use sensor_common::ListenEvent;

#[derive(Debug, Default)]
struct LoaderState {
    /// Identifications of this process's candidate loads still running.
    pending: u32,
    /// One of its loads was a model.
    confirmed: bool,
    /// Listeners forwarded on the provisional mark alone, waiting for the verdict.
    held: Vec<ListenEvent>,
}

/// What became of a process once its last pending identification was known.
#[derive(Debug)]
pub(super) struct Resolution {
    pub(super) confirmed: bool,
    pub(super) held: Vec<ListenEvent>,
}

/// Most listeners held per process: a process that opens thousands of listeners while
/// its loads are identified does not make this grow without bound.
const MAX_HELD: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Loaders {
    by_pid: HashMap<u32, LoaderState>,
}

impl Loaders {
    /// A candidate load by `pid` is being identified.
    pub(super) fn start(&mut self, pid: u32) {
        self.by_pid.entry(pid).or_default().pending += 1;
    }

    /// One of `pid`'s loads is known: a model or not. Returns the resolution once no
    /// load of it is pending any more.
    pub(super) fn resolve(&mut self, pid: u32, model: bool) -> Option<Resolution> {
        let state = self.by_pid.get_mut(&pid)?;
        state.pending = state.pending.saturating_sub(1);
        state.confirmed |= model;
        if state.pending > 0 {
            return None;
        }
        let held = std::mem::take(&mut state.held);
        let confirmed = state.confirmed;
        if !confirmed {
            self.by_pid.remove(&pid);
        }
        Some(Resolution { confirmed, held })
    }

    /// A process whose load turned out to be a model (a cache hit needs no wait).
    pub(super) fn confirm(&mut self, pid: u32) {
        self.by_pid.entry(pid).or_default().confirmed = true;
    }

    #[must_use]
    pub(super) fn is_confirmed(&self, pid: u32) -> bool {
        self.by_pid.get(&pid).is_some_and(|s| s.confirmed)
    }

    /// Holds a listener while `pid` has loads pending; false when nothing is pending
    /// (the caller decides at once). A full hold list refuses (the caller counts it).
    pub(super) fn hold(&mut self, pid: u32, listen: &ListenEvent) -> Option<bool> {
        let state = self.by_pid.get_mut(&pid)?;
        if state.pending == 0 {
            return None;
        }
        if state.held.len() >= MAX_HELD {
            return Some(false);
        }
        state.held.push(*listen);
        Some(true)
    }

    pub(super) fn forget(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }
}
