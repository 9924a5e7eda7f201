//! Pickle strings, decoded as CPython 3.11's C unpickler decodes them (a string it
//! cannot decode ends the stream there). Text is kept as the UTF-8 encoding of what
//! Python holds, lone surrogates included (CPython's `surrogatepass` bytes), so that
//! a `BINUNICODE` name compares byte for byte with what `find_class` receives.

/// The outcome of decoding a Python 2 `str` (`STRING`, `BINSTRING`): the default
/// `encoding='ASCII'` fails on other bytes, while loaders that pass an encoding (torch
/// passes `utf-8`, NumPy recommends `latin1`) go on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Py2Str {
    Ascii(Vec<u8>),
    /// Not ASCII: the text as `utf-8` reads it when valid, else as `latin1` does.
    NotAscii(Vec<u8>),
}

impl Py2Str {
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        if bytes.is_ascii() {
            return Self::Ascii(bytes);
        }
        if std::str::from_utf8(&bytes).is_ok() {
            return Self::NotAscii(bytes);
        }
        let mut text = Vec::with_capacity(bytes.len() * 2);
        for b in bytes {
            push_code_point(&mut text, u32::from(b));
        }
        Self::NotAscii(text)
    }
}

/// `STRING`'s argument: a quoted Python 2 `repr` decoded with `PyBytes_DecodeEscape`.
pub(crate) fn quoted_string(line: &[u8]) -> Result<Py2Str, &'static str> {
    let [quote, inner @ .., last] = line else {
        return Err("the STRING argument must be quoted");
    };
    if quote != last || !matches!(quote, b'\'' | b'"') {
        return Err("the STRING argument must be quoted");
    }
    decode_escape(inner).map(Py2Str::from_bytes)
}

/// `PyBytes_DecodeEscape`: Python's bytes-literal escapes.
fn decode_escape(inner: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = inner.get(i) else {
            return Err("trailing \\ in string");
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'a' => out.push(0x07),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match inner.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // C stores the value in a char: values above 0o377 wrap.
                out.push(value.to_le_bytes()[0]);
            }
            b'x' => {
                let hi = inner.get(i).map(|&d| hex_value(d));
                let lo = inner.get(i + 1).map(|&d| hex_value(d));
                match (hi, lo) {
                    (Some(Some(hi)), Some(Some(lo))) => {
                        out.push(hi * 16 + lo);
                        i += 2;
                    }
                    _ => return Err("invalid \\x escape"),
                }
            }
            other => {
                // Unknown escapes stay as they are (with a DeprecationWarning).
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

fn hex_value(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Appends a code point (surrogates included) in UTF-8 form.
pub(crate) fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    let bytes = cp.to_le_bytes();
    match cp {
        0..=0x7f => out.push(bytes[0]),
        0x80..=0x7ff => out.extend_from_slice(&[0xc0 | (cp >> 6) as u8, 0x80 | (cp & 0x3f) as u8]),
        0x800..=0xffff => out.extend_from_slice(&[
            0xe0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
        _ => out.extend_from_slice(&[
            0xf0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3f) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
    }
}

/// `UNICODE`'s argument, `raw-unicode-escape`: `\uXXXX` and `\UXXXXXXXX` escape when
/// the run of backslashes before them is odd; every other byte is Latin-1.
pub(crate) fn raw_unicode_escape(line: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b != b'\\' {
            push_code_point(&mut out, u32::from(b));
            i += 1;
            continue;
        }
        let run = line[i..].iter().take_while(|&&c| c == b'\\').count();
        let after = i + run;
        let escapes = run % 2 == 1 && matches!(line.get(after), Some(b'u' | b'U'));
        let literal = if escapes { run - 1 } else { run };
        out.extend(std::iter::repeat_n(b'\\', literal));
        i = after;
        if !escapes {
            continue;
        }
        let width = if line[after] == b'u' { 4 } else { 8 };
        let digits = line.get(after + 1..after + 1 + width).ok_or("truncated \\uXXXX escape")?;
        let mut cp = 0u32;
        for &d in digits {
            cp = cp * 16 + u32::from(hex_value(d).ok_or("truncated \\uXXXX escape")?);
        }
        if cp > 0x10_ffff {
            return Err("\\Uxxxxxxxx out of range");
        }
        push_code_point(&mut out, cp);
        i = after + 1 + width;
    }
    Ok(out)
}

/// Whether `bytes` decode as UTF-8 with `surrogatepass` (`BINUNICODE` and friends).
pub(crate) fn utf8_surrogatepass(bytes: &[u8]) -> bool {
    if bytes.is_ascii() {
        return true;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (len, min, lead_bits) = match b {
            0x00..=0x7f => {
                i += 1;
                continue;
            }
            0xc2..=0xdf => (2, 0x80, u32::from(b & 0x1f)),
            0xe0..=0xef => (3, 0x800, u32::from(b & 0x0f)),
            0xf0..=0xf4 => (4, 0x1_0000, u32::from(b & 0x07)),
            _ => return false,
        };
        let Some(tail) = bytes.get(i + 1..i + len) else {
            return false;
        };
        let mut cp = lead_bits;
        for &c in tail {
            if c & 0xc0 != 0x80 {
                return false;
            }
            cp = (cp << 6) | u32::from(c & 0x3f);
        }
        if cp < min || cp > 0x10_ffff {
            return false;
        }
        i += len;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_escapes() {
        assert_eq!(quoted_string(b"'o\\x73'"), Ok(Py2Str::Ascii(b"os".to_vec())));
        assert_eq!(quoted_string(b"\"\\157s\""), Ok(Py2Str::Ascii(b"os".to_vec())));
        assert_eq!(quoted_string(b"'a\\qb'"), Ok(Py2Str::Ascii(b"a\\qb".to_vec())));
        assert!(quoted_string(b"os").is_err());
        assert!(quoted_string(b"'").is_err());
        assert!(quoted_string(b"'\\x4'").is_err());
        assert!(quoted_string(b"'\\'").is_err());
        assert_eq!(quoted_string(b"'\\777'"), Ok(Py2Str::NotAscii(vec![0xc3, 0xbf])));
        assert_eq!(quoted_string(b"'\xc3\xa9'"), Ok(Py2Str::NotAscii("é".as_bytes().to_vec())));
    }

    #[test]
    fn raw_unicode_escape_counts_backslashes() {
        assert_eq!(raw_unicode_escape(b"\\u0041").as_deref(), Ok(&b"A"[..]));
        assert_eq!(raw_unicode_escape(b"\\\\u0041").as_deref(), Ok(&b"\\\\u0041"[..]));
        assert_eq!(raw_unicode_escape(b"\\\\\\u0041").as_deref(), Ok(&b"\\\\A"[..]));
        assert!(raw_unicode_escape(b"\\u00").is_err());
        assert!(raw_unicode_escape(b"\\U00110000").is_err());
        assert_eq!(raw_unicode_escape(b"\\x41").as_deref(), Ok(&b"\\x41"[..]));
        assert_eq!(raw_unicode_escape(b"\\").as_deref(), Ok(&b"\\"[..]));
        assert_eq!(raw_unicode_escape(b"\xe9").as_deref(), Ok("é".as_bytes()));
        assert_eq!(raw_unicode_escape(b"\\ud800").as_deref(), Ok(&[0xed, 0xa0, 0x80][..]));
    }

    #[test]
    fn surrogatepass() {
        assert!(utf8_surrogatepass("héllo €𝄞".as_bytes()));
        assert!(utf8_surrogatepass(&[0xed, 0xa0, 0x80]));
        assert!(!utf8_surrogatepass(&[0xc0, 0x80]));
        assert!(!utf8_surrogatepass(&[0xe0, 0x80, 0x80]));
        assert!(!utf8_surrogatepass(&[0xf4, 0x90, 0x80, 0x80]));
        assert!(!utf8_surrogatepass(&[0xe2, 0x82]));
        assert!(!utf8_surrogatepass(&[0xff]));
    }
}
