//! Least privilege, measured: the real sensor under `setpriv` with exactly the kept
//! capability set (`KEPT_CAPABILITIES`), then with each one dropped, facing the four
//! ways it reads another user's model file:
//!
//! - `private-held`: a 0600 file of `nobody`, held open by a process in a mount
//!   namespace of its own (a container's view: only `/proc/<pid>/fd` and
//!   `/proc/<pid>/root` lead to it);
//! - `public-held`: the same, world-readable;
//! - `private-on-disk`: a 0600 file in a 0700 directory of `nobody`, still on disk (the
//!   path works too, in the sensor's own mount namespace);
//! - `mapped-closed`: a world-readable file deleted, then mapped, its descriptor closed
//!   (only `/proc/<pid>/map_files` leads to it).
//!
//! Measured (6.18): without DAC_READ_SEARCH `/proc/<pid>/fd` and `/map_files` are
//! closed (0500 directories of the process's owner), so only a world-readable file
//! reached through `/proc/<pid>/root` is read. Without SYS_PTRACE only the sensor's own
//! view of a path is left.
//!
//! Each run prints what broke; the test fails when the measured table differs from the
//! claimed one (the README's capability table).

use std::{path::Path, process::Child, time::Duration};

use modelwatch_tests::{
    NOBODY, Sensor, copy_actor, deploy::KEPT_CAPABILITIES, gguf_header, kind, open_to_everyone, pid_of,
    require_privileges, spawn_actor_as,
};
use serde_json::Value;

/// How a sensor fared: it did not start (why), or which scenarios it could read.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    NoStart,
    Read { private_held: bool, public_held: bool, private_on_disk: bool, mapped_closed: bool },
}

const ALL_READ: Outcome =
    Outcome::Read { private_held: true, public_held: true, private_on_disk: true, mapped_closed: true };

/// The claim: what each capability set can do.
fn expected(dropped: &str) -> Outcome {
    match dropped {
        "BPF" | "PERFMON" => Outcome::NoStart,
        "SYS_PTRACE" => Outcome::Read {
            private_held: false,
            public_held: false,
            private_on_disk: true,
            mapped_closed: false,
        },
        // /proc/<pid>/fd and /map_files are 0500 directories of the process's owner
        // (fs/proc/fd.c: proc_fd_permission): only /proc/<pid>/root still leads to a
        // world-readable file.
        "DAC_READ_SEARCH" => Outcome::Read {
            private_held: false,
            public_held: true,
            private_on_disk: false,
            mapped_closed: false,
        },
        "CHECKPOINT_RESTORE" => Outcome::Read {
            private_held: true,
            public_held: true,
            private_on_disk: true,
            mapped_closed: false,
        },
        _ => ALL_READ,
    }
}

fn setpriv(capabilities: &[&str]) -> Vec<String> {
    let set: Vec<String> = capabilities.iter().map(|c| format!("+{}", c.to_ascii_lowercase())).collect();
    vec![
        "setpriv".into(),
        format!("--bounding-set=-all,{}", set.join(",")),
        "--inh-caps=-all".into(),
        "--".into(),
    ]
}

/// One sensor with `capabilities`, the four scenarios, what it could read.
fn measure(capabilities: &[&str], label: &str) -> (Outcome, String) {
    let wrapper = setpriv(capabilities);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut sensor = match Sensor::start_under(&wrapper, &["--all-candidates", "--set", "hash.enabled=false"])
    {
        Ok(sensor) => sensor,
        Err(failure) => return (Outcome::NoStart, failure),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    open_to_everyone(dir.path());
    let model = gguf_header(label, "mit");
    // Each file in a directory of its own, owned by `nobody`.
    let plant = |scenario: &str, name: &str, file_mode: u32, dir_mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        let home = dir.path().join(scenario);
        std::fs::create_dir(&home).expect("mkdir");
        let path = home.join(name);
        std::fs::write(&path, &model).expect("write model");
        for (p, mode) in [(&path, file_mode), (&home, dir_mode)] {
            std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).expect("chown");
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        (home.display().to_string(), path.display().to_string())
    };
    let (_, private) = plant("private-held", "model.gguf", 0o600, 0o755);
    let (_, public) = plant("public-held", "model.gguf", 0o644, 0o755);
    let (_, on_disk) = plant("private-on-disk", "model.gguf", 0o600, 0o700);
    // Named like nothing when opened (no candidate); renamed to a model's name and
    // deleted before it is mapped, so the map record already carries the final
    // identity and no path leads to it.
    let (_, mapped_tmp) = plant("mapped-closed", "model.tmp", 0o644, 0o755);
    let mapped = mapped_tmp.replace("model.tmp", "model.gguf");
    // The held files are opened in a mount namespace of their own (as in a container):
    // the sensor may not use its own view of the path, only /proc/<pid>.
    let in_own_mount_namespace = [true, true, false, false];
    let scripts = [
        format!("open:{private};sleep:4000"),
        format!("open:{public};sleep:4000"),
        format!("open:{on_disk};sleep:4000"),
        format!(
            "open:{mapped_tmp};rename:{mapped_tmp}:{mapped};unlink:{mapped};maplast;closelast;sleep:4000"
        ),
    ];
    let mut actors: Vec<Child> = scripts
        .iter()
        .zip(in_own_mount_namespace)
        .enumerate()
        .map(|(i, (script, unshared))| {
            let name = format!("reader{i}");
            if unshared {
                spawn_unshared_as_nobody(dir.path(), &name, script)
            } else {
                spawn_actor_as(dir.path(), &name, &[], script, NOBODY)
            }
        })
        .collect();
    let pids: Vec<u64> = actors.iter().map(|a| u64::from(a.id())).collect();
    let mut read = [None; 4];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while read.iter().any(Option::is_none) && std::time::Instant::now() < deadline {
        let Some(event) = sensor.next_matching(Duration::from_secs(1), |e| pids.contains(&pid_of(e))) else {
            continue;
        };
        let Some(index) = pids.iter().position(|p| *p == pid_of(&event)) else { continue };
        eprintln!("{label}: scenario {index}: {} {}", kind(&event), event["candidate_file"]["outcome"]);
        if let Some(verdict) = verdict(&event) {
            read[index].get_or_insert(verdict);
        }
    }
    for (i, actor) in actors.iter_mut().enumerate() {
        if let Ok(Some(status)) = actor.try_wait() {
            eprintln!("{label}: actor {i} ended early: {status}");
        }
        let _ = actor.kill();
        let _ = actor.wait();
    }
    let got = |i: usize| read[i].unwrap_or_else(|| panic!("{label}: no event for scenario {i} within 30 s"));
    let outcome = Outcome::Read {
        private_held: got(0),
        public_held: got(1),
        private_on_disk: got(2),
        mapped_closed: got(3),
    };
    (outcome, String::new())
}

/// The actor as `nobody` in a new mount namespace (`unshare` then `setpriv`: both exec,
/// so the pid is the actor's).
fn spawn_unshared_as_nobody(dir: &Path, name: &str, script: &str) -> Child {
    let nobody = NOBODY.to_string();
    std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "setpriv"])
        .args([
            format!("--reuid={nobody}"),
            format!("--regid={nobody}"),
            "--clear-groups".into(),
            "--inh-caps=-all".into(),
        ])
        .arg(copy_actor(dir, name))
        .env("MW_ACTOR", script)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("unshare the actor")
}

/// Read (a model event) or not (a candidate the sensor could not read); `None` for
/// events that say neither.
fn verdict(event: &Value) -> Option<bool> {
    match kind(event) {
        "model_file_opened" | "model_file_mapped" => Some(true),
        "candidate_file" => match event["candidate_file"]["outcome"].as_str() {
            Some("unreadable" | "vanished" | "replaced") => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn each_kept_capability_is_needed_and_the_set_is_enough() {
    require_privileges!();
    if modelwatch_tests::skip_in_guest("the capability table is measured on the host") {
        return;
    }
    if std::process::Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: setpriv (util-linux) is not installed");
        return;
    }
    let _paranoid = PerfParanoid::at_most_2();
    let kept: Vec<&str> = KEPT_CAPABILITIES.iter().map(|k| k.name).collect();
    let mut table = vec![
        "| dropped | starts | private-held | public-held | private-on-disk | mapped-closed |".to_owned(),
    ];
    let mut mismatches = Vec::new();
    let mut runs: Vec<(String, Vec<&str>, Outcome)> = vec![("(none)".into(), kept.clone(), ALL_READ)];
    for dropped in &kept {
        let set: Vec<&str> = kept.iter().copied().filter(|c| c != dropped).collect();
        runs.push(((*dropped).to_owned(), set, expected(dropped)));
    }
    // Kernels before 5.9 have no CAP_CHECKPOINT_RESTORE: SYS_ADMIN opens map_files too.
    let mut with_admin: Vec<&str> = kept.iter().copied().filter(|c| *c != "CHECKPOINT_RESTORE").collect();
    with_admin.push("SYS_ADMIN");
    runs.push(("CHECKPOINT_RESTORE, SYS_ADMIN added".into(), with_admin, ALL_READ));
    for (dropped, set, claim) in runs {
        let (measured, why) = measure(&set, &dropped);
        let row = match &measured {
            Outcome::NoStart => format!("| {dropped} | no: {why} | - | - | - | - |"),
            Outcome::Read { private_held, public_held, private_on_disk, mapped_closed } => {
                let yes = |b: &bool| if *b { "read" } else { "NOT READ" };
                format!(
                    "| {dropped} | yes | {} | {} | {} | {} |",
                    yes(private_held),
                    yes(public_held),
                    yes(private_on_disk),
                    yes(mapped_closed)
                )
            }
        };
        eprintln!("{row}");
        table.push(row);
        if measured != claim {
            mismatches.push(format!("dropping {dropped}: measured {measured:?}, claimed {claim:?}"));
        }
    }
    eprintln!("capabilities, measured on {}:\n{}", kernel(), table.join("\n"));
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Debian's kernels default `kernel.perf_event_paranoid` to 3, a Debian patch under
/// which `perf_event_open` (how tracepoints are attached) needs CAP_SYS_ADMIN whatever
/// CAP_PERFMON says. The README tells such nodes to set 2; the test does the same for
/// its duration and puts the old value back.
struct PerfParanoid(Option<String>);

impl PerfParanoid {
    const PATH: &str = "/proc/sys/kernel/perf_event_paranoid";

    fn at_most_2() -> Self {
        let old = std::fs::read_to_string(Self::PATH).unwrap_or_default().trim().to_owned();
        if old.parse::<i32>().is_ok_and(|level| level > 2) {
            eprintln!("kernel.perf_event_paranoid is {old} (Debian's restriction): set to 2 for this test");
            std::fs::write(Self::PATH, "2").expect("set kernel.perf_event_paranoid");
            return Self(Some(old));
        }
        Self(None)
    }
}

impl Drop for PerfParanoid {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old);
        }
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "?".into(), |r| r.trim().to_owned())
}
