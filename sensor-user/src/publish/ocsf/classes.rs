//! One mapper per event kind (see the table in `mod.rs`).

use proto::v1::{Event, Exposure, Finding, InferenceSession, LossSource, ModelFile, Runtime, event::Payload};
use serde_json::{Map, Value, json};

use super::{Mapped, objects};
use crate::publish::filter::severity_of;

fn severity(event: &Event) -> u32 {
    event.payload.as_ref().map_or(1, |p| u32::try_from(severity_of(p) as i32).unwrap_or(1))
}

fn attributes(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn mapped(
    event: &Event,
    (class_uid, activity_id, activity_name): (u32, u32, &'static str),
    message: String,
    attributes: Map<String, Value>,
) -> Option<Mapped> {
    Some(Mapped { class_uid, activity_id, activity_name, severity_id: severity(event), message, attributes })
}

fn process_name(event: &Event) -> String {
    event.process.as_ref().map_or_else(String::new, |p| {
        let name = if p.exe.is_empty() { &p.comm } else { &p.exe };
        format!("{name} (pid {})", p.pid)
    })
}

/// Application Lifecycle 6002, Start: the sensor started (its hooks and what it lacks).
pub(super) fn sensor_status(event: &Event) -> Option<Mapped> {
    let Some(Payload::SensorStatus(status)) = &event.payload else { return None };
    let mut message = format!("modelwatch {} started on kernel {}", status.version, status.kernel);
    if !status.degraded.is_empty() {
        message.push_str(&format!("; degraded: {}", status.degraded.join("; ")));
    }
    let mut device = objects::device(&event.node);
    device["os"]["kernel_release"] = json!(status.kernel);
    mapped(
        event,
        (6002, 3, "Start"),
        message,
        attributes([
            ("app", json!({"name": "modelwatch", "vendor_name": "modelwatch", "version": status.version})),
            ("device", device),
        ]),
    )
}

/// Process Activity 1007, Launch: the new process, started by its parent.
pub(super) fn process_exec(event: &Event) -> Option<Mapped> {
    let process = event.process.as_ref()?;
    let actor = json!({"process": {"pid": if process.ppid == 0 { process.pid } else { process.ppid }}});
    mapped(
        event,
        (1007, 1, "Launch"),
        format!("process started: {}", process_name(event)),
        attributes([("process", objects::process(process)), ("actor", actor)]),
    )
}

/// Process Activity 1007, Terminate.
pub(super) fn process_exit(event: &Event) -> Option<Mapped> {
    let Some(Payload::ProcessExit(exit)) = &event.payload else { return None };
    let process = event.process.as_ref()?;
    mapped(
        event,
        (1007, 2, "Terminate"),
        format!("process exited: {} code {} signal {}", process_name(event), exit.exit_code, exit.signal),
        attributes([
            ("process", objects::process(process)),
            ("actor", objects::actor(Some(process))),
            ("exit_code", json!(exit.exit_code)),
        ]),
    )
}

fn with_model(mut attributes: Map<String, Value>, file: &ModelFile) -> Map<String, Value> {
    attributes.insert("unmapped".into(), json!({"ai_model": objects::ai_model(file)}));
    attributes
}

/// File System Activity 1001, Open, with the file's hashes when known.
pub(super) fn model_file_opened(event: &Event) -> Option<Mapped> {
    let Some(Payload::ModelFileOpened(opened)) = &event.payload else { return None };
    let file = opened.file.as_ref()?;
    let attributes =
        attributes([("file", objects::model_file(file)), ("actor", objects::actor(event.process.as_ref()))]);
    mapped(
        event,
        (1001, 14, "Open"),
        format!("model file opened: {} by {}", file.path, process_name(event)),
        with_model(attributes, file),
    )
}

/// Memory Activity 1004, Map View. The class has no `file`: the mapped file is an
/// observable and in `unmapped.file`.
pub(super) fn model_file_mapped(event: &Event) -> Option<Mapped> {
    let Some(Payload::ModelFileMapped(map)) = &event.payload else { return None };
    let file = map.file.as_ref()?;
    let process = event.process.as_ref()?;
    let mut attributes = with_model(
        attributes([
            ("process", objects::process(process)),
            ("actor", objects::actor(Some(process))),
            ("base_address", json!(format!("{:#x}", map.address))),
            ("size", json!(map.length)),
            ("requested_permissions", json!(map.prot)),
            (
                "observables",
                json!([{"name": "file.path", "type_id": 45, "type": "File Path", "value": file.path}]),
            ),
        ]),
        file,
    );
    if let Some(Value::Object(unmapped)) = attributes.get_mut("unmapped") {
        unmapped.insert("file".into(), objects::model_file(file));
    }
    mapped(
        event,
        (1004, 9, "Map View"),
        format!("model file mapped: {} by {}", file.path, process_name(event)),
        attributes,
    )
}

/// Network Activity 4001, Listen: the listening socket is the responder.
pub(super) fn listener_opened(event: &Event) -> Option<Mapped> {
    let Some(Payload::ListenerOpened(listener)) = &event.payload else { return None };
    let exposure = Exposure::try_from(listener.exposure).unwrap_or_default();
    let version = if listener.family == "ipv6" { 6 } else { 4 };
    let mut endpoint = Map::new();
    endpoint.insert("port".into(), json!(listener.port));
    if !listener.address.is_empty() {
        endpoint.insert("ip".into(), json!(listener.address));
    }
    let boundary = match exposure {
        Exposure::Loopback => json!({"boundary_id": 1, "boundary": "Localhost"}),
        _ => json!({}),
    };
    let mut connection = json!({
        "direction_id": 1,
        "direction": "Inbound",
        "protocol_name": listener.protocol,
        "protocol_num": 6,
        "protocol_ver_id": version,
    });
    if let (Value::Object(c), Value::Object(b)) = (&mut connection, boundary) {
        c.extend(b);
    }
    mapped(
        event,
        (4001, 7, "Listen"),
        format!("listener opened: {}:{} by {}", listener.address, listener.port, process_name(event)),
        attributes([
            ("dst_endpoint", Value::Object(endpoint)),
            ("connection_info", connection),
            ("actor", objects::actor(event.process.as_ref())),
        ]),
    )
}

/// File System Activity 1001, Open of the device node, with `gpu_info`.
pub(super) fn accelerator_used(event: &Event) -> Option<Mapped> {
    let Some(Payload::AcceleratorUsed(accel)) = &event.payload else { return None };
    let mut device = objects::device(&event.node);
    device["hw_info"] = objects::gpu_info(&accel.kind);
    mapped(
        event,
        (1001, 14, "Open"),
        format!("accelerator used: {} ({}) by {}", accel.device, accel.kind, process_name(event)),
        attributes([
            ("file", objects::file_at(&accel.device, 3)),
            ("actor", objects::actor(event.process.as_ref())),
            ("device", device),
        ]),
    )
}

/// Process Activity 1007, Other ("Accelerator Activity"): a process's ioctl rate on
/// accelerator devices (a lower bound on use, not utilisation), with NVML figures
/// where present. 1.8 has no class for device load; the figures are in the payload
/// under `unmapped.accelerator_activity`.
pub(super) fn accelerator_activity(event: &Event) -> Option<Mapped> {
    let Some(Payload::AcceleratorActivity(activity)) = &event.payload else { return None };
    let process = event.process.as_ref()?;
    let mut device = objects::device(&event.node);
    device["hw_info"] = objects::gpu_info(activity.kinds.first().map_or("", String::as_str));
    let state = if activity.sustained { "sustained" } else { "ended" };
    mapped(
        event,
        (1007, 99, "Accelerator Activity"),
        format!(
            "accelerator activity {state}: {:.0} ioctls/s over {} s by {}",
            activity.ioctls_per_second,
            activity.window_seconds,
            process_name(event)
        ),
        attributes([
            ("process", objects::process(process)),
            ("actor", objects::actor(Some(process))),
            ("device", device),
        ]),
    )
}

/// Event Log Activity 1008: events that will never be in the stream, and why.
pub(super) fn events_lost(event: &Event) -> Option<Mapped> {
    let Some(Payload::EventsLost(lost)) = &event.payload else { return None };
    let source = LossSource::try_from(lost.source).unwrap_or_default();
    let mut out = mapped(
        event,
        (1008, 99, "Events Lost"),
        format!("{} events lost ({})", lost.count, source.as_str_name()),
        attributes([
            ("count", json!(lost.count)),
            ("status_id", json!(2)),
            ("status", json!("Failure")),
            ("log_name", json!("modelwatch")),
            ("log_provider", json!("modelwatch")),
            ("actor", json!({"app_name": "modelwatch"})),
        ]),
    )?;
    // A blind spot matters to a SOC more than any one event.
    out.severity_id = 3;
    Some(out)
}

/// Detection Finding 2004 for what was found in a file, created now.
fn finding(
    event: &Event,
    title: &str,
    findings: &[Finding],
    file: &Value,
    model: Option<Value>,
) -> Option<Mapped> {
    let descriptions: Vec<String> = findings.iter().map(|f| format!("{}: {}", f.kind, f.message)).collect();
    let types: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
    let severity_id = severity(event);
    let mut attributes = attributes([
        (
            "finding_info",
            json!({
                "uid": format!("{}:{}", event.instance, event.seq),
                "title": title,
                "desc": descriptions.join("; "),
                "types": types,
                "analytic": {"name": "modelwatch model analysis", "type_id": 1, "type": "Rule"},
                "data_sources": ["modelwatch"],
            }),
        ),
        ("evidences", json!([{"file": file}])),
        ("is_alert", json!(severity_id >= 3)),
        ("status_id", json!(1)),
        ("status", json!("New")),
    ]);
    if let Some(model) = model {
        attributes.insert("unmapped".into(), json!({"ai_model": model}));
    }
    Some(Mapped {
        class_uid: 2004,
        activity_id: 1,
        activity_name: "Create",
        severity_id,
        message: descriptions.join("; "),
        attributes,
    })
}

/// The file's digest: a Detection Finding if it contradicts the name's, else File
/// System Activity, Other ("Hash").
pub(super) fn model_hashed(event: &Event) -> Option<Mapped> {
    let Some(Payload::ModelHashed(hashed)) = &event.payload else { return None };
    let file = objects::identified_file(&hashed.path, hashed.identity.as_ref(), &hashed.sha256);
    if !hashed.findings.is_empty() {
        return finding(event, &format!("model file digest: {}", hashed.path), &hashed.findings, &file, None);
    }
    mapped(
        event,
        (1001, 99, "Hash"),
        format!("model file hashed: {} sha256 {}", hashed.path, hashed.sha256),
        attributes([("file", file), ("actor", objects::actor(event.process.as_ref()))]),
    )
}

/// Deep analysis of a model: a Detection Finding when it found something, else File
/// System Activity, Other ("Analyze").
pub(super) fn model_analyzed(event: &Event) -> Option<Mapped> {
    let Some(Payload::ModelAnalyzed(analyzed)) = &event.payload else { return None };
    let file = objects::identified_file(&analyzed.path, analyzed.identity.as_ref(), "");
    let as_model = ModelFile {
        path: analyzed.path.clone(),
        metadata: analyzed.metadata.clone(),
        provenance: analyzed.provenance.clone(),
        ..ModelFile::default()
    };
    let model = objects::ai_model(&as_model);
    if !analyzed.findings.is_empty() {
        let title = format!("model file analysis: {}", analyzed.path);
        return finding(event, &title, &analyzed.findings, &file, Some(model));
    }
    let attributes = attributes([
        ("file", file),
        ("actor", objects::actor(event.process.as_ref())),
        ("unmapped", json!({"ai_model": model})),
    ]);
    mapped(event, (1001, 99, "Analyze"), format!("model file analysed: {}", analyzed.path), attributes)
}

/// File System Activity 1001, Open: a candidate that is not a model.
pub(super) fn candidate_file(event: &Event) -> Option<Mapped> {
    let Some(Payload::CandidateFile(candidate)) = &event.payload else { return None };
    mapped(
        event,
        (1001, 14, "Open"),
        format!("candidate file opened: {} ({})", candidate.path, candidate.outcome),
        attributes([
            ("file", objects::identified_file(&candidate.path, candidate.identity.as_ref(), "")),
            ("actor", objects::actor(event.process.as_ref())),
        ]),
    )
}

/// Application Lifecycle 6002 for an inference session: the runtime is the `app`.
fn session(
    event: &Event,
    session: Option<&InferenceSession>,
    activity: (u32, &'static str),
    what: &str,
) -> Option<Mapped> {
    let session = session?;
    let runtime = Runtime::try_from(session.runtime).unwrap_or_default();
    let runtime = super::super::format::short(runtime.as_str_name(), "RUNTIME_");
    let mut app = serde_json::Map::new();
    app.insert("name".into(), json!(runtime));
    app.insert("uid".into(), json!(session.id));
    if !session.runtime_version.is_empty() {
        app.insert("version".into(), json!(session.runtime_version));
    }
    let models: Vec<Value> = session
        .models
        .iter()
        .map(|m| {
            let file = ModelFile { path: m.path.clone(), sha256: m.sha256.clone(), ..ModelFile::default() };
            let mut model = objects::ai_model(&file);
            if !m.name.is_empty() {
                model["name"] = json!(m.name);
            }
            model
        })
        .collect();
    let process = session.root.as_ref().or(event.process.as_ref());
    mapped(
        event,
        (6002, activity.0, activity.1),
        format!("inference session {what}: {} ({runtime}, {} models)", session.id, session.models.len()),
        attributes([
            ("app", Value::Object(app)),
            ("actor", objects::actor(process)),
            ("unmapped", json!({"ai_models": models})),
        ]),
    )
}

pub(super) fn session_started(event: &Event) -> Option<Mapped> {
    let Some(Payload::SessionStarted(started)) = &event.payload else { return None };
    session(event, started.session.as_ref(), (3, "Start"), "started")
}

pub(super) fn session_updated(event: &Event) -> Option<Mapped> {
    let Some(Payload::SessionUpdated(updated)) = &event.payload else { return None };
    session(event, updated.session.as_ref(), (8, "Update"), &format!("updated ({})", updated.change))
}

pub(super) fn session_ended(event: &Event) -> Option<Mapped> {
    let Some(Payload::SessionEnded(ended)) = &event.payload else { return None };
    session(event, ended.session.as_ref(), (4, "Stop"), "ended")
}

/// Detection Finding 2004 for a verdict that is not "approved".
pub(super) fn policy_finding(event: &Event) -> Option<Mapped> {
    let Some(Payload::Finding(finding)) = &event.payload else { return None };
    let verdict = finding.verdict.as_ref()?;
    let evidence = if finding.subject == "model" {
        json!({"file": objects::identified_file(&finding.subject_id, finding.identity.as_ref(), &finding.sha256)})
    } else {
        match &event.process {
            Some(process) => {
                json!({"process": objects::process(process), "data": {"session_id": finding.subject_id}})
            }
            None => json!({"data": {"session_id": finding.subject_id}}),
        }
    };
    let rules: Vec<&str> = verdict.rules.iter().map(|r| r.verdict.as_str()).collect();
    let severity_id = severity(event);
    let attributes = attributes([
        (
            "finding_info",
            json!({
                "uid": format!("{}:{}", event.instance, event.seq),
                "title": format!("{}: {}", verdict.verdict, finding.subject_id),
                "desc": verdict.reason,
                "types": if rules.is_empty() { vec![verdict.verdict.as_str()] } else { rules },
                "analytic": {"name": "modelwatch policy", "type_id": 1, "type": "Rule", "version": verdict.catalog_version},
                "data_sources": ["modelwatch"],
            }),
        ),
        ("evidences", json!([evidence])),
        ("is_alert", json!(severity_id >= 3)),
        ("status_id", json!(1)),
        ("status", json!("New")),
    ]);
    Some(Mapped {
        class_uid: 2004,
        activity_id: 1,
        activity_name: "Create",
        severity_id,
        message: format!("{} {}: {}", finding.subject, finding.subject_id, verdict.reason),
        attributes,
    })
}
