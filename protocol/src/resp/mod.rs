//! RESP2/RESP3 wire protocol: resumable scanning, client requests, reply encoders, owned values.
//!
//! - [`scan`]: [`RespScanner`] finds value boundaries across reads so replies stream through;
//!   [`RespFramer`] is the whole-frame convenience on top.
//! - [`request`] (+ `inline`): [`RequestDecoder`] turns client bytes into [`Request`]s, with
//!   Redis' own protocol-error texts.
//! - [`reply`]: encoders for what the proxy originates, per [`RespVersion`].
//! - [`value`]: [`Value`], an owned tree for the few replies the proxy reads itself.

mod inline;
pub mod reply;
pub mod request;
pub mod scan;
pub mod value;

pub use reply::RespVersion;
pub use request::{KeySpec, Request, RequestDecoder, encode_command};
pub use scan::{RespFramer, RespLimits, RespScanner, Scan};
pub use value::{Value, ValueKind};

use crate::ProtocolError;

/// The text Redis puts after `-ERR Protocol error: ` for this error, e.g.
/// `"invalid bulk length"` or `"unbalanced quotes in request"`. Redis closes the connection
/// after sending it, and so should the proxy.
pub fn protocol_error_reason(error: &ProtocolError) -> &'static str {
    match error {
        ProtocolError::Invalid { what } | ProtocolError::TooLarge { what, .. } => what,
    }
}
