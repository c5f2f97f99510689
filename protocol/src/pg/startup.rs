//! The untagged packets a client may send first: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.

use bytes::Bytes;

use super::body::BodyReader;
use crate::error::ProtocolError;

/// PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`: limit on a startup packet, not counting its
/// own 4-byte length field (exactly as the server checks it).
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// Longest cancel key accepted: protocol 3.2 allows up to 256 bytes; 3.0 keys are 4 bytes.
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// Shortest cancel key accepted (the 4-byte key of protocol 3.0).
pub const MIN_CANCEL_KEY_LEN: usize = 4;

/// Request code of a CancelRequest (1234.5678).
pub(crate) const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// Request code of an SSLRequest (1234.5679).
pub(crate) const SSL_REQUEST_CODE: u32 = 80_877_103;
/// Request code of a GSSENCRequest (1234.5680).
pub(crate) const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// The smallest valid packet: length field plus request code.
const MIN_PACKET_LEN: usize = 8;

/// A protocol version as sent on the wire: `major << 16 | minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// Major version; 3 for every protocol this crate speaks.
    pub major: u16,
    /// Minor version (3.0 up to PostgreSQL 17, 3.2 from PostgreSQL 18).
    pub minor: u16,
}

impl ProtocolVersion {
    /// Protocol 3.0, the version this crate encodes.
    pub const V3_0: Self = Self { major: 3, minor: 0 };

    /// Splits a 32-bit wire code into major and minor.
    #[inline]
    pub const fn from_code(code: u32) -> Self {
        Self {
            major: (code >> 16) as u16,
            minor: code as u16,
        }
    }

    /// The 32-bit wire code.
    #[inline]
    pub const fn code(self) -> u32 {
        ((self.major as u32) << 16) | self.minor as u32
    }
}

/// One decoded first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// A protocol-3 StartupMessage with its parameters.
    Startup(StartupMessage),
    /// SSLRequest: answer `S` or `N`. After `S` the read buffer must be empty before the TLS
    /// handshake, or plaintext injected before TLS would be trusted (CVE-2021-23214).
    SslRequest,
    /// GSSENCRequest: answer `G` or `N`.
    GssEncRequest,
    /// CancelRequest, sent on a fresh connection.
    Cancel(CancelRequest),
}

/// A StartupMessage. Parameter names and values must be UTF-8 (non-UTF-8 is rejected).
///
/// Duplicate names are kept in order and the last one wins in [`StartupMessage::get`], as in
/// PostgreSQL, which applies them in order. `_pq_.` protocol options stay in `params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// Major protocol version; always 3 after decoding.
    pub major: u16,
    /// Requested minor version.
    pub minor: u16,
    /// `(name, value)` pairs in packet order.
    pub params: Vec<(String, String)>,
}

/// What a server answers with NegotiateProtocolVersion when a client asks for more than it
/// supports: the newest minor version it speaks and the `_pq_.` options it ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolNegotiation {
    /// Newest minor version of protocol 3 the answering side supports.
    pub newest_minor: u16,
    /// Every `_pq_.`-prefixed parameter name the client sent, in order.
    pub unsupported_options: Vec<String>,
}

impl StartupMessage {
    /// The value of the last parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The `user` parameter. PostgreSQL requires a non-empty one (28000 otherwise); that
    /// check is left to the caller.
    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }

    /// The `database` parameter; PostgreSQL defaults an absent or empty one to the user name.
    pub fn database(&self) -> Option<&str> {
        self.get("database")
            .filter(|db| !db.is_empty())
            .or(self.user())
    }

    /// The requested version.
    pub const fn version(&self) -> ProtocolVersion {
        ProtocolVersion {
            major: self.major,
            minor: self.minor,
        }
    }

    /// The NegotiateProtocolVersion a protocol-3.0-only server would send, or `None` when
    /// none is needed (minor 0 and no `_pq_.` options).
    pub fn negotiation(&self) -> Option<ProtocolNegotiation> {
        self.negotiation_for(0)
    }

    /// Like [`StartupMessage::negotiation`] for a side that speaks up to 3.`newest_minor`.
    /// Every `_pq_.` option is reported as unsupported because this crate knows none.
    pub fn negotiation_for(&self, newest_minor: u16) -> Option<ProtocolNegotiation> {
        let unsupported_options: Vec<String> = self
            .params
            .iter()
            .filter(|(key, _)| key.starts_with("_pq_."))
            .map(|(key, _)| key.clone())
            .collect();
        if self.minor > newest_minor || !unsupported_options.is_empty() {
            Some(ProtocolNegotiation {
                newest_minor,
                unsupported_options,
            })
        } else {
            None
        }
    }
}

/// A CancelRequest: which backend to cancel and its secret key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// Process id announced in BackendKeyData.
    pub pid: u32,
    /// Secret key: 4 bytes in protocol 3.0, up to 256 in 3.2.
    pub key: Bytes,
}

/// Decodes the first packet of a connection (or the one after a refused SSLRequest).
///
/// Returns the packet and the bytes it used, or `Ok(None)` until the whole packet is
/// buffered. The length is checked as soon as 4 bytes are in, so an oversized announcement
/// fails early. Rejected: lengths below 8 or above [`MAX_STARTUP_PACKET_LEN`] + 4, unknown
/// request codes, a major version other than 3, missing terminators, non-UTF-8 parameters,
/// cancel keys outside 4..=256 bytes, and SSL/GSS requests with a body.
pub fn decode_startup(buf: &[u8]) -> Result<Option<(StartupPacket, usize)>, ProtocolError> {
    let Some((len_field, _)) = buf.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*len_field) as usize;
    if len < MIN_PACKET_LEN {
        return Err(ProtocolError::invalid("startup packet length"));
    }
    if len - 4 > MAX_STARTUP_PACKET_LEN {
        return Err(ProtocolError::TooLarge {
            what: "startup packet",
            len: len as u64,
            max: (MAX_STARTUP_PACKET_LEN + 4) as u64,
        });
    }
    let Some(packet) = buf.get(4..len) else {
        return Ok(None);
    };
    let mut reader = BodyReader::new(packet);
    let code = reader.u32("startup request code")?;
    let decoded = match code {
        SSL_REQUEST_CODE => {
            reader.finish("SSLRequest length")?;
            StartupPacket::SslRequest
        }
        GSSENC_REQUEST_CODE => {
            reader.finish("GSSENCRequest length")?;
            StartupPacket::GssEncRequest
        }
        CANCEL_REQUEST_CODE => StartupPacket::Cancel(decode_cancel(reader)?),
        _ => StartupPacket::Startup(decode_startup_message(code, reader)?),
    };
    Ok(Some((decoded, len)))
}

fn decode_cancel(mut reader: BodyReader<'_>) -> Result<CancelRequest, ProtocolError> {
    let pid = reader.u32("CancelRequest process id")?;
    let key = reader.rest();
    if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
        return Err(ProtocolError::invalid("CancelRequest key length"));
    }
    Ok(CancelRequest {
        pid,
        key: Bytes::copy_from_slice(key),
    })
}

fn decode_startup_message(
    code: u32,
    mut reader: BodyReader<'_>,
) -> Result<StartupMessage, ProtocolError> {
    let version = ProtocolVersion::from_code(code);
    if version.major == 1234 {
        return Err(ProtocolError::invalid("startup request code"));
    }
    if version.major != 3 {
        return Err(ProtocolError::invalid("protocol major version"));
    }
    let mut params = Vec::new();
    loop {
        let name = reader.cstr("startup parameter name")?;
        if name.is_empty() {
            break;
        }
        let value = reader.cstr("startup parameter value")?;
        params.push((utf8(name)?, utf8(value)?));
    }
    // PostgreSQL: "invalid startup packet layout: expected terminator as last byte".
    reader.finish("startup packet terminator")?;
    Ok(StartupMessage {
        major: version.major,
        minor: version.minor,
        params,
    })
}

fn utf8(bytes: &[u8]) -> Result<String, ProtocolError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| ProtocolError::invalid("startup parameter encoding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn decodes_startup_with_last_wins_duplicates() {
        let bytes = packet(0x0003_0000, b"user\0bob\0user\0alice\0\0");
        let (decoded, used) = decode_startup(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        let StartupPacket::Startup(message) = decoded else {
            panic!()
        };
        assert_eq!(message.user(), Some("alice"));
        assert_eq!(message.database(), Some("alice"));
        assert_eq!(message.negotiation(), None);
    }

    #[test]
    fn negotiation_for_newer_minor_or_pq_options() {
        let bytes = packet(0x0003_0002, b"user\0u\0_pq_.x\x001\0\0");
        let Some((StartupPacket::Startup(message), _)) = decode_startup(&bytes).unwrap() else {
            panic!()
        };
        let negotiation = message.negotiation().unwrap();
        assert_eq!(negotiation.newest_minor, 0);
        assert_eq!(negotiation.unsupported_options, ["_pq_.x"]);
        assert!(message.negotiation_for(2).is_some());
    }

    #[test]
    fn rejects_bad_packets() {
        for bad in [
            packet(0x0003_0000, b"user\0u\0"),
            packet(0x0003_0000, b"user\0u\0\0x"),
            packet(0x0003_0000, b"user\0\xff\0\0"),
            packet(0x0002_0000, b"\0"),
            packet(0x04d2_1000, b""),
            packet(SSL_REQUEST_CODE, b"x"),
            packet(CANCEL_REQUEST_CODE, b"\0\0\0\x01abc"),
            packet(CANCEL_REQUEST_CODE, &[0; 4 + 257]),
            vec![0, 0, 0, 7, 0, 0, 0],
            vec![0, 0, 0x27, 0x15],
        ] {
            assert!(decode_startup(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn incomplete_is_none_and_limits_match_postgres() {
        assert_eq!(decode_startup(&[0, 0, 0]), Ok(None));
        assert_eq!(decode_startup(&[0, 0, 0, 8, 4, 0xd2]), Ok(None));
        assert!(decode_startup(&[0, 0, 0x27, 0x14]).unwrap().is_none());
        let (cancel, _) = decode_startup(&packet(CANCEL_REQUEST_CODE, &[0, 0, 0, 7, 1, 2, 3, 4]))
            .unwrap()
            .unwrap();
        assert_eq!(
            cancel,
            StartupPacket::Cancel(CancelRequest {
                pid: 7,
                key: Bytes::from_static(&[1, 2, 3, 4])
            })
        );
    }
}
