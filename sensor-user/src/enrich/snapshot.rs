//! What already runs when the sensor starts, read from procfs off the event path: every
//! process (to fill the process cache), the candidate files each one has mapped, and,
//! on request, the TCP listeners a process holds. The correlation stage decides what
//! of it to publish.

use std::{
    collections::HashSet,
    net::IpAddr,
    path::{Path, PathBuf},
};

use procfs::process::{FDTarget, MMapPath, Process};
use tokio::sync::mpsc;

use super::process::{ProcessInfo, from_procfs};

/// A file mapped by a running process.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// Its path in the process's mount namespace.
    pub path: PathBuf,
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub prot: u32,
    /// The mapped file's identity, from `fstat` of the mapping (nothing is opened).
    pub stamp: model_analysis::FileStamp,
}

/// One running process and its candidate mappings.
#[derive(Clone, Debug)]
pub struct SnapshotItem {
    pub info: ProcessInfo,
    pub mappings: Vec<Mapping>,
}

/// Reads every process (but `me`) and sends one item each; `is_candidate(path, size)`
/// picks the mappings worth identifying. Blocking: run it on a blocking thread.
pub fn read_running(
    proc_root: &Path,
    me: u32,
    is_candidate: &dyn Fn(&Path, u64) -> bool,
    items: &mpsc::Sender<SnapshotItem>,
) {
    let Ok(entries) = std::fs::read_dir(proc_root) else { return };
    let pids: Vec<u32> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|p| *p != me).collect();
    for pid in pids {
        let Some(info) = from_procfs(proc_root, pid) else { continue };
        let mappings = candidate_mappings(proc_root, pid, is_candidate);
        if items.blocking_send(SnapshotItem { info, mappings }).is_err() {
            return;
        }
    }
}

/// Most mappings looked at per process: a process with millions of mappings must not
/// hold up the snapshot.
const MAX_MAPPINGS: usize = 65_536;

fn candidate_mappings(proc_root: &Path, pid: u32, is_candidate: &dyn Fn(&Path, u64) -> bool) -> Vec<Mapping> {
    let Ok(maps) = Process::new_with_root(proc_root.join(pid.to_string())).and_then(|p| p.maps()) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for map in maps.into_iter().take(MAX_MAPPINGS) {
        let MMapPath::Path(path) = &map.pathname else { continue };
        if map.inode == 0 || !seen.insert((map.dev, map.inode)) {
            continue;
        }
        let (start, end) = map.address;
        let link = proc_root.join(format!("{pid}/map_files/{start:x}-{end:x}"));
        // lstat of the link's target through an O_PATH handle: nothing is opened.
        let Some(stamp) = regular_stamp(&link) else { continue };
        if !is_candidate(path, stamp.size) {
            continue;
        }
        out.push(Mapping {
            path: path.clone(),
            start,
            end,
            offset: map.offset,
            prot: prot_bits(&map.perms),
            stamp,
        });
    }
    out
}

fn regular_stamp(link: &Path) -> Option<model_analysis::FileStamp> {
    use rustix::fs::{Mode, OFlags};
    let handle = rustix::fs::open(link, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let stat = rustix::fs::fstat(&handle).ok()?;
    (stat.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| model_analysis::FileStamp::from_stat(&stat))
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

/// A TCP listener a process holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeldListener {
    pub port: u16,
    pub address: IpAddr,
}

/// The listeners a process holds, read from its socket descriptors and its network
/// namespace's TCP tables.
#[derive(Debug)]
pub struct HeldListeners {
    pub pid: u32,
    pub listeners: Result<Vec<HeldListener>, String>,
}

/// Most TCP table entries read: a namespace with a million sockets must not stall this.
const MAX_TCP_ENTRIES: usize = 262_144;

/// Reads the listeners `pid` holds. Blocking.
#[must_use]
pub fn held_listeners(proc_root: &Path, pid: u32) -> HeldListeners {
    HeldListeners { pid, listeners: read_held(proc_root, pid).map_err(|e| e.to_string()) }
}

fn read_held(proc_root: &Path, pid: u32) -> procfs::ProcResult<Vec<HeldListener>> {
    let process = Process::new_with_root(proc_root.join(pid.to_string()))?;
    let sockets: HashSet<u64> = process
        .fd()?
        .flatten()
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for table in [process.tcp(), process.tcp6()] {
        for entry in table.into_iter().flatten().take(MAX_TCP_ENTRIES) {
            if entry.state == procfs::net::TcpState::Listen && sockets.contains(&entry.inode) {
                out.push(HeldListener {
                    port: entry.local_address.port(),
                    address: entry.local_address.ip(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_listener_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = held_listeners(Path::new("/proc"), std::process::id());
        let listeners = held.listeners.expect("procfs");
        assert!(listeners.iter().any(|l| l.port == port), "{listeners:?}");
    }
}
