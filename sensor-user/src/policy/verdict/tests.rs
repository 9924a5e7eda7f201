use model_analysis::{Finding, FindingKind, Format, Provenance, ProvenanceSource, Severity};

use super::*;
use crate::policy::catalog::Catalog;

const PINNED: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn catalog() -> Catalog {
    Catalog::parse(
        &format!(
            "[[model]]\nname = \"qwen2.5-coder-7b-instruct\"\nsha256 = [\"{PINNED}\"]\nlicense = \"apache-2.0\"\nsources = [\"ollama:qwen2.5-coder:7b\", \"hf:Qwen/Qwen2.5-Coder-7B-Instruct\"]\n"
        ),
        None,
    )
    .expect("catalog")
}

fn facts<'a>(
    sha256: Option<&'a str>,
    provenance: Option<&'a Provenance>,
    findings: &'a [Finding],
) -> ModelFacts<'a> {
    ModelFacts {
        path: "/m/model.gguf",
        sha256,
        hash_unavailable: false,
        format: Format::Gguf,
        license: None,
        name: None,
        provenance,
        findings,
        signature: &SignatureFact::None,
    }
}

fn no_signers(_: &str) -> Vec<String> {
    Vec::new()
}

fn ollama(tag: &str) -> Provenance {
    Provenance {
        source: ProvenanceSource::Ollama,
        organization: None,
        repository: None,
        repository_kind: None,
        revision: None,
        file: None,
        digest: None,
        tags: vec![tag.to_owned()],
    }
}

#[test]
fn a_pinned_digest_is_approved() {
    let judgement = judge_model(&facts(Some(PINNED), None, &[]), &catalog(), &no_signers);
    assert_eq!(judgement.verdict().kind, VerdictKind::Approved);
    assert!(!judgement.provisional);
}

#[test]
fn the_same_ollama_tag_with_other_content_is_tampered() {
    let provenance = ollama("qwen2.5-coder:7b");
    let judgement = judge_model(&facts(Some(OTHER), Some(&provenance), &[]), &catalog(), &no_signers);
    assert_eq!(judgement.verdict().kind, VerdictKind::Tampered);
    assert_eq!(judgement.verdict().severity, Severity::Critical);
    // Before the digest is known it is only provisionally unapproved.
    let pending = judge_model(&facts(None, Some(&provenance), &[]), &catalog(), &no_signers);
    assert!(pending.provisional);
    assert_eq!(pending.verdict().kind, VerdictKind::Unapproved);
}

#[test]
fn every_rule_is_kept_and_the_most_severe_wins() {
    let findings = [Finding::new(FindingKind::PickleDangerousImport, "os.system")];
    let mut f = facts(Some(OTHER), None, &findings);
    f.format = Format::PytorchZip;
    f.license = Some("CC-BY-NC-4.0");
    let judgement = judge_model(&f, &catalog(), &no_signers);
    let kinds: Vec<VerdictKind> = judgement.rules.iter().map(|r| r.kind).collect();
    assert_eq!(kinds[0], VerdictKind::UnsafeFormat);
    assert_eq!(judgement.verdict().severity, Severity::Critical);
    assert!(kinds.contains(&VerdictKind::LicenseRestricted), "{kinds:?}");
}

#[test]
fn a_listed_signer_approves_and_an_invalid_signature_is_flagged() {
    let signed = SignatureFact::Verified { signer: "fp".into() };
    let mut f = facts(Some(OTHER), None, &[]);
    f.signature = &signed;
    let listed = |s: &str| if s == "fp" { vec!["qwen".to_owned()] } else { Vec::new() };
    assert_eq!(judge_model(&f, &catalog(), &listed).verdict().kind, VerdictKind::Approved);
    assert_eq!(judge_model(&f, &catalog(), &no_signers).verdict().kind, VerdictKind::Unapproved);
    let invalid = SignatureFact::Invalid { reason: "a file digest does not match".into() };
    f.signature = &invalid;
    assert_eq!(judge_model(&f, &catalog(), &listed).verdict().kind, VerdictKind::SignatureInvalid);
}

#[test]
fn sessions_carry_their_own_rules_and_their_models() {
    let catalog = catalog();
    let approved = judge_model(&facts(Some(PINNED), None, &[]), &catalog, &no_signers);
    let exposed = SessionFacts {
        runtime: Some("ollama"),
        listeners: vec![("0.0.0.0:11434".into(), ListenerExposure::AllInterfaces)],
        models: vec![("/m/model.gguf".into(), approved.clone())],
        ..SessionFacts::default()
    };
    assert_eq!(judge_session(&exposed, &catalog).verdict().kind, VerdictKind::ExposedListener);
    let unknown = SessionFacts {
        runtime: None,
        listeners: vec![("127.0.0.1:9999".into(), ListenerExposure::Loopback)],
        models: vec![("/m/model.gguf".into(), approved.clone())],
        ..SessionFacts::default()
    };
    assert_eq!(judge_session(&unknown, &catalog).verdict().kind, VerdictKind::UnknownRuntime);
    let fine = SessionFacts {
        runtime: Some("ollama"),
        listeners: vec![("127.0.0.1:11434".into(), ListenerExposure::Loopback)],
        models: vec![("/m/model.gguf".into(), approved)],
        ..SessionFacts::default()
    };
    assert_eq!(judge_session(&fine, &catalog).verdict().kind, VerdictKind::Approved);
}

#[test]
fn sensitive_path_globs() {
    let patterns = vec!["/srv/customer-data".to_owned(), "/home/*/.ssh".to_owned()];
    assert!(is_sensitive("/srv/customer-data/export.csv", &patterns));
    assert!(is_sensitive("/home/dev/.ssh/id_ed25519", &patterns));
    assert!(!is_sensitive("/home/dev/.sshx/key", &patterns));
    assert!(!is_sensitive("/srv/other", &patterns));
}

#[test]
fn sources_parse_strictly() {
    assert!(Source::parse("ollama:qwen2.5-coder:7b").is_some());
    assert!(Source::parse("hf:Qwen/Qwen2.5@abc").is_some());
    assert!(Source::parse("hf:noslash").is_none());
    assert!(Source::parse("ollama:notag").is_none());
    assert!(Source::parse("s3:bucket").is_none());
}
