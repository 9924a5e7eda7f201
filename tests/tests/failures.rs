//! Start-up failures: one line on stderr naming the cause and the fix, a non-zero exit,
//! never a panic or a raw errno.

use std::process::{Command, Output};

use modelwatch_tests::{Sensor, require_privileges, workspace_binary};

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().map(str::to_owned).collect()
}

fn assert_one_clear_line(output: &Output, code: i32, needle: &str) {
    let lines = stderr_lines(output);
    assert_eq!(output.status.code(), Some(code), "exit code; stderr: {lines:?}");
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {lines:?}");
    assert!(lines[0].starts_with("modelwatch: "), "{lines:?}");
    assert!(lines[0].contains(needle), "{needle:?} not in {lines:?}");
    assert!(lines[0].contains("fix") || code == 2, "the line names a fix: {lines:?}");
    assert!(!lines[0].contains("panicked"), "{lines:?}");
}

#[test]
fn not_root_is_one_line_and_exit_1() {
    // setpriv drops to nobody; the check must come before anything is created.
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(workspace_binary("modelwatch"))
        .args(["run", "--socket"])
        .arg(dir.path().join("s.sock"))
        .output();
    let Ok(output) = output else {
        eprintln!("SKIPPED: setpriv (util-linux) is not available");
        return;
    };
    if setpriv_failed(&output) {
        return;
    }
    assert_one_clear_line(&output, 1, "needs root");
}

/// setpriv itself fails when we are not root (nothing to drop to).
fn setpriv_failed(output: &Output) -> bool {
    let text = String::from_utf8_lossy(&output.stderr);
    if text.starts_with("setpriv:") {
        eprintln!("SKIPPED: setpriv could not drop privileges here: {text}");
        return true;
    }
    false
}

#[test]
fn a_bad_configuration_file_is_named_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("modelwatch.toml");
    std::fs::write(&config, "[kernel]\nsize_treshold_bytes = 5\n").expect("write");
    let output = Command::new(workspace_binary("modelwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run modelwatch");
    assert_one_clear_line(&output, 2, "size_treshold_bytes");
    assert!(stderr_lines(&output)[0].contains(&config.display().to_string()));
}

#[test]
fn watch_without_a_sensor_says_how_to_start_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(workspace_binary("modelwatch"))
        .args(["watch", "--socket"])
        .arg(dir.path().join("none.sock"))
        .output()
        .expect("run modelwatch");
    assert_one_clear_line(&output, 1, "cannot reach the sensor");
}

#[test]
fn a_second_sensor_on_the_same_socket_fails_cleanly() {
    require_privileges!();
    let first = Sensor::start(&[]);
    let output = Command::new(workspace_binary("modelwatch"))
        .args(["run", "--socket"])
        .arg(&first.socket)
        .output()
        .expect("run modelwatch");
    // The live socket is not stolen: the first sensor still answers.
    assert_one_clear_line(&output, 1, "already serving");
    assert!(first.socket.exists());
}

#[test]
fn a_broken_stdout_stops_the_sensor_with_the_task_named() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(workspace_binary("modelwatch"))
        .args(["run", "--output", "json", "--socket"])
        .arg(dir.path().join("modelwatch.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start modelwatch");
    // The log shipper goes away: the next line the sensor prints fails.
    drop(child.stdout.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the sensor kept running with nowhere to print");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("essential task `stdout printer` ended"), "{stderr}");
}
