//! The untagged first packets: refuse SSL/GSS encryption (no TLS yet), pass cancel
//! requests on, and check a StartupMessage's parameters as PgBouncer does.

use bytes::{Buf, BytesMut};
use protocol::pg::{CancelRequest, StartupMessage, StartupPacket, decode_startup, sqlstate};

use super::LoginError;
use crate::net::Stream;
use crate::session::params::canonical_name;

/// What a new connection asked for.
#[derive(Debug)]
pub enum FirstPacket {
    /// A login.
    Startup(StartupMessage),
    /// A cancel request for another connection.
    Cancel(CancelRequest),
}

/// Reads packets until a StartupMessage or CancelRequest arrives, answering `N` to
/// SSLRequest and GSSENCRequest.
pub async fn read_first_packet(
    stream: &mut Stream,
    input: &mut BytesMut,
) -> Result<FirstPacket, LoginError> {
    loop {
        let decoded = decode_startup(input).map_err(|e| match input.get(4..8) {
            Some([0, 2, 0, 0]) => LoginError::rejected(
                sqlstate::PROTOCOL_VIOLATION,
                "old V2 protocol not supported",
            ),
            _ => LoginError::Protocol(e),
        })?;
        match decoded {
            Some((packet, consumed)) => {
                input.advance(consumed);
                match packet {
                    StartupPacket::Startup(message) => return Ok(FirstPacket::Startup(message)),
                    StartupPacket::Cancel(cancel) => return Ok(FirstPacket::Cancel(cancel)),
                    StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                        if !input.is_empty() {
                            // Bytes sent before our answer must not be trusted.
                            return Err(LoginError::rejected(
                                sqlstate::PROTOCOL_VIOLATION,
                                "received unencrypted data after SSL request",
                            ));
                        }
                        let mut answer = BytesMut::from(&b"N"[..]);
                        stream
                            .write_all_buf(&mut answer)
                            .await
                            .map_err(LoginError::Io)?;
                    }
                }
            }
            None => {
                if stream.read_into(input).await.map_err(LoginError::Io)? == 0 {
                    return Err(LoginError::ClientGone);
                }
            }
        }
    }
}

/// The tracked parameters a client asked for at startup (`options=-c k=v` included),
/// after PgBouncer's checks: anything else is `unsupported startup parameter` unless
/// listed in `ignore_startup_parameters`.
pub fn startup_parameters(
    message: &StartupMessage,
    ignored: &[String],
    extra_tracked: &[String],
) -> Result<Vec<(String, String)>, LoginError> {
    let mut tracked = Vec::new();
    for (name, value) in &message.params {
        let name = name.as_str();
        if matches!(name, "user" | "database" | "replication") || name.starts_with("_pq_.") {
            continue;
        }
        if name == "options" {
            parse_options(value, ignored, extra_tracked, &mut tracked)?;
            continue;
        }
        if let Some(canonical) = canonical_name(name, extra_tracked) {
            tracked.push((canonical.to_owned(), value.clone()));
        } else if !ignored.iter().any(|i| i.eq_ignore_ascii_case(name)) {
            return Err(LoginError::rejected(
                sqlstate::PROTOCOL_VIOLATION,
                format!("unsupported startup parameter: {name}"),
            ));
        }
    }
    Ok(tracked)
}

fn parse_options(
    options: &str,
    ignored: &[String],
    extra_tracked: &[String],
    tracked: &mut Vec<(String, String)>,
) -> Result<(), LoginError> {
    let unsupported = || {
        LoginError::rejected(
            sqlstate::PROTOCOL_VIOLATION,
            "unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed",
        )
    };
    let mut words = options.split_ascii_whitespace();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().ok_or_else(unsupported)?
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest
        } else if let Some(rest) = word.strip_prefix("--") {
            rest
        } else {
            return Err(unsupported());
        };
        let (name, value) = setting.split_once('=').ok_or_else(unsupported)?;
        let name = name.replace('-', "_");
        match canonical_name(&name, extra_tracked) {
            Some(canonical) => tracked.push((canonical.to_owned(), value.to_owned())),
            None if ignored.iter().any(|i| i.eq_ignore_ascii_case(&name)) => {}
            None => return Err(unsupported()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(params: &[(&str, &str)]) -> StartupMessage {
        StartupMessage {
            major: 3,
            minor: 0,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn tracked_parameters_are_kept_with_their_canonical_names() {
        let m = startup(&[
            ("user", "u"),
            ("datestyle", "ISO"),
            ("application_name", "psql"),
        ]);
        let tracked = startup_parameters(&m, &[], &[]).unwrap();
        assert_eq!(tracked[0], ("DateStyle".into(), "ISO".into()));
        assert_eq!(tracked[1], ("application_name".into(), "psql".into()));
    }

    #[test]
    fn unknown_parameters_are_rejected_unless_ignored() {
        let m = startup(&[("user", "u"), ("extra_float_digits", "3")]);
        let err = startup_parameters(&m, &[], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported startup parameter: extra_float_digits"
        );
        assert!(startup_parameters(&m, &["extra_float_digits".into()], &[]).is_ok());
    }

    #[test]
    fn options_accept_dash_c_settings() {
        let m = startup(&[
            ("user", "u"),
            ("options", "-c search_path=app --TimeZone=UTC"),
        ]);
        let tracked = startup_parameters(&m, &[], &[]).unwrap();
        assert_eq!(
            tracked,
            vec![
                ("search_path".to_owned(), "app".to_owned()),
                ("TimeZone".to_owned(), "UTC".to_owned())
            ]
        );
        let bad = startup(&[("user", "u"), ("options", "-X")]);
        assert!(startup_parameters(&bad, &[], &[]).is_err());
    }
}
