//! A representative event of every kind (and both shapes of the kinds whose class
//! depends on findings), for the tests that check the OCSF mapping against the schema.

use proto::v1::{
    AcceleratorActivity, AcceleratorUsed, CandidateFile, Event, EventKind, EventsLost, Exposure,
    FileIdentity, Finding, InferenceSession, ListenerOpened, LossSource, ModelAnalyzed, ModelFile,
    ModelFileMapped, ModelFileOpened, ModelFormat, ModelHashed, ModelMetadata, PolicyFinding, Process,
    ProcessExec, ProcessExit, Provenance, SensorStatus, SessionEnded, SessionModel, SessionStarted,
    SessionUpdated, Severity, Verdict, VerdictRule, event::Payload,
};

fn process() -> Process {
    Process {
        pid: 4242,
        tid: 4243,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: "ollama".into(),
        exe: "/usr/local/bin/ollama".into(),
        argv: vec!["ollama".into(), "serve".into()],
        cgroup_id: 7,
        container_id: "0123456789ab".into(),
        runtime: proto::v1::Runtime::Ollama as i32,
        pod_uid: "8f2f7a4e-1b1c-4f7e-9a55-0c7d3c1e2b9a".into(),
        pod_name: "ollama-0".into(),
        pod_namespace: "ml".into(),
        container_name: "ollama".into(),
    }
}

fn identity() -> FileIdentity {
    FileIdentity {
        dev: 2049,
        inode: 131_072,
        size: 4_368_439_584,
        mtime_unix_ns: 1_764_000_000_000_000_000,
        ctime_unix_ns: 1_764_000_000_000_000_000,
    }
}

fn findings() -> Vec<Finding> {
    vec![Finding {
        kind: "pickle_dangerous_import".into(),
        severity: Severity::Critical as i32,
        message: "imports os.system".into(),
    }]
}

fn model_file(with_findings: bool) -> ModelFile {
    ModelFile {
        path: "/models/blobs/sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa".into(),
        identity: Some(identity()),
        format: ModelFormat::Gguf as i32,
        sha256: "6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa".into(),
        claimed_sha256: "6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa".into(),
        metadata: Some(ModelMetadata {
            name: "Llama 3.2 3B Instruct".into(),
            license: "llama3.2".into(),
            ..Default::default()
        }),
        provenance: Some(Provenance {
            source: "ollama".into(),
            name: "llama3.2:3b".into(),
            revision: "latest".into(),
        }),
        findings: if with_findings { findings() } else { Vec::new() },
        ..ModelFile::default()
    }
}

/// Payloads of one kind (none for a kind not listed: the tests then fail).
fn payloads(kind: EventKind) -> Vec<Payload> {
    match kind {
        EventKind::SensorStatus => vec![Payload::SensorStatus(SensorStatus {
            version: "0.1.0".into(),
            kernel: "6.18.0".into(),
            degraded: vec!["fexit unavailable".into()],
            ..SensorStatus::default()
        })],
        EventKind::ProcessExec => vec![Payload::ProcessExec(ProcessExec {
            runtime_rule: "exe ollama + serve".into(),
            runtime_role: "server".into(),
            ..ProcessExec::default()
        })],
        EventKind::ProcessExit => vec![Payload::ProcessExit(ProcessExit { exit_code: 0, signal: 9 })],
        EventKind::ModelFileOpened => [false, true]
            .map(|f| {
                Payload::ModelFileOpened(ModelFileOpened {
                    file: Some(model_file(f)),
                    fd: 5,
                    reasons: vec!["extension".into()],
                    ..Default::default()
                })
            })
            .to_vec(),
        EventKind::ModelFileMapped => vec![Payload::ModelFileMapped(ModelFileMapped {
            file: Some(model_file(false)),
            address: 0x7f00_0000_0000,
            length: 4_368_439_584,
            prot: 1,
            flags: 2,
            ..ModelFileMapped::default()
        })],
        EventKind::ListenerOpened => ["127.0.0.1", "::"]
            .map(|address| {
                Payload::ListenerOpened(ListenerOpened {
                    port: 11434,
                    address: address.into(),
                    exposure: if address == "::" { Exposure::AllInterfaces } else { Exposure::Loopback }
                        as i32,
                    family: if address == "::" { "ipv6" } else { "ipv4" }.into(),
                    protocol: "tcp".into(),
                    reasons: vec!["watched_port".into()],
                    snapshot: false,
                })
            })
            .to_vec(),
        EventKind::AcceleratorUsed => ["nvidia_gpu", "drm_gpu"]
            .map(|kind| {
                Payload::AcceleratorUsed(AcceleratorUsed {
                    device: "/dev/nvidia0".into(),
                    kind: kind.into(),
                    major: 195,
                    minor: 0,
                })
            })
            .to_vec(),
        EventKind::AcceleratorActivity => ["ioctl", "nvml"]
            .map(|source| {
                Payload::AcceleratorActivity(AcceleratorActivity {
                    kinds: vec!["nvidia_gpu".into()],
                    window_seconds: 10,
                    ioctls_per_second: 200.0,
                    ioctls: 2000,
                    sustained: true,
                    gpu_utilization_percent: if source == "nvml" { 87 } else { 0 },
                    gpu_memory_bytes: if source == "nvml" { 6 << 30 } else { 0 },
                    source: source.into(),
                })
            })
            .to_vec(),
        EventKind::EventsLost => vec![Payload::EventsLost(EventsLost {
            source: LossSource::KernelRingBuffer as i32,
            count: 12,
            by_counter: [("open_lost".to_owned(), 12)].into_iter().collect(),
            total: 12,
            ..EventsLost::default()
        })],
        EventKind::ModelHashed => [false, true]
            .map(|with_findings| {
                Payload::ModelHashed(ModelHashed {
                    path: "/models/x.gguf".into(),
                    identity: Some(identity()),
                    sha256: "6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa".into(),
                    claimed_sha256_matches: Some(!with_findings),
                    findings: if with_findings { findings() } else { Vec::new() },
                    announced_seq: 3,
                    verdict: with_findings.then(verdict),
                })
            })
            .to_vec(),
        EventKind::ModelAnalyzed => [false, true]
            .map(|with_findings| {
                Payload::ModelAnalyzed(ModelAnalyzed {
                    path: "/models/x.pkl".into(),
                    identity: Some(identity()),
                    format: ModelFormat::Pickle as i32,
                    findings: if with_findings { findings() } else { Vec::new() },
                    duration_ms: 4,
                    announced_seq: 3,
                    ..ModelAnalyzed::default()
                })
            })
            .to_vec(),
        EventKind::CandidateFile => vec![Payload::CandidateFile(CandidateFile {
            path: "/data/big.bin".into(),
            identity: Some(identity()),
            reasons: vec!["size".into()],
            outcome: "not_a_model".into(),
            sniffed: 0,
        })],
        EventKind::SessionStarted => {
            vec![Payload::SessionStarted(SessionStarted { session: Some(session()) })]
        }
        EventKind::SessionUpdated => vec![Payload::SessionUpdated(SessionUpdated {
            session: Some(session()),
            change: "listener 0.0.0.0:11434".into(),
        })],
        EventKind::SessionEnded => vec![Payload::SessionEnded(SessionEnded { session: Some(session()) })],
        EventKind::Finding => ["model", "session"]
            .map(|subject| {
                Payload::Finding(PolicyFinding {
                    verdict: Some(verdict()),
                    subject: subject.into(),
                    subject_id: if subject == "model" { "/models/x.gguf".into() } else { "s-1".into() },
                    identity: Some(identity()),
                    sha256: "6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa".into(),
                })
            })
            .to_vec(),
        _ => Vec::new(),
    }
}

fn verdict() -> Verdict {
    Verdict {
        verdict: "unapproved".into(),
        severity: Severity::High as i32,
        reason: "not in the catalog".into(),
        rules: vec![VerdictRule {
            verdict: "unapproved".into(),
            severity: Severity::High as i32,
            reason: "not in the catalog".into(),
        }],
        provisional: false,
        catalog_version: "1".into(),
    }
}

fn session() -> InferenceSession {
    InferenceSession {
        id: "s-1".into(),
        root: Some(process()),
        runtime: proto::v1::Runtime::Ollama as i32,
        runtime_version: "0.12.0".into(),
        pids: vec![4242],
        models: vec![SessionModel {
            path: "/models/x.gguf".into(),
            sha256: "6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa".into(),
            name: "llama3.2:3b".into(),
            ..SessionModel::default()
        }],
        verdict: Some(verdict()),
        started: Some(pbjson_types::Timestamp { seconds: 1_764_000_000, nanos: 0 }),
        ..InferenceSession::default()
    }
}

/// Every kind the proto defines, each with its sample events (empty when missing).
#[must_use]
pub fn every_kind() -> Vec<(EventKind, Vec<Event>)> {
    let mut seq = 0;
    (1..256)
        .filter_map(|n| EventKind::try_from(n).ok())
        .map(|kind| {
            let events = payloads(kind)
                .into_iter()
                .map(|payload| {
                    seq += 1;
                    let sensor_event = matches!(payload, Payload::SensorStatus(_) | Payload::EventsLost(_));
                    Event {
                        seq,
                        time: Some(pbjson_types::Timestamp { seconds: 1_764_000_000, nanos: 123_000_000 }),
                        node: "node-1".into(),
                        process: (!sensor_event).then(process),
                        instance: "00112233445566778899aabbccddeeff".into(),
                        session_id: String::new(),
                        payload: Some(payload),
                    }
                })
                .collect();
            (kind, events)
        })
        .collect()
}
