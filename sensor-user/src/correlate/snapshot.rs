//! The start-up snapshot, as the pipeline sees it: every running process fills the
//! process cache; runtimes (by name) and processes that have a candidate mapped are
//! reported (`snapshot: true`), their mappings identified like any record, and the
//! listeners they hold read by a worker. So a model loaded before the sensor started
//! is not missed, whatever its process is called.

use std::path::PathBuf;

use sensor_common::settings::mark;

use super::{Pipeline, convert, files::Waiting, process::exec_payload};
use crate::{
    analyze::{access::FileRequest, runtime::classify},
    domain::FileKey,
    enrich::snapshot::{Mapping, SnapshotItem},
};

impl Pipeline {
    pub(super) fn on_snapshot(&mut self, item: SnapshotItem) {
        let SnapshotItem { mut info, mappings } = item;
        let pid = info.pid;
        // A process already seen by the kernel meanwhile keeps what the kernel said.
        if self.processes.peek(pid).is_some() {
            return;
        }
        info.runtime = classify(&info.exe, &info.argv);
        let runtime = info.runtime.clone();
        let info = self.processes.insert(info);
        let Some(runtime) = runtime else {
            for mapping in &mappings {
                self.snapshot_mapping(pid, mapping);
            }
            return;
        };
        if runtime.role.loads_models() {
            self.set_mark(pid, |bits| bits | mark::RUNTIME);
        }
        self.published.insert(pid);
        let payload = exec_payload(Some(&runtime), false, true);
        self.publish(0, Some(convert::process(&info, pid)), payload);
        if runtime.role.loads_models() {
            for mapping in &mappings {
                self.snapshot_mapping(pid, mapping);
            }
            self.snapshot_pids.insert(pid);
            self.request_held_listeners(pid);
        }
    }

    /// A candidate mapped before the sensor started: identified through the mapping.
    fn snapshot_mapping(&mut self, pid: u32, mapping: &Mapping) {
        let Some(info) = self.processes.peek(pid) else { return };
        let path = mapping.path.to_string_lossy().into_owned();
        let waiting = Waiting {
            mapped: true,
            pid,
            ktime_ns: 0,
            process: convert::process(&info, pid),
            path: path.clone(),
            path_truncated: false,
            deleted: false,
            reasons: vec!["snapshot".into()],
            fd: -1,
            open_flags: 0,
            write: false,
            mmap: sensor_common::MmapFields {
                addr: mapping.start,
                len: mapping.end - mapping.start,
                pgoff: mapping.offset / 4096,
                prot: mapping.prot,
                flags: 0,
            },
            repeats: 0,
            snapshot: true,
        };
        let key = FileKey::from_stamp(&mapping.stamp);
        let request = FileRequest {
            pid,
            fd: None,
            mapping: Some((mapping.start, mapping.end - mapping.start)),
            path: PathBuf::from(path),
            key,
            same_mount_ns: false,
        };
        self.on_candidate(request, waiting);
    }
}
