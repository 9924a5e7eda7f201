//! Model files on the paved road: what is known about each one (its analysis, digest,
//! signature), the verdict the catalog gives it, and when it becomes final. A final
//! verdict that is not `approved` is published once as a `finding`; a catalog reload
//! judges every model again and publishes what changed.

use std::{collections::VecDeque, num::NonZeroUsize, sync::Arc, time::SystemTime};

use lru::LruCache;
use model_analysis::{Format, ModelReport};
use proto::v1::{self as pb, PolicyFinding, event::Payload};

use super::{Pipeline, convert};
use crate::{
    domain::FileKey,
    policy::{Judgement, ModelFacts, SignatureFact, VerdictKind},
};

/// Model identities remembered for verdicts and the inventory.
const MODELS: usize = 4096;
/// Loaders remembered per model.
const LOADERS_KEPT: usize = 16;

/// Where the digest stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Digest {
    Pending,
    Known,
    /// Hashing is off, was skipped or failed: judged without it.
    Unavailable,
}

/// One model file's facts and verdict.
#[derive(Debug)]
pub(super) struct ModelState {
    pub(super) path: String,
    pub(super) key: FileKey,
    pub(super) format: Format,
    pub(super) report: Option<Arc<ModelReport>>,
    pub(super) sha256: Option<String>,
    pub(super) digest: Digest,
    pub(super) signature: SignatureFact,
    /// Deep analysis will not come (its queue was full): judged without it.
    pub(super) analysis_skipped: bool,
    pub(super) judgement: Option<Judgement>,
    /// The last finding published for it (verdict name and reason).
    reported: Option<(VerdictKind, String)>,
    pub(super) first_seen: SystemTime,
    pub(super) last_seen: SystemTime,
    pub(super) loaded_by: VecDeque<u32>,
    pub(super) at_rest: bool,
    /// `model_hashed`, held until the signature check makes its verdict final.
    pub(super) held_hashed: Option<pb::ModelHashed>,
}

pub(super) struct ModelTable {
    pub(super) by_key: LruCache<FileKey, ModelState>,
    /// Signature checks running, by ticket.
    pub(super) signature_tickets: std::collections::HashMap<u64, FileKey>,
}

impl Default for ModelTable {
    fn default() -> Self {
        Self {
            by_key: LruCache::new(NonZeroUsize::new(MODELS).unwrap_or(NonZeroUsize::MIN)),
            signature_tickets: std::collections::HashMap::new(),
        }
    }
}

impl Pipeline {
    /// A model identity is seen (loaded by `loader`, or found at rest).
    pub(super) fn model_seen(&mut self, key: FileKey, path: &str, format: Format, loader: Option<u32>) {
        let now = SystemTime::now();
        let hashing = self.workers.hash.is_some();
        let state = self.models.by_key.get_or_insert_mut(key, || ModelState {
            path: path.to_owned(),
            key,
            format,
            report: None,
            sha256: None,
            digest: if hashing { Digest::Pending } else { Digest::Unavailable },
            signature: SignatureFact::None,
            analysis_skipped: false,
            judgement: None,
            reported: None,
            first_seen: now,
            last_seen: now,
            loaded_by: VecDeque::new(),
            at_rest: loader.is_none(),
            held_hashed: None,
        });
        state.last_seen = now;
        if let Some(pid) = loader {
            state.at_rest = false;
            state.loaded_by.retain(|p| *p != pid);
            state.loaded_by.push_front(pid);
            state.loaded_by.truncate(LOADERS_KEPT);
        }
    }

    /// Judges `key` again from what is known; returns the verdict for events. A final
    /// verdict that changed and is not `approved` is published as a finding.
    pub(super) fn judge_model(&mut self, key: &FileKey) -> Option<pb::Verdict> {
        let policy = Arc::clone(&self.policy);
        let state = self.models.by_key.get_mut(key)?;
        let report = state.report.clone();
        let metadata = report.as_deref().and_then(|r| r.gguf.as_ref());
        let license = metadata.and_then(|g| g.license.as_deref()).or_else(|| {
            report
                .as_deref()
                .and_then(|r| r.safetensors.as_ref())
                .and_then(|s| s.metadata.get("license"))
                .map(String::as_str)
        });
        let facts = ModelFacts {
            path: &state.path,
            sha256: state.sha256.as_deref(),
            hash_unavailable: state.digest == Digest::Unavailable,
            format: report.as_deref().map_or(state.format, |r| r.format),
            license,
            name: metadata.and_then(|g| g.name.as_deref()),
            provenance: report.as_deref().and_then(|r| r.provenance.as_ref()),
            findings: report.as_deref().map_or(&[], |r| r.findings.as_slice()),
            signature: &state.signature,
        };
        let mut judgement = policy.judge_model(&facts);
        // Without its analysis a model is provisional whatever else is known.
        judgement.provisional |= report.is_none() && !state.analysis_skipped;
        let verdict = convert::verdict(&judgement, &policy.catalog.version);
        let newly_final = !judgement.provisional && {
            let top = judgement.verdict();
            state.reported.as_ref() != Some(&(top.kind, top.reason.clone()))
        };
        let finding = newly_final.then(|| {
            let top = judgement.verdict();
            state.reported = Some((top.kind, top.reason.clone()));
            (!judgement.is_approved()).then(|| PolicyFinding {
                verdict: Some(verdict.clone()),
                subject: "model".into(),
                subject_id: state.path.clone(),
                identity: Some(convert::identity(&state.key)),
                sha256: state.sha256.clone().unwrap_or_default(),
            })
        });
        state.judgement = Some(judgement);
        if let Some(known) = self.files.known_mut(key)
            && let Some(model) = known.model.as_mut()
        {
            model.verdict = Some(verdict.clone());
        }
        if let Some(Some(finding)) = finding {
            self.publish(0, None, Payload::Finding(finding));
        }
        self.model_changed_in_sessions(key);
        Some(verdict)
    }

    /// What the analysis and the digest of an at-rest model found.
    pub(super) fn model_facts(&mut self, key: &FileKey, report: ModelReport, sha256: Option<String>) {
        let Some(state) = self.models.by_key.get_mut(key) else { return };
        state.format = report.format;
        state.report = Some(Arc::new(report));
        state.digest = if sha256.is_some() { Digest::Known } else { Digest::Unavailable };
        if sha256.is_some() {
            state.sha256 = sha256;
        }
    }

    /// Deep analysis of `key` will not come.
    pub(super) fn analysis_unavailable(&mut self, key: &FileKey) {
        if let Some(state) = self.models.by_key.get_mut(key) {
            state.analysis_skipped = true;
            // Nor will the digest: hashing follows analysis.
            state.digest = Digest::Unavailable;
        }
    }

    /// A new catalog: every model and session is judged again.
    pub(super) fn judge_everything(&mut self) {
        let keys: Vec<FileKey> = self.models.by_key.iter().map(|(k, _)| *k).collect();
        for key in keys {
            self.judge_model(&key);
        }
        self.judge_all_sessions();
    }

    /// The judgement of a model, for sessions.
    pub(super) fn model_judgement(&self, key: &FileKey) -> Option<(String, Judgement)> {
        let state = self.models.by_key.peek(key)?;
        Some((state.path.clone(), state.judgement.clone()?))
    }

    /// A short summary of a model, for sessions.
    pub(super) fn session_model(&self, key: &FileKey) -> Option<pb::SessionModel> {
        let state = self.models.by_key.peek(key)?;
        Some(pb::SessionModel {
            path: state.path.clone(),
            sha256: state.sha256.clone().unwrap_or_default(),
            format: convert::format(state.format).into(),
            name: state
                .report
                .as_deref()
                .and_then(|r| r.gguf.as_ref())
                .and_then(|g| g.name.clone())
                .unwrap_or_default(),
            verdict: state.judgement.as_ref().map(|j| convert::verdict(j, &self.policy.catalog.version)),
        })
    }
}
