//! The text numbers of protocol 0 (`INT`, `LONG`, `FLOAT`, and the `GET`/`PUT` memo
//! keys), parsed exactly as CPython 3.11's C unpickler parses them, because a number it
//! rejects ends the stream there (and what follows never runs):
//! - `INT`: C `strtol(s, &end, 0)` (so `010` is octal 8), and when that fails or
//!   overflows, `int(s, 0)` (`PyLong_FromString`): `0x`/`0o`/`0b` prefixes,
//!   underscores between digits, surrounding whitespace, at most 4300 decimal digits;
//! - `LONG`: one trailing `L` removed, then `int(s, 0)`;
//! - `GET`/`PUT`: `int(s, 10)` (leading zeros allowed), which must fit a C `ssize_t`;
//! - `FLOAT`: `PyOS_string_to_double`: no whitespace, no underscores, `inf`/`nan`
//!   spelled out, overflow is an error.
//!
//! The unpickler hands these functions a C string: a NUL byte ends the number.

/// An integer value: exact while it fits an `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntValue {
    Small(i64),
    Big,
}

/// What `INT` pushes: `I00\n`/`I01\n` are booleans (protocol 0 spells bools that way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntOrBool {
    Int(IntValue),
    Bool,
}

/// CPython's default `sys.int_max_str_digits`.
const MAX_STR_DIGITS: usize = 4300;

/// `Py_ISSPACE` and C `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The line as the C code sees it: up to the first NUL.
fn c_string(line: &[u8]) -> &[u8] {
    line.iter().position(|&b| b == 0).map_or(line, |nul| &line[..nul])
}

fn digit_value(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'a'..=b'z' => u32::from(b - b'a') + 10,
        b'A'..=b'Z' => u32::from(b - b'A') + 10,
        _ => u32::MAX,
    }
}

/// `PyLong_FromString(s, NULL, base)` for base 0 or 10, on a C string.
pub(crate) fn py_long_from_string(s: &[u8], base: u32) -> Option<IntValue> {
    let s = c_string(s);
    let mut i = s.iter().take_while(|&&b| is_space(b)).count();
    let negative = match s.get(i) {
        Some(b'+') => {
            i += 1;
            false
        }
        Some(b'-') => {
            i += 1;
            true
        }
        _ => false,
    };
    let mut base = base;
    let mut only_zero = false;
    if base == 0 {
        base = match (s.get(i), s.get(i + 1).map(u8::to_ascii_lowercase)) {
            (Some(b'0'), Some(b'x')) => 16,
            (Some(b'0'), Some(b'o')) => 8,
            (Some(b'0'), Some(b'b')) => 2,
            (Some(b'0'), _) => {
                only_zero = true;
                10
            }
            _ => 10,
        };
        if base != 10 {
            i += 2;
            if s.get(i) == Some(&b'_') {
                i += 1;
            }
        }
    }
    if s.get(i) == Some(&b'_') {
        return None;
    }
    let (value, digits, end) = scan_digits(s, i, base)?;
    if digits == 0 {
        return None;
    }
    if base == 10 && digits > MAX_STR_DIGITS {
        return None;
    }
    if only_zero && value != IntValue::Small(0) {
        return None;
    }
    if !s[end..].iter().all(|&b| is_space(b)) {
        return None;
    }
    Some(match value {
        IntValue::Small(v) if negative => IntValue::Small(-v),
        other => other,
    })
}

/// Digits with single underscores between them: the value, the digit count and where
/// the digits end. `None` for a doubled or trailing underscore.
fn scan_digits(s: &[u8], start: usize, base: u32) -> Option<(IntValue, usize, usize)> {
    let mut value: Option<i64> = Some(0);
    let mut digits = 0usize;
    let mut prev = 0u8;
    let mut i = start;
    while let Some(&b) = s.get(i) {
        if b == b'_' {
            if prev == b'_' {
                return None;
            }
        } else if digit_value(b) < base {
            digits += 1;
            value = value
                .and_then(|v| v.checked_mul(i64::from(base)))
                .and_then(|v| v.checked_add(i64::from(digit_value(b))));
        } else {
            break;
        }
        prev = b;
        i += 1;
    }
    if prev == b'_' {
        return None;
    }
    Some((value.map_or(IntValue::Big, IntValue::Small), digits, i))
}

/// C `strtol(s, &end, 0)` on a C string: the value (`None` on overflow) and the end.
fn strtol_base0(s: &[u8]) -> (Option<i64>, usize) {
    let mut i = s.iter().take_while(|&&b| is_space(b)).count();
    let negative = match s.get(i) {
        Some(b'+') => {
            i += 1;
            false
        }
        Some(b'-') => {
            i += 1;
            true
        }
        _ => false,
    };
    let (base, digits_start) = match (s.get(i), s.get(i + 1).map(u8::to_ascii_lowercase)) {
        (Some(b'0'), Some(b'x')) if s.get(i + 2).is_some_and(|&b| digit_value(b) < 16) => (16, i + 2),
        (Some(b'0'), _) => (8, i),
        _ => (10, i),
    };
    let mut value: Option<i64> = Some(0);
    let mut j = digits_start;
    while let Some(&b) = s.get(j) {
        let d = digit_value(b);
        if d >= base {
            break;
        }
        value = value.and_then(|v| v.checked_mul(i64::from(base))).and_then(|v| v.checked_add(i64::from(d)));
        j += 1;
    }
    if j == digits_start {
        // No digits: strtol leaves `end` at the start of the string.
        return (Some(0), 0);
    }
    let value = if negative { value.map(|v| -v) } else { value };
    (value, j)
}

/// `INT`'s argument (the line without its newline).
pub(crate) fn int_line(line: &[u8]) -> Option<IntOrBool> {
    if line.is_empty() {
        return None;
    }
    let s = c_string(line);
    let (value, end) = strtol_base0(s);
    match value {
        Some(x) if end == s.len() => {
            // `len == 3` in the C code counts the newline: two characters.
            if line.len() == 2 && (x == 0 || x == 1) {
                Some(IntOrBool::Bool)
            } else {
                Some(IntOrBool::Int(IntValue::Small(x)))
            }
        }
        _ => py_long_from_string(line, 0).map(IntOrBool::Int),
    }
}

/// `LONG`'s argument: a trailing `L` is dropped (Python 2 wrote it).
pub(crate) fn long_line(line: &[u8]) -> Option<IntValue> {
    if line.is_empty() {
        return None;
    }
    let digits = line.strip_suffix(b"L").unwrap_or(line);
    py_long_from_string(digits, 0)
}

/// A `GET`/`PUT` memo key: `int(s, 10)` as a C `ssize_t`.
pub(crate) fn memo_key_line(line: &[u8]) -> Option<i64> {
    if line.is_empty() {
        return None;
    }
    match py_long_from_string(line, 10)? {
        IntValue::Small(v) => Some(v),
        IntValue::Big => None,
    }
}

/// Whether `FLOAT`'s argument parses (`PyOS_string_to_double` with overflow an error).
pub(crate) fn float_line(line: &[u8]) -> bool {
    if line.is_empty() {
        return false;
    }
    let s = c_string(line);
    let body = s.strip_prefix(b"+").or_else(|| s.strip_prefix(b"-")).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_slice(), b"inf" | b"infinity" | b"nan") {
        return true;
    }
    let Some(len) = decimal_float_len(body) else {
        return false;
    };
    if len != body.len() {
        return false;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    // Rust reads the same grammar; a finite literal that comes out infinite overflowed.
    text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Whether the pure-Python unpickler's `float(line)` parses `FLOAT`'s argument:
/// surrounding whitespace and underscores between digits are fine, overflow is
/// infinity. (joblib and PyPy use that unpickler.)
pub(crate) fn python_float_line(line: &[u8]) -> bool {
    if line.contains(&0) {
        return false;
    }
    let start = line.iter().take_while(|&&b| is_space(b)).count();
    let end = line.len() - line[start..].iter().rev().take_while(|&&b| is_space(b)).count();
    let text = &line[start..end.max(start)];
    let mut plain = Vec::with_capacity(text.len());
    for (i, &b) in text.iter().enumerate() {
        if b == b'_' {
            let between_digits =
                i > 0 && text[i - 1].is_ascii_digit() && text.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !between_digits {
                return false;
            }
        } else {
            plain.push(b);
        }
    }
    let body = plain.strip_prefix(b"+").or_else(|| plain.strip_prefix(b"-")).unwrap_or(&plain);
    if matches!(body.to_ascii_lowercase().as_slice(), b"inf" | b"infinity" | b"nan") {
        return true;
    }
    decimal_float_len(body).is_some_and(|len| len == body.len())
}

/// Length of the longest prefix of `s` that is `digits [. digits] [e [sign] digits]`
/// with at least one digit in the mantissa.
fn decimal_float_len(s: &[u8]) -> Option<usize> {
    let int_digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        frac_digits = s[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += 1 + frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_digits = s[j..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits > 0 {
            i = j + exp_digits;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(s: &str) -> Option<IntOrBool> {
        int_line(s.as_bytes())
    }

    #[test]
    fn int_accepts_what_cpython_accepts() {
        use IntOrBool::{Bool, Int};
        use IntValue::{Big, Small};
        for (text, want) in [
            ("010", Some(Int(Small(8)))),
            ("08", None),
            ("0x1f", Some(Int(Small(31)))),
            ("0X1F", Some(Int(Small(31)))),
            ("0x", None),
            ("0b1", Some(Int(Small(1)))),
            ("0o7", Some(Int(Small(7)))),
            ("1_000", Some(Int(Small(1000)))),
            (" 12", Some(Int(Small(12)))),
            ("12 ", Some(Int(Small(12)))),
            ("+5", Some(Int(Small(5)))),
            ("--5", None),
            ("\u{0}1", Some(Bool)),
            ("1\u{0}z", Some(Int(Small(1)))),
            ("00", Some(Bool)),
            ("01", Some(Bool)),
            ("-0", Some(Bool)),
            ("0_1", None),
            ("0_0", Some(Int(Small(0)))),
            ("99999999999999999999", Some(Int(Big))),
            ("0x_1f", Some(Int(Small(31)))),
            ("0x__1", None),
            ("1__0", None),
            ("1_", None),
            ("_1", None),
            ("\t7\u{b}", Some(Int(Small(7)))),
            ("12L", None),
            ("", None),
        ] {
            assert_eq!(int(text), want, "{text:?}");
        }
        assert_eq!(int(&"1".repeat(4300)), Some(IntOrBool::Int(IntValue::Big)));
        assert_eq!(int(&"1".repeat(4301)), None);
        assert_eq!(int(&"0".repeat(5000)), Some(IntOrBool::Int(IntValue::Small(0))));
        assert_eq!(int(&format!("0x{}", "f".repeat(5000))), Some(IntOrBool::Int(IntValue::Big)));
    }

    #[test]
    fn long_and_memo_keys() {
        assert_eq!(long_line(b"12L"), Some(IntValue::Small(12)));
        assert_eq!(long_line(b"0x10L"), Some(IntValue::Small(16)));
        assert_eq!(long_line(b"L"), None);
        assert_eq!(long_line(b"010"), None);
        assert_eq!(long_line(b" 5 L"), Some(IntValue::Small(5)));
        assert_eq!(memo_key_line(b"010"), Some(10));
        assert_eq!(memo_key_line(b" +1_0\t"), Some(10));
        assert_eq!(memo_key_line(b"0x1"), None);
        assert_eq!(memo_key_line(b"-1"), Some(-1));
        assert_eq!(memo_key_line(b"9223372036854775808"), None);
        assert_eq!(memo_key_line(b"1L"), None);
    }

    #[test]
    fn python_floats_are_looser() {
        for ok in [" 1.5", "1.5 ", "1_0", "1e999", "1.5\r", "1_0.2_5", "inf"] {
            assert!(python_float_line(ok.as_bytes()), "{ok:?}");
        }
        for bad in ["1__0", "_1", "1_", "1.5\u{0}", "", "x", "1e"] {
            assert!(!python_float_line(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn floats() {
        for ok in [
            "inf",
            "-nan",
            ".5",
            "5.",
            "Infinity",
            "+1",
            "1.5\u{0}junk",
            "1e-999",
            "INFINITY",
            "0e99999",
            "1E5",
        ] {
            assert!(float_line(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            " 1.5", "1.5 ", "1_0", "1e999", "-1e999", ".", "1e", "0x1p3", "nan(1)", "infx", "1.5\r", "", "in",
        ] {
            assert!(!float_line(bad.as_bytes()), "{bad:?}");
        }
    }
}
