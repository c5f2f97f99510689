//! protocol's SCRAM-SHA-256 client logs in to a real PostgreSQL server, with a password
//! and with the keys recovered from a client proof (the pooler's pass-through), and md5.

use bytes::BytesMut;
use integration_tests::{AuthMethod, PgCluster, PgOptions, PgUser};
use protocol::pg::auth::{md5_salted_response, md5_secret};
use protocol::pg::scram::{ScramClient, ScramCredentials, ScramSecret, ScramServer};
use protocol::pg::{Authentication, BackendMessage, FrameSplitter, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Logs in as `user` and returns the authentication requests the server made.
async fn login(
    port: u16,
    user: &str,
    mut credentials: Option<ScramCredentials>,
    password: &str,
) -> Result<Vec<String>, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = BytesMut::new();
    encode::startup_message(&mut out, &[("user", user), ("database", "postgres")]).unwrap();
    stream.write_all(&out).await.unwrap();
    let splitter = FrameSplitter::new(1 << 20);
    let mut input = BytesMut::new();
    let mut client: Option<ScramClient> = None;
    let mut seen = Vec::new();
    loop {
        let frame = loop {
            if let Some(frame) = splitter.split(&mut input).unwrap() {
                break frame;
            }
            if stream.read_buf(&mut input).await.unwrap() == 0 {
                return Err("server closed".into());
            }
        };
        let mut out = BytesMut::new();
        match BackendMessage::decode(&frame).unwrap() {
            BackendMessage::Authentication(Authentication::Sasl { .. }) => {
                seen.push("SASL".to_owned());
                let c = ScramClient::new(credentials.take().expect("credentials"));
                encode::sasl_initial_response(&mut out, "SCRAM-SHA-256", &c.client_first())
                    .unwrap();
                client = Some(c);
            }
            BackendMessage::Authentication(Authentication::SaslContinue(data)) => {
                let reply = client
                    .as_mut()
                    .unwrap()
                    .handle_server_first(data)
                    .map_err(|e| e.to_string())?;
                encode::sasl_response(&mut out, &reply).unwrap();
            }
            BackendMessage::Authentication(Authentication::SaslFinal(data)) => {
                client
                    .as_ref()
                    .unwrap()
                    .verify_server_final(data)
                    .map_err(|e| e.to_string())?;
                seen.push("SASLFinal verified".to_owned());
            }
            BackendMessage::Authentication(Authentication::Md5Password { salt }) => {
                seen.push("MD5".to_owned());
                let response = md5_salted_response(&md5_secret(user, password), salt);
                encode::password_message(&mut out, response.as_bytes()).unwrap();
            }
            BackendMessage::Authentication(Authentication::Ok) => seen.push("Ok".to_owned()),
            BackendMessage::ErrorResponse(fields) => {
                return Err(
                    String::from_utf8_lossy(fields.message().unwrap_or_default()).into_owned(),
                );
            }
            BackendMessage::ReadyForQuery(_) => return Ok(seen),
            _ => {}
        }
        if !out.is_empty() {
            stream.write_all(&out).await.unwrap();
        }
    }
}

fn cluster() -> PgCluster {
    PgCluster::start(PgOptions {
        users: vec![
            PgUser::new("scram_user", "pencil", AuthMethod::ScramSha256),
            PgUser::new("md5_user", "md5-pass", AuthMethod::Md5),
        ],
        ..PgOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn scram_client_logs_in_with_a_password_and_with_pass_through_keys() {
    let pg = cluster();
    let port = pg.primary().port();
    let with_password = login(
        port,
        "scram_user",
        Some(ScramCredentials::Password("pencil".into())),
        "",
    )
    .await;
    assert_eq!(with_password.unwrap(), ["SASL", "SASLFinal verified", "Ok"]);

    let wrong = login(
        port,
        "scram_user",
        Some(ScramCredentials::Password("wrong".into())),
        "",
    )
    .await;
    assert!(
        wrong
            .unwrap_err()
            .contains("password authentication failed")
    );

    // The pooler's pass-through: verify a client against the server's own secret,
    // keep the recovered keys, and log in to the server with them.
    let stored = pg
        .primary()
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'")
        .unwrap();
    let secret = ScramSecret::parse(&stored).unwrap();
    let mut server = ScramServer::new(secret);
    let mut app = ScramClient::new(ScramCredentials::Password("pencil".into()));
    let first = server.handle_client_first(&app.client_first()).unwrap();
    let last = server
        .handle_client_final(&app.handle_server_first(&first).unwrap())
        .unwrap();
    let (server_final, keys) = last;
    app.verify_server_final(&server_final).unwrap();
    let with_keys = login(port, "scram_user", Some(ScramCredentials::Keys(keys)), "").await;
    assert_eq!(with_keys.unwrap(), ["SASL", "SASLFinal verified", "Ok"]);
}

#[tokio::test]
async fn md5_response_logs_in() {
    let pg = cluster();
    let seen = login(pg.primary().port(), "md5_user", None, "md5-pass")
        .await
        .unwrap();
    assert_eq!(seen, ["MD5", "Ok"]);
}
