//! Listening sockets (TCP on `listen_addr:listen_port`, the Unix socket
//! `unix_socket_dir/.s.PGSQL.<port>`) and the accept loop that starts one task per client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{Pooler, keepalive};
use crate::config::{Config, ListenAddr};
use crate::net::{Stream, tune_tcp};

/// Bound listening sockets, before serving.
#[derive(Debug)]
pub struct Listeners {
    tcp: Vec<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
}

impl Listeners {
    /// Binds every configured address. Port 0 picks a free port (tests).
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        let g = &config.general;
        let mut tcp = Vec::new();
        for addr in g.listen_addrs() {
            let hosts: Vec<SocketAddr> = match addr {
                ListenAddr::AllInterfaces => vec![
                    SocketAddr::from(([0, 0, 0, 0], g.listen_port)),
                    SocketAddr::from(([0u16; 8], g.listen_port)),
                ],
                ListenAddr::Host(host) => tokio::net::lookup_host((host.as_str(), g.listen_port))
                    .await?
                    .collect(),
            };
            for addr in hosts {
                let socket = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                if g.so_reuseport {
                    socket.set_reuseport(true)?;
                }
                if addr.is_ipv6() {
                    socket2::SockRef::from(&socket).set_only_v6(true)?;
                }
                match socket.bind(addr) {
                    Ok(()) => tcp.push(socket.listen(g.listen_backlog)?),
                    // `*` on a host without IPv6 still serves IPv4.
                    Err(e) if addr.is_ipv6() && !tcp.is_empty() => {
                        tracing::debug!("not listening on {addr}: {e}");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let port = tcp
            .first()
            .and_then(|l| l.local_addr().ok())
            .map_or(g.listen_port, |a| a.port());
        let unix = if g.unix_socket_dir.is_empty() {
            None
        } else {
            let path = PathBuf::from(&g.unix_socket_dir).join(format!(".s.PGSQL.{port}"));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(g.unix_socket_mode))?;
            Some((listener, path))
        };
        Ok(Self { tcp, unix })
    }

    /// The bound TCP addresses.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The Unix socket path, if any.
    pub fn unix_path(&self) -> Option<&PathBuf> {
        self.unix.as_ref().map(|(_, p)| p)
    }

    /// Accepts clients until `stop_accepting` fires; each client runs in a task tracked
    /// by `tasks`. `shutdown` is handed to sessions (idle clients leave at once).
    pub async fn serve(
        self,
        pooler: Arc<Pooler>,
        stop_accepting: CancellationToken,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) {
        let mut loops = tokio::task::JoinSet::new();
        for listener in self.tcp {
            let (pooler, stop, shutdown, tasks) = (
                Arc::clone(&pooler),
                stop_accepting.clone(),
                shutdown.clone(),
                tasks.clone(),
            );
            loops.spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        () = stop.cancelled() => return,
                        r = listener.accept() => r,
                    };
                    match accepted {
                        Ok((stream, _)) => {
                            tune_tcp(&stream, &keepalive(&pooler.config()));
                            let client = crate::client::handle(
                                Stream::Tcp(stream),
                                Arc::clone(&pooler),
                                shutdown.clone(),
                            );
                            tasks.spawn(client);
                        }
                        Err(e) => accept_failed(e).await,
                    }
                }
            });
        }
        if let Some((listener, path)) = self.unix {
            let (pooler, stop, shutdown, tasks) = (pooler, stop_accepting, shutdown, tasks);
            loops.spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        () = stop.cancelled() => break,
                        r = listener.accept() => r,
                    };
                    match accepted {
                        Ok((stream, _)) => {
                            let client = crate::client::handle(
                                Stream::Unix(stream),
                                Arc::clone(&pooler),
                                shutdown.clone(),
                            );
                            tasks.spawn(client);
                        }
                        Err(e) => accept_failed(e).await,
                    }
                }
                let _ = std::fs::remove_file(path);
            });
        }
        while loops.join_next().await.is_some() {}
    }
}

/// EMFILE and friends: log and back off briefly instead of spinning.
async fn accept_failed(error: std::io::Error) {
    tracing::warn!("accept failed: {error}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}
