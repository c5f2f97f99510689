//! Opening a server connection: startup packet, authentication (cleartext, md5, SCRAM
//! with a password or with pass-through keys), the welcome, and `connect_query`.

use bytes::BytesMut;
use protocol::pg::auth::{md5_salted_response, md5_secret};
use protocol::pg::encode;
use protocol::pg::scram::{ScramClient, ScramCredentials};
use protocol::pg::{Authentication, BackendMessage};

use super::ServerConnection;
use super::connector::{ServerCredentials, ServerEndpoint, ServerTarget};
use super::query::QueryError;
use crate::pool::ConnectFailure;

const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Connects, logs in and runs `connect_query`.
pub(super) async fn open(
    target: &ServerTarget,
    endpoint: &ServerEndpoint,
) -> Result<ServerConnection, ConnectFailure> {
    let stream = endpoint
        .connect(&target.keepalive)
        .await
        .map_err(|e| ConnectFailure {
            sqlstate: None,
            message: format!("could not connect to server {endpoint}: {e}"),
        })?;
    let mut conn = ServerConnection::new(
        stream,
        std::sync::Arc::new(endpoint.clone()),
        target.max_prepared_statements,
    );
    login(&mut conn, target)
        .await
        .map_err(|e| e.into_connect_failure(target))?;
    if let Some(sql) = &target.connect_query {
        conn.simple_query(sql, target.max_packet_size)
            .await
            .map_err(|e| e.into_connect_failure(target))?;
    }
    Ok(conn)
}

async fn login(conn: &mut ServerConnection, target: &ServerTarget) -> Result<(), QueryError> {
    let mut out = BytesMut::with_capacity(256);
    let mut params: Vec<(&str, &str)> = vec![
        ("user", target.user.as_str()),
        ("database", target.database.as_str()),
    ];
    params.extend(
        target
            .startup_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    encode::startup_message(&mut out, &params)?;
    conn.stream.write_all_buf(&mut out).await?;

    let credentials = target.credentials.lock().clone();
    let mut scram: Option<ScramClient> = None;
    loop {
        let frame = conn.read_frame(target.max_packet_size).await?;
        match BackendMessage::decode(&frame)? {
            BackendMessage::Authentication(auth) => {
                answer_auth(auth, &credentials, &target.user, &mut scram, &mut out)?;
                if !out.is_empty() {
                    conn.stream.write_all_buf(&mut out).await?;
                }
            }
            BackendMessage::ParameterStatus { name, value } => {
                conn.params.set(
                    &String::from_utf8_lossy(name),
                    &String::from_utf8_lossy(value),
                );
            }
            BackendMessage::BackendKeyData { pid, key } => {
                conn.cancel_key = Some((pid, bytes::Bytes::copy_from_slice(key)));
            }
            BackendMessage::ErrorResponse(fields) => return Err(QueryError::from_fields(&fields)),
            BackendMessage::ReadyForQuery(_) => return Ok(()),
            BackendMessage::NoticeResponse(_) | BackendMessage::NegotiateProtocolVersion { .. } => {
            }
            _ => return Err(QueryError::Unexpected("message during server login")),
        }
    }
}

fn answer_auth(
    auth: Authentication<'_>,
    credentials: &ServerCredentials,
    user: &str,
    scram: &mut Option<ScramClient>,
    out: &mut BytesMut,
) -> Result<(), QueryError> {
    match auth {
        Authentication::Ok => {}
        Authentication::CleartextPassword => match credentials {
            ServerCredentials::Password(password) => {
                encode::password_message(out, password.as_bytes())?;
            }
            _ => return Err(QueryError::Auth("server asked for a cleartext password, and pooler has no plaintext password for this user".into())),
        },
        Authentication::Md5Password { salt } => {
            let secret = match credentials {
                ServerCredentials::Password(password) => md5_secret(user, password),
                ServerCredentials::Md5Secret(secret) => secret.clone(),
                _ => return Err(QueryError::Auth("server asked for an md5 password, and pooler has no password or md5 secret for this user".into())),
            };
            encode::password_message(out, md5_salted_response(&secret, salt).as_bytes())?;
        }
        Authentication::Sasl { mechanisms } => {
            if !mechanisms.into_iter().any(|m| m == SCRAM_SHA_256.as_bytes()) {
                return Err(QueryError::Auth("server offers no SASL mechanism pooler supports".into()));
            }
            let scram_credentials = match credentials {
                ServerCredentials::Password(password) => ScramCredentials::Password(password.clone()),
                ServerCredentials::ScramKeys(keys) => ScramCredentials::Keys(keys.clone()),
                ServerCredentials::Md5Secret(_) => return Err(QueryError::Auth("server asked for SCRAM, but pooler holds only an md5 secret for this user".into())),
                ServerCredentials::None => return Err(QueryError::Auth("password is SCRAM secret but client authentication did not provide SCRAM keys".into())),
            };
            let client = ScramClient::new(scram_credentials);
            let first = client.client_first();
            encode::sasl_initial_response(out, SCRAM_SHA_256, &first)?;
            *scram = Some(client);
        }
        Authentication::SaslContinue(data) => {
            let client = scram.as_mut().ok_or(QueryError::Unexpected("SASLContinue before SASL"))?;
            let reply = client.handle_server_first(data).map_err(|e| QueryError::Auth(e.to_string()))?;
            encode::sasl_response(out, &reply)?;
        }
        Authentication::SaslFinal(data) => {
            let client = scram.as_ref().ok_or(QueryError::Unexpected("SASLFinal before SASL"))?;
            client.verify_server_final(data).map_err(|e| QueryError::Auth(e.to_string()))?;
        }
        Authentication::Unsupported(code) => {
            return Err(QueryError::Auth(format!("server asked for an unsupported authentication method ({code})")));
        }
    }
    Ok(())
}
