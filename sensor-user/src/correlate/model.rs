//! Candidate files (opened or mapped) and accelerator devices: identify by content,
//! publish model activity, and mark the process that loads models.

use model_analysis::Format;
use proto::v1::{AcceleratorUsed, ModelFile, ModelFileMapped, ModelFileOpened, event::Payload};
use sensor_common::{EventKind, FileEvent, decode::RawPath, settings::mark};

use super::{Pipeline, convert};
use crate::{
    analyze::{
        identify::{FileKey, IdentifyError, candidate_paths, open_verified, sniff_file},
        runtime::{Classification, Role, Runtime},
    },
    enrich::devices::accelerator_kind,
};

/// What the content of one file identity turned out to be.
#[derive(Clone, Debug)]
pub(super) struct Identified {
    format: Format,
}

impl Pipeline {
    pub(super) async fn on_file(&mut self, kind: EventKind, event: &FileEvent, path: &RawPath) {
        let path_text = String::from_utf8_lossy(&path.to_path_bytes()).into_owned();
        if kind == EventKind::AcceleratorOpen {
            self.on_accelerator(event, path_text);
            return;
        }
        let key = FileKey::from_kernel(&event.file);
        let Some(identified) = self.identify(event, key, &path_text).await else { return };
        if !identified.format.is_model() {
            self.stats.not_models.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let header = &event.header;
        self.adopt_as_runtime(header);
        let info = self.processes.lookup(header);
        self.published.insert(info.pid, ());
        let file = ModelFile {
            path: path_text,
            identity: Some(convert::identity(&key)),
            format: convert::format(identified.format).into(),
            path_truncated: path.is_truncated(),
            ..ModelFile::default()
        };
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
            })
        } else {
            Payload::ModelFileOpened(ModelFileOpened {
                file: Some(file),
                fd: event.fd,
                reasons,
                open_flags: event.open_flags,
            })
        };
        self.publish(header.ktime_ns, Some(convert::process(&info, header.tid)), payload);
    }

    /// Identifies the content behind `key`, from the cache or by reading the file.
    async fn identify(&mut self, event: &FileEvent, key: FileKey, path: &str) -> Option<Identified> {
        if let Some(known) = self.models.get(&key) {
            return Some(known.clone());
        }
        let candidates = candidate_paths(event.header.tgid, Some(event.fd), path);
        let result = tokio::task::spawn_blocking(move || {
            let mut file = open_verified(&candidates, &key)?;
            sniff_file(&mut file).map_err(|source| IdentifyError::Io { path: candidates[0].clone(), source })
        })
        .await;
        match result {
            Ok(Ok(format)) => {
                let identified = Identified { format };
                self.models.put(key, identified.clone());
                Some(identified)
            }
            Ok(Err(error)) => {
                self.stats.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%error, path, "candidate not identified");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "identification task failed");
                None
            }
        }
    }

    /// A process that loads a model behaves like an inference runtime: mark it so that
    /// its listeners and devices are watched, whatever it is called.
    fn adopt_as_runtime(&mut self, header: &sensor_common::EventHeader) {
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
