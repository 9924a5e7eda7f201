//! How events look to people (one readable line) and to log shippers (one JSON object
//! per line: the proto3 JSON mapping of `Event`, with a top-level `kind`).

use std::fmt::Write as _;

use proto::v1::Event;

pub use crate::domain::event_kind::{kind, kind_from_name, kind_name, kind_of};

/// One JSON object, no newline: `{"kind":"...",` then the event's own fields.
///
/// NB: serialised straight to text; going through `serde_json::Value` to insert `kind`
/// cost more than the rest of the event's handling.
#[must_use]
pub fn json_line(event: &Event) -> String {
    let body = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    let mut line = String::with_capacity(body.len() + 32);
    line.push_str("{\"kind\":\"");
    line.push_str(kind(event));
    line.push('"');
    if body.len() > 2 {
        line.push(',');
    }
    line.push_str(&body[1..]);
    line
}

/// One readable line, no newline.
#[must_use]
pub fn text_line(event: &Event) -> String {
    let mut line = String::new();
    let time = event.time.as_ref().map_or_else(String::new, rfc3339);
    let _ = write!(line, "{time} #{} {:<17}", event.seq, kind(event));
    if let Some(process) = &event.process {
        let exe = if process.exe.is_empty() { &process.comm } else { &process.exe };
        let _ = write!(line, " pid={} exe={exe}", process.pid);
        let runtime = proto::v1::Runtime::try_from(process.runtime).unwrap_or_default();
        if runtime != proto::v1::Runtime::Unspecified {
            let _ = write!(line, " runtime={}", short(runtime.as_str_name(), "RUNTIME_"));
        }
    }
    if let Some(payload) = &event.payload {
        super::text::payload(&mut line, payload);
    }
    escape_controls(&line)
}

/// Escapes what a terminal would interpret: control characters (escape sequences,
/// carriage returns, newlines) and bidirectional overrides, which file contents and
/// paths may carry to forge or hide output. JSON lines escape them by themselves.
#[must_use]
pub fn escape_controls(text: &str) -> String {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hostile) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hostile(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `2026-11-26T04:05:06.123Z`.
fn rfc3339(time: &pbjson_types::Timestamp) -> String {
    let since_epoch = std::time::Duration::new(
        u64::try_from(time.seconds).unwrap_or(0),
        u32::try_from(time.nanos).unwrap_or(0),
    );
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + since_epoch).to_string()
}

/// `RUNTIME_OLLAMA` -> `ollama`.
#[must_use]
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

/// `modelwatch status` as readable lines.
#[must_use]
pub fn status_text(status: &proto::v1::SensorStatus) -> String {
    let mut out = format!("modelwatch {} on kernel {}\nhooks:\n", status.version, status.kernel);
    for hook in &status.hooks {
        let state = if hook.attached { "attached" } else { "NOT attached" };
        let _ = write!(out, "  {:<7} {:<11} {:<36} {state}", hook.watches, hook.backend, hook.attach_point);
        if hook.attached {
            // "none": the program reads only its context and maps.
            match hook.reads.as_str() {
                "none" => out.push_str(" (context only"),
                reads => {
                    let _ = write!(out, " ({reads} reads");
                }
            }
            if hook.verified_insns > 0 {
                let _ = write!(out, ", {} insns verified", hook.verified_insns);
            }
            out.push(')');
        }
        if !hook.reason.is_empty() {
            let _ = write!(out, " - {}", hook.reason);
        }
        out.push('\n');
    }
    for line in &status.degraded {
        let _ = writeln!(out, "degraded: {line}");
    }
    let mut counters: Vec<_> = status.kernel_counters.iter().collect();
    counters.sort();
    out.push_str("kernel counters:");
    for (name, value) in counters {
        let _ = write!(out, " {name}={value}");
    }
    let _ = write!(
        out,
        "\nrecords received={} undecodable={} events published={} subscribers={} not-models={} processes cached={} runtimes marked={}",
        status.records_received,
        status.records_undecodable,
        status.events_published,
        status.subscribers,
        status.candidates_not_models,
        status.processes_cached,
        status.runtimes_marked
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::{ProcessExit, event::Payload};

    #[test]
    fn control_characters_are_escaped_in_readable_lines() {
        assert_eq!(escape_controls("a\x1b[2Jb\nc\u{202e}d"), "a\\u{1b}[2Jb\\u{a}c\\u{202e}d");
        assert_eq!(escape_controls("plain /path"), "plain /path");
    }

    #[test]
    fn json_lines_lead_with_the_kind_and_parse() {
        let event = Event {
            seq: 7,
            payload: Some(Payload::ProcessExit(ProcessExit { exit_code: 1, signal: 0 })),
            ..Event::default()
        };
        let line = json_line(&event);
        assert!(line.starts_with(r#"{"kind":"process_exit","#), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["seq"], "7");
        assert_eq!(value["process_exit"]["exit_code"], 1);
    }
}
