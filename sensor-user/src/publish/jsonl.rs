//! JSON lines (or OCSF) in a file, rotated by size: `events.jsonl` is renamed to
//! `events.jsonl.1` (and `.1` to `.2`...) when it would pass `max_bytes`; `keep`
//! rotated files are kept. A reader of the log like any other: it resumes where it
//! stopped when the sensor restarts (the next sequence is kept in `<file>.position`).

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use super::{
    EventLog,
    log::OutletKind,
    settings::{FileConfig, FileFormat},
};

/// Writes the log to the configured file until the log closes.
pub async fn write(log: std::sync::Arc<EventLog>, config: FileConfig) {
    let position = position_path(&config.path);
    let since = read_position(&position).unwrap_or_else(|| log.first_seq());
    let mut subscription = log.subscribe(since, OutletKind::File);
    let mut file = match RotatingFile::open(&config) {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(path = %config.path.display(), %error, "cannot open the JSON lines file; it is not written");
            return;
        }
    };
    let mut written = 0u64;
    while let Some(event) = subscription.next_event().await {
        let line = match config.format {
            FileFormat::Json => super::format::json_line(&event),
            FileFormat::Ocsf => super::ocsf::json_line(&event),
        };
        if let Err(error) = file.write_line(&line) {
            tracing::error!(path = %config.path.display(), %error, "cannot write the JSON lines file; it stops");
            return;
        }
        subscription.cursor().state().add_delivered(1);
        written += 1;
        // Flushed and the position kept once per batch of what was ready.
        if written.is_multiple_of(256) || subscription.cursor().next_seq() > log.last_visible() {
            let _ = file.flush();
            let _ = std::fs::write(&position, subscription.cursor().next_seq().to_string());
        }
    }
    let _ = file.flush();
}

fn position_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".position");
    path.with_file_name(name)
}

fn read_position(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A file that rotates itself by size.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    out: BufWriter<File>,
    size: u64,
}

impl RotatingFile {
    /// Opens (appends to) the file.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn open(config: &FileConfig) -> std::io::Result<Self> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open(&config.path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: config.path.clone(),
            max_bytes: config.max_bytes.max(4096),
            keep: config.keep,
            out: BufWriter::new(file),
            size,
        })
    }

    /// Appends one line (a newline is added), rotating first if it would not fit.
    ///
    /// # Errors
    /// Writing or rotating fails.
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let bytes = line.len() as u64 + 1;
        if self.size > 0 && self.size + bytes > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.size += bytes;
        Ok(())
    }

    /// # Errors
    /// The write fails.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let numbered = |n: u32| {
            let mut name = self.path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
            name.push(format!(".{n}"));
            self.path.with_file_name(name)
        };
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.out = BufWriter::new(open(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = FileConfig {
            path: dir.path().join("events.jsonl"),
            max_bytes: 4096,
            keep: 2,
            ..FileConfig::default()
        };
        let mut file = RotatingFile::open(&config).expect("open");
        let line = "x".repeat(999);
        for _ in 0..20 {
            file.write_line(&line).expect("write");
        }
        file.flush().expect("flush");
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).map(|m| m.len()).ok();
        assert_eq!(size("events.jsonl.1"), Some(4000));
        assert_eq!(size("events.jsonl.2"), Some(4000));
        assert_eq!(size("events.jsonl.3"), None, "only `keep` rotated files");
        assert!(size("events.jsonl").is_some_and(|s| s <= 4096));
    }
}
