//! modelwatch's public API, `modelwatch.v1`, generated from `modelwatch/v1/*.proto` at
//! build time. JSON follows the proto3 JSON mapping (with proto field names), which is
//! what `--output json` prints.

#[allow(clippy::all, clippy::pedantic, reason = "generated code")]
pub mod v1 {
    tonic::include_proto!("modelwatch.v1");
    include!(concat!(env!("OUT_DIR"), "/modelwatch.v1.serde.rs"));
}

/// The compiled descriptors of `modelwatch.v1` (for reflection and for tests that tie
/// tables to the schema).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
