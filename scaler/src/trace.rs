//! Traces: every tick's scrapes recorded as JSON lines (`{"t", "replicas", "targets":
//! {url: text or null}}`, only the families the signals read), and their replay through
//! the same signals and `decide` on the recorded clock, so a real run's decisions can be
//! reproduced and checked in milliseconds.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::decide::{Decision, History, decide};
use crate::scrape;
use crate::signals::{Collector, TargetScrape};

/// Metric families a trace keeps (everything the built-in signals and guards read).
const KEPT: &[&str] = &[
    "pgbouncer_pools_server_active_connections",
    "pgbouncer_pools_client_waiting_connections",
    "pgbouncer_databases_pool_size",
    "pgbouncer_databases_reserve_pool",
    "pooler_client_wait_seconds",
    "pooler_query_duration_seconds",
    "cacheproxy_command_duration_seconds",
    "cacheproxy_master_ready",
];

/// One recorded tick.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceLine {
    /// Seconds since the recording started.
    pub t: f64,
    /// Instances the actuator reported.
    pub replicas: u32,
    /// Each target's (trimmed) `/metrics`, `null` when it did not answer.
    pub targets: BTreeMap<String, Option<String>>,
}

fn trim(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let name = line
                .strip_prefix("# TYPE ")
                .unwrap_or(line)
                .split(['{', ' '])
                .next()
                .unwrap_or_default();
            KEPT.iter().any(|kept| name.starts_with(kept))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Appends one tick to `out`.
pub fn record(
    out: &mut impl Write,
    t: Duration,
    replicas: u32,
    scrapes: &[TargetScrape],
) -> std::io::Result<()> {
    let line = TraceLine {
        t: t.as_secs_f64(),
        replicas,
        targets: scrapes
            .iter()
            .map(|target| (target.url.clone(), target.text.as_deref().map(trim)))
            .collect(),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Replays `lines` through the signals and `decide` with `config`, moving the history
/// as the recording did (the recorded replica counts), and returns each tick's decision.
pub fn replay(config: &Config, lines: &[TraceLine]) -> Vec<Decision> {
    let policy = config.policy();
    let mut collector = Collector::default();
    let mut history = History::default();
    let origin = Instant::now();
    let mut decisions = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let now = Duration::from_secs_f64(line.t);
        let scrapes: Vec<TargetScrape> = line
            .targets
            .iter()
            .map(|(url, text)| TargetScrape {
                url: url.clone(),
                scrape: text.as_deref().and_then(scrape::parse),
                text: None,
            })
            .collect();
        let observation = collector.observe(config, &scrapes, line.replicas, origin + now);
        let decision = decide(&policy, &history, &observation, now);
        history.record_decision(&decision, now);
        // The live scaler recorded the move when it carried out this tick's decision; the
        // trace shows it as the next tick's count.
        if let Some(next) = lines.get(index + 1)
            && next.replicas != line.replicas
        {
            history.record_move(line.replicas, next.replicas, now);
        }
        decisions.push(decision);
    }
    decisions
}

/// Parses a JSON-lines trace.
pub fn parse_trace(text: &str) -> Result<Vec<TraceLine>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| format!("line {}: {error}", index + 1))
        })
        .collect()
}
