//! Shared helpers for the micro-benchmarks and the end-to-end comparison harness.
#![forbid(unsafe_code)]
