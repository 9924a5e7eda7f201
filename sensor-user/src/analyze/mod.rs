//! Analysis: what a process and a file are. Runtime classification from exe/argv;
//! opening reported files safely; identification, deep analysis and hashing as jobs
//! for bounded worker pools (the parsers live in the `model-analysis` crate). This
//! stage publishes nothing: it returns results to the correlation stage.

pub mod access;
pub mod candidate;
pub mod pool;
pub mod runtime;
pub mod scan;
pub mod sweep;
pub mod work;
