//! Certificate mode: the bundle's leaf must chain to a configured CA and be valid for
//! code signing. Path building and every X.509 rule are webpki's; it checks signatures
//! through the RustCrypto ECDSA verifiers below (no other crypto backend is built).
//!
//! The chain is judged at the leaf's `notBefore`, as model-signing's own verifier does:
//! a key-mode style signature carries no trusted timestamp, so "when it was signed" is
//! only known to be inside the leaf's validity, and an expired leaf does not void the
//! models it signed.

use der::{Decode as _, Encode as _};
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm, TrustAnchor,
    UnixTime, alg_id,
};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use webpki::KeyUsage;
use x509_cert::Certificate;
use x509_cert::name::Name;

use super::keys::EcKey;

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), the OID's content octets.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

#[derive(Clone, Copy, Debug)]
enum Curve {
    P256,
    P384,
    P521,
}

#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// One (curve, hash) pair webpki may meet in a certificate signature.
#[derive(Debug)]
struct Ecdsa {
    key: AlgorithmIdentifier,
    signature: AlgorithmIdentifier,
    curve: Curve,
    hash: Hash,
}

impl SignatureVerificationAlgorithm for Ecdsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let prehash = match self.hash {
            Hash::Sha256 => Sha256::digest(message).to_vec(),
            Hash::Sha384 => Sha384::digest(message).to_vec(),
            Hash::Sha512 => Sha512::digest(message).to_vec(),
        };
        let ok = match self.curve {
            Curve::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).is_ok_and(|k| {
                p256::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok())
            }),
            Curve::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(public_key).is_ok_and(|k| {
                p384::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok())
            }),
            Curve::P521 => p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).is_ok_and(|k| {
                p521::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok())
            }),
        };
        if ok { Ok(()) } else { Err(InvalidSignature) }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.key
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature
    }
}

macro_rules! ecdsa {
    ($name:ident, $key:ident, $sig:ident, $curve:ident, $hash:ident) => {
        static $name: Ecdsa =
            Ecdsa { key: alg_id::$key, signature: alg_id::$sig, curve: Curve::$curve, hash: Hash::$hash };
    };
}
ecdsa!(P256_SHA256, ECDSA_P256, ECDSA_SHA256, P256, Sha256);
ecdsa!(P256_SHA384, ECDSA_P256, ECDSA_SHA384, P256, Sha384);
ecdsa!(P384_SHA256, ECDSA_P384, ECDSA_SHA256, P384, Sha256);
ecdsa!(P384_SHA384, ECDSA_P384, ECDSA_SHA384, P384, Sha384);
ecdsa!(P521_SHA256, ECDSA_P521, ECDSA_SHA256, P521, Sha256);
ecdsa!(P521_SHA384, ECDSA_P521, ECDSA_SHA384, P521, Sha384);
ecdsa!(P521_SHA512, ECDSA_P521, ECDSA_SHA512, P521, Sha512);

static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] =
    &[&P256_SHA256, &P256_SHA384, &P384_SHA256, &P384_SHA384, &P521_SHA256, &P521_SHA384, &P521_SHA512];

/// A configured certificate authority.
#[derive(Debug)]
pub(crate) struct TrustedCa {
    anchor: TrustAnchor<'static>,
    name: Name,
    subject: String,
}

impl TrustedCa {
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, String> {
        let cert = Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let anchor = webpki::anchor_from_trusted_cert(&CertificateDer::from(der))
            .map_err(|e| format!("not usable as a trust anchor: {e}"))?
            .to_owned();
        let name = cert.tbs_certificate().subject().clone();
        Ok(Self { anchor, subject: name.to_string(), name })
    }
}

/// What the bundle's certificate chain comes to.
pub(crate) enum ChainOutcome {
    Trusted {
        key: Box<EcKey>,
        subject: String,
        issuer: String,
        fingerprint: String,
    },
    /// Sound, but no configured CA issued it.
    Untrusted(String),
    Invalid(String),
}

/// Checks `chain` (DER, leaf first) against `cas`.
pub(crate) fn check_chain(chain: &[Vec<u8>], cas: &[TrustedCa]) -> ChainOutcome {
    let Some((leaf_der, rest)) = chain.split_first() else {
        return ChainOutcome::Invalid("an empty certificate chain".into());
    };
    let leaf = match Certificate::from_der(leaf_der) {
        Ok(leaf) => leaf,
        Err(e) => return ChainOutcome::Invalid(format!("the signing certificate is malformed: {e}")),
    };
    let tbs = leaf.tbs_certificate();
    let key = match tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| e.to_string())
        .and_then(|d| EcKey::from_spki_der(&d))
    {
        Ok(key) => key,
        Err(why) => return ChainOutcome::Invalid(format!("the signing certificate's key: {why}")),
    };
    let subject = tbs.subject().to_string();
    if cas.is_empty() {
        return ChainOutcome::Untrusted(format!("certificate {subject:?}: no CA is configured"));
    }
    let signed_at = UnixTime::since_unix_epoch(tbs.validity().not_before.to_unix_duration());
    let ee_der = CertificateDer::from(leaf_der.as_slice());
    let ee = match webpki::EndEntityCert::try_from(&ee_der) {
        Ok(ee) => ee,
        Err(e) => return ChainOutcome::Invalid(format!("the signing certificate is unusable: {e}")),
    };
    let intermediates: Vec<CertificateDer<'_>> =
        rest.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let anchors: Vec<TrustAnchor<'_>> = cas.iter().map(|ca| ca.anchor.clone()).collect();
    let verified = ee.verify_for_usage(
        ALGORITHMS,
        &anchors,
        &intermediates,
        signed_at,
        KeyUsage::required(EKU_CODE_SIGNING),
        None,
        None,
    );
    match verified {
        Ok(path) => {
            let anchor_subject = path.anchor().subject.as_ref();
            let issuer = cas
                .iter()
                .find(|ca| ca.anchor.subject.as_ref() == anchor_subject)
                .map_or_else(String::new, |ca| ca.subject.clone());
            let fingerprint = hex::encode(Sha256::digest(leaf_der));
            ChainOutcome::Trusted { key: Box::new(key), subject, issuer, fingerprint }
        }
        // webpki reports the deepest failure of the paths it tried: when no
        // certificate of the chain even names a configured CA as its issuer, whatever
        // went wrong, the signer is simply not one we know.
        Err(_) if !names_a_configured_ca(chain, cas) => {
            ChainOutcome::Untrusted(format!("certificate {subject:?} does not chain to a configured CA"))
        }
        Err(e) => {
            ChainOutcome::Invalid(format!("certificate {subject:?} is not valid for code signing: {e}"))
        }
    }
}

/// Whether some certificate of `chain` says a configured CA issued it.
fn names_a_configured_ca(chain: &[Vec<u8>], cas: &[TrustedCa]) -> bool {
    chain.iter().filter_map(|der| Certificate::from_der(der).ok()).any(|cert| {
        let issuer = cert.tbs_certificate().issuer();
        cas.iter().any(|ca| &ca.name == issuer)
    })
}
