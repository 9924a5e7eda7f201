//! One program per file; each documents its hook.

mod dedup;
mod exec;
mod exit;
mod file;
mod floor;
mod fork;
mod ioctl;
mod listen;
mod mmap;
mod open;
mod strong;
