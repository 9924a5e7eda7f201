//! The ABI shared by the eBPF programs (`sensor-ebpf`) and the aggregator (`sensor-user`).
//!
//! Every record is `#[repr(C)]`, built from fixed-width integers with explicit padding, and
//! its size is asserted at compile time: a forgotten padding byte would leak kernel stack
//! or map memory to userspace. Record kinds are stable numbers that are never reused.
#![cfg_attr(not(feature = "user"), no_std)]

pub mod counters;
pub mod events;
pub mod offsets;
pub mod settings;

#[cfg(feature = "user")]
pub mod decode;

pub use events::*;
