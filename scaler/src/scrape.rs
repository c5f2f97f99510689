//! Target discovery (static URLs, every A record of a DNS name, a file of URLs) and
//! scraping `/metrics` over HTTP/1.1 with a timeout; the text is parsed with
//! `prometheus-parse`.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prometheus_parse::Scrape;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::config::TargetsConfig;
use crate::signals::TargetScrape;

/// Largest `/metrics` body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// `http://host:port/path` split into (authority, path).
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/metrics"),
    })
}

/// The URLs to scrape this tick, deduplicated, in a stable order.
pub async fn discover(targets: &TargetsConfig) -> Vec<String> {
    let mut urls = targets.urls.clone();
    if let Some(dns) = &targets.dns {
        let (authority, path) = match dns.find('/') {
            Some(slash) => (&dns[..slash], &dns[slash..]),
            None => (dns.as_str(), "/metrics"),
        };
        match tokio::net::lookup_host(authority).await {
            Ok(addrs) => {
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                addrs.sort();
                urls.extend(addrs.into_iter().map(|addr| format!("http://{addr}{path}")));
            }
            Err(error) => warn!(%dns, %error, "cannot resolve the targets' DNS name"),
        }
    }
    if let Some(file) = &targets.file {
        match tokio::fs::read_to_string(file).await {
            Ok(text) => urls.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned),
            ),
            Err(error) => warn!(file = %file.display(), %error, "cannot read the targets file"),
        }
    }
    let mut seen = std::collections::HashSet::new();
    urls.retain(|url| seen.insert(url.clone()));
    urls
}

/// GETs `url` within `timeout`; the body as text.
pub async fn fetch(url: &str, timeout: Duration) -> Result<String, String> {
    let (authority, path) = split_url(url)?;
    let request = async {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("handshake: {error}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("request: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|error| format!("body: {error}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_owned())
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Parses Prometheus text; `None` for anything that is not.
pub fn parse(text: &str) -> Option<Scrape> {
    let lines = text
        .lines()
        // OpenMetrics' terminator is not part of the Prometheus text format.
        .filter(|line| line.trim() != "# EOF")
        .map(|line| Ok(line.to_owned()));
    Scrape::parse(lines).ok()
}

/// Scrapes every URL concurrently.
pub async fn scrape_all(urls: &[String], timeout: Duration) -> Vec<TargetScrape> {
    let tasks: Vec<_> = urls
        .iter()
        .map(|url| {
            let url = url.clone();
            tokio::spawn(async move {
                let (scrape, text) = match fetch(&url, timeout).await {
                    Ok(text) => match parse(&text) {
                        Some(scrape) if !scrape.samples.is_empty() => (Some(scrape), Some(text)),
                        _ => {
                            warn!(%url, "the target answered something that is not Prometheus metrics");
                            (None, None)
                        }
                    },
                    Err(error) => {
                        debug!(%url, %error, "scrape failed");
                        (None, None)
                    }
                };
                TargetScrape { url, scrape, text }
            })
        })
        .collect();
    let mut scrapes = Vec::with_capacity(tasks.len());
    for (task, url) in tasks.into_iter().zip(urls) {
        scrapes.push(task.await.unwrap_or_else(|_| TargetScrape {
            url: url.clone(),
            scrape: None,
            text: None,
        }));
    }
    scrapes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_garbage_is_rejected() {
        assert_eq!(
            split_url("http://a:1/metrics").unwrap(),
            ("a:1", "/metrics")
        );
        assert_eq!(split_url("http://a:1").unwrap(), ("a:1", "/metrics"));
        assert!(split_url("https://a:1").is_err());
        assert!(parse("<html>not metrics</html>").is_none_or(|scrape| scrape.samples.is_empty()));
        assert!(parse("# TYPE x gauge\nx 1\n# EOF\n").is_some());
    }
}
