//! Published advisories per runtime, with the first version that fixes each, and the
//! version ordering that decides whether one applies.

use std::cmp::Ordering;

use serde::Serialize;

use super::Runtime;

/// One advisory: versions below `fixed_in` are affected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Advisory {
    pub runtime: Runtime,
    pub id: &'static str,
    /// The first fixed version: `0.17.1` (Ollama, vLLM) or a build number `b8146`
    /// (llama.cpp).
    pub fixed_in: &'static str,
    pub summary: &'static str,
}

/// The table. Fix versions were checked against published advisories where the
/// comment says so; the others are from memory of the vendor advisory and must be
/// re-checked before they are relied on.
pub static ADVISORIES: &[Advisory] = &[
    // Verified: NVD / vendor write-ups, "all versions before 0.17.1".
    Advisory {
        runtime: Runtime::Ollama,
        id: "CVE-2026-7482",
        fixed_in: "0.17.1",
        summary: "GGUF loader heap out-of-bounds read reachable from /api/create (\"Bleeding Llama\")",
    },
    // Verified affected range (up to 0.20.2); the vendor published no fix, so 0.20.3
    // is the first version not listed as affected, not a confirmed fix.
    Advisory {
        runtime: Runtime::Ollama,
        id: "CVE-2026-7020",
        fixed_in: "0.20.3",
        summary: "path traversal through the digest in the tensor model transfer handler",
    },
    // Unverified here (from the Wiz "Probllama" advisory): fixed in 0.1.34.
    Advisory {
        runtime: Runtime::Ollama,
        id: "CVE-2024-37032",
        fixed_in: "0.1.34",
        summary: "model digest not validated: path traversal to arbitrary file write on pull",
    },
    // Unverified here: fixed in 0.1.47.
    Advisory {
        runtime: Runtime::Ollama,
        id: "CVE-2024-45436",
        fixed_in: "0.1.47",
        summary: "zip extraction path traversal in extractFromZipFile",
    },
    // Unverified here (GHSA for the vocabulary loader): fixed in b5662.
    Advisory {
        runtime: Runtime::LlamaCpp,
        id: "CVE-2025-49847",
        fixed_in: "b5662",
        summary: "buffer overflow loading a malicious model vocabulary (token piece length)",
    },
    // Unverified here: fixed in b5854.
    Advisory {
        runtime: Runtime::LlamaCpp,
        id: "CVE-2025-53630",
        fixed_in: "b5854",
        summary: "integer overflow in gguf_init_from_file_impl: heap overflow on a crafted GGUF",
    },
    // Verified (GHSA-3p4r-fq3f-q74v): versions before b8146; bypass of CVE-2025-53630.
    Advisory {
        runtime: Runtime::LlamaCpp,
        id: "CVE-2026-27940",
        fixed_in: "b8146",
        summary: "integer overflow in gguf_init_from_file_impl: undersized heap buffer filled by fread",
    },
    // Unverified here: fixed in 0.8.5.
    Advisory {
        runtime: Runtime::Vllm,
        id: "CVE-2025-47277",
        fixed_in: "0.8.5",
        summary: "PyNcclPipe KV-cache transfer unpickles data from any host that can reach it",
    },
    // Unverified here: fixed in 0.11.1.
    Advisory {
        runtime: Runtime::Vllm,
        id: "CVE-2025-62164",
        fixed_in: "0.11.1",
        summary: "prompt embeddings loaded with torch.load: memory corruption from crafted tensors",
    },
];

/// What the table says about one runtime at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AdvisoryCheck {
    /// The version could not be read or ordered: not known to be safe.
    Unknown { reason: String },
    /// The advisories that apply (none: at or above every fix in the table).
    Known { version: String, applicable: Vec<Advisory> },
}

/// Which advisories apply to `runtime` at `version`.
#[must_use]
pub fn advisories_for(runtime: Runtime, version: Option<&str>) -> AdvisoryCheck {
    let Some(version) = version else {
        return AdvisoryCheck::Unknown { reason: format!("the {} version is unknown", runtime.name()) };
    };
    let Some(have) = Version::parse(runtime, version) else {
        return AdvisoryCheck::Unknown {
            reason: format!("{version:?} is not a {} version that can be ordered", runtime.name()),
        };
    };
    let applicable = ADVISORIES
        .iter()
        .filter(|a| a.runtime == runtime)
        .filter(|a| Version::parse(runtime, a.fixed_in).is_some_and(|fixed| have < fixed))
        .copied()
        .collect();
    AdvisoryCheck::Known { version: version.to_owned(), applicable }
}

/// The lowest version with every fix in the table.
#[must_use]
pub fn minimum_safe_version(runtime: Runtime) -> Option<&'static str> {
    ADVISORIES
        .iter()
        .filter(|a| a.runtime == runtime)
        .max_by(|a, b| {
            let (x, y) = (Version::parse(runtime, a.fixed_in), Version::parse(runtime, b.fixed_in));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        })
        .map(|a| a.fixed_in)
}

/// An orderable version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    /// `0.17.1`, `v0.6.3.post1`, `0.11.1rc1`: numbers, then a pre-release (below the
    /// release), the release, or a post-release (above it).
    Release { numbers: [u64; 4], stage: Stage },
    /// llama.cpp's build number (`b5662`): the count of commits on master.
    Build(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Pre,
    Release,
    Post,
}

impl Version {
    fn parse(runtime: Runtime, text: &str) -> Option<Self> {
        let text = text.trim();
        if runtime == Runtime::LlamaCpp {
            let digits = text.strip_prefix('b').unwrap_or(text);
            // Build number 0 is what a build without git records: unknown, not old.
            return digits.parse::<u64>().ok().filter(|&n| n > 0).map(Self::Build);
        }
        let text = text.strip_prefix('v').unwrap_or(text);
        let end = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
        let (dotted, suffix) = text.split_at(end);
        let dotted = dotted.trim_end_matches('.');
        let mut numbers = [0u64; 4];
        let parts: Vec<&str> = dotted.split('.').collect();
        if dotted.is_empty() || parts.len() > numbers.len() {
            return None;
        }
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            *slot = part.parse().ok()?;
        }
        let suffix = suffix.trim_start_matches(['.', '-', '_']).to_ascii_lowercase();
        let stage = if suffix.is_empty() || suffix.starts_with('+') {
            Stage::Release
        } else if suffix.starts_with("post") {
            Stage::Post
        } else {
            // rc, a/alpha, b/beta, dev, and anything else after the numbers.
            Stage::Pre
        };
        Some(Self::Release { numbers, stage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(check: &AdvisoryCheck) -> Vec<&'static str> {
        match check {
            AdvisoryCheck::Known { applicable, .. } => applicable.iter().map(|a| a.id).collect(),
            AdvisoryCheck::Unknown { reason } => panic!("unknown: {reason}"),
        }
    }

    #[test]
    fn versions_order_as_releases_do() {
        let v = |s| Version::parse(Runtime::Ollama, s).expect(s);
        assert!(v("0.9.0") < v("0.17.1") && v("0.17.1") < v("0.17.10"));
        assert!(v("0.17.1-rc2") < v("0.17.1") && v("v0.17.1") == v("0.17.1"));
        assert!(v("0.6.3") < v("0.6.3.post1") && v("0.6.3.post1") < v("0.6.4"));
        assert!(v("0.11.1rc1") < v("0.11.1") && v("0.11.1+cu128") == v("0.11.1"));
        let b = |s| Version::parse(Runtime::LlamaCpp, s).expect(s);
        assert!(b("b999") < b("b5662") && b("8146") == b("b8146"));
        for bad in ["(devel)", "", "abc", "1.2.3.4.5"] {
            assert!(Version::parse(Runtime::Ollama, bad).is_none(), "{bad}");
        }
        assert!(Version::parse(Runtime::LlamaCpp, "0").is_none());
    }

    #[test]
    fn advisories_apply_below_their_fix() {
        assert_eq!(ids(&advisories_for(Runtime::Ollama, Some("0.12.0"))), ["CVE-2026-7482", "CVE-2026-7020"]);
        assert_eq!(ids(&advisories_for(Runtime::Ollama, Some("0.17.1"))), ["CVE-2026-7020"]);
        assert!(ids(&advisories_for(Runtime::Ollama, Some("0.21.0"))).is_empty());
        assert_eq!(ids(&advisories_for(Runtime::Ollama, Some("0.1.30"))).len(), 4);
        assert_eq!(
            ids(&advisories_for(Runtime::LlamaCpp, Some("b5700"))),
            ["CVE-2025-53630", "CVE-2026-27940"]
        );
        assert!(ids(&advisories_for(Runtime::LlamaCpp, Some("b8146"))).is_empty());
        assert!(matches!(advisories_for(Runtime::Ollama, None), AdvisoryCheck::Unknown { .. }));
        assert!(matches!(advisories_for(Runtime::Ollama, Some("(devel)")), AdvisoryCheck::Unknown { .. }));
        assert_eq!(minimum_safe_version(Runtime::Ollama), Some("0.20.3"));
        assert_eq!(minimum_safe_version(Runtime::LlamaCpp), Some("b8146"));
    }
}
