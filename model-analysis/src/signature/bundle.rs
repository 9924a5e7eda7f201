//! The Sigstore bundle model-signing writes as `model.sig`: typed structs over
//! attacker-controlled JSON (no free-form values), base64 fields decoded and capped.
//!
//! Layout (bundle media type v0.3): `verificationMaterial` holds either a `publicKey`
//! hint (key mode) or an `x509CertificateChain` (certificate mode), and `dsseEnvelope`
//! holds the base64 in-toto statement with its signatures.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The only bundle media type model-signing's own verifier accepts.
pub(crate) const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// DSSE payload type of an in-toto statement.
pub(crate) const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// A `model.sig` larger than this is not read: real ones are a few KiB plus 100-odd
/// bytes per file.
pub const MAX_BUNDLE_BYTES: u64 = 4 * 1024 * 1024;
/// DSSE allows several signatures; model-signing writes one.
const MAX_SIGNATURES: usize = 8;
/// Leaf, intermediates and perhaps the root.
const MAX_CHAIN: usize = 8;
/// An X.509 certificate larger than this is not a signing certificate.
const MAX_CERT_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: RawMaterial,
    dsse_envelope: Option<RawEnvelope>,
    message_signature: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    public_key: Option<RawKeyId>,
    x509_certificate_chain: Option<RawChain>,
    certificate: Option<RawCert>,
    tlog_entries: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct RawKeyId {
    hint: Option<String>,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    payload: String,
    payload_type: String,
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize)]
struct RawSignature {
    sig: String,
}

/// How the bundle says it may be verified.
#[derive(Debug)]
pub(crate) enum Material {
    /// Key mode: the hex SHA-256 of the signer's PEM public key, when recorded.
    Key { hint: Option<String> },
    /// Certificate mode: DER certificates, leaf first.
    Certificates(Vec<Vec<u8>>),
}

/// A bundle whose structure is sound; nothing in it is authenticated yet.
#[derive(Debug)]
pub(crate) struct Bundle {
    pub(crate) material: Material,
    pub(crate) payload_type: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) signatures: Vec<Vec<u8>>,
}

/// Parses a bundle. The error is the reason it is malformed, for the verdict.
pub(crate) fn parse(bytes: &[u8]) -> Result<Bundle, String> {
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(format!("the bundle is {} bytes, above the {MAX_BUNDLE_BYTES}-byte cap", bytes.len()));
    }
    let raw: RawBundle =
        serde_json::from_slice(bytes).map_err(|e| format!("the bundle is not a Sigstore bundle: {e}"))?;
    if raw.media_type != BUNDLE_MEDIA_TYPE {
        return Err(format!("bundle media type {:?}, expected {BUNDLE_MEDIA_TYPE}", clip(&raw.media_type)));
    }
    if raw.message_signature.is_some() {
        return Err("the bundle holds a message signature, not a DSSE envelope".into());
    }
    let envelope = raw.dsse_envelope.ok_or("the bundle has no DSSE envelope")?;
    let material = material(raw.verification_material)?;
    if envelope.signatures.is_empty() {
        return Err("the DSSE envelope has no signature".into());
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(format!(
            "the DSSE envelope has {} signatures (at most {MAX_SIGNATURES})",
            envelope.signatures.len()
        ));
    }
    let payload = decode("DSSE payload", &envelope.payload)?;
    let signatures = envelope
        .signatures
        .iter()
        .map(|s| decode("DSSE signature", &s.sig))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Bundle { material, payload_type: envelope.payload_type, payload, signatures })
}

fn material(raw: RawMaterial) -> Result<Material, String> {
    // Key mode writes an empty list; a log entry would be a Sigstore (keyless)
    // signature, which this offline verifier does not judge.
    if raw.tlog_entries.as_ref().is_some_and(|t| !t.is_empty()) && raw.public_key.is_some() {
        return Err(
            "a key-mode bundle with transparency-log entries is not a model-signing key signature".into()
        );
    }
    match (raw.public_key, raw.x509_certificate_chain, raw.certificate) {
        (Some(key), None, None) => Ok(Material::Key { hint: key.hint.filter(|h| !h.is_empty()) }),
        (None, Some(chain), None) => certificates(&chain.certificates),
        (None, None, Some(leaf)) => certificates(std::slice::from_ref(&leaf)),
        (None, None, None) => Err("the bundle names neither a public key nor a certificate".into()),
        _ => Err("the bundle names more than one kind of verification material".into()),
    }
}

fn certificates(raw: &[RawCert]) -> Result<Material, String> {
    if raw.is_empty() || raw.len() > MAX_CHAIN {
        return Err(format!("a certificate chain of {} certificates (1 to {MAX_CHAIN} expected)", raw.len()));
    }
    let mut chain = Vec::with_capacity(raw.len());
    for cert in raw {
        let der = decode("certificate", &cert.raw_bytes)?;
        if der.len() > MAX_CERT_BYTES {
            return Err(format!("a certificate of {} bytes (at most {MAX_CERT_BYTES})", der.len()));
        }
        chain.push(der);
    }
    Ok(Material::Certificates(chain))
}

/// Protobuf JSON writes bytes as standard base64 and reads URL-safe too.
fn decode(what: &str, text: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|e| format!("the {what} is not valid base64: {e}"))
}

/// DSSE pre-authentication encoding: what the signature is over.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len());
    let mut out = Vec::with_capacity(head.len() + payload.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Attacker text quoted in a reason: short.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 80;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_follows_the_dsse_spec() {
        // The example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn a_key_bundle_parses() {
        let json = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial":{"publicKey":{"hint":"ab"},"tlogEntries":[]},
            "dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json",
            "signatures":[{"sig":"AAEC","keyid":""}]}}"#;
        let bundle = parse(json).expect("parses");
        assert!(matches!(bundle.material, Material::Key { hint: Some(ref h) } if h == "ab"));
        assert_eq!(bundle.payload, b"{}");
        assert_eq!(bundle.signatures, vec![vec![0, 1, 2]]);
    }

    #[test]
    fn malformed_bundles_say_why() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not a Sigstore bundle"),
            (b"{\"mediaType\":\"x\",\"verificationMaterial\":{}}", "media type"),
            (br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}}}"#, "no DSSE envelope"),
            (br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"dsseEnvelope":{"payload":"!!","payloadType":"t","signatures":[{"sig":"AA=="}]}}"#, "not valid base64"),
            (br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{},"dsseEnvelope":{"payload":"","payloadType":"t","signatures":[{"sig":"AA=="}]}}"#, "neither a public key"),
            (br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","mediaType":"x"}"#, "duplicate field"),
        ];
        for (json, why) in cases {
            let error = parse(json).expect_err("malformed");
            assert!(error.contains(why), "{error:?} lacks {why:?}");
        }
    }
}
