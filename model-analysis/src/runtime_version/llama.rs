//! llama.cpp: `common/build-info.cpp` defines `int LLAMA_BUILD_NUMBER` and
//! `char const *LLAMA_COMMIT` (with `LLAMA_COMPILER` and `LLAMA_BUILD_TARGET`),
//! linked into `llama-server` and the other tools. With symbols, both are read where
//! the symbols point (a position-independent binary keeps the commit pointer in a
//! relative relocation). Stripped, the build number is gone; the commit is found by a
//! bounded search of `.rodata` for the commit string followed by the compiler string.

use std::path::Path;

use crate::open::Root;

use super::elf::{Elf, c_string};
use super::{Runtime, RuntimeVersion, VersionError, VersionSource, elf_error, open_binary};

/// `.rodata` searched for the build-info strings (CUDA builds have large ones).
const MAX_RODATA: u64 = 256 * 1024 * 1024;
const MAX_COMMIT: u64 = 64;
/// How `LLAMA_COMPILER` starts (CMake's compiler id and version, or `cc --version`).
const COMPILER_PREFIXES: &[&[u8]] =
    &[b"GNU ", b"Clang ", b"AppleClang ", b"IntelLLVM ", b"MSVC ", b"cc ", b"gcc "];

/// Reads llama.cpp's build number and commit from the binary at `path` inside
/// `root`. A binary without them yields a version of `None`, not an error.
///
/// # Errors
/// The file cannot be opened or is not a well-formed ELF file.
pub fn llama_cpp_version(root: &Root, path: &Path) -> Result<RuntimeVersion, VersionError> {
    let file = open_binary(root, path)?;
    let elf = Elf::parse(&file).map_err(elf_error(path))?;
    let mut found = RuntimeVersion::unknown(Runtime::LlamaCpp);
    if let Some(number) = build_number(&elf).map_err(elf_error(path))? {
        found.version = Some(format!("b{number}"));
        found.source = Some(VersionSource::Symbols);
    }
    found.commit = commit_from_symbol(&elf).map_err(elf_error(path))?;
    if found.commit.is_none()
        && let Some(commit) = commit_from_strings(&elf).map_err(elf_error(path))?
    {
        found.commit = Some(commit);
        found.source.get_or_insert(VersionSource::Strings);
    }
    Ok(found)
}

fn build_number(elf: &Elf<'_>) -> Result<Option<u32>, super::ElfError> {
    let Some(symbol) = elf.symbol("LLAMA_BUILD_NUMBER")? else { return Ok(None) };
    let Some(bytes) = elf.read_virtual(symbol.value, 4, 4, Elf::symbol_section(&symbol)) else {
        return Ok(None);
    };
    let raw = <[u8; 4]>::try_from(bytes.as_slice())
        .map_err(|_| super::ElfError::Malformed("build number".into()))?;
    let number = if elf.big_endian() { i32::from_be_bytes(raw) } else { i32::from_le_bytes(raw) };
    // 0 is what a build without git records.
    Ok(u32::try_from(number).ok().filter(|&n| n > 0))
}

fn commit_from_symbol(elf: &Elf<'_>) -> Result<Option<String>, super::ElfError> {
    let Some(symbol) = elf.symbol("LLAMA_COMMIT")? else { return Ok(None) };
    let width = if elf.is_64() { 8 } else { 4 };
    let Some(bytes) = elf.read_virtual(symbol.value, width, 8, Elf::symbol_section(&symbol)) else {
        return Ok(None);
    };
    let mut word = [0u8; 8];
    let pointer = if elf.big_endian() {
        word[8 - bytes.len()..].copy_from_slice(&bytes);
        u64::from_be_bytes(word)
    } else {
        word[..bytes.len()].copy_from_slice(&bytes);
        u64::from_le_bytes(word)
    };
    let pointer = match pointer {
        0 => match elf.relative_target(symbol.value)? {
            Some(target) => target,
            None => return Ok(None),
        },
        p => p,
    };
    let Some(offset) = elf.offset_of(pointer, 1, None) else { return Ok(None) };
    let len = (elf.size - offset).min(MAX_COMMIT);
    let bytes = elf.read(offset, len, MAX_COMMIT)?;
    Ok(c_string(&bytes, 0).and_then(commit_text))
}

/// A commit id as build-info records it: hex, or `unknown` (no git), kept only if hex.
fn commit_text(bytes: &[u8]) -> Option<String> {
    let ok = (7..=40).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_hexdigit);
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

fn commit_from_strings(elf: &Elf<'_>) -> Result<Option<String>, super::ElfError> {
    let Some(rodata) = elf.section(".rodata") else { return Ok(None) };
    if rodata.size > MAX_RODATA {
        return Ok(None);
    }
    let bytes = elf.read(rodata.offset, rodata.size, MAX_RODATA)?;
    Ok(find_commit_before_compiler(&bytes))
}

/// `<hex commit>\0<compiler>\0`: the commit string followed by the compiler string,
/// as the build-info translation unit lays its literals out.
fn find_commit_before_compiler(bytes: &[u8]) -> Option<String> {
    for (nul, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == 0) {
        let next = &bytes[nul + 1..];
        if !COMPILER_PREFIXES.iter().any(|p| next.starts_with(p)) {
            continue;
        }
        let start = bytes[..nul].iter().rposition(|&b| b == 0).map_or(0, |p| p + 1);
        if let Some(commit) = commit_text(&bytes[start..nul]) {
            return Some(commit);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_found_before_the_compiler() {
        let rodata = b"\0%s: build = %d (%s)\0b4f5e2a\0GNU 13.2.0\0Linux x86_64\0";
        assert_eq!(find_commit_before_compiler(rodata).as_deref(), Some("b4f5e2a"));
        assert_eq!(find_commit_before_compiler(b"\0unknown\0GNU 13\0"), None);
        assert_eq!(find_commit_before_compiler(b"GNU 13\0"), None);
    }
}
