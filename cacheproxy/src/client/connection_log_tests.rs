//! Tests of the connection log lines: their text, that a real proxy writes them (and only
//! when enabled), and that no AUTH argument ever reaches them.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing_subscriber::fmt::MakeWriter;

use super::*;

#[test]
fn lines_name_the_peer_the_id_and_the_reason() {
    let peer = PeerAddr(Some("10.0.0.7:51234".parse().unwrap()));
    assert_eq!(
        connected_line(peer, 9),
        "client connected: addr=10.0.0.7:51234 id=9"
    );
    assert_eq!(
        closed_line(peer, Some(9), CloseReason::Quit),
        "client closed: addr=10.0.0.7:51234 id=9 reason=QUIT"
    );
    assert_eq!(
        closed_line(PeerAddr(None), None, CloseReason::MaxClients),
        "client closed: addr=unknown reason=max number of clients reached"
    );
}

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs a proxy (whose upstream is never reached: AUTH and QUIT are answered locally),
/// connects one client that authenticates and quits, and returns the log text.
async fn one_client_session(config: Config) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The current-thread test runtime runs every proxy task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let running = crate::start(config).await.unwrap();
    let mut client = TcpStream::connect(running.addr()).await.unwrap();
    let local = client.local_addr().unwrap();
    client
        .write_all(b"*2\r\n$4\r\nAUTH\r\n$12\r\nsecret-pass1\r\n*1\r\n$4\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut replies = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut replies))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replies, b"+OK\r\n+OK\r\n");
    // The client task logs after its socket is shut down; give it a moment.
    let closed = format!("client closed: addr={local}");
    for _ in 0..100 {
        if captured.text().contains(&closed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.shutdown().await;
    let text = captured.text();
    assert!(
        !text.contains("secret-pass1"),
        "a password was logged: {text}"
    );
    text.replace(&local.to_string(), "CLIENT")
}

fn proxy_config() -> Config {
    Config {
        listen: "127.0.0.1:0".to_owned(),
        upstream: Some("127.0.0.1:1".to_owned()),
        requirepass: Some("secret-pass1".to_owned()),
        shutdown_timeout: Duration::from_millis(200),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_proxy_logs_connects_and_disconnects_with_the_reason() {
    let text = one_client_session(proxy_config()).await;
    assert!(
        text.contains("client connected: addr=CLIENT id="),
        "no connect line: {text}"
    );
    let closed = text
        .lines()
        .find(|line| line.contains("client closed: addr=CLIENT id="))
        .unwrap_or_else(|| panic!("no close line: {text}"));
    assert!(closed.ends_with("reason=QUIT"), "{closed}");
}

#[tokio::test]
async fn connection_logging_can_be_turned_off() {
    let config = Config {
        log_connections: false,
        log_disconnections: false,
        ..proxy_config()
    };
    let text = one_client_session(config).await;
    assert!(!text.contains("client connected"), "{text}");
    assert!(!text.contains("client closed"), "{text}");
}
