//! Quick identification: what format a file is, decided from a prefix and, for zips and
//! executables, their directory, under a small budget. The live sensor does this on the
//! event path's side (a worker with a deadline) to decide whether a candidate is a
//! model; metadata, pickle walks and chat templates come later, from [`crate::analyze`].

use std::io::{Read, Seek};

use crate::format::{Format, SNIFF_LEN, is_executable, sniff};
use crate::limits::{Limits, Scan};
use crate::source::Source;
use crate::{container, llamafile, zip};

/// The format of the file behind `reader` (`size` bytes), looking no further than
/// `limits` allow; findings are not collected (deep analysis reports them).
pub fn identify<R: Read + Seek>(reader: &mut R, size: u64, limits: &Limits) -> Format {
    let mut src = Source::new(reader, size);
    let mut prefix = vec![0u8; SNIFF_LEN];
    let Ok(n) = src.seek_to(0).and_then(|()| src.read_up_to(&mut prefix)) else {
        return Format::Unknown;
    };
    prefix.truncate(n);
    let mut scan = Scan::new(limits);
    match sniff(&prefix) {
        Format::Zip => {
            zip::read_directory(&mut src, &mut scan).map_or(Format::Zip, |dir| container::classify(&dir))
        }
        Format::Unknown if is_executable(&prefix) => {
            if llamafile::find_embedded_gguf(&mut src, &mut scan).is_some() {
                Format::Llamafile
            } else {
                Format::Unknown
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn prefixes_and_plain_bytes() {
        let limits = Limits::default();
        let gguf = b"GGUF\x03\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        assert_eq!(identify(&mut Cursor::new(gguf), gguf.len() as u64, &limits), Format::Gguf);
        let text = b"just some text";
        assert_eq!(identify(&mut Cursor::new(text), text.len() as u64, &limits), Format::Unknown);
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
        assert_eq!(identify(&mut Cursor::new(elf), elf.len() as u64, &limits), Format::Unknown);
    }
}
