//! Target discovery (static URLs, every A record of a DNS name, a file of URLs) and
//! scraping `/metrics` over HTTP/1.1 with a timeout; the text is parsed with
//! `prometheus-parse`.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus_parse::Scrape;
use tracing::{debug, warn};

use crate::config::TargetsConfig;
use crate::http_client::split_url;
use crate::signals::TargetScrape;

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

/// GETs `url` within `timeout`; the body as text (`/metrics` when the URL has no path).
pub async fn fetch(url: &str, timeout: Duration) -> Result<String, String> {
    let (_, _, path) = split_url(url)?;
    let url = if path == "/" && !url.ends_with('/') {
        format!("{url}/metrics")
    } else {
        url.to_owned()
    };
    let reply =
        crate::http_client::request(hyper::Method::GET, &url, &[], None, None, timeout).await?;
    if !(200..300).contains(&reply.status) {
        return Err(format!("HTTP {}", reply.status));
    }
    Ok(reply.body)
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
            (false, "a:1", "/metrics")
        );
        assert_eq!(split_url("http://a:1").unwrap(), (false, "a:1", "/"));
        assert_eq!(split_url("https://a:1/x").unwrap(), (true, "a:1", "/x"));
        assert!(split_url("ftp://a:1").is_err());
        assert!(parse("<html>not metrics</html>").is_none_or(|scrape| scrape.samples.is_empty()));
        assert!(parse("# TYPE x gauge\nx 1\n# EOF\n").is_some());
    }
}
