//! Candidate files (opened or mapped): wait for identification without holding up
//! anything else, then publish model activity, follow it with the deep analysis and the
//! digest, and mark the processes that load models.
//!
//! Per file identity the order is always: `model_file_opened`/`_mapped` (one per
//! record), then `model_analyzed`, then `model_hashed`.

use std::{collections::HashMap, num::NonZeroUsize, path::PathBuf, time::Instant};

use lru::LruCache;
use proto::v1::{self as pb, AnalysisState, CandidateFile, ModelFileMapped, ModelFileOpened, event::Payload};
use sensor_common::{EventKind, FileEvent, decode::RawPath, settings::mark};

use super::{Pipeline, convert};
use crate::{
    analyze::{
        access::{AccessError, FileRequest},
        pool::Finished,
        work::{Analysis, AnalyzeJob, HashJob, Hashed, Identification},
    },
    domain::{Classification, Drop, FileKey, Role, Runtime},
};

/// File identities remembered after identification.
const KNOWN_FILES: usize = 4096;
/// File identities waiting for identification at once.
const MAX_PENDING_FILES: usize = 4096;
/// Records waiting on one identification.
const MAX_WAITING_PER_FILE: usize = 64;

/// One record, everything needed to publish it later.
#[derive(Clone, Debug)]
pub(super) struct Waiting {
    pub(super) mapped: bool,
    pub(super) pid: u32,
    pub(super) ktime_ns: u64,
    pub(super) process: pb::Process,
    pub(super) path: String,
    pub(super) path_truncated: bool,
    pub(super) deleted: bool,
    pub(super) reasons: Vec<String>,
    pub(super) fd: i32,
    pub(super) open_flags: u32,
    pub(super) write: bool,
    pub(super) mmap: sensor_common::MmapFields,
    pub(super) repeats: u64,
    pub(super) snapshot: bool,
}

impl Waiting {
    /// Whether this record is a process loading the file (not writing it).
    fn loads(&self) -> bool {
        !self.write
    }
}

/// What is known about a file identity.
#[derive(Clone, Debug)]
pub(super) struct Known {
    /// The event's file (path and process aside); `None` when it is not a model.
    pub(super) model: Option<pb::ModelFile>,
    announced_seq: u64,
    hashed: bool,
}

#[derive(Debug)]
struct Pending {
    since: Instant,
    waiting: Vec<Waiting>,
    /// Already published unidentified (deadline passed): later records do not wait.
    timed_out: bool,
    announced_seq: u64,
}

/// The pipeline's file state.
pub(super) struct FileTable {
    known: LruCache<FileKey, Known>,
    pending: HashMap<FileKey, Pending>,
    identify_tickets: HashMap<u64, FileKey>,
    analysis_tickets: HashMap<u64, FileKey>,
    hash_tickets: HashMap<u64, FileKey>,
}

impl FileTable {
    pub(super) fn known_mut(&mut self, key: &FileKey) -> Option<&mut Known> {
        self.known.get_mut(key)
    }

    pub(super) fn known_peek(&self, key: &FileKey) -> Option<&Known> {
        self.known.peek(key)
    }
}

impl Default for FileTable {
    fn default() -> Self {
        Self {
            known: LruCache::new(NonZeroUsize::new(KNOWN_FILES).unwrap_or(NonZeroUsize::MIN)),
            pending: HashMap::new(),
            identify_tickets: HashMap::new(),
            analysis_tickets: HashMap::new(),
            hash_tickets: HashMap::new(),
        }
    }
}

impl Pipeline {
    pub(super) fn on_file(&mut self, kind: EventKind, event: &FileEvent, path: &RawPath) {
        let path_text = String::from_utf8_lossy(&path.to_path_bytes()).into_owned();
        if kind == EventKind::AcceleratorOpen {
            self.on_accelerator(event, path_text);
            return;
        }
        let header = &event.header;
        self.check_sensitive(header.tgid, &path_text);
        let info = self.processes.lookup(header);
        let write = event.open_flags & (libc::O_WRONLY | libc::O_RDWR).cast_unsigned() != 0;
        let waiting = Waiting {
            mapped: kind == EventKind::FileMmap,
            pid: header.tgid,
            ktime_ns: header.ktime_ns,
            process: convert::process(&info, header.tid),
            path: path_text,
            path_truncated: path.is_truncated(),
            deleted: path.is_deleted(),
            reasons: convert::reasons(event.reason),
            fd: event.fd,
            open_flags: event.open_flags,
            write,
            mmap: event.mmap,
            repeats: u64::from(event.repeats),
            snapshot: false,
        };
        let request = FileRequest {
            pid: header.tgid,
            fd: (kind == EventKind::FileOpen && event.fd >= 0).then_some(event.fd),
            mapping: (kind == EventKind::FileMmap).then_some((event.mmap.addr, event.mmap.len)),
            path: PathBuf::from(&waiting.path),
            key: Self::key_of(&event.file),
            same_mount_ns: event.mnt_ns != 0 && event.mnt_ns == self.options.mount_ns,
        };
        self.on_candidate(request, waiting);
    }

    /// A candidate record (from the kernel or the start-up snapshot).
    pub(super) fn on_candidate(&mut self, request: FileRequest, waiting: Waiting) {
        let key = request.key;
        if let Some(known) = self.files.known.get(&key).cloned() {
            self.publish_known(&key, &known, &waiting);
            return;
        }
        if waiting.loads() {
            self.loaders.start(waiting.pid);
        }
        if let Some(pending) = self.files.pending.get_mut(&key) {
            if !pending.timed_out && pending.waiting.len() < MAX_WAITING_PER_FILE {
                pending.waiting.push(waiting);
                return;
            }
            let (why, note) = if pending.timed_out {
                (Drop::IdentifyTimeout, "identification did not finish in time")
            } else {
                (Drop::PendingOverflow, "too many records waited for this file's identification")
            };
            self.publish_unidentified(&key, &waiting, AnalysisState::TimedOut, note, why);
            return;
        }
        if self.files.pending.len() >= MAX_PENDING_FILES {
            let note = "too many files waited for identification";
            self.publish_unidentified(&key, &waiting, AnalysisState::TimedOut, note, Drop::PendingOverflow);
            return;
        }
        let ticket = self.workers.ticket();
        if self.workers.identify.try_submit(ticket, request).is_err() {
            let note = "the identification queue was full";
            self.publish_unidentified(
                &key,
                &waiting,
                AnalysisState::SkippedQueueFull,
                note,
                Drop::IdentifyQueueFull,
            );
            return;
        }
        self.files.identify_tickets.insert(ticket, key);
        let pending =
            Pending { since: Instant::now(), waiting: vec![waiting], timed_out: false, announced_seq: 0 };
        self.files.pending.insert(key, pending);
    }

    /// Publishes a record whose content is not known, and lets its process's listeners
    /// through (a candidate that cannot be checked is treated as a model load).
    fn publish_unidentified(
        &mut self,
        key: &FileKey,
        waiting: &Waiting,
        state: AnalysisState,
        note: &str,
        why: Drop,
    ) -> u64 {
        self.drops.bump(why);
        let file = convert::unidentified_file(&waiting.path, key, state, note);
        let seq = self.publish_record(waiting, file);
        if waiting.loads() {
            self.resolve_loader(waiting.pid, true);
        }
        seq
    }

    /// Candidates that waited past the deadline are published unidentified; their
    /// identification may still finish (then deep analysis follows as usual).
    pub(super) fn expire_identifications(&mut self) {
        let deadline = self.options.identify_deadline;
        let expired: Vec<FileKey> = self
            .files
            .pending
            .iter()
            .filter(|(_, p)| !p.timed_out && p.since.elapsed() >= deadline)
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            let Some(waiting) = self.files.pending.get_mut(&key).map(|p| std::mem::take(&mut p.waiting))
            else {
                continue;
            };
            let note = "the file's content could not be read within the identification deadline";
            let mut first = 0;
            for record in &waiting {
                let seq = self.publish_unidentified(
                    &key,
                    record,
                    AnalysisState::TimedOut,
                    note,
                    Drop::IdentifyTimeout,
                );
                if first == 0 {
                    first = seq;
                }
            }
            if let Some(pending) = self.files.pending.get_mut(&key) {
                pending.timed_out = true;
                pending.announced_seq = first;
            }
        }
    }

    pub(super) fn on_identified(&mut self, done: Finished<Identification>) {
        let Some(key) = self.files.identify_tickets.remove(&done.ticket) else { return };
        let Some(pending) = self.files.pending.remove(&key) else { return };
        let Some(identification) = done.result else {
            self.drops.bump(Drop::AnalysisFailed);
            self.release_waiting(&key, pending, None);
            return;
        };
        match identification.outcome {
            Err(error) => {
                let why = match error {
                    AccessError::Gone => Drop::CandidateVanished,
                    AccessError::Refused(_) => Drop::CandidateReplaced,
                };
                tracing::debug!(%error, path = %identification.request.path.display(), "candidate not read");
                self.release_waiting(&key, pending, Some((why, "unreadable")));
            }
            Ok(identified) if !identified.format.is_model() => {
                let sniffed = convert::format(identified.format);
                self.files.known.put(key, Known { model: None, announced_seq: 0, hashed: false });
                for waiting in pending.waiting {
                    self.not_a_model(&key, &waiting, sniffed, "not_a_model");
                }
            }
            Ok(identified) => {
                let name = identification.request.path.clone();
                let path = name.to_string_lossy().into_owned();
                let loader = pending.waiting.iter().find(|w| w.loads()).map(|w| w.pid);
                self.model_seen(key, &path, identified.format, loader);
                let mut model = convert::identified_file(identified.format, &path, &key);
                let ticket = self.workers.ticket();
                // The kernel's key is the version a process opened; a different version
                // read here means the content changed in between (unless every open was
                // a write, where change is the point).
                let changed = !key.same_version(&identified.opened.file.stamp)
                    && pending.waiting.iter().any(Waiting::loads);
                let job = AnalyzeJob {
                    opened: identified.opened,
                    name,
                    key: identified.key,
                    loaded_other_version: changed.then_some(key),
                };
                if self.workers.analyze.try_submit(ticket, job).is_ok() {
                    self.files.analysis_tickets.insert(ticket, key);
                    model.analysis = AnalysisState::Pending.into();
                } else {
                    self.drops.bump(Drop::AnalysisQueueFull);
                    model.analysis = AnalysisState::SkippedQueueFull.into();
                    model.analysis_note =
                        "the analysis queue was full: metadata and findings are unknown".into();
                }
                let skipped = model.analysis == AnalysisState::SkippedQueueFull as i32;
                self.files.known.put(
                    key,
                    Known { model: Some(model), announced_seq: pending.announced_seq, hashed: false },
                );
                if skipped {
                    self.analysis_unavailable(&key);
                }
                self.judge_model(&key);
                let Some(mut known) = self.files.known.get(&key).cloned() else { return };
                for waiting in &pending.waiting {
                    let seq = self.publish_known(&key, &known, waiting);
                    if known.announced_seq == 0 {
                        known.announced_seq = seq;
                    }
                }
                self.files.known.put(key, known);
            }
        }
    }

    /// Records whose identification failed: counted (and published as candidates with
    /// `--all-candidates`), unless they were already published unidentified.
    fn release_waiting(&mut self, key: &FileKey, pending: Pending, why: Option<(Drop, &str)>) {
        for waiting in pending.waiting {
            match why {
                Some((drop, outcome)) => {
                    self.drops.bump(drop);
                    self.publish_candidate(key, &waiting, pb::ModelFormat::Unspecified, outcome);
                    if waiting.loads() {
                        self.resolve_loader(waiting.pid, false);
                    }
                }
                None => {
                    self.publish_unidentified(
                        key,
                        &waiting,
                        AnalysisState::Unreadable,
                        "identification failed",
                        Drop::AnalysisFailed,
                    );
                }
            }
        }
    }

    fn not_a_model(&mut self, key: &FileKey, waiting: &Waiting, sniffed: pb::ModelFormat, outcome: &str) {
        self.drops.bump(Drop::NotAModel);
        self.publish_candidate(key, waiting, sniffed, outcome);
        if waiting.loads() {
            self.resolve_loader(waiting.pid, false);
        }
    }

    fn publish_candidate(&self, key: &FileKey, waiting: &Waiting, sniffed: pb::ModelFormat, outcome: &str) {
        if !self.options.all_candidates {
            return;
        }
        let payload = Payload::CandidateFile(CandidateFile {
            path: waiting.path.clone(),
            identity: Some(convert::identity(key)),
            reasons: waiting.reasons.clone(),
            outcome: outcome.to_owned(),
            sniffed: sniffed.into(),
        });
        self.publish(waiting.ktime_ns, Some(waiting.process.clone()), payload);
    }

    /// Publishes a record of a file whose identity is known; returns the sequence number
    /// (0 when nothing was published: not a model).
    fn publish_known(&mut self, key: &FileKey, known: &Known, waiting: &Waiting) -> u64 {
        let Some(model) = &known.model else {
            self.drops.bump(Drop::NotAModel);
            self.publish_candidate(key, waiting, pb::ModelFormat::Unspecified, "not_a_model");
            if waiting.loads() {
                // A cached "not a model": the provisional mark goes at once.
                self.resolve_loader(waiting.pid, false);
            }
            return 0;
        };
        if !waiting.loads() {
            return self.publish_record(waiting, model.clone());
        }
        self.adopt_as_runtime(waiting.pid);
        // The process was captured when the record arrived; it is a runtime now.
        let mut waiting = waiting.clone();
        if waiting.process.runtime == pb::Runtime::Unspecified as i32 {
            waiting.process.runtime = pb::Runtime::UnknownLoader.into();
        }
        self.model_seen(*key, &waiting.path, model_format(model), Some(waiting.pid));
        self.session_add(waiting.pid, super::sessions::Change::Model(*key), true);
        let seq = self.publish_record(&waiting, model.clone());
        self.resolve_loader(waiting.pid, true);
        seq
    }

    fn publish_record(&self, waiting: &Waiting, mut file: pb::ModelFile) -> u64 {
        waiting.path.clone_into(&mut file.path);
        file.path_truncated = waiting.path_truncated;
        file.deleted = waiting.deleted;
        let payload = if waiting.mapped {
            Payload::ModelFileMapped(ModelFileMapped {
                file: Some(file),
                address: waiting.mmap.addr,
                length: waiting.mmap.len,
                offset: waiting.mmap.pgoff.saturating_mul(4096),
                prot: waiting.mmap.prot,
                flags: waiting.mmap.flags,
                reasons: waiting.reasons.clone(),
                snapshot: waiting.snapshot,
                repeats: waiting.repeats,
            })
        } else {
            Payload::ModelFileOpened(ModelFileOpened {
                file: Some(file),
                fd: waiting.fd,
                reasons: waiting.reasons.clone(),
                open_flags: waiting.open_flags,
                write: waiting.write,
                repeats: waiting.repeats,
            })
        };
        self.publish(waiting.ktime_ns, Some(waiting.process.clone()), payload)
    }

    pub(super) fn on_analyzed(&mut self, done: Finished<Analysis>) {
        let Some(key) = self.files.analysis_tickets.remove(&done.ticket) else { return };
        let Some(analysis) = done.result else {
            self.drops.bump(Drop::AnalysisFailed);
            return;
        };
        let Some(known) = self.files.known.get_mut(&key) else { return };
        let path = analysis.name.to_string_lossy().into_owned();
        if let Some(model) = known.model.as_mut() {
            convert::add_analysis(model, &analysis.report);
            model.analysis = AnalysisState::Done.into();
        }
        let announced = known.announced_seq;
        if let Some(state) = self.models.by_key.get_mut(&key) {
            state.report = Some(std::sync::Arc::new(analysis.report.clone()));
            state.format = analysis.report.format;
        }
        let verdict = self.judge_model(&key);
        let duration = u32::try_from(analysis.duration.as_millis()).unwrap_or(u32::MAX);
        let mut event = convert::model_analyzed(&path, &analysis.key, &analysis.report, duration, announced);
        event.verdict = verdict;
        self.publish(0, None, Payload::ModelAnalyzed(event));
        self.submit_hash(key, analysis);
    }

    fn submit_hash(&mut self, key: FileKey, analysis: Analysis) {
        let ticket = self.workers.ticket();
        let Some(pool) = &self.workers.hash else { return };
        let job = HashJob { opened: analysis.opened, name: analysis.name, key: analysis.key };
        if pool.try_submit(ticket, job).is_err() {
            self.drops.bump(Drop::HashQueueFull);
            self.digest_unavailable(&key);
            return;
        }
        self.files.hash_tickets.insert(ticket, key);
    }

    /// The digest will not come: the model is judged without it.
    fn digest_unavailable(&mut self, key: &FileKey) {
        if let Some(state) = self.models.by_key.get_mut(key) {
            state.digest = super::models::Digest::Unavailable;
        }
        self.judge_model(key);
    }

    pub(super) fn on_hashed(&mut self, done: Finished<Hashed>) {
        let Some(key) = self.files.hash_tickets.remove(&done.ticket) else { return };
        let Some(hashed) = done.result else {
            self.drops.bump(Drop::HashFailed);
            self.digest_unavailable(&key);
            return;
        };
        let digest = match hashed.result {
            Ok(digest) => digest,
            Err(error) => {
                self.drops.bump(Drop::HashFailed);
                tracing::info!(path = %hashed.name.display(), %error, "not hashed");
                self.digest_unavailable(&key);
                return;
            }
        };
        let Some(known) = self.files.known.get_mut(&key) else { return };
        let sha256 = hex::encode(digest);
        if let Some(model) = known.model.as_mut() {
            model.sha256.clone_from(&sha256);
        }
        known.hashed = true;
        let announced_seq = known.announced_seq;
        if let Some(state) = self.models.by_key.get_mut(&key) {
            state.sha256 = Some(sha256.clone());
            state.digest = super::models::Digest::Known;
        }
        let signature_pending = self.submit_signature(key, hashed.name.clone(), hashed.opened.root);
        let verdict = self.judge_model(&key);
        let claimed = model_analysis::claimed_sha256(&hashed.name);
        let event = pb::ModelHashed {
            path: hashed.name.to_string_lossy().into_owned(),
            identity: Some(convert::identity(&hashed.key)),
            sha256,
            claimed_sha256_matches: claimed.map(|c| c == digest),
            findings: model_analysis::digest_finding(&hashed.name, &digest)
                .iter()
                .map(convert::finding)
                .collect(),
            announced_seq,
            verdict,
        };
        if signature_pending {
            // Published with the verdict the signature check makes final.
            if let Some(state) = self.models.by_key.get_mut(&key) {
                state.held_hashed = Some(event);
            }
            return;
        }
        self.publish(0, None, Payload::ModelHashed(event));
    }

    /// A process that loads a model behaves like an inference runtime: mark it so that
    /// its listeners and devices are watched, whatever it is called.
    pub(super) fn adopt_as_runtime(&mut self, pid: u32) {
        let newly = self.processes.peek(pid).is_none_or(|info| info.runtime.is_none());
        if newly {
            self.processes.update(pid, |p| {
                p.runtime = Some(Classification {
                    runtime: Runtime::UnknownLoader,
                    role: Role::Server,
                    rule: "loaded a model file".into(),
                });
            });
        }
        let before = self.marked.get(&pid).copied().unwrap_or(0);
        self.set_mark(pid, |bits| (bits | mark::MODEL_LOADER) & !mark::PROVISIONAL);
        if before & !mark::PROVISIONAL == 0 {
            // Marked for the first time: listeners it opened before are reported too.
            self.request_held_listeners(pid);
        }
    }

    fn on_accelerator(&mut self, event: &FileEvent, device: String) {
        let header = &event.header;
        self.session_add(header.tgid, super::sessions::Change::Accelerator(device.clone()), false);
        let info = self.processes.lookup(header);
        let (major, minor) = (event.file.rdev >> 20, event.file.rdev & 0xf_ffff);
        let devices = crate::enrich::devices::accelerator_devices(&self.options.accelerator_devices);
        let kind =
            crate::enrich::devices::classify(&devices, major, minor).map_or("accelerator", |c| c.as_str());
        self.accelerator_opened(header.tgid, kind);
        let payload =
            Payload::AcceleratorUsed(pb::AcceleratorUsed { kind: kind.to_owned(), device, major, minor });
        self.publish(header.ktime_ns, Some(convert::process(&info, header.tid)), payload);
    }
}

/// The format a model event's file carries.
fn model_format(model: &pb::ModelFile) -> model_analysis::Format {
    use model_analysis::Format as F;
    match pb::ModelFormat::try_from(model.format).unwrap_or_default() {
        pb::ModelFormat::Gguf => F::Gguf,
        pb::ModelFormat::Safetensors => F::Safetensors,
        pb::ModelFormat::Pickle => F::Pickle,
        pb::ModelFormat::PytorchZip => F::PytorchZip,
        pb::ModelFormat::PytorchLegacy => F::PytorchLegacy,
        pb::ModelFormat::Numpy => F::Numpy,
        pb::ModelFormat::Onnx => F::Onnx,
        pb::ModelFormat::Hdf5 => F::Hdf5,
        pb::ModelFormat::Keras => F::Keras,
        pb::ModelFormat::Tflite => F::Tflite,
        pb::ModelFormat::Llamafile => F::Llamafile,
        pb::ModelFormat::UnsupportedContainer => F::Zip,
        pb::ModelFormat::Unspecified => F::Unknown,
    }
}
