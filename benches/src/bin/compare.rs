//! `compare pooler [--smoke]`: the side-by-side benchmark (see benches/README.md).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use benches::pooler_compare::{self, Options};
use benches::{redis_compare, report};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("");
    let is_smoke = args.iter().any(|a| a == "--smoke");
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    match what {
        "pooler" => {
            let bins = binary_dir()?;
            let options = if is_smoke {
                Options {
                    clients: vec![1, 10],
                    modes: vec!["simple".into(), "prepared".into()],
                    duration_secs: 2,
                    rounds: 1,
                    is_reconnect_included: true,
                    pool_size: 10,
                    extra_settings: vec![],
                    pooler_bin: bins.join("pooler"),
                }
            } else {
                Options {
                    clients: vec![1, 10, 50, 200, 1000],
                    modes: vec!["simple".into(), "extended".into(), "prepared".into()],
                    duration_secs: 10,
                    rounds: 3,
                    is_reconnect_included: true,
                    pool_size: 20,
                    extra_settings: vec![],
                    pooler_bin: bins.join("pooler"),
                }
            };
            let mut options = options;
            if args.iter().any(|a| a == "--seed") {
                // The seed deployment's settings (issue 3), 1000 clients.
                options.clients = vec![1000];
                options.modes = vec!["simple".into()];
                options.is_reconnect_included = false;
                options.pool_size = 25;
                options.extra_settings = vec![
                    "max_client_conn = 1000".into(),
                    "min_pool_size = 10".into(),
                    "reserve_pool_size = 5".into(),
                    "reserve_pool_timeout = 3".into(),
                ];
            }
            pooler_compare::check_binary(&options.pooler_bin)?;
            let cells = pooler_compare::run(&options)?;
            let text = format!(
                "## pooler: pgbench select-only, transaction pooling, pool_size {}\n\n{}\n{} rounds of {} s per cell, targets interleaved; medians.\n\n{}",
                options.pool_size,
                report::environment(),
                options.rounds,
                options.duration_secs,
                report::pooler_table(&cells)
            );
            println!("{text}");
            if let Some(path) = output {
                std::fs::write(&path, &text)?;
            }
            Ok(())
        }
        "cacheproxy" => {
            let bin = binary_dir()?.join("cacheproxy");
            let options = if is_smoke {
                redis_compare::Options {
                    clients: vec![1, 50],
                    pipelines: vec![1, 16],
                    requests: 20_000,
                    rounds: 1,
                    is_large_value_included: false,
                    cacheproxy_bin: bin,
                }
            } else {
                redis_compare::Options {
                    clients: vec![1, 50, 500],
                    pipelines: vec![1, 16],
                    requests: 100_000,
                    rounds: 3,
                    is_large_value_included: true,
                    cacheproxy_bin: bin,
                }
            };
            redis_compare::check_binaries(&options.cacheproxy_bin)?;
            let cells = redis_compare::run(&options)?;
            let text = format!(
                "## cacheproxy: redis-benchmark (GET SET INCR LPUSH MSET), one upstream Redis\n\n{}\n{} rounds of {} requests per cell, targets interleaved; medians.\n\n{}",
                report::environment(),
                options.rounds,
                options.requests,
                report::redis_table(&cells)
            );
            println!("{text}");
            if let Some(path) = output {
                std::fs::write(&path, &text)?;
            }
            Ok(())
        }
        "memory" => {
            let bins = binary_dir()?;
            let default = if is_smoke { 500 } else { 10_000 };
            let n = std::env::var("COMPARE_CONNECTIONS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default);
            let rows = benches::memory::run(n, &bins.join("pooler"), &bins.join("cacheproxy"))?;
            let mut text = format!(
                "## Memory: RSS per idle client connection\n\n{}\n| daemon | connections | RSS before (MiB) | RSS holding them (MiB) | bytes per connection |\n|---|---|---|---|---|\n",
                report::environment()
            );
            for row in &rows {
                text.push_str(&format!(
                    "| {} | {} | {:.1} | {:.1} | {:.0} |\n",
                    row.name,
                    row.connections,
                    row.rss_before as f64 / 1048576.0,
                    row.rss_after as f64 / 1048576.0,
                    row.per_connection()
                ));
            }
            println!("{text}");
            if let Some(path) = output {
                std::fs::write(&path, &text)?;
            }
            Ok(())
        }
        "split" => {
            let bins = binary_dir()?;
            let options = if is_smoke {
                benches::split_compare::Options {
                    clients: vec![8],
                    duration_secs: 2,
                    rounds: 1,
                    scale: 1,
                    failover_secs: 6,
                    pooler_bin: bins.join("pooler"),
                }
            } else {
                benches::split_compare::Options {
                    clients: vec![10, 50],
                    duration_secs: 10,
                    rounds: 3,
                    scale: 10,
                    failover_secs: 15,
                    pooler_bin: bins.join("pooler"),
                }
            };
            let table = benches::split_compare::run(&options)?;
            let text = format!(
                "## pooler: read/write split, primary + 2 streaming replicas, pgbench -b select-only@9 -b simple-update@1 (-M simple)\n\n{}\n{} rounds of {} s per cell, targets interleaved; medians.\n\n{table}",
                report::environment(),
                options.rounds,
                options.duration_secs,
            );
            println!("{text}");
            if let Some(path) = output {
                std::fs::write(&path, &text)?;
            }
            Ok(())
        }
        _ => anyhow::bail!(
            "usage: compare pooler|cacheproxy|memory|split [--smoke | --seed] [--output FILE]"
        ),
    }
}

/// The directory of this binary: `benches/compare` builds the daemons into the same
/// profile directory (`target/release` or `target/smoke`).
fn binary_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().map(PathBuf::from).unwrap_or_default())
}
