//! ECDSA public keys on the curves model-signing signs with (P-256, P-384, P-521),
//! each paired with the hash model-signing uses for it (SHA-256, SHA-384, SHA-512).

use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use pem_rfc7468::LineEnding;
use sha2::{Digest as _, Sha256};
use signature_trait::Verifier as _;

/// `signature` names this module's parent; the RustCrypto trait crate comes through
/// `p256`'s re-export.
mod signature_trait {
    pub(super) use p256::ecdsa::signature::Verifier;
}

/// id-ecPublicKey's named curves.
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// A public key that can check a model-signing signature.
#[derive(Clone, Debug)]
pub(crate) enum EcKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl EcKey {
    /// From a DER SubjectPublicKeyInfo. The error says why the key is unusable.
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        let bad = |e: &dyn std::fmt::Display| format!("not a usable EC public key: {e}");
        let info = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|e| bad(&e))?;
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|_| "not an EC public key on a named curve (P-256, P-384 or P-521)".to_owned())?
            .to_string();
        match curve.as_str() {
            OID_P256 => {
                p256::ecdsa::VerifyingKey::from_public_key_der(der).map(Self::P256).map_err(|e| bad(&e))
            }
            OID_P384 => {
                p384::ecdsa::VerifyingKey::from_public_key_der(der).map(Self::P384).map_err(|e| bad(&e))
            }
            OID_P521 => {
                p521::ecdsa::VerifyingKey::from_public_key_der(der).map(Self::P521).map_err(|e| bad(&e))
            }
            other => Err(format!("EC curve {other} is not one model-signing signs with")),
        }
    }

    pub(crate) fn curve_name(&self) -> &'static str {
        match self {
            Self::P256(_) => "P-256",
            Self::P384(_) => "P-384",
            Self::P521(_) => "P-521",
        }
    }

    /// The key hint model-signing records: hex SHA-256 of the key's PEM as Python's
    /// `cryptography` writes it (uncompressed point, 64-column base64, LF endings).
    pub(crate) fn hint(&self) -> String {
        let der = match self {
            Self::P256(k) => k.to_public_key_der(),
            Self::P384(k) => k.to_public_key_der(),
            Self::P521(k) => k.to_public_key_der(),
        };
        // Encoding a valid in-memory key cannot fail; an empty hint matches no bundle.
        der.ok()
            .and_then(|der| pem_rfc7468::encode_string("PUBLIC KEY", LineEnding::LF, der.as_bytes()).ok())
            .map(|pem| hex::encode(Sha256::digest(pem.as_bytes())))
            .unwrap_or_default()
    }

    /// Checks a DER ECDSA signature over `message`, hashed as model-signing hashes
    /// for this curve.
    pub(crate) fn verifies(&self, message: &[u8], der_signature: &[u8]) -> bool {
        match self {
            Self::P256(k) => p256::ecdsa::DerSignature::try_from(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Self::P384(k) => p384::ecdsa::DerSignature::try_from(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Self::P521(k) => p521::ecdsa::DerSignature::try_from(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}
