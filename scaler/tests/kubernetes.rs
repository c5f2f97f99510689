//! The `kubernetes` actuator against an API server stand-in (no real apiserver installs on
//! this machine; see the reference): the `scale` subresource with resourceVersion
//! conflicts, 401/403 with the reason named, a slow server bounded by the timeout, an HPA
//! on the same Deployment refused, and every PUT body checked against the autoscaling/v1
//! Scale schema (required fields and types, no unknown fields).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use scaler::actuator::Actuator;
use scaler::config::ActuatorConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Debug, Default)]
struct ApiServer {
    replicas: u64,
    resource_version: u64,
    conflicts_left: u32,
    forbid: bool,
    hpa: bool,
    slow: bool,
    puts: Vec<Value>,
}

const TOKEN: &str = "t0k3n";

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
}

fn status(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}),
    )
}

/// The autoscaling/v1 Scale schema, as far as a client writes it.
fn check_scale_schema(body: &Value) -> Result<(), String> {
    let object = body.as_object().ok_or("not an object")?;
    for key in object.keys() {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            return Err(format!("unknown field {key}"));
        }
    }
    if body["apiVersion"] != "autoscaling/v1" || body["kind"] != "Scale" {
        return Err("apiVersion/kind".into());
    }
    if !body["metadata"]["name"].is_string() || !body["metadata"]["resourceVersion"].is_string() {
        return Err("metadata.name/resourceVersion".into());
    }
    match body["spec"]["replicas"].as_i64() {
        Some(replicas) if replicas >= 0 => Ok(()),
        _ => Err("spec.replicas must be a non-negative integer".into()),
    }
}

async fn handle(request: Request<Incoming>, state: Arc<Mutex<ApiServer>>) -> Response<Full<Bytes>> {
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|value| value == format!("Bearer {TOKEN}").as_str());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    if !authorized {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let (slow, forbid) = {
        let state = state.lock().unwrap();
        (state.slow, state.forbid)
    };
    if slow {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if forbid {
        return status(
            403,
            "Forbidden",
            "deployments.apps \"app\" is forbidden: cannot get resource \"deployments/scale\"",
        );
    }
    let mut state = state.lock().unwrap();
    match (method.as_str(), path.as_str()) {
        ("GET", "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers") => {
            let items = if state.hpa {
                json!([{"metadata": {"name": "app-hpa"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"}}}])
            } else {
                json!([])
            };
            reply(
                200,
                json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList", "items": items}),
            )
        }
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/app/scale") => reply(
            200,
            json!({
                "kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "app", "namespace": "shop", "resourceVersion": state.resource_version.to_string()},
                "spec": {"replicas": state.replicas},
                "status": {"replicas": state.replicas, "selector": "app=shop"}
            }),
        ),
        ("PUT", "/apis/apps/v1/namespaces/shop/deployments/app/scale") => {
            let body: Value = serde_json::from_slice(&body).unwrap();
            if let Err(problem) = check_scale_schema(&body) {
                return status(422, "Invalid", &problem);
            }
            state.puts.push(body.clone());
            if state.conflicts_left > 0 {
                // Someone else (a person with kubectl scale) wrote in between.
                state.conflicts_left -= 1;
                state.resource_version += 1;
                return status(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
            }
            if body["metadata"]["resourceVersion"] != state.resource_version.to_string().as_str() {
                return status(409, "Conflict", "stale resourceVersion");
            }
            state.replicas = body["spec"]["replicas"].as_u64().unwrap();
            state.resource_version += 1;
            reply(200, body)
        }
        _ => status(404, "NotFound", "not found"),
    }
}

async fn start(state: Arc<Mutex<ApiServer>>) -> String {
    start_with(state, None).await
}

/// Serves the stand-in, over TLS with `tls`; returns its base URL.
async fn start_with(
    state: Arc<Mutex<ApiServer>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = match &tls {
        Some(_) => format!("https://localhost:{}", addr.port()),
        None => format!("http://{addr}"),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = Arc::clone(&state);
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(handle(request, state).await) }
                });
                let builder = http1::Builder::new();
                let _ = match tls {
                    Some(tls) => match tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
                        Ok(stream) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Err(_) => return,
                    },
                    None => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                };
            });
        }
    });
    base
}

/// A CA and a `localhost` certificate it signed: (CA PEM, server TLS configuration).
fn cluster_ca() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

fn actuator(api_server: &str, token_file: &std::path::Path, timeout: Duration) -> Actuator {
    actuator_with_ca(api_server, token_file, None, timeout)
}

fn actuator_with_ca(
    api_server: &str,
    token_file: &std::path::Path,
    ca_file: Option<&std::path::Path>,
    timeout: Duration,
) -> Actuator {
    Actuator::new(ActuatorConfig::Kubernetes {
        api_server: api_server.to_owned(),
        namespace: "shop".to_owned(),
        deployment: "app".to_owned(),
        token_file: Some(token_file.to_path_buf()),
        ca_file: ca_file.map(std::path::Path::to_path_buf),
        timeout,
    })
}

#[tokio::test]
async fn scale_subresource_with_conflicts_auth_and_hpa() {
    let state = Arc::new(Mutex::new(ApiServer {
        replicas: 3,
        resource_version: 100,
        ..ApiServer::default()
    }));
    let api = start(Arc::clone(&state)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut kube = actuator(&api, &token, Duration::from_secs(2));

    assert_eq!(kube.current(0).await.unwrap(), 3);
    kube.scale(3, 5).await.unwrap();
    assert_eq!(state.lock().unwrap().replicas, 5);

    // A concurrent writer: the first PUT gets 409, the actuator re-reads and wins.
    state.lock().unwrap().conflicts_left = 1;
    kube.scale(5, 4).await.unwrap();
    assert_eq!(state.lock().unwrap().replicas, 4);
    assert_eq!(state.lock().unwrap().puts.len(), 3);

    // Wrong token: the error says what is wrong.
    std::fs::write(&token, "wrong").unwrap();
    let error = kube.current(0).await.unwrap_err();
    assert!(error.contains("401") && error.contains("token"), "{error}");
    std::fs::write(&token, TOKEN).unwrap();

    state.lock().unwrap().forbid = true;
    let error = kube.scale(4, 6).await.unwrap_err();
    assert!(error.contains("403") && error.contains("RBAC"), "{error}");
    state.lock().unwrap().forbid = false;

    // An HPA already scales the Deployment: refused, nothing written.
    state.lock().unwrap().hpa = true;
    let error = kube.current(0).await.unwrap_err();
    assert!(error.contains("app-hpa"), "{error}");
    state.lock().unwrap().hpa = false;

    // A slow API server: bounded by the timeout.
    state.lock().unwrap().slow = true;
    let mut impatient = actuator(&api, &token, Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert!(impatient.scale(4, 2).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(state.lock().unwrap().replicas, 4);
}

#[tokio::test]
async fn https_with_the_cluster_ca() {
    let state = Arc::new(Mutex::new(ApiServer {
        replicas: 2,
        resource_version: 7,
        ..ApiServer::default()
    }));
    let (ca_pem, server_tls) = cluster_ca();
    let api = start_with(Arc::clone(&state), Some(server_tls)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &ca_pem).unwrap();
    let mut kube = actuator_with_ca(&api, &token, Some(&ca), Duration::from_secs(2));
    assert_eq!(kube.current(0).await.unwrap(), 2);
    kube.scale(2, 3).await.unwrap();
    assert_eq!(state.lock().unwrap().replicas, 3);
    // A certificate from another CA is refused.
    let (other_ca, _) = cluster_ca();
    std::fs::write(&ca, other_ca).unwrap();
    let error = kube.current(0).await.unwrap_err();
    assert!(
        error.contains("TLS") && error.to_lowercase().contains("certificate"),
        "{error}"
    );
}
