//! Verdicts: what the catalog says about a model file or an inference session. Every
//! rule that matches is kept (with its reason); the verdict is the most severe of them,
//! in one documented order (the table below). Pure functions of facts and a catalog.

use model_analysis::{Finding, FindingKind, Format, Provenance, ProvenanceSource, Severity};

use super::{
    catalog::{Catalog, CatalogModel, ListenerExposure},
    licenses::is_denied,
};

/// Every verdict, most severe first: the order in which a verdict wins over another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VerdictKind {
    Tampered,
    SignatureInvalid,
    UnsafeFormat,
    VulnerableRuntime,
    ExposedListener,
    SensitiveDataAccess,
    UnapprovedAcceleratorUse,
    LicenseRestricted,
    UnknownRuntime,
    Unapproved,
    Approved,
}

impl VerdictKind {
    /// The snake_case name (events, inventory, catalog docs) and default severity.
    #[must_use]
    pub fn describe(self) -> (&'static str, Severity) {
        match self {
            Self::Tampered => ("tampered", Severity::Critical),
            Self::SignatureInvalid => ("signature_invalid", Severity::High),
            Self::UnsafeFormat => ("unsafe_format", Severity::High),
            Self::VulnerableRuntime => ("vulnerable_runtime", Severity::High),
            Self::ExposedListener => ("exposed_listener", Severity::High),
            Self::SensitiveDataAccess => ("sensitive_data_access", Severity::High),
            Self::UnapprovedAcceleratorUse => ("unapproved_accelerator_use", Severity::Medium),
            Self::LicenseRestricted => ("license_restricted", Severity::Medium),
            Self::UnknownRuntime => ("unknown_runtime", Severity::Medium),
            Self::Unapproved => ("unapproved", Severity::Low),
            Self::Approved => ("approved", Severity::Info),
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        self.describe().0
    }
}

/// One rule that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: VerdictKind,
    pub severity: Severity,
    pub reason: String,
}

impl Rule {
    fn new(kind: VerdictKind, reason: impl Into<String>) -> Self {
        Self { kind, severity: kind.describe().1, reason: reason.into() }
    }

    fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

/// Every rule that matched, most severe first; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub rules: Vec<Rule>,
    /// Facts are missing (the digest, the signature check): it may still change.
    pub provisional: bool,
}

impl Judgement {
    fn from_rules(mut rules: Vec<Rule>, provisional: bool) -> Self {
        rules.sort_by(|a, b| a.kind.cmp(&b.kind).then(b.severity.cmp(&a.severity)));
        rules.dedup_by(|a, b| a.kind == b.kind && a.reason == b.reason);
        Self { rules, provisional }
    }

    /// The verdict: the most severe rule.
    #[must_use]
    pub fn verdict(&self) -> &Rule {
        &self.rules[0]
    }

    #[must_use]
    pub fn is_approved(&self) -> bool {
        self.verdict().kind == VerdictKind::Approved
    }
}

/// What a model file's signature check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SignatureFact {
    /// No `model.sig` beside it, or no signer configured.
    #[default]
    None,
    /// The check is running.
    Pending,
    /// Verified with a listed key (its fingerprint) or a configured CA.
    Verified { signer: String },
    /// Well-formed, but no configured key or CA verifies it.
    UnknownSigner,
    /// The signature, or a file digest, does not verify.
    Invalid { reason: String },
}

/// What is known about one model file.
#[derive(Clone, Copy, Debug)]
pub struct ModelFacts<'a> {
    pub path: &'a str,
    /// Lower-case hex; `None` while hashing is pending (or impossible).
    pub sha256: Option<&'a str>,
    /// The digest will not come (hashing off, skipped, failed): judge without it.
    pub hash_unavailable: bool,
    pub format: Format,
    pub license: Option<&'a str>,
    /// GGUF `general.name`.
    pub name: Option<&'a str>,
    pub provenance: Option<&'a Provenance>,
    pub findings: &'a [Finding],
    pub signature: &'a SignatureFact,
}

/// A catalog source: `ollama:<model>:<tag>` or `hf:<org>/<repo>[@<revision>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Ollama { tag: String },
    HuggingFace { repo: String, revision: Option<String> },
}

impl Source {
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(tag) = text.strip_prefix("ollama:") {
            let (model, version) = tag.rsplit_once(':')?;
            return (!model.is_empty() && !version.is_empty()).then(|| Self::Ollama { tag: tag.to_owned() });
        }
        let repo = text.strip_prefix("hf:")?;
        let (repo, revision) = match repo.split_once('@') {
            Some((repo, revision)) => (repo, Some(revision.to_owned())),
            None => (repo, None),
        };
        let (org, name) = repo.split_once('/')?;
        (!org.is_empty() && !name.is_empty() && !name.contains('/'))
            .then(|| Self::HuggingFace { repo: repo.to_owned(), revision })
    }

    fn matches(&self, provenance: &Provenance) -> bool {
        match (self, provenance.source) {
            (Self::Ollama { tag }, ProvenanceSource::Ollama) => {
                provenance.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
            }
            (Self::HuggingFace { repo, revision }, ProvenanceSource::HuggingFace) => {
                let found = match (&provenance.organization, &provenance.repository) {
                    (Some(org), Some(name)) => format!("{org}/{name}"),
                    _ => return false,
                };
                found.eq_ignore_ascii_case(repo)
                    && revision.as_ref().is_none_or(|r| provenance.revision.as_deref() == Some(r.as_str()))
            }
            _ => false,
        }
    }
}

/// Judges one model file against the catalog.
#[must_use]
pub fn judge_model(
    facts: &ModelFacts<'_>,
    catalog: &Catalog,
    signers: &dyn Fn(&str) -> Vec<String>,
) -> Judgement {
    let mut rules = Vec::new();
    let pinned_by =
        facts.sha256.and_then(|digest| catalog.models.iter().find(|m| m.sha256.iter().any(|d| d == digest)));
    let signed_by: Vec<String> = match facts.signature {
        SignatureFact::Verified { signer } => signers(signer),
        _ => Vec::new(),
    };
    if let Some(entry) = pinned_by {
        rules.push(Rule::new(
            VerdictKind::Approved,
            format!("its SHA-256 is pinned by catalog entry {:?}", entry.name),
        ));
    } else if let Some(entry) = signed_by.first() {
        rules.push(Rule::new(VerdictKind::Approved, format!("signed by a key of catalog entry {entry:?}")));
    }
    let approved = !rules.is_empty();
    let hash_pending = facts.sha256.is_none() && !facts.hash_unavailable;
    if !approved && let Some(entry) = claimed_entry(facts, catalog) {
        if let Some(digest) = facts.sha256 {
            rules.push(Rule::new(
                VerdictKind::Tampered,
                format!(
                    "named like catalog entry {:?}, but its SHA-256 {digest} is not pinned there",
                    entry.name
                ),
            ));
        } else if facts.hash_unavailable {
            rules.push(
                Rule::new(
                    VerdictKind::Tampered,
                    format!(
                        "named like catalog entry {:?}, and its SHA-256 could not be checked",
                        entry.name
                    ),
                )
                .with_severity(Severity::High),
            );
        }
    }
    if let SignatureFact::Invalid { reason } = facts.signature {
        rules.push(Rule::new(VerdictKind::SignatureInvalid, reason.clone()));
    }
    rules.extend(unsafe_format(facts, catalog));
    if let Some(license) = facts.license.filter(|l| is_denied(l, &catalog.policy.denied_licenses)) {
        rules.push(Rule::new(
            VerdictKind::LicenseRestricted,
            format!("license {license:?} is denied by the policy"),
        ));
    }
    if rules.is_empty() {
        rules.push(Rule::new(
            VerdictKind::Unapproved,
            "not in the catalog (no pinned digest or listed signer)",
        ));
    }
    let signature_pending = matches!(facts.signature, SignatureFact::Pending);
    Judgement::from_rules(rules, hash_pending || signature_pending)
}

/// The catalog entry a file claims to be: the same Ollama `model:tag`, Hugging Face
/// `org/repo` (and revision), or GGUF `general.name`.
fn claimed_entry<'c>(facts: &ModelFacts<'_>, catalog: &'c Catalog) -> Option<&'c CatalogModel> {
    catalog.models.iter().find(|entry| {
        let by_source = facts
            .provenance
            .is_some_and(|p| entry.sources.iter().filter_map(|s| Source::parse(s)).any(|s| s.matches(p)));
        let by_name = facts.name.is_some_and(|n| !n.is_empty() && n.eq_ignore_ascii_case(&entry.name));
        by_source || by_name
    })
}

/// Findings that make a file unsafe to load, and pickles the policy forbids.
fn unsafe_format(facts: &ModelFacts<'_>, catalog: &Catalog) -> Vec<Rule> {
    let mut rules = Vec::new();
    if facts.format.is_pickle_based() && !catalog.policy.allow_pickle {
        rules.push(Rule::new(
            VerdictKind::UnsafeFormat,
            "a pickle-based format, and the policy sets allow_pickle = false",
        ));
    }
    for finding in facts.findings {
        let code = matches!(
            finding.kind,
            FindingKind::PickleDangerousImport
                | FindingKind::PickleUnknownImport
                | FindingKind::PickleUnresolvedImport
                | FindingKind::PickleIndirectCall
                | FindingKind::PickleMalformed
                | FindingKind::NumpyObjectArray
                | FindingKind::KerasLambdaLayer
                | FindingKind::ChatTemplateRisk
        );
        if code && finding.severity >= Severity::Medium {
            let severity =
                if finding.severity == Severity::Critical { Severity::Critical } else { Severity::High };
            rules.push(Rule::new(VerdictKind::UnsafeFormat, finding.message.clone()).with_severity(severity));
        }
        if finding.kind == FindingKind::ChangedSinceOpened {
            rules.push(Rule::new(
                VerdictKind::UnsafeFormat,
                format!("not inspected as loaded: {}", finding.message),
            ));
        }
        if finding.kind == FindingKind::AnalysisBudgetExceeded {
            rules.push(Rule::new(
                VerdictKind::UnsafeFormat,
                format!("could not be fully inspected: {}", finding.message),
            ));
        }
    }
    rules
}

/// What is known about one inference session.
#[derive(Clone, Debug, Default)]
pub struct SessionFacts<'a> {
    /// The runtime's snake_case name, `None` when it is an unclassified process.
    pub runtime: Option<&'a str>,
    pub version: Option<&'a str>,
    /// Advisories that apply to that version (ids and reasons).
    pub advisories: Vec<(String, String)>,
    pub listeners: Vec<(String, ListenerExposure)>,
    /// Paths under `sensitive_paths` its processes opened.
    pub sensitive: Vec<String>,
    /// Sustained accelerator activity, described (issue: unapproved accelerator use).
    pub accelerator_activity: Vec<String>,
    /// The verdicts of the models it loaded (path, judgement).
    pub models: Vec<(String, Judgement)>,
}

/// Judges a session: its own rules plus its models'.
#[must_use]
pub fn judge_session(facts: &SessionFacts<'_>, catalog: &Catalog) -> Judgement {
    let mut rules = Vec::new();
    match facts.runtime {
        None if !facts.listeners.is_empty() => rules.push(Rule::new(
            VerdictKind::UnknownRuntime,
            "an unclassified process that loaded a model and listens",
        )),
        Some(runtime) if !catalog.runtime_allowed(runtime) => rules.push(Rule::new(
            VerdictKind::UnknownRuntime,
            format!("runtime {runtime} is not in policy.allowed_runtimes"),
        )),
        _ => {}
    }
    for (id, reason) in &facts.advisories {
        let version = facts.version.unwrap_or("?");
        rules.push(Rule::new(VerdictKind::VulnerableRuntime, format!("version {version}: {id}: {reason}")));
    }
    for (address, exposure) in &facts.listeners {
        if *exposure > catalog.policy.listener_exposure {
            rules.push(Rule::new(
                VerdictKind::ExposedListener,
                format!(
                    "listens on {address}, beyond the policy's {:?} exposure",
                    catalog.policy.listener_exposure
                ),
            ));
        }
    }
    for path in &facts.sensitive {
        rules.push(Rule::new(
            VerdictKind::SensitiveDataAccess,
            format!("opened {path}, under policy.sensitive_paths"),
        ));
    }
    for activity in &facts.accelerator_activity {
        rules.push(Rule::new(VerdictKind::UnapprovedAcceleratorUse, activity.clone()));
    }
    let mut provisional = false;
    for (path, judgement) in &facts.models {
        provisional |= judgement.provisional;
        let model = judgement.verdict();
        if model.kind != VerdictKind::Approved {
            rules.push(Rule {
                kind: model.kind,
                severity: model.severity,
                reason: format!("model {path}: {}", model.reason),
            });
        }
    }
    if rules.is_empty() {
        let all_approved = !facts.models.is_empty() && facts.models.iter().all(|(_, j)| j.is_approved());
        rules.push(if all_approved {
            Rule::new(
                VerdictKind::Approved,
                "every model approved, on an allowed runtime, exposed within policy",
            )
        } else {
            Rule::new(VerdictKind::Unapproved, "no approved model")
        });
    }
    Judgement::from_rules(rules, provisional)
}

/// Whether `path` lies under one of `patterns` (`*` matches within one component).
#[must_use]
pub fn is_sensitive(path: &str, patterns: &[String]) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    patterns.iter().any(|pattern| {
        let pattern: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        pattern.len() <= parts.len() && pattern.iter().zip(&parts).all(|(p, c)| component_matches(p, c))
    })
}

fn component_matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            text.len() >= prefix.len() + rest.replace('*', "").len() && text.starts_with(prefix) && {
                let tail = &text[prefix.len()..];
                (0..=tail.len())
                    .filter(|i| tail.is_char_boundary(*i))
                    .any(|i| component_matches(rest, &tail[i..]))
            }
        }
    }
}

#[cfg(test)]
mod tests;
