//! The model as it is on disk: its files (relative path and size), walked without
//! following anything the signature does not allow, ignored subtrees never entered.
//!
//! Directories are opened relative to their parent's descriptor with `O_NOFOLLOW`
//! (nothing is re-resolved by name while walking); files are listed by `fstatat`
//! without following, and opened for hashing through [`Root::open_file`] later.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use crate::open::{OpenError, Root, file_kind};

use super::statement::{Manifest, Method};
use super::verdict::VerifyError;

/// Deeper than any model directory.
const MAX_DEPTH: usize = 64;
/// Entries looked at (ignored ones included) before giving up on a tree.
const MAX_ENTRIES: usize = 200_000;

/// One file of the model.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ModelFile {
    /// Relative to the model, `/`-separated; `.` when the model is this file.
    pub(crate) rel: String,
    pub(crate) size: u64,
}

/// The walk's outcome: the files, or why the tree cannot match any signature.
pub(crate) type Listing = Result<Vec<ModelFile>, String>;

/// Lists the model at `model` (a directory or one file) inside `root`. `signature`
/// is left out if it lies inside. `known` says whether a model-relative path is
/// signed: the walk stops at the first file that is neither signed nor ignored.
pub(crate) fn list(
    root: &Root,
    model: &Path,
    signature: &Path,
    manifest: &Manifest,
    known: &dyn Fn(&str) -> bool,
) -> Result<Listing, VerifyError> {
    let dir = match root.open_dir(model) {
        Ok(dir) => dir,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
            return single_file(root, model);
        }
        Err(source) => return Err(VerifyError::Io { path: model.to_path_buf(), source }),
    };
    let skip = signature.strip_prefix(model).ok().map(|p| p.to_string_lossy().into_owned());
    let mut walk = Walk { root, model, manifest, known, skip, files: Vec::new(), entries: 0 };
    match walk.directory(&dir, "", 0)? {
        Ok(()) => {
            walk.files.sort();
            Ok(Ok(walk.files))
        }
        Err(why) => Ok(Err(why)),
    }
}

fn single_file(root: &Root, model: &Path) -> Result<Listing, VerifyError> {
    match root.open_file(model, true, None) {
        Ok(opened) => Ok(Ok(vec![ModelFile { rel: ".".into(), size: opened.stamp.size }])),
        Err(OpenError::NotRegular { kind, .. }) => Ok(Err(format!("the model is a {kind}"))),
        Err(source) => Err(VerifyError::OpenModel { path: model.to_path_buf(), source }),
    }
}

struct Walk<'a> {
    root: &'a Root,
    model: &'a Path,
    manifest: &'a Manifest,
    known: &'a dyn Fn(&str) -> bool,
    skip: Option<String>,
    files: Vec<ModelFile>,
    entries: usize,
}

impl Walk<'_> {
    /// Walks `dir` (model-relative `prefix`). The inner error is a reason the tree does
    /// not match.
    fn directory(
        &mut self,
        dir: &OwnedFd,
        prefix: &str,
        depth: usize,
    ) -> Result<Result<(), String>, VerifyError> {
        if depth > MAX_DEPTH {
            return Ok(Err(format!("{prefix} is more than {MAX_DEPTH} directories deep")));
        }
        let io = |source: rustix::io::Errno| VerifyError::Io {
            path: self.model.join(prefix),
            source: source.into(),
        };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name().to_bytes().to_vec();
            if name == b"." || name == b".." {
                continue;
            }
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Ok(Err(format!("the model has more than {MAX_ENTRIES} entries")));
            }
            names.push(name);
        }
        names.sort();
        for name in names {
            let Ok(text) = std::str::from_utf8(&name) else {
                let shown = String::from_utf8_lossy(&name);
                return Ok(Err(format!("{prefix}/{shown}: a file name that is not UTF-8 cannot be signed")));
            };
            let rel = if prefix.is_empty() { text.to_owned() } else { format!("{prefix}/{text}") };
            if self.manifest.ignores(&rel) || self.skip.as_deref() == Some(rel.as_str()) {
                continue;
            }
            let stat =
                rustix::fs::statat(dir, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
            if let Err(why) = self.entry(dir, &name, rel, &stat, depth)? {
                return Ok(Err(why));
            }
        }
        Ok(Ok(()))
    }

    fn entry(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        rel: String,
        stat: &Stat,
        depth: usize,
    ) -> Result<Result<(), String>, VerifyError> {
        match file_kind(stat.st_mode) {
            "directory" => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = rustix::fs::openat(dir, OsStr::from_bytes(name), flags, Mode::empty())
                    .map_err(|e| VerifyError::Io { path: self.model.join(&rel), source: e.into() })?;
                self.directory(&sub, &rel, depth + 1)
            }
            "regular file" => Ok(self.file(rel, u64::try_from(stat.st_size).unwrap_or(0))),
            "symbolic link" if self.manifest.allow_symlinks => self.symlink(rel),
            "symbolic link" => {
                Ok(Err(format!("{rel} is a symbolic link and the signature does not allow symlinks")))
            }
            kind => Ok(Err(format!("{rel} is a {kind}, which no model signature covers"))),
        }
    }

    /// The signature allows symlinks: the target (inside the root) must be a file.
    fn symlink(&mut self, rel: String) -> Result<Result<(), String>, VerifyError> {
        let path: PathBuf = self.model.join(&rel);
        match self.root.open_file(&path, true, None) {
            Ok(opened) => Ok(self.file(rel, opened.stamp.size)),
            Err(OpenError::NotRegular { kind, .. }) => {
                Ok(Err(format!("{rel} links to a {kind}: not supported")))
            }
            Err(source) => Err(VerifyError::OpenModel { path, source }),
        }
    }

    fn file(&mut self, rel: String, size: u64) -> Result<(), String> {
        if size == 0 && matches!(self.manifest.method, Method::Shards { .. }) {
            // An empty file has no shard: model-signing lists nothing for it.
            return Ok(());
        }
        if !(self.known)(&rel) {
            return Err(format!("{rel} is in the model but not in the signature"));
        }
        self.files.push(ModelFile { rel, size });
        Ok(())
    }
}
