//! What an analysis says about one file: the format, the metadata each parser could
//! read, and the findings. Serialised as snake_case JSON for the sensor's events and the
//! `modelwatch scan` CLI.

use serde::Serialize;

use crate::chat_template::ChatTemplateInfo;
use crate::container::ContainerInfo;
use crate::finding::{Finding, FindingKind, Severity};
use crate::format::Format;
use crate::gguf::GgufInfo;
use crate::numpy::NumpyInfo;
use crate::pickle::PickleReport;
use crate::provenance::Provenance;
use crate::safetensors::SafetensorsInfo;

/// Everything one analysis learnt about a file.
#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    pub format: Format,
    /// Size of the file in bytes, as given by the caller.
    pub size: u64,
    pub container: Option<ContainerInfo>,
    pub gguf: Option<GgufInfo>,
    pub safetensors: Option<SafetensorsInfo>,
    pub pickle: Option<PickleReport>,
    pub numpy: Option<NumpyInfo>,
    pub provenance: Option<Provenance>,
    pub findings: Vec<Finding>,
}

impl ModelReport {
    pub(crate) fn new(format: Format, size: u64) -> Self {
        Self {
            format,
            size,
            container: None,
            gguf: None,
            safetensors: None,
            pickle: None,
            numpy: None,
            provenance: None,
            findings: Vec::new(),
        }
    }

    /// The highest severity among the findings, if any.
    #[must_use]
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether some finding has this kind.
    #[must_use]
    pub fn has_finding(&self, kind: FindingKind) -> bool {
        self.findings.iter().any(|f| f.kind == kind)
    }

    /// The chat templates found in the metadata (GGUF only, for now).
    #[must_use]
    pub fn chat_templates(&self) -> &[ChatTemplateInfo] {
        self.gguf.as_ref().map_or(&[], |g| g.chat_templates.as_slice())
    }
}
