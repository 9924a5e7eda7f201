//! Malformed bundles and statements, generated: every one gets a verdict (or a parse
//! error), quickly, and nothing panics.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).expect("fits")
    }
}

fn statement() -> String {
    let digest = [3u8; 32];
    let root = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(digest));
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"m","digest":{{"sha256":"{root}"}}}}],"predicateType":"https://model_signing/signature/v1.0","predicate":{{"serialization":{{"method":"shards","hash_type":"sha256","allow_symlinks":false,"shard_size":1000,"ignore_paths":[".git"]}},"resources":[{{"name":"w:0:10","algorithm":"sha256-sharded-1000","digest":"{}"}}]}}}}"#,
        hex::encode(digest)
    )
}

fn bundle(payload: &str) -> String {
    format!(
        r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{"publicKey":{{"hint":"00"}},"tlogEntries":[]}},"dsseEnvelope":{{"payload":"{}","payloadType":"application/vnd.in-toto+json","signatures":[{{"sig":"MEUCIQA=","keyid":""}}]}}}}"#,
        STANDARD.encode(payload)
    )
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => {
                let alphabet = b"{}[]\":,0123456789-.eE \\x";
                bytes[at] = alphabet[rng.below(alphabet.len())];
            }
            1 => bytes.truncate(at),
            2 => {
                bytes.remove(at);
            }
            3 => {
                let span = rng.below(64).min(bytes.len() - at);
                let copy = bytes[at..at + span].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => bytes[at] ^= 1 << rng.below(8),
        }
    }
    bytes
}

#[test]
fn the_generated_statement_is_valid() {
    let manifest = statement::parse(statement().as_bytes()).expect("the seed parses");
    assert_eq!(manifest.method, Method::Shards { size: 1000 });
}

#[test]
fn mutated_bundles_always_get_a_verdict() {
    let trust = TrustStore::new();
    let seed = bundle(&statement());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    for _ in 0..20_000 {
        let input = mutate(&mut rng, seed.as_bytes());
        match authenticate(&input, &trust) {
            Err(SignatureVerdict::Invalid { reason } | SignatureVerdict::UnknownSigner { reason }) => {
                assert!(!reason.is_empty());
            }
            other => panic!("a forged bundle authenticated: {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn mutated_statements_parse_or_fail_cleanly() {
    let seed = statement();
    let mut rng = Rng(7);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let input = mutate(&mut rng, seed.as_bytes());
        if let Ok(manifest) = statement::parse(&input) {
            accepted += 1;
            assert!(!manifest.items.is_empty());
        }
    }
    // Most mutations break it; some (in names, say) leave a valid statement.
    assert!(accepted < 20_000);
}

#[test]
fn hostile_shapes_are_refused() {
    let trust = TrustStore::new();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let many_sigs = bundle("{}")
        .replace(r#"[{"sig":"MEUCIQA=","keyid":""}]"#, &format!("[{}]", [r#"{"sig":"AA=="}"#; 9].join(",")));
    let too_big = vec![b' '; usize::try_from(MAX_BUNDLE_BYTES).expect("fits") + 1];
    let wrong_type = bundle("{}").replace("application/vnd.in-toto+json", "text/plain");
    let tlog = bundle("{}").replace(r#""tlogEntries":[]"#, r#""tlogEntries":[{}]"#);
    for (input, why) in [
        (deep.as_bytes(), "not a Sigstore bundle"),
        (many_sigs.as_bytes(), "9 signatures"),
        (&too_big[..], "cap"),
        (wrong_type.as_bytes(), "payload type"),
        (tlog.as_bytes(), "transparency-log"),
    ] {
        match authenticate(input, &trust) {
            Err(SignatureVerdict::Invalid { reason }) => {
                assert!(reason.contains(why), "{reason:?} lacks {why:?}");
            }
            other => panic!("{why}: {other:?}"),
        }
    }
    // Well formed and hinted, but the key is not configured.
    assert!(matches!(
        authenticate(bundle(&statement()).as_bytes(), &trust),
        Err(SignatureVerdict::UnknownSigner { .. })
    ));
}
