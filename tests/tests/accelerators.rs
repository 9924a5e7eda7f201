//! End to end, without a GPU: a device node that aliases a harmless character device
//! (`/dev/full`, 1:7) is declared an accelerator through the configuration; a fake
//! runtime opens it and issues ioctls at a known rate.

use std::{os::unix::ffi::OsStrExt as _, time::Duration};

use modelwatch_tests::{Sensor, kind, pid_of, require_privileges, spawn_actor, u64_of};

const RATE: u64 = 200;

fn device_node(dir: &std::path::Path) -> std::path::PathBuf {
    let node = dir.join("nvidia0");
    let path = std::ffi::CString::new(node.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid C string; root may create device nodes.
    let rc = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 7)) };
    assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
    node
}

#[test]
fn an_unapproved_process_driving_an_accelerator_is_seen_measured_and_judged() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = device_node(dir.path());
    let config = dir.path().join("modelwatch.toml");
    std::fs::write(
        &config,
        "[accelerators]\ndevices = [{ major = 1, first_minor = 7, last_minor = 7, class = \"nvidia_gpu\" }]\n",
    )
    .expect("config");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        "[policy]\naccelerator_window_seconds = 5\naccelerator_min_ioctls_per_second = 50\n",
    )
    .expect("catalog");
    let mut sensor = Sensor::start(&[
        "--config",
        &config.display().to_string(),
        "--catalog",
        &catalog.display().to_string(),
    ]);
    let mut actor = spawn_actor(dir.path(), "notepad", &[], &format!("ioctl:{}:{RATE}:8000", node.display()));
    let pid = u64::from(actor.id());
    let used = sensor
        .next_matching(Duration::from_secs(10), |e| kind(e) == "accelerator_used" && pid_of(e) == pid)
        .expect("accelerator_used for an unmarked process");
    assert_eq!(used["accelerator_used"]["kind"], "nvidia_gpu", "{used}");
    assert_eq!(
        (used["accelerator_used"]["major"].as_u64(), used["accelerator_used"]["minor"].as_u64()),
        (Some(1), Some(7))
    );
    assert_eq!(used["accelerator_used"]["device"], node.display().to_string());
    let activity = sensor
        .next_matching(Duration::from_secs(15), |e| kind(e) == "accelerator_activity" && pid_of(e) == pid)
        .expect("sustained activity");
    let measured = activity["accelerator_activity"]["ioctls_per_second"].as_f64().unwrap_or(0.0);
    eprintln!("measured {measured:.1} ioctls/s for a steady {RATE}/s; {activity}");
    assert_eq!(activity["accelerator_activity"]["sustained"], true);
    assert!(
        (measured - RATE as f64).abs() <= RATE as f64 * 0.1,
        "rate {measured} is not within 10% of {RATE}"
    );
    assert!(u64_of(&activity["accelerator_activity"]["ioctls"]) > 0);
    let finding = sensor
        .next_matching(Duration::from_secs(10), |e| {
            kind(e) == "finding"
                && pid_of(e) == pid
                && e["finding"]["verdict"]["verdict"] == "unapproved_accelerator_use"
        })
        .expect("a finding for the unapproved process");
    assert_eq!(finding["finding"]["subject"], "session");
    let _ = actor.kill();
    let _ = actor.wait();
}
