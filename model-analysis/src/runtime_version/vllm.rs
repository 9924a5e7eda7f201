//! vLLM: a Python package. Its version is `Version:` in
//! `site-packages/vllm-<version>.dist-info/METADATA`, found from the interpreter's
//! path (`<prefix>/bin/python` -> `<prefix>/lib/python3.X/site-packages`) or from any
//! file under a `site-packages` directory (a mapped extension module).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::open::Root;

use super::{Runtime, RuntimeVersion, VersionError, VersionSource};

/// Directory entries looked at per directory: a site-packages of a few thousand
/// packages is large.
const MAX_ENTRIES: usize = 100_000;
/// The metadata headers come first; the long description after them is not read.
const MAX_METADATA: u64 = 64 * 1024;

/// Reads vLLM's version for the interpreter (or the site-packages file) at `path`
/// inside `root`.
///
/// # Errors
/// No vLLM metadata is found, or it cannot be read.
pub fn vllm_version(root: &Root, path: &Path) -> Result<RuntimeVersion, VersionError> {
    for site in site_packages(root, path) {
        let Some(dist_info) = entries(root, &site).into_iter().find(|name| is_vllm_dist_info(name)) else {
            continue;
        };
        let metadata = site.join(&dist_info).join("METADATA");
        let version = read_version(root, &metadata)?;
        let mut found = RuntimeVersion::unknown(Runtime::Vllm);
        found.version = Some(version);
        found.source = Some(VersionSource::DistInfo { metadata });
        return Ok(found);
    }
    Err(VersionError::NotFound { path: path.to_path_buf(), what: "vllm-*.dist-info" })
}

/// The site-packages directories `path` points to.
fn site_packages(root: &Root, path: &Path) -> Vec<PathBuf> {
    if let Some(site) =
        path.ancestors().find(|a| a.file_name().is_some_and(|n| n == "site-packages" || n == "dist-packages"))
    {
        return vec![site.to_path_buf()];
    }
    // <prefix>/bin/python3 -> <prefix>/lib{,64}/python3.X/{site,dist}-packages.
    let Some(prefix) = path.parent().and_then(Path::parent) else { return Vec::new() };
    let mut found = Vec::new();
    for lib in ["lib", "lib64"] {
        let lib = prefix.join(lib);
        for python in entries(root, &lib).into_iter().filter(|n| n.starts_with("python3")) {
            for site in ["site-packages", "dist-packages"] {
                found.push(lib.join(&python).join(site));
            }
        }
    }
    found
}

fn is_vllm_dist_info(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("vllm-") && lower.ends_with(".dist-info")
}

/// The names in a directory (empty when it cannot be listed), at most
/// [`MAX_ENTRIES`].
fn entries(root: &Root, dir: &Path) -> Vec<String> {
    let Ok(fd) = root.open_dir(dir) else { return Vec::new() };
    let Ok(listing) = rustix::fs::Dir::read_from(&fd) else { return Vec::new() };
    listing
        .filter_map(Result::ok)
        .take(MAX_ENTRIES)
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
        .filter(|n| n != "." && n != "..")
        .collect()
}

fn read_version(root: &Root, metadata: &Path) -> Result<String, VersionError> {
    let opened = root.open_file(metadata, false, None)?;
    let mut head = Vec::new();
    opened
        .file
        .take(MAX_METADATA)
        .read_to_end(&mut head)
        .map_err(|source| VersionError::Io { path: metadata.to_path_buf(), source })?;
    let text = String::from_utf8_lossy(&head);
    let bad =
        |reason: &str| VersionError::Malformed { path: metadata.to_path_buf(), reason: reason.to_owned() };
    let headers: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).collect();
    let name = headers.iter().find_map(|l| l.strip_prefix("Name:")).map(str::trim);
    if !name.is_some_and(|n| n.eq_ignore_ascii_case("vllm")) {
        return Err(bad("the metadata is not vLLM's"));
    }
    let version = headers
        .iter()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(str::trim)
        .ok_or_else(|| bad("no Version: header"))?;
    if version.is_empty() || version.len() > 64 {
        return Err(bad("a malformed Version: header"));
    }
    Ok(version.to_owned())
}
