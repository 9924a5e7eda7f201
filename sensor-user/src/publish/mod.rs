//! Publishing: the sequence-numbered event log, and its outlets (gRPC on a Unix socket,
//! readable lines or JSON lines on stdout).

pub mod bom;
pub mod format;
pub mod grpc;
pub mod log;
pub mod stdout;
pub mod text;

pub use log::{EventLog, Subscription};
