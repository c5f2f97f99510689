//! The HTTP endpoint on `metrics_addr` (hyper, HTTP/1.1): `/metrics` (Prometheus text),
//! `/health` (the process answers: 200) and `/ready` (200 when the pooler is not
//! shutting down and at least one configured database server accepts a connection;
//! 503 otherwise), for Prometheus, load balancers and Kubernetes probes.

use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Pooler, keepalive};
use crate::server::ServerEndpoint;

/// How long `/ready` waits for one database server to accept a connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Binds `metrics_addr` (`host:port`).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the endpoint until `stopped`. `shutdown` (the pooler is draining) turns
/// `/ready` to 503.
pub fn spawn(
    listener: TcpListener,
    pooler: Weak<Pooler>,
    shutdown: CancellationToken,
    stopped: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stopped.cancelled() => return,
                r = listener.accept() => r,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (pooler, shutdown, stopped) = (pooler.clone(), shutdown.clone(), stopped.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let (pooler, shutdown) = (pooler.clone(), shutdown.clone());
                    async move { Ok::<_, Infallible>(respond(request, pooler, shutdown).await) }
                });
                let connection =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    () = stopped.cancelled() => {}
                    r = connection => {
                        if let Err(e) = r {
                            tracing::debug!("metrics endpoint: connection error: {e}");
                        }
                    }
                }
            });
        }
    });
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn respond(
    request: Request<Incoming>,
    pooler: Weak<Pooler>,
    shutdown: CancellationToken,
) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed\n".into(),
        );
    }
    let Some(pooler) = pooler.upgrade() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "stopped\n".into());
    };
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(&pooler),
        ),
        "/health" | "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/ready" | "/readyz" => match readiness(&pooler, &shutdown).await {
            Ok(()) => text(StatusCode::OK, PLAIN, "ready\n".into()),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready: {reason}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
    }
}

/// The distinct server endpoints of every configured database (first host of a list,
/// as the pools use), the `*` entry included.
fn endpoints(pooler: &Pooler) -> Vec<ServerEndpoint> {
    let config = pooler.config();
    let mut endpoints: Vec<ServerEndpoint> = Vec::new();
    for db in config.databases.values().chain(&config.fallback_database) {
        let endpoint = match db.hosts.first() {
            Some(h) => ServerEndpoint::new(&h.host, h.port.unwrap_or(db.port)),
            None => ServerEndpoint::new(&config.general.unix_socket_dir, db.port),
        };
        if !endpoints.contains(&endpoint) {
            endpoints.push(endpoint);
        }
    }
    endpoints
}

/// Ready when not shutting down and one database server accepts a connection. The
/// probe opens and closes a socket without sending anything, which PostgreSQL does not
/// log.
async fn readiness(pooler: &Arc<Pooler>, shutdown: &CancellationToken) -> Result<(), String> {
    if shutdown.is_cancelled() || pooler.console.is_shutting_down() {
        return Err("shutting down".into());
    }
    let endpoints = endpoints(pooler);
    if endpoints.is_empty() {
        return Err("no database configured".into());
    }
    let keepalive = keepalive(&pooler.config());
    let mut failures = Vec::new();
    for endpoint in endpoints {
        match tokio::time::timeout(PROBE_TIMEOUT, endpoint.connect(&keepalive)).await {
            Ok(Ok(_stream)) => return Ok(()),
            Ok(Err(e)) => failures.push(format!("{endpoint}: {e}")),
            Err(_) => failures.push(format!("{endpoint}: timeout")),
        }
    }
    Err(failures.join("; "))
}
