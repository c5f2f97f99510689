//! A small HTTP/1.1 client on hyper (one connection per request, a timeout on the whole
//! exchange), over TCP or TLS (rustls, trusting one CA bundle): scraping `/metrics` and
//! talking to the Kubernetes API server.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

/// `http[s]://host:port/path` split into (is TLS, authority, path).
pub fn split_url(url: &str) -> Result<(bool, &str, &str), String> {
    let (is_tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!(
            "{url}: only http:// and https:// URLs are supported"
        ));
    };
    Ok(match rest.find('/') {
        Some(slash) => (is_tls, &rest[..slash], &rest[slash..]),
        None => (is_tls, rest, "/"),
    })
}

/// A TLS client configuration trusting only the certificates in `ca_pem`.
pub fn tls_trusting(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem) {
        let certificate = certificate.map_err(|error| format!("CA bundle: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("CA bundle: {error}"))?;
    }
    if roots.is_empty() {
        return Err("CA bundle: no certificate in it".to_owned());
    }
    // ring, not aws-lc-rs (whose build script costs ~28 s on 2 cores); rustls 0.23.48
    // deprecates it for lacking post-quantum key exchange, which an API server does not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn exchange<S>(stream: S, request: hyper::Request<Full<Bytes>>) -> Result<Reply, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("request: {error}"))?;
    let status = response.status().as_u16();
    let bytes = http_body_util::Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|error| format!("body: {error}"))?
        .to_bytes();
    let body = String::from_utf8(bytes.to_vec()).map_err(|_| "the body is not UTF-8".to_owned())?;
    Ok(Reply { status, body })
}

/// Sends one request within `timeout`; `https://` needs `tls`.
pub async fn request(
    method: hyper::Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<String>,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<Reply, String> {
    let (is_tls, authority, path) = split_url(url)?;
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority);
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|error| error.to_string())?;
    let sent = async {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|error| format!("connect {authority}: {error}"))?;
        if !is_tls {
            return exchange(stream, request).await;
        }
        let tls = tls.ok_or_else(|| format!("{url}: https needs a CA bundle (ca_file)"))?;
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name =
            ServerName::try_from(host.to_owned()).map_err(|error| format!("{host}: {error}"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, stream)
            .await
            .map_err(|error| format!("TLS with {authority}: {error}"))?;
        exchange(stream, request).await
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer from {authority} within {timeout:?}")),
    }
}
