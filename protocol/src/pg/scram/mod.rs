//! SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: secrets, server side, client side, pass-through.
//!
//! Both sides are byte-in/byte-out state machines with no I/O: feed the payload of each SASL
//! message, send back what they return. Any error ends the exchange (no step can be retried).
//!
//! Pass-through: [`ScramServer::handle_client_final`] recovers the client's `ClientKey`
//! (`ClientProof XOR HMAC(StoredKey, AuthMessage)`) and returns it as [`ScramKeys`];
//! [`ScramCredentials::Keys`] replays it towards a server whose secret has the same salt and
//! iteration count, without ever knowing the password.

use std::{fmt, mem};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::AuthError;

mod client;
pub use client::{ScramClient, ScramCredentials};

/// The SASL mechanism name to advertise (server side) and select (client side).
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// PostgreSQL's default `scram_iterations`.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Largest iteration count a client derives a password for: PBKDF2 cost is linear in it, so a
/// hostile server could otherwise stall the pooler.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Largest iteration count accepted in a stored secret (PostgreSQL stores it as an `int4`).
const MAX_STORED_ITERATIONS: u64 = i32::MAX as u64;
const SECRET_PREFIX: &str = "SCRAM-SHA-256$";
const SALT_LEN: usize = 16;
/// 18 random bytes encode to 24 base64 characters, as libpq does.
const NONCE_RANDOM_LEN: usize = 18;
/// Longest server-error reason kept in [`AuthError::ServerError`].
const MAX_REASON_CHARS: usize = 128;

type Key = [u8; 32];

/// A parsed `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` secret (RFC 5803, the
/// `pg_authid.rolpassword` format). `Debug` shows only the iteration count.
///
/// `PartialEq` is not constant time: do not use it to authenticate anyone.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    /// PBKDF2 iteration count, at least 1.
    pub iterations: u32,
    /// PBKDF2 salt, not empty.
    pub salt: Vec<u8>,
    /// `SHA-256(ClientKey)`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

impl ScramSecret {
    /// Parses a stored secret; the inverse of [`ScramSecret::encode`].
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let invalid = || AuthError::malformed("SCRAM secret");
        let rest = s.strip_prefix(SECRET_PREFIX).ok_or_else(invalid)?;
        let (iterations_and_salt, keys) = rest.split_once('$').ok_or_else(invalid)?;
        let (iterations, salt) = iterations_and_salt.split_once(':').ok_or_else(invalid)?;
        let (stored_key, server_key) = keys.split_once(':').ok_or_else(invalid)?;
        let count = parse_count(iterations)?;
        if !(1..=MAX_STORED_ITERATIONS).contains(&count) {
            return Err(AuthError::IterationCount {
                count,
                max: i32::MAX.unsigned_abs(),
            });
        }
        Ok(Self {
            iterations: u32::try_from(count).map_err(|_| invalid())?,
            salt: decode_salt(salt)?,
            stored_key: decode_key(stored_key, "SCRAM secret stored key")?,
            server_key: decode_key(server_key, "SCRAM secret server key")?,
        })
    }

    /// Encodes the secret in the stored format.
    pub fn encode(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }

    /// Derives the secret of `password` as PostgreSQL does (SASLprep, or the raw bytes if
    /// SASLprep rejects the password). An `iterations` of 0 is raised to 1.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let iterations = iterations.max(1);
        ScramKeys::from_password(password, salt, iterations).to_secret()
    }
}

impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// What the pooler keeps after verifying a client, to log in to a server later without the
/// plaintext (PgBouncer's `scram_client_key`/`scram_server_key`). Only usable towards a server
/// whose secret has the same salt and iteration count. `Debug` shows only the iteration count.
#[derive(Clone)]
pub struct ScramKeys {
    /// `HMAC(SaltedPassword, "Client Key")`: as good as the password for logging in.
    pub client_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
    /// The salt the keys were derived with.
    pub salt: Vec<u8>,
    /// The iteration count the keys were derived with.
    pub iterations: u32,
}

impl ScramKeys {
    /// `SHA-256(ClientKey)`.
    pub fn stored_key(&self) -> [u8; 32] {
        sha256(&self.client_key)
    }

    /// The stored secret these keys belong to.
    pub fn to_secret(&self) -> ScramSecret {
        ScramSecret {
            iterations: self.iterations,
            salt: self.salt.clone(),
            stored_key: self.stored_key(),
            server_key: self.server_key,
        }
    }

    fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        // PostgreSQL hashes the raw bytes when SASLprep rejects the password.
        let prepared = stringprep::saslprep(password);
        let bytes = match &prepared {
            Ok(prepared) => prepared.as_bytes(),
            Err(_) => password.as_bytes(),
        };
        let salted = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(bytes, salt, iterations);
        Self {
            client_key: hmac_sha256(&salted, &[b"Client Key"]),
            server_key: hmac_sha256(&salted, &[b"Server Key"]),
            salt: salt.to_vec(),
            iterations,
        }
    }
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The server side of one exchange (pooler ← client). Advertise only [`SCRAM_SHA_256`]
/// (no -PLUS): a client demanding channel binding is refused.
pub struct ScramServer {
    secret: ScramSecret,
    server_nonce: String,
    state: ServerState,
}

enum ServerState {
    AwaitClientFirst,
    AwaitClientFinal {
        /// The `c=` value the client must send: base64 of its GS2 header.
        channel_binding: &'static str,
        nonce: String,
        /// `client-first-bare "," server-first`: the AuthMessage up to client-final.
        auth_prefix: String,
    },
    Done,
}

impl ScramServer {
    /// A server verifying against a stored secret, with a random nonce.
    pub fn new(secret: ScramSecret) -> Self {
        Self::with_nonce(secret, &random_nonce())
    }

    /// A server verifying against a plaintext password (userlist.txt): derives a secret with a
    /// random 16-byte salt and `iterations` (see [`DEFAULT_ITERATIONS`]). The keys it returns
    /// fit only this salt, so towards a server prefer the plaintext itself.
    pub fn from_password(password: &str, iterations: u32) -> Self {
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt);
        Self::new(ScramSecret::from_password(password, &salt, iterations))
    }

    /// A server with a fixed server nonce, for tests and replaying recorded exchanges only: a
    /// predictable nonce lets an eavesdropper replay a proof. `server_nonce` must be printable
    /// ASCII without `,`.
    pub fn with_nonce(secret: ScramSecret, server_nonce: &str) -> Self {
        Self {
            secret,
            server_nonce: server_nonce.to_owned(),
            state: ServerState::AwaitClientFirst,
        }
    }

    /// Handles the client-first message (SASLInitialResponse data) and returns the
    /// server-first message (AuthenticationSASLContinue data).
    pub fn handle_client_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let ServerState::AwaitClientFirst = mem::replace(&mut self.state, ServerState::Done) else {
            return Err(AuthError::out_of_order("client-first"));
        };
        let message = utf8(data)?;
        let (channel_binding, client_first_bare) = parse_gs2_header(message)?;
        let client_nonce = parse_client_first_bare(client_first_bare)?;
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&self.secret.salt),
            self.secret.iterations
        );
        self.state = ServerState::AwaitClientFinal {
            channel_binding,
            nonce,
            auth_prefix: format!("{client_first_bare},{server_first}"),
        };
        Ok(server_first.into_bytes())
    }

    /// Handles the client-final message (SASLResponse data). On success returns the
    /// server-final message (AuthenticationSASLFinal data, `v=...`) and the client's keys;
    /// [`AuthError::WrongPassword`] if the proof is wrong.
    pub fn handle_client_final(&mut self, data: &[u8]) -> Result<(Vec<u8>, ScramKeys), AuthError> {
        let ServerState::AwaitClientFinal {
            channel_binding,
            nonce,
            auth_prefix,
        } = mem::replace(&mut self.state, ServerState::Done)
        else {
            return Err(AuthError::out_of_order("client-final"));
        };
        let message = utf8(data)?;
        // The proof must be the last attribute; base64 has no ',' so a trailing extension
        // would land in `proof` and fail to decode.
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(AuthError::malformed("client proof"))?;
        let mut attributes = without_proof.split(',');
        let client_binding = attribute(attributes.next(), "c=", "channel binding")?;
        let client_nonce = attribute(attributes.next(), "r=", "nonce")?;
        if !attributes.all(is_extension) {
            return Err(AuthError::malformed("client-final extension"));
        }
        if client_binding != channel_binding {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if client_nonce != nonce {
            return Err(AuthError::NonceMismatch);
        }
        let proof = decode_key(proof, "client proof")?;
        let auth_message: [&[u8]; 3] = [auth_prefix.as_bytes(), b",", without_proof.as_bytes()];
        let client_signature = hmac_sha256(&self.secret.stored_key, &auth_message);
        let client_key = xor(&proof, &client_signature);
        if !bool::from(sha256(&client_key)[..].ct_eq(&self.secret.stored_key[..])) {
            return Err(AuthError::WrongPassword);
        }
        let server_signature = hmac_sha256(&self.secret.server_key, &auth_message);
        let keys = ScramKeys {
            client_key,
            server_key: self.secret.server_key,
            salt: self.secret.salt.clone(),
            iterations: self.secret.iterations,
        };
        let server_final = format!("v={}", STANDARD.encode(server_signature));
        Ok((server_final.into_bytes(), keys))
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ServerState::AwaitClientFirst => "AwaitClientFirst",
            ServerState::AwaitClientFinal { .. } => "AwaitClientFinal",
            ServerState::Done => "Done",
        };
        f.debug_struct("ScramServer")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// Splits `gs2-header` off client-first; returns the expected `c=` value and client-first-bare.
fn parse_gs2_header(message: &str) -> Result<(&'static str, &str), AuthError> {
    let (channel_binding, rest) = if let Some(rest) = message.strip_prefix("n,") {
        ("biws", rest)
    } else if let Some(rest) = message.strip_prefix("y,") {
        // The client could bind but believes we cannot: true, we offer no -PLUS.
        ("eSws", rest)
    } else if message.starts_with("p=") {
        return Err(AuthError::ChannelBindingNotSupported);
    } else {
        return Err(AuthError::malformed("GS2 channel binding flag"));
    };
    if rest.starts_with("a=") {
        return Err(AuthError::unsupported("authorization identity"));
    }
    let client_first_bare = rest
        .strip_prefix(',')
        .ok_or(AuthError::malformed("GS2 header"))?;
    Ok((channel_binding, client_first_bare))
}

/// Validates client-first-bare and returns the client nonce. The user name is ignored, as
/// PostgreSQL does: the user comes from the startup packet.
fn parse_client_first_bare(client_first_bare: &str) -> Result<&str, AuthError> {
    if client_first_bare.starts_with("m=") {
        return Err(AuthError::unsupported("mandatory SCRAM extension"));
    }
    let mut attributes = client_first_bare.split(',');
    attribute(attributes.next(), "n=", "user name")?;
    let nonce = attribute(attributes.next(), "r=", "client nonce")?;
    if !is_printable_nonce(nonce) {
        return Err(AuthError::malformed("client nonce"));
    }
    if !attributes.all(is_extension) {
        return Err(AuthError::malformed("client-first extension"));
    }
    Ok(nonce)
}

/// The value of `part` if it starts with `prefix` (`"r="` etc.).
fn attribute<'a>(
    part: Option<&'a str>,
    prefix: &str,
    what: &'static str,
) -> Result<&'a str, AuthError> {
    part.and_then(|part| part.strip_prefix(prefix))
        .ok_or(AuthError::malformed(what))
}

/// An optional extension attribute: `<letter>=<value>`.
fn is_extension(part: &str) -> bool {
    matches!(part.as_bytes(), [name, b'=', ..] if name.is_ascii_alphabetic())
}

/// RFC 5802 `printable`: 0x21..=0x7E except ','. Also not empty.
fn is_printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parses decimal digits (no sign); overflow saturates so range checks report it.
fn parse_count(digits: &str) -> Result<u64, AuthError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::malformed("iteration count"));
    }
    Ok(digits.parse().unwrap_or(u64::MAX))
}

fn utf8(data: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(data).map_err(|_| AuthError::malformed("SCRAM message is not UTF-8"))
}

fn decode_salt(b64: &str) -> Result<Vec<u8>, AuthError> {
    STANDARD
        .decode(b64)
        .ok()
        .filter(|salt| !salt.is_empty())
        .ok_or(AuthError::malformed("salt"))
}

fn decode_key(b64: &str, what: &'static str) -> Result<Key, AuthError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|_| AuthError::malformed(what))?;
    Key::try_from(bytes.as_slice()).map_err(|_| AuthError::malformed(what))
}

fn random_nonce() -> String {
    let mut raw = [0u8; NONCE_RANDOM_LEN];
    rand::fill(&mut raw);
    STANDARD.encode(raw)
}

fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// HMAC-SHA-256 over the concatenation of `parts`. RFC 2104 zero-pads a key shorter than the
/// 64-byte block, so padding the 32-byte key here gives the same MAC through the infallible
/// fixed-size constructor.
fn hmac_sha256(key: &Key, parts: &[&[u8]]) -> Key {
    let mut block = [0u8; 64];
    for (padded, byte) in block.iter_mut().zip(key) {
        *padded = *byte;
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn xor(a: &Key, b: &Key) -> Key {
    let mut out = *a;
    for (o, b) in out.iter_mut().zip(b) {
        *o ^= b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_with_padded_key_equals_hmac_with_slice_key() {
        let key = [0x0bu8; 32];
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(b"Hi There");
        let via_slice = <[u8; 32]>::from(mac.finalize().into_bytes());
        assert_eq!(hmac_sha256(&key, &[b"Hi ", b"There"]), via_slice);
    }
}
