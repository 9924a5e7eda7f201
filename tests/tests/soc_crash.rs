//! End to end: the sensor is killed with `kill -9` mid-stream and restarted on the
//! same state directory. A Python client resumes from its last sequence number and
//! gets every event logged before the kill; what happened while no sensor ran is
//! either found by the start-up snapshot or announced (the new instance's status names
//! the previous instance and the time since which nothing was observed).

use std::time::Duration;

use modelwatch_tests::{
    Sensor, require_privileges,
    soc::{generate_stubs, model_files, python_or_skip, python_stream, seqs, status},
    spawn_actor,
};

#[test]
fn after_kill_9_a_client_resumes_and_loses_nothing_logged() {
    require_privileges!();
    let Some(python) = python_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let stubs = dir.path().join("stubs");
    generate_stubs(&python, &stubs);
    let home = dir.path().join("sensor");
    std::fs::create_dir_all(&home).expect("sensor directory");
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).expect("models");
    let _ = model_files(&models, 8);
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).expect("copies");

    let mut first = Sensor::start_in(&home, &[]);
    let first_instance = first.status["instance"].as_str().expect("instance").to_owned();
    // A flood of new model files keeps events coming while the sensor is killed.
    let mut churn = spawn_actor(
        dir.path(),
        "ollama",
        &["serve"],
        &format!("churn:{}:{}:6000", models.display(), copies.display()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let early = python_stream(&python, &stubs, &first.socket, &["--since", "1", "--max-events", "50"]);
    let resume_from = seqs(&early).last().copied().expect("events before the kill") + 1;
    // What the first instance printed (its stdout): every one of these was logged.
    let printed = first.collect(Duration::from_millis(300));
    first.kill_9();
    let printed_last = printed.iter().map(|e| modelwatch_tests::u64_of(&e["seq"])).max().unwrap_or(0);
    drop(first);

    // While no sensor runs: a runtime starts listening, and keeps listening.
    let mut listener = spawn_actor(dir.path(), "ollama", &["serve"], "listen:127.0.0.1:11434;sleep:30000");
    std::thread::sleep(Duration::from_millis(500));
    let _ = churn.wait();

    let mut second = Sensor::start_in(&home, &[]);
    let status = status(&second.socket);
    assert_eq!(status.previous_instance, first_instance, "the new instance names the previous one");
    assert!(status.unobserved_since.is_some(), "and since when nothing was observed");
    let second_instance = status.instance.clone();
    let new_first = second.status["seq"].as_str().and_then(|s| s.parse::<u64>().ok()).expect("status seq");
    assert!(
        new_first > printed_last,
        "sequence numbers continue after the kill: {new_first} > {printed_last}"
    );

    let resumed = python_stream(
        &python,
        &stubs,
        &second.socket,
        &["--since", &resume_from.to_string(), "--until-seq", &new_first.to_string(), "--idle-seconds", "20"],
    );
    let notices: Vec<_> = resumed.iter().filter(|e| e["seq"] == 0).collect();
    assert!(notices.is_empty(), "no gap announced: {notices:?}");
    assert_eq!(
        seqs(&resumed),
        (resume_from..=new_first).collect::<Vec<_>>(),
        "everything logged before the kill, then the new instance"
    );
    let before: Vec<_> = resumed.iter().filter(|e| e["seq"].as_u64() < Some(new_first)).collect();
    assert!(before.iter().all(|e| e["instance"] == first_instance.as_str()));
    assert_eq!(resumed.last().map(|e| e["instance"].clone()), Some(second_instance.clone().into()));
    assert_eq!(resumed.last().map(|e| e["kind"].clone()), Some("sensor_status".into()));

    // The listener that started while no sensor ran is found by the snapshot.
    let found = second.next_matching(Duration::from_secs(20), |e| {
        modelwatch_tests::kind(e) == "listener_opened"
            && e["listener_opened"]["port"] == 11434
            && e["listener_opened"]["snapshot"] == true
            && e["process"]["pid"] == listener.id()
    });
    let _ = listener.kill();
    let _ = listener.wait();
    assert!(found.is_some(), "the downtime's listener is in the start-up snapshot");
    second.stop();
}
