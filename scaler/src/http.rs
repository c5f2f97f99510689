//! The scaler's HTTP endpoint (hyper, HTTP/1.1): `/metrics`, `/keda` (what KEDA's
//! `metrics-api` scaler reads: `desired_replicas`, `utilisation_sum`, `waiting_sum`,
//! `active`), `/health` and `/ready` (a scrape succeeded within three intervals).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::status::Status;

/// Serves until the task is dropped; `interval` is the scrape interval (for `/ready`).
pub fn spawn(
    listener: TcpListener,
    status: Arc<Status>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!("http endpoint: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let status = Arc::clone(&status);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let status = Arc::clone(&status);
                    async move { Ok::<_, Infallible>(respond(&request, &status, interval)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn respond(
    request: &Request<Incoming>,
    status: &Status,
    interval: Duration,
) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            status.render(),
        ),
        "/keda" => match status.last() {
            Some(report) => {
                let wants_text = request
                    .uri()
                    .query()
                    .is_some_and(|query| query.contains("format=prometheus"));
                if wants_text {
                    let body = format!(
                        "# TYPE desired_replicas gauge\ndesired_replicas {}\n# TYPE utilisation_sum gauge\nutilisation_sum {}\n# TYPE waiting_sum gauge\nwaiting_sum {}\n# TYPE active gauge\nactive {}\n",
                        report.desired_replicas,
                        report.utilisation_sum,
                        report.waiting_sum,
                        u8::from(report.active)
                    );
                    reply(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        body,
                    )
                } else {
                    let body = serde_json::to_string(&report).unwrap_or_default();
                    reply(StatusCode::OK, "application/json", body)
                }
            }
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                "no decision yet\n".into(),
            ),
        },
        "/health" => reply(StatusCode::OK, PLAIN, "ok\n".into()),
        "/ready" => {
            if status.is_ready(interval * 3) {
                reply(StatusCode::OK, PLAIN, "ready\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    PLAIN,
                    "no successful scrape in the last three intervals\n".into(),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: /metrics /keda /health /ready\n".into(),
        ),
    }
}
