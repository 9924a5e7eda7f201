//! Candidate files (opened or mapped) and accelerator devices: identify by content,
//! publish model activity, and mark the process that loads models.

use proto::v1::{AcceleratorUsed, ModelFile, ModelFileMapped, ModelFileOpened, event::Payload};
use std::path::PathBuf;

use sensor_common::{EventHeader, EventKind, FileEvent, decode::RawPath, settings::mark};

use super::{Pipeline, convert};
use crate::{
    analyze::{
        hash::{HashJob, hex},
        identify::{FileKey, candidate_paths},
        model::examine,
        runtime::{Classification, Role, Runtime},
    },
    enrich::devices::accelerator_kind,
};

/// What the content of one file identity turned out to be.
#[derive(Clone, Debug)]
pub(super) struct Identified {
    /// The event's file, path and process aside; `None` when it is not a model.
    model: Option<ModelFile>,
}

impl Pipeline {
    pub(super) async fn on_file(&mut self, kind: EventKind, event: &FileEvent, path: &RawPath) {
        let path_text = String::from_utf8_lossy(&path.to_path_bytes()).into_owned();
        if kind == EventKind::AcceleratorOpen {
            self.on_accelerator(event, path_text);
            return;
        }
        let key = FileKey::from_kernel(&event.file);
        let header = &event.header;
        let mapping = (kind == EventKind::FileMmap).then_some((event.mmap.addr, event.mmap.len));
        let candidates = || candidate_paths(header.tgid, Some(event.fd), mapping, &path_text);
        let Some(mut file) = self.model_file(header, candidates, key, &path_text).await else { return };
        let write = event.open_flags & (libc::O_WRONLY | libc::O_RDWR) as u32 != 0;
        if !write {
            self.adopt_as_runtime(header);
        }
        let info = self.processes.lookup(header);
        self.published.insert(info.pid, ());
        file.path_truncated = path.is_truncated();
        file.deleted = path.is_deleted();
        let reasons = convert::reasons(event.reason);
        let payload = if kind == EventKind::FileMmap {
            Payload::ModelFileMapped(ModelFileMapped {
                file: Some(file),
                address: event.mmap.addr,
                length: event.mmap.len,
                offset: event.mmap.pgoff.saturating_mul(4096),
                prot: event.mmap.prot,
                flags: event.mmap.flags,
                reasons,
                snapshot: false,
            })
        } else {
            Payload::ModelFileOpened(ModelFileOpened {
                file: Some(file),
                fd: event.fd,
                reasons,
                open_flags: event.open_flags,
                write,
            })
        };
        self.publish(header.ktime_ns, Some(convert::process(&info, header.tid)), payload);
    }

    /// The event's `ModelFile` for the file behind `key` (reached through one of
    /// `candidates`), or `None` when it is not a model or cannot be read.
    pub(super) async fn model_file(
        &mut self,
        header: &EventHeader,
        candidates: impl FnOnce() -> Vec<PathBuf>,
        key: FileKey,
        path: &str,
    ) -> Option<ModelFile> {
        let identified = self.identify(header, candidates, key, path).await?;
        let Some(mut file) = identified.model else {
            self.stats.not_models.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return None;
        };
        path.clone_into(&mut file.path);
        if let Some(digest) = self.hasher.as_ref().and_then(|h| h.known(&key)) {
            file.sha256 = hex(&digest);
        }
        Some(file)
    }

    /// Identifies the content behind `key`, from the cache or by analysing the file;
    /// a newly seen model is queued for hashing.
    async fn identify(
        &mut self,
        header: &EventHeader,
        candidates: impl FnOnce() -> Vec<PathBuf>,
        key: FileKey,
        path: &str,
    ) -> Option<Identified> {
        if let Some(known) = self.models.get(&key) {
            return Some(known.clone());
        }
        // Paths are built only on a miss: a storm of opens of one file costs a lookup.
        let candidates = candidates();
        let pid = header.tgid;
        let name = std::path::PathBuf::from(path);
        let limits = self.limits.clone();
        let examined =
            tokio::task::spawn_blocking(move || examine(pid, &candidates, &key, &name, &limits)).await;
        let examined = match examined {
            Ok(Ok(examined)) => examined,
            Ok(Err(error)) => {
                self.stats.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%error, path, "candidate not identified");
                return None;
            }
            Err(error) => {
                tracing::warn!(%error, "identification task failed");
                return None;
            }
        };
        let model = examined
            .report
            .format
            .is_model()
            .then(|| convert::model_file(&examined.report, path.to_owned(), &key));
        if model.is_some()
            && let Some(hasher) = &self.hasher
        {
            let info = self.processes.lookup(header);
            hasher.submit(HashJob {
                file: examined.file,
                key,
                path: path.to_owned(),
                process: Some(convert::process(&info, header.tid)),
            });
        }
        let identified = Identified { model };
        self.models.put(key, identified.clone());
        Some(identified)
    }

    /// A process that loads a model behaves like an inference runtime: mark it so that
    /// its listeners and devices are watched, whatever it is called.
    pub(super) fn adopt_as_runtime(&mut self, header: &sensor_common::EventHeader) {
        let info = self.processes.lookup(header);
        if info.runtime.is_none() {
            self.processes.update(info.pid, |p| {
                p.runtime = Some(Classification {
                    runtime: Runtime::UnknownLoader,
                    role: Role::Server,
                    rule: "loaded a model file".into(),
                });
            });
        }
        self.mark(info.pid, mark::MODEL_LOADER);
    }

    fn on_accelerator(&mut self, event: &FileEvent, device: String) {
        let header = &event.header;
        let info = self.processes.lookup(header);
        let major = event.file.rdev >> 20;
        let payload = Payload::AcceleratorUsed(AcceleratorUsed {
            kind: accelerator_kind(major, &device).to_owned(),
            device,
            major,
            minor: event.file.rdev & 0xf_ffff,
        });
        self.publish(header.ktime_ns, Some(convert::process(&info, header.tid)), payload);
    }
}
