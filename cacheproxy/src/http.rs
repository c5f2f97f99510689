//! The HTTP endpoint on `metrics_addr` (hyper, HTTP/1.1): `/metrics` (Prometheus text),
//! `/health` (the process answers: 200) and `/ready` (200 when the configuration is
//! loaded, a confirmed master is known and it answers PING; 503 during a failover hold,
//! with no master, or while shutting down), for Prometheus, load balancers and
//! Kubernetes probes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use protocol::resp::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::link::ControlLink;
use crate::shared::Shared;
use crate::topology::MasterState;

/// Longest time `/ready` waits for the master's PING reply.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Serves the endpoint until `stopped`. `draining` (the proxy is shutting down) turns
/// `/ready` to 503.
pub fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    draining: CancellationToken,
    stopped: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stopped.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!("metrics endpoint: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (shared, draining, stopped) =
                (Arc::clone(&shared), draining.clone(), stopped.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let (shared, draining) = (Arc::clone(&shared), draining.clone());
                    async move { Ok::<_, Infallible>(respond(request, &shared, &draining).await) }
                });
                let connection =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    () = stopped.cancelled() => {}
                    served = connection => {
                        if let Err(error) = served {
                            tracing::debug!("metrics endpoint: connection error: {error}");
                        }
                    }
                }
            });
        }
    })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

async fn respond(
    request: Request<Incoming>,
    shared: &Shared,
    draining: &CancellationToken,
) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(shared),
        ),
        "/health" | "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/ready" | "/readyz" => match readiness(shared, draining).await {
            Ok(master) => text(StatusCode::OK, PLAIN, format!("ready: master {master}\n")),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready: {reason}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
    }
}

/// Ready when not draining, a master is confirmed (no failover hold) and it answers PING
/// (with the upstream credentials) within [`PROBE_TIMEOUT`]. Returns the master address.
async fn readiness(shared: &Shared, draining: &CancellationToken) -> Result<String, String> {
    if draining.is_cancelled() {
        return Err("shutting down".into());
    }
    let master = match &shared.topology.borrow().master {
        MasterState::Ready(addr) => *addr,
        MasterState::Unavailable { reason, .. } => return Err(format!("no master: {reason}")),
    };
    let config = shared.config.load_full();
    let timeout = config.connect_timeout.min(PROBE_TIMEOUT);
    let credentials = config.upstream_credentials();
    let probe = async {
        let mut link = ControlLink::connect(master, timeout, credentials.as_ref()).await?;
        link.command(&[b"PING"]).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT * 2, probe).await {
        Ok(Ok(Value::Error(error))) => Err(format!(
            "master {master}: {}",
            String::from_utf8_lossy(&error)
        )),
        Ok(Ok(_)) => Ok(master.to_string()),
        Ok(Err(error)) => Err(format!("master {master}: {error}")),
        Err(_) => Err(format!("master {master}: no PING reply in time")),
    }
}
