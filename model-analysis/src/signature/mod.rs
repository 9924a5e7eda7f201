//! OpenSSF model signing (the `model-signing` v1.x format), verified offline.
//!
//! A `model.sig` is a Sigstore bundle (media type v0.3) wrapping a DSSE envelope of an
//! in-toto statement whose predicate lists one digest per file (or per shard of a
//! file) of the model. Verification here:
//! 1. reads the bundle (capped, typed) and checks its DSSE signature over the PAE
//!    encoding: key mode with a configured ECDSA key (P-256/P-384/P-521, found by the
//!    bundle's key hint), certificate mode with a leaf that chains to a configured CA
//!    and may sign code;
//! 2. only then reads the signed statement, checks that its subject digest agrees with
//!    the listed digests, and honours its serialization (files or shards, the hash,
//!    symlinks, ignored paths);
//! 3. walks the model: every file must be signed, every signed file present, and every
//!    digest match, hashing within a budget (rate, deadline, cancellation).
//!
//! Transparency-log (keyless Sigstore) signatures are not judged here: they need the
//! public-good trust root and a log inclusion proof, and a sensor decides offline.

mod bundle;
mod certs;
mod digest;
mod keys;
mod statement;
mod tree;
mod trust;
mod verdict;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::open::{FileStamp, OpenError, Root};

pub use bundle::MAX_BUNDLE_BYTES;
pub use digest::VerifyBudget;
pub use statement::{HashKind, MAX_RESOURCES, Method};
pub use trust::{TrustError, TrustStore};
pub use verdict::{SignatureVerdict, Signer, VerifyError};

use bundle::{Bundle, Material};
use certs::ChainOutcome;
use digest::Pacer;
use statement::{ItemKey, Manifest};

/// The name model-signing gives a signature by default.
pub const SIGNATURE_FILE_NAME: &str = "model.sig";

/// A bundle whose signature verified with a trusted signer: what it says about the
/// model, not yet compared with the disk.
#[derive(Debug)]
pub struct SignedManifest {
    pub signer: Signer,
    manifest: Manifest,
}

impl SignedManifest {
    /// The model's name as the signer recorded it (informative only).
    #[must_use]
    pub fn model_name(&self) -> &str {
        &self.manifest.model_name
    }

    #[must_use]
    pub fn method(&self) -> Method {
        self.manifest.method
    }

    #[must_use]
    pub fn hash(&self) -> HashKind {
        self.manifest.hash
    }

    /// Files or shards listed.
    #[must_use]
    pub fn resources(&self) -> usize {
        self.manifest.items.len()
    }

    /// Whether the signature is over one file (its only resource is the model itself)
    /// rather than a directory.
    #[must_use]
    pub fn is_single_file(&self) -> bool {
        self.manifest.items.keys().all(|k| k.path == ".")
    }
}

/// Checks a bundle's signature and reads its statement, without touching the model.
///
/// # Errors
/// The verdict when it is not a well-formed bundle signed by a trusted signer:
/// [`SignatureVerdict::Invalid`] or [`SignatureVerdict::UnknownSigner`].
pub fn authenticate(bundle: &[u8], trust: &TrustStore) -> Result<SignedManifest, SignatureVerdict> {
    let bundle = bundle::parse(bundle).map_err(SignatureVerdict::invalid)?;
    if bundle.payload_type != bundle::IN_TOTO_PAYLOAD_TYPE {
        return Err(SignatureVerdict::invalid(format!(
            "DSSE payload type {:?}, expected {}",
            bundle::clip(&bundle.payload_type),
            bundle::IN_TOTO_PAYLOAD_TYPE
        )));
    }
    let signed = bundle::pae(&bundle.payload_type, &bundle.payload);
    let signer = match &bundle.material {
        Material::Key { hint } => key_signer(hint.as_deref(), &signed, &bundle, trust)?,
        Material::Certificates(chain) => certificate_signer(chain, &signed, &bundle, trust)?,
    };
    let manifest = statement::parse(&bundle.payload).map_err(SignatureVerdict::invalid)?;
    Ok(SignedManifest { signer, manifest })
}

fn key_signer(
    hint: Option<&str>,
    signed: &[u8],
    bundle: &Bundle,
    trust: &TrustStore,
) -> Result<Signer, SignatureVerdict> {
    let verifies = |key: &keys::EcKey| bundle.signatures.iter().any(|sig| key.verifies(signed, sig));
    let Some(hint) = hint else {
        // Bundles from before key hints: any configured key may be the one.
        return trust
            .keys
            .iter()
            .find(|k| verifies(&k.key))
            .map(|k| Signer::Key { fingerprint: k.hint.clone() })
            .ok_or_else(|| {
                SignatureVerdict::unknown(
                    "no configured key verifies the signature (the bundle names no key)",
                )
            });
    };
    let named: Vec<_> = trust.keys.iter().filter(|k| k.hint.eq_ignore_ascii_case(hint)).collect();
    if named.is_empty() {
        return Err(SignatureVerdict::unknown(format!(
            "signed with key {}, which is not configured",
            bundle::clip(hint)
        )));
    }
    named.iter().find(|k| verifies(&k.key)).map(|k| Signer::Key { fingerprint: k.hint.clone() }).ok_or_else(
        || {
            let curve = named[0].key.curve_name();
            SignatureVerdict::invalid(format!(
                "the signature does not verify with configured {curve} key {hint}"
            ))
        },
    )
}

fn certificate_signer(
    chain: &[Vec<u8>],
    signed: &[u8],
    bundle: &Bundle,
    trust: &TrustStore,
) -> Result<Signer, SignatureVerdict> {
    match certs::check_chain(chain, &trust.cas) {
        ChainOutcome::Trusted { key, subject, issuer, fingerprint } => {
            if bundle.signatures.iter().any(|sig| key.verifies(signed, sig)) {
                Ok(Signer::Certificate { subject, issuer, fingerprint })
            } else {
                Err(SignatureVerdict::invalid(format!(
                    "the signature does not verify with the key of certificate {subject:?}"
                )))
            }
        }
        ChainOutcome::Untrusted(why) => Err(SignatureVerdict::unknown(why)),
        ChainOutcome::Invalid(why) => Err(SignatureVerdict::invalid(why)),
    }
}

/// Verifies the model at `model` (a directory, or one file) against the bundle at
/// `signature`, both inside `root`.
///
/// # Errors
/// No verdict could be reached: the signature or a file could not be read, a file
/// changed while it was hashed, or the budget ran out. None of these is evidence
/// against the model.
pub fn verify_model(
    root: &Root,
    model: &Path,
    signature: &Path,
    trust: &TrustStore,
    budget: &VerifyBudget,
) -> Result<SignatureVerdict, VerifyError> {
    let bytes = match read_bundle(root, signature)? {
        Ok(bytes) => bytes,
        Err(verdict) => return Ok(verdict),
    };
    match authenticate(&bytes, trust) {
        Ok(signed) => check_model(root, model, signature, &signed, budget),
        Err(verdict) => Ok(verdict),
    }
}

/// Where a signature for a model path would be, and what it would cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLocation {
    /// The directory (or file) the signature covers.
    pub model: PathBuf,
    pub signature: PathBuf,
}

/// Finds and verifies the signature beside `path`, a model file or directory inside
/// `root`: `<dir>/model.sig` for a directory; for a file, `<file>.sig` (a signature
/// of that file alone), else `model.sig` in its directory, which covers the whole
/// directory or, if it lists a single file, the file itself. `Ok(None)`: no
/// signature there.
///
/// # Errors
/// As [`verify_model`].
pub fn verify_beside(
    root: &Root,
    path: &Path,
    trust: &TrustStore,
    budget: &VerifyBudget,
) -> Result<Option<(SignatureLocation, SignatureVerdict)>, VerifyError> {
    let is_dir = root.open_dir(path).is_ok();
    let candidates: Vec<SignatureLocation> = if is_dir {
        vec![SignatureLocation { model: path.to_path_buf(), signature: path.join(SIGNATURE_FILE_NAME) }]
    } else {
        let mut own = path.as_os_str().to_owned();
        own.push(".sig");
        let mut found = vec![SignatureLocation { model: path.to_path_buf(), signature: PathBuf::from(own) }];
        if let Some(dir) = path.parent() {
            found.push(SignatureLocation {
                model: dir.to_path_buf(),
                signature: dir.join(SIGNATURE_FILE_NAME),
            });
        }
        found
    };
    for mut location in candidates {
        let bytes = match read_bundle(root, &location.signature) {
            Err(VerifyError::OpenSignature { source: OpenError::Io { source, .. } })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            other => other?,
        };
        let verdict = match bytes.map(|b| authenticate(&b, trust)) {
            Err(verdict) | Ok(Err(verdict)) => verdict,
            Ok(Ok(signed)) => {
                if !is_dir && signed.is_single_file() {
                    location.model = path.to_path_buf();
                }
                check_model(root, &location.model, &location.signature, &signed, budget)?
            }
        };
        return Ok(Some((location, verdict)));
    }
    Ok(None)
}

/// The bundle's bytes, or the verdict on a bundle too large to be one.
fn read_bundle(root: &Root, signature: &Path) -> Result<Result<Vec<u8>, SignatureVerdict>, VerifyError> {
    let opened =
        root.open_file(signature, true, None).map_err(|source| VerifyError::OpenSignature { source })?;
    if opened.stamp.size > MAX_BUNDLE_BYTES {
        return Ok(Err(SignatureVerdict::invalid(format!(
            "the bundle is {} bytes, above the {MAX_BUNDLE_BYTES}-byte cap",
            opened.stamp.size
        ))));
    }
    let mut bytes = Vec::new();
    opened
        .file
        .take(MAX_BUNDLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| VerifyError::Io { path: signature.to_path_buf(), source })?;
    Ok(Ok(bytes))
}

/// Compares the model on disk with an authenticated manifest.
fn check_model(
    root: &Root,
    model: &Path,
    signature: &Path,
    signed: &SignedManifest,
    budget: &VerifyBudget,
) -> Result<SignatureVerdict, VerifyError> {
    let manifest = &signed.manifest;
    let signed_paths: BTreeSet<&str> = manifest.items.keys().map(|k| k.path.as_str()).collect();
    let files = match tree::list(root, model, signature, manifest, &|rel| signed_paths.contains(rel))? {
        Ok(files) => files,
        Err(why) => return Ok(SignatureVerdict::invalid(why)),
    };
    let layout = match layout(&files, manifest) {
        Ok(layout) => layout,
        Err(why) => return Ok(SignatureVerdict::invalid(why)),
    };
    let mut pacer = Pacer::new(budget);
    for (file, keys) in files.iter().zip(&layout) {
        if let Some(why) = hash_file(root, model, file, keys, manifest, budget, &mut pacer)? {
            return Ok(SignatureVerdict::invalid(why));
        }
    }
    let files: Vec<String> = signed_paths.into_iter().map(str::to_owned).collect();
    Ok(SignatureVerdict::Verified { signer: signed.signer.clone(), files })
}

/// What each file on disk must be listed as, given its size; the error names the
/// first difference from the signed layout.
fn layout(files: &[tree::ModelFile], manifest: &Manifest) -> Result<Vec<Vec<ItemKey>>, String> {
    let mut all = Vec::with_capacity(files.len());
    let mut count = 0usize;
    for file in files {
        let keys = match manifest.method {
            statement::Method::Files => vec![ItemKey { path: file.rel.clone(), range: None }],
            statement::Method::Shards { size } => {
                let shards = file.size.div_ceil(size);
                if shards > (manifest.items.len() - count) as u64 {
                    return Err(format!("{} has more shards than the signature lists", file.rel));
                }
                (0..shards)
                    .map(|i| ItemKey {
                        path: file.rel.clone(),
                        range: Some((i * size, ((i + 1) * size).min(file.size))),
                    })
                    .collect()
            }
        };
        for key in &keys {
            if !manifest.items.contains_key(key) {
                return Err(format!("{} is {} bytes, not the size that was signed", file.rel, file.size));
            }
        }
        count += keys.len();
        all.push(keys);
    }
    if count != manifest.items.len() {
        let present: BTreeSet<&ItemKey> = all.iter().flatten().collect();
        let missing = manifest.items.keys().find(|k| !present.contains(k)).map_or("", |k| k.path.as_str());
        return Err(format!("signed file {missing} is missing"));
    }
    Ok(all)
}

/// Hashes one file's items; `Some(reason)` on a mismatch.
fn hash_file(
    root: &Root,
    model: &Path,
    file: &tree::ModelFile,
    keys: &[ItemKey],
    manifest: &Manifest,
    budget: &VerifyBudget,
    pacer: &mut Pacer<'_>,
) -> Result<Option<String>, VerifyError> {
    pacer.check()?;
    let (path, follow) = if file.rel == "." {
        (model.to_path_buf(), true)
    } else {
        (model.join(&file.rel), manifest.allow_symlinks)
    };
    let opened = match root.open_file(&path, follow, None) {
        Ok(opened) => opened,
        Err(OpenError::NotRegular { kind, .. }) => return Ok(Some(format!("{} is now a {kind}", file.rel))),
        Err(OpenError::Symlink { .. }) => return Ok(Some(format!("{} is now a symbolic link", file.rel))),
        Err(source) => return Err(VerifyError::OpenModel { path, source }),
    };
    if opened.stamp.size != file.size {
        return Err(VerifyError::Changed { path });
    }
    if let Some(cap) = budget.hash.max_bytes
        && file.size > cap
    {
        return Err(VerifyError::TooLarge { path, size: file.size, cap });
    }
    for key in keys {
        let range = key.range.unwrap_or((0, file.size));
        let digest = digest::digest_range(&opened, &path, range, manifest.hash, pacer)?;
        if manifest.items.get(key) != Some(&digest) {
            let what = key
                .range
                .map_or_else(|| file.rel.clone(), |(s, e)| format!("bytes {s}..{e} of {}", file.rel));
            return Ok(Some(format!("{what} does not match its signed {} digest", manifest.hash.name())));
        }
    }
    if FileStamp::of(&opened.file).ok() != Some(opened.stamp) {
        return Err(VerifyError::Changed { path });
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
