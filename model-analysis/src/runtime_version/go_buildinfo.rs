//! Go build information (`runtime/debug.BuildInfo`) as the linker stores it: a
//! 32-byte header starting `\xff Go buildinf:`, then either (Go 1.18+) the Go version
//! and module information inline as varint-prefixed strings, or (older) two pointers
//! to Go string headers elsewhere in the image.

use serde::Serialize;

pub(crate) const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
/// Flag bits of header byte 15.
const FLAG_BIG_ENDIAN: u8 = 0x1;
const FLAG_INLINE: u8 = 0x2;
/// The module information is far smaller; a Go version string much more so.
pub(crate) const MAX_MODINFO: u64 = 1024 * 1024;
const MAX_GO_VERSION: u64 = 256;
/// Build settings kept.
const MAX_SETTINGS: usize = 256;

/// What `go version -m` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GoBuildInfo {
    /// `go1.24.1`.
    pub go_version: String,
    /// The main package's import path.
    pub path: Option<String>,
    /// The main module and its version (`(devel)` for a source build).
    pub main_module: Option<(String, String)>,
    /// `build` lines: `-ldflags`, `vcs.revision`, `GOOS`...
    pub settings: Vec<(String, String)>,
}

impl GoBuildInfo {
    #[must_use]
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses build info from `data`, which starts at the magic. `read_virtual(addr, len)`
/// reads the image at a virtual address (for the old pointer format).
pub(crate) fn parse(
    data: &[u8],
    read_virtual: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
) -> Result<GoBuildInfo, String> {
    if !data.starts_with(MAGIC) {
        return Err("no Go build-info magic".into());
    }
    let header = data.get(..HEADER_LEN).ok_or("the Go build-info header is truncated")?;
    let (ptr_size, flags) = (header[14], header[15]);
    let (version, modinfo) = if flags & FLAG_INLINE != 0 {
        let mut rest = &data[HEADER_LEN..];
        let version = varint_string(&mut rest, MAX_GO_VERSION)?;
        let modinfo = varint_string(&mut rest, MAX_MODINFO)?;
        (version, modinfo)
    } else {
        let big = flags & FLAG_BIG_ENDIAN != 0;
        let version = pointed_string(header, 16, ptr_size, big, MAX_GO_VERSION, read_virtual)?;
        let modinfo =
            pointed_string(header, 16 + usize::from(ptr_size), ptr_size, big, MAX_MODINFO, read_virtual)?;
        (version, modinfo)
    };
    let go_version = String::from_utf8(version).map_err(|_| "the Go version is not UTF-8".to_owned())?;
    if !go_version.starts_with("go") {
        return Err(format!("{:?} is not a Go version", go_version.chars().take(40).collect::<String>()));
    }
    let mut info = GoBuildInfo { go_version, ..GoBuildInfo::default() };
    read_modinfo(strip_sentinels(&modinfo), &mut info);
    Ok(info)
}

/// Go's `binary.Uvarint`: at most 10 bytes, no overflow.
fn uvarint(rest: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for (i, &byte) in rest.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return Err("a varint overflows 64 bits".into());
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *rest = &rest[i + 1..];
            return Ok(value);
        }
    }
    Err("a truncated or overlong varint".into())
}

fn varint_string(rest: &mut &[u8], cap: u64) -> Result<Vec<u8>, String> {
    let len = uvarint(rest)?;
    if len > cap {
        return Err(format!("a {len}-byte string in the build info (cap {cap})"));
    }
    let len = usize::try_from(len).map_err(|_| "string length".to_owned())?;
    let bytes = rest.get(..len).ok_or("a build-info string runs past the data")?;
    *rest = &rest[len..];
    Ok(bytes.to_vec())
}

/// Old format: a pointer at `at` to a Go string header `{data, len}`.
fn pointed_string(
    header: &[u8],
    at: usize,
    ptr_size: u8,
    big: bool,
    cap: u64,
    read_virtual: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let size = match ptr_size {
        4 | 8 => usize::from(ptr_size),
        other => return Err(format!("pointer size {other} in the Go build info")),
    };
    let word = |bytes: &[u8]| -> u64 {
        let mut buf = [0u8; 8];
        if big {
            buf[8 - size..].copy_from_slice(&bytes[..size]);
            u64::from_be_bytes(buf)
        } else {
            buf[..size].copy_from_slice(&bytes[..size]);
            u64::from_le_bytes(buf)
        }
    };
    let addr = word(header.get(at..at + size).ok_or("the Go build-info header is truncated")?);
    let string_header =
        read_virtual(addr, 2 * size as u64).ok_or("the Go build info points outside the file")?;
    if string_header.len() < 2 * size {
        return Err("a Go string header is truncated".into());
    }
    let (data, len) = (word(&string_header[..size]), word(&string_header[size..]));
    if len > cap {
        return Err(format!("a {len}-byte string in the build info (cap {cap})"));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    read_virtual(data, len).ok_or_else(|| "a Go build-info string lies outside the file".to_owned())
}

/// The module information is framed by 16-byte sentinels (Go's `modinfo.go`).
fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        &[]
    }
}

fn read_modinfo(text: &[u8], info: &mut GoBuildInfo) {
    let text = String::from_utf8_lossy(text);
    for line in text.lines() {
        let mut fields = line.split('\t');
        match fields.next() {
            Some("path") => info.path = fields.next().map(str::to_owned),
            Some("mod") => {
                if let (Some(path), Some(version)) = (fields.next(), fields.next()) {
                    info.main_module = Some((path.to_owned(), version.to_owned()));
                }
            }
            Some("build") if info.settings.len() < MAX_SETTINGS => {
                if let Some((key, value)) = fields.next().and_then(split_setting) {
                    info.settings.push((key, value));
                }
            }
            _ => {}
        }
    }
}

/// `key=value`, either side Go-quoted when it holds spaces, quotes or `=`.
fn split_setting(kv: &str) -> Option<(String, String)> {
    let (key, rest) = if kv.starts_with('"') {
        let (key, used) = unquote(kv)?;
        (key, kv.get(used..)?.strip_prefix('=')?)
    } else {
        let (key, rest) = kv.split_once('=')?;
        (key.to_owned(), rest)
    };
    let value = if rest.starts_with('"') { unquote(rest)?.0 } else { rest.to_owned() };
    Some((key, value))
}

/// A Go double-quoted string at the start of `s`: its value and the bytes it used.
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'x' => {
                    let hi = chars.next()?.1.to_digit(16)?;
                    let lo = chars.next()?.1.to_digit(16)?;
                    out.push(char::from(u8::try_from(hi * 16 + lo).ok()?));
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The inline (Go 1.18+) layout, as the linker writes it.
    pub(crate) fn inline_buildinfo(go: &str, modinfo: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[8, FLAG_INLINE]);
        out.resize(HEADER_LEN, 0);
        let mut framed = vec![b'0'; 16];
        framed.extend_from_slice(modinfo.as_bytes());
        framed.extend_from_slice(b"\n");
        framed.extend_from_slice(&[b'1'; 16]);
        for s in [go.as_bytes(), &framed] {
            let mut n = s.len() as u64;
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
            out.extend_from_slice(s);
        }
        out
    }

    fn none(_: u64, _: u64) -> Option<Vec<u8>> {
        None
    }

    #[test]
    fn the_inline_format_parses() {
        let modinfo = "path\tgithub.com/ollama/ollama\nmod\tgithub.com/ollama/ollama\t(devel)\t\nbuild\t-ldflags=\"-w -s \\\"-X=github.com/ollama/ollama/version.Version=0.12.0\\\"\"\nbuild\tGOOS=linux";
        let info = parse(&inline_buildinfo("go1.24.1", modinfo), &none).expect("parses");
        assert_eq!(info.go_version, "go1.24.1");
        assert_eq!(info.path.as_deref(), Some("github.com/ollama/ollama"));
        assert_eq!(info.main_module, Some(("github.com/ollama/ollama".into(), "(devel)".into())));
        assert_eq!(
            info.setting("-ldflags"),
            Some("-w -s \"-X=github.com/ollama/ollama/version.Version=0.12.0\"")
        );
        assert_eq!(info.setting("GOOS"), Some("linux"));
    }

    #[test]
    fn the_pointer_format_follows_its_pointers() {
        // Header pointers at 16 and 24 lead to string headers at 0x1000 and 0x1010.
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&[8, 0]);
        header.extend_from_slice(&0x1000u64.to_le_bytes());
        header.extend_from_slice(&0x1010u64.to_le_bytes());
        let modinfo = format!("{}path\tx/cmd\nmod\tx\tv1.2.3\th1:\n{}", "0".repeat(16), "1".repeat(16));
        let memory = move |addr: u64, len: u64| -> Option<Vec<u8>> {
            let word = |a: u64, b: u64| [a.to_le_bytes(), b.to_le_bytes()].concat();
            let bytes = match addr {
                0x1000 => word(0x2000, 8),
                0x1010 => word(0x3000, modinfo.len() as u64),
                0x2000 => b"go1.16.3".to_vec(),
                0x3000 => modinfo.as_bytes().to_vec(),
                _ => return None,
            };
            (bytes.len() as u64 >= len).then(|| bytes[..len as usize].to_vec())
        };
        let info = parse(&header, &memory).expect("parses");
        assert_eq!(info.go_version, "go1.16.3");
        assert_eq!(info.main_module, Some(("x".into(), "v1.2.3".into())));
    }

    #[test]
    fn hostile_build_info_is_refused() {
        let good = inline_buildinfo("go1.22.0", "path\tx\n");
        for cut in [10, 31, 33, 40] {
            assert!(parse(&good[..cut], &none).is_err(), "cut at {cut}");
        }
        let mut huge = good[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&[0xff; 9]);
        huge.push(0x01);
        assert!(parse(&huge, &none).expect_err("huge").contains("cap"));
        let mut overflow = good[..HEADER_LEN].to_vec();
        overflow.extend_from_slice(&[0xff; 12]);
        assert!(parse(&overflow, &none).expect_err("overflow").contains("varint"));
        let mut pointers = good[..HEADER_LEN].to_vec();
        pointers[15] = 0;
        assert!(parse(&pointers, &none).expect_err("outside").contains("outside"));
        pointers[14] = 3;
        assert!(parse(&pointers, &none).expect_err("ptr size").contains("pointer size"));
    }
}
