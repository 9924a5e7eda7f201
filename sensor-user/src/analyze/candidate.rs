//! The kernel's candidate rule, for files userspace finds by itself (the start-up
//! snapshot of what runtimes already mapped): large, model-named or model-store blobs.

use std::path::Path;

/// What makes a regular file worth identifying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateRule {
    pub size_threshold: u64,
    /// Lower case, without the dot.
    pub extensions: Vec<String>,
}

impl CandidateRule {
    #[must_use]
    pub fn matches(&self, path: &Path, size: u64) -> bool {
        if size >= self.size_threshold {
            return true;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_store_blob(path, name) {
            return true;
        }
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|ext| self.extensions.iter().any(|watched| watched.eq_ignore_ascii_case(ext)))
    }
}

/// Ollama `sha256-<64 hex>`, or Hugging Face `blobs/<64 hex>`.
fn is_store_blob(path: &Path, name: &str) -> bool {
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if name.strip_prefix("sha256-").is_some_and(hex) {
        return true;
    }
    hex(name) && path.parent().and_then(Path::file_name).is_some_and(|dir| dir == "blobs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_rule_as_the_kernel() {
        let rule = CandidateRule { size_threshold: 64 << 20, extensions: vec!["gguf".into(), "pt".into()] };
        let digest = "a".repeat(64);
        assert!(rule.matches(Path::new("/x/model.GGUF"), 10));
        assert!(rule.matches(Path::new("/x/big.img"), 64 << 20));
        assert!(rule.matches(Path::new(&format!("/m/blobs/sha256-{digest}")), 10));
        assert!(rule.matches(Path::new(&format!("/hub/models--a--b/blobs/{digest}")), 10));
        assert!(!rule.matches(Path::new(&format!("/tmp/{digest}")), 10));
        assert!(!rule.matches(Path::new("/usr/lib/libc.so.6"), 2 << 20));
    }
}
