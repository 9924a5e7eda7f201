//! NumPy `.npy` headers (format versions 1-3): a magic, a version, a length, then a
//! Python dict literal with `descr`, `fortran_order` and `shape`. An array of Python
//! objects (`descr` `|O`) stores its data as a pickle, which `np.load(...,
//! allow_pickle=True)` unpickles.

use std::mem::size_of;

use serde::Serialize;

use crate::finding::clip;

/// Longest `.npy` header accepted (numpy itself caps it at 10,000 bytes by default).
pub(crate) const MAX_HEADER: usize = 64 * 1024;
/// Arrays recorded per report (an `.npz` may hold many).
pub(crate) const MAX_ARRAYS_RECORDED: usize = 256;
const MAX_DIMS_KEPT: usize = 32;

/// The arrays of a `.npy` or `.npz` file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NumpyInfo {
    pub arrays: Vec<NumpyArray>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NumpyArray {
    /// The `.npz` entry name; `None` for a `.npy` file.
    pub name: Option<String>,
    pub version: String,
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    /// Whether the data is a pickle of Python objects.
    pub object_dtype: bool,
    /// Where the data (the pickle, for object arrays) starts, from the array's start.
    pub data_offset: u64,
}

impl NumpyArray {
    /// Bytes this record holds, for the memory budget.
    pub(crate) fn kept_size(&self) -> u64 {
        let text = self.name.as_ref().map_or(0, String::len) + self.version.len() + self.descr.len();
        (size_of::<Self>() + text + self.shape.len() * size_of::<u64>()) as u64
    }
}

/// Bytes needed before the header text: magic (6), version (2), length (2 or 4).
pub(crate) fn preamble_len(prefix: &[u8]) -> Result<usize, String> {
    if !prefix.starts_with(b"\x93NUMPY") {
        return Err("no .npy magic".into());
    }
    match prefix.get(6) {
        Some(1) => Ok(10),
        Some(2 | 3) => Ok(12),
        Some(v) => Err(format!(".npy format version {v} is not known")),
        None => Err("truncated .npy preamble".into()),
    }
}

/// Total bytes of preamble and header, from the preamble.
pub(crate) fn header_end(prefix: &[u8]) -> Result<usize, String> {
    let preamble = preamble_len(prefix)?;
    let len = match prefix.get(8..preamble) {
        Some([a, b]) => usize::from(u16::from_le_bytes([*a, *b])),
        Some([a, b, c, d]) => usize::try_from(u32::from_le_bytes([*a, *b, *c, *d])).unwrap_or(usize::MAX),
        _ => return Err("truncated .npy preamble".into()),
    };
    if len > MAX_HEADER {
        return Err(format!(".npy header of {len} bytes exceeds the {MAX_HEADER}-byte cap"));
    }
    Ok(preamble + len)
}

/// Parses a whole `.npy` preamble and header (`bytes` holds at least [`header_end`]).
pub(crate) fn parse_header(bytes: &[u8], name: Option<&str>) -> Result<NumpyArray, String> {
    let end = header_end(bytes)?;
    let preamble = preamble_len(bytes)?;
    let text = bytes.get(preamble..end).ok_or("truncated .npy header")?;
    let text = std::str::from_utf8(text).map_err(|_| ".npy header is not text")?;
    let descr = dict_value(text, "descr").ok_or(".npy header has no 'descr'")?;
    let fortran_order = dict_value(text, "fortran_order").is_some_and(|v| v.trim() == "True");
    let shape = dict_value(text, "shape")
        .map(|v| {
            v.trim_matches(|c| c == '(' || c == ')' || c == ' ')
                .split(',')
                .filter_map(|d| d.trim().parse::<u64>().ok())
                .take(MAX_DIMS_KEPT)
                .collect()
        })
        .unwrap_or_default();
    Ok(NumpyArray {
        name: name.map(clip),
        version: format!("{}.{}", bytes[6], bytes.get(7).copied().unwrap_or(0)),
        object_dtype: has_object_type(descr),
        descr: clip(descr.trim()),
        fortran_order,
        shape,
        data_offset: end as u64,
    })
}

/// The raw text of `'key': value` in the header dict, up to the next top-level comma.
fn dict_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let needle_single = format!("'{key}'");
    let needle_double = format!("\"{key}\"");
    let at = text.find(&needle_single).or_else(|| text.find(&needle_double))?;
    let rest = &text[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') if depth > 0 => depth -= 1,
            (None, ',' | '}') if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

/// Whether any quoted type string in a `descr` (plain or structured) is an object type:
/// `O`, `|O`, `<O8`... Field names are quoted too, so only strings shaped like a type
/// code count, and not the first string of a `(name, type)` field tuple.
fn has_object_type(descr: &str) -> bool {
    let mut rest = descr;
    while let Some(open) = rest.find(['\'', '"']) {
        let quote = &rest[open..=open];
        let Some(len) = rest[open + 1..].find(quote) else {
            break;
        };
        let literal = &rest[open + 1..open + 1 + len];
        let is_field_name = rest[..open].trim_end().ends_with('(');
        let code = literal.trim_start_matches(['<', '>', '|', '=']);
        let is_object =
            code.strip_prefix('O').is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()));
        if is_object && !is_field_name {
            return true;
        }
        rest = &rest[open + len + 2..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn npy(descr: &str, shape: &str) -> Vec<u8> {
        let mut header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&u16::try_from(header.len()).expect("short header").to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out
    }

    #[test]
    fn float_array() {
        let bytes = npy("'<f4'", "(3, 4)");
        let array = parse_header(&bytes, None).expect("parse");
        assert_eq!(array.descr, "'<f4'");
        assert_eq!(array.shape, [3, 4]);
        assert!(!array.object_dtype);
        assert_eq!(array.data_offset, bytes.len() as u64);
        assert_eq!(array.data_offset % 64, 0);
    }

    #[test]
    fn object_arrays_plain_and_structured() {
        assert!(parse_header(&npy("'|O'", "(2,)"), None).expect("parse").object_dtype);
        let structured = "[('Obj', '<f8'), ('payload', '|O')]";
        assert!(parse_header(&npy(structured, "(2,)"), None).expect("parse").object_dtype);
        let named_o = "[('O', '<f8')]";
        assert!(!parse_header(&npy(named_o, "(2,)"), None).expect("parse").object_dtype);
    }

    #[test]
    fn bad_headers() {
        assert!(header_end(b"\x93NUMPY\x09\x00").is_err());
        assert!(header_end(b"\x93NUMPY\x02\x00\xff\xff\xff\xff").is_err());
        assert!(parse_header(b"\x93NUMPY\x01\x00\x05\x00{'a':", None).is_err());
    }
}
