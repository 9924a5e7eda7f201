//! The start-up snapshot: what already runs when the sensor starts. Runtimes are
//! classified and marked, and what they already mapped and listen on is reported, so a
//! model loaded before the sensor started is not missed. Every event it produces says
//! `snapshot: true`.

use std::{collections::HashSet, os::unix::fs::MetadataExt as _, path::PathBuf, sync::Arc};

use procfs::process::{FDTarget, MMapPath, Process};
use proto::v1::{ListenerOpened, ModelFileMapped, event::Payload};
use sensor_common::{EventHeader, settings::mark};

use super::{Pipeline, convert, listener::exposure};
use crate::{
    analyze::{identify::FileKey, runtime::classify},
    enrich::process::{ProcessInfo, from_procfs},
};

impl Pipeline {
    /// Classifies every running process; for runtimes, reports their mapped models and
    /// listeners.
    pub(super) async fn snapshot_running_processes(&mut self) {
        let Ok(entries) = std::fs::read_dir("/proc") else { return };
        let me = std::process::id();
        let pids: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|p| *p != me)
            .collect();
        for pid in pids {
            let Some(mut info) = from_procfs(std::path::Path::new("/proc"), pid) else { continue };
            info.runtime = classify(&info.exe, &info.argv);
            let Some(runtime) = info.runtime.clone() else { continue };
            if runtime.role.loads_models() {
                self.mark(pid, mark::RUNTIME);
            }
            let info = self.processes.insert(info);
            self.published.insert(pid, ());
            let payload = super::process::exec_payload(Some(&runtime), false, true);
            self.publish(0, Some(convert::process(&info, pid)), payload);
            if runtime.role.loads_models() {
                self.snapshot_mappings(&info).await;
                self.snapshot_listeners(&info);
            }
        }
    }

    async fn snapshot_mappings(&mut self, info: &Arc<ProcessInfo>) {
        let pid = info.pid;
        let Ok(maps) = Process::new(pid.cast_signed()).and_then(|p| p.maps()) else { return };
        let header = EventHeader { tgid: pid, tid: pid, ..EventHeader::default() };
        let mut seen = HashSet::new();
        for map in maps {
            let MMapPath::Path(path) = &map.pathname else { continue };
            if map.inode == 0 || !seen.insert((map.dev, map.inode)) {
                continue;
            }
            let (start, end) = map.address;
            // The mapping itself, whatever became of its path since.
            let via_map = PathBuf::from(format!("/proc/{pid}/map_files/{start:x}-{end:x}"));
            let Ok(meta) = std::fs::metadata(&via_map) else { continue };
            if !meta.is_file() || !self.options.candidates.matches(path, meta.len()) {
                continue;
            }
            let key = FileKey {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
                mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            };
            let path_text = path.display().to_string();
            let candidates = || vec![via_map, PathBuf::from(format!("/proc/{pid}/root{path_text}"))];
            let Some(file) = self.model_file(&header, candidates, key, &path_text).await else { continue };
            self.adopt_as_runtime(&header);
            let payload = Payload::ModelFileMapped(ModelFileMapped {
                file: Some(file),
                address: start,
                length: end - start,
                offset: map.offset,
                prot: prot_bits(&map.perms),
                flags: 0,
                reasons: vec!["marked_runtime".into()],
                snapshot: true,
            });
            let info = self.processes.lookup(&header);
            self.publish(0, Some(convert::process(&info, pid)), payload);
        }
    }

    fn snapshot_listeners(&mut self, info: &Arc<ProcessInfo>) {
        let Ok(process) = Process::new(info.pid.cast_signed()) else { return };
        let Ok(fds) = process.fd() else { return };
        let sockets: HashSet<u64> = fds
            .flatten()
            .filter_map(|fd| match fd.target {
                FDTarget::Socket(inode) => Some(inode),
                _ => None,
            })
            .collect();
        // The process's own network namespace.
        let tables = [(process.tcp(), "ipv4"), (process.tcp6(), "ipv6")];
        for (table, family) in tables {
            for entry in table.into_iter().flatten() {
                if entry.state != procfs::net::TcpState::Listen || !sockets.contains(&entry.inode) {
                    continue;
                }
                let address = entry.local_address;
                let payload = Payload::ListenerOpened(ListenerOpened {
                    port: u32::from(address.port()),
                    address: address.ip().to_string(),
                    exposure: exposure(address.ip()).into(),
                    family: family.to_owned(),
                    protocol: "tcp".to_owned(),
                    reasons: vec!["marked_runtime".into()],
                    snapshot: true,
                });
                self.publish(0, Some(convert::process(info, info.pid)), payload);
            }
        }
    }
}

/// `r-xp` -> PROT_READ | PROT_EXEC.
fn prot_bits(perms: &procfs::process::MMPermissions) -> u32 {
    use procfs::process::MMPermissions as P;
    let mut prot = 0;
    for (flag, bit) in
        [(P::READ, libc::PROT_READ), (P::WRITE, libc::PROT_WRITE), (P::EXECUTE, libc::PROT_EXEC)]
    {
        if perms.contains(flag) {
            prot |= bit.cast_unsigned();
        }
    }
    prot
}
