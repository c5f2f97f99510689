//! The one error type of every decoder in this crate.

/// Why bytes could not be decoded. "Not enough bytes yet" is not an error: decoders
/// return `Ok(None)` for that.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes break the protocol; `what` names the rule that was broken.
    #[error("invalid {what}")]
    Invalid {
        /// The field or rule that was violated, e.g. "Bind parameter count".
        what: &'static str,
    },
    /// A length field announces more than the configured limit allows.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// What was too large, e.g. "packet" or "bulk string".
        what: &'static str,
        /// The announced length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
}

impl ProtocolError {
    /// Shorthand for [`ProtocolError::Invalid`].
    pub const fn invalid(what: &'static str) -> Self {
        Self::Invalid { what }
    }
}
