//! Pod identity on events: container id and pod UID from the cgroup path, names from
//! the kubelet's log directories. Two real set-ups:
//! - a synthetic kubelet layout: a real cgroup named as the kubelet's systemd driver
//!   names a pod's container, a process moved into it before it starts, and the
//!   kubelet's `/var/log/pods` and `/var/log/containers` entries in a temp directory;
//! - a podman container, whose id (from `--cidfile`) must be the event's.
//!
//! Processes outside either carry empty fields.

use std::{
    ffi::CString,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use modelwatch_tests::{
    Sensor, copy_actor,
    deploy::{podman, podman_skip_reason},
    kind, pid_of, require_privileges, spawn_actor,
};
use serde_json::Value;

const POD_UID: &str = "3c5b0a9e-7d21-4f6a-9b8e-2a1c4d5e6f70";
const CONTAINER_ID: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

/// A writable cgroup hierarchy: the unified (v2) one where mounted, else the v1
/// `name=systemd` one (both are listed in /proc/<pid>/cgroup).
fn cgroup_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let find = |wanted: &dyn Fn(&[&str]) -> bool| {
        mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && wanted(f))
            .map(|f| PathBuf::from(f[1]))
    };
    find(&|f| f[2] == "cgroup2").or_else(|| find(&|f| f[2] == "cgroup" && f[3].contains("name=systemd")))
}

/// The kubelet's cgroup for one container of a BestEffort pod (systemd driver).
struct SyntheticPod {
    levels: Vec<PathBuf>,
}

impl SyntheticPod {
    fn create(root: &Path) -> std::io::Result<Self> {
        let uid = POD_UID.replace('-', "_");
        let mut path = root.to_path_buf();
        let mut levels = Vec::new();
        for segment in [
            "kubepods.slice".to_owned(),
            "kubepods-besteffort.slice".to_owned(),
            format!("kubepods-besteffort-pod{uid}.slice"),
            format!("cri-containerd-{CONTAINER_ID}.scope"),
        ] {
            path.push(segment);
            if !path.exists() {
                std::fs::create_dir(&path)?;
            }
            levels.push(path.clone());
        }
        Ok(Self { levels })
    }

    fn procs(&self) -> PathBuf {
        self.levels.last().expect("levels").join("cgroup.procs")
    }
}

impl Drop for SyntheticPod {
    fn drop(&mut self) {
        for level in self.levels.iter().rev() {
            let _ = std::fs::remove_dir(level);
        }
    }
}

/// Starts the actor inside the cgroup whose `cgroup.procs` is `procs`: it moves itself
/// there between fork and exec, so the kernel's exec record already carries it.
fn spawn_in_cgroup(dir: &Path, name: &str, script: &str, procs: &Path) -> Child {
    let procs = CString::new(procs.display().to_string()).expect("path");
    let mut command = Command::new(copy_actor(dir, name));
    command.env("MW_ACTOR", script).stdout(Stdio::null());
    // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().expect("start the actor in its cgroup")
}

fn listener_of(sensor: &mut Sensor, pid: u32) -> Value {
    sensor
        .next_matching(Duration::from_secs(20), |e| {
            kind(e) == "listener_opened" && pid_of(e) == u64::from(pid)
        })
        .unwrap_or_else(|| panic!("no listener_opened for pid {pid}"))
}

fn pod_fields(event: &Value) -> [String; 5] {
    let p = &event["process"];
    ["container_id", "pod_uid", "pod_name", "pod_namespace", "container_name"]
        .map(|f| p[f].as_str().unwrap_or("").to_owned())
}

#[test]
fn a_process_in_a_kubelet_cgroup_carries_its_pod() {
    require_privileges!();
    let Some(root) = cgroup_root() else {
        eprintln!("SKIPPED: no writable cgroup hierarchy");
        return;
    };
    let pod = match SyntheticPod::create(&root) {
        Ok(pod) => pod,
        Err(error) => {
            eprintln!("SKIPPED: cannot create cgroups under {}: {error}", root.display());
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (pods, containers) = (dir.path().join("pods"), dir.path().join("containers"));
    std::fs::create_dir_all(pods.join(format!("ml-team_ollama-5d8c7_{POD_UID}/server"))).expect("pod dir");
    std::fs::create_dir_all(&containers).expect("containers dir");
    std::fs::write(containers.join(format!("ollama-5d8c7_ml-team_server-{CONTAINER_ID}.log")), b"")
        .expect("link");
    let pods_setting = format!("kubernetes.pod_logs_dir={}", pods.display());
    let containers_setting = format!("kubernetes.container_logs_dir={}", containers.display());
    let mut sensor = Sensor::start(&["--set", &pods_setting, "--set", &containers_setting]);

    let mut in_pod = spawn_in_cgroup(dir.path(), "ollama", "listen:127.0.0.1:11434;sleep:5000", &pod.procs());
    let event = listener_of(&mut sensor, in_pod.id());
    let _ = in_pod.kill();
    let _ = in_pod.wait();
    assert_eq!(
        pod_fields(&event),
        [CONTAINER_ID, POD_UID, "ollama-5d8c7", "ml-team", "server"].map(str::to_owned),
        "{event}"
    );

    let mut on_host = spawn_actor(dir.path(), "llama-server", &[], "listen:127.0.0.1:8080;sleep:5000");
    let event = listener_of(&mut sensor, on_host.id());
    let _ = on_host.kill();
    let _ = on_host.wait();
    let [_, uid, name, namespace, container] = pod_fields(&event);
    assert_eq!(
        [uid, name, namespace, container],
        ["", "", "", ""].map(str::to_owned),
        "a host process: {event}"
    );
}

/// A directory with the actor and the shared libraries it needs, for `--rootfs`
/// (base images cannot be pulled here).
fn actor_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let actor = modelwatch_tests::workspace_binary("mw-actor");
    let ldd = Command::new("ldd").arg(&actor).output().expect("ldd");
    let mut files: Vec<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from))
        .collect();
    files.push(actor.clone());
    for file in files {
        let target = rootfs.join(file.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&file, &target).expect("copy into the rootfs");
    }
    // The same actor at /ollama: a runtime's name.
    std::fs::copy(&actor, rootfs.join("ollama")).expect("copy");
    rootfs
}

#[test]
fn a_podman_container_id_matches_the_event() {
    if let Some(reason) = podman_skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = actor_rootfs(dir.path());
    let cidfile = dir.path().join("cid");
    let mut sensor = Sensor::start(&[]);
    let name = format!("modelwatch-pod-identity-{}", std::process::id());
    let out = podman()
        .args(["run", "--detach", "--name", &name, "--network=none"])
        .args(modelwatch_tests::deploy::ulimits_within_ours())
        .arg("--cidfile")
        .arg(&cidfile)
        .args(["--env", "MW_ACTOR=listen:127.0.0.1:11434;sleep:15000", "--rootfs"])
        .arg(&rootfs)
        .arg("/ollama")
        .output()
        .expect("podman run");
    let cleanup = || {
        let _ = podman().args(["rm", "--force", "--time", "1", &name]).output();
    };
    if !out.status.success() {
        cleanup();
        panic!("podman run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let id = std::fs::read_to_string(&cidfile).expect("cidfile").trim().to_owned();
    let event = sensor.next_matching(Duration::from_secs(20), |e| {
        kind(e) == "listener_opened" && e["process"]["exe"].as_str().is_some_and(|x| x.ends_with("/ollama"))
    });
    cleanup();
    let event = event.expect("no listener_opened from the container");
    eprintln!("podman container {id}: {}", event["process"]);
    let [container_id, uid, pod_name, namespace, _] = pod_fields(&event);
    assert_eq!(container_id, id, "the event's container id is podman's: {event}");
    assert_eq!(
        [uid, pod_name, namespace],
        ["", "", ""].map(str::to_owned),
        "podman is not Kubernetes: {event}"
    );
}
