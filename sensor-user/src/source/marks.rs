//! The kernel's `MARKED` map: processes whose every open, map and listen is forwarded.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{HashMap as BpfHashMap, MapData};

/// A shared handle on the map.
#[derive(Clone)]
pub struct RuntimeMarks {
    map: Arc<Mutex<BpfHashMap<MapData, u32, u32>>>,
    /// Marks that could not be written (the map was full): counted and reported.
    pub failed: Arc<AtomicU64>,
}

impl RuntimeMarks {
    #[must_use]
    pub fn new(map: BpfHashMap<MapData, u32, u32>) -> Self {
        Self { map: Arc::new(Mutex::new(map)), failed: Arc::default() }
    }

    /// Rewrites `tgid`'s mark bits (`sensor_common::settings::mark`) with `change`; a
    /// result of 0 removes the mark. Returns the new bits.
    pub fn update(&self, tgid: u32, change: impl FnOnce(u32) -> u32) -> u32 {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let current = map.get(&tgid, 0).unwrap_or(0);
        let next = change(current);
        if next == current {
            return next;
        }
        if next == 0 {
            let _ = map.remove(&tgid);
        } else if let Err(error) = map.insert(&tgid, &next, 0) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tgid, %error, "cannot mark a runtime process (map full?)");
        }
        next
    }

    /// Marked processes right now.
    #[must_use]
    pub fn count(&self) -> usize {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.keys().filter(Result::is_ok).count()
    }
}
