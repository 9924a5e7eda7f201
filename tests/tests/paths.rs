//! Path edge cases: the path comes from the kernel's dentries and mounts, so relative
//! opens, long paths, links, renames, deletions and other mount namespaces all report
//! the file the kernel really opened.

use std::{path::Path, process::Command, time::Duration};

use modelwatch_tests::{Sensor, copy_actor, gguf_header, kind, pid_of, require_privileges, run_actor};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn model(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(path, gguf_header("edge", "mit")).expect("model");
}

/// The first model event of `pid` of `event_kind`.
fn event_of(sensor: &mut Sensor, pid: u32, event_kind: &str) -> Value {
    sensor
        .next_matching(WAIT, |e| kind(e) == event_kind && pid_of(e) == u64::from(pid))
        .unwrap_or_else(|| panic!("no {event_kind} for pid {pid}"))
}

/// The first event of each of `kinds` for `pid`, whatever order they arrive in (each
/// file identity is identified on its own, so an open and a map may come either way).
fn events_of(sensor: &mut Sensor, pid: u32, kinds: &[&str]) -> Vec<Value> {
    let mut found: Vec<Option<Value>> = vec![None; kinds.len()];
    while found.iter().any(Option::is_none) {
        let event = sensor
            .next_matching(WAIT, |e| pid_of(e) == u64::from(pid) && kinds.contains(&kind(e)))
            .unwrap_or_else(|| panic!("pid {pid}: not all of {kinds:?} arrived: {found:?}"));
        let at = kinds.iter().position(|k| *k == kind(&event)).expect("a wanted kind");
        found[at].get_or_insert(event);
    }
    found.into_iter().flatten().collect()
}

fn file_of(event: &Value) -> &Value {
    let name = kind(event);
    &event[name]["file"]
}

#[test]
fn a_relative_open_through_a_directory_descriptor_is_absolute() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    model(&dir.path().join("weights/model.gguf"));
    let weights = dir.path().join("weights");
    let pid =
        run_actor(dir.path(), "loader", &[], &format!("openat:{}:model.gguf;sleep:300", weights.display()));
    let event = event_of(&mut sensor, pid, "model_file_opened");
    assert_eq!(file_of(&event)["path"], weights.join("model.gguf").display().to_string(), "{event}");
    assert_eq!(file_of(&event)["format"], "MODEL_FORMAT_GGUF");
}

#[test]
fn a_path_longer_than_256_bytes_is_whole() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut deep = dir.path().to_path_buf();
    for level in 0..8 {
        deep.push(format!("level-{level}-{}", "d".repeat(32)));
    }
    let target = deep.join("model.gguf");
    model(&target);
    assert!(target.display().to_string().len() > 300);
    let pid = run_actor(dir.path(), "loader", &[], &format!("open:{}", target.display()));
    let event = event_of(&mut sensor, pid, "model_file_opened");
    assert_eq!(file_of(&event)["path"], target.display().to_string());
    assert_eq!(file_of(&event)["path_truncated"], false);
}

#[test]
fn a_file_deleted_while_open_is_flagged_and_still_identified() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("gone.gguf");
    model(&target);
    let path = target.display().to_string();
    let pid = run_actor(dir.path(), "loader", &[], &format!("open:{path};unlink:{path};maplast;sleep:500"));
    let mapped = event_of(&mut sensor, pid, "model_file_mapped");
    assert_eq!(file_of(&mapped)["path"], path.as_str());
    assert_eq!(file_of(&mapped)["deleted"], true, "{mapped}");
    assert_eq!(file_of(&mapped)["format"], "MODEL_FORMAT_GGUF", "identified through the open descriptor");
}

#[test]
fn symlinks_resolve_to_the_target_and_hard_links_keep_their_name() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("store/real.gguf");
    model(&target);
    let symlink = dir.path().join("alias.gguf");
    std::os::unix::fs::symlink(&target, &symlink).expect("symlink");
    let hard = dir.path().join("hard.gguf");
    std::fs::hard_link(&target, &hard).expect("hard link");
    let via_symlink = run_actor(dir.path(), "loader", &[], &format!("open:{}", symlink.display()));
    let event = event_of(&mut sensor, via_symlink, "model_file_opened");
    assert_eq!(file_of(&event)["path"], target.display().to_string(), "the kernel opened the target");
    let via_hard = run_actor(dir.path(), "loader", &[], &format!("open:{}", hard.display()));
    let event = event_of(&mut sensor, via_hard, "model_file_opened");
    assert_eq!(file_of(&event)["path"], hard.display().to_string());
}

#[test]
fn a_rename_after_open_shows_the_new_name_at_map_time() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let before = dir.path().join("before.gguf");
    let after = dir.path().join("after.gguf");
    model(&before);
    let script = format!(
        "open:{};rename:{}:{};maplast;sleep:300",
        before.display(),
        before.display(),
        after.display()
    );
    let pid = run_actor(dir.path(), "loader", &[], &script);
    let both = events_of(&mut sensor, pid, &["model_file_opened", "model_file_mapped"]);
    let (opened, mapped) = (&both[0], &both[1]);
    assert_eq!(file_of(opened)["path"], before.display().to_string());
    assert_eq!(file_of(mapped)["path"], after.display().to_string());
    assert_eq!(file_of(opened)["identity"]["inode"], file_of(mapped)["identity"]["inode"]);
}

#[test]
fn a_model_in_another_mount_namespace_is_seen_as_that_process_sees_it() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("private");
    model(&source.join("model.gguf"));
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir_all(&mountpoint).expect("mountpoint");
    // The same path on the host holds something else: the sensor must read the
    // namespace's file, never fall back to this one.
    std::fs::write(mountpoint.join("model.gguf"), gguf_header("host-decoy", "mit")).expect("decoy");
    // Started after the files are written: their writes are not the events looked at.
    let mut sensor = Sensor::start(&[]);
    let actor = copy_actor(dir.path(), "loader");
    let inside = mountpoint.join("model.gguf");
    // A private mount namespace with a bind mount that only the actor sees.
    let script =
        format!("mount --bind {} {} && exec {}", source.display(), mountpoint.display(), actor.display());
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("MW_ACTOR", format!("open:{};sleep:500", inside.display()))
        .status();
    let Ok(status) = status else {
        eprintln!("SKIPPED: unshare (util-linux) is not available");
        return;
    };
    assert!(status.success(), "the namespaced actor failed: {status}");
    let event = sensor
        .next_matching(WAIT, |e| {
            kind(e) == "model_file_opened"
                && e["model_file_opened"]["file"]["path"] == inside.display().to_string()
        })
        .expect("the open inside the namespace, with the namespace's path");
    assert_eq!(
        file_of(&event)["format"],
        "MODEL_FORMAT_GGUF",
        "read through the process's own root: {event}"
    );
    let identity = file_of(&event)["identity"].clone();
    let analyzed = sensor
        .next_matching(WAIT, |e| kind(e) == "model_analyzed" && e["model_analyzed"]["identity"] == identity)
        .expect("the analysis of the namespace's file");
    assert_eq!(
        analyzed["model_analyzed"]["metadata"]["name"], "edge",
        "the host's file was read: {analyzed}"
    );
}
