//! The `kubernetes` actuator: a Deployment's `scale` subresource (autoscaling/v1 Scale)
//! through the API server — GET for the count, PUT with the `resourceVersion` read (a 409
//! re-reads and retries) — and a refusal when a HorizontalPodAutoscaler already scales the
//! same Deployment. In a cluster: `https://kubernetes.default.svc` with the service
//! account's token and CA (or plain HTTP through a `kubectl proxy` sidecar).

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use crate::http_client::{Reply, request};

/// Attempts of one scale change against concurrent writers (409 Conflict).
const CONFLICT_RETRIES: usize = 3;

/// Where the Deployment is and how to reach the API server.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `http://host:port` of the API server (or of `kubectl proxy`).
    pub api_server: String,
    /// Namespace.
    pub namespace: String,
    /// Deployment name.
    pub name: String,
    /// Bearer token (read from `token_file`), if any.
    pub token: Option<String>,
    /// TLS trusting the cluster's CA (`https://` API servers).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Per-request timeout.
    pub timeout: Duration,
}

fn explain(reply: &Reply, what: &str) -> String {
    let message = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|status| status["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| reply.body.chars().take(200).collect());
    let hint = match reply.status {
        401 => " (the token is missing or invalid)",
        403 => {
            " (RBAC: the scaler needs get/update on deployments/scale and list on horizontalpodautoscalers)"
        }
        404 => " (no such Deployment in this namespace)",
        429 => " (the API server is rate limiting; retried next tick)",
        _ => "",
    };
    format!("{what}: HTTP {}{hint}: {message}", reply.status)
}

impl Deployment {
    fn scale_url(&self) -> String {
        format!(
            "{}/apis/apps/v1/namespaces/{}/deployments/{}/scale",
            self.api_server.trim_end_matches('/'),
            self.namespace,
            self.name
        )
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("accept", "application/json".to_owned()),
            ("content-type", "application/json".to_owned()),
        ];
        if let Some(token) = &self.token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        headers
    }

    async fn call(&self, method: Method, url: &str, body: Option<String>) -> Result<Reply, String> {
        request(
            method,
            url,
            &self.headers(),
            body,
            self.tls.as_ref(),
            self.timeout,
        )
        .await
    }

    /// The Scale object.
    async fn get_scale(&self) -> Result<Value, String> {
        let reply = self.call(Method::GET, &self.scale_url(), None).await?;
        if reply.status != 200 {
            return Err(explain(&reply, "GET scale"));
        }
        serde_json::from_str(&reply.body)
            .map_err(|error| format!("GET scale: not a Scale object: {error}"))
    }

    /// Refuses to act on a Deployment an HPA already scales (two controllers would fight).
    pub async fn check_no_hpa(&self) -> Result<(), String> {
        let url = format!(
            "{}/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
            self.api_server.trim_end_matches('/'),
            self.namespace
        );
        let reply = self.call(Method::GET, &url, None).await?;
        if reply.status != 200 {
            return Err(explain(&reply, "list horizontalpodautoscalers"));
        }
        let list: Value =
            serde_json::from_str(&reply.body).map_err(|error| format!("HPA list: {error}"))?;
        for hpa in list["items"].as_array().into_iter().flatten() {
            let target = &hpa["spec"]["scaleTargetRef"];
            if target["kind"] == "Deployment" && target["name"] == self.name.as_str() {
                return Err(format!(
                    "HorizontalPodAutoscaler {} already scales deployment/{}: refusing to fight it (remove it, or run the scaler with `kind = \"none\"` and let KEDA read /keda)",
                    hpa["metadata"]["name"].as_str().unwrap_or("?"),
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// `spec.replicas` of the Deployment.
    pub async fn current(&self) -> Result<u32, String> {
        self.check_no_hpa().await?;
        let scale = self.get_scale().await?;
        scale["spec"]["replicas"]
            .as_u64()
            .and_then(|replicas| u32::try_from(replicas).ok())
            .ok_or_else(|| format!("GET scale: no spec.replicas in {scale}"))
    }

    /// Sets `spec.replicas` to `desired`, re-reading on a conflict.
    pub async fn scale(&self, desired: u32) -> Result<(), String> {
        for _ in 0..CONFLICT_RETRIES {
            let scale = self.get_scale().await?;
            let body = json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "resourceVersion": scale["metadata"]["resourceVersion"],
                },
                "spec": { "replicas": desired },
            });
            let reply = self
                .call(Method::PUT, &self.scale_url(), Some(body.to_string()))
                .await?;
            match reply.status {
                200 | 201 => return Ok(()),
                409 => continue,
                _ => return Err(explain(&reply, "PUT scale")),
            }
        }
        Err(format!(
            "PUT scale: still conflicting after {CONFLICT_RETRIES} attempts"
        ))
    }
}
