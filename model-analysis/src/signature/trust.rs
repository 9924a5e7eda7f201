//! The keys and CAs a deployment trusts, loaded from PEM (the catalog's files).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::open::{OpenError, Root};

use super::certs::TrustedCa;
use super::keys::EcKey;

/// A PEM file of keys or CAs larger than this is not a trust file.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("not PEM: {reason}")]
    Pem { reason: String },
    #[error("PEM block {label:?} where {expected} was expected")]
    Label { label: String, expected: &'static str },
    #[error("unusable public key: {reason}")]
    Key { reason: String },
    #[error("unusable CA certificate: {reason}")]
    Certificate { reason: String },
    #[error("{path} holds no {expected} block")]
    Empty { path: PathBuf, expected: &'static str },
    #[error("{path} is {size} bytes, above the {MAX_PEM_BYTES}-byte cap for trust files")]
    TooLarge { path: PathBuf, size: u64 },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub(crate) struct TrustedKey {
    pub(crate) key: EcKey,
    pub(crate) hint: String,
}

/// What may sign models: public keys (key mode) and CA certificates (certificate
/// mode). Empty means nothing verifies: every signature is [`UnknownSigner`].
///
/// [`UnknownSigner`]: super::SignatureVerdict::UnknownSigner
#[derive(Debug, Default)]
pub struct TrustStore {
    pub(crate) keys: Vec<TrustedKey>,
    pub(crate) cas: Vec<TrustedCa>,
}

impl TrustStore {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.cas.is_empty()
    }

    /// Trusts the EC public keys (`PUBLIC KEY` blocks) in `pem`. Returns each key's
    /// fingerprint: the hex SHA-256 of its canonical PEM, the hint model-signing
    /// records in a bundle and the signer a verdict names.
    ///
    /// # Errors
    /// Not PEM, another kind of block, or a key model-signing cannot sign with.
    pub fn add_public_keys_pem(&mut self, pem: &[u8]) -> Result<Vec<String>, TrustError> {
        let mut added = Vec::new();
        for der in blocks(pem, "PUBLIC KEY")? {
            let key = EcKey::from_spki_der(&der).map_err(|reason| TrustError::Key { reason })?;
            let hint = key.hint();
            added.push(hint.clone());
            self.keys.push(TrustedKey { key, hint });
        }
        Ok(added)
    }

    /// Trusts the CA certificates (`CERTIFICATE` blocks) in `pem`; returns how many.
    ///
    /// # Errors
    /// Not PEM, another kind of block, or a certificate webpki cannot anchor to.
    pub fn add_cas_pem(&mut self, pem: &[u8]) -> Result<usize, TrustError> {
        let ders = blocks(pem, "CERTIFICATE")?;
        for der in &ders {
            let ca = TrustedCa::from_der(der).map_err(|reason| TrustError::Certificate { reason })?;
            self.cas.push(ca);
        }
        Ok(ders.len())
    }

    /// [`Self::add_public_keys_pem`] from a file, opened inside `root`.
    ///
    /// # Errors
    /// The file cannot be opened or read, or holds no usable key.
    pub fn add_public_key_file(&mut self, root: &Root, path: &Path) -> Result<Vec<String>, TrustError> {
        let keys = self.add_public_keys_pem(&read_capped(root, path)?)?;
        if keys.is_empty() {
            return Err(TrustError::Empty { path: path.to_path_buf(), expected: "PUBLIC KEY" });
        }
        Ok(keys)
    }

    /// [`Self::add_cas_pem`] from a file, opened inside `root`.
    ///
    /// # Errors
    /// The file cannot be opened or read, or holds no usable certificate.
    pub fn add_ca_file(&mut self, root: &Root, path: &Path) -> Result<usize, TrustError> {
        let n = self.add_cas_pem(&read_capped(root, path)?)?;
        if n == 0 {
            return Err(TrustError::Empty { path: path.to_path_buf(), expected: "CERTIFICATE" });
        }
        Ok(n)
    }
}

fn read_capped(root: &Root, path: &Path) -> Result<Vec<u8>, TrustError> {
    let opened = root.open_file(path, true, None)?;
    if opened.stamp.size > MAX_PEM_BYTES {
        return Err(TrustError::TooLarge { path: path.to_path_buf(), size: opened.stamp.size });
    }
    let mut bytes = Vec::new();
    opened
        .file
        .take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| TrustError::Io { path: path.to_path_buf(), source })?;
    Ok(bytes)
}

/// Every PEM block of `pem` (text around them is ignored), each of which must carry
/// `label`.
fn blocks(pem: &[u8], label: &'static str) -> Result<Vec<Vec<u8>>, TrustError> {
    const BEGIN: &str = "-----BEGIN ";
    let text = std::str::from_utf8(pem).map_err(|e| TrustError::Pem { reason: e.to_string() })?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find("-----END ")
            .and_then(|e| block[e + 9..].find("-----").map(|close| e + 9 + close + 5))
            .ok_or_else(|| TrustError::Pem { reason: "a BEGIN line without its END line".into() })?;
        let (found, der) = pem_rfc7468::decode_vec(&block.as_bytes()[..end])
            .map_err(|e| TrustError::Pem { reason: e.to_string() })?;
        if found != label {
            return Err(TrustError::Label { label: found.to_owned(), expected: label });
        }
        out.push(der);
        rest = &block[end..];
    }
    Ok(out)
}
