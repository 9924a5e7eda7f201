//! OpenSSF model signing against real signatures: the `model-signing` package signs a
//! small model (key mode on three curves, certificate mode, shards, other hashes,
//! ignore rules, a single file), and the verifier must agree, then catch every change.

use std::path::{Path, PathBuf};
use std::process::Command;

use model_analysis::Root;
use model_analysis::signature::{
    SignatureVerdict, Signer, TrustStore, VerifyBudget, authenticate, verify_beside, verify_model,
};

/// The interpreter with `model_signing`: `MODELWATCH_TEST_PYTHON`, else the venv
/// `cargo xtask test` makes under the workspace's `target/`.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("MODELWATCH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import model_signing, OpenSSL"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(candidate)
}

/// Signs the fixtures into a fresh directory; `None` (after printing why) when the
/// signer is not installed.
fn fixtures() -> Option<tempfile::TempDir> {
    let Some(python) = python() else {
        eprintln!(
            "SKIPPED: no Python with model_signing (set MODELWATCH_TEST_PYTHON or run cargo xtask test)"
        );
        return None;
    };
    let cli = python.with_file_name("model_signing");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sign_fixtures.py");
    let output =
        Command::new(&python).arg(&script).arg(dir.path()).arg(&cli).output().expect("run the signer");
    assert!(output.status.success(), "signing failed: {}", String::from_utf8_lossy(&output.stderr));
    Some(dir)
}

fn trust(dir: &Path, keys: &[&str], cas: &[&str]) -> TrustStore {
    let root = Root::host().expect("root");
    let mut store = TrustStore::new();
    for key in keys {
        store.add_public_key_file(&root, &dir.join(format!("{key}.pub"))).expect("key loads");
    }
    for ca in cas {
        store.add_ca_file(&root, &dir.join(format!("{ca}.pem"))).expect("CA loads");
    }
    store
}

fn verify(dir: &Path, model: &Path, sig: &str, store: &TrustStore) -> SignatureVerdict {
    let root = Root::host().expect("root");
    verify_model(&root, model, &dir.join(sig), store, &VerifyBudget::default()).expect("a verdict")
}

fn expect_invalid(verdict: &SignatureVerdict, because: &str) {
    match verdict {
        SignatureVerdict::Invalid { reason } => {
            assert!(reason.contains(because), "{reason:?} lacks {because:?}");
        }
        other => panic!("expected Invalid ({because}), got {other:?}"),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(status.success());
}

#[test]
fn real_signatures_verify_and_every_change_is_caught() {
    let Some(tmp) = fixtures() else { return };
    let dir = tmp.path();
    let model = dir.join("model");
    let store = trust(dir, &["p256", "p384", "p521"], &["ca"]);
    let signed_files = vec!["config.json", "empty.txt", "sub/tokenizer.json", "weights.bin"];

    let cli_model = dir.join("model-cli");
    for (sig, key) in
        [("p256.sig", "p256"), ("p384.sig", "p384"), ("p521.sig", "p521"), ("model-cli/model.sig", "p384")]
    {
        let target = if sig.starts_with("model-cli") { &cli_model } else { &model };
        let verdict = verify(dir, target, sig, &store);
        let SignatureVerdict::Verified { signer: Signer::Key { fingerprint }, files } = &verdict else {
            panic!("{sig}: {verdict:?}");
        };
        let mut expected = TrustStore::new();
        let hint = expected
            .add_public_keys_pem(&std::fs::read(dir.join(format!("{key}.pub"))).expect("pub"))
            .expect("key");
        assert_eq!(fingerprint, &hint[0], "{sig}");
        assert_eq!(files, &signed_files, "{sig}");
        assert!(verdict.covers("weights.bin") && !verdict.covers(".git/HEAD"));
    }

    // Shards, BLAKE2b and BLAKE3, signed ignore rules, one file alone.
    for sig in ["shards.sig", "blake2.sig", "blake3.sig", "ignoring.sig"] {
        assert!(matches!(verify(dir, &model, sig, &store), SignatureVerdict::Verified { .. }), "{sig}");
    }
    let single = verify(dir, &model.join("weights.bin"), "single.sig", &store);
    assert!(matches!(&single, SignatureVerdict::Verified { files, .. } if files == &["."]), "{single:?}");

    // An unlisted key, no key at all.
    assert!(matches!(verify(dir, &model, "other.sig", &store), SignatureVerdict::UnknownSigner { .. }));
    assert!(matches!(
        verify(dir, &model, "p256.sig", &TrustStore::new()),
        SignatureVerdict::UnknownSigner { .. }
    ));

    // Certificate mode: the CA verifies; another CA does not; a leaf without the
    // code-signing usage is refused even under the right CA.
    let cert = verify(dir, &model, "cert.sig", &store);
    let SignatureVerdict::Verified { signer: Signer::Certificate { subject, issuer, .. }, .. } = &cert else {
        panic!("cert.sig: {cert:?}");
    };
    assert_eq!((subject.as_str(), issuer.as_str()), ("CN=model publisher", "CN=modelwatch test CA"));
    let other_ca = trust(dir, &["p256"], &["other-ca"]);
    let unknown = verify(dir, &model, "cert.sig", &other_ca);
    assert!(matches!(unknown, SignatureVerdict::UnknownSigner { .. }), "{unknown:?}");
    expect_invalid(&verify(dir, &model, "cert-no-eku.sig", &store), "code signing");
}

#[test]
fn tampering_is_invalid() {
    let Some(tmp) = fixtures() else { return };
    let dir = tmp.path();
    let store = trust(dir, &["p256"], &[]);
    let fresh = |name: &str| {
        let copy = dir.join(name);
        copy_tree(&dir.join("model"), &copy);
        copy
    };

    let changed = fresh("changed");
    let mut bytes = std::fs::read(changed.join("weights.bin")).expect("read");
    bytes[1000] ^= 1;
    std::fs::write(changed.join("weights.bin"), &bytes).expect("write");
    expect_invalid(
        &verify(dir, &changed, "p256.sig", &store),
        "weights.bin does not match its signed sha256",
    );
    expect_invalid(&verify(dir, &changed, "shards.sig", &store), "bytes 1000..2000 of weights.bin");

    let added = fresh("added");
    std::fs::write(added.join("sub/extra.py"), b"import os").expect("write");
    expect_invalid(
        &verify(dir, &added, "p256.sig", &store),
        "sub/extra.py is in the model but not in the signature",
    );
    // Under a signed ignore rule, or git's, an added file changes nothing.
    let ignored = fresh("ignored");
    std::fs::create_dir(ignored.join("logs")).expect("mkdir");
    std::fs::write(ignored.join("logs/run.txt"), b"x").expect("write");
    std::fs::write(ignored.join(".git/config"), b"x").expect("write");
    std::fs::write(ignored.join("config.json"), b"changed, but ignored").expect("write");
    assert!(matches!(verify(dir, &ignored, "ignoring.sig", &store), SignatureVerdict::Verified { .. }));

    let removed = fresh("removed");
    std::fs::remove_file(removed.join("sub/tokenizer.json")).expect("rm");
    expect_invalid(&verify(dir, &removed, "p256.sig", &store), "signed file sub/tokenizer.json is missing");

    let grown = fresh("grown");
    std::fs::write(grown.join("weights.bin"), vec![0u8; 5000]).expect("write");
    expect_invalid(&verify(dir, &grown, "shards.sig", &store), "more shards than the signature lists");

    let linked = fresh("linked");
    std::os::unix::fs::symlink("weights.bin", linked.join("alias.bin")).expect("symlink");
    expect_invalid(&verify(dir, &linked, "p256.sig", &store), "symbolic link");

    let fifo = fresh("fifo");
    let status = Command::new("mkfifo").arg(fifo.join("pipe")).status().expect("mkfifo");
    assert!(status.success());
    expect_invalid(&verify(dir, &fifo, "p256.sig", &store), "FIFO");
}

#[test]
fn broken_bundles_are_invalid_with_a_reason() {
    let Some(tmp) = fixtures() else { return };
    let dir = tmp.path();
    let store = trust(dir, &["p256"], &[]);
    let good = std::fs::read_to_string(dir.join("p256.sig")).expect("read");

    let truncated = &good.as_bytes()[..good.len() / 2];
    match authenticate(truncated, &store) {
        Err(SignatureVerdict::Invalid { reason }) => {
            assert!(reason.contains("not a Sigstore bundle"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A payload swapped for another signed statement's: the signature no longer holds.
    let other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("shards.sig")).expect("read")).expect("json");
    let mut swapped: serde_json::Value = serde_json::from_str(&good).expect("json");
    swapped["dsseEnvelope"]["payload"] = other["dsseEnvelope"]["payload"].clone();
    match authenticate(swapped.to_string().as_bytes(), &store) {
        Err(SignatureVerdict::Invalid { reason }) => assert!(reason.contains("does not verify"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A garbled signature.
    let mut garbled: serde_json::Value = serde_json::from_str(&good).expect("json");
    garbled["dsseEnvelope"]["signatures"][0]["sig"] = "AAAA".into();
    assert!(matches!(
        authenticate(garbled.to_string().as_bytes(), &store),
        Err(SignatureVerdict::Invalid { .. })
    ));
    // The hint removed (older bundles): the key is found by trying.
    let mut unhinted: serde_json::Value = serde_json::from_str(&good).expect("json");
    unhinted["verificationMaterial"]["publicKey"] = serde_json::json!({});
    let signed = authenticate(unhinted.to_string().as_bytes(), &store).expect("verifies without a hint");
    assert_eq!(signed.resources(), 4);
}

#[test]
fn the_signature_beside_a_model_is_found() {
    let Some(tmp) = fixtures() else { return };
    let dir = tmp.path();
    let root = Root::host().expect("root");
    let store = trust(dir, &["p384"], &[]);
    let model = dir.join("model-cli");
    let found = verify_beside(&root, &model.join("weights.bin"), &store, &VerifyBudget::default())
        .expect("a verdict")
        .expect("model.sig is there");
    assert_eq!(found.0.model, model);
    assert!(matches!(found.1, SignatureVerdict::Verified { .. }), "{:?}", found.1);
    let by_dir =
        verify_beside(&root, &model, &store, &VerifyBudget::default()).expect("verdict").expect("found");
    assert!(matches!(by_dir.1, SignatureVerdict::Verified { .. }));
    // A file signed alone, with its signature beside it as <file>.sig.
    std::fs::copy(dir.join("single.sig"), model.join("weights.bin.sig")).expect("copy");
    let store = trust(dir, &["p521"], &[]);
    let alone = verify_beside(&root, &model.join("weights.bin"), &store, &VerifyBudget::default())
        .expect("verdict")
        .expect("found");
    assert_eq!(alone.0.model, model.join("weights.bin"));
    assert!(matches!(alone.1, SignatureVerdict::Verified { .. }), "{:?}", alone.1);
    assert!(
        verify_beside(&root, &dir.join("nowhere/x.bin"), &store, &VerifyBudget::default())
            .expect("ok")
            .is_none()
    );
}
