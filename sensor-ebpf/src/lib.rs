#![no_std]
// The library target exists so that sensor-user can declare a build dependency on this
// crate (aya-build compiles the binary target for the BPF architecture).
