//! What a model file is, read by content and never executed: format sniffing, header
//! metadata, pickle opcode analysis. Every parser here reads attacker-controlled bytes
//! as root: lengths and counts are capped, nothing allocates from an unchecked length.
#![forbid(unsafe_code)]

pub mod format;

pub use format::{Format, sniff};
