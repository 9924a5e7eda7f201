//! The kernel's `MARKED` map: processes whose every open, map and listen is forwarded.

use std::sync::{Arc, Mutex, PoisonError};

use aya::maps::{HashMap as BpfHashMap, MapData};

/// A shared handle on the map.
#[derive(Clone)]
pub struct RuntimeMarks {
    map: Arc<Mutex<BpfHashMap<MapData, u32, u32>>>,
}

impl RuntimeMarks {
    #[must_use]
    pub fn new(map: BpfHashMap<MapData, u32, u32>) -> Self {
        Self { map: Arc::new(Mutex::new(map)) }
    }

    /// Adds `flags` (`sensor_common::settings::mark`) to `tgid`'s mark.
    pub fn mark(&self, tgid: u32, flags: u32) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let current = map.get(&tgid, 0).unwrap_or(0);
        if let Err(error) = map.insert(&tgid, &(current | flags), 0) {
            tracing::warn!(tgid, %error, "cannot mark a runtime process (map full?)");
        }
    }

    /// Removes `tgid`'s mark (a client the kernel marked by its name).
    pub fn unmark(&self, tgid: u32) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = map.remove(&tgid);
    }

    /// Marked processes right now.
    #[must_use]
    pub fn count(&self) -> usize {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.keys().filter(Result::is_ok).count()
    }
}
