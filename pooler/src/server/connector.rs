//! Where and how a pool opens server connections: the endpoint, credentials, startup
//! parameters and `connect_query`, behind the pool's [`Connector`] trait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use protocol::pg::scram::ScramKeys;
use tokio::net::{TcpStream, UnixStream};

use super::ServerConnection;
use crate::net::{KeepaliveOptions, Stream, tune_tcp};
use crate::pool::{ConnectFailure, ConnectFuture, Connector};

/// A server address: TCP host and port, or a Unix socket directory and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerEndpoint {
    /// `host:port` over TCP.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
    /// `<dir>/.s.PGSQL.<port>`.
    Unix {
        /// The socket directory.
        dir: String,
        /// The port, part of the socket file name.
        port: u16,
    },
}

impl ServerEndpoint {
    /// A `host` value from the config: a path means a Unix socket directory.
    pub fn new(host: &str, port: u16) -> Self {
        if host.starts_with('/') {
            Self::Unix {
                dir: host.to_owned(),
                port,
            }
        } else {
            Self::Tcp {
                host: host.to_owned(),
                port,
            }
        }
    }

    /// The host part, for the console and logs.
    pub fn host(&self) -> &str {
        match self {
            Self::Tcp { host, .. } => host,
            Self::Unix { dir, .. } => dir,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Tcp { port, .. } | Self::Unix { port, .. } => *port,
        }
    }

    /// Opens the socket (no login).
    pub async fn connect(&self, keepalive: &KeepaliveOptions) -> std::io::Result<Stream> {
        match self {
            Self::Tcp { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                tune_tcp(&stream, keepalive);
                Ok(Stream::Tcp(stream))
            }
            Self::Unix { dir, port } => {
                let path = format!("{dir}/.s.PGSQL.{port}");
                Ok(Stream::Unix(UnixStream::connect(path).await?))
            }
        }
    }
}

impl std::fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix { dir, port } => write!(f, "{dir}/.s.PGSQL.{port}"),
        }
    }
}

/// What the pooler logs in to the server with.
#[derive(Clone, Default)]
pub enum ServerCredentials {
    /// No password known (trust on the server, or not learned yet).
    #[default]
    None,
    /// A plaintext password: works with every server method.
    Password(String),
    /// An md5 secret (`md5...`): works only if the server asks for md5.
    Md5Secret(String),
    /// SCRAM keys recovered from a client's SCRAM login (pass-through).
    ScramKeys(ScramKeys),
}

impl std::fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Password(_) => "Password(..)",
            Self::Md5Secret(_) => "Md5Secret(..)",
            Self::ScramKeys(_) => "ScramKeys(..)",
        })
    }
}

/// Everything needed to open a server connection for one pool.
#[derive(Debug, Clone)]
pub struct ServerTarget {
    /// Where to connect.
    pub endpoint: ServerEndpoint,
    /// Database name on the server.
    pub database: String,
    /// User name on the server.
    pub user: String,
    /// Credentials; shared with the session that may learn SCRAM keys from a client.
    pub credentials: Arc<Mutex<ServerCredentials>>,
    /// Extra startup parameters (`client_encoding`, `datestyle`, `timezone`,
    /// `application_name` from the database entry).
    pub startup_params: Vec<(String, String)>,
    /// `connect_query`, run once on each new connection.
    pub connect_query: Option<String>,
    /// `server_connect_timeout`, covering TCP connect and login.
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive settings.
    pub keepalive: KeepaliveOptions,
    /// `max_prepared_statements` kept per server.
    pub max_prepared_statements: usize,
    /// `max_packet_size`.
    pub max_packet_size: usize,
    /// Every host of a plain `host=` list (PgBouncer's rotation), in order; empty for a
    /// single host or one host of a read/write-split entry.
    pub host_list: Vec<ServerEndpoint>,
    /// `load_balance_hosts = round-robin`: each new connection starts at the next host
    /// of `host_list`; otherwise hosts are tried in order.
    pub is_rotating_hosts: bool,
}

/// The pool's [`Connector`]: opens and logs in connections to a [`ServerTarget`].
#[derive(Debug, Clone)]
pub struct ServerConnector {
    target: Arc<ServerTarget>,
    next_host: Arc<AtomicUsize>,
}

impl ServerConnector {
    /// A connector for `target`.
    pub fn new(target: ServerTarget) -> Self {
        Self {
            target: Arc::new(target),
            next_host: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The target it connects to.
    pub fn target(&self) -> &Arc<ServerTarget> {
        &self.target
    }
}

impl Connector<ServerConnection> for ServerConnector {
    fn connect(&self) -> ConnectFuture<ServerConnection> {
        let target = Arc::clone(&self.target);
        let order = self.host_order();
        Box::pin(async move {
            let mut last = None;
            for endpoint in order {
                match open_with_timeout(&target, endpoint).await {
                    Ok(conn) => return Ok(conn),
                    // The server itself refused: another host would too (same users).
                    Err(failure) if failure.sqlstate.is_some() => return Err(failure),
                    Err(failure) => last = Some(failure),
                }
            }
            Err(last.unwrap_or_else(|| ConnectFailure {
                sqlstate: None,
                message: "no server host".to_owned(),
            }))
        })
    }
}

impl ServerConnector {
    /// The endpoints a new connection tries, in order: the one host, or a plain host
    /// list starting at the next host (round-robin) or at the first (`disable`).
    fn host_order(&self) -> Vec<ServerEndpoint> {
        let hosts = &self.target.host_list;
        if hosts.is_empty() {
            return vec![self.target.endpoint.clone()];
        }
        let start = if self.target.is_rotating_hosts {
            self.next_host.fetch_add(1, Ordering::Relaxed) % hosts.len()
        } else {
            0
        };
        hosts[start..]
            .iter()
            .chain(&hosts[..start])
            .cloned()
            .collect()
    }
}

async fn open_with_timeout(
    target: &ServerTarget,
    endpoint: ServerEndpoint,
) -> Result<ServerConnection, ConnectFailure> {
    let login = super::login::open(target, &endpoint);
    match target.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, login)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectFailure {
                    sqlstate: None,
                    message: format!(
                        "server connect timeout ({}s) to {endpoint}",
                        limit.as_secs_f64()
                    ),
                })
            }),
        None => login.await,
    }
}
