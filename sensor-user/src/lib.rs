//! modelwatch's userspace: the pipeline stages, in the order data flows and imports
//! point (a stage imports only earlier stages and the `domain` leaf):
//!
//! - [`domain`]: shared vocabulary (file identities, runtimes, drop paths): a leaf;
//! - [`source`]: load the eBPF probes, drain the ring buffers, count loss;
//! - [`enrich`]: who did it (process cache, start-up snapshot, containers, devices);
//! - [`analyze`]: what it is (runtime rules; safe opens; identification, deep analysis
//!   and hashing as jobs for bounded worker pools);
//! - [`policy`]: the paved road: catalog, verdicts (pure judgement);
//! - [`correlate`]: records plus results become typed events (the only publisher);
//! - [`publish`]: sequence numbers, replay, gRPC, stdout.
//!
//! `sensor` wires them; `config` and `cli` sit on top.

pub mod analyze;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod domain;
pub mod enrich;
pub mod policy;
pub mod publish;
pub mod sensor;
pub mod source;
