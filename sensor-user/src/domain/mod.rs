//! The sensor's shared vocabulary: plain types every stage speaks (file identities,
//! runtimes, drop paths). A leaf: it imports no stage, so no stage needs another to
//! name a thing.

pub mod drops;
pub mod event_kind;
pub mod file;
pub mod runtime;

pub use drops::{Drop, DropCounters};
pub use file::FileKey;
pub use runtime::{Classification, Role, Runtime};
