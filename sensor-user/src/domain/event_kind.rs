//! Event kinds: one per `Event.payload` field, named like it. Derived from the proto
//! (`EventKind`, whose numbers are the payload field numbers), never written twice.

use proto::v1::{Event, EventKind, event::Payload};

/// The kind of a payload: the `EventKind` with the payload's field number.
#[must_use]
pub fn kind_of(payload: Option<&Payload>) -> EventKind {
    match payload {
        Some(Payload::SensorStatus(_)) => EventKind::SensorStatus,
        Some(Payload::ProcessExec(_)) => EventKind::ProcessExec,
        Some(Payload::ProcessExit(_)) => EventKind::ProcessExit,
        Some(Payload::ModelFileOpened(_)) => EventKind::ModelFileOpened,
        Some(Payload::ModelFileMapped(_)) => EventKind::ModelFileMapped,
        Some(Payload::ListenerOpened(_)) => EventKind::ListenerOpened,
        Some(Payload::AcceleratorUsed(_)) => EventKind::AcceleratorUsed,
        Some(Payload::EventsLost(_)) => EventKind::EventsLost,
        Some(Payload::ModelHashed(_)) => EventKind::ModelHashed,
        Some(Payload::ModelAnalyzed(_)) => EventKind::ModelAnalyzed,
        Some(Payload::CandidateFile(_)) => EventKind::CandidateFile,
        Some(Payload::SessionStarted(_)) => EventKind::SessionStarted,
        Some(Payload::SessionUpdated(_)) => EventKind::SessionUpdated,
        Some(Payload::SessionEnded(_)) => EventKind::SessionEnded,
        Some(Payload::Finding(_)) => EventKind::Finding,
        Some(Payload::AcceleratorActivity(_)) => EventKind::AcceleratorActivity,
        None => EventKind::Unspecified,
    }
}

/// A kind's name: the payload's field name (`model_file_opened`).
#[must_use]
pub fn kind_name(kind: EventKind) -> &'static str {
    KIND_NAMES.get(&kind).map_or("unknown", String::as_str)
}

/// Every kind's name, derived once from the proto enum (a test ties them to the
/// payload fields).
static KIND_NAMES: std::sync::LazyLock<std::collections::HashMap<EventKind, String>> =
    std::sync::LazyLock::new(|| {
        (1..256)
            .filter_map(|n| EventKind::try_from(n).ok())
            .map(|k| {
                let name = k.as_str_name();
                (k, name.strip_prefix("EVENT_KIND_").unwrap_or(name).to_ascii_lowercase())
            })
            .collect()
    });

/// The event's kind name ("model_file_opened").
#[must_use]
pub fn kind(event: &Event) -> &'static str {
    kind_name(kind_of(event.payload.as_ref()))
}

/// Every kind a client may ask for, by name.
#[must_use]
pub fn kind_from_name(name: &str) -> Option<EventKind> {
    EventKind::from_str_name(&format!("EVENT_KIND_{}", name.to_ascii_uppercase()))
        .filter(|k| *k != EventKind::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_field_has_the_kind_with_its_number_and_name() {
        use prost::Message as _;
        let set = pbjson_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).expect("descriptors");
        let event = set
            .file
            .iter()
            .flat_map(|f| f.message_type.iter())
            .find(|m| m.name.as_deref() == Some("Event"))
            .expect("Event message");
        let payload_fields: Vec<_> = event.field.iter().filter(|f| f.oneof_index.is_some()).collect();
        assert!(!payload_fields.is_empty());
        for field in payload_fields {
            let number = field.number.expect("number");
            let kind = EventKind::try_from(number).unwrap_or_else(|_| panic!("no EventKind = {number}"));
            assert_eq!(Some(kind_name(kind)), field.name.as_deref(), "kind {number}");
            assert_eq!(kind_from_name(kind_name(kind)), Some(kind));
        }
    }
}
