//! KEDA's External Scaler service called by a real gRPC client (python grpcio, as in
//! `tests/clients/requirements.txt`): IsActive, GetMetricSpec (default and per-ScaledObject
//! metadata, an unknown metric refused), GetMetrics and StreamIsActive, answered from the
//! scaler's decisions. Built with `--features keda-grpc`.
#![cfg(feature = "keda-grpc")]

mod support;

use std::time::Duration;

use scaler::config::Config;
use support::{free_addr, serve};
use tokio_util::sync::CancellationToken;

const INSTALL: &str = "pip install -r tests/clients/requirements.txt";

const BUSY_POOLER: &str = "pgbouncer_pools_server_active_connections{database=\"app\",user=\"app\"} 4\n\
pgbouncer_pools_client_waiting_connections{database=\"app\",user=\"app\"} 3\n\
pgbouncer_databases_pool_size{name=\"app\"} 4\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_calls_every_rpc() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output();
    match probe {
        Ok(output) if output.status.success() => {}
        _ => panic!("python3 with grpcio and grpcio-tools is needed: {INSTALL}"),
    }
    let metrics = serve(BUSY_POOLER).await;
    let grpc = free_addr();
    let config = Config::from_toml(
        &format!(
            r#"
interval = "200ms"
keda_grpc_listen = "{grpc}"
min_replicas = 1
max_replicas = 8
[targets]
urls = ["{metrics}"]
warmup = "0s"
[signals.utilisation]
kind = "pool_utilisation"
target = 0.5
[actuator]
kind = "none"
"#
        ),
        "test",
    )
    .unwrap();
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let (_reload, reloads) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(scaler::run(config, reloads, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = tokio::process::Command::new("python3")
        .arg(root.join("tests/clients/keda_grpc_client.py"))
        .arg(&grpc)
        .arg(root.join("scaler/proto/externalscaler.proto"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["is_active"], true, "{result}");
    assert_eq!(result["spec"]["name"], "desired_replicas", "{result}");
    assert_eq!(result["spec"]["target"], 1, "{result}");
    // One instance at 100 % of a 50 % target: the scaler wants 2 (actuator none: it
    // reports, KEDA's HPA acts).
    assert_eq!(result["value"]["value"], 2, "{result}");
    assert_eq!(result["utilisation_spec"]["target_float"], 0.5, "{result}");
    assert_eq!(result["bad_metric"], "INVALID_ARGUMENT", "{result}");
    assert_eq!(
        result["stream"],
        serde_json::json!([true, true]),
        "{result}"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
