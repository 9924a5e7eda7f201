//! Evidence gathered beside the event path for verdicts: runtime versions read from
//! their executables, and detached model signatures; both come back from workers and
//! make the owning model or session be judged again.

use std::sync::Arc;

use model_analysis::signature::{SignatureVerdict, Signer};

use super::{Pipeline, sessions::Change};
use crate::{
    analyze::{
        pool::Finished,
        work::{SignatureChecked, SignatureJob, VersionJob, VersionRead},
    },
    domain::{FileKey, Runtime},
    policy::{SignatureFact, verdict::is_sensitive},
};

impl Pipeline {
    /// Asks a worker for the version of a session's runtime, once.
    pub(super) fn request_version(&mut self, root: u32) {
        let Some(session) = self.sessions.by_root.get_mut(&root) else { return };
        let Some(runtime) =
            session.runtime.filter(|r| matches!(r, Runtime::Ollama | Runtime::LlamaCpp | Runtime::Vllm))
        else {
            return;
        };
        if session.version_requested {
            return;
        }
        session.version_requested = true;
        let Some(info) = self.processes.peek(root) else { return };
        if info.exe.is_empty() {
            return;
        }
        let job = VersionJob { pid: root, runtime, exe: info.exe.clone().into() };
        let ticket = self.workers.ticket();
        // A full queue only costs the version: the session stays "version unknown".
        let _ = self.workers.version.try_submit(ticket, job);
    }

    pub(super) fn on_version(&mut self, done: Finished<VersionRead>) {
        let Some(read) = done.result else { return };
        let runtime = self.sessions.by_root.get(&read.pid).and_then(|s| s.runtime);
        let minimum = self.policy_minimum(runtime);
        let Some(session) = self.sessions.by_root.get_mut(&read.pid) else { return };
        match read.result {
            Ok(version) => {
                let check = version.advisories();
                session.version = version.version.clone();
                session.advisories = match check {
                    model_analysis::runtime_version::AdvisoryCheck::Known { applicable, .. } => {
                        applicable.iter().map(|a| (a.id.to_owned(), a.summary.to_owned())).collect()
                    }
                    model_analysis::runtime_version::AdvisoryCheck::Unknown { .. } => Vec::new(),
                };
                if let (Some(minimum), Some(found)) = (minimum, session.version.clone())
                    && version_below(&found, &minimum)
                {
                    session.advisories.push((
                        "policy.minimum_versions".into(),
                        format!("below the policy's minimum {minimum}"),
                    ));
                }
            }
            Err(error) => tracing::debug!(pid = read.pid, error, "runtime version not read"),
        }
        let change = self.sessions.by_root.get(&read.pid).and_then(|s| s.version.clone());
        if let Some(version) = change {
            self.session_add(read.pid, Change::Version(version), false);
        }
    }

    fn policy_minimum(&self, runtime: Option<Runtime>) -> Option<String> {
        let name = runtime.map(super::convert::runtime_name)?;
        self.policy.catalog.policy.minimum_versions.get(name).cloned()
    }

    /// After hashing: checks the signature beside the model, where signers are configured.
    pub(super) fn submit_signature(
        &mut self,
        key: FileKey,
        name: std::path::PathBuf,
        root: model_analysis::Root,
    ) -> bool {
        if self.policy.trust.is_empty() {
            return false;
        }
        let trust = Arc::clone(&self.policy.trust.store);
        let ticket = self.workers.ticket();
        if self.workers.signature.try_submit(ticket, SignatureJob { key, name, root, trust }).is_err() {
            return false;
        }
        self.models.signature_tickets.insert(ticket, key);
        if let Some(state) = self.models.by_key.get_mut(&key) {
            state.signature = SignatureFact::Pending;
        }
        true
    }

    pub(super) fn on_signature(&mut self, done: Finished<SignatureChecked>) {
        let Some(key) = self.models.signature_tickets.remove(&done.ticket) else { return };
        let outcome = match done.result {
            Some(checked) => checked.outcome,
            None => Err("the signature check failed".to_owned()),
        };
        let fact = match outcome {
            Ok(None) => SignatureFact::None,
            Ok(Some(SignatureVerdict::Verified { signer, .. })) => SignatureFact::Verified {
                signer: match signer {
                    Signer::Key { fingerprint } => fingerprint,
                    Signer::Certificate { subject, .. } => format!("cert:{subject}"),
                },
            },
            Ok(Some(SignatureVerdict::UnknownSigner { .. })) => SignatureFact::UnknownSigner,
            Ok(Some(SignatureVerdict::Invalid { reason })) => SignatureFact::Invalid { reason },
            // No verdict (the file changed, the budget ran out): judged without it.
            Err(error) => {
                tracing::info!(error, "model signature not checked");
                SignatureFact::None
            }
        };
        let held = self.models.by_key.get_mut(&key).and_then(|state| {
            state.signature = fact;
            state.held_hashed.take()
        });
        let verdict = self.judge_model(&key);
        if let Some(mut hashed) = held {
            hashed.verdict = verdict;
            self.publish(0, None, proto::v1::event::Payload::ModelHashed(hashed));
        }
    }

    /// A file opened by a session's process under `sensitive_paths`.
    pub(super) fn check_sensitive(&mut self, pid: u32, path: &str) {
        if !is_sensitive(path, &self.policy.catalog.policy.sensitive_paths) {
            return;
        }
        if self.session_of(pid).is_none() {
            self.park_sensitive(pid, path);
            return;
        }
        self.session_add(pid, Change::Sensitive(path.to_owned()), false);
    }
}

/// `found < minimum`, comparing dotted numbers (a leading `v` or `b` ignored).
fn version_below(found: &str, minimum: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.trim_start_matches(['v', 'b']).split(['.', '-', '+']).map_while(|p| p.parse().ok()).collect()
    };
    let (a, b) = (parts(found), parts(minimum));
    !a.is_empty() && !b.is_empty() && a < b
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_compare_numerically() {
        assert!(super::version_below("0.12.0", "0.17.1"));
        assert!(!super::version_below("0.17.10", "0.17.9"));
        assert!(super::version_below("b5000", "b5662"));
        assert!(!super::version_below("unknown", "0.1"));
    }
}
