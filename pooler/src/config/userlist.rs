//! The `auth_file` (userlist.txt) reader, following PgBouncer's `load_auth_file`: two
//! double-quoted fields per line, `""` for a quote, `;` comment lines, and a malformed line
//! stops the reading with a warning (users read so far are kept).
//!
//! Secrets never appear in errors, warnings or `Debug` output.

use std::collections::BTreeMap;
use std::path::Path;

use protocol::pg::auth::StoredSecret;

use super::{ConfigError, ConfigErrorKind, ConfigWarning, ConfigWarningKind};

/// PgBouncer's `MAX_USERNAME`: a user name must be shorter (in bytes, as quoted in the file).
pub const MAX_USERNAME: usize = 128;
/// PgBouncer's `MAX_PASSWORD`: a secret must be shorter (in bytes, as quoted in the file).
pub const MAX_PASSWORD: usize = 65531;

/// Prefix of a SCRAM secret (RFC 5803).
const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// User name → secret, as read from an auth_file.
pub type UserSecrets = BTreeMap<String, StoredSecret>;

/// Reads an auth_file. Only an unreadable file is an error; malformed content yields warnings.
pub fn load_auth_file(path: &Path) -> Result<(UserSecrets, Vec<ConfigWarning>), ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| {
        ConfigError::new(path.to_path_buf(), None, ConfigErrorKind::Read { error })
    })?;
    Ok(parse_auth_file(path, &bytes))
}

/// Parses auth_file content; `path` is only used to label warnings. A later line for the same
/// user replaces the earlier one.
pub fn parse_auth_file(path: &Path, bytes: &[u8]) -> (UserSecrets, Vec<ConfigWarning>) {
    let mut users = UserSecrets::new();
    let mut warnings = Vec::new();
    for (index, raw_line) in bytes.split(|&b| b == b'\n').enumerate() {
        let warn = |kind| ConfigWarning::new(path.to_path_buf(), Some(index + 1), kind);
        let line = raw_line.trim_ascii_start();
        if line.is_empty() || line.starts_with(b";") {
            continue;
        }
        let (user, secret) = match parse_line(line) {
            Ok(fields) => fields,
            Err(kind) => {
                // PgBouncer stops at the first bad line; the users before it stay loaded.
                warnings.push(warn(kind));
                break;
            }
        };
        if secret.starts_with(SCRAM_PREFIX)
            && protocol::pg::scram::ScramSecret::parse(&secret).is_err()
        {
            warnings.push(warn(ConfigWarningKind::MalformedScramSecret {
                user: user.clone(),
            }));
        }
        users.insert(user, StoredSecret::parse(&secret));
    }
    (users, warnings)
}

/// Splits one non-comment line into (user, secret), unquoted.
fn parse_line(line: &[u8]) -> Result<(String, String), ConfigWarningKind> {
    let after_open = line
        .strip_prefix(b"\"")
        .ok_or(ConfigWarningKind::BrokenAuthFile)?;
    let (user, rest) = quoted_field(after_open).ok_or(ConfigWarningKind::BrokenAuthFile)?;
    if user.len() >= MAX_USERNAME {
        return Err(ConfigWarningKind::UsernameTooLong);
    }
    // Anything may sit between the two fields; the second starts at the next quote.
    let second_open = rest
        .iter()
        .position(|&b| b == b'"')
        .ok_or(ConfigWarningKind::BrokenAuthFile)?;
    let after_second_open = rest.get(second_open + 1..).unwrap_or_default();
    let (secret, _ignored_rest) =
        quoted_field(after_second_open).ok_or(ConfigWarningKind::BrokenAuthFile)?;
    if secret.len() >= MAX_PASSWORD {
        return Err(ConfigWarningKind::PasswordTooLong);
    }
    let user = unquote(user).ok_or(ConfigWarningKind::AuthFileNotUtf8)?;
    let secret = unquote(secret).ok_or(ConfigWarningKind::AuthFileNotUtf8)?;
    Ok((user, secret))
}

/// Finds the closing quote of a field (a `""` pair is an escaped quote), returning the raw
/// field and what follows the closing quote. `None` if the line ends first.
fn quoted_field(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut index = 0;
    loop {
        let quote = index + text.get(index..)?.iter().position(|&b| b == b'"')?;
        if text.get(quote + 1) == Some(&b'"') {
            index = quote + 2;
            continue;
        }
        let field = text.get(..quote)?;
        let rest = text.get(quote + 1..)?;
        return Some((field, rest));
    }
}

/// Replaces each `""` by `"`; `None` if the result is not UTF-8.
fn unquote(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    Some(text.replace("\"\"", "\""))
}
