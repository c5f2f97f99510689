//! SQLSTATE codes a pooler reports in its own ErrorResponses (PostgreSQL Appendix A).

/// `08000` connection_exception: generic connection failure class.
pub const CONNECTION_EXCEPTION: &str = "08000";
/// `08001` sqlclient_unable_to_establish_sqlconnection: the server could not be reached.
pub const SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: &str = "08001";
/// `08004` sqlserver_rejected_establishment_of_sqlconnection: the server refused the login.
pub const SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION: &str = "08004";
/// `08006` connection_failure: an established server connection broke.
pub const CONNECTION_FAILURE: &str = "08006";
/// `08P01` protocol_violation: malformed or unexpected message from the client.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// `0A000` feature_not_supported: e.g. replication connections or an unsupported protocol.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// `22023` invalid_parameter_value: a bad startup parameter value.
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// `25P02` in_failed_sql_transaction: commands are ignored until the transaction ends.
pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
/// `26000` invalid_sql_statement_name: the prepared statement does not exist.
pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
/// `28000` invalid_authorization_specification: unknown user, no matching auth rule.
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// `28P01` invalid_password: password or SCRAM proof did not match.
pub const INVALID_PASSWORD: &str = "28P01";
/// `3D000` invalid_catalog_name: the requested database is not configured.
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// `42601` syntax_error: e.g. an admin-console command that does not parse.
pub const SYNTAX_ERROR: &str = "42601";
/// `42P05` duplicate_prepared_statement: a named statement was parsed twice.
pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
/// `53300` too_many_connections: a pool or client limit was reached.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// `57014` query_canceled: e.g. query_timeout or query_wait_timeout expired.
pub const QUERY_CANCELED: &str = "57014";
/// `57P01` admin_shutdown: the pooler is shutting down or the server was killed.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// `57P03` cannot_connect_now: the pool is paused or the server is starting.
pub const CANNOT_CONNECT_NOW: &str = "57P03";
/// `58000` system_error: an OS-level failure (socket, TLS setup).
pub const SYSTEM_ERROR: &str = "58000";
/// `F0000` config_file_error: the configuration could not be loaded.
pub const CONFIG_FILE_ERROR: &str = "F0000";
/// `XX000` internal_error: a bug or an unexpected state in the pooler.
pub const INTERNAL_ERROR: &str = "XX000";

/// Every code above, for tests and lookups.
pub const ALL: [&str; 21] = [
    CONNECTION_EXCEPTION,
    SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
    SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
    CONNECTION_FAILURE,
    PROTOCOL_VIOLATION,
    FEATURE_NOT_SUPPORTED,
    INVALID_PARAMETER_VALUE,
    IN_FAILED_SQL_TRANSACTION,
    INVALID_SQL_STATEMENT_NAME,
    INVALID_AUTHORIZATION_SPECIFICATION,
    INVALID_PASSWORD,
    INVALID_CATALOG_NAME,
    SYNTAX_ERROR,
    DUPLICATE_PREPARED_STATEMENT,
    TOO_MANY_CONNECTIONS,
    QUERY_CANCELED,
    ADMIN_SHUTDOWN,
    CANNOT_CONNECT_NOW,
    SYSTEM_ERROR,
    CONFIG_FILE_ERROR,
    INTERNAL_ERROR,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn codes_are_five_uppercase_alphanumerics_and_unique() {
        for (i, code) in ALL.iter().enumerate() {
            assert_eq!(code.len(), 5);
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            );
            assert!(!ALL[..i].contains(code));
        }
    }
}
