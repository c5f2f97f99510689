//! The `cacheproxy` library: everything the `cacheproxy` binary runs, so tests can run it in-process.
#![forbid(unsafe_code)]
