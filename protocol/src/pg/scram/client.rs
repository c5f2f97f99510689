//! The client side of SCRAM-SHA-256: proving an identity to a server with a password or
//! with keys recovered from a client's own login (pass-through).

use std::{fmt, mem};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use super::{
    AuthError, Key, MAX_ITERATIONS, MAX_REASON_CHARS, ScramKeys, attribute, decode_key,
    decode_salt, hmac_sha256, is_extension, is_printable_nonce, parse_count, random_nonce, utf8,
    xor,
};

/// What a [`ScramClient`] proves its identity with. `Debug` never shows the password or keys.
#[derive(Clone)]
pub enum ScramCredentials {
    /// A plaintext password: works with any salt and iteration count.
    Password(String),
    /// Keys recovered from a client's exchange (pass-through): the server's secret must have the
    /// same salt and iteration count, else [`AuthError::SecretMismatch`].
    Keys(ScramKeys),
}

impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScramCredentials::Password(_) => f.write_str("ScramCredentials::Password(<redacted>)"),
            ScramCredentials::Keys(keys) => write!(f, "ScramCredentials::Keys({keys:?})"),
        }
    }
}

/// The client side of one exchange (pooler → server). Drive it from the socket loop:
/// send [`client_first`](Self::client_first) in SASLInitialResponse with mechanism
/// [`SCRAM_SHA_256`], feed AuthenticationSASLContinue data to
/// [`handle_server_first`](Self::handle_server_first) and send the result in SASLResponse, then
/// feed AuthenticationSASLFinal data to [`verify_server_final`](Self::verify_server_final).
/// Authentication succeeded only if that last call returns `Ok`.
pub struct ScramClient {
    credentials: ScramCredentials,
    /// Already escaped as a saslname.
    user_name: String,
    client_nonce: String,
    state: ClientState,
}

enum ClientState {
    AwaitServerFirst,
    AwaitServerFinal { server_signature: Key },
    Done,
}

impl ScramClient {
    /// A client with a random nonce.
    pub fn new(credentials: ScramCredentials) -> Self {
        Self::with_nonce(credentials, &random_nonce())
    }

    /// A client with a fixed nonce, for tests and replaying recorded exchanges only. `nonce`
    /// must be printable ASCII without `,`.
    pub fn with_nonce(credentials: ScramCredentials, nonce: &str) -> Self {
        Self {
            credentials,
            user_name: String::new(),
            client_nonce: nonce.to_owned(),
            state: ClientState::AwaitServerFirst,
        }
    }

    /// Sets the `n=` user name. PostgreSQL ignores it (the user comes from the startup
    /// packet), so libpq and this client send it empty by default; it exists for test vectors
    /// and non-PostgreSQL servers. Must be called before [`client_first`](Self::client_first).
    pub fn with_user_name(mut self, user_name: &str) -> Self {
        self.user_name = user_name.replace('=', "=3D").replace(',', "=2C");
        self
    }

    /// The client-first message (SASLInitialResponse data): `n,,n=,r=<nonce>`.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare()).into_bytes()
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.user_name, self.client_nonce)
    }

    /// Handles the server-first message (AuthenticationSASLContinue data) and returns the
    /// client-final message (SASLResponse data).
    pub fn handle_server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let ClientState::AwaitServerFirst = mem::replace(&mut self.state, ClientState::Done) else {
            return Err(AuthError::out_of_order("server-first"));
        };
        let message = utf8(data)?;
        if message.starts_with("m=") {
            return Err(AuthError::unsupported("mandatory SCRAM extension"));
        }
        let mut attributes = message.split(',');
        let nonce = attribute(attributes.next(), "r=", "server nonce")?;
        let salt = attribute(attributes.next(), "s=", "salt")?;
        let count = attribute(attributes.next(), "i=", "iteration count")?;
        if !attributes.all(is_extension) {
            return Err(AuthError::malformed("server-first extension"));
        }
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(AuthError::NonceMismatch);
        }
        if !is_printable_nonce(nonce) {
            return Err(AuthError::malformed("server nonce"));
        }
        let salt = decode_salt(salt)?;
        let count = parse_count(count)?;
        let keys = match &self.credentials {
            ScramCredentials::Password(password) => {
                let iterations = u32::try_from(count)
                    .ok()
                    .filter(|n| (1..=MAX_ITERATIONS).contains(n))
                    .ok_or(AuthError::IterationCount {
                        count,
                        max: MAX_ITERATIONS,
                    })?;
                &ScramKeys::from_password(password, &salt, iterations)
            }
            ScramCredentials::Keys(keys) => {
                if keys.salt != salt || u64::from(keys.iterations) != count {
                    return Err(AuthError::SecretMismatch);
                }
                keys
            }
        };
        // No channel binding is offered: "biws" is base64("n,,").
        let without_proof = format!("c=biws,r={nonce}");
        let client_first_bare = self.client_first_bare();
        let auth_message: [&[u8]; 5] = [
            client_first_bare.as_bytes(),
            b",",
            message.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = hmac_sha256(&keys.stored_key(), &auth_message);
        let proof = xor(&keys.client_key, &client_signature);
        self.state = ClientState::AwaitServerFinal {
            server_signature: hmac_sha256(&keys.server_key, &auth_message),
        };
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server-final message (AuthenticationSASLFinal data): `Ok` only if the
    /// server proved it knows the secret. An `e=` reply becomes [`AuthError::ServerError`].
    pub fn verify_server_final(&self, data: &[u8]) -> Result<(), AuthError> {
        let ClientState::AwaitServerFinal { server_signature } = &self.state else {
            return Err(AuthError::out_of_order("server-final"));
        };
        let message = utf8(data)?;
        let mut attributes = message.split(',');
        let first = attributes.next().unwrap_or_default();
        if let Some(reason) = first.strip_prefix("e=") {
            let reason = reason
                .chars()
                .take(MAX_REASON_CHARS)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            return Err(AuthError::ServerError { reason });
        }
        let signature = attribute(Some(first), "v=", "server signature")?;
        if !attributes.all(is_extension) {
            return Err(AuthError::malformed("server-final extension"));
        }
        let signature = decode_key(signature, "server signature")?;
        if bool::from(signature[..].ct_eq(&server_signature[..])) {
            Ok(())
        } else {
            Err(AuthError::ServerSignatureMismatch)
        }
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ClientState::AwaitServerFirst => "AwaitServerFirst",
            ClientState::AwaitServerFinal { .. } => "AwaitServerFinal",
            ClientState::Done => "Done",
        };
        f.debug_struct("ScramClient")
            .field("credentials", &self.credentials)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
