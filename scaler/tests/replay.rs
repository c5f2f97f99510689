//! Replays a trace recorded from a real run (`tests/tests/scaler_end_to_end.rs` with
//! `SCALER_RECORD`: PostgreSQL, pooler instances under load, then idle) through the same
//! signals and `decide` on the recorded clock: every decision must be the one the live
//! scaler carried out, so the run is reproducible in milliseconds.

use scaler::config::Config;
use scaler::trace::{parse_trace, replay};

/// The end-to-end test's configuration (targets and actuator do not matter to a replay).
const CONFIG: &str = r#"
interval = "1s"
min_replicas = 1
max_replicas = 6
[targets]
urls = ["http://replayed/metrics"]
warmup = "0s"
[signals.utilisation]
kind = "pool_utilisation"
target = 0.7
[signals.wait_p99]
kind = "client_wait_p99"
target = 0.05
[guards]
query_p99_limit = "500ms"
max_connections = 200
reserved_connections = 10
[scale_down]
window = "5s"
policies = [{ kind = "percent", value = 100, period = "15s" }]
"#;

#[test]
fn the_recorded_run_replays_to_the_same_decisions() {
    let config = Config::from_toml(CONFIG, "replay").unwrap();
    let lines = parse_trace(include_str!("fixtures/e2e_trace.jsonl")).unwrap();
    let decisions = replay(&config, &lines);
    for (index, pair) in lines.windows(2).enumerate() {
        assert_eq!(
            decisions[index].desired, pair[1].replicas,
            "tick {index} at {:.1} s: {:?}",
            pair[0].t, decisions[index]
        );
    }
    let replicas: Vec<u32> = lines.iter().map(|line| line.replicas).collect();
    let peak = *replicas.iter().max().unwrap();
    assert_eq!(
        peak, 6,
        "scaled out to max_replicas under load: {replicas:?}"
    );
    assert_eq!(
        *replicas.last().unwrap(),
        1,
        "back to one when idle: {replicas:?}"
    );
    // Moves: scale-out steps, then one or two scale-in steps, no reversal in between.
    let moves = replicas
        .windows(2)
        .filter(|pair| pair[0] != pair[1])
        .count();
    let reversals = replicas
        .windows(2)
        .filter(|pair| pair[0] != pair[1])
        .map(|pair| pair[1] > pair[0])
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|pair| pair[0] != pair[1])
        .count();
    assert_eq!(reversals, 1, "{replicas:?}");
    println!(
        "replayed {} ticks: {moves} moves, {reversals} reversal",
        lines.len()
    );
}
