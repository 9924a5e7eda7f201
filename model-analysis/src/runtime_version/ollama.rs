//! Ollama: a Go binary. Its version is set at link time (`-ldflags -X
//! github.com/ollama/ollama/version.Version=0.12.0`, recorded in the Go build
//! settings), or is the main module's version for a `go install` build.

use std::path::Path;

use memchr::memmem;

use crate::open::{CheckedFile, Root};

use super::elf::{self, Elf};
use super::go_buildinfo::{self, GoBuildInfo, MAX_MODINFO};
use super::{Runtime, RuntimeVersion, VersionError, VersionSource, elf_error, open_binary};

const VERSION_VARIABLE: &str = "github.com/ollama/ollama/version.Version=";
/// Where the magic is searched for when the section table is gone: build info lives
/// in the first data segment, within the first tens of MiB of any Go binary.
const SCAN_LIMIT: u64 = 256 * 1024 * 1024;
const SCAN_CHUNK: usize = 4 * 1024 * 1024;

/// Reads the Ollama version from the binary at `path` inside `root`.
///
/// # Errors
/// The file cannot be opened, is not an ELF Go binary, or its build info is malformed.
pub fn ollama_version(root: &Root, path: &Path) -> Result<RuntimeVersion, VersionError> {
    let file = open_binary(root, path)?;
    let elf = Elf::parse(&file).map_err(elf_error(path))?;
    let bad = |reason: String| VersionError::Malformed { path: path.to_path_buf(), reason };
    let data = match elf.section(".go.buildinfo") {
        Some(section) => elf.read(section.offset, section.size.min(MAX_MODINFO + 64), MAX_MODINFO + 64),
        None => match scan_for_magic(&file, elf.size).map_err(elf_error(path))? {
            Some(offset) => elf.read(offset, (elf.size - offset).min(MAX_MODINFO + 64), MAX_MODINFO + 64),
            None => return Err(VersionError::NotFound { path: path.to_path_buf(), what: "Go build info" }),
        },
    }
    .map_err(elf_error(path))?;
    let reader = |addr: u64, len: u64| elf.read_virtual(addr, len, MAX_MODINFO, None);
    let info = go_buildinfo::parse(&data, &reader).map_err(bad)?;
    Ok(from_build_info(info))
}

fn from_build_info(info: GoBuildInfo) -> RuntimeVersion {
    let mut found = RuntimeVersion::unknown(Runtime::Ollama);
    if let Some(version) = info.setting("-ldflags").and_then(ldflags_version) {
        found.version = Some(version);
        found.source = Some(VersionSource::GoLdflags);
    } else if let Some((_, version)) =
        info.main_module.as_ref().filter(|(_, v)| v != "(devel)" && !v.is_empty())
    {
        found.version = Some(version.trim_start_matches('v').to_owned());
        found.source = Some(VersionSource::GoModule);
    }
    found.commit = info.setting("vcs.revision").map(str::to_owned);
    found.go = Some(info);
    found
}

/// The value given to `-X ...version.Version=`, in any of the ways `go build`
/// records flags (`-X=name=value`, `-X name=value`, quoted).
fn ldflags_version(flags: &str) -> Option<String> {
    let start = flags.find(VERSION_VARIABLE)? + VERSION_VARIABLE.len();
    let value: String = flags[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\'))
        .collect();
    let value = value.trim_start_matches('v');
    (!value.is_empty() && value.len() <= 64).then(|| value.to_owned())
}

/// The file offset of the build-info magic in the first [`SCAN_LIMIT`] bytes.
fn scan_for_magic(file: &CheckedFile, size: u64) -> Result<Option<u64>, elf::ElfError> {
    let magic = go_buildinfo::MAGIC;
    let finder = memmem::Finder::new(magic);
    let limit = size.min(SCAN_LIMIT);
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut offset = 0u64;
    while offset < limit {
        let n = elf::read_up_to(file, offset, &mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(at) = finder.find(&buf[..n]) {
            return Ok(Some(offset + at as u64));
        }
        if n < magic.len() {
            break;
        }
        // Overlap by the magic's length less one, so a match across chunks is seen.
        offset += (n - (magic.len() - 1)) as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldflags_in_every_spelling() {
        for flags in [
            "-w -s \"-X=github.com/ollama/ollama/version.Version=0.12.0\" \"-X=github.com/ollama/ollama/server.mode=release\"",
            "-X github.com/ollama/ollama/version.Version=0.12.0 -s",
            "-X=github.com/ollama/ollama/version.Version=v0.12.0",
        ] {
            assert_eq!(ldflags_version(flags).as_deref(), Some("0.12.0"), "{flags}");
        }
        assert_eq!(ldflags_version("-s -w"), None);
        assert_eq!(ldflags_version("-X=github.com/ollama/ollama/version.Version="), None);
    }
}
