//! tracefs: where it is, mounting it when it is missing, and tracepoint field offsets
//! from `events/<category>/<name>/format`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use thiserror::Error;

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

#[derive(Debug, Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it failed ({source}); fix: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    Mount {
        #[source]
        source: std::io::Error,
    },
    #[error("tracepoint {category}:{name} is not available in this kernel ({path}: {source})")]
    NoTracepoint {
        category: String,
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tracepoint {category}:{name} has no field `{field}` in this kernel")]
    NoField { category: String, name: String, field: String },
}

/// The tracefs mount point, mounting it at `/sys/kernel/tracing` when no candidate is
/// mounted (the sensor runs as root; CI machines boot without it).
///
/// # Errors
/// Nothing is mounted and the mount failed.
pub fn ensure_mounted() -> Result<PathBuf, TracefsError> {
    if let Some(found) = CANDIDATES.iter().map(Path::new).find(|dir| dir.join("events").is_dir()) {
        return Ok(found.to_path_buf());
    }
    mount("tracefs", CANDIDATES[0], "tracefs").map_err(|source| TracefsError::Mount { source })?;
    Ok(PathBuf::from(CANDIDATES[0]))
}

/// `mount -t fstype source target`, through libc.
pub(crate) fn mount(fstype: &str, target: &str, source: &str) -> std::io::Result<()> {
    let c = |s: &str| std::ffi::CString::new(s).map_err(std::io::Error::other);
    let (fstype, target, source) = (c(fstype)?, c(target)?, c(source)?);
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Field offsets of one tracepoint.
#[derive(Debug, Default)]
pub struct TracepointFormat {
    category: String,
    name: String,
    fields: HashMap<String, u32>,
}

impl TracepointFormat {
    /// Reads `events/<category>/<name>/format` under the tracefs root.
    ///
    /// # Errors
    /// The tracepoint does not exist in this kernel.
    pub fn read(root: &Path, category: &str, name: &str) -> Result<Self, TracefsError> {
        let path = root.join("events").join(category).join(name).join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| TracefsError::NoTracepoint {
            category: category.to_owned(),
            name: name.to_owned(),
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::parse(category, name, &text))
    }

    /// Parses lines such as `field:int newstate; offset:16; size:4; signed:1;` (tab-separated).
    #[must_use]
    pub fn parse(category: &str, name: &str, text: &str) -> Self {
        let mut fields = HashMap::new();
        for line in text.lines() {
            let mut declaration = None;
            let mut offset = None;
            for part in line.split(';').map(str::trim) {
                if let Some(decl) = part.strip_prefix("field:") {
                    declaration = Some(decl);
                } else if let Some(value) = part.strip_prefix("offset:") {
                    offset = value.trim().parse::<u32>().ok();
                }
            }
            if let (Some(decl), Some(offset)) = (declaration, offset)
                && let Some(field) = field_name(decl)
            {
                fields.insert(field.to_owned(), offset);
            }
        }
        Self { category: category.to_owned(), name: name.to_owned(), fields }
    }

    /// Offset of `field`.
    ///
    /// # Errors
    /// The field is not in this kernel's format.
    pub fn offset(&self, field: &str) -> Result<u32, TracefsError> {
        self.fields.get(field).copied().ok_or_else(|| TracefsError::NoField {
            category: self.category.clone(),
            name: self.name.clone(),
            field: field.to_owned(),
        })
    }
}

/// The name in a C declaration: the last identifier, array brackets removed.
fn field_name(declaration: &str) -> Option<&str> {
    let last = declaration.split_whitespace().last()?;
    let name = last.split('[').next()?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET_STATE: &str = "name: inet_sock_set_state\nID: 1470\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\
\tfield:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;\n\
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\nprint fmt: \"family=%s\"\n";

    #[test]
    fn parses_scalar_array_and_data_loc_fields() {
        let format = TracepointFormat::parse("sock", "inet_sock_set_state", SET_STATE);
        assert_eq!(format.offset("newstate").ok(), Some(20));
        assert_eq!(format.offset("sport").ok(), Some(24));
        assert_eq!(format.offset("saddr").ok(), Some(34));
        assert_eq!(format.offset("filename").ok(), Some(8));
        let missing = format.offset("nope").expect_err("missing field");
        assert!(missing.to_string().contains("sock:inet_sock_set_state has no field `nope`"));
    }

    #[test]
    fn garbage_yields_no_fields() {
        let format = TracepointFormat::parse("x", "y", "field:;offset:zz;\n;;;\nfield:int a;");
        assert!(format.offset("a").is_err());
    }
}
