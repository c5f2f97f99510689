//! Read/write routing for primary + replica pools (issue 6): the statement classifier,
//! the per-host topology and its health monitor, and host groups.

pub mod classify;
pub mod group;
pub mod monitor;
pub mod topology;

pub use classify::{Class, Classification, DEFAULT_VOLATILE_FUNCTIONS, Hint, classify};
pub use group::HostGroup;
pub use topology::{Role, Topology, Want};
