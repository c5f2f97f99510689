//! Unit tests of local answers and proxy-side authentication.

use bytes::BytesMut;
use protocol::resp::{Request, RespVersion};

use super::*;
use crate::router::LocalCommand;

fn request(text: &str) -> Request {
    let args: Vec<&[u8]> = text.split(' ').map(str::as_bytes).collect();
    Request::from_args(&args)
}

fn run(
    command: LocalCommand,
    text: &str,
    session: &mut Session,
    config: &Config,
) -> (String, LocalOutcome) {
    let mut out = BytesMut::new();
    let context = LocalContext {
        config,
        server_version: "7.0.15",
    };
    let outcome = answer(command, &request(text), session, &context, &mut out);
    (String::from_utf8_lossy(&out).into_owned(), outcome)
}

fn protected() -> Config {
    Config {
        requirepass: Some("pw".to_owned()),
        users: vec!["alice:secret".to_owned()],
        ..Config::default()
    }
}

#[test]
fn ping_echo_quit() {
    let config = Config::default();
    let mut session = Session::new(1, &config);
    assert_eq!(
        run(LocalCommand::Ping, "PING", &mut session, &config).0,
        "+PONG\r\n"
    );
    assert_eq!(
        run(LocalCommand::Ping, "PING hi", &mut session, &config).0,
        "$2\r\nhi\r\n"
    );
    assert_eq!(
        run(LocalCommand::Echo, "ECHO x", &mut session, &config).0,
        "$1\r\nx\r\n"
    );
    assert!(
        run(LocalCommand::Echo, "ECHO", &mut session, &config)
            .0
            .starts_with("-ERR wrong number")
    );
    assert_eq!(
        run(LocalCommand::Quit, "QUIT", &mut session, &config),
        ("+OK\r\n".to_owned(), LocalOutcome::Close)
    );
}

#[test]
fn auth_against_requirepass_and_users() {
    let config = protected();
    let mut session = Session::new(1, &config);
    assert!(!session.is_authenticated);
    assert!(
        run(LocalCommand::Auth, "AUTH wrong", &mut session, &config)
            .0
            .starts_with("-WRONGPASS")
    );
    assert!(!session.is_authenticated);
    assert_eq!(
        run(LocalCommand::Auth, "AUTH pw", &mut session, &config).0,
        "+OK\r\n"
    );
    assert!(session.is_authenticated);
    let mut alice = Session::new(2, &config);
    assert_eq!(
        run(LocalCommand::Auth, "AUTH alice secret", &mut alice, &config).0,
        "+OK\r\n"
    );
    let mut mallory = Session::new(3, &config);
    assert!(
        run(LocalCommand::Auth, "AUTH alice pw", &mut mallory, &config)
            .0
            .starts_with("-WRONGPASS")
    );
    let open = Config::default();
    let mut anyone = Session::new(4, &open);
    assert!(
        run(LocalCommand::Auth, "AUTH x", &mut anyone, &open)
            .0
            .contains("without any password configured")
    );
}

#[test]
fn hello_switches_protocol_and_authenticates() {
    let config = protected();
    let mut session = Session::new(7, &config);
    let (text, _) = run(LocalCommand::Hello, "HELLO 3", &mut session, &config);
    assert!(text.starts_with("-NOAUTH HELLO must be called"), "{text}");
    let (text, _) = run(
        LocalCommand::Hello,
        "HELLO 3 AUTH default pw SETNAME app",
        &mut session,
        &config,
    );
    assert!(
        text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{text}"
    );
    assert!(
        text.contains("$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:7\r\n"),
        "{text}"
    );
    assert_eq!(session.protocol, RespVersion::Resp3);
    assert_eq!(session.name.as_deref(), Some(b"app".as_slice()));
    let (text, _) = run(LocalCommand::Hello, "HELLO 2", &mut session, &config);
    assert!(text.starts_with("*14\r\n"));
    assert_eq!(
        run(LocalCommand::Hello, "HELLO 4", &mut session, &config).0,
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert!(
        run(LocalCommand::Hello, "HELLO x", &mut session, &config)
            .0
            .starts_with("-ERR Protocol version")
    );
    assert!(
        run(LocalCommand::Hello, "HELLO 3 BOGUS", &mut session, &config)
            .0
            .contains("Syntax error in HELLO option 'BOGUS'")
    );
}

#[test]
fn client_names_and_unsubscribe_without_subscriptions() {
    let config = Config::default();
    let mut session = Session::new(1, &config);
    assert_eq!(
        run(
            LocalCommand::ClientGetName,
            "CLIENT GETNAME",
            &mut session,
            &config
        )
        .0,
        "$-1\r\n"
    );
    assert_eq!(
        run(
            LocalCommand::ClientSetName,
            "CLIENT SETNAME app",
            &mut session,
            &config
        )
        .0,
        "+OK\r\n"
    );
    assert_eq!(
        run(
            LocalCommand::ClientGetName,
            "CLIENT GETNAME",
            &mut session,
            &config
        )
        .0,
        "$3\r\napp\r\n"
    );
    assert!(
        run(
            LocalCommand::ClientSetName,
            "CLIENT SETNAME a\nb",
            &mut session,
            &config
        )
        .0
        .starts_with("-ERR Client names")
    );
    let (text, _) = run(
        LocalCommand::UnsubscribeNone(PubSubKind::Channel),
        "UNSUBSCRIBE",
        &mut session,
        &config,
    );
    assert_eq!(text, "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    let (_, outcome) = run(LocalCommand::Reset, "RESET", &mut session, &config);
    assert_eq!(outcome, LocalOutcome::Reset);
    assert_eq!(session.name, None);
}

#[test]
fn broken_transactions_end_cleanly() {
    let config = Config::default();
    let mut session = Session::new(1, &config);
    let mut out = BytesMut::new();
    session.broken = Some(BrokenTransaction::WatchLost);
    assert!(answer_broken_transaction(&request("GET k"), &mut session, &mut out).is_none());
    answer_broken_transaction(&request("MULTI"), &mut session, &mut out).unwrap();
    answer_broken_transaction(&request("INCR k"), &mut session, &mut out).unwrap();
    answer_broken_transaction(&request("EXEC"), &mut session, &mut out).unwrap();
    assert_eq!(&out[..], b"+OK\r\n+QUEUED\r\n*-1\r\n");
    assert_eq!(session.broken, None);
    out.clear();
    session.broken = Some(BrokenTransaction::MultiLost);
    answer_broken_transaction(&request("SET k v"), &mut session, &mut out).unwrap();
    answer_broken_transaction(&request("EXEC"), &mut session, &mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("-ERR connection to master lost"), "{text}");
    assert!(text.ends_with("-EXECABORT Transaction discarded because of previous errors.\r\n"));
}

#[test]
fn info_gets_the_proxy_section() {
    let rewritten = append_info_section(b"$13\r\n# Server\r\na:1\r\n", "# Proxy\r\nx:1\r\n");
    assert_eq!(
        &rewritten[..],
        b"$31\r\n# Server\r\na:1\r\n\r\n# Proxy\r\nx:1\r\n\r\n"
    );
    let verbatim = append_info_section(b"=9\r\ntxt:a:1\r\n\r\n", "# P\r\n");
    assert_eq!(&verbatim[..], b"=16\r\ntxt:a:1\r\n\r\n# P\r\n\r\n");
    assert_eq!(
        &append_info_section(b"-ERR x\r\n", "# P\r\n")[..],
        b"-ERR x\r\n"
    );
}
