//! Byte streams captured from PostgreSQL 15 and psql, written as literals (one frame a line).
//!
//! Recorded with a logging TCP relay between psql (or a raw-socket client) and a real server;
//! the SCRAM and replication streams come from a scratch cluster with `scram-sha-256` and
//! replication entries in pg_hba.conf. Shared with pg_fuzz.rs as a seed corpus.
#![allow(dead_code)]

/// psql 15 StartupMessage (sslmode=disable).
pub(crate) const PSQL_STARTUP: &[u8] = b"\
    \0\0\0;\0\x03\0\0user\0postgres\0database\0test\0application_name\0psql\0\0";
/// Server login reply under trust auth: AuthenticationOk, ParameterStatus x n, BackendKeyData,
/// ReadyForQuery.
pub(crate) const LOGIN_REPLY: &[u8] = b"\
    R\0\0\0\x08\0\0\0\0\
    S\0\0\0\x1aapplication_name\0psql\0\
    S\0\0\0\x19client_encoding\0UTF8\0\
    S\0\0\0\x17DateStyle\0ISO, MDY\0\
    S\0\0\0&default_transaction_read_only\0off\0\
    S\0\0\0\x17in_hot_standby\0off\0\
    S\0\0\0\x19integer_datetimes\0on\0\
    S\0\0\0\x1bIntervalStyle\0postgres\0\
    S\0\0\0\x14is_superuser\0on\0\
    S\0\0\0\x19server_encoding\0UTF8\0\
    S\0\0\x002server_version\x0015.20 (Debian 15.20-0+deb12u1)\0\
    S\0\0\0#session_authorization\0postgres\0\
    S\0\0\0#standard_conforming_strings\0on\0\
    S\0\0\0\x15TimeZone\0Etc/UTC\0\
    K\0\0\0\x0c\0\x009.\xfb4\xf1I\
    Z\0\0\0\x05I";
/// psql's simple Query followed by its Terminate.
pub(crate) const SIMPLE_QUERY: &[u8] = b"\
    Q\0\0\0:SELECT 1 AS one, 'x'::text AS two, NULL::int AS three\0\
    X\0\0\0\x04";
/// Reply to SIMPLE_QUERY: RowDescription, DataRow (with a NULL), CommandComplete, ReadyForQuery.
pub(crate) const SIMPLE_QUERY_REPLY: &[u8] = b"\
    T\0\0\0J\0\x03one\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0two\0\0\0\0\0\0\0\0\0\
    \0\x19\xff\xff\xff\xff\xff\xff\0\0three\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\
    \0\
    D\0\0\0\x14\0\x03\0\0\0\x011\0\0\0\x01x\xff\xff\xff\xff\
    C\0\0\0\x0dSELECT 1\0\
    Z\0\0\0\x05I";
/// Extended pipeline: Parse, Describe(S), Bind, Describe(P), Execute, Close(S), Sync.
pub(crate) const EXTENDED: &[u8] = b"\
    P\0\0\0%s1\0SELECT $1::int + 1 AS n\0\0\x01\0\0\0\x17\
    D\0\0\0\x08Ss1\0\
    B\0\0\0\x18\0s1\0\0\x01\0\0\0\x01\0\0\0\x0241\0\x01\0\0\
    D\0\0\0\x06P\0\
    E\0\0\0\t\0\0\0\0\0\
    C\0\0\0\x08Ss1\0\
    S\0\0\0\x04";
/// Reply: ParseComplete, ParameterDescription, RowDescription, BindComplete, RowDescription,
/// DataRow, CommandComplete, CloseComplete, ReadyForQuery.
pub(crate) const EXTENDED_REPLY: &[u8] = b"\
    1\0\0\0\x04\
    t\0\0\0\n\0\x01\0\0\0\x17\
    T\0\0\0\x1a\0\x01n\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0\
    2\0\0\0\x04\
    T\0\0\0\x1a\0\x01n\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0\
    D\0\0\0\x0c\0\x01\0\0\0\x0242\
    C\0\0\0\x0dSELECT 1\0\
    3\0\0\0\x04\
    Z\0\0\0\x05I";
/// Parse, Bind into a named portal, Execute with a row limit of 1, Sync.
pub(crate) const PORTAL: &[u8] = b"\
    P\0\0\0%s2\0SELECT $1::int + 1 AS n\0\0\x01\0\0\0\x17\
    B\0\0\0\x15p1\0s2\0\0\0\0\x01\0\0\0\x015\0\0\
    E\0\0\0\x0bp1\0\0\0\0\x01\
    S\0\0\0\x04";
/// Reply: ParseComplete, BindComplete, DataRow, PortalSuspended, ReadyForQuery.
pub(crate) const PORTAL_REPLY: &[u8] = b"\
    1\0\0\0\x04\
    2\0\0\0\x04\
    D\0\0\0\x0b\0\x01\0\0\0\x016\
    s\0\0\0\x04\
    Z\0\0\0\x05I";
/// Reply to `SELEC 1`: ErrorResponse 42601, ReadyForQuery.
pub(crate) const ERROR_REPLY: &[u8] = b"\
    E\0\0\0]SERROR\0VERROR\0C42601\0Msyntax error at or near \"SELEC\"\0P1\0Fscan.l\0L1188\0\
    Rscanner_yyerror\0\0\
    Z\0\0\0\x05I";
/// FATAL 28000 for a replication connection pg_hba.conf does not allow.
pub(crate) const FATAL_REPLY: &[u8] = b"\
    E\0\0\0\xa4SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry for replication connection from\
    \x20host \"127.0.0.1\", user \"postgres\", no encryption\0Fauth.c\0L536\0RClientAuthenticat\
    ion\0\0";
/// Reply to a DO block raising a NOTICE: NoticeResponse, CommandComplete, ReadyForQuery.
pub(crate) const NOTICE_REPLY: &[u8] = b"\
    N\0\0\0}SNOTICE\0VNOTICE\0C00000\0Mhello 42\0WPL/pgSQL function inline_code_block line 1\
    \x20at RAISE\0Fpl_exec.c\0L3907\0Rexec_stmt_raise\0\0\
    C\0\0\0\x07DO\0\
    Z\0\0\0\x05I";
/// Reply to `LISTEN chan; NOTIFY chan, 'payload-1'`: CommandComplete x 2, NotificationResponse,
/// ReadyForQuery.
pub(crate) const NOTIFY_REPLY: &[u8] = b"\
    C\0\0\0\x0bLISTEN\0\
    C\0\0\0\x0bNOTIFY\0\
    A\0\0\0\x17\0\x009\x82chan\0payload-1\0\
    Z\0\0\0\x05I";
/// Reply to COPY ... TO STDOUT: CopyOutResponse, CopyData x 2, CopyDone, CommandComplete,
/// ReadyForQuery.
pub(crate) const COPY_OUT_REPLY: &[u8] = b"\
    H\0\0\0\x0b\0\0\x02\0\0\0\0\
    d\0\0\0\t1\tr1\n\
    d\0\0\0\t2\tr2\n\
    c\0\0\0\x04\
    C\0\0\0\x0bCOPY 2\0\
    Z\0\0\0\x05I";
/// Reply to COPY t FROM STDIN: CopyInResponse (2 text columns).
pub(crate) const COPY_IN_REPLY: &[u8] = b"\
    G\0\0\0\x0b\0\0\x02\0\0\0\0";
/// Client COPY data: CopyData x 2, CopyDone.
pub(crate) const COPY_IN_DATA: &[u8] = b"\
    d\0\0\0\n1\tone\n\
    d\0\0\0\n2\ttwo\n\
    c\0\0\0\x04";
/// Reply after CopyDone: CommandComplete, ReadyForQuery.
pub(crate) const COPY_IN_DONE_REPLY: &[u8] = b"\
    C\0\0\0\x0bCOPY 2\0\
    Z\0\0\0\x05I";
/// Reply to an empty Query: EmptyQueryResponse, ReadyForQuery.
pub(crate) const EMPTY_QUERY_REPLY: &[u8] = b"\
    I\0\0\0\x04\
    Z\0\0\0\x05I";
/// Reply to START_REPLICATION on a physical replication connection: CopyBothResponse.
pub(crate) const COPY_BOTH_REPLY: &[u8] = b"\
    W\0\0\0\x07\0\0\0";
/// AuthenticationSASL offering SCRAM-SHA-256 (PostgreSQL 15, scram-sha-256 in pg_hba.conf).
pub(crate) const SCRAM_SERVER_FIRST: &[u8] = b"\
    R\0\0\0\x17\0\0\0\nSCRAM-SHA-256\0\0";
/// psql's SASLInitialResponse.
pub(crate) const SCRAM_CLIENT_FIRST: &[u8] = b"\
    p\0\0\x006SCRAM-SHA-256\0\0\0\0 n,,n=,r=4eqacEEGQr+rGEF4geAJURh5";
/// AuthenticationSASLContinue (server-first-message).
pub(crate) const SCRAM_SERVER_CONTINUE: &[u8] = b"\
    R\0\0\0\\\0\0\0\x0br=4eqacEEGQr+rGEF4geAJURh5Q4NPzXoj9gbI99XWRPWZHuBt,s=PHqZq8hJbZO3n7pp\
    40ekgA==,i=4096";
/// psql's SASLResponse (client-final-message).
pub(crate) const SCRAM_CLIENT_FINAL: &[u8] = b"\
    p\0\0\0lc=biws,r=4eqacEEGQr+rGEF4geAJURh5Q4NPzXoj9gbI99XWRPWZHuBt,p=ed9niDs9YxvSvLmDv591\
    zylbFvPFuA0HnRowOLlEj8g=";
/// AuthenticationSASLFinal, AuthenticationOk, ParameterStatus x n, BackendKeyData, ReadyForQuery.
pub(crate) const SCRAM_SERVER_FINAL: &[u8] = b"\
    R\0\0\x006\0\0\0\x0cv=pFyyxcOuYAbzj/b/opiNUfKEQaqUHMaFrmZsbWKpdxY=\
    R\0\0\0\x08\0\0\0\0\
    S\0\0\0\x1aapplication_name\0psql\0\
    S\0\0\0\x19client_encoding\0UTF8\0\
    S\0\0\0\x17DateStyle\0ISO, MDY\0\
    S\0\0\0&default_transaction_read_only\0off\0\
    S\0\0\0\x17in_hot_standby\0off\0\
    S\0\0\0\x19integer_datetimes\0on\0\
    S\0\0\0\x1bIntervalStyle\0postgres\0\
    S\0\0\0\x15is_superuser\0off\0\
    S\0\0\0\x19server_encoding\0UTF8\0\
    S\0\0\x002server_version\x0015.20 (Debian 15.20-0+deb12u1)\0\
    S\0\0\0%session_authorization\0scram_user\0\
    S\0\0\0#standard_conforming_strings\0on\0\
    S\0\0\0\x15TimeZone\0Etc/UTC\0\
    K\0\0\0\x0c\0\0:;\xe7tmq\
    Z\0\0\0\x05I";
/// StartupMessage asking for protocol 3.2 with a `_pq_.` option.
pub(crate) const NEGOTIATE_STARTUP: &[u8] = b"\
    \0\0\x008\0\x03\0\x02user\0postgres\0database\0test\0_pq_.test_option\x001\0\0";
/// PostgreSQL 15's reply: NegotiateProtocolVersion (3.0, one option), then the normal login.
pub(crate) const NEGOTIATE_REPLY: &[u8] = b"\
    v\0\0\0\x1d\0\x03\0\0\0\0\0\x01_pq_.test_option\0\
    R\0\0\0\x08\0\0\0\0\
    S\0\0\0\x16application_name\0\0\
    S\0\0\0\x19client_encoding\0UTF8\0\
    S\0\0\0\x17DateStyle\0ISO, MDY\0\
    S\0\0\0&default_transaction_read_only\0off\0\
    S\0\0\0\x17in_hot_standby\0off\0\
    S\0\0\0\x19integer_datetimes\0on\0\
    S\0\0\0\x1bIntervalStyle\0postgres\0\
    S\0\0\0\x14is_superuser\0on\0\
    S\0\0\0\x19server_encoding\0UTF8\0\
    S\0\0\x002server_version\x0015.20 (Debian 15.20-0+deb12u1)\0\
    S\0\0\0#session_authorization\0postgres\0\
    S\0\0\0#standard_conforming_strings\0on\0\
    S\0\0\0\x15TimeZone\0Etc/UTC\0\
    K\0\0\0\x0c\0\0;h\x91^w\xe9\
    Z\0\0\0\x05I";
/// FunctionCall of pg_backend_pid (OID 2026, text result), Flush, Sync.
pub(crate) const FUNCTION_CALL: &[u8] = b"\
    F\0\0\0\x0e\0\0\x07\xea\0\0\0\0\0\0\
    H\0\0\0\x04\
    S\0\0\0\x04";
/// Reply: FunctionCallResponse, ReadyForQuery.
pub(crate) const FUNCTION_CALL_REPLY: &[u8] = b"\
    V\0\0\0\x0d\0\0\0\x0515208\
    Z\0\0\0\x05I";

// ---- hand-written startup-phase packets -------------------------------------------------

/// SSLRequest (request code 1234.5679).
pub(crate) const SSL_REQUEST: &[u8] = b"\0\0\0\x08\x04\xd2\x16\x2f";
/// GSSENCRequest (request code 1234.5680).
pub(crate) const GSSENC_REQUEST: &[u8] = b"\0\0\0\x08\x04\xd2\x16\x30";
/// CancelRequest for the backend announced in LOGIN_REPLY's BackendKeyData.
pub(crate) const CANCEL_REQUEST: &[u8] = b"\0\0\0\x10\x04\xd2\x16\x2e\0\x009.\xfb4\xf1I";
