//! JSON from the file under analysis (safetensors headers, Keras configs), streamed into
//! serde visitors through a reader that enforces the analysis' budgets: serde_json holds
//! one string at a time in its scratch buffer, so strings are capped here, before it
//! sees them; nesting is capped by serde_json's own recursion limit (128); and the clock
//! is read once per buffer refill. Nothing builds a generic JSON value.

use std::fmt;
use std::io::{self, Read};
use std::time::Instant;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::finding::clip;
use crate::limits::Budget;

/// Buffer between the guard and serde_json: its reader takes one byte at a time, which
/// only `BufReader` serves without a call per byte.
pub(crate) const PARSE_BUFFER: usize = 64 * 1024;

/// A reader of JSON text that stops (with an I/O error naming the budget, kept in
/// [`GuardedJson::stopped`]) at the deadline or at a string longer than `max_string`.
/// It follows strings through the bytes as they pass; read it through a `BufReader` of
/// [`PARSE_BUFFER`] bytes.
pub(crate) struct GuardedJson<R> {
    inner: R,
    /// Lexer state over the bytes passed so far.
    in_string: bool,
    escaped: bool,
    string_len: u64,
    max_string: u64,
    deadline: Option<Instant>,
    /// Bytes passed to the parser's buffer.
    pub(crate) consumed: u64,
    /// The budget that stopped the reading, if one did.
    pub(crate) stopped: Option<Budget>,
}

impl<R: Read> GuardedJson<R> {
    pub(crate) fn new(inner: R, max_string: u64, deadline: Option<Instant>) -> Self {
        Self {
            inner,
            in_string: false,
            escaped: false,
            string_len: 0,
            max_string,
            deadline,
            consumed: 0,
            stopped: None,
        }
    }

    fn stop(&mut self, budget: Budget) -> io::Error {
        self.stopped = Some(budget);
        io::Error::other(match budget {
            Budget::Time => "analysis deadline reached",
            _ => "JSON string longer than the analysis' string cap",
        })
    }

    /// Follows strings through `bytes` (valid JSON has quotes only around strings):
    /// true when one runs past the cap.
    fn too_long_string(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if !self.in_string {
                if b == b'"' {
                    self.in_string = true;
                    self.string_len = 0;
                }
                continue;
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                continue;
            }
            self.string_len += 1;
            if self.string_len > self.max_string {
                return true;
            }
        }
        false
    }
}

impl<R: Read> Read for GuardedJson<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(budget) = self.stopped {
            return Err(self.stop(budget));
        }
        // One look at the clock per buffer of the parser (64 KiB).
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.stop(Budget::Time));
        }
        let n = self.inner.read(out)?;
        if self.too_long_string(&out[..n]) {
            return Err(self.stop(Budget::StringBytes));
        }
        self.consumed += n as u64;
        Ok(n)
    }
}

/// A JSON value read as a string when it is one (clipped for the report), and skipped
/// otherwise.
pub(crate) struct MaybeString(pub(crate) Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MaybeStringVisitor)
    }
}

struct MaybeStringVisitor;

impl<'de> Visitor<'de> for MaybeStringVisitor {
    type Value = MaybeString;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<MaybeString, E> {
        Ok(MaybeString(Some(clip(v))))
    }

    fn visit_bool<E>(self, _: bool) -> Result<MaybeString, E> {
        Ok(MaybeString(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<MaybeString, E> {
        Ok(MaybeString(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<MaybeString, E> {
        Ok(MaybeString(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<MaybeString, E> {
        Ok(MaybeString(None))
    }

    fn visit_unit<E>(self) -> Result<MaybeString, E> {
        Ok(MaybeString(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeString, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MaybeString(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeString, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(MaybeString(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(json: &[u8], max_string: u64) -> (io::Result<Vec<u8>>, Option<Budget>) {
        let mut guard = GuardedJson::new(json, max_string, None);
        let mut out = Vec::new();
        let result = guard.read_to_end(&mut out).map(|_| out);
        (result, guard.stopped)
    }

    #[test]
    fn strings_up_to_the_cap_pass() {
        let (out, stopped) = read_all(br#"{"abcd":"ef\"gh"}"#, 6);
        assert_eq!(out.expect("within the cap"), br#"{"abcd":"ef\"gh"}"#);
        assert_eq!(stopped, None);
    }

    #[test]
    fn a_long_string_stops_the_reading() {
        let (out, stopped) = read_all(br#"{"abcdefg":1}"#, 6);
        assert!(out.is_err());
        assert_eq!(stopped, Some(Budget::StringBytes));
        // Escapes count, and a long string split over refills is still seen.
        let long = format!("[\"{}\"]", "\\n".repeat(PARSE_BUFFER));
        let (_, stopped) = read_all(long.as_bytes(), PARSE_BUFFER as u64);
        assert_eq!(stopped, Some(Budget::StringBytes));
    }

    #[test]
    fn the_deadline_stops_the_reading() {
        let mut guard = GuardedJson::new(&b"{}"[..], 10, Some(Instant::now()));
        assert!(guard.read(&mut [0; 4]).is_err());
        assert_eq!(guard.stopped, Some(Budget::Time));
    }

    #[test]
    fn maybe_string_skips_everything_else() {
        let values: Vec<MaybeString> =
            serde_json::from_str(r#"["a", 1, -1, 1.5, true, null, [1, [2]], {"k": {"j": 3}}]"#)
                .expect("parse");
        let strings: Vec<Option<String>> = values.into_iter().map(|v| v.0).collect();
        assert_eq!(strings, [Some("a".into()), None, None, None, None, None, None, None]);
    }
}
