//! Message type bytes of both directions as enums, so no daemon ever matches a raw tag byte.

/// Type byte of a message sent by a client (frontend) after startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrontendTag {
    /// `Q`: simple query.
    Query,
    /// `P`: extended-protocol Parse.
    Parse,
    /// `B`: Bind.
    Bind,
    /// `D`: Describe a statement or portal.
    Describe,
    /// `E`: Execute a portal.
    Execute,
    /// `S`: Sync.
    Sync,
    /// `H`: Flush.
    Flush,
    /// `C`: Close a statement or portal.
    Close,
    /// `X`: Terminate.
    Terminate,
    /// `d`: CopyData.
    CopyData,
    /// `c`: CopyDone.
    CopyDone,
    /// `f`: CopyFail.
    CopyFail,
    /// `p`: PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse; which one
    /// depends on the authentication state, not on the bytes.
    Password,
    /// `F`: FunctionCall.
    FunctionCall,
}

/// PostgreSQL's limit on the messages that carry no statement or data (its
/// `PQ_SMALL_MESSAGE_LIMIT`): longer ones end the connection.
pub const SMALL_MESSAGE_LIMIT: usize = 10_000;

impl FrontendTag {
    /// The longest whole frame PostgreSQL accepts for this message type (its body limit
    /// plus the 5 header bytes), or `None` when only `max_packet_size` applies (Query,
    /// Parse, Bind, FunctionCall, CopyData and authentication messages).
    pub const fn max_frame_len(self) -> Option<usize> {
        match self {
            Self::Describe
            | Self::Execute
            | Self::Sync
            | Self::Flush
            | Self::Close
            | Self::Terminate
            | Self::CopyDone
            | Self::CopyFail => Some(SMALL_MESSAGE_LIMIT + 5),
            Self::Query
            | Self::Parse
            | Self::Bind
            | Self::CopyData
            | Self::Password
            | Self::FunctionCall => None,
        }
    }

    /// Maps a type byte to its tag; `None` for bytes no frontend message uses.
    #[inline]
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            b'Q' => Self::Query,
            b'P' => Self::Parse,
            b'B' => Self::Bind,
            b'D' => Self::Describe,
            b'E' => Self::Execute,
            b'S' => Self::Sync,
            b'H' => Self::Flush,
            b'C' => Self::Close,
            b'X' => Self::Terminate,
            b'd' => Self::CopyData,
            b'c' => Self::CopyDone,
            b'f' => Self::CopyFail,
            b'p' => Self::Password,
            b'F' => Self::FunctionCall,
            _ => return None,
        })
    }

    /// The type byte on the wire.
    #[inline]
    pub const fn as_byte(self) -> u8 {
        match self {
            Self::Query => b'Q',
            Self::Parse => b'P',
            Self::Bind => b'B',
            Self::Describe => b'D',
            Self::Execute => b'E',
            Self::Sync => b'S',
            Self::Flush => b'H',
            Self::Close => b'C',
            Self::Terminate => b'X',
            Self::CopyData => b'd',
            Self::CopyDone => b'c',
            Self::CopyFail => b'f',
            Self::Password => b'p',
            Self::FunctionCall => b'F',
        }
    }

    /// Every frontend tag, for exhaustive tests.
    pub const ALL: [Self; 14] = [
        Self::Query,
        Self::Parse,
        Self::Bind,
        Self::Describe,
        Self::Execute,
        Self::Sync,
        Self::Flush,
        Self::Close,
        Self::Terminate,
        Self::CopyData,
        Self::CopyDone,
        Self::CopyFail,
        Self::Password,
        Self::FunctionCall,
    ];
}

/// Type byte of a message sent by the server (backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendTag {
    /// `R`: one of the Authentication* requests.
    Authentication,
    /// `K`: BackendKeyData (cancel key).
    BackendKeyData,
    /// `S`: ParameterStatus.
    ParameterStatus,
    /// `Z`: ReadyForQuery.
    ReadyForQuery,
    /// `E`: ErrorResponse.
    ErrorResponse,
    /// `N`: NoticeResponse.
    NoticeResponse,
    /// `C`: CommandComplete.
    CommandComplete,
    /// `G`: CopyInResponse.
    CopyInResponse,
    /// `H`: CopyOutResponse.
    CopyOutResponse,
    /// `W`: CopyBothResponse (replication).
    CopyBothResponse,
    /// `d`: CopyData.
    CopyData,
    /// `c`: CopyDone.
    CopyDone,
    /// `1`: ParseComplete.
    ParseComplete,
    /// `2`: BindComplete.
    BindComplete,
    /// `3`: CloseComplete.
    CloseComplete,
    /// `n`: NoData.
    NoData,
    /// `s`: PortalSuspended.
    PortalSuspended,
    /// `I`: EmptyQueryResponse.
    EmptyQueryResponse,
    /// `T`: RowDescription.
    RowDescription,
    /// `D`: DataRow.
    DataRow,
    /// `t`: ParameterDescription.
    ParameterDescription,
    /// `A`: NotificationResponse.
    NotificationResponse,
    /// `V`: FunctionCallResponse.
    FunctionCallResponse,
    /// `v`: NegotiateProtocolVersion.
    NegotiateProtocolVersion,
}

impl BackendTag {
    /// Maps a type byte to its tag; `None` for bytes no backend message uses.
    #[inline]
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            b'R' => Self::Authentication,
            b'K' => Self::BackendKeyData,
            b'S' => Self::ParameterStatus,
            b'Z' => Self::ReadyForQuery,
            b'E' => Self::ErrorResponse,
            b'N' => Self::NoticeResponse,
            b'C' => Self::CommandComplete,
            b'G' => Self::CopyInResponse,
            b'H' => Self::CopyOutResponse,
            b'W' => Self::CopyBothResponse,
            b'd' => Self::CopyData,
            b'c' => Self::CopyDone,
            b'1' => Self::ParseComplete,
            b'2' => Self::BindComplete,
            b'3' => Self::CloseComplete,
            b'n' => Self::NoData,
            b's' => Self::PortalSuspended,
            b'I' => Self::EmptyQueryResponse,
            b'T' => Self::RowDescription,
            b'D' => Self::DataRow,
            b't' => Self::ParameterDescription,
            b'A' => Self::NotificationResponse,
            b'V' => Self::FunctionCallResponse,
            b'v' => Self::NegotiateProtocolVersion,
            _ => return None,
        })
    }

    /// The type byte on the wire.
    #[inline]
    pub const fn as_byte(self) -> u8 {
        match self {
            Self::Authentication => b'R',
            Self::BackendKeyData => b'K',
            Self::ParameterStatus => b'S',
            Self::ReadyForQuery => b'Z',
            Self::ErrorResponse => b'E',
            Self::NoticeResponse => b'N',
            Self::CommandComplete => b'C',
            Self::CopyInResponse => b'G',
            Self::CopyOutResponse => b'H',
            Self::CopyBothResponse => b'W',
            Self::CopyData => b'd',
            Self::CopyDone => b'c',
            Self::ParseComplete => b'1',
            Self::BindComplete => b'2',
            Self::CloseComplete => b'3',
            Self::NoData => b'n',
            Self::PortalSuspended => b's',
            Self::EmptyQueryResponse => b'I',
            Self::RowDescription => b'T',
            Self::DataRow => b'D',
            Self::ParameterDescription => b't',
            Self::NotificationResponse => b'A',
            Self::FunctionCallResponse => b'V',
            Self::NegotiateProtocolVersion => b'v',
        }
    }

    /// Every backend tag, for exhaustive tests.
    pub const ALL: [Self; 24] = [
        Self::Authentication,
        Self::BackendKeyData,
        Self::ParameterStatus,
        Self::ReadyForQuery,
        Self::ErrorResponse,
        Self::NoticeResponse,
        Self::CommandComplete,
        Self::CopyInResponse,
        Self::CopyOutResponse,
        Self::CopyBothResponse,
        Self::CopyData,
        Self::CopyDone,
        Self::ParseComplete,
        Self::BindComplete,
        Self::CloseComplete,
        Self::NoData,
        Self::PortalSuspended,
        Self::EmptyQueryResponse,
        Self::RowDescription,
        Self::DataRow,
        Self::ParameterDescription,
        Self::NotificationResponse,
        Self::FunctionCallResponse,
        Self::NegotiateProtocolVersion,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_through_every_byte() {
        let mut frontend = 0;
        let mut backend = 0;
        for byte in 0..=u8::MAX {
            if let Some(tag) = FrontendTag::from_byte(byte) {
                assert_eq!(tag.as_byte(), byte);
                frontend += 1;
            }
            if let Some(tag) = BackendTag::from_byte(byte) {
                assert_eq!(tag.as_byte(), byte);
                backend += 1;
            }
        }
        assert_eq!(frontend, FrontendTag::ALL.len());
        assert_eq!(backend, BackendTag::ALL.len());
        for tag in FrontendTag::ALL {
            assert_eq!(FrontendTag::from_byte(tag.as_byte()), Some(tag));
        }
        for tag in BackendTag::ALL {
            assert_eq!(BackendTag::from_byte(tag.as_byte()), Some(tag));
        }
    }
}
