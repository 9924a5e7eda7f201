//! What a subscriber asked for (`EventFilter`), checked against the few facts a logged
//! record carries beside its bytes (kind, severity, pid), so that a filtered replay of a
//! large log decodes nothing.

use std::sync::LazyLock;

use proto::v1::{EventKind, Finding, Process, Severity, StreamEventsRequest, event::Payload};
use thiserror::Error;

use super::log::{Meta, Record};
use crate::domain::event_kind::{kind_from_name, kind_of};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    #[error(
        "unknown event kind {name:?}; known kinds are the payload names of modelwatch.v1.Event (EventKind), e.g. model_file_opened"
    )]
    UnknownKindName { name: String },
    #[error("unknown event kind number {number}; see modelwatch.v1.EventKind")]
    UnknownKind { number: i32 },
    #[error("unknown severity number {number}; see modelwatch.v1.Severity")]
    UnknownSeverity { number: i32 },
}

/// The facts a record carries for filtering.
#[must_use]
pub fn meta_of(process: Option<&Process>, payload: &Payload) -> Meta {
    Meta {
        pid: process.map_or(0, |p| p.pid),
        kind: u16::try_from(kind_of(Some(payload)) as i32).unwrap_or(0),
        severity: u8::try_from(severity_of(payload) as i32).unwrap_or(0),
    }
}

/// An event's severity: its worst finding's, `Info` when it has none.
#[must_use]
pub fn severity_of(payload: &Payload) -> Severity {
    let worst = |findings: &[Finding]| findings.iter().map(|f| f.severity).max();
    let verdict = |v: Option<&proto::v1::Verdict>| v.map(|v| v.severity);
    let file = |f: Option<&proto::v1::ModelFile>| {
        f.and_then(|f| worst(&f.findings).max(verdict(f.verdict.as_ref())))
    };
    let session = |s: Option<&proto::v1::InferenceSession>| s.and_then(|s| verdict(s.verdict.as_ref()));
    let found = match payload {
        Payload::ModelFileOpened(opened) => file(opened.file.as_ref()),
        Payload::ModelFileMapped(mapped) => file(mapped.file.as_ref()),
        Payload::ModelAnalyzed(analyzed) => worst(&analyzed.findings),
        Payload::ModelHashed(hashed) => worst(&hashed.findings),
        Payload::Finding(finding) => verdict(finding.verdict.as_ref()),
        Payload::SessionStarted(started) => session(started.session.as_ref()),
        Payload::SessionUpdated(updated) => session(updated.session.as_ref()),
        Payload::SessionEnded(ended) => session(ended.session.as_ref()),
        _ => None,
    };
    found
        .and_then(|s| Severity::try_from(s).ok())
        .filter(|s| *s != Severity::Unspecified)
        .unwrap_or(Severity::Info)
}

/// A compiled `EventFilter`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    kinds: Vec<u16>,
    min_severity: u8,
    pids: Vec<u32>,
    session: Option<String>,
}

impl Filter {
    /// The request's filter (its `filter` and the older `kinds` names together).
    ///
    /// # Errors
    /// An unknown kind or severity.
    pub fn from_request(request: &StreamEventsRequest) -> Result<Self, FilterError> {
        let mut kinds = Vec::new();
        for name in &request.kinds {
            let kind =
                kind_from_name(name).ok_or_else(|| FilterError::UnknownKindName { name: name.clone() })?;
            kinds.push(kind);
        }
        let given = request.filter.clone().unwrap_or_default();
        for &number in &given.kinds {
            match EventKind::try_from(number) {
                Ok(kind) if kind != EventKind::Unspecified => kinds.push(kind),
                _ => return Err(FilterError::UnknownKind { number }),
            }
        }
        if Severity::try_from(given.min_severity).is_err() {
            return Err(FilterError::UnknownSeverity { number: given.min_severity });
        }
        Ok(Self {
            kinds: kinds.into_iter().filter_map(|k| u16::try_from(k as i32).ok()).collect(),
            min_severity: u8::try_from(given.min_severity).unwrap_or(0),
            pids: given.pids,
            session: Some(given.session_id).filter(|s| !s.is_empty()),
        })
    }

    /// Whether a record is wanted. `events_lost` always is.
    #[must_use]
    pub fn matches(&self, record: &Record) -> bool {
        let meta = record.meta;
        if i32::from(meta.kind) == EventKind::EventsLost as i32 {
            return true;
        }
        (self.kinds.is_empty() || self.kinds.contains(&meta.kind))
            && meta.severity >= self.min_severity
            && (self.pids.is_empty() || self.pids.contains(&meta.pid))
            && self.session.as_deref().is_none_or(|session| session_matches(&record.bytes, session))
    }
}

/// Where a `session_id` string can be in an encoded `Event`: field-number paths found
/// in the schema (on the event, or one message down: its process or payload). Empty
/// while the schema has none; the filter then holds for every event.
static SESSION_PATHS: LazyLock<Vec<Vec<u32>>> = LazyLock::new(|| session_paths(proto::FILE_DESCRIPTOR_SET));

fn session_paths(descriptors: &[u8]) -> Vec<Vec<u32>> {
    use prost::Message as _;
    let Ok(set) = pbjson_types::FileDescriptorSet::decode(descriptors) else { return Vec::new() };
    let messages: Vec<_> = set.file.iter().flat_map(|f| f.message_type.iter()).collect();
    let find = |name: &str| messages.iter().find(|m| m.name.as_deref() == Some(name)).copied();
    let session_field = |message: &pbjson_types::DescriptorProto| {
        message
            .field
            .iter()
            .find(|f| f.name.as_deref() == Some("session_id") && f.r#type == Some(9))
            .and_then(|f| f.number)
            .and_then(|n| u32::try_from(n).ok())
    };
    let Some(event) = find("Event") else { return Vec::new() };
    let mut paths: Vec<Vec<u32>> = session_field(event).into_iter().map(|n| vec![n]).collect();
    for field in &event.field {
        let inner = field.type_name.as_deref().and_then(|t| t.rsplit('.').next()).and_then(find);
        let number = field.number.and_then(|n| u32::try_from(n).ok());
        if let (Some(inner), Some(number)) = (inner, number)
            && let Some(session) = session_field(inner)
        {
            paths.push(vec![number, session]);
        }
    }
    paths
}

fn session_matches(bytes: &[u8], session: &str) -> bool {
    SESSION_PATHS.is_empty()
        || SESSION_PATHS.iter().any(|path| field_at(bytes, path) == Some(session.as_bytes()))
}

/// The length-delimited field at `path` (field numbers, outermost first), by walking
/// the protobuf wire format.
fn field_at<'a>(message: &'a [u8], path: &[u32]) -> Option<&'a [u8]> {
    let (&wanted, rest) = path.split_first()?;
    let mut buf = message;
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).ok()?;
        let (number, wire_type) = (key >> 3, key & 7);
        let value: &[u8] = match wire_type {
            0 => {
                prost::encoding::decode_varint(&mut buf).ok()?;
                continue;
            }
            1 => buf.get(8..).map(|b| {
                buf = b;
                &[][..]
            })?,
            5 => buf.get(4..).map(|b| {
                buf = b;
                &[][..]
            })?,
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
                let value = buf.get(..len)?;
                buf = &buf[len..];
                value
            }
            _ => return None,
        };
        if wire_type == 2 && number == u64::from(wanted) {
            return if rest.is_empty() { Some(value) } else { field_at(value, rest) };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::{EventFilter, ProcessExit};

    #[test]
    fn kinds_by_enum_and_by_name_combine() {
        let request = StreamEventsRequest {
            since_seq: 0,
            kinds: vec!["process_exit".into()],
            filter: Some(EventFilter {
                kinds: vec![EventKind::ListenerOpened as i32],
                ..EventFilter::default()
            }),
        };
        let filter = Filter::from_request(&request).expect("valid");
        assert_eq!(filter.kinds, vec![12, 15]);
        let bad = StreamEventsRequest { kinds: vec!["nope".into()], ..request.clone() };
        assert!(matches!(Filter::from_request(&bad), Err(FilterError::UnknownKindName { .. })));
        let bad_number = StreamEventsRequest {
            filter: Some(EventFilter { kinds: vec![9999], ..EventFilter::default() }),
            ..StreamEventsRequest::default()
        };
        assert_eq!(Filter::from_request(&bad_number).err(), Some(FilterError::UnknownKind { number: 9999 }));
    }

    #[test]
    fn wire_walk_finds_nested_fields() {
        use prost::Message as _;
        let event = proto::v1::Event {
            seq: 3,
            node: "n".into(),
            process: Some(Process { pid: 7, comm: "ollama".into(), ..Process::default() }),
            payload: Some(Payload::ProcessExit(ProcessExit { exit_code: 1, signal: 0 })),
            ..proto::v1::Event::default()
        };
        let bytes = event.encode_to_vec();
        assert_eq!(field_at(&bytes, &[4, 6]), Some(&b"ollama"[..]));
        assert_eq!(field_at(&bytes, &[3]), Some(&b"n"[..]));
        assert_eq!(field_at(&bytes, &[4, 99]), None);
        assert_eq!(field_at(&[0xff, 0xff], &[1]), None, "garbage is no match, not a panic");
    }

    #[test]
    fn severity_is_the_worst_finding_or_info() {
        let exit = Payload::ProcessExit(ProcessExit::default());
        assert_eq!(severity_of(&exit), Severity::Info);
        let hashed = Payload::ModelHashed(proto::v1::ModelHashed {
            findings: vec![
                Finding { severity: Severity::Low as i32, ..Finding::default() },
                Finding { severity: Severity::High as i32, ..Finding::default() },
            ],
            ..proto::v1::ModelHashed::default()
        });
        assert_eq!(severity_of(&hashed), Severity::High);
    }
}
