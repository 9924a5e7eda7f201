//! The paved road: the organisation's catalog of approved models and its policy, and
//! the verdicts they give model files and inference sessions. Pure judgement: this
//! stage reads facts and a catalog and returns verdicts; correlation publishes them.
//! Stage order: after analysis (it judges what analysis found), before correlation.

pub mod catalog;
pub mod licenses;
pub mod reload;
pub mod trust;
pub mod verdict;

pub use catalog::{Catalog, CatalogError, CatalogProblem, ListenerExposure};
pub use trust::Trust;
pub use verdict::{
    Judgement, ModelFacts, Rule, SessionFacts, SignatureFact, VerdictKind, judge_model, judge_session,
};

/// A catalog in force, with the signers it trusts.
#[derive(Debug, Default)]
pub struct Policy {
    pub catalog: Catalog,
    pub trust: Trust,
}

impl Policy {
    /// Loads a catalog file and its signer keys.
    ///
    /// # Errors
    /// The file, or a key it names, is unreadable or invalid.
    pub fn load(path: &std::path::Path) -> Result<Self, CatalogError> {
        let catalog = Catalog::load(path)?;
        let trust = Trust::load(&catalog)?;
        Ok(Self { catalog, trust })
    }

    /// The built-in defaults: no catalog, every model unapproved, license and exposure
    /// rules in force.
    #[must_use]
    pub fn defaults() -> Self {
        Self::default()
    }

    /// Judges a model file.
    #[must_use]
    pub fn judge_model(&self, facts: &ModelFacts<'_>) -> Judgement {
        judge_model(facts, &self.catalog, &|signer| self.trust.entries_of(signer))
    }

    #[must_use]
    pub fn judge_session(&self, facts: &SessionFacts<'_>) -> Judgement {
        judge_session(facts, &self.catalog)
    }
}

/// A new catalog for the pipeline, or why one was refused (the old one stays).
#[derive(Debug)]
pub enum PolicyUpdate {
    Loaded(std::sync::Arc<Policy>),
    Rejected { path: std::path::PathBuf, reason: String },
}
