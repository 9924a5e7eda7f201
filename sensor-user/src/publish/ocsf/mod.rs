//! Events as OCSF 1.8 JSON, for SIEMs. One table says which OCSF class each event
//! kind becomes; a test fails when a kind has no row (a new kind must be mapped
//! before it ships), and the end-to-end suite validates every kind against the 1.8.0
//! schema with the profiles declared here.
//!
//! | kind | OCSF class | activity |
//! |---|---|---|
//! | sensor_status | Application Lifecycle 6002 | Start |
//! | process_exec | Process Activity 1007 | Launch |
//! | process_exit | Process Activity 1007 | Terminate |
//! | model_file_opened | File System Activity 1001 | Open (with hashes) |
//! | model_file_mapped | Memory Activity 1004 | Map View |
//! | listener_opened | Network Activity 4001 | Listen |
//! | accelerator_used | File System Activity 1001 | Open (`gpu_info`) |
//! | accelerator_activity | Process Activity 1007 | Other ("Accelerator Activity"; the rates under `unmapped`) |
//! | events_lost | Event Log Activity 1008 | Other ("Events Lost") |
//! | model_hashed | Detection Finding 2004 with findings, else File System Activity 1001 Other ("Hash") |
//! | model_analyzed | Detection Finding 2004 with findings, else File System Activity 1001 Other ("Analyze") |
//! | candidate_file | File System Activity 1001 | Open |
//! | session_started / session_updated / session_ended | Application Lifecycle 6002 | Start / Update / Stop (the runtime as `app`) |
//! | finding (a verdict) | Detection Finding 2004 | Create |
//!
//! Model identity: 1.8 defines `ai_model` only on Process, API and Datastore Activity,
//! so file, memory and finding records carry it as `unmapped.ai_model` (in the 1.8
//! object's shape), beside the standard `file` with its SHA-256 `hashes`.

mod classes;
mod objects;
#[doc(hidden)]
pub mod samples;

use proto::v1::{Event, EventKind};
use serde_json::{Map, Value, json};

use crate::domain::event_kind::{kind_name, kind_of};

/// The OCSF schema version the records follow.
pub const VERSION: &str = "1.8.0";

/// The profiles the records use (declared in `metadata.profiles`).
pub const PROFILES: [&str; 2] = ["host", "container"];

/// A mapped event: its class, activity, severity and class-specific attributes.
pub(crate) struct Mapped {
    class_uid: u32,
    activity_id: u32,
    activity_name: &'static str,
    /// OCSF `severity_id` (1 Informational .. 5 Critical), usually the event's own.
    severity_id: u32,
    message: String,
    attributes: Map<String, Value>,
}

type Mapper = fn(&Event) -> Option<Mapped>;

/// Every event kind's mapping. One row per kind.
pub(crate) const MAPPINGS: &[(EventKind, Mapper)] = &[
    (EventKind::SensorStatus, classes::sensor_status),
    (EventKind::ProcessExec, classes::process_exec),
    (EventKind::ProcessExit, classes::process_exit),
    (EventKind::ModelFileOpened, classes::model_file_opened),
    (EventKind::ModelFileMapped, classes::model_file_mapped),
    (EventKind::ListenerOpened, classes::listener_opened),
    (EventKind::AcceleratorUsed, classes::accelerator_used),
    (EventKind::AcceleratorActivity, classes::accelerator_activity),
    (EventKind::EventsLost, classes::events_lost),
    (EventKind::ModelHashed, classes::model_hashed),
    (EventKind::ModelAnalyzed, classes::model_analyzed),
    (EventKind::CandidateFile, classes::candidate_file),
    (EventKind::SessionStarted, classes::session_started),
    (EventKind::SessionUpdated, classes::session_updated),
    (EventKind::SessionEnded, classes::session_ended),
    (EventKind::Finding, classes::policy_finding),
];

/// Class names and categories of the classes used.
const CLASSES: &[(u32, &str, u32, &str)] = &[
    (1001, "File System Activity", 1, "System Activity"),
    (1004, "Memory Activity", 1, "System Activity"),
    (1007, "Process Activity", 1, "System Activity"),
    (1008, "Event Log Activity", 1, "System Activity"),
    (2004, "Detection Finding", 2, "Findings"),
    (4001, "Network Activity", 4, "Network Activity"),
    (6002, "Application Lifecycle", 6, "Application Activity"),
];

const SEVERITY_NAMES: [&str; 6] = ["Unknown", "Informational", "Low", "Medium", "High", "Critical"];

/// The event as an OCSF record, and its class.
#[must_use]
pub fn record(event: &Event) -> (u32, Value) {
    let kind = kind_of(event.payload.as_ref());
    let mapped = MAPPINGS.iter().find(|(k, _)| *k == kind).and_then(|(_, map)| map(event));
    let Some(mapped) = mapped else { return (0, base_event(event, kind)) };
    let (class_name, category_uid, category_name) = CLASSES
        .iter()
        .find(|(uid, ..)| *uid == mapped.class_uid)
        .map_or(("Base Event", 0, "Uncategorized"), |(_, name, cat, cat_name)| (*name, *cat, *cat_name));
    let mut out = common(event, kind, mapped.severity_id, &mapped.message);
    let type_uid = u64::from(mapped.class_uid) * 100 + u64::from(mapped.activity_id);
    for (key, value) in [
        ("class_uid", json!(mapped.class_uid)),
        ("class_name", json!(class_name)),
        ("category_uid", json!(category_uid)),
        ("category_name", json!(category_name)),
        ("activity_id", json!(mapped.activity_id)),
        ("activity_name", json!(mapped.activity_name)),
        ("type_uid", json!(type_uid)),
        ("type_name", json!(format!("{class_name}: {}", mapped.activity_name))),
    ] {
        out.insert(key.into(), value);
    }
    for (key, value) in mapped.attributes {
        merge(&mut out, key, value);
    }
    (mapped.class_uid, Value::Object(out))
}

/// One JSON line.
#[must_use]
pub fn json_line(event: &Event) -> String {
    record(event).1.to_string()
}

/// What every record has: time, metadata (sequence and instance), device, severity,
/// and modelwatch's own kind and payload under `unmapped`.
fn common(event: &Event, kind: EventKind, severity_id: u32, message: &str) -> Map<String, Value> {
    let time_ms = event.time.as_ref().map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000));
    let severity = SEVERITY_NAMES.get(severity_id as usize).copied().unwrap_or("Unknown");
    // The payload in the proto3 JSON mapping, under its kind (nothing is lost).
    let payload =
        serde_json::to_value(event).ok().and_then(|mut v| v.get_mut(kind_name(kind)).map(Value::take));
    let mut out = Map::new();
    out.insert("time".into(), json!(time_ms));
    out.insert("severity_id".into(), json!(severity_id));
    out.insert("severity".into(), json!(severity));
    out.insert("message".into(), json!(message));
    out.insert(
        "metadata".into(),
        json!({
            "version": VERSION,
            "product": {"name": "modelwatch", "vendor_name": "modelwatch", "version": env!("CARGO_PKG_VERSION")},
            "uid": format!("{}:{}", event.instance, event.seq),
            "sequence": event.seq,
            "log_name": "modelwatch",
            "profiles": PROFILES,
        }),
    );
    out.insert("device".into(), objects::device(&event.node));
    let mut unmapped = Map::new();
    unmapped.insert("kind".into(), json!(kind_name(kind)));
    unmapped.insert("seq".into(), json!(event.seq));
    unmapped.insert("instance".into(), json!(event.instance));
    if !event.session_id.is_empty() {
        unmapped.insert("session_id".into(), json!(event.session_id));
    }
    if let Some(payload) = payload {
        unmapped.insert(kind_name(kind).into(), payload);
    }
    out.insert("unmapped".into(), Value::Object(unmapped));
    out
}

/// Adds `value` at `key`, merging objects (so a class can add to `device` or
/// `unmapped`).
fn merge(out: &mut Map<String, Value>, key: String, value: Value) {
    match (out.get_mut(&key), value) {
        (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
        (_, value) => {
            out.insert(key, value);
        }
    }
}

/// A kind without a mapping (the tests forbid it): OCSF Base Event, so nothing is lost.
fn base_event(event: &Event, kind: EventKind) -> Value {
    let mut out = common(event, kind, 1, kind_name(kind));
    for (key, value) in [
        ("class_uid", json!(0)),
        ("class_name", json!("Base Event")),
        ("category_uid", json!(0)),
        ("category_name", json!("Uncategorized")),
        ("activity_id", json!(99)),
        ("activity_name", json!(kind_name(kind))),
        ("type_uid", json!(99)),
    ] {
        out.insert(key.into(), value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
