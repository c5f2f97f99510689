//! Read/write routing for primary + replica pools (issue 6): the statement classifier.

pub mod classify;

pub use classify::{Class, Classification, DEFAULT_VOLATILE_FUNCTIONS, Hint, classify};
