//! Protocol 0 and 1 text arguments: newline-terminated lines, Python string literals
//! and raw-unicode-escape, decoded with caps and without allocation from untrusted lengths.

use std::io::Read;
use std::rc::Rc;

use super::{KEEP_STR, Stop, malformed};
use crate::pickle::input::Input;
use crate::pickle::opcodes as op;

/// A GLOBAL/INST line: UTF-8 (CPython decodes it strictly), `None` when too long.
pub(super) fn text_line<R: Read>(input: &mut Input<R>) -> Result<Option<Rc<str>>, Stop> {
    let Some(line) = input.line(KEEP_STR)? else {
        return Ok(None);
    };
    let text = String::from_utf8(line).map_err(|_| malformed("name is not UTF-8"))?;
    Ok(Some(Rc::from(text)))
}

pub(super) fn decimal_line<R: Read>(input: &mut Input<R>) -> Result<u64, Stop> {
    let line = input.line(64)?.ok_or_else(|| malformed("memo key too long"))?;
    let text = std::str::from_utf8(&line).map_err(|_| malformed("memo key is not ASCII"))?;
    text.trim().parse::<u64>().map_err(|_| malformed(format!("bad memo key {text:?}")))
}

/// CPython parses these with `int()`, `float()` or ASCII decoding; this is a looser
/// check, strict enough to keep text from passing as a pickle.
pub(super) fn valid_scalar_line(opcode: u8, line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    match opcode {
        op::PERSID => text.is_ascii(),
        op::FLOAT => text.trim().parse::<f64>().is_ok(),
        _ => {
            let digits = text.trim().trim_end_matches('L');
            let digits = digits.strip_prefix(['-', '+']).unwrap_or(digits);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit() || b"xXoO_".contains(&b))
        }
    }
}

/// The STRING opcode: a quoted Python 2 `repr`, decoded with `codecs.escape_decode`.
pub(super) fn quoted_string(line: &[u8]) -> Result<String, &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let [quote, inner @ .., last] = line else {
        return Err("the STRING argument must be quoted");
    };
    if quote != last || !matches!(quote, b'\'' | b'"') {
        return Err("the STRING argument must be quoted");
    }
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
            return Err("trailing backslash");
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'x' => {
                let hex = inner.get(i..i + 2).ok_or("truncated \\x escape")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "bad \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
                i += 2;
            }
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
                out.push(u8::try_from(value & 0xff).unwrap_or(0));
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The UNICODE opcode's `raw-unicode-escape`: only `\uXXXX` and `\UXXXXXXXX` escape;
/// other bytes are Latin-1.
pub(super) fn raw_unicode_escape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b == b'\\' && matches!(line.get(i + 1), Some(b'u' | b'U')) {
            let width = if line[i + 1] == b'u' { 4 } else { 8 };
            let hex = line.get(i + 2..i + 2 + width)?;
            let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            i += 2 + width;
        } else {
            out.push(char::from(b));
            i += 1;
        }
    }
    Some(out)
}
