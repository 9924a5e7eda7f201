//! Harness for the end-to-end tests: a real `modelwatch run` process with its probes in
//! the real kernel, read through its JSON lines and its gRPC socket, and a real actor
//! process making real syscalls.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod deploy;
pub mod hostile;
pub mod soc;

/// Why a privileged test cannot run here, if it cannot.
#[must_use]
pub fn skip_reason() -> Option<String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: the end-to-end tests load eBPF programs".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("this kernel has no BTF".into());
    }
    None
}

/// Skips the calling test, saying why, when it cannot run here.
#[macro_export]
macro_rules! require_privileges {
    () => {
        if let Some(reason) = $crate::skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// In a `vm-test` guest (TCG, slow), tests that measure the host or flood it skip:
/// prints why and returns true.
#[must_use]
pub fn skip_in_guest(why: &str) -> bool {
    let guest = in_guest();
    if guest {
        eprintln!("SKIPPED: {why}: host only, not in vm-test guests");
    }
    guest
}

/// In a `vm-test` guest (its `/init` exports `MODELWATCH_TEST_VM_GUEST`).
fn in_guest() -> bool {
    std::env::var_os("MODELWATCH_TEST_VM_GUEST").is_some()
}

/// A built binary of this workspace, next to the test executable.
#[must_use]
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built; run the tests with `cargo xtask test`", path.display());
    path
}

/// A running sensor. Only one runs at a time (a lock across test processes): a flood
/// in one test would otherwise count in another's kernel counters.
pub struct Sensor {
    child: Child,
    _exclusive: std::fs::File,
    events: mpsc::Receiver<Value>,
    pub socket: PathBuf,
    /// The state directory (the durable event log is in its `events/`).
    pub state_dir: PathBuf,
    pub status: Value,
    _dir: Option<tempfile::TempDir>,
    exited: bool,
}

impl Sensor {
    /// Starts `modelwatch run --output json` with extra arguments and waits for its
    /// first event (the sensor status: probes attached). Its socket and state
    /// directory are in a temporary directory of its own.
    #[must_use]
    pub fn start(extra: &[&str]) -> Self {
        Self::start_under(&[], extra).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// As [`Sensor::start`], run by `wrapper` (`setpriv ... --`); a sensor that exits
    /// before its first event is an error with its exit status and last stderr line.
    ///
    /// # Errors
    /// The sensor did not start.
    pub fn start_under(wrapper: &[&str], extra: &[&str]) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sensor = Self::launch(wrapper, dir.path(), extra)?;
        sensor._dir = Some(dir);
        Ok(sensor)
    }

    /// Like [`Sensor::start`], with the socket and state directory in `dir` (which the
    /// caller keeps: a restarted sensor finds its log there).
    #[must_use]
    pub fn start_in(dir: &Path, extra: &[&str]) -> Self {
        Self::launch(&[], dir, extra).unwrap_or_else(|failure| panic!("{failure}"))
    }

    fn launch(wrapper: &[&str], dir: &Path, extra: &[&str]) -> Result<Self, String> {
        let exclusive = exclusive_lock();
        let socket = dir.join("modelwatch.sock");
        let state_dir = dir.join("state");
        let binary = workspace_binary("modelwatch");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        let mut child = command
            .args(["run", "--output", "json", "--socket"])
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(if wrapper.is_empty() { Stdio::inherit() } else { Stdio::piped() })
            .spawn()
            .expect("start modelwatch");
        let stderr_tail = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = std::sync::Arc::clone(&stderr_tail);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    line.clone_into(&mut tail.lock().expect("stderr tail"));
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("modelwatch printed a line that is not JSON ({e}): {line}"));
                // When the test read it: with the event's own time, how long it took.
                value["_received_unix_ns"] = Value::from(unix_ns(std::time::SystemTime::now()));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut sensor = Self {
            child,
            _exclusive: exclusive,
            events,
            socket,
            state_dir,
            status: Value::Null,
            _dir: None,
            exited: false,
        };
        let Some(status) = sensor.next_matching(start_up_limit(), |e| kind(e) == "sensor_status") else {
            // Still starting (or hung): killed, so that the test fails instead of waiting
            // for it forever.
            // SAFETY: the pid of our own child, not yet reaped.
            unsafe { libc::kill(sensor.child.id() as i32, libc::SIGKILL) };
            let exit = sensor.child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
            sensor.exited = true;
            // The reader thread may still hold the last line for a moment.
            std::thread::sleep(Duration::from_millis(100));
            let last = stderr_tail.lock().expect("stderr tail").clone();
            return Err(format!(
                "modelwatch did not start within {} s ({exit}): {last}",
                start_up_limit().as_secs()
            ));
        };
        sensor.status = status;
        eprintln!("modelwatch-hooks: {}", sensor.status["sensor_status"]["hooks"]);
        Ok(sensor)
    }

    /// The next event that satisfies `wanted`, skipping others, within `timeout`.
    pub fn next_matching(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.events.recv_timeout(left) {
                Ok(event) if wanted(&event) => return Some(event),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Every event that arrives within `window`.
    pub fn collect(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) => out.push(event),
                Err(_) => break,
            }
        }
        out
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// How long a start-up may take: loading the probes is the verifier's work, which
/// emulated guests (QEMU without KVM) do many times slower than the host.
fn start_up_limit() -> Duration {
    Duration::from_secs(if in_guest() { 240 } else { 60 })
}

fn exclusive_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("modelwatch-e2e.lock");
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).expect("lock file");
    // SAFETY: a valid descriptor; the lock is released when the file is dropped.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    file
}

impl Sensor {
    /// `kill -9`: the sensor gets no chance to flush or clean up.
    pub fn kill_9(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    /// SIGTERM, and waits for the exit.
    pub fn stop(&mut self) {
        self.signal_and_wait(libc::SIGTERM);
    }

    /// Sends `signal` and waits; a sensor that has not exited 30 s after it is killed and
    /// the test fails, naming the hang (a shutdown that never ends is a defect too).
    fn signal_and_wait(&mut self, signal: i32) {
        if self.exited {
            return;
        }
        // SAFETY: the pid of our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let hung = matches!(self.child.try_wait(), Ok(None));
        if hung {
            // SAFETY: as above.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        self.exited = true;
        if hung && !std::thread::panicking() {
            panic!("modelwatch did not exit within 30 s of signal {signal}");
        }
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unix_ns(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// How long after its kernel time the test received an event.
#[must_use]
pub fn delivery_delay(event: &Value) -> Duration {
    let received = event["_received_unix_ns"].as_u64().unwrap_or_else(|| panic!("no receipt time: {event}"));
    let text = event["time"].as_str().unwrap_or_else(|| panic!("an event without a time: {event}"));
    let happened = humantime::parse_rfc3339(text).map_or_else(|e| panic!("event time {text}: {e}"), unix_ns);
    Duration::from_nanos(received.saturating_sub(happened))
}

/// The event's kind (`model_file_opened`...).
#[must_use]
pub fn kind(event: &Value) -> &str {
    event["kind"].as_str().unwrap_or("")
}

/// The pid of the event's process.
#[must_use]
pub fn pid_of(event: &Value) -> u64 {
    event["process"]["pid"].as_u64().unwrap_or(0)
}

/// A u64 that the proto3 JSON mapping may print as a string.
#[must_use]
pub fn u64_of(value: &Value) -> u64 {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok())).unwrap_or(0)
}

/// Runs the actor under `name` (a copy in `dir`) with `args` and the `MW_ACTOR` script;
/// returns its pid after it exits successfully.
#[must_use]
pub fn run_actor(dir: &Path, name: &str, args: &[&str], script: &str) -> u32 {
    let actor = copy_actor(dir, name);
    let mut child = Command::new(&actor)
        .args(args)
        .env("MW_ACTOR", script)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the actor");
    let pid = child.id();
    let status = child.wait().expect("wait for the actor");
    assert!(status.success(), "actor {name} failed: {status}");
    pid
}

/// Starts the actor under `name` as user `uid` (an unprivileged insider), without
/// waiting. `dir` must be reachable by that user (see [`open_to_everyone`]).
#[must_use]
pub fn spawn_actor_as(dir: &Path, name: &str, args: &[&str], script: &str, uid: u32) -> Child {
    use std::os::unix::process::CommandExt as _;
    Command::new(copy_actor(dir, name))
        .args(args)
        .env("MW_ACTOR", script)
        .uid(uid)
        .gid(uid)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the actor")
}

/// Makes `dir` (a test's temp dir, 0700 by default) usable by other users.
pub fn open_to_everyone(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
}

/// The user the insider tests run as (`nobody`).
pub const NOBODY: u32 = 65_534;

/// Starts the actor under `name` without waiting for it (the caller kills it).
#[must_use]
pub fn spawn_actor(dir: &Path, name: &str, args: &[&str], script: &str) -> Child {
    Command::new(copy_actor(dir, name))
        .args(args)
        .env("MW_ACTOR", script)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the actor")
}

/// Copies the actor binary to `dir/name` (executable by everyone).
#[must_use]
pub fn copy_actor(dir: &Path, name: &str) -> PathBuf {
    let actor = dir.join(name);
    if !actor.exists() {
        std::fs::copy(workspace_binary("mw-actor"), &actor).expect("copy the actor");
    }
    actor
}

/// A running sensor's resident memory high-water mark, in KiB (`VmHWM`).
#[must_use]
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Creates a sparse file of `size` bytes that starts with `head`.
pub fn sparse_file(path: &Path, head: &[u8], size: u64) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    let file = std::fs::File::create(path).expect("create");
    std::io::Write::write_all(&mut &file, head).expect("write head");
    file.set_len(size).expect("extend (sparse)");
}

/// A minimal valid GGUF v3 header with `general.name` and `general.license`.
#[must_use]
pub fn gguf_header(name: &str, license: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // tensors
    out.extend_from_slice(&3u64.to_le_bytes()); // key/value pairs
    let mut string_kv = |key: &str, value: &str| {
        out.extend_from_slice(&(key.len() as u64).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&8u32.to_le_bytes()); // GGUF_TYPE_STRING
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    };
    string_kv("general.architecture", "llama");
    string_kv("general.name", name);
    string_kv("general.license", license);
    out
}

/// A gRPC client of the sensor's socket.
pub mod grpc {
    use std::path::Path;

    use proto::v1::sensor_client::SensorClient;
    use tonic::transport::Channel;

    /// Connects over the Unix socket.
    pub async fn connect(path: &Path) -> SensorClient<Channel> {
        let path = path.to_path_buf();
        let channel = tonic::transport::Endpoint::from_static("http://modelwatch.local")
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .expect("connect to the sensor socket");
        SensorClient::new(channel)
    }
}

/// The tests' Python (a venv with `tests/python/requirements.txt`), or why there is none.
///
/// # Errors
/// The venv is missing: the tests were not started by `cargo xtask test`.
pub fn test_python() -> Result<PathBuf, String> {
    let path = std::env::var_os("MODELWATCH_TEST_PYTHON").map(PathBuf::from).ok_or_else(|| {
        "MODELWATCH_TEST_PYTHON is not set: run the tests with `cargo xtask test`, which creates the venv"
            .to_owned()
    })?;
    if path.exists() { Ok(path) } else { Err(format!("{} does not exist", path.display())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_delay_reads_the_event_time() {
        let event = serde_json::json!({
            "time": "2026-11-30T17:05:01.502458932+00:00",
            "_received_unix_ns": 1_796_058_301_602_458_932u64,
        });
        assert_eq!(delivery_delay(&event), Duration::from_millis(100));
    }
}
