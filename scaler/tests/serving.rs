//! The scaler's HTTP side as KEDA and Prometheus read it: `/keda` answers JSON whose
//! `desired_replicas` KEDA's metrics-api scaler reads with `valueLocation`, `/metrics`
//! carries the scaler's families, `/ready` turns 200 after a successful scrape, and a
//! target that answers garbage counts as down without stopping the loop.

mod support;

use std::time::Duration;

use scaler::config::Config;
use scaler::scrape::fetch;
use support::{free_addr, serve};
use tokio_util::sync::CancellationToken;

const BUSY_POOLER: &str = "# TYPE pgbouncer_pools_server_active_connections gauge\n\
pgbouncer_pools_server_active_connections{database=\"app\",user=\"app\"} 4\n\
# TYPE pgbouncer_pools_client_waiting_connections gauge\n\
pgbouncer_pools_client_waiting_connections{database=\"app\",user=\"app\"} 6\n\
# TYPE pgbouncer_databases_pool_size gauge\n\
pgbouncer_databases_pool_size{name=\"app\"} 4\n";

#[tokio::test]
async fn keda_metrics_and_probes() {
    let busy = serve(BUSY_POOLER).await;
    let garbage = serve("<html>this is not Prometheus</html>").await;
    let listen = free_addr();
    let config = Config::from_toml(
        &format!(
            r#"
interval = "200ms"
listen = "{listen}"
min_replicas = 1
max_replicas = 4
[targets]
urls = ["{busy}", "{garbage}"]
warmup = "0s"
[signals.utilisation]
kind = "pool_utilisation"
# The garbage target is a missing metric, which HPA counts as 0 % for a scale-up.
target = 0.3
[actuator]
kind = "dry-run"
initial = 1
"#
        ),
        "test",
    )
    .unwrap();
    config.validate().unwrap();
    let shutdown = CancellationToken::new();
    let (_reload, reloads) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(scaler::run(config, reloads, shutdown.clone()));
    let base = format!("http://{listen}");
    let mut keda = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(body) = fetch(&format!("{base}/keda"), Duration::from_secs(1)).await {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap();
            if value["desired_replicas"].as_u64().unwrap_or(0) >= 2 {
                keda = Some(value);
                break;
            }
        }
    }
    let keda = keda.expect("/keda reports the scale-out");
    // KEDA metrics-api: valueLocation "desired_replicas" (gjson path) must be a number.
    assert!(keda["desired_replicas"].is_u64(), "{keda}");
    assert_eq!(keda["waiting_sum"].as_f64(), Some(6.0), "{keda}");
    assert_eq!(keda["active"].as_bool(), Some(true), "{keda}");
    assert_eq!(keda["targets"].as_u64(), Some(2), "{keda}");
    assert_eq!(
        keda["targets_up"].as_u64(),
        Some(1),
        "garbage is a down target: {keda}"
    );
    let text = fetch(
        &format!("{base}/keda?format=prometheus"),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert!(text.contains("\ndesired_replicas "), "{text}");
    let metrics = fetch(&format!("{base}/metrics"), Duration::from_secs(1))
        .await
        .unwrap();
    for family in [
        "scaler_desired_replicas",
        "scaler_signal_value{signal=\"utilisation\"}",
        "scaler_decisions_total{direction=\"up\"",
        "scaler_target_up{target=",
    ] {
        assert!(metrics.contains(family), "{family} in:\n{metrics}");
    }
    assert!(
        fetch(&format!("{base}/ready"), Duration::from_secs(1))
            .await
            .is_ok()
    );
    assert!(
        fetch(&format!("{base}/health"), Duration::from_secs(1))
            .await
            .is_ok()
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
