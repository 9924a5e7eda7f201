//! The signed in-toto statement (predicate `https://model_signing/signature/v1.0`) and
//! the manifest it describes: how the model was serialized (files or shards, the hash,
//! symlinks, ignored paths) and one digest per file or shard.
//!
//! The statement's subject is a SHA-256 over the resource digests in the order listed;
//! it must agree with them, as model-signing's own verifier requires.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::bundle::clip;

const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The v0.2 predicate: unsigned ignore rules and a buggy PAE; not accepted.
const PREDICATE_TYPE_V0: &str = "https://model_signing/Digests/v0.1";
/// More resources than any model needs: a bound on memory and on the walk.
pub const MAX_RESOURCES: usize = 100_000;
/// Ignore rules beyond this are not a signer's choice.
const MAX_IGNORE_PATHS: usize = 1024;
/// Largest shard size accepted: a JSON number (a double) must hold it exactly.
const MAX_SHARD_SIZE: f64 = 9_007_199_254_740_992.0;

#[derive(Deserialize)]
struct RawStatement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<RawSubject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: RawPredicate,
}

#[derive(Deserialize)]
struct RawSubject {
    name: String,
    digest: RawSubjectDigest,
}

#[derive(Deserialize)]
struct RawSubjectDigest {
    sha256: String,
}

#[derive(Deserialize)]
struct RawPredicate {
    serialization: RawSerialization,
    resources: Vec<RawResource>,
}

#[derive(Deserialize)]
struct RawSerialization {
    method: String,
    hash_type: String,
    allow_symlinks: bool,
    /// A protobuf `Struct` number: a double, `1000000000.0` as often as not.
    shard_size: Option<f64>,
    #[serde(default)]
    ignore_paths: Vec<String>,
}

#[derive(Deserialize)]
struct RawResource {
    name: String,
    algorithm: String,
    digest: String,
}

/// The hashes model-signing serializes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    Sha256,
    Blake2b,
    Blake3,
}

impl HashKind {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "blake2b" => Some(Self::Blake2b),
            "blake3" => Some(Self::Blake3),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Blake2b => "blake2b",
            Self::Blake3 => "blake3",
        }
    }

    pub(crate) fn digest_len(self) -> usize {
        match self {
            Self::Sha256 | Self::Blake3 => 32,
            Self::Blake2b => 64,
        }
    }
}

/// Whole files, or files cut into shards of `size` bytes (the last one shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Files,
    Shards { size: u64 },
}

/// What one digest covers: a file (path relative to the model, `.` for a single-file
/// model), or the byte range `start..end` of one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ItemKey {
    pub(crate) path: String,
    pub(crate) range: Option<(u64, u64)>,
}

/// The authenticated manifest.
#[derive(Debug)]
pub(crate) struct Manifest {
    pub(crate) model_name: String,
    pub(crate) method: Method,
    pub(crate) hash: HashKind,
    pub(crate) allow_symlinks: bool,
    /// Normalized relative paths; a file at or below one is not part of the model.
    pub(crate) ignore: Vec<String>,
    pub(crate) items: BTreeMap<ItemKey, Vec<u8>>,
}

impl Manifest {
    /// Whether the model-relative path `rel` is ignored (it is, or is below, an
    /// ignore rule: whole components, as pathlib's `is_relative_to` compares).
    pub(crate) fn ignores(&self, rel: &str) -> bool {
        self.ignore.iter().any(|rule| {
            rel.strip_prefix(rule.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// Reads the statement. The error is the reason the (authentic) payload is unusable.
pub(crate) fn parse(payload: &[u8]) -> Result<Manifest, String> {
    let raw: RawStatement = serde_json::from_slice(payload).map_err(|e| {
        if std::str::from_utf8(payload).is_ok_and(|s| s.contains(PREDICATE_TYPE_V0)) {
            format!("a pre-1.0 model-signing statement ({PREDICATE_TYPE_V0}): not supported")
        } else {
            format!("the signed statement is not a model-signing v1.0 statement: {e}")
        }
    })?;
    if raw.kind != STATEMENT_TYPE {
        return Err(format!("statement type {:?}, expected {STATEMENT_TYPE}", clip(&raw.kind)));
    }
    if raw.predicate_type != PREDICATE_TYPE {
        return Err(format!("predicate type {:?}, expected {PREDICATE_TYPE}", clip(&raw.predicate_type)));
    }
    let [subject] = <[RawSubject; 1]>::try_from(raw.subject)
        .map_err(|s| format!("the statement has {} subjects, expected one", s.len()))?;
    let serialization = raw.predicate.serialization;
    let hash = HashKind::from_name(&serialization.hash_type)
        .ok_or_else(|| format!("unsupported hash {:?}", clip(&serialization.hash_type)))?;
    let method = method(&serialization)?;
    let resources = raw.predicate.resources;
    if resources.is_empty() {
        return Err("the signature covers no file".into());
    }
    if resources.len() > MAX_RESOURCES {
        return Err(format!("{} resources, above the cap of {MAX_RESOURCES}", resources.len()));
    }
    let expected_algorithm = match method {
        Method::Files => hash.name().to_owned(),
        Method::Shards { size } => format!("{}-sharded-{size}", hash.name()),
    };
    let mut root = Sha256::new();
    let mut items = BTreeMap::new();
    for resource in &resources {
        if resource.algorithm != expected_algorithm {
            return Err(format!(
                "resource {:?} is hashed with {:?}, the serialization says {expected_algorithm}",
                clip(&resource.name),
                clip(&resource.algorithm)
            ));
        }
        let digest =
            hex::decode(&resource.digest).ok().filter(|d| d.len() == hash.digest_len()).ok_or_else(|| {
                format!("resource {:?} has a malformed {} digest", clip(&resource.name), hash.name())
            })?;
        root.update(&digest);
        let key = item_key(&resource.name, method)?;
        if items.insert(key, digest).is_some() {
            return Err(format!("resource {:?} is listed twice", clip(&resource.name)));
        }
    }
    let subject_digest =
        hex::decode(&subject.digest.sha256).map_err(|_| "the subject digest is not hex".to_owned())?;
    if subject_digest != root.finalize().as_slice() {
        return Err(
            "the subject digest does not match the resources listed: the manifest is inconsistent".into()
        );
    }
    let ignore = ignore_rules(&serialization.ignore_paths)?;
    Ok(Manifest {
        model_name: subject.name,
        method,
        hash,
        allow_symlinks: serialization.allow_symlinks,
        ignore,
        items,
    })
}

fn method(serialization: &RawSerialization) -> Result<Method, String> {
    match (serialization.method.as_str(), serialization.shard_size) {
        ("files", _) => Ok(Method::Files),
        ("shards", Some(size)) if size.fract() == 0.0 && (1.0..=MAX_SHARD_SIZE).contains(&size) =>
        {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "an integer in 1..=2^53, checked"
            )]
            Ok(Method::Shards { size: size as u64 })
        }
        ("shards", size) => Err(format!("shard serialization with shard size {size:?}")),
        (other, _) => Err(format!("unknown serialization method {:?}", clip(other))),
    }
}

fn item_key(name: &str, method: Method) -> Result<ItemKey, String> {
    let Method::Shards { size } = method else {
        return Ok(ItemKey { path: normalize(name)?, range: None });
    };
    let parts: Vec<&str> = name.split(':').collect();
    let [path, start, end] = parts[..] else {
        return Err(format!("shard name {:?} is not path:start:end", clip(name)));
    };
    let bounds = start.parse::<u64>().ok().zip(end.parse::<u64>().ok());
    match bounds {
        Some((start, end)) if start < end && end - start <= size => {
            Ok(ItemKey { path: normalize(path)?, range: Some((start, end)) })
        }
        _ => Err(format!("shard name {:?} has a bad range", clip(name))),
    }
}

/// A model-relative POSIX path as pathlib normalizes it (`a//b` and `./a/` are `a/b`
/// and `a`; the model itself is `.`). Absolute paths and `..` cannot name a file of
/// the model.
fn normalize(name: &str) -> Result<String, String> {
    if name.starts_with('/') {
        return Err(format!("resource {:?} is an absolute path", clip(name)));
    }
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(format!("resource {:?} climbs out of the model", clip(name)));
    }
    Ok(if parts.is_empty() { ".".to_owned() } else { parts.join("/") })
}

/// Ignore rules as the signer recorded them, normalized. Rules that cannot name a
/// path inside the model (absolute, climbing) never match, as in model-signing; a
/// rule naming the model itself would ignore everything and is refused.
fn ignore_rules(raw: &[String]) -> Result<Vec<String>, String> {
    if raw.len() > MAX_IGNORE_PATHS {
        return Err(format!("{} ignore paths, above the cap of {MAX_IGNORE_PATHS}", raw.len()));
    }
    let mut rules = Vec::new();
    for rule in raw {
        match normalize(rule) {
            Ok(path) if path == "." => return Err("an ignore path covers the whole model".into()),
            Ok(path) => rules.push(path),
            Err(_) => {}
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(resources: &str, serialization: &str, subject: &str) -> Vec<u8> {
        format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"m","digest":{{"sha256":"{subject}"}}}}],
            "predicateType":"https://model_signing/signature/v1.0",
            "predicate":{{"serialization":{serialization},"resources":[{resources}]}}}}"#
        )
        .into_bytes()
    }

    fn root_of(digests: &[&[u8]]) -> String {
        let mut h = Sha256::new();
        for d in digests {
            h.update(d);
        }
        hex::encode(h.finalize())
    }

    #[test]
    fn a_files_manifest_parses_and_checks_its_root_digest() {
        let d = [7u8; 32];
        let res = format!(r#"{{"name":"./a//b","algorithm":"sha256","digest":"{}"}}"#, hex::encode(d));
        let ser = r#"{"method":"files","hash_type":"sha256","allow_symlinks":false,"ignore_paths":[".git","/abs","../x"]}"#;
        let manifest = parse(&statement(&res, ser, &root_of(&[&d]))).expect("parses");
        assert_eq!(manifest.method, Method::Files);
        assert_eq!(manifest.ignore, vec![".git".to_owned()]);
        assert!(manifest.ignores(".git/HEAD") && manifest.ignores(".git") && !manifest.ignores(".gitx"));
        assert!(manifest.items.contains_key(&ItemKey { path: "a/b".into(), range: None }));
        let error = parse(&statement(&res, ser, &root_of(&[&[8u8; 32]]))).expect_err("wrong root");
        assert!(error.contains("inconsistent"), "{error}");
    }

    #[test]
    fn shards_take_a_float_size_and_check_ranges() {
        let d = [1u8; 32];
        let ser = r#"{"method":"shards","hash_type":"sha256","allow_symlinks":false,"shard_size":1000.0}"#;
        let res = format!(
            r#"{{"name":"w.bin:1000:1500","algorithm":"sha256-sharded-1000","digest":"{}"}}"#,
            hex::encode(d)
        );
        let manifest = parse(&statement(&res, ser, &root_of(&[&d]))).expect("parses");
        assert_eq!(manifest.method, Method::Shards { size: 1000 });
        for bad in ["w.bin:0:1001", "w.bin:5:5", "w.bin:x:9", "a:b:0:1", "w.bin:0"] {
            let res = format!(
                r#"{{"name":"{bad}","algorithm":"sha256-sharded-1000","digest":"{}"}}"#,
                hex::encode(d)
            );
            assert!(parse(&statement(&res, ser, &root_of(&[&d]))).is_err(), "{bad}");
        }
        for size in ["0", "1.5", "-1", "1e300"] {
            let ser = format!(
                r#"{{"method":"shards","hash_type":"sha256","allow_symlinks":false,"shard_size":{size}}}"#
            );
            assert!(parse(&statement(&res, &ser, &root_of(&[&d]))).is_err(), "{size}");
        }
    }

    #[test]
    fn unsafe_or_inconsistent_resources_are_refused() {
        let d = [1u8; 32];
        let ser = r#"{"method":"files","hash_type":"sha256","allow_symlinks":false}"#;
        for (name, algorithm, digest) in [
            ("/etc/passwd", "sha256", hex::encode(d)),
            ("a/../../b", "sha256", hex::encode(d)),
            ("a", "blake2b", hex::encode(d)),
            ("a", "sha256", "zz".to_owned()),
            ("a", "sha256", hex::encode([1u8; 31])),
        ] {
            let res = format!(r#"{{"name":"{name}","algorithm":"{algorithm}","digest":"{digest}"}}"#);
            assert!(parse(&statement(&res, ser, &root_of(&[&d]))).is_err(), "{name} {algorithm}");
        }
        let twice = format!(
            r#"{{"name":"a","algorithm":"sha256","digest":"{0}"}},{{"name":"./a","algorithm":"sha256","digest":"{0}"}}"#,
            hex::encode(d)
        );
        assert!(parse(&statement(&twice, ser, &root_of(&[&d, &d]))).expect_err("dup").contains("twice"));
        let everything =
            r#"{"method":"files","hash_type":"sha256","allow_symlinks":false,"ignore_paths":["./"]}"#;
        let res = format!(r#"{{"name":"a","algorithm":"sha256","digest":"{}"}}"#, hex::encode(d));
        assert!(
            parse(&statement(&res, everything, &root_of(&[&d]))).expect_err("all").contains("whole model")
        );
        assert!(parse(&statement("", ser, &root_of(&[]))).expect_err("empty").contains("no file"));
    }
}
