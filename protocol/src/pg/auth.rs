//! Password authentication primitives: MD5 secrets and responses, the stored-secret type, and the auth error enum.
//!
//! Everything here is pure (no I/O). The pooler uses [`StoredSecret`] for a userlist.txt /
//! `pg_authid.rolpassword` value, [`md5_verify`] to check a client and [`md5_salted_response`] to
//! answer a server's `AuthenticationMD5Password`. SCRAM lives in [`super::scram`].

use std::fmt::{self, Write as _};

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::scram::ScramSecret;

/// Why an authentication step failed. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A SCRAM message or stored secret breaks the syntax; `what` names the rule.
    #[error("malformed SCRAM message: {what}")]
    Malformed {
        /// The attribute or rule that was violated, e.g. "client nonce".
        what: &'static str,
    },
    /// The client proof (SCRAM) or the salted hash (MD5) does not match the secret.
    #[error("password authentication failed")]
    WrongPassword,
    /// The peer asked for a mechanism or SCRAM feature this crate does not implement.
    #[error("unsupported authentication feature: {what}")]
    Unsupported {
        /// The feature, e.g. "authorization identity".
        what: &'static str,
    },
    /// The client requires channel binding (`p=` GS2 flag), which is not offered:
    /// only SCRAM-SHA-256 without -PLUS is advertised.
    #[error("channel binding is not supported: SCRAM-SHA-256 was selected without -PLUS")]
    ChannelBindingNotSupported,
    /// The `c=` attribute of client-final does not match the GS2 header of client-first.
    #[error("SCRAM channel binding check failed")]
    ChannelBindingMismatch,
    /// The nonce does not continue (server-first) or repeat (client-final) the agreed nonce.
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    /// The server's `v=` signature is wrong: the server does not know the secret.
    #[error("SCRAM server signature mismatch")]
    ServerSignatureMismatch,
    /// The server's salt or iteration count differs from the keys the pooler holds, so the
    /// recovered client key cannot be reused (PgBouncer's wording).
    #[error(
        "SCRAM secret of the server differs from the pooler's: salt or iteration count mismatch"
    )]
    SecretMismatch,
    /// The iteration count is 0 or above the cap that protects against a hostile server.
    #[error("SCRAM iteration count {count} out of range 1..={max}")]
    IterationCount {
        /// The announced count (saturated at `u64::MAX`).
        count: u64,
        /// The largest accepted count.
        max: u32,
    },
    /// The server answered the exchange with `e=<reason>`.
    #[error("SCRAM authentication failed on the server: {reason}")]
    ServerError {
        /// The server-error value (at most 128 bytes kept).
        reason: String,
    },
    /// A step was called in the wrong order or after the exchange ended (also after an error:
    /// a failed exchange cannot be resumed).
    #[error("SCRAM exchange step out of order: {step}")]
    OutOfOrder {
        /// The step that was called.
        step: &'static str,
    },
}

impl AuthError {
    /// Shorthand for [`AuthError::Malformed`].
    pub const fn malformed(what: &'static str) -> Self {
        Self::Malformed { what }
    }

    /// Shorthand for [`AuthError::Unsupported`].
    pub const fn unsupported(what: &'static str) -> Self {
        Self::Unsupported { what }
    }

    /// Shorthand for [`AuthError::OutOfOrder`].
    pub const fn out_of_order(step: &'static str) -> Self {
        Self::OutOfOrder { step }
    }
}

/// Length of `"md5"` + 32 lowercase hex digits.
const MD5_SECRET_LEN: usize = 35;

/// The PostgreSQL MD5 secret: `"md5" + hex(md5(password ‖ user))`.
pub fn md5_secret(user: &str, password: &str) -> String {
    let digest = Md5::new()
        .chain_update(password.as_bytes())
        .chain_update(user.as_bytes())
        .finalize();
    md5_hex(&digest)
}

/// The MD5 password response for `salt`: `"md5" + hex(md5(hex-part-of-secret ‖ salt))`.
///
/// This is what a client sends, and what the pooler sends to a server when it holds only the
/// MD5 secret. A leading `"md5"` on `md5_secret` is skipped, as PostgreSQL does.
pub fn md5_salted_response(md5_secret: &str, salt: [u8; 4]) -> String {
    let hex_part = md5_secret.strip_prefix("md5").unwrap_or(md5_secret);
    let digest = Md5::new()
        .chain_update(hex_part.as_bytes())
        .chain_update(salt)
        .finalize();
    md5_hex(&digest)
}

/// Whether `client_response` (the PasswordMessage payload, one trailing NUL tolerated) is the
/// salted MD5 response for `md5_secret`. Compared in constant time.
pub fn md5_verify(md5_secret: &str, salt: [u8; 4], client_response: &[u8]) -> bool {
    let response = client_response
        .strip_suffix(&[0])
        .unwrap_or(client_response);
    let expected = md5_salted_response(md5_secret, salt);
    bool::from(expected.as_bytes().ct_eq(response))
}

fn md5_hex(digest: &[u8]) -> String {
    digest.iter().fold(String::from("md5"), |mut out, byte| {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Whether `s` is an MD5 secret by PostgreSQL's rule: `"md5"` + 32 lowercase hex digits.
fn is_md5_secret(s: &str) -> bool {
    s.len() == MD5_SECRET_LEN
        && s.strip_prefix("md5").is_some_and(|hex| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A password as stored in userlist.txt or `pg_authid.rolpassword`.
///
/// `Debug` shows only the kind; the value is never printed.
#[derive(Clone)]
pub enum StoredSecret {
    /// A plaintext password: works towards a server with any method.
    Plain(String),
    /// `"md5" + hex(md5(password ‖ user))`: works towards a server only if it uses md5.
    Md5(String),
    /// A SCRAM-SHA-256 secret: works towards a server only with the client's SCRAM keys.
    Scram(ScramSecret),
}

impl StoredSecret {
    /// Classifies a stored value the way PostgreSQL's `get_password_type` does: a parsable
    /// SCRAM secret, else an MD5 secret, else plaintext. Note that a *malformed*
    /// `SCRAM-SHA-256$...` value is therefore a plaintext password; a config loader may want
    /// to warn about it (check with [`ScramSecret::parse`]).
    pub fn parse(s: &str) -> StoredSecret {
        if let Ok(secret) = ScramSecret::parse(s) {
            StoredSecret::Scram(secret)
        } else if is_md5_secret(s) {
            StoredSecret::Md5(s.to_owned())
        } else {
            StoredSecret::Plain(s.to_owned())
        }
    }

    /// The kind of secret, for logs: `"plain"`, `"md5"` or `"scram-sha-256"`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoredSecret::Plain(_) => "plain",
            StoredSecret::Md5(_) => "md5",
            StoredSecret::Scram(_) => "scram-sha-256",
        }
    }

    /// The MD5 secret for `user`, if one can be had: computed from a plaintext password, or
    /// the stored MD5 secret itself. `None` for a SCRAM secret.
    pub fn md5_secret(&self, user: &str) -> Option<String> {
        match self {
            StoredSecret::Plain(password) => Some(md5_secret(user, password)),
            StoredSecret::Md5(secret) => Some(secret.clone()),
            StoredSecret::Scram(_) => None,
        }
    }
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredSecret::{}(<redacted>)", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_secret_matches_pgbouncer_doc_vector() {
        assert_eq!(
            md5_secret("admin", "1234"),
            "md545f2603610af569b6155c45067268c6b"
        );
    }

    #[test]
    fn md5_verify_accepts_right_and_rejects_wrong_response() {
        let secret = md5_secret("admin", "1234");
        let salt = [1, 2, 3, 4];
        let response = md5_salted_response(&secret, salt);
        assert!(md5_verify(&secret, salt, response.as_bytes()));
        let mut with_nul = response.clone().into_bytes();
        with_nul.push(0);
        assert!(md5_verify(&secret, salt, &with_nul));
        assert!(!md5_verify(&secret, [1, 2, 3, 5], response.as_bytes()));
        assert!(!md5_verify(&secret, salt, b""));
        assert!(!md5_verify(&secret, salt, &response.as_bytes()[..34]));
    }

    #[test]
    fn stored_secret_classification_and_redaction() {
        let md5 = StoredSecret::parse("md545f2603610af569b6155c45067268c6b");
        assert_eq!(md5.kind(), "md5");
        // Uppercase hex is not an MD5 secret for PostgreSQL.
        let upper = StoredSecret::parse("md545F2603610AF569B6155C45067268C6B");
        assert_eq!(upper.kind(), "plain");
        assert_eq!(StoredSecret::parse("md5short").kind(), "plain");
        assert_eq!(StoredSecret::parse("SCRAM-SHA-256$broken").kind(), "plain");
        let plain = StoredSecret::parse("hunter2");
        assert_eq!(format!("{plain:?}"), "StoredSecret::plain(<redacted>)");
        assert!(!format!("{md5:?}").contains("45f26"));
        assert_eq!(
            plain.md5_secret("admin").as_deref(),
            Some(md5_secret("admin", "hunter2").as_str())
        );
    }
}
