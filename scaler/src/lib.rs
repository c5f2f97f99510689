//! The `scaler` library: everything the `scaler` binary runs, so tests can run it in-process.
#![forbid(unsafe_code)]
