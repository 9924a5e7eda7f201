//! What verification concluded, and why it could not conclude: the leaf types every
//! other part of `signature` returns.

use std::path::PathBuf;

use serde::Serialize;

use crate::open::OpenError;

/// Who signed, as the trust store knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signer {
    /// A configured public key: hex SHA-256 of its canonical PEM, the same key hint
    /// model-signing writes into the bundle.
    Key { fingerprint: String },
    /// A leaf certificate that chains to a configured CA.
    Certificate {
        /// RFC 4514 subject of the leaf.
        subject: String,
        /// RFC 4514 subject of the configured CA the chain ends at.
        issuer: String,
        /// Hex SHA-256 of the leaf's DER.
        fingerprint: String,
    },
}

/// The verdict the policy acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum SignatureVerdict {
    /// The signature verifies with a configured key or CA and every file of the model
    /// matches its signed digest, with nothing missing and nothing extra.
    Verified {
        signer: Signer,
        /// The model's files the signature covers, relative to the model (`.` for a
        /// single-file model), sorted.
        files: Vec<String>,
    },
    /// Proof of tampering or a broken signature: a bad signature, a digest mismatch,
    /// a file missing or extra beyond the ignore rules, a malformed bundle.
    Invalid { reason: String },
    /// Well formed, but no configured key or CA verifies it.
    UnknownSigner { reason: String },
}

impl SignatureVerdict {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid { reason: reason.into() }
    }

    pub(crate) fn unknown(reason: impl Into<String>) -> Self {
        Self::UnknownSigner { reason: reason.into() }
    }

    /// Whether a verified signature covers `file` (a path relative to the model, as
    /// listed in `files`).
    #[must_use]
    pub fn covers(&self, file: &str) -> bool {
        match self {
            Self::Verified { files, .. } => files.binary_search_by(|f| f.as_str().cmp(file)).is_ok(),
            _ => false,
        }
    }
}

/// Why no verdict could be reached: nothing here says the model was tampered with.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature file could not be opened: {source}")]
    OpenSignature {
        #[source]
        source: OpenError,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} could not be opened: {source}")]
    OpenModel {
        path: PathBuf,
        #[source]
        source: OpenError,
    },
    #[error("{path} changed while it was hashed: verify again later")]
    Changed { path: PathBuf },
    #[error("{path} is {size} bytes, above the hashing cap of {cap} bytes")]
    TooLarge { path: PathBuf, size: u64, cap: u64 },
    #[error("the verification deadline passed after {hashed} bytes were hashed")]
    DeadlineExceeded { hashed: u64 },
    #[error("verification was cancelled")]
    Cancelled,
}
