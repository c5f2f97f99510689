//! The accept loop: one `ClientConnection` task per socket, `max_clients` enforced with
//! Redis' own error text (and a `client closed` log line for refused clients).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::client;
use crate::client::connection_log::{CloseReason, PeerAddr, log_closed};
use crate::shared::Shared;

/// Accepts clients until `stop_accepting`; each client drains on `shutdown`.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
    clients: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = stop_accepting.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, _)) => {
                let limit = shared.config.load().max_clients;
                let open = usize::try_from(shared.stats.clients.load(Ordering::Relaxed))
                    .unwrap_or_default();
                if open >= limit {
                    let peer = PeerAddr(socket.peer_addr().ok());
                    log_closed(&shared.config.load(), peer, None, CloseReason::MaxClients);
                    clients.spawn(refuse(socket));
                    continue;
                }
                clients.spawn(client::serve(socket, Arc::clone(&shared), shutdown.clone()));
            }
            Err(error) => {
                // Usually EMFILE: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn refuse(mut socket: TcpStream) {
    let _ = socket
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = socket.shutdown().await;
}
