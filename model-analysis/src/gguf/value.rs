//! A GGUF metadata value as kept in a report: only what the file's `general.*` keys can
//! hold, so that a value's size is known when it is kept (a generic JSON value would
//! hide it), and serialised as the plain JSON of the value.

use std::fmt;
use std::mem::size_of;

use serde::Serialize;

/// Bytes charged to the memory budget per kept entry beyond its text: the map node and
/// the value's own size.
pub(crate) const KEPT_ENTRY_OVERHEAD: usize = 64 + size_of::<MetaValue>();

/// A `general.*` value: a string (clipped), a number, a boolean, or a short list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetaValue {
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(String),
    List(Vec<MetaValue>),
}

impl MetaValue {
    /// The text, for a string value.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The value as an unsigned integer, for a non-negative integer value.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Unsigned(v) => Some(v),
            Self::Signed(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Bytes this value holds, for the memory budget.
    pub(crate) fn kept_size(&self) -> usize {
        KEPT_ENTRY_OVERHEAD
            + match self {
                Self::Text(text) => text.len(),
                Self::List(items) => items.iter().map(Self::kept_size).sum(),
                _ => 0,
            }
    }
}

/// The value as JSON text (`"llama"`, `15`, `["en","fr"]`).
impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_plain_json() {
        let list = MetaValue::List(vec![
            MetaValue::Text("en".into()),
            MetaValue::Unsigned(15),
            MetaValue::Signed(-2),
            MetaValue::Float(0.5),
            MetaValue::Bool(true),
            MetaValue::Float(f64::NAN),
        ]);
        assert_eq!(list.to_string(), r#"["en",15,-2,0.5,true,null]"#);
        assert_eq!(MetaValue::Text("llama".into()).as_str(), Some("llama"));
        assert_eq!(MetaValue::Signed(7).as_u64(), Some(7));
        assert_eq!(MetaValue::Signed(-7).as_u64(), None);
    }

    #[test]
    fn kept_size_counts_the_text() {
        let small = MetaValue::Text(String::new()).kept_size();
        assert_eq!(MetaValue::Text("x".repeat(100)).kept_size(), small + 100);
        let list = MetaValue::List(vec![MetaValue::Text("abc".into()); 2]);
        assert_eq!(list.kept_size(), KEPT_ENTRY_OVERHEAD + 2 * (small + 3));
    }
}
