//! Least privilege, measured: the real sensor under `setpriv` with exactly the kept
//! capability set (`KEPT_CAPABILITIES`), then with each one dropped, facing the four
//! ways it reads another user's model file:
//!
//! - `private-held`: a 0600 file of `nobody`, held open and unlinked (only its
//!   descriptor leads to it: `/proc/<pid>/fd`);
//! - `public-held`: the same, world-readable;
//! - `private-on-disk`: a 0600 file in a 0700 directory of `nobody`, still on disk (the
//!   path works too, in the sensor's own mount namespace);
//! - `mapped-closed`: a world-readable file mapped, its descriptor closed and its name
//!   unlinked (only `/proc/<pid>/map_files` leads to it).
//!
//! Measured (6.18): without DAC_READ_SEARCH nothing of another user's is read, not even
//! a world-readable file, because `/proc/<pid>/fd` and `/map_files` are 0500
//! directories of the process's owner. Without SYS_PTRACE only the path route is left.
//!
//! Each run prints what broke; the test fails when the measured table differs from the
//! claimed one (the README's capability table).

use std::{path::Path, process::Child, time::Duration};

use modelwatch_tests::{
    NOBODY, Sensor, deploy::KEPT_CAPABILITIES, gguf_header, kind, open_to_everyone, pid_of,
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
        // Even a world-readable file: /proc/<pid>/fd and /map_files are directories of
        // the process's owner, mode 0500 (fs/proc/fd.c: proc_fd_permission).
        "DAC_READ_SEARCH" => Outcome::Read {
            private_held: false,
            public_held: false,
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
    let private_dir = dir.path().join("private");
    std::fs::create_dir(&private_dir).expect("mkdir");
    let model = gguf_header(label, "mit");
    let plant = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path, &model).expect("write model");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown");
    };
    let (private, public, on_disk, mapped) = (
        dir.path().join("private-held.gguf"),
        dir.path().join("public-held.gguf"),
        private_dir.join("private-on-disk.gguf"),
        dir.path().join("mapped-closed.gguf"),
    );
    plant(&private, 0o600);
    plant(&public, 0o644);
    plant(&on_disk, 0o600);
    // Named like nothing when opened (no candidate), a model's name when mapped.
    let mapped_tmp = dir.path().join("mapped-closed.tmp");
    plant(&mapped_tmp, 0o644);
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::os::unix::fs::chown(&private_dir, Some(NOBODY), Some(NOBODY)).expect("chown dir");
        std::fs::set_permissions(&private_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod dir");
    }
    let p = |path: &Path| path.display().to_string();
    let scripts = [
        format!("open:{0};unlink:{0};sleep:4000", p(&private)),
        format!("open:{0};unlink:{0};sleep:4000", p(&public)),
        format!("open:{};sleep:4000", p(&on_disk)),
        format!(
            "open:{0};rename:{0}:{1};maplast;closelast;unlink:{1};sleep:4000",
            p(&mapped_tmp),
            p(&mapped)
        ),
    ];
    let mut actors: Vec<Child> = scripts
        .iter()
        .enumerate()
        .map(|(i, script)| spawn_actor_as(dir.path(), &format!("reader{i}"), &[], script, NOBODY))
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
    if std::process::Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: setpriv (util-linux) is not installed");
        return;
    }
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

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "?".into(), |r| r.trim().to_owned())
}
