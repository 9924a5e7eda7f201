//! The image that ships, run for real: `cargo xtask image`'s `FROM scratch` image under
//! podman with the host's PID namespace, exactly the kept capabilities (no
//! `--privileged`), the shipped seccomp profile, a read-only root and the same
//! read-only host mounts as the DaemonSet. A fake Ollama on the host opens 11434; the
//! containerised sensor must report it, answer `modelwatch status` through the mounted
//! socket (from the host, and inside the container as the kubelet's probe does), and
//! keep the socket directory at 0700.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use modelwatch_tests::{
    deploy::{KEPT_CAPABILITIES, image_reference, podman, podman_skip_reason, ulimits_within_ours},
    kind, spawn_actor, workspace_binary,
};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn image_skip_reason() -> Option<String> {
    podman_skip_reason().or_else(|| {
        let exists =
            podman().args(["image", "exists", &image_reference()]).status().is_ok_and(|s| s.success());
        (!exists).then(|| {
            format!("{} is not built (`cargo xtask image`; `cargo xtask test` builds it)", image_reference())
        })
    })
}

#[test]
fn the_image_is_the_static_binary_alone_with_its_labels() {
    if let Some(reason) = image_skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let reference = image_reference();
    let out = podman().args(["image", "inspect", &reference]).output().expect("inspect");
    let inspect: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    let image = &inspect[0];
    let labels = &image["Config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    for label in ["title", "revision", "created", "licenses", "description"] {
        let value = labels[format!("org.opencontainers.image.{label}")].as_str().unwrap_or("");
        assert!(!value.is_empty(), "the image lacks the OCI label {label}");
    }
    // The image is this checkout's: `cargo xtask image` (or `cargo xtask test`) built it.
    let head = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo()).output().expect("git");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let revision = labels["org.opencontainers.image.revision"].as_str().unwrap_or("");
    assert!(
        head.is_empty() || revision.starts_with(&head),
        "the image was built from {revision}, this checkout is {head}: run `cargo xtask image`"
    );
    assert_eq!(image["Config"]["Entrypoint"], serde_json::json!(["/modelwatch"]));
    // Every file of the image: the binary, nothing else (no shell, no libc).
    let container = String::from_utf8(podman().args(["create", &reference]).output().expect("create").stdout)
        .expect("id");
    let container = container.trim();
    let export = podman().args(["export", container]).output().expect("export");
    let _ = podman().args(["rm", "-f", container]).output();
    let listing = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut tar| {
            std::io::Write::write_all(&mut tar.stdin.take().expect("stdin"), &export.stdout)?;
            tar.wait_with_output()
        })
        .expect("tar -t");
    let files: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(str::to_owned)
        .collect();
    // podman adds empty mount points for /etc/hosts and friends at run time only.
    let unexpected: Vec<&String> = files
        .iter()
        .filter(|f| {
            !matches!(
                f.as_str(),
                "modelwatch" | "etc/hosts" | "etc/resolv.conf" | "etc/hostname" | "run/.containerenv"
            )
        })
        .collect();
    assert!(files.iter().any(|f| f == "modelwatch"), "no /modelwatch in {files:?}");
    assert!(unexpected.is_empty(), "the image holds more than the binary: {unexpected:?}");
    let size: u64 = image["Size"].as_u64().unwrap_or(0);
    eprintln!("image {reference}: {} files, {size} bytes, digest {}", files.len(), image["Digest"]);
}

/// The container's JSON lines, read as they come.
struct RunningImage {
    name: String,
    events: mpsc::Receiver<Value>,
    child: std::process::Child,
}

impl Drop for RunningImage {
    fn drop(&mut self) {
        let _ = podman().args(["stop", "--time", "5", &self.name]).output();
        let _ = self.child.wait();
        let _ = podman().args(["rm", "-f", &self.name]).output();
    }
}

fn run_image(socket_dir: &Path, state_dir: &Path) -> RunningImage {
    let name = format!("modelwatch-test-{}", std::process::id());
    let seccomp = repo().join("deploy/seccomp/modelwatch.json");
    let mut command = podman();
    command
        .args(["run", "--rm", "--name", &name, "--pid=host", "--network=none", "--read-only"])
        .arg("--cap-drop=all")
        .args(KEPT_CAPABILITIES.iter().map(|k| format!("--cap-add={}", k.name)))
        .arg(format!("--security-opt=seccomp={}", seccomp.display()))
        .arg("--security-opt=no-new-privileges")
        .args(ulimits_within_ours())
        .args([
            "-v",
            "/sys/kernel/btf:/sys/kernel/btf:ro",
            "-v",
            "/sys/kernel/tracing:/sys/kernel/tracing:ro",
        ])
        .arg("-v")
        .arg(format!("{}:/run/modelwatch", socket_dir.display()))
        .arg("-v")
        .arg(format!("{}:/var/lib/modelwatch", state_dir.display()))
        .arg(image_reference())
        .args(["run", "--output=json", "--socket=/run/modelwatch/modelwatch.sock"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("podman run: {command:?}");
    let mut child = command.spawn().expect("podman run");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("container: {}", line.chars().take(300).collect::<String>());
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && tx.send(value).is_err()
            {
                break;
            }
        }
    });
    RunningImage { name, events, child }
}

fn next(events: &mpsc::Receiver<Value>, within: Duration, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(event) if wanted(&event) => return Some(event),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn the_image_runs_with_the_kept_capabilities_and_reports_a_host_listener() {
    if let Some(reason) = image_skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (socket_dir, state_dir) = (dir.path().join("run"), dir.path().join("state"));
    for d in [&socket_dir, &state_dir] {
        std::fs::create_dir(d).expect("mkdir");
        // As a hostPath DirectoryOrCreate makes it: the sensor must close it.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let running = run_image(&socket_dir, &state_dir);
    let status = next(&running.events, Duration::from_secs(90), |e| kind(e) == "sensor_status")
        .expect("the containerised sensor did not start within 90 s (its stderr is above)");
    eprintln!("hooks in the container: {}", status["sensor_status"]["hooks"]);
    let mode = std::fs::metadata(&socket_dir).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the socket directory was forced to 0700");

    let mut ollama = spawn_actor(dir.path(), "ollama", &["serve"], "listen:127.0.0.1:11434;sleep:20000");
    let pid = u64::from(ollama.id());
    let listener = next(&running.events, Duration::from_secs(20), |e| {
        kind(e) == "listener_opened" && modelwatch_tests::pid_of(e) == pid
    });
    let _ = ollama.kill();
    let _ = ollama.wait();
    let listener = listener.expect("the containerised sensor did not report the host's listener on 11434");
    assert_eq!(listener["listener_opened"]["port"], 11434, "{listener}");
    assert!(listener["process"]["exe"].as_str().is_some_and(|e| e.ends_with("/ollama")), "{listener}");

    let socket = socket_dir.join("modelwatch.sock");
    let from_host = Command::new(workspace_binary("modelwatch"))
        .args(["status", "--socket"])
        .arg(&socket)
        .output()
        .expect("modelwatch status");
    let host_text = String::from_utf8_lossy(&from_host.stdout);
    assert!(
        from_host.status.success(),
        "status through the mounted socket: {host_text}{}",
        String::from_utf8_lossy(&from_host.stderr)
    );
    eprintln!("modelwatch status (host, through the mounted socket):\n{host_text}");
    // The kubelet's exec probe: the same command inside the container, no shell.
    let probe = podman()
        .args(["exec", &running.name, "/modelwatch", "status", "--socket=/run/modelwatch/modelwatch.sock"])
        .output()
        .expect("podman exec");
    assert!(probe.status.success(), "the exec probe failed: {}", String::from_utf8_lossy(&probe.stderr));
}
