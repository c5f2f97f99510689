//! Authenticating a client against its stored secret: cleartext, md5 and SCRAM-SHA-256
//! (md5 falls back to SCRAM when only a SCRAM secret is known, as PgBouncer does).

use bytes::BytesMut;
use protocol::pg::auth::{StoredSecret, md5_secret, md5_verify};
use protocol::pg::scram::{ScramKeys, ScramSecret, ScramServer};
use protocol::pg::{
    FrameSplitter, FrontendTag, encode, parse_password, parse_sasl_initial_response,
};
use rand::RngExt;
use subtle::ConstantTimeEq;

use super::LoginError;
use crate::net::Stream;

/// How this client must prove who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// No password asked (`trust`, `any`).
    Trust,
    /// Cleartext password (`plain`).
    Plain,
    /// md5, or SCRAM when the stored secret is a SCRAM secret.
    Md5,
    /// SCRAM-SHA-256.
    Scram,
}

/// Runs the password exchange and returns the SCRAM keys the client proved, if any, so
/// the pool can log in to the server with them (pass-through).
pub async fn authenticate(
    stream: &mut Stream,
    input: &mut BytesMut,
    method: ClientAuthMethod,
    user: &str,
    secret: Option<&StoredSecret>,
    scram_iterations: u32,
) -> Result<Option<ScramKeys>, LoginError> {
    let failed = || LoginError::auth("password authentication failed");
    let mut out = BytesMut::with_capacity(128);
    match (method, secret) {
        (ClientAuthMethod::Trust, _) => Ok(None),
        (_, None) => Err(failed()),
        (ClientAuthMethod::Md5 | ClientAuthMethod::Scram, Some(StoredSecret::Scram(s))) => {
            scram_exchange(stream, input, ScramServer::new(s.clone()))
                .await
                .map(Some)
        }
        (ClientAuthMethod::Scram, Some(StoredSecret::Plain(password))) => {
            scram_exchange(
                stream,
                input,
                ScramServer::from_password(password, scram_iterations),
            )
            .await?;
            Ok(None)
        }
        (ClientAuthMethod::Scram, Some(StoredSecret::Md5(_))) => Err(failed()),
        (ClientAuthMethod::Md5, Some(stored)) => {
            let salt: [u8; 4] = rand::rng().random();
            encode::authentication_md5_password(&mut out, salt);
            stream
                .write_all_buf(&mut out)
                .await
                .map_err(LoginError::Io)?;
            let frame = read_password_frame(stream, input).await?;
            let response = parse_password(frame.body()).map_err(LoginError::Protocol)?;
            let expected = match stored {
                StoredSecret::Md5(secret) => secret.clone(),
                StoredSecret::Plain(password) => md5_secret(user, password),
                StoredSecret::Scram(_) => return Err(failed()),
            };
            if md5_verify(&expected, salt, response) {
                Ok(None)
            } else {
                Err(failed())
            }
        }
        (ClientAuthMethod::Plain, Some(stored)) => {
            encode::authentication_cleartext_password(&mut out);
            stream
                .write_all_buf(&mut out)
                .await
                .map_err(LoginError::Io)?;
            let frame = read_password_frame(stream, input).await?;
            let password = parse_password(frame.body()).map_err(LoginError::Protocol)?;
            let password = std::str::from_utf8(password).map_err(|_| failed())?;
            if cleartext_matches(stored, user, password) {
                Ok(None)
            } else {
                Err(failed())
            }
        }
    }
}

fn cleartext_matches(stored: &StoredSecret, user: &str, password: &str) -> bool {
    match stored {
        StoredSecret::Plain(p) => bool::from(p.as_bytes().ct_eq(password.as_bytes())),
        StoredSecret::Md5(secret) => bool::from(
            secret
                .as_bytes()
                .ct_eq(md5_secret(user, password).as_bytes()),
        ),
        StoredSecret::Scram(secret) => {
            let derived = ScramSecret::from_password(password, &secret.salt, secret.iterations);
            bool::from(derived.stored_key.ct_eq(&secret.stored_key))
        }
    }
}

async fn scram_exchange(
    stream: &mut Stream,
    input: &mut BytesMut,
    mut server: ScramServer,
) -> Result<ScramKeys, LoginError> {
    let failed = || LoginError::auth("SASL authentication failed");
    let mut out = BytesMut::with_capacity(256);
    encode::authentication_sasl(&mut out, &[protocol::pg::scram::SCRAM_SHA_256])
        .map_err(LoginError::Protocol)?;
    stream
        .write_all_buf(&mut out)
        .await
        .map_err(LoginError::Io)?;

    let frame = read_password_frame(stream, input).await?;
    let (mechanism, data) =
        parse_sasl_initial_response(frame.body()).map_err(LoginError::Protocol)?;
    if mechanism != protocol::pg::scram::SCRAM_SHA_256 {
        return Err(LoginError::auth(
            "unsupported SASL authentication mechanism",
        ));
    }
    let first = server
        .handle_client_first(data.unwrap_or_default())
        .map_err(|_| failed())?;
    encode::authentication_sasl_continue(&mut out, &first).map_err(LoginError::Protocol)?;
    stream
        .write_all_buf(&mut out)
        .await
        .map_err(LoginError::Io)?;

    let frame = read_password_frame(stream, input).await?;
    let (last, keys) = server
        .handle_client_final(frame.body())
        .map_err(|_| failed())?;
    encode::authentication_sasl_final(&mut out, &last).map_err(LoginError::Protocol)?;
    stream
        .write_all_buf(&mut out)
        .await
        .map_err(LoginError::Io)?;
    Ok(keys)
}

/// Reads the client's next message, which must be a password-family message.
async fn read_password_frame(
    stream: &mut Stream,
    input: &mut BytesMut,
) -> Result<protocol::pg::Frame, LoginError> {
    // Password messages are small; a huge one is an attack, not a password.
    let splitter = FrameSplitter::new(64 * 1024);
    loop {
        if let Some(frame) = splitter.split(input).map_err(LoginError::Protocol)? {
            return match frame.frontend_tag() {
                Some(FrontendTag::Password) => Ok(frame),
                Some(FrontendTag::Terminate) => Err(LoginError::ClientGone),
                _ => Err(LoginError::auth("expected a password message")),
            };
        }
        if stream.read_into(input).await.map_err(LoginError::Io)? == 0 {
            return Err(LoginError::ClientGone);
        }
    }
}
