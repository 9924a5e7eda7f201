//! End to end: listeners on inference ports, with their exposure.

use std::time::Duration;

use modelwatch_tests::{Sensor, kind, pid_of, require_privileges, run_actor};

const WAIT: Duration = Duration::from_secs(20);

fn listener(sensor: &mut Sensor, pid: u32, port: u64) -> serde_json::Value {
    sensor
        .next_matching(WAIT, |e| {
            kind(e) == "listener_opened"
                && pid_of(e) == u64::from(pid)
                && e["listener_opened"]["port"] == port
        })
        .unwrap_or_else(|| panic!("no listener_opened for port {port} of pid {pid}"))
}

#[test]
fn loopback_listener_on_the_ollama_port() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = run_actor(dir.path(), "some-server", &[], "listen:127.0.0.1:11434");
    let event = listener(&mut sensor, pid, 11434);
    let listen = &event["listener_opened"];
    assert_eq!(listen["address"], "127.0.0.1");
    assert_eq!(listen["exposure"], "EXPOSURE_LOOPBACK");
    assert_eq!(listen["family"], "ipv4");
    assert_eq!(listen["reasons"], serde_json::json!(["watched_port"]));
}

#[test]
fn all_interfaces_listener_is_exposed() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let v4 = run_actor(dir.path(), "some-server", &[], "listen:0.0.0.0:8000");
    assert_eq!(listener(&mut sensor, v4, 8000)["listener_opened"]["exposure"], "EXPOSURE_ALL_INTERFACES");
    let v6 = run_actor(dir.path(), "some-server", &[], "listen:[::]:7860");
    let event = listener(&mut sensor, v6, 7860);
    assert_eq!(event["listener_opened"]["exposure"], "EXPOSURE_ALL_INTERFACES");
    assert_eq!(event["listener_opened"]["family"], "ipv6");
}

#[test]
fn unwatched_port_of_an_ordinary_process_is_not_reported_but_a_runtimes_is() {
    require_privileges!();
    let mut sensor = Sensor::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ordinary = run_actor(dir.path(), "webapp", &[], "listen:127.0.0.1:0;sleep:300");
    // A runtime (marked at exec) listening on a random port, like Ollama's runner.
    let runtime = run_actor(dir.path(), "llama-server", &[], "sleep:300;listen:127.0.0.1:0;sleep:300");
    // Every event of the window, so that the ordinary process's listener, were it
    // reported, could not be skipped on the way to the runtime's.
    let events = sensor.collect(Duration::from_secs(3));
    let listener_of =
        |pid: u32| events.iter().find(|e| kind(e) == "listener_opened" && pid_of(e) == u64::from(pid));
    let event = listener_of(runtime).expect("the runtime's listener on a random port");
    assert_eq!(event["listener_opened"]["reasons"], serde_json::json!(["marked_runtime"]));
    assert_eq!(event["process"]["runtime"], "RUNTIME_LLAMA_CPP");
    assert!(listener_of(ordinary).is_none(), "an ordinary process on an unwatched port was reported");
}
