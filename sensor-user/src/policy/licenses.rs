//! Licenses that forbid commercial use: the default `denied_licenses`. SPDX ids, compared
//! without regard to case (model files spell them as they like).

/// Every Creative Commons NonCommercial license in the SPDX list.
pub const NON_COMMERCIAL: [&str; 24] = [
    "cc-by-nc-1.0",
    "cc-by-nc-2.0",
    "cc-by-nc-2.5",
    "cc-by-nc-3.0",
    "cc-by-nc-3.0-de",
    "cc-by-nc-4.0",
    "cc-by-nc-nd-1.0",
    "cc-by-nc-nd-2.0",
    "cc-by-nc-nd-2.5",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-3.0-de",
    "cc-by-nc-nd-3.0-igo",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-1.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-2.0-de",
    "cc-by-nc-sa-2.0-fr",
    "cc-by-nc-sa-2.0-uk",
    "cc-by-nc-sa-2.5",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-3.0-de",
    "cc-by-nc-sa-3.0-igo",
    "cc-by-nc-sa-4.0",
    "cc-by-nc",
];

/// Whether `license` (as a file declares it) is one of `denied`.
#[must_use]
pub fn is_denied(license: &str, denied: &[String]) -> bool {
    let license = license.trim();
    !license.is_empty() && denied.iter().any(|d| d.eq_ignore_ascii_case(license))
}
