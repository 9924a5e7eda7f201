//! modelwatch's userspace: the pipeline stages in order.
//!
//! - [`source`]: load the eBPF probes, drain the ring buffer, count loss;
//! - [`enrich`]: who did it (process cache, containers, devices);
//! - [`analyze`]: what it is (runtime classification, model identification);
//! - [`correlate`]: records plus knowledge become typed events;
//! - [`publish`]: sequence numbers, replay, gRPC, stdout.

pub mod analyze;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod enrich;
pub mod publish;
pub mod sensor;
pub mod source;
