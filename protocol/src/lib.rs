//! Wire codecs: PostgreSQL v3 (`pg`) and RESP2/RESP3 (`resp`). Raw bytes stop here.
//!
//! Layering: bytes → frame (header-only split, zero copy) → borrowed message view
//! (bounds-checked, parsed only when the daemon must look inside) → encoders for the
//! few messages a daemon originates. Forwarded bytes are never re-encoded.
#![forbid(unsafe_code)]

pub mod error;
pub mod pg;
pub mod resp;

pub use error::ProtocolError;
