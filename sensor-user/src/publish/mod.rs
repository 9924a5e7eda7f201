//! Publishing: the durable, sequence-numbered event log, and its outlets: gRPC (Unix
//! socket, or TCP with mutual TLS), readable lines, JSON lines or OCSF on stdout or in
//! rotated files, OTLP logs to a collector, Prometheus metrics. Every outlet is a reader
//! of the log: none can slow the pipeline or another.

pub mod bom;
pub mod codec;
pub mod filter;
pub mod format;
pub mod grpc;
pub mod jsonl;
pub mod log;
pub mod metrics;
pub mod ocsf;
pub mod otlp;
pub mod settings;
pub mod stdout;
pub mod text;
pub mod transport;

pub use log::{EventLog, Subscription};
