//! The signers a catalog trusts: the public keys its entries list and the CAs of its
//! policy, loaded into a `model_analysis` trust store, and which entries each key
//! speaks for.

use std::collections::HashMap;

use model_analysis::{Root, signature::TrustStore};

use super::catalog::{Catalog, CatalogError, CatalogProblem};

/// Keys and CAs, and the catalog entries each key fingerprint belongs to.
#[derive(Debug, Default)]
pub struct Trust {
    pub store: std::sync::Arc<TrustStore>,
    entries: HashMap<String, Vec<String>>,
    /// Fingerprints of certificates' CAs count for every entry that lists no key.
    has_cas: bool,
}

impl Trust {
    /// Reads every key and CA the catalog names.
    ///
    /// # Errors
    /// A key or CA file is missing or not a usable key: named with its catalog key.
    pub fn load(catalog: &Catalog) -> Result<Self, CatalogError> {
        let mut store = TrustStore::new();
        let mut entries: HashMap<String, Vec<String>> = HashMap::new();
        let mut has_cas = false;
        let mut problems = Vec::new();
        let root = Root::host().map_err(|source| CatalogError::Read {
            path: catalog.path.clone().unwrap_or_default(),
            source,
        })?;
        for (i, model) in catalog.models.iter().enumerate() {
            for (j, key) in model.signers.iter().enumerate() {
                match store.add_public_key_file(&root, key) {
                    Ok(fingerprints) => {
                        for fingerprint in fingerprints {
                            entries.entry(fingerprint).or_default().push(model.name.clone());
                        }
                    }
                    Err(error) => problems.push(CatalogProblem {
                        line: None,
                        key: format!("model[{i}].signers[{j}]"),
                        message: format!("{}: {error}", key.display()),
                    }),
                }
            }
        }
        for (i, ca) in catalog.policy.signer_cas.iter().enumerate() {
            match store.add_ca_file(&root, ca) {
                Ok(_) => has_cas = true,
                Err(error) => problems.push(CatalogProblem {
                    line: None,
                    key: format!("policy.signer_cas[{i}]"),
                    message: format!("{}: {error}", ca.display()),
                }),
            }
        }
        if problems.is_empty() {
            Ok(Self { store: std::sync::Arc::new(store), entries, has_cas })
        } else {
            Err(CatalogError::Invalid { path: catalog.path.clone().unwrap_or_default(), problems })
        }
    }

    /// Whether any signer is configured (signatures are not checked otherwise).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The catalog entries a verified signer speaks for: a listed key's entries, or,
    /// for a certificate chaining to a configured CA, "a configured CA".
    #[must_use]
    pub fn entries_of(&self, signer: &str) -> Vec<String> {
        match self.entries.get(signer) {
            Some(entries) => entries.clone(),
            None if self.has_cas && signer.starts_with("cert:") => vec!["a configured CA".to_owned()],
            None => Vec::new(),
        }
    }
}
