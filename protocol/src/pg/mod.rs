//! PostgreSQL v3 wire protocol: framing, borrowed message views, statement renaming, encoders.
//!
//! Layers: [`frame`] splits bytes into zero-copy frames by header only; [`startup`] decodes
//! the untagged first packets; [`frontend`] and [`backend`] are bounds-checked views over a
//! frame body, built only for the messages a daemon must inspect; [`rewrite`] splices a new
//! statement name into Parse/Bind/Describe/Close; [`encode`] writes the messages a daemon
//! originates. Tag bytes are exposed only as [`FrontendTag`] / [`BackendTag`].

pub mod auth;
pub mod backend;
mod body;
pub mod encode;
pub mod frame;
pub mod frontend;
mod notice;
pub mod rewrite;
mod rows;
pub mod scram;
pub mod sqlstate;
pub mod startup;
pub mod tag;

pub use backend::{
    Authentication, BackendMessage, CopyResponse, DataRow, ErrorFields, FieldDescription,
    ParameterDescription, RowDescription, Severity, TransactionStatus, ready_for_query_status,
};
pub use body::{CStrList, OidList};
pub use frame::{
    DEFAULT_MAX_PACKET, Frame, FrameHeader, FrameScanner, FrameSplitter, HEADER_LEN, peek_header,
    scan_frames,
};
pub use frontend::{
    Bind, Close, Describe, Execute, FrontendMessage, Parse, Query, Target, parse_password,
    parse_sasl_initial_response,
};
pub use rewrite::{rename_statement, rename_statement_into};
pub use startup::{
    CancelRequest, MAX_STARTUP_PACKET_LEN, ProtocolNegotiation, ProtocolVersion, StartupMessage,
    StartupPacket, decode_startup,
};
pub use tag::{BackendTag, FrontendTag};
