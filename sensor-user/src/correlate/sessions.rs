//! Inference sessions: one record per runtime at work, with a stable id, tying its
//! process and children, the models they loaded, their listeners (with exposure),
//! accelerator use and sensitive files, from start to end. A process that loads a model
//! and then listens is a session whatever it is called; a known runtime server is one
//! as soon as it listens.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    net::IpAddr,
    time::SystemTime,
};

use proto::v1::{self as pb, PolicyFinding, SessionEnded, SessionStarted, SessionUpdated, event::Payload};

use super::{Pipeline, convert, listener::exposure};
use crate::{
    domain::{FileKey, Runtime},
    policy::{Judgement, ListenerExposure, SessionFacts, VerdictKind},
};

/// Ended sessions kept for the inventory.
const ENDED_KEPT: usize = 64;
/// Listeners, devices and sensitive paths kept per session.
const PER_SESSION: usize = 256;
/// Processes whose sensitive opens wait for their session (see `Sessions::parked`).
const PARKED_PROCESSES: usize = 4096;
/// Sensitive paths kept per such process.
const PARKED_PER_PROCESS: usize = 16;

#[derive(Clone, Debug)]
pub(super) struct Session {
    pub(super) id: String,
    pub(super) root: u32,
    pub(super) runtime: Option<Runtime>,
    pub(super) version: Option<String>,
    pub(super) advisories: Vec<(String, String)>,
    pub(super) pids: BTreeSet<u32>,
    pub(super) models: BTreeSet<FileKey>,
    pub(super) listeners: Vec<(u16, IpAddr)>,
    pub(super) accelerators: BTreeSet<String>,
    pub(super) sensitive: Vec<String>,
    pub(super) accelerator_activity: Vec<String>,
    pub(super) started: SystemTime,
    pub(super) ended: Option<SystemTime>,
    pub(super) judgement: Option<Judgement>,
    reported: Option<(VerdictKind, String)>,
    pub(super) version_requested: bool,
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    pub(super) by_root: HashMap<u32, Session>,
    /// Every member process -> its session's root.
    pub(super) root_of: HashMap<u32, u32>,
    pub(super) ended: VecDeque<Session>,
    /// Sensitive paths opened by processes that have no session yet: a runtime can open
    /// them before its model load is identified (under load that takes longer than the
    /// gap between the two opens). They join the session when it starts; the process's
    /// exit forgets them.
    parked: HashMap<u32, Vec<String>>,
}

/// What a process contributes to its session.
pub(super) enum Change {
    Model(FileKey),
    Listener(u16, IpAddr),
    Accelerator(String),
    Sensitive(String),
    Activity(String),
    /// The runtime's version became known.
    Version(String),
}

impl Pipeline {
    /// The session id of `pid`, if it belongs to one.
    pub(super) fn session_of(&self, pid: u32) -> Option<&str> {
        let root = self.sessions.root_of.get(&pid)?;
        self.sessions.by_root.get(root).map(|s| s.id.as_str())
    }

    /// Where `pid`'s session is rooted: the topmost ancestor that is a model-loading
    /// runtime (Ollama's server above its runner), else the process itself.
    fn session_root(&self, pid: u32) -> u32 {
        if let Some(root) = self.sessions.root_of.get(&pid) {
            return *root;
        }
        let mut root = pid;
        let mut current = pid;
        for _ in 0..16 {
            let Some(info) = self.processes.peek(current) else { break };
            let parent = info.ppid;
            if parent <= 1 || parent == current {
                break;
            }
            if let Some(existing) = self.sessions.root_of.get(&parent) {
                return *existing;
            }
            let parent_is_runtime = self
                .processes
                .peek(parent)
                .and_then(|p| p.runtime.clone())
                .is_some_and(|c| c.role.loads_models() && c.runtime != Runtime::UnknownLoader);
            if !parent_is_runtime {
                break;
            }
            root = parent;
            current = parent;
        }
        root
    }

    /// Adds `change` to `pid`'s session, creating the session when `create` allows it.
    pub(super) fn session_add(&mut self, pid: u32, change: Change, create: bool) {
        let root = self.session_root(pid);
        if !self.sessions.by_root.contains_key(&root) {
            if !create {
                return;
            }
            let session = self.new_session(root);
            self.sessions.by_root.insert(root, session);
        }
        let started = self.sessions.root_of.insert(root, root).is_none();
        self.sessions.root_of.insert(pid, root);
        let parked: Vec<String> =
            [pid, root].iter().filter_map(|p| self.sessions.parked.remove(p)).flatten().collect();
        let Some(session) = self.sessions.by_root.get_mut(&root) else { return };
        session.pids.insert(pid);
        let mut unparked = None;
        for path in parked {
            if session.sensitive.len() < PER_SESSION && !session.sensitive.contains(&path) {
                unparked = Some(format!("sensitive file {path}"));
                session.sensitive.push(path);
            }
        }
        let description = match change {
            Change::Model(key) => session.models.insert(key).then(|| "model".to_owned()),
            Change::Listener(port, address) => (session.listeners.len() < PER_SESSION
                && !session.listeners.contains(&(port, address)))
            .then(|| {
                session.listeners.push((port, address));
                format!("listener {}", std::net::SocketAddr::new(address, port))
            }),
            Change::Accelerator(device) => {
                session.accelerators.insert(device.clone()).then(|| format!("device {device}"))
            }
            Change::Sensitive(path) => {
                (session.sensitive.len() < PER_SESSION && !session.sensitive.contains(&path)).then(|| {
                    session.sensitive.push(path.clone());
                    format!("sensitive file {path}")
                })
            }
            Change::Activity(text) => (!session.accelerator_activity.contains(&text)).then(|| {
                session.accelerator_activity.push(text.clone());
                text
            }),
            Change::Version(version) => Some(format!("runtime version {version}")),
        }
        .or(unparked);
        if started {
            let finding = self.judge_session(root).1;
            self.publish_session(root, |session| {
                Payload::SessionStarted(SessionStarted { session: Some(session) })
            });
            self.publish_finding(root, finding);
            self.request_version(root);
        } else if let Some(change) = description {
            let finding = self.judge_session(root).1;
            self.publish_session(root, |session| {
                Payload::SessionUpdated(SessionUpdated { session: Some(session), change: change.clone() })
            });
            self.publish_finding(root, finding);
        }
    }

    fn new_session(&self, root: u32) -> Session {
        let runtime = self.processes.peek(root).and_then(|p| p.runtime.clone()).map(|c| c.runtime);
        Session {
            id: session_id(root),
            root,
            runtime,
            version: None,
            advisories: Vec::new(),
            pids: BTreeSet::new(),
            models: BTreeSet::new(),
            listeners: Vec::new(),
            accelerators: BTreeSet::new(),
            sensitive: Vec::new(),
            accelerator_activity: Vec::new(),
            started: SystemTime::now(),
            ended: None,
            judgement: None,
            reported: None,
            version_requested: false,
        }
    }

    /// Keeps a sensitive path `pid` opened before it had a session.
    pub(super) fn park_sensitive(&mut self, pid: u32, path: &str) {
        let parked = &mut self.sessions.parked;
        if !parked.contains_key(&pid) && parked.len() >= PARKED_PROCESSES {
            tracing::debug!(pid, path, "too many processes with sensitive opens and no session: not kept");
            return;
        }
        let paths = parked.entry(pid).or_default();
        if paths.len() < PARKED_PER_PROCESS && !paths.iter().any(|p| p == path) {
            paths.push(path.to_owned());
        }
    }

    /// A member process exited; the root's exit ends the session.
    pub(super) fn session_exit(&mut self, pid: u32) {
        self.sessions.parked.remove(&pid);
        let Some(root) = self.sessions.root_of.remove(&pid) else { return };
        if root != pid {
            if let Some(session) = self.sessions.by_root.get_mut(&root) {
                session.pids.remove(&pid);
            }
            return;
        }
        self.publish_session(root, |session| Payload::SessionEnded(SessionEnded { session: Some(session) }));
        let Some(mut session) = self.sessions.by_root.remove(&root) else { return };
        session.ended = Some(SystemTime::now());
        self.sessions.root_of.retain(|_, r| *r != root);
        self.sessions.ended.push_front(session);
        self.sessions.ended.truncate(ENDED_KEPT);
    }

    /// A model's verdict changed: the sessions that loaded it are judged again.
    pub(super) fn model_changed_in_sessions(&mut self, key: &FileKey) {
        let roots: Vec<u32> =
            self.sessions.by_root.iter().filter(|(_, s)| s.models.contains(key)).map(|(r, _)| *r).collect();
        for root in roots {
            self.rejudge_session(root);
        }
    }

    pub(super) fn judge_all_sessions(&mut self) {
        let roots: Vec<u32> = self.sessions.by_root.keys().copied().collect();
        for root in roots {
            self.rejudge_session(root);
        }
    }

    /// Judges a session again; a changed verdict is published as an update (and a
    /// finding when final and not approved).
    fn rejudge_session(&mut self, root: u32) {
        let (changed, finding) = self.judge_session(root);
        if changed {
            self.publish_session(root, |session| {
                Payload::SessionUpdated(SessionUpdated { session: Some(session), change: "verdict".into() })
            });
        }
        self.publish_finding(root, finding);
    }

    fn publish_finding(&mut self, root: u32, finding: Option<PolicyFinding>) {
        let Some(finding) = finding else { return };
        let process = self.processes.peek(root).map(|info| convert::process(&info, root));
        self.publish(0, process, Payload::Finding(finding));
    }

    /// Judges a session: whether its verdict changed, and the finding to publish (a
    /// final verdict that changed and is not `approved`).
    fn judge_session(&mut self, root: u32) -> (bool, Option<PolicyFinding>) {
        let Some(session) = self.sessions.by_root.get(&root) else { return (false, None) };
        let models: Vec<(String, Judgement)> =
            session.models.iter().filter_map(|k| self.model_judgement(k)).collect();
        let runtime_name =
            session.runtime.filter(|r| *r != Runtime::UnknownLoader).map(convert::runtime_name);
        let facts = SessionFacts {
            runtime: runtime_name,
            version: session.version.as_deref(),
            advisories: session.advisories.clone(),
            listeners: session
                .listeners
                .iter()
                .map(|(port, address)| {
                    (std::net::SocketAddr::new(*address, *port).to_string(), exposure_class(*address))
                })
                .collect(),
            sensitive: session.sensitive.clone(),
            accelerator_activity: session.accelerator_activity.clone(),
            models,
        };
        let judgement = self.policy.judge_session(&facts);
        let version = self.policy.catalog.version.clone();
        let Some(session) = self.sessions.by_root.get_mut(&root) else { return (false, None) };
        let changed = session.judgement.as_ref().map(Judgement::verdict) != Some(judgement.verdict());
        let top = judgement.verdict().clone();
        let report = !judgement.provisional
            && !judgement.is_approved()
            && session.reported.as_ref() != Some(&(top.kind, top.reason.clone()));
        session.judgement = Some(judgement.clone());
        let finding = report.then(|| {
            session.reported = Some((top.kind, top.reason.clone()));
            PolicyFinding {
                verdict: Some(convert::verdict(&judgement, &version)),
                subject: "session".into(),
                subject_id: session.id.clone(),
                identity: None,
                sha256: String::new(),
            }
        });
        (changed, finding)
    }

    /// A session as the API shows it.
    pub(super) fn session_message(&self, session: &Session) -> pb::InferenceSession {
        let timestamp = |t: SystemTime| {
            let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            pbjson_types::Timestamp {
                seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
            }
        };
        pb::InferenceSession {
            id: session.id.clone(),
            root: self.processes.peek(session.root).map(|info| convert::process(&info, session.root)),
            runtime: session.runtime.map_or(pb::Runtime::Unspecified, convert::runtime).into(),
            runtime_version: session.version.clone().unwrap_or_default(),
            pids: session.pids.iter().copied().collect(),
            models: session.models.iter().filter_map(|k| self.session_model(k)).collect(),
            listeners: session
                .listeners
                .iter()
                .map(|(port, address)| pb::SessionListener {
                    port: u32::from(*port),
                    address: address.to_string(),
                    exposure: exposure(*address).into(),
                })
                .collect(),
            accelerators: session.accelerators.iter().cloned().collect(),
            verdict: session.judgement.as_ref().map(|j| convert::verdict(j, &self.policy.catalog.version)),
            started: Some(timestamp(session.started)),
            ended: session.ended.map(timestamp),
        }
    }

    fn publish_session(&mut self, root: u32, payload: impl Fn(pb::InferenceSession) -> Payload) {
        let Some(session) = self.sessions.by_root.get(&root) else { return };
        let message = self.session_message(session);
        let process = message.root.clone();
        self.publish(0, process, payload(message));
    }
}

/// How exposed a listener is, in the policy's terms.
fn exposure_class(address: IpAddr) -> ListenerExposure {
    match exposure(address) {
        pb::Exposure::AllInterfaces => ListenerExposure::AllInterfaces,
        pb::Exposure::SpecificAddress => ListenerExposure::SpecificAddress,
        _ => ListenerExposure::Loopback,
    }
}

/// Stable for the session's lifetime and across sensor restarts: this boot, the root's
/// pid and the time it started (procfs), hashed.
fn session_id(root: u32) -> String {
    use sha2::Digest as _;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let started = std::fs::read_to_string(format!("/proc/{root}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().nth(19).unwrap_or("").to_owned())
        })
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{}:{root}:{started}", boot.trim()).as_bytes());
    hex::encode(&digest[..8])
}
