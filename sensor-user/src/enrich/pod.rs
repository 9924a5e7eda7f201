//! Pod identity: which Kubernetes pod (and which of its containers) a process runs in,
//! without asking the API server.
//!
//! - The **pod UID** and the **container id** come from the process's cgroup path, which
//!   the kubelet and the container runtime set before the container's first instruction
//!   (`kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope` with the systemd
//!   driver, `kubepods/burstable/pod<uid>/<id>` with cgroupfs).
//! - The **pod name and namespace** come from the kubelet's pod log directory,
//!   `/var/log/pods/<namespace>_<name>_<uid>/`, created before any of the pod's
//!   containers starts; the **container name** from the kubelet's
//!   `/var/log/containers/<pod>_<namespace>_<container>-<id>.log` links. Both layouts are
//!   the kubelet's own (every CRI runtime, containerd and CRI-O alike) and are what log
//!   shippers read. Only directory *names* are read: never a log, never a link's target.
//!   Names cannot contain `_` (DNS labels and subdomains), so the split is unambiguous.
//!
//! Why not the CRI socket: whoever can connect to it can create and exec into any
//! container on the node, which is far more than a sensor needs. Why not the API
//! server: a token per node and a network dependency for a local fact.
//!
//! A cgroup path is only trusted as a pod's when its first real segment is the
//! kubelet's (`kubepods...` or `kubelet...`): cgroups that unprivileged users may create
//! (delegated subtrees under `user.slice`) can be named anything.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

/// The kubelet's pod log directory (its `podLogsDir`, `/var/log/pods` by default).
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";
/// The kubelet's links to container logs, named after pod, namespace and container.
pub const DEFAULT_CONTAINER_LOGS_DIR: &str = "/var/log/containers";

/// A pod as the node knows it. Names are empty when the kubelet's directories are not
/// visible (not a Kubernetes node, or not mounted into the sensor's container).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIdentity {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    /// The container's name in the pod spec.
    pub container_name: String,
}

impl PodIdentity {
    /// Every name was found.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        !self.name.is_empty() && !self.namespace.is_empty() && !self.container_name.is_empty()
    }
}

/// The pod UID in a cgroup path, if the path is one the kubelet made.
#[must_use]
pub fn pod_uid(cgroup_path: &str) -> Option<String> {
    let mut segments = cgroup_path.split('/').filter(|s| !s.is_empty() && *s != "..");
    let first = segments.next()?;
    if !first.starts_with("kubepods") && !first.starts_with("kubelet") {
        return None;
    }
    std::iter::once(first).chain(segments).find_map(uid_in_segment)
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid with _ for ->.slice` (systemd).
fn uid_in_segment(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".slice").unwrap_or(segment);
    let at = segment.rfind("pod")?;
    let before = &segment[..at];
    if !(before.is_empty() || before.ends_with('-')) {
        return None;
    }
    let uid = segment[at + 3..].replace('_', "-");
    is_uid(&uid).then_some(uid)
}

/// A UUID in its canonical 8-4-4-4-12 form (the API server's pod UIDs).
fn is_uid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, len)| {
            group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// Resolves pod names from the kubelet's log directories, caching what it read.
/// A directory is listed again only when an unknown pod or container shows up, and at
/// most once per [`RESCAN_INTERVAL`]: a burst of new processes costs one listing.
#[derive(Debug)]
pub struct PodDirectory {
    pod_logs: PathBuf,
    container_logs: PathBuf,
    /// uid -> (namespace, name).
    pods: HashMap<String, (String, String)>,
    /// container id -> container name.
    containers: HashMap<String, String>,
    last_scan: Option<Instant>,
}

/// How often a miss may list the directories again.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Directory entries read per listing: a node runs a few hundred pods at most.
const MAX_ENTRIES: usize = 65_536;

impl Default for PodDirectory {
    fn default() -> Self {
        Self::new(Path::new(DEFAULT_POD_LOGS_DIR), Path::new(DEFAULT_CONTAINER_LOGS_DIR))
    }
}

impl PodDirectory {
    #[must_use]
    pub fn new(pod_logs: &Path, container_logs: &Path) -> Self {
        Self {
            pod_logs: pod_logs.to_path_buf(),
            container_logs: container_logs.to_path_buf(),
            pods: HashMap::new(),
            containers: HashMap::new(),
            last_scan: None,
        }
    }

    /// The pod of a process from its cgroup path and container id; `None` outside
    /// Kubernetes.
    pub fn identify(&mut self, cgroup_path: &str, container_id: &str) -> Option<Arc<PodIdentity>> {
        let uid = pod_uid(cgroup_path)?;
        let known = |dir: &Self| {
            dir.pods.contains_key(&uid)
                && (container_id.is_empty() || dir.containers.contains_key(container_id))
        };
        if !known(self) && self.last_scan.is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL) {
            self.rescan();
        }
        let (namespace, name) = self.pods.get(&uid).cloned().unwrap_or_default();
        let container_name = self.containers.get(container_id).cloned().unwrap_or_default();
        Some(Arc::new(PodIdentity { uid, name, namespace, container_name }))
    }

    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        self.pods = entry_names(&self.pod_logs).filter_map(|name| parse_pod_dir(&name)).collect();
        self.containers =
            entry_names(&self.container_logs).filter_map(|name| parse_container_link(&name)).collect();
    }
}

/// The names in a directory (none when it is missing), bounded.
fn entry_names(dir: &Path) -> impl Iterator<Item = String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .take(MAX_ENTRIES)
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
}

/// `<namespace>_<name>_<uid>` -> (uid, (namespace, name)).
fn parse_pod_dir(entry: &str) -> Option<(String, (String, String))> {
    let mut parts = entry.split('_');
    let (namespace, name, uid) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !namespace.is_empty() && !name.is_empty() && is_uid(uid))
        .then(|| (uid.to_owned(), (namespace.to_owned(), name.to_owned())))
}

/// `<pod>_<namespace>_<container>-<64 hex id>.log` -> (id, container).
fn parse_container_link(entry: &str) -> Option<(String, String)> {
    let stem = entry.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut parts = rest.split('_');
    let (_pod, _namespace, container) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !container.is_empty()).then(|| (id.to_owned(), container.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "5f0c8a4e-2b1d-4c3e-9f8a-7b6c5d4e3f2a";
    const ID: &str = "4f1d7a0e9b0c4b1e8d3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

    #[test]
    fn uid_from_the_kubelet_cgroup_layouts() {
        let systemd_uid = UID.replace('-', "_");
        for path in [
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope"
            ),
            format!("/kubepods.slice/kubepods-pod{systemd_uid}.slice/crio-{ID}.scope"),
            format!("/kubepods/besteffort/pod{UID}/{ID}"),
            format!("/kubepods/pod{UID}/{ID}"),
            // Seen from inside another pod's cgroup namespace.
            format!(
                "/../../kubepods-besteffort.slice/kubepods-besteffort-pod{systemd_uid}.slice/cri-containerd-{ID}.scope"
            ),
            // kind and other kubelets with a cgroup root of their own.
            format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{systemd_uid}.slice/cri-containerd-{ID}.scope"
            ),
        ] {
            assert_eq!(pod_uid(&path).as_deref(), Some(UID), "{path}");
        }
    }

    #[test]
    fn paths_that_are_not_pods() {
        let systemd_uid = UID.replace('-', "_");
        for path in [
            "/".to_owned(),
            "/user.slice/user-1000.slice/session-2.scope".to_owned(),
            format!("/system.slice/docker-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            // A user's delegated subtree may be named anything: not trusted.
            format!(
                "/user.slice/user-1000.slice/user@1000.service/kubepods.slice/kubepods-pod{systemd_uid}.slice/x.scope"
            ),
            "/kubepods.slice/kubepods-burstable.slice".to_owned(),
            "/kubepods/podnot-a-uid/x".to_owned(),
            format!("/kubepods/besteffort/pod{}/x", UID.to_uppercase()),
        ] {
            assert_eq!(pod_uid(&path), None, "{path}");
        }
    }

    #[test]
    fn names_from_the_kubelet_directories() {
        let root = tempfile::tempdir().expect("tempdir");
        let (pods, containers) = (root.path().join("pods"), root.path().join("containers"));
        std::fs::create_dir_all(pods.join(format!("ml-team_ollama-7d9f_{UID}/server"))).expect("pod dir");
        std::fs::create_dir_all(pods.join("kube-system_broken")).expect("noise");
        std::fs::create_dir_all(&containers).expect("containers dir");
        std::fs::write(containers.join(format!("ollama-7d9f_ml-team_server-{ID}.log")), b"").expect("link");
        std::fs::write(containers.join("unrelated.log"), b"").expect("noise");
        let mut directory = PodDirectory::new(&pods, &containers);
        let path = format!("/kubepods/burstable/pod{UID}/{ID}");
        let pod = directory.identify(&path, ID).expect("a pod");
        assert_eq!(
            *pod,
            PodIdentity {
                uid: UID.into(),
                name: "ollama-7d9f".into(),
                namespace: "ml-team".into(),
                container_name: "server".into()
            }
        );
        assert!(pod.is_complete());
        assert_eq!(directory.identify("/user.slice", ID), None, "outside Kubernetes: no pod at all");
    }

    #[test]
    fn a_missing_directory_leaves_names_empty_and_is_not_listed_again_at_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let pods = root.path().join("pods");
        let mut directory = PodDirectory::new(&pods, &root.path().join("containers"));
        let path = format!("/kubepods/pod{UID}/{ID}");
        let pod = directory.identify(&path, ID).expect("uid from the cgroup path alone");
        assert_eq!((pod.uid.as_str(), pod.name.as_str(), pod.namespace.as_str()), (UID, "", ""));
        assert!(!pod.is_complete());
        // The pod appears; a second miss within the interval does not list again.
        std::fs::create_dir_all(pods.join(format!("default_late_{UID}"))).expect("pod dir");
        assert_eq!(directory.identify(&path, ID).expect("pod").name, "");
        directory.last_scan = Instant::now().checked_sub(RESCAN_INTERVAL);
        assert_eq!(directory.identify(&path, ID).expect("pod").name, "late");
    }
}
