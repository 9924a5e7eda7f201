//! The process cache: pid -> what the process is. Filled from exec events (exact, from
//! the kernel) and from a [`ProcView`] (procfs) on a miss; bounded (LRU) and pruned on
//! exit. The view is injected so that the pipeline runs without root or a real /proc.
//! Each entry also says which container and pod it runs in (its workload), resolved
//! once per process and again when the kernel reports it in another cgroup.

use std::{num::NonZeroUsize, path::PathBuf, sync::Arc};

use lru::LruCache;
use sensor_common::EventHeader;

use super::{
    container::container_id,
    pod::{PodDirectory, PodIdentity},
};
use crate::domain::Classification;

/// Where the cache learns about processes it has not seen exec.
pub trait ProcView: Send + 'static {
    /// What the system says about a live process; `None` when it is gone.
    fn process(&self, pid: u32) -> Option<ProcessInfo>;

    /// The container and pod a live process runs in; `None` when it is gone or the
    /// view cannot tell (then the entry keeps what it had).
    fn workload(&mut self, _pid: u32) -> Option<Workload> {
        None
    }
}

/// Where a process runs: its container and, under Kubernetes, its pod. Empty on a
/// plain host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    pub container_id: String,
    pub pod: Option<Arc<PodIdentity>>,
}

/// The real /proc (or another procfs mount), and the kubelet's directories for pod
/// names.
#[derive(Debug)]
pub struct ProcFs {
    pub root: PathBuf,
    pub pods: PodDirectory,
}

impl Default for ProcFs {
    fn default() -> Self {
        Self { root: PathBuf::from("/proc"), pods: PodDirectory::default() }
    }
}

impl ProcView for ProcFs {
    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        from_procfs(&self.root, pid)
    }

    fn workload(&mut self, pid: u32) -> Option<Workload> {
        let dir = self.root.join(pid.to_string());
        let groups = procfs::process::Process::new_with_root(dir).ok()?.cgroups().ok()?;
        let paths: Vec<String> = groups.into_iter().map(|group| group.pathname).collect();
        let container_id = paths.iter().find_map(|path| container_id(path)).unwrap_or_default();
        let pod = paths.iter().find_map(|path| self.pods.identify(path, &container_id));
        Some(Workload { container_id, pod })
    }
}

/// What the sensor knows about a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub exe: String,
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    pub cgroup_id: u64,
    pub container_id: String,
    /// The Kubernetes pod, when the process runs in one.
    pub pod: Option<Arc<PodIdentity>>,
    /// The cgroup id the container and pod were resolved for (`None`: not yet).
    pub workload_cgroup: Option<u64>,
    /// Set when the process is (part of) an inference runtime.
    pub runtime: Option<Classification>,
}

/// Bounded cache of [`ProcessInfo`].
pub struct ProcessCache {
    entries: LruCache<u32, Arc<ProcessInfo>>,
    view: Box<dyn ProcView>,
}

impl ProcessCache {
    #[must_use]
    pub fn new(capacity: NonZeroUsize, view: Box<dyn ProcView>) -> Self {
        Self { entries: LruCache::new(capacity), view }
    }

    pub fn insert(&mut self, mut info: ProcessInfo) -> Arc<ProcessInfo> {
        self.resolve_workload(&mut info);
        let info = Arc::new(info);
        self.entries.put(info.pid, Arc::clone(&info));
        info
    }

    pub fn remove(&mut self, pid: u32) -> Option<Arc<ProcessInfo>> {
        self.entries.pop(&pid)
    }

    #[must_use]
    pub fn peek(&self, pid: u32) -> Option<Arc<ProcessInfo>> {
        self.entries.peek(&pid).cloned()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached entry, or one read from procfs (and cached), or, when the process is
    /// already gone, what the kernel record itself says.
    pub fn lookup(&mut self, header: &EventHeader) -> Arc<ProcessInfo> {
        if let Some(info) = self.entries.get(&header.tgid) {
            // A process that moved to another cgroup (`runc init` joining its
            // container's) belongs to another workload now.
            if header.cgroup_id == 0 || info.workload_cgroup == Some(header.cgroup_id) {
                return Arc::clone(info);
            }
            let mut moved = (**info).clone();
            moved.cgroup_id = header.cgroup_id;
            return self.insert(moved);
        }
        let mut info = self.view.process(header.tgid).unwrap_or_default();
        fill_from_header(&mut info, header);
        self.insert(info)
    }

    /// Fills the container and pod once per cgroup of the process.
    fn resolve_workload(&mut self, info: &mut ProcessInfo) {
        if info.workload_cgroup == Some(info.cgroup_id) {
            return;
        }
        info.workload_cgroup = Some(info.cgroup_id);
        if let Some(workload) = self.view.workload(info.pid) {
            info.container_id = workload.container_id;
            info.pod = workload.pod;
        }
    }

    /// Updates a cached entry in place (runtime marks).
    pub fn update(&mut self, pid: u32, change: impl FnOnce(&mut ProcessInfo)) -> Option<Arc<ProcessInfo>> {
        let entry = self.entries.get_mut(&pid)?;
        change(Arc::make_mut(entry));
        Some(Arc::clone(entry))
    }

    /// Every cached process (start-up snapshot and status).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ProcessInfo>> {
        self.entries.iter().map(|(_, info)| info)
    }
}

/// Fields every kernel record carries, authoritative over procfs.
pub fn fill_from_header(info: &mut ProcessInfo, header: &EventHeader) {
    info.pid = header.tgid;
    info.uid = header.uid;
    info.gid = header.gid;
    info.cgroup_id = header.cgroup_id;
    info.comm = c_string(&header.comm);
}

/// A NUL-terminated kernel string, lossily decoded.
#[must_use]
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Reads a process from procfs. `None` when it is gone.
#[must_use]
pub fn from_procfs(proc_root: &std::path::Path, pid: u32) -> Option<ProcessInfo> {
    let dir = proc_root.join(pid.to_string());
    let process = procfs::process::Process::new_with_root(dir).ok()?;
    let stat = process.stat().ok()?;
    let status = process.status().ok();
    let cgroup = process
        .cgroups()
        .ok()
        .and_then(|groups| groups.into_iter().find_map(|group| container_id(&group.pathname)));
    Some(ProcessInfo {
        pid,
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        uid: status.as_ref().map_or(0, |s| s.ruid),
        gid: status.as_ref().map_or(0, |s| s.rgid),
        comm: stat.comm,
        exe: process.exe().map(|p| p.display().to_string()).unwrap_or_default(),
        argv: process.cmdline().unwrap_or_default(),
        argv_truncated: false,
        cgroup_id: 0,
        container_id: cgroup.unwrap_or_default(),
        pod: None,
        workload_cgroup: None,
        runtime: None,
    })
}

/// Splits a kernel argv buffer (NUL-separated) into arguments.
#[must_use]
pub fn split_argv(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0).map(|arg| String::from_utf8_lossy(arg).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_splitting() {
        assert_eq!(split_argv(b"ollama\0serve\0"), vec!["ollama", "serve"]);
        assert_eq!(split_argv(b"a\0\0b"), vec!["a", "", "b"]);
        assert!(split_argv(b"").is_empty());
    }

    #[test]
    fn cache_is_bounded_and_reads_procfs_on_miss() {
        let mut cache =
            ProcessCache::new(NonZeroUsize::new(2).expect("non-zero"), Box::new(ProcFs::default()));
        for pid in 1..=3 {
            cache.insert(ProcessInfo { pid, ..ProcessInfo::default() });
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.peek(1).is_none(), "the oldest entry is evicted");
        let me = std::process::id();
        let header = EventHeader { tgid: me, comm: *b"from-kernel\0\0\0\0\0", ..EventHeader::default() };
        let info = cache.lookup(&header);
        assert!(!info.exe.is_empty(), "procfs gave the exe of pid {me}");
        assert_eq!(info.comm, "from-kernel", "the kernel record wins over procfs");
    }

    /// A view whose processes run in the container its `containers` says, counting
    /// how often it was asked.
    struct Containers {
        container: std::sync::Arc<std::sync::Mutex<String>>,
        asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ProcView for Containers {
        fn process(&self, _pid: u32) -> Option<ProcessInfo> {
            None
        }

        fn workload(&mut self, _pid: u32) -> Option<Workload> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let container_id = self.container.lock().expect("lock").clone();
            Some(Workload { container_id, pod: None })
        }
    }

    #[test]
    fn the_workload_is_resolved_once_per_cgroup() {
        let container = std::sync::Arc::new(std::sync::Mutex::new("runc-parent".to_owned()));
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let view = Containers { container: container.clone(), asked: asked.clone() };
        let mut cache = ProcessCache::new(NonZeroUsize::new(8).expect("non-zero"), Box::new(view));
        let mut header = EventHeader { tgid: 42, cgroup_id: 7, ..EventHeader::default() };
        assert_eq!(cache.lookup(&header).container_id, "runc-parent");
        assert_eq!(cache.lookup(&header).container_id, "runc-parent");
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1, "cached for its cgroup");
        // `runc init` joins the container's cgroup, then execs the entrypoint.
        "abc".clone_into(&mut container.lock().expect("lock"));
        header.cgroup_id = 9;
        assert_eq!(cache.lookup(&header).container_id, "abc", "another cgroup: resolved again");
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
