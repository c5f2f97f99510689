//! Borrowed, bounds-checked views of client messages; nothing is copied out of the frame body.

use super::body::{BodyReader, OidList, empty, single_cstr};
use super::frame::Frame;
use super::tag::FrontendTag;
use crate::error::ProtocolError;

/// What a Describe or Close names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

impl Target {
    /// Maps the wire byte; `None` for anything but `S` and `P`.
    #[inline]
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'S' => Some(Self::Statement),
            b'P' => Some(Self::Portal),
            _ => None,
        }
    }

    /// The wire byte.
    #[inline]
    pub const fn as_byte(self) -> u8 {
        match self {
            Self::Statement => b'S',
            Self::Portal => b'P',
        }
    }
}

/// Simple query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// Query text without the terminating NUL, in the client's encoding.
    pub sql: &'a [u8],
}

/// Parse: create a prepared statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Statement name; empty for the unnamed statement.
    pub name: &'a [u8],
    /// Query text in the client's encoding.
    pub query: &'a [u8],
    /// Number of parameter type OIDs that follow (checked against the body length).
    pub param_type_count: u16,
    param_types: &'a [u8],
}

impl<'a> Parse<'a> {
    /// The declared parameter type OIDs (0 = unspecified), read lazily.
    #[inline]
    pub fn param_types(&self) -> OidList<'a> {
        OidList::from_validated(self.param_types)
    }
}

/// Bind: create a portal from a statement. Only the two names are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Destination portal; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Source statement; empty for the unnamed statement.
    pub statement: &'a [u8],
    parameters: &'a [u8],
}

impl<'a> Bind<'a> {
    /// The undecoded rest: parameter formats, values and result formats.
    #[inline]
    pub const fn parameters(&self) -> &'a [u8] {
        self.parameters
    }
}

/// Describe a statement or portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe<'a> {
    /// Whether `name` is a statement or a portal.
    pub target: Target,
    /// The name; empty for the unnamed one.
    pub name: &'a [u8],
}

/// Close a statement or portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    /// Whether `name` is a statement or a portal.
    pub target: Target,
    /// The name; empty for the unnamed one.
    pub name: &'a [u8],
}

/// Execute a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    /// Portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Row limit; 0 means no limit.
    pub max_rows: u32,
}

/// A decoded client message after startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// `Q`.
    Query(Query<'a>),
    /// `P`.
    Parse(Parse<'a>),
    /// `B`.
    Bind(Bind<'a>),
    /// `D`.
    Describe(Describe<'a>),
    /// `E`.
    Execute(Execute<'a>),
    /// `C`.
    Close(Close<'a>),
    /// `S`.
    Sync,
    /// `H`.
    Flush,
    /// `X`.
    Terminate,
    /// `d`: the raw COPY payload.
    CopyData(&'a [u8]),
    /// `c`.
    CopyDone,
    /// `f`: the failure message without its NUL.
    CopyFail(&'a [u8]),
    /// `p`: the raw body; its meaning depends on the authentication state, see
    /// [`parse_password`] and [`parse_sasl_initial_response`].
    Password(&'a [u8]),
    /// `F`: the raw body of a FunctionCall.
    FunctionCall(&'a [u8]),
}

impl<'a> FrontendMessage<'a> {
    /// Decodes a client frame. Unknown tags, truncated bodies and trailing bytes are errors.
    #[inline]
    pub fn decode(frame: &'a Frame) -> Result<Self, ProtocolError> {
        Self::decode_parts(frame.tag(), frame.body())
    }

    /// Decodes a message given its type byte and body (header already removed).
    #[inline]
    pub fn decode_parts(tag: u8, body: &'a [u8]) -> Result<Self, ProtocolError> {
        let tag =
            FrontendTag::from_byte(tag).ok_or(ProtocolError::invalid("frontend message type"))?;
        Self::decode_body(tag, body)
    }

    /// The message type.
    pub const fn tag(&self) -> FrontendTag {
        match self {
            Self::Query(_) => FrontendTag::Query,
            Self::Parse(_) => FrontendTag::Parse,
            Self::Bind(_) => FrontendTag::Bind,
            Self::Describe(_) => FrontendTag::Describe,
            Self::Execute(_) => FrontendTag::Execute,
            Self::Close(_) => FrontendTag::Close,
            Self::Sync => FrontendTag::Sync,
            Self::Flush => FrontendTag::Flush,
            Self::Terminate => FrontendTag::Terminate,
            Self::CopyData(_) => FrontendTag::CopyData,
            Self::CopyDone => FrontendTag::CopyDone,
            Self::CopyFail(_) => FrontendTag::CopyFail,
            Self::Password(_) => FrontendTag::Password,
            Self::FunctionCall(_) => FrontendTag::FunctionCall,
        }
    }

    /// Decodes the body of a message whose type is already known.
    pub fn decode_body(tag: FrontendTag, body: &'a [u8]) -> Result<Self, ProtocolError> {
        Ok(match tag {
            FrontendTag::Query => Self::Query(Query {
                sql: single_cstr(body, "Query text")?,
            }),
            FrontendTag::Parse => Self::Parse(decode_parse(body)?),
            FrontendTag::Bind => Self::Bind(decode_bind(body)?),
            FrontendTag::Describe => {
                let (target, name) = decode_target_name(body, "Describe")?;
                Self::Describe(Describe { target, name })
            }
            FrontendTag::Execute => {
                let mut reader = BodyReader::new(body);
                let portal = reader.cstr("Execute portal name")?;
                let max_rows = reader.u32("Execute row limit")?;
                reader.finish("Execute length")?;
                Self::Execute(Execute { portal, max_rows })
            }
            FrontendTag::Close => {
                let (target, name) = decode_target_name(body, "Close")?;
                Self::Close(Close { target, name })
            }
            FrontendTag::Sync => {
                empty(body, "Sync length")?;
                Self::Sync
            }
            FrontendTag::Flush => {
                empty(body, "Flush length")?;
                Self::Flush
            }
            FrontendTag::Terminate => {
                empty(body, "Terminate length")?;
                Self::Terminate
            }
            FrontendTag::CopyData => Self::CopyData(body),
            FrontendTag::CopyDone => {
                empty(body, "CopyDone length")?;
                Self::CopyDone
            }
            FrontendTag::CopyFail => Self::CopyFail(single_cstr(body, "CopyFail message")?),
            FrontendTag::Password => Self::Password(body),
            FrontendTag::FunctionCall => Self::FunctionCall(body),
        })
    }
}

fn decode_parse(body: &[u8]) -> Result<Parse<'_>, ProtocolError> {
    let mut reader = BodyReader::new(body);
    let name = reader.cstr("Parse statement name")?;
    let query = reader.cstr("Parse query text")?;
    let param_type_count = reader.u16("Parse parameter count")?;
    let param_types = reader.bytes(usize::from(param_type_count) * 4, "Parse parameter types")?;
    reader.finish("Parse length")?;
    Ok(Parse {
        name,
        query,
        param_type_count,
        param_types,
    })
}

fn decode_bind(body: &[u8]) -> Result<Bind<'_>, ProtocolError> {
    let mut reader = BodyReader::new(body);
    let portal = reader.cstr("Bind portal name")?;
    let statement = reader.cstr("Bind statement name")?;
    Ok(Bind {
        portal,
        statement,
        parameters: reader.rest(),
    })
}

fn decode_target_name<'a>(
    body: &'a [u8],
    what: &'static str,
) -> Result<(Target, &'a [u8]), ProtocolError> {
    let mut reader = BodyReader::new(body);
    let target = Target::from_byte(reader.u8(what)?).ok_or(ProtocolError::invalid(what))?;
    let name = reader.cstr(what)?;
    reader.finish(what)?;
    Ok((target, name))
}

/// Decodes a SASLInitialResponse body: the chosen mechanism and the initial client data
/// (`None` when the length field is -1).
pub fn parse_sasl_initial_response(body: &[u8]) -> Result<(&str, Option<&[u8]>), ProtocolError> {
    let mut reader = BodyReader::new(body);
    let mechanism = std::str::from_utf8(reader.cstr("SASL mechanism name")?)
        .map_err(|_| ProtocolError::invalid("SASL mechanism name"))?;
    let len = reader.i32("SASL initial response length")?;
    let data = match usize::try_from(len) {
        Ok(len) => Some(reader.bytes(len, "SASL initial response data")?),
        Err(_) if len == -1 => None,
        Err(_) => return Err(ProtocolError::invalid("SASL initial response length")),
    };
    reader.finish("SASL initial response length")?;
    Ok((mechanism, data))
}

/// Decodes a PasswordMessage body (cleartext or `md5…` hash) without its NUL.
pub fn parse_password(body: &[u8]) -> Result<&[u8], ProtocolError> {
    single_cstr(body, "password message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_extended_protocol_messages() {
        let parse = b"s1\0SELECT $1\0\0\x01\0\0\0\x17";
        let FrontendMessage::Parse(p) = FrontendMessage::decode_parts(b'P', parse).unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.name, p.query, p.param_type_count),
            (&b"s1"[..], &b"SELECT $1"[..], 1)
        );
        assert_eq!(p.param_types().collect::<Vec<_>>(), [23]);
        assert_eq!(p.param_types().get(0), Some(23));
        assert_eq!(p.param_types().get(1), None);
        assert!(FrontendMessage::decode_parts(b'P', b"s1\0q\0\0\x02\0\0\0\x17").is_err());
        assert!(FrontendMessage::decode_parts(b'P', b"s1\0q\0\0\0x").is_err());

        let bind = b"\0s1\0\0\0\0\0\0\0";
        let FrontendMessage::Bind(b) = FrontendMessage::decode_parts(b'B', bind).unwrap() else {
            panic!()
        };
        assert_eq!(
            (b.portal, b.statement, b.parameters()),
            (&b""[..], &b"s1"[..], &[0u8; 6][..])
        );

        assert_eq!(
            FrontendMessage::decode_parts(b'D', b"Ss1\0"),
            Ok(FrontendMessage::Describe(Describe {
                target: Target::Statement,
                name: b"s1"
            }))
        );
        assert!(FrontendMessage::decode_parts(b'C', b"Xs1\0").is_err());
        assert_eq!(
            FrontendMessage::decode_parts(b'E', b"\0\0\0\0\x05"),
            Ok(FrontendMessage::Execute(Execute {
                portal: b"",
                max_rows: 5
            }))
        );
        assert!(FrontendMessage::decode_parts(b'S', b"x").is_err());
    }

    #[test]
    fn decodes_auth_bodies() {
        assert_eq!(
            parse_sasl_initial_response(b"SCRAM-SHA-256\0\0\0\0\x03abc"),
            Ok(("SCRAM-SHA-256", Some(&b"abc"[..])))
        );
        assert_eq!(
            parse_sasl_initial_response(b"SCRAM-SHA-256\0\xff\xff\xff\xff"),
            Ok(("SCRAM-SHA-256", None))
        );
        assert!(parse_sasl_initial_response(b"SCRAM-SHA-256\0\xff\xff\xff\xfe").is_err());
        assert!(parse_sasl_initial_response(b"SCRAM-SHA-256\0\0\0\0\x04abc").is_err());
        assert_eq!(parse_password(b"secret\0"), Ok(&b"secret"[..]));
        assert!(parse_password(b"secret").is_err());
    }
}
