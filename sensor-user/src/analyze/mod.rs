//! Analysis: what a process and a file are. Runtime classification from exe/argv;
//! model identification by content (the parsers live in the `model-analysis` crate).

pub mod candidate;
pub mod hash;
pub mod identify;
pub mod model;
pub mod runtime;
pub mod scan;
